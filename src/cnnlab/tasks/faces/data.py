"""Face data: a folder with one sub-folder per person -> face crops -> splits of people, never of images.

Every image is decoded by the training decoder (any common format, with or without an extension), the largest
face is found and cropped (or, with `detect: false`, the image is taken as a crop), and the people are split
so that validation and test people are never seen in training: a recognition model is judged on faces it has
never met. The split is seeded; a folder that already has train/ val/ test/ sub-folders keeps them, and
`--test-data FOLDER` gives the test people explicitly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.data.decode import convert_channels, decode_one, read_bytes
from cnnlab.data.files import FileList, list_folder
from cnnlab.data.imageset import DataSplits, ImageSet
from cnnlab.errors import ConfigError, DataError

PROGRESS_FROM = 200  # images: below this, reading is quick and a progress bar would only flicker


@dataclass
class FaceData(DataSplits):
    """DataSplits of face crops whose labels index each split's own people (`split.classes`).

    `classes` is the training people (ArcFace has one class weight per training person); `skipped` lists the
    files `skip_invalid` left out (unreadable, or no face found).
    """

    skipped: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CropSettings:
    """How an image becomes the network's input: the one path training, enroll, identify and verify share."""

    size: int
    channels: int
    detect: bool
    margin: float

    def detector(self):
        if not self.detect:
            return None
        from cnnlab.tasks.faces.detect import HaarFaceDetector

        return HaarFaceDetector()


def crop_files(
    paths: Sequence[str], settings: CropSettings, skip_invalid: bool = False, progress: bool = True
) -> tuple[torch.Tensor, list[int], list[str]]:
    """uint8 (N, C, S, S) crops of the files, the indices of the files kept, and one line per file skipped.

    Without `skip_invalid` the first unreadable file or file without a face stops with a DataError naming it.
    """
    from cnnlab.tasks.faces.detect import crop_face

    detector = settings.detector()
    crops, kept, skipped = [], [], []
    for index, path in enumerate(_progress(paths, progress)):
        try:
            image = convert_channels(decode_one(read_bytes(path), path), settings.channels)
            crops.append(crop_face(image, detector, (settings.size, settings.size), settings.margin, path))
        except DataError as error:
            if not skip_invalid:
                raise
            skipped.append(str(error))
            continue
        kept.append(index)
    if not crops:
        return torch.empty(0, settings.channels, settings.size, settings.size, dtype=torch.uint8), kept, skipped
    return torch.stack(crops), kept, skipped


def _progress(paths: Sequence[str], show: bool):
    if not show or len(paths) < PROGRESS_FROM:
        return paths
    from tqdm import tqdm

    return tqdm(paths, desc="faces", unit="img", leave=False)


def count_or_fraction(value: float, total: int, name: str) -> int:
    """`value` people: a whole number >= 1 is a count, a value in [0, 1) a fraction of `total` (at least one)."""
    if value < 0:
        raise ConfigError(f"task_options.{name} must be a count (>= 1) or a fraction in [0, 1), got {value}")
    if value >= 1:
        if value != int(value):
            raise ConfigError(f"task_options.{name}: a count of people must be a whole number, got {value}")
        return int(value)
    return max(1, int(round(value * total))) if value > 0 else 0


def split_people(people: Sequence[str], test: float, val: float, seed: int) -> dict[str, list[str]]:
    """A seeded split of the people (not of their images): {"train": [...], "val": [...], "test": [...]}."""
    names = sorted(people)
    n_test = count_or_fraction(test, len(names), "test_people")
    n_val = count_or_fraction(val, len(names), "val_people")
    if len(names) - n_test - n_val < 2:
        raise DataError(
            f"{len(names)} people: holding out {n_test} for test and {n_val} for validation leaves "
            f"{len(names) - n_test - n_val} to train on; need at least 2 (lower --test-people/--val-people)"
        )
    order = np.random.default_rng(seed).permutation(len(names))
    test_names = sorted(names[i] for i in order[:n_test])
    val_names = sorted(names[i] for i in order[n_test : n_test + n_val])
    train_names = sorted(names[i] for i in order[n_test + n_val :])
    return {"train": train_names, "val": val_names, "test": test_names}


def _people_files(folder: Path) -> dict[str, FileList]:
    if not folder.exists():
        raise DataError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DataError(f"{folder}: faces are read from a folder with one sub-folder of images per person")
    return list_folder(folder)


