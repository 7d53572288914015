"""Detection data: Pascal VOC XML, COCO JSON or YOLO txt folders -> uint8 image splits with per-image box targets.

    data = load_detection_data("data/raccoon", image_size=320)      # format detected, seeded 72/8/20 split
    images, target = data.train[0]                                    # uint8 (C, 320, 320), {"boxes", "labels", ...}

Every image is decoded (its real size wins over what the annotation says), stretched to image_size x image_size
and its boxes scaled per axis with it. A target is {"boxes": float32 (n, 4) xyxy pixels of the stored image,
"labels": int64 (n,), "file": the image path, "orig_size": (H, W) of the original}.

Bad annotations (box outside the image by more than a pixel, zero area, unknown class, missing or undecodable
image, malformed file or line) raise one DataError naming the annotation file and the box; with
`skip_invalid=True` the box or image is left out, a line goes into `DetectionData.skipped`, and loading goes on.

Splits the data declares (VOC ImageSets/Main lists, COCO files or folders named train/val/test, YOLO data.yaml
or train/val/test folders) are kept; a missing val or test is carved from train. Data without splits gets a
seeded split over the images sorted by file name, so the same images in VOC, COCO and YOLO form split the same.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.decode import check_channels, convert_channels, decode_one, default_threads, read_bytes, resize_images
from cnnlab.data.imageset import DataSplits, ImageSet
from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.detection.readers import FORMATS, Box, Record, detect_format, read_records

__all__ = ["FORMATS", "DetectionData", "detect_format", "load_detection_data"]

TOLERANCE = 1.0  # pixels a box may stick out of its image (rounding in annotation tools) before it is an error


@dataclass
class DetectionData(DataSplits):
    """DataSplits whose targets are per-image box dicts, plus what `skip_invalid` left out."""

    skipped: list[str] = field(default_factory=list)  # one line per skipped image or box


@dataclass
class _Item:
    """One decoded image (native channels, already resized) with its checked target."""

    record: Record
    image: torch.Tensor
    target: dict


class _Problems:
    """Raises the first problem, or (skip_invalid) collects it as a line and lets loading go on."""

    def __init__(self, skip: bool) -> None:
        self.skip = skip
        self.lines: list[str] = []

    def report(self, message: str) -> None:
        if not self.skip:
            raise DataError(message)
        self.lines.append(message)


def load_detection_data(
    path: str | os.PathLike,
    *,
    data_format: str | None = None,
    image_size: int = 320,
    channels: int | None = None,
    val_split: float = 0.1,
    test_split: float = 0.2,
    seed: int = 0,
    skip_invalid: bool = False,
    test_data: str | os.PathLike | None = None,
    classes: list[str] | None = None,
) -> DetectionData:
    """Read a detection data set into train/val/test splits of `image_size` squares (see the module docstring).

    Args:
        data_format: "voc", "coco" or "yolo" to force a reader; None detects it.
        channels: 1 or 3; None: 3 when any image is in colour, else 1.
        val_split, test_split: fractions for the seeded split (test first, then val of the rest) when the data has
            no split of its own; a declared split is kept and only a missing one is carved from train.
        test_data: a second data set (any of the formats) used as the test split; its classes must be in ours.
        classes: the class list (order = label index); an object of another class is a bad annotation.
    """
    _check_options(data_format, image_size, val_split, test_split)
    channels = check_channels(channels)
    root = Path(path)
    fmt = data_format or detect_format(root)
    if not root.exists():
        raise DataError(f"{root}: data path does not exist")
    problems = _Problems(skip_invalid)
    items, class_list = _load_items(root, fmt, image_size, classes, problems)
    test_items: list[_Item] | None = None
    if test_data is not None:
        test_root = Path(test_data)
        if not test_root.exists():
            raise DataError(f"{test_root}: test data path does not exist")
        test_items, _ = _load_items(test_root, detect_format(test_root), image_size, class_list, problems)
        declared = [i for i in test_items if i.record.split == "test"]
        test_items = declared or test_items
    groups = _split(items, val_split, 0.0 if test_items is not None else test_split, seed, str(root))
    if test_items is not None:
        groups["test"] = test_items
    all_items = [i for group in groups.values() for i in group]
    if channels is None:
        channels = 3 if any(i.image.shape[0] == 3 for i in all_items) else 1
    sets = {name: _imageset(group, class_list, channels, str(root)) for name, group in groups.items()}
    return DetectionData(
        train=sets["train"],  # type: ignore[arg-type]
        val=sets.get("val"),
        test=sets.get("test"),
        classes=class_list,
        format=fmt,
        source=str(root),
        skipped=problems.lines,
    )


def _check_options(data_format: str | None, image_size: int, val_split: float, test_split: float) -> None:
    if data_format is not None and data_format not in FORMATS:
        raise ConfigError(f"data format must be one of {', '.join(FORMATS)}, got {data_format!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(f"image_size must be a whole number of pixels >= 1, got {image_size!r}")
    for name, value in (("val_split", val_split), ("test_split", test_split)):
        if not 0.0 <= value < 1.0:
            raise ConfigError(f"{name} must be a fraction in [0, 1), got {value!r}")
    if val_split + test_split >= 1.0:
        raise ConfigError(f"val_split + test_split must leave images to train on, got {val_split} + {test_split}")


def _load_items(
    root: Path, fmt: str, size: int, classes: list[str] | None, problems: _Problems
) -> tuple[list[_Item], list[str]]:
    """Parse, decode and check one data set; the class list is `classes`, else the data's, else names seen."""
    result = read_records(root, fmt, classes)
    records = _usable_records(result.records, problems)
    decoded = _decode_all(records, size, problems)
    checked = [(record, image, orig, _checked_boxes(record, orig, problems)) for record, image, orig in decoded]
    if classes is not None:
        class_list = list(classes)
    elif result.classes is not None:
        class_list = list(result.classes)
    else:  # VOC declares no class list: the names its objects use, sorted
        class_list = sorted({box.label for _, _, _, boxes in checked for box, _ in boxes})
    index = {name: i for i, name in enumerate(class_list)}
    items = []
    for record, image, orig, boxes in checked:
        kept, labels = [], []
        for box, pixels in boxes:
            if box.label not in index:
                problems.report(
                    f"{record.annotation}: {box.where}: class {box.label!r} is not in the class list "
                    f"({_shown_classes(class_list)})"
                )
                continue
            kept.append(pixels)
            labels.append(index[box.label])
        items.append(_Item(record, image, _target(record, kept, labels, orig, size)))
    if not items:
        raise DataError(f"{root}: no usable images" + (" (every one was skipped as invalid)" if problems.lines else ""))
    if not class_list:
        raise DataError(f"{root}: no annotated objects; a detection data set needs at least one box")
    return items, class_list


