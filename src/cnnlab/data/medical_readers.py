"""DICOM and NIfTI readers: pixels in physical units, spacing kept, bad files named in one-line errors.

- `read_dicom(path, window=None)`: one DICOM file -> `MedicalImage` (H, W), or (D, H, W) for a multi-frame file.
  The modality LUT (rescale slope/intercept, or a Modality LUT Sequence) is applied, so a CT holds Hounsfield
  units as float32 in their full 16-bit range; nothing is clipped or rescaled until a window is asked for.
- `read_dicom_series(folder, window=None)`: every DICOM slice of one series in a folder -> (D, H, W), sorted by
  ImagePositionPatient projected on the slice normal (the cross product of ImageOrientationPatient's row and
  column directions), falling back to InstanceNumber, then to the file name.
- `read_nifti(path)`: `.nii`/`.nii.gz` via nibabel, reoriented to the closest canonical (RAS+) orientation.
- `apply_window(values, center, width)` and `WINDOWS`: the CT display windows, mapped to float32 in [0, 1].
  `window="auto"` takes the file's own window, else the image's minimum..maximum (`min_max_window`).

Axis order. A `MedicalImage.array` is (H, W) or (D, H, W), with `spacing` in millimetres in the same order. For
DICOM, D is the slice axis (in increasing position along the normal), H the rows and W the columns, as stored.
For NIfTI, nibabel's canonical array is indexed (i -> R, j -> A, k -> S); cnnlab reverses the axes to (k, j, i) so
that D is the superior axis, like an axial DICOM series, and `spacing` is reversed with it (`metadata["axes"]`
says "SAR"). A 4-D NIfTI (x, y, z, t) becomes channels: (C, D, H, W) with C = t, spacing the 3 spatial zooms.

Nothing here can run code from a file: pydicom and nibabel parse headers and pixel arrays only, and no pickle is
ever loaded.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.errors import ConfigError, DataError

# CT display windows as (center, width) in HU. The values are the common radiology presets listed by
# Radiopaedia, "Windowing (CT)" (https://radiopaedia.org/articles/windowing-ct): lungs W1500 L-600, bone W1800
# L400, brain W80 L40, soft tissue W400 L50 and mediastinum W350 L50. Soft tissue/mediastinum use L40 W400 here,
# the other widely used setting (e.g. "soft-tissue window W400 L40" in many CT papers); published levels range
# 40-60 HU, and one preset serves both names.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (40.0, 400.0),
    "soft_tissue": (40.0, 400.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
}

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class MedicalImage:
    """An image or volume in physical units.

    array: torch float32, (H, W) or (D, H, W) (a 4-D NIfTI: (C, D, H, W)); Hounsfield units for CT unless a
    window was applied, in which case values lie in [0, 1].
    spacing: millimetres per pixel along each spatial axis of `array`, in the same order.
    source: the file (or series folder) it came from.
    modality: "CT", "MR", ... from the DICOM header; "NIfTI" for NIfTI files (which do not record it).
    units: "HU", the DICOM RescaleType, "raw" when no rescale is defined, or "window" once windowed.
    metadata: what else a caller may want (window used, slice positions, orientation codes, ...).
    """

    array: torch.Tensor
    spacing: tuple[float, ...]
    source: Path
    modality: str = ""
    units: str = "raw"
    metadata: dict[str, Any] = field(default_factory=dict)


def apply_window(values: np.ndarray | torch.Tensor, center: float, width: float) -> np.ndarray | torch.Tensor:
    """Map `values` (e.g. HU) linearly to float32 in [0, 1]: `center - width/2` -> 0, `center + width/2` -> 1.

    The centre maps to exactly 0.5. (DICOM's own VOI formula, PS3.3 C.11.2.1.2, shifts by half a unit for
    integer displays; on a float output that shift is irrelevant.) Returns the same kind (numpy or torch).
    """
    if not width > 0:
        raise ConfigError(f"window width must be positive, got {width}")
    low = center - width / 2.0
    if isinstance(values, torch.Tensor):
        return ((values.to(torch.float32) - low) / width).clamp_(0.0, 1.0)
    return np.clip((np.asarray(values, dtype=np.float32) - np.float32(low)) / np.float32(width), 0.0, 1.0).astype(
        np.float32
    )


def read_dicom(path: str | os.PathLike, window: str | tuple[float, float] | None = None) -> MedicalImage:
    """One DICOM file -> `MedicalImage`.

    `window`: None (physical units), a `WINDOWS` name, "file" (the file's WindowCenter/WindowWidth), "auto" (the
    file's window when it has one, else its own minimum..maximum), or (center, width).
    """
    path = Path(path)
    ds = _dcmread(path)
    hu = _pixels(ds, path)
    image = MedicalImage(
        array=torch.from_numpy(hu),
        spacing=_pixel_spacing(ds) if hu.ndim == 2 else (_slice_thickness(ds), *_pixel_spacing(ds)),
        source=path,
        modality=str(ds.get("Modality", "")),
        units=_units(ds),
        metadata={"photometric": str(ds.get("PhotometricInterpretation", ""))},
    )
    return _windowed(image, window, ds, path)


def read_dicom_series(folder: str | os.PathLike, window: str | tuple[float, float] | None = None) -> MedicalImage:
    """Every DICOM slice of the one series in `folder` (not recursive) -> (D, H, W), sorted by position.

    Files that are not DICOM (a README) and DICOM files without pixel data (a DICOMDIR) are skipped; more than
    one SeriesInstanceUID, slices of different sizes, or two slices at one position are errors.
    `metadata["positions"]` holds each slice's position along the normal (mm), `metadata["sorted_by"]` the key.
    """
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder (expected a folder of DICOM slices)")
    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            ds = _dcmread(path, reraise=True)
        except InvalidDicomError:
            continue
        if any(k in ds for k in _PIXEL_KEYWORDS):
            slices.append((path, ds))
    if not slices:
        raise DataError(f"{folder}: no DICOM slices with pixel data found")
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) > 1:
        raise DataError(f"{folder}: holds {len(series)} series (SeriesInstanceUID); expected one series per folder")

    first_path, first = slices[0]
    shape = (int(first.Rows), int(first.Columns))
    for path, ds in slices[1:]:
        if (int(ds.Rows), int(ds.Columns)) != shape:
            raise DataError(
                f"{path}: slice is {ds.Rows}x{ds.Columns}, expected {shape[0]}x{shape[1]} like {first_path.name}"
                " (all slices of a series must have one size)"
            )

    positions, sorted_by = _slice_positions([ds for _, ds in slices])
    if positions is not None:
        order = np.argsort(positions, kind="stable")
    else:
        order = np.arange(len(slices))
    slices = [slices[i] for i in order]
    if positions is not None:
        positions = positions[order]
        gaps = np.diff(positions)
        if len(gaps) and np.any(np.abs(gaps) < 1e-4):
            i = int(np.argmin(np.abs(gaps)))
            raise DataError(f"{slices[i + 1][0]}: at the same position as {slices[i][0].name}; expected one slice each")
        slice_spacing = float(np.median(gaps)) if len(gaps) else _slice_thickness(first)
    else:
        slice_spacing = _slice_thickness(first)

    volume = np.stack([_pixels(ds, path) for path, ds in slices])
    image = MedicalImage(
        array=torch.from_numpy(volume),
        spacing=(slice_spacing, *_pixel_spacing(first)),
        source=folder,
        modality=str(first.get("Modality", "")),
        units=_units(first),
        metadata={
            "files": [str(p) for p, _ in slices],
            "positions": [float(x) for x in positions] if positions is not None else None,
            "sorted_by": sorted_by,
            "photometric": str(first.get("PhotometricInterpretation", "")),
        },
    )
    return _windowed(image, window, first, folder)


def read_nifti(path: str | os.PathLike) -> MedicalImage:
    """A `.nii`/`.nii.gz` -> `MedicalImage` in canonical RAS+ orientation, axes (S, A, R) = (D, H, W).

    A 4-D volume (x, y, z, t) becomes (C, D, H, W) with one channel per volume; more dimensions are an error.
    The header's scl_slope/scl_inter are applied; `spacing` holds the spatial zooms (mm) in array order.
    """
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a .nii or .nii.gz NIfTI image)")
    try:
        img = nib.load(str(path))
        if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
            raise DataError(f"{path}: a {type(img).__name__}, expected a NIfTI-1/2 image (.nii, .nii.gz)")
        img = nib.as_closest_canonical(img)
        data = np.asarray(img.get_fdata(dtype=np.float32), dtype=np.float32)
    except DataError:
        raise
    except (ImageFileError, OSError, EOFError, ValueError, zlib.error) as e:
        raise DataError(f"{path}: not a readable NIfTI image ({_first_line(e)})") from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (3, 4):
        raise DataError(
            f"{path}: {data.ndim}-D image of shape {data.shape}; expected 3-D (x, y, z) or 4-D (x, y, z, c)"
        )
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    # (i, j, k[, c]) -> ([c,] k, j, i): D = superior, H = anterior, W = right.
    array = np.ascontiguousarray(data.transpose(2, 1, 0) if data.ndim == 3 else data.transpose(3, 2, 1, 0))
    return MedicalImage(
        array=torch.from_numpy(array),
        spacing=zooms[::-1],
        source=path,
        modality="NIfTI",
        units="raw",
        metadata={"axes": "SAR", "affine": img.affine.tolist(), "channels": data.shape[3] if data.ndim == 4 else 0},
    )


def _dcmread(path: Path, reraise: bool = False) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    if not path.is_file():
        raise DataError(f"{path}: no such file (expected a DICOM file)")
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        if reraise:
            raise
        raise DataError(f"{path}: not a DICOM file (no DICM preamble or file meta header)") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable DICOM file ({_first_line(e)})") from None


def _pixels(ds: Any, path: Path) -> np.ndarray:
    """The stored pixels through the modality LUT, as float32 (HU for CT)."""
    from pydicom.pixels import apply_modality_lut

    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise DataError(f"{path}: DICOM file has no pixel data (expected an image, e.g. a CT or MR slice)")
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise DataError(
            f"{path}: {ds.get('PhotometricInterpretation', 'colour')} image; expected greyscale (MONOCHROME1/2)"
        )
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        raw = ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as e:
        if syntax is not None and syntax.is_compressed:
            raise DataError(
                f"{path}: compressed pixel data ({syntax.name}) and no installed decoder can read it; expected an"
                " uncompressed transfer syntax, or install a decoder (pylibjpeg, pylibjpeg-libjpeg/-openjpeg, gdcm)"
            ) from None
        raise DataError(f"{path}: unreadable pixel data ({_first_line(e)})") from None
    return np.ascontiguousarray(apply_modality_lut(raw, ds), dtype=np.float32)


def _units(ds: Any) -> str:
    if "RescaleSlope" not in ds and "ModalityLUTSequence" not in ds:
        return "raw"
    if "RescaleType" in ds:
        return str(ds.RescaleType)
    return "HU" if ds.get("Modality") == "CT" else "rescaled"


def _pixel_spacing(ds: Any) -> tuple[float, float]:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        if value is not None and len(value) == 2:
            return float(value[0]), float(value[1])
    return 1.0, 1.0


def _slice_thickness(ds: Any) -> float:
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = ds.get(keyword)
        if value not in (None, ""):
            return float(value)
    return 1.0


def _slice_positions(datasets: list[Any]) -> tuple[np.ndarray | None, str]:
    """Each slice's position along the normal (mm), or its InstanceNumber; None when neither exists for all."""
    if all("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets):
        orientation = np.asarray([float(v) for v in datasets[0].ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:])
        if np.linalg.norm(normal) > 1e-6:
            positions = [float(np.dot([float(v) for v in ds.ImagePositionPatient], normal)) for ds in datasets]
            return np.asarray(positions), "ImagePositionPatient"
    if all(ds.get("InstanceNumber") not in (None, "") for ds in datasets):
        return np.asarray([float(ds.InstanceNumber) for ds in datasets]), "InstanceNumber"
    return None, "file name"


def _windowed(image: MedicalImage, window: str | tuple[float, float] | None, ds: Any, where: Path) -> MedicalImage:
    if window is None:
        return image
    if isinstance(window, str):
        if window == "auto":
            center, width = _file_window(ds) or min_max_window(image.array)
        elif window == "file":
            center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
            if center in (None, "") or width in (None, ""):
                raise DataError(f"{where}: window='file' but the file has no WindowCenter/WindowWidth")
            center, width = _first(center), _first(width)
        elif window in WINDOWS:
            center, width = WINDOWS[window]
        else:
            names = ", ".join([*WINDOWS, "file"])
            raise ConfigError(f"window: unknown window {window!r}; choose one of {names}, or give (center, width)")
    else:
        center, width = (float(v) for v in window)
    array = apply_window(image.array, center, width)
    if image.metadata.get("photometric") == "MONOCHROME1":  # high values display dark: invert for display
        array = 1.0 - array
    image.array = array
    image.units = "window"
    image.metadata["window"] = (center, width)
    return image


def _file_window(ds: Any) -> tuple[float, float] | None:
    """The file's own (first) WindowCenter/WindowWidth, when it has a usable one."""
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center in (None, "") or width in (None, ""):
        return None
    center, width = _first(center), _first(width)
    return (center, width) if width > 0 else None


def min_max_window(values: torch.Tensor) -> tuple[float, float]:
    """(center, width) mapping the smallest value to 0 and the largest to 1 (a constant image: width 1)."""
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2.0, (high - low) if high > low else 1.0


def _first(value: Any) -> float:
    """WindowCenter/WindowWidth may hold several values (MultiValue); the first is the default."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
