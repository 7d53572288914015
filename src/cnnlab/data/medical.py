"""DICOM and NIfTI files as training data: what a CSV manifest or a class folder may point at besides images.

A manifest row (`path,label[,split]`) or a file in a class folder may be a DICOM file (`.dcm`, `.dicom`, or no
extension with the DICM marker), a DICOM series folder (a folder of slices, read by `read_dicom_series`: sorted
by position), or a NIfTI image (`.nii`, `.nii.gz`). Each becomes one item of float32 values in [0, 1]:

- a single-frame DICOM file: an image (1, H, W); a multi-frame file, a series or a 3-D NIfTI: a volume
  (1, D, H, W); a 4-D NIfTI (x, y, z, t): a volume with t channels.
- values: the modality LUT gives physical units (HU for CT), then the `window` maps them to [0, 1]: a preset
  (`lung`, `mediastinum`, `soft_tissue`, `bone`, `brain`), "file" (the file's WindowCenter/WindowWidth; NIfTI:
  its cal_min/cal_max), or "CENTER,WIDTH". Without a window each item uses its file's own window when it has
  one, else its own minimum..maximum. That default keeps every item in [0, 1] but, for min-max, not in common
  units across patients: for CT pass a preset (`--window lung`) so that one HU means one value everywhere.

Every item of a data set must then have one shape: `resize` (one number, H,W for images, D,H,W for volumes)
resizes them all (bilinear for images, trilinear for volumes); without it the first item whose shape differs
is a DataError naming both files. These sets are read into memory; a set over `max_bytes` is refused.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.data.medical_readers import WINDOWS, apply_window, min_max_window, read_dicom, read_dicom_series, read_nifti
from cnnlab.data.readers import convert_image_channels, resize_pixels, spatial_size
from cnnlab.errors import ConfigError, DataError

if TYPE_CHECKING:
    from cnnlab.data.files import FileList

DICOM_EXTENSIONS = (".dcm", ".dicom")
NIFTI_EXTENSIONS = (".nii", ".nii.gz")
MEDICAL_EXTENSIONS = DICOM_EXTENSIONS + NIFTI_EXTENSIONS
Window = str | tuple[float, float] | None
_PAIR = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(\d+(?:\.\d+)?)\s*$")
_SERIES_PEEK = 16  # files looked at to tell a series folder: one DICOM among them is enough


def parse_window(window: str | Sequence[float] | None) -> Window:
    """The config's `window` as read_dicom takes it: None, a `WINDOWS` name, "file", or (center, width)."""
    if window is None:
        return None
    if not isinstance(window, str):
        center, width = (float(v) for v in window)
    elif window in WINDOWS or window == "file":
        return window
    elif match := _PAIR.match(window):
        center, width = float(match[1]), float(match[2])
    else:
        names = ", ".join([*WINDOWS, "file"])
        raise ConfigError(f"window: unknown window {window!r}; expected one of {names}, or CENTER,WIDTH (-600,1500)")
    if not width > 0:
        raise ConfigError(f"window: width must be positive, got {width:g}")
    return center, width


def has_dicom_marker(path: str) -> bool:
    """The DICOM part-10 marker: 'DICM' after the 128-byte preamble."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def is_medical_file(path: str) -> bool:
    """A DICOM or NIfTI file by its extension, or an extension-less file holding the DICOM marker."""
    name = os.path.basename(path).lower()
    return name.endswith(MEDICAL_EXTENSIONS) or ("." not in name and has_dicom_marker(path))


def is_dicom_folder(path: str) -> bool:
    """A folder whose first files (by name) include a DICOM one: a series folder, read as one volume."""
    try:
        names = sorted(n for n in os.listdir(path) if not n.startswith("."))
    except OSError:
        return False
    files = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
    return any(_is_dicom_name(f) for f in files[:_SERIES_PEEK])


def _is_dicom_name(path: str) -> bool:
    name = os.path.basename(path).lower()
    return name.endswith(DICOM_EXTENSIONS) or ("." not in name and has_dicom_marker(path))


def is_medical_path(path: str) -> bool:
    return is_dicom_folder(path) if os.path.isdir(path) else is_medical_file(path)


def read_medical(path: str, window: Window = None) -> torch.Tensor:
    """One item as float32 in [0, 1]: (1, H, W) for a 2-D DICOM, (C, D, H, W) for volumes (see the module)."""
    name = path.lower()
    if os.path.isdir(path):
        array = read_dicom_series(path, window or "auto").array
    elif name.endswith(NIFTI_EXTENSIONS):
        array = _read_nifti(path, window)
    else:
        array = read_dicom(path, window or "auto").array
    return array.unsqueeze(0) if array.ndim in (2, 3) else array


def _read_nifti(path: str, window: Window) -> torch.Tensor:
    """NIfTI values through the window; "file" and the default use the header's cal_min..cal_max display range."""
    image = read_nifti(path)
    display = _nifti_display_window(path)
    if window == "file" and display is None:
        raise DataError(f"{path}: window='file' but the NIfTI header sets no display range (cal_min/cal_max)")
    if window is None or window == "file":
        center, width = display or min_max_window(image.array)
    elif isinstance(window, str):
        center, width = WINDOWS[window]
    else:
        center, width = window
    return apply_window(image.array, center, width)  # type: ignore[return-value]


