"""`load_dataset`: one call from a path to train/val/test splits, whatever the on-disk format.

Format detection looks at the path: `.npz` file -> npz, `.csv` file -> csv, a folder with
`*-images-idx3-ubyte[.gz]` -> idx, with `data_batch_1` or CIFAR-100 `train`+`meta` -> cifar,
with sub-folders -> folder (class folders, optionally inside train/ val/ test/). CSV rows and class folders
may point at DICOM/NIfTI files and DICOM series folders (`cnnlab.data.medical`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from cnnlab.data.datasets import dataset_path
from cnnlab.data.decode import check_channels
from cnnlab.data.files import FileList, files_to_splits, folder_classes, is_hidden, list_folder, read_manifest
from cnnlab.data.imageset import DataSplits, ImageSet
from cnnlab.data.medical import Window, is_medical_path, medical_splits, parse_window
from cnnlab.data.readers import (
    find_idx_file,
    is_cifar_folder,
    parse_resize,
    read_cifar_folder,
    read_idx_folder,
    read_npz,
    spatial_size,
)
from cnnlab.data.splits import split_off_val
from cnnlab.errors import ConfigError, DataError

FORMATS = ("idx", "cifar", "npz", "folder", "csv")
Size = tuple[int, ...] | None  # the resize request: 1 number, (H, W) or (D, H, W); each reader resolves it
Read = tuple[dict[str, ImageSet], list[str]]


def detect_format(path: str | os.PathLike) -> str:
    """The format name for `path`, or a DataError saying what was looked for."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: data path does not exist")
    if path.is_file():
        return _file_format(path)
    try:
        if find_idx_file(path, ("train", "t10k", "test"), "images"):
            return "idx"
        if is_cifar_folder(path):
            return "cifar"
        if any(p.is_dir() and not is_hidden(p.name) for p in path.iterdir()):
            return "folder"
    except OSError as error:
        raise DataError(f"{path}: cannot list data folder ({error.strerror or error})") from None
    raise DataError(
        f"{path}: cannot tell the data format; expected MNIST-style idx files (train-images-idx3-ubyte.gz), "
        "CIFAR python batches (data_batch_1), class sub-folders of images, a .npz or a .csv; "
        "or name the format (--data-format, format=)"
    )


def _file_format(path: Path) -> str:
    suffix = path.name.lower()
    if suffix.endswith(".npz"):
        return "npz"
    if suffix.endswith(".csv"):
        return "csv"
    if "idx" in suffix and "ubyte" in suffix:
        return "idx"
    if suffix.endswith((".dcm", ".dicom", ".nii", ".nii.gz")):
        raise DataError(
            f"{path}: one DICOM/NIfTI image, not a data set; list such files with their labels in a CSV manifest "
            "(path,label[,split]) or put them in class sub-folders"
        )
    if suffix.endswith((".tar", ".tar.gz", ".tgz", ".zip")):
        raise DataError(f"{path}: an archive; extract it and pass the extracted folder")
    raise DataError(f"{path}: unknown data file; expected a .npz archive, a .csv manifest, or a folder")


def _read(
    path: Path,
    fmt: str,
    channels: int | None,
    size: Size,
    max_bytes: int,
    classes: Sequence[str] | None,
    window: Window = None,
) -> Read:
    """(splits, classes) from one path in the named format."""
    source = str(path)
    readers: dict[str, Callable[[], Read]] = {
        "idx": lambda: read_idx_folder(path.parent if path.is_file() else path, channels, _image_size(size, source)),
        "cifar": lambda: read_cifar_folder(path, channels, _image_size(size, source)),
        "npz": lambda: read_npz(path, channels, size),
        "folder": lambda: _read_folder(path, channels, size, max_bytes, window),
        "csv": lambda: _read_csv(path, channels, size, max_bytes, classes, window),
    }
    if fmt not in readers:
        raise DataError(f"{path}: unknown data format {fmt!r}; known formats: {', '.join(FORMATS)}")
    if not path.exists():
        raise DataError(f"{path}: data path does not exist")
    return readers[fmt]()


def _image_size(size: Size, source: str) -> tuple[int, int] | None:
    return spatial_size(size, 2, source)  # type: ignore[return-value]


def _read_folder(path: Path, channels: int | None, size: Size, max_bytes: int, window: Window) -> Read:
    if not path.is_dir():
        raise DataError(f"{path}: expected a folder of class sub-folders, found a file")
    lists = list_folder(path)
    classes = folder_classes(lists, path)
    return _files_to_splits(lists, classes, channels, size, max_bytes, str(path), window), classes


def _read_csv(
    path: Path, channels: int | None, size: Size, max_bytes: int, classes: Sequence[str] | None, window: Window
) -> Read:
    lists, class_list = read_manifest(path, classes)
    return _files_to_splits(lists, class_list, channels, size, max_bytes, str(path), window), class_list