def _shown_classes(classes: list[str]) -> str:
    shown = ", ".join(repr(c) for c in classes[:8]) + (", ..." if len(classes) > 8 else "")
    return f"{len(classes)} classes: {shown}" if classes else "no classes"


def _usable_records(records: list[Record], problems: _Problems) -> list[Record]:
    """Records whose file parsed and whose image exists, each image used once (a second claim would leak it)."""
    owners: dict[str, str] = {}
    out = []
    for record in records:
        if record.problem is not None:
            problems.report(f"{record.annotation}: {record.problem}")
            continue
        assert record.image is not None
        key = os.path.realpath(record.image)
        if key in owners:
            problems.report(f"{record.annotation}: image {record.image} is already annotated by {owners[key]}")
            continue
        owners[key] = record.annotation
        out.append(record)
    return out


def _decode_all(
    records: list[Record], size: int, problems: _Problems
) -> list[tuple[Record, torch.Tensor, tuple[int, int]]]:
    """(record, image resized to size x size with its own channels, original (H, W)) for each decodable image."""

    def work(record: Record) -> tuple[torch.Tensor, tuple[int, int]] | str:
        assert record.image is not None
        try:
            image = decode_one(read_bytes(record.image), record.image)
        except DataError as error:
            return str(error)
        orig = (int(image.shape[-2]), int(image.shape[-1]))
        return resize_images(image, (size, size)).contiguous(), orig

    if len(records) > 8:
        with ThreadPoolExecutor(min(default_threads(), len(records))) as pool:
            results = list(pool.map(work, records))
    else:
        results = [work(r) for r in records]
    out = []
    for record, result in zip(records, results):
        if isinstance(result, str):
            problems.report(f"{record.annotation}: {result}")
        else:
            out.append((record, *result))
    return out


