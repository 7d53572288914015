"""Readers for image files: a folder of class sub-folders, or a CSV manifest of `path,label[,split]`.

Both produce lists of (file, class) per split; `files_to_splits` then decodes them all into one
uint8 tensor when they fit in `max_in_memory_bytes` (estimated from the first file's header), else
returns streaming sets that decode per batch. The decision is taken once for all splits together.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnnlab.data.decode import IMAGE_EXTENSIONS, SizePolicy, decode_files, is_image_file, probe
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import DataError

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
_PROBE_SAMPLES = 64


@dataclass
class FileList:
    """Files of one split with their class names (resolved to indices once the class list is known)."""

    paths: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_dirs(folder: Path) -> dict[str, Path]:
    return {SPLIT_NAMES[p.name.lower()]: p for p in _subdirs(folder) if p.name.lower() in SPLIT_NAMES}


def resolve_folder(folder: Path) -> Path:
    """Step into a lone wrapper folder (`CIFAR-10-images/` holding train/ and test/)."""
    children = _subdirs(folder)
    if not _split_dirs(folder) and len(children) == 1 and _split_dirs(children[0]):
        return children[0]
    return folder


def _images_under(folder: Path) -> list[str]:
    found = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in sorted(names) if not n.startswith(".") and is_image_file(n)]
    return found


def _class_folders(folder: Path) -> FileList:
    classes = _subdirs(folder)
    if not classes:
        raise DataError(
            f"{folder}: expected one sub-folder per class (e.g. {folder}/cat/*.png), or train/ and test/ folders "
            "of them; found no sub-folders"
        )
    files = FileList()
    for class_dir in classes:
        images = _images_under(class_dir)
        if not images:
            raise DataError(
                f"{class_dir}: class folder holds no images; expected files ending in {', '.join(IMAGE_EXTENSIONS)}"
            )
        files.paths += images
        files.labels += [class_dir.name] * len(images)
    return files


def list_folder(folder: Path) -> dict[str, FileList]:
    """Files per split: train/ val/ test/ sub-folders when present, else the folder itself is `train`."""
    folder = resolve_folder(folder)
    split_dirs = _split_dirs(folder)
    if not split_dirs:
        return {"train": _class_folders(folder)}
    return {split: _class_folders(path) for split, path in split_dirs.items()}


def folder_classes(lists: dict[str, FileList], folder: Path) -> list[str]:
    """Class names of the training folders (sorted, as ImageFolder does); other splits must use them."""
    first = lists.get("train") or next(iter(lists.values()))
    classes = sorted(set(first.labels))
    for split, files in lists.items():
        extra = sorted(set(files.labels) - set(classes))
        if extra:
            raise DataError(f"{folder}: {split} has class folder {extra[0]!r} that the training data lacks ({classes})")
    return classes


def read_manifest(csv_path: Path, classes: Sequence[str] | None = None) -> tuple[dict[str, FileList], list[str]]:
    """`path,label[,split]` rows; paths relative to the CSV's folder; labels are class names."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            reader.fieldnames = columns
            missing = [c for c in ("path", "label") if c not in columns]
            if missing:
                raise DataError(
                    f"{csv_path}: missing column {missing[0]!r}; expected columns path,label[,split], "
                    f"the CSV has columns: {', '.join(columns) or '(none)'}"
                )
            lists = _manifest_rows(csv_path, reader, has_split="split" in columns)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{csv_path}: cannot read CSV manifest ({error})") from None
    if not lists:
        raise DataError(f"{csv_path}: CSV manifest has no rows; expected one row per image")
    return lists, _manifest_classes(csv_path, lists, classes)


def _manifest_rows(csv_path: Path, reader: csv.DictReader, has_split: bool) -> dict[str, FileList]:
    base = csv_path.parent
    lists: dict[str, FileList] = {}
    for line, row in enumerate(reader, start=2):
        path, label = (row.get("path") or "").strip(), (row.get("label") or "").strip()
        if not path or not label:
            raise DataError(f"{csv_path}, line {line}: empty {'path' if not path else 'label'}")
        split_value = (row.get("split") or "train").strip().lower() if has_split else "train"
        if split_value not in SPLIT_NAMES:
            raise DataError(f"{csv_path}, line {line}: split {split_value!r} is not one of train, val, test")
        full = os.path.join(base, path)
        if not os.path.isfile(full):
            raise DataError(f"{csv_path}, line {line}: image file {full} does not exist")
        files = lists.setdefault(SPLIT_NAMES[split_value], FileList())
        files.paths.append(full)
        files.labels.append(label)
    return lists


def _manifest_classes(csv_path: Path, lists: dict[str, FileList], classes: Sequence[str] | None) -> list[str]:
    names = {label for files in lists.values() for label in files.labels}
    if classes is None:
        numeric = all(n.lstrip("-").isdigit() for n in names)
        return sorted(names, key=int) if numeric else sorted(names)
    unknown = sorted(names - set(classes))
    if unknown:
        raise DataError(
            f"{csv_path}: label {unknown[0]!r} is not one of the {len(classes)} classes: {', '.join(classes)}"
        )
    return list(classes)


def _probe_sample(paths: list[str], channels: int | None) -> tuple[int, tuple[int, int]]:
    """Channels (requested, else the majority of an evenly spread sample of headers) and the first file's size.

    A sample, not every file: opening 50,000 headers would cost a second, and the same rule then
    serves in-memory and streaming sets alike.
    """
    first_channels, first_size = probe(paths[0])
    if channels is not None:
        return channels, first_size
    spread = sorted({round(i * (len(paths) - 1) / max(1, _PROBE_SAMPLES - 1)) for i in range(_PROBE_SAMPLES)})
    counts = [probe(paths[i])[0] for i in spread]
    return (1 if counts.count(1) > len(counts) / 2 else 3), first_size


def files_to_splits(
    lists: dict[str, FileList],
    classes: Sequence[str],
    channels: int | None,
    size: tuple[int, int] | None,
    max_in_memory_bytes: int,
    source: str,
) -> dict[str, ImageSet]:
    """Decode into memory when the estimate fits, else stream; every split shares one channel count and size."""
    index = {name: i for i, name in enumerate(classes)}
    all_paths = [p for files in lists.values() for p in files.paths]
    probed_channels, first_size = _probe_sample(all_paths, channels)
    policy = SizePolicy(size or first_size, resize=size is not None, reference_file=all_paths[0])
    height, width = policy.size
    estimate = len(all_paths) * probed_channels * height * width
    splits = {}
    if estimate <= max_in_memory_bytes:
        images = decode_files(all_paths, policy, probed_channels)
        start = 0
        for split, files in lists.items():
            labels = [index[label] for label in files.labels]
            splits[split] = ImageSet(images[start : start + len(labels)], labels, classes, source, files.paths)
            start += len(labels)
        return splits
    for split, files in lists.items():
        labels = [index[label] for label in files.labels]
        splits[split] = ImageSet.from_files(files.paths, labels, classes, policy, probed_channels, source)
    return splits