def _nifti_display_window(path: str) -> tuple[float, float] | None:
    import nibabel as nib

    header = nib.load(path).header  # already read once without error by read_nifti
    low, high = float(header["cal_min"]), float(header["cal_max"])
    return ((low + high) / 2.0, high - low) if high > low else None


def _shape_text(shape: Sequence[int]) -> str:
    axes = "DxHxW" if len(shape) == 3 else "HxW"
    return f"{'x'.join(map(str, shape))} ({axes})"


def _check_item(item: torch.Tensor, path: str, first: tuple[torch.Tensor, str], size: tuple[int, ...] | None) -> None:
    """The same kind of item as the first (2-D or 3-D, channels), and its shape unless everything is resized."""
    reference, reference_path = first
    if item.ndim != reference.ndim or item.shape[0] != reference.shape[0]:
        kind = {3: "an image", 4: "a volume"}
        raise DataError(
            f"{path}: {kind[item.ndim]} with {item.shape[0]} channel(s), {_shape_text(item.shape[1:])}, but "
            f"{reference_path} is {kind[reference.ndim]} with {reference.shape[0]} channel(s); one data set holds "
            "one kind of item (all 2-D images or all volumes)"
        )
    if size is None and item.shape[1:] != reference.shape[1:]:
        option = "D,H,W" if item.ndim == 4 else "H,W"
        raise DataError(
            f"{path}: is {_shape_text(item.shape[1:])} but {reference_path} is {_shape_text(reference.shape[1:])}; "
            f"items of one data set must share a size: pass --resize {option} (resize=({option.replace(',', ', ')})) "
            "to resize them all"
        )


def read_medical_files(
    paths: Sequence[str],
    channels: int | None,
    resize: tuple[int, ...] | None,
    window: Window,
    max_bytes: int,
    source: str,
) -> torch.Tensor:
    """Every item, windowed, checked and resized: float32 (N, C, H, W) or (N, C, D, H, W) in [0, 1]."""
    items: list[torch.Tensor] = []
    size: tuple[int, ...] | None = None
    for index, path in enumerate(paths):
        item = read_medical(path, window)
        if index == 0:
            size = spatial_size(resize, item.ndim - 1, source)
            first = (item, path)
            shape = (item.shape[0], *(size or item.shape[1:]))
            total = len(paths) * math.prod(shape) * 4
            if total > max_bytes:
                raise DataError(
                    f"{source}: {len(paths)} items of {'x'.join(map(str, shape))} float32 need {total / 2**30:.1f} GiB"
                    f" in memory, over the {max_bytes / 2**30:.1f} GiB limit; DICOM/NIfTI data is read into memory: "
                    "pass a smaller --resize or use fewer files"
                )
        _check_item(item, path, first, size)
        if size is not None:
            item = resize_pixels(item.unsqueeze(0), size)[0].clamp_(0.0, 1.0)
        items.append(item)
    images = torch.stack(items)
    return images if channels is None else convert_image_channels(images, channels)


def medical_splits(
    lists: dict[str, FileList],
    classes: Sequence[str],
    channels: int | None,
    resize: tuple[int, ...] | None,
    window: Window,
    max_bytes: int,
    source: str,
) -> dict[str, ImageSet]:
    """ImageSets from per-split file lists (`files.FileList`: `.paths`, `.labels` class names) of medical items."""
    index = {name: i for i, name in enumerate(classes)}
    all_paths = [p for files in lists.values() for p in files.paths]
    images = read_medical_files(all_paths, channels, resize, window, max_bytes, source)
    splits, start = {}, 0
    for split, files in lists.items():
        labels = np.asarray([index[label] for label in files.labels], dtype=np.int64)
        paths = all_paths[start : start + len(labels)]
        splits[split] = ImageSet(images[start : start + len(labels)], labels, classes, source, paths)
        start += len(labels)
    return splits


__all__ = [
    "MEDICAL_EXTENSIONS",
    "is_dicom_folder",
    "is_medical_file",
    "is_medical_path",
    "medical_splits",
    "parse_window",
    "read_medical",
    "read_medical_files",
]