def _files_to_splits(
    lists: dict[str, FileList],
    classes: Sequence[str],
    channels: int | None,
    size: Size,
    max_bytes: int,
    source: str,
    window: Window,
) -> dict[str, ImageSet]:
    """Image files decode to uint8; DICOM/NIfTI files read to float32 in [0, 1] (`cnnlab.data.medical`).

    One data set is one or the other: their values are in different units, so a mix is refused.
    """
    paths = [p for files in lists.values() for p in files.paths]
    medical = [is_medical_path(p) for p in paths]
    if any(medical) and not all(medical):
        image, scan = paths[medical.index(False)], paths[medical.index(True)]
        raise DataError(
            f"{source}: mixes image files ({image}) with DICOM/NIfTI ({scan}); one data set holds one kind "
            "(their pixel values are in different units)"
        )
    if any(medical):
        return medical_splits(lists, classes, channels, size, window, max_bytes, source)
    return files_to_splits(lists, classes, channels, _image_size(size, source), max_bytes, source)


def load_dataset(
    path: str | os.PathLike,
    format: str | None = None,
    test_path: str | os.PathLike | None = None,
    val_split: float = 0.1,
    seed: int = 0,
    resize: int | tuple[int, int] | None = None,
    channels: int | None = None,
    max_in_memory_bytes: int = 4 * 2**30,
    classes: Sequence[str] | None = None,
    window: str | tuple[float, float] | None = None,
) -> DataSplits:
    """Load `path` into train/val/test splits.

    Args:
        path: data file or folder; its format is detected unless `format` names one of FORMATS. A path that does
            not exist but names a data set (`mnist`, `cifar10`: see `cnnlab.data.datasets`) reads that set.
        test_path: a separate test set (any format); its class names must be among the training
            classes (labels are matched by name). It replaces a test split found in `path`.
        val_split: fraction of train held out (stratified, seeded by `seed`) when the data has no
            val split of its own; a val split in the data is used as is. 0 means no val split.
        resize: one number (a square, or a cube for volumes), (H, W) for images or (D, H, W) for volumes;
            required when image files differ in size. Two numbers for volumes or three for images are a
            ConfigError rather than a guess.
        channels: 1 or 3 to convert every image; None keeps the data's own (files: the majority).
        max_in_memory_bytes: image files larger than this in total are streamed from disk.
        classes: the class list for CSV labels (labels outside it are errors); default: sorted labels.
        window: for DICOM/NIfTI items: a CT preset (lung, mediastinum, soft_tissue, bone, brain), "file", or
            "CENTER,WIDTH"; default: each file's own window, else its minimum..maximum (`cnnlab.data.medical`).

    Returns:
        DataSplits. Images are uint8 (N, C, H, W) from image files and 8-bit arrays; npz arrays keep 16-bit
        and float values (`read_npz`); DICOM/NIfTI items are float32 in [0, 1]; volumes are (N, C, D, H, W).
        Targets are int64 class indices (N,), or float32 multi-hot (N, L) for multi-label npz labels.
    """
    path = dataset_path(path)
    if not 0 <= val_split < 1:
        raise ConfigError(f"val_split must be a fraction in [0, 1), got {val_split!r}")
    channels = check_channels(channels)
    size = parse_resize(resize)
    window = parse_window(window)
    fmt = detect_format(path) if format is None else format
    splits, class_list = _read(path, fmt, channels, size, max_in_memory_bytes, classes, window)
    if "train" not in splits:
        raise DataError(f"{path}: holds no training images (found splits: {', '.join(splits)})")
    train, val = splits["train"], splits.get("val")
    if val is None and val_split > 0:
        train, val = split_off_val(train, val_split, seed)
    test = splits.get("test")
    if test_path is not None:
        test = load_test_set(Path(test_path), class_list, train, size, max_in_memory_bytes, window)
    return DataSplits(train=train, val=val, test=test, classes=class_list, format=fmt, source=str(path))


def load_test_set(
    path: Path, classes: list[str], train: ImageSet, size: Size, max_bytes: int, window: Window = None
) -> ImageSet:
    """A test set from another path, its labels re-indexed into the training class list."""
    fmt = detect_format(path)
    named = classes if fmt == "csv" else None
    splits, test_classes = _read(path, fmt, train.channels, size, max_bytes, named, window)
    test = splits["test"] if "test" in splits else splits["train"]
    unknown = [name for name in test_classes if name not in classes]
    if unknown:
        raise DataError(
            f"{path}: test class {unknown[0]!r} is not among the {len(classes)} training classes ({', '.join(classes)})"
        )
    if test.image_size != train.image_size:
        option = "D,H,W" if len(train.image_size) == 3 else "H,W"
        raise DataError(
            f"{path}: test images are {'x'.join(map(str, test.image_size))} but training images are "
            f"{'x'.join(map(str, train.image_size))}; pass --resize {option} to resize both"
        )
    if test_classes != classes:
        if not test.has_class_labels:
            raise DataError(f"{path}: multi-label test columns {test_classes} differ from the training {classes}")
        mapping = torch.tensor([classes.index(name) for name in test_classes], dtype=torch.int64)
        test.labels = mapping[test.labels]
        test.classes = list(classes)
    return test