def _merged(lists: dict[str, FileList]) -> FileList:
    merged = FileList()
    for files in lists.values():
        merged.paths += files.paths
        merged.labels += files.labels
    return merged


def _check_disjoint(lists: dict[str, FileList], source: str) -> None:
    seen: dict[str, str] = {}
    for split, files in lists.items():
        for person in sorted(set(files.labels)):
            if person in seen and seen[person] != split:
                raise DataError(
                    f"{source}: person {person!r} is in both {seen[person]}/ and {split}/; a face split must hold "
                    "different people (unseen people are what recognition is measured on)"
                )
            seen[person] = split


def _split_set(files: FileList, people: list[str], settings: CropSettings, skip: bool, source: str):
    """The ImageSet of `people`'s files (labels index `people`), and the skip lines."""
    index = {name: i for i, name in enumerate(people)}
    chosen = [i for i, label in enumerate(files.labels) if label in index]
    paths = [files.paths[i] for i in chosen]
    crops, kept, skipped = crop_files(paths, settings, skip)
    labels = [index[files.labels[chosen[i]]] for i in kept]
    kept_paths = [paths[i] for i in kept]
    return ImageSet(crops, torch.tensor(labels, dtype=torch.int64), people, source, kept_paths), skipped


def load_face_data(config: Any, options: Any) -> FaceData:
    """The people splits a config describes (see the module docstring); labels per split index its people."""
    if not config.data:
        raise ConfigError("data: no data set given; pass --data FOLDER (one sub-folder of images per person)")
    folder = Path(config.data)
    lists = _people_files(folder)
    settings = crop_settings(options, config.channels, lists)
    if config.test_data:
        test_lists = _people_files(Path(config.test_data))
        lists = {"train": _merged(lists), "test": _merged(test_lists)}
    _check_disjoint(lists, str(folder))
    if set(lists) == {"train"}:
        people = split_people(sorted(set(lists["train"].labels)), options.test_people, options.val_people, config.seed)
        files = {split: lists["train"] for split in people}
    else:
        people = {split: sorted(set(lists[split].labels)) for split in lists}
        if "val" not in people:  # validation people picked the threshold: carve them from training
            carved = split_people(people["train"], 0.0, options.val_people, config.seed)
            people["train"], people["val"] = carved["train"], carved["val"]
            lists["val"] = lists["train"]
        files = lists
    sets, skipped = {}, []
    for split, names in people.items():
        if not names:
            continue
        source = str(Path(config.test_data) if split == "test" and config.test_data else folder)
        sets[split], lines = _split_set(files[split], names, settings, options.skip_invalid, source)
        skipped += lines
    _check_enough(sets, str(folder))
    return FaceData(
        train=sets["train"],
        val=sets.get("val"),
        test=sets.get("test"),
        classes=list(people["train"]),
        format="faces",
        source=str(folder),
        skipped=skipped,
    )


def _check_enough(sets: dict[str, ImageSet], source: str) -> None:
    train = sets["train"]
    counts = np.bincount(train.labels.numpy(), minlength=len(train.classes))
    if len(train) == 0 or (counts > 0).sum() < 2:
        raise DataError(f"{source}: training needs faces of at least 2 people, found {(counts > 0).sum()}")
    for split in ("val", "test"):
        part = sets.get(split)
        if part is not None and len(part) and np.bincount(part.labels.numpy()).max() < 2:
            raise DataError(
                f"{source}: the {split} people have one image each; verification needs two images of one person"
            )


def crop_settings(options: Any, channels: int | None, lists: dict[str, FileList] | None = None) -> CropSettings:
    """The crop settings of a run: its options, and the channel count (given, or the first image's)."""
    if channels is None:
        channels = _probe_channels(lists) if lists else 3
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3 for faces, got {channels}")
    return CropSettings(int(options.image_size), int(channels), bool(options.detect), float(options.face_margin))


def _probe_channels(lists: dict[str, FileList]) -> int:
    """1 when the first images are grey (Olivetti), else 3: a grey data set trains a grey model."""
    channels = []
    for path in [p for files in lists.values() for p in files.paths][:16]:
        try:
            channels.append(decode_one(read_bytes(path), path).shape[0])
        except DataError:
            continue  # reading the data names a broken file (or skips it); the probe only looks
    return max(channels, default=3)