def _checked_boxes(record: Record, orig: tuple[int, int], problems: _Problems) -> list[tuple[Box, list[float]]]:
    """Each usable box with its corners in original pixels, clipped to the image; bad ones reported."""
    height, width = orig
    out = []
    for box in record.boxes:
        prefix = f"{record.annotation}: {box.where}" + (f" box {box.shown}" if box.shown else "")
        if box.problem is not None:
            problems.report(f"{prefix}: {box.problem}")
            continue
        x1, y1, x2, y2 = box.coords
        if box.normalized:
            x1, x2, y1, y2 = x1 * width, x2 * width, y1 * height, y2 * height
        if x2 <= x1 or y2 <= y1:
            problems.report(f"{prefix}: zero or negative area (width {x2 - x1:g}, height {y2 - y1:g} pixels)")
            continue
        if x1 < -TOLERANCE or y1 < -TOLERANCE or x2 > width + TOLERANCE or y2 > height + TOLERANCE:
            problems.report(
                f"{prefix}: outside the {width}x{height} (WxH) image {record.image} "
                f"(corners {x1:g},{y1:g} to {x2:g},{y2:g} pixels)"
            )
            continue
        x1, x2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        y1, y2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if x2 <= x1 or y2 <= y1:
            problems.report(f"{prefix}: zero area once clipped to the {width}x{height} (WxH) image")
            continue
        out.append((box, [x1, y1, x2, y2]))
    return out


def _target(record: Record, boxes: list[list[float]], labels: list[int], orig: tuple[int, int], size: int) -> dict:
    """Boxes scaled per axis from the original to the stored size x size image (the stretch the image got)."""
    scale = torch.tensor([size / orig[1], size / orig[0], size / orig[1], size / orig[0]], dtype=torch.float64)
    tensor = torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4) * scale
    return {
        "boxes": tensor.to(torch.float32),
        "labels": torch.tensor(labels, dtype=torch.int64).reshape(-1),
        "file": str(record.image),
        "orig_size": orig,
    }


def _split(items: list[_Item], val_split: float, test_split: float, seed: int, source: str) -> dict[str, list[_Item]]:
    """Declared splits kept; what is missing carved from train with a seeded permutation of the sorted names."""
    declared = {item.record.split for item in items}
    if declared == {None}:
        groups: dict[str, list[_Item]] = {"train": items}
    else:
        groups = {name: [i for i in items if i.record.split == name] for name in ("train", "val", "test")}
        groups = {name: group for name, group in groups.items() if group}
        if "train" not in groups:
            raise DataError(f"{source}: holds no training images (found splits: {', '.join(sorted(groups))})")
    train = _sorted(groups["train"])
    if "test" not in groups and test_split > 0:
        train, groups["test"] = _carve(train, test_split, seed)
    if "val" not in groups and val_split > 0:
        train, groups["val"] = _carve(train, val_split, seed + 1)
    groups["train"] = train
    return {name: _sorted(group) for name, group in groups.items() if group}


def _sorted(items: list[_Item]) -> list[_Item]:
    """By image file name (then path): the order that does not depend on the format or the folder layout."""
    return sorted(items, key=lambda i: (os.path.basename(i.target["file"]), i.target["file"]))


def _carve(items: list[_Item], fraction: float, seed: int) -> tuple[list[_Item], list[_Item]]:
    """(rest, held out): round(fraction * n) images, at least one when n > 1, never all of them."""
    count = len(items)
    held = min(int(round(fraction * count)) or (1 if count > 1 else 0), max(count - 1, 0))
    order = np.random.default_rng(seed).permutation(count)
    out = set(order[:held].tolist())
    return [i for k, i in enumerate(items) if k not in out], [i for k, i in enumerate(items) if k in out]


def _imageset(items: list[_Item], classes: list[str], channels: int, source: str) -> ImageSet:
    images = torch.stack([convert_channels(item.image, channels) for item in items])
    paths = [item.target["file"] for item in items]
    return ImageSet(images, [item.target for item in items], classes, source, paths)
