"""Bad-input cases for medical data: DICOM/NIfTI files in a CSV manifest, and MedMNIST .npz in 3-D and multi-label.

Each file is written when the case runs (pydicom and nibabel are imported then, not at collection), and each
command fails while loading with one line naming the file: not DICOM, no pixel data, compressed without a
decoder, a series of two slice sizes or two series, a corrupt NIfTI, items of different sizes or kinds, a
resize of the wrong rank, multi-label values other than 0/1.
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tests.badinput.cases import Case
from tests.badinput.cases_data import _train, npz_set, png

Setup = Callable[[Path], None]
CSV = "{tmp}/m.csv"


def _write_ct(path: Path, hu: np.ndarray, series: str | None = None, z: float = 0.0) -> None:
    from tests.data.test_manifest_medical import write_ct

    write_ct(path, hu, z=z, series=series)


def with_manifest(*rows: str, **made: Callable[[Path], None]) -> Setup:
    """m.csv listing `rows` (path,label), after each `made` writer (name -> writer of {tmp}/name) has run."""

    def setup(tmp: Path) -> None:
        for name, make in made.items():
            make(tmp / name.replace("__", "/"))
        (tmp / "m.csv").write_text("path,label\n" + "\n".join(rows) + "\n")

    return setup


def ct(shape: tuple[int, ...] = (4, 4)) -> Callable[[Path], None]:
    return lambda path: _write_ct(path, np.zeros(shape, np.int16))


def series(depth: int = 3, size: int = 4, odd_slice: int | None = None, second_series: bool = False) -> Setup:
    """A folder of CT slices; `odd_slice` is written 2x2, `second_series` adds a slice of another series."""

    def make(folder: Path) -> None:
        from pydicom.uid import generate_uid

        uid = generate_uid()
        for i in range(depth):
            shape = (2, 2) if i == odd_slice else (size, size)
            _write_ct(folder / f"s{i}.dcm", np.zeros(shape, np.int16), series=uid, z=2.0 * i)
        if second_series:
            _write_ct(folder / "other.dcm", np.zeros((size, size), np.int16), z=99.0)

    return make


def text(content: str) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        path.write_text(content)

    return make


def no_pixels(path: Path) -> None:
    import pydicom

    _write_ct(path, np.zeros((2, 2), np.int16))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)


def nifti(shape: tuple[int, ...]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        import nibabel as nib

        nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(path))

    return make


def truncated_nifti(path: Path) -> None:
    nifti((8, 8, 8))(path.with_name("whole.nii"))
    data = gzip.compress(path.with_name("whole.nii").read_bytes())
    path.write_bytes(data[: len(data) // 2])


def _jpeg_ls_without_decoder() -> str | None:
    """pydicom's JPEG-LS test file when no installed decoder reads it (else None: the case is left out)."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        return None
    path = get_testdata_file("MR_small_jpeg_ls_lossless.dcm", download=False)
    if path is None:
        return None
    try:
        _ = pydicom.dcmread(path).pixel_array
    except Exception:
        return path
    return None


def copy_of(source: str) -> Callable[[Path], None]:
    return lambda path: shutil.copy(source, path)


MANIFEST_CASES = [
    Case(
        "medical/dcm row that is a text file",
        _train(CSV),
        "scan.dcm: not a DICOM file",
        setup=with_manifest("scan.dcm,a", **{"scan.dcm": text("patient: nobody\n")}),
    ),
    Case(
        "medical/dcm row without pixel data",
        _train(CSV),
        "scan.dcm: DICOM file has no pixel data",
        setup=with_manifest("scan.dcm,a", **{"scan.dcm": no_pixels}),
    ),
    Case(
        "medical/dcm row that is empty",
        _train(CSV),
        "scan.dcm: not a DICOM file",
        setup=with_manifest("scan.dcm,a", **{"scan.dcm": text("")}),
    ),
    Case(
        "medical/series with a slice of another size",
        _train(CSV),
        "s1.dcm: slice is 2x2, expected 4x4",
        setup=with_manifest("vol,a", vol=series(odd_slice=1)),
    ),
    Case(
        "medical/series folder holding two series",
        _train(CSV),
        "vol: holds 2 series (SeriesInstanceUID); expected one series per folder",
        setup=with_manifest("vol,a", vol=series(second_series=True)),
    ),
    Case(
        "medical/nii row that is a text file",
        _train(CSV),
        "brain.nii: not a readable NIfTI image",
        setup=with_manifest("brain.nii,a", **{"brain.nii": text("hello\n")}),
    ),
    Case(
        "medical/nii.gz row truncated",
        _train(CSV),
        "cut.nii.gz: not a readable NIfTI image",
        setup=with_manifest("cut.nii.gz,a", **{"cut.nii.gz": truncated_nifti}),
    ),
    Case(
        "medical/5-D nii row",
        _train(CSV),
        "five.nii: 5-D image of shape (2, 2, 2, 2, 2); expected 3-D (x, y, z) or 4-D",
        setup=with_manifest("five.nii,a", **{"five.nii": nifti((2, 2, 2, 2, 2))}),
    ),
    Case(
        "medical/dcm rows of two sizes without resize",
        _train(CSV),
        "b.dcm: is 8x8 (HxW) but",
        setup=with_manifest("a.dcm,x", "b.dcm,y", **{"a.dcm": ct((4, 4)), "b.dcm": ct((8, 8))}),
    ),
    Case(
        "medical/volumes of two sizes without resize",
        _train(CSV),
        "pass --resize D,H,W (resize=(D, H, W)) to resize them all",
        setup=with_manifest("a.nii,x", "b.nii,y", **{"a.nii": nifti((4, 4, 4)), "b.nii": nifti((4, 4, 5))}),
    ),
    Case(
        "medical/volumes with a two-number resize",
        _train(CSV, "--resize", "8,8"),
        "m.csv holds 3-D volumes; expected D,H,W (or one number for a cube), got 8,8",
        setup=with_manifest("a.nii,x", "b.nii,y", **{"a.nii": nifti((4, 4, 4)), "b.nii": nifti((4, 4, 4))}),
    ),
    Case(
        "medical/an image and a volume in one manifest",
        _train(CSV, "--resize", "4"),
        "one data set holds one kind of item (all 2-D images or all volumes)",
        setup=with_manifest("a.dcm,x", "vol,y", **{"a.dcm": ct(), "vol": series()}),
    ),
    Case(
        "medical/png and dcm rows in one manifest",
        _train(CSV),
        "mixes image files",
        setup=with_manifest("a.dcm,x", "b.png,y", **{"a.dcm": ct(), "b.png": lambda p: p.write_bytes(png((4, 4)))}),
    ),
    Case(
        "medical/a single dcm file as the data",
        _train("{tmp}/a.dcm"),
        "a.dcm: one DICOM/NIfTI image, not a data set",
        setup=lambda tmp: ct()(tmp / "a.dcm"),
    ),
]

_JPEG_LS = _jpeg_ls_without_decoder()
if _JPEG_LS is not None:
    MANIFEST_CASES.append(
        Case(
            "medical/compressed dcm without a decoder",
            _train(CSV),
            "jls.dcm: compressed pixel data (JPEG-LS",
            setup=with_manifest("jls.dcm,a", **{"jls.dcm": copy_of(_JPEG_LS)}),
        )
    )


NPZ = "{tmp}/set.npz"


def _multi_hot_with(value: float, item: int, label: int, rows: int = 8, columns: int = 5) -> np.ndarray:
    labels = np.zeros((rows, columns))
    labels[item, label] = value
    return labels


NPZ_CASES = [
    Case(
        "medical/npz multi-label value 3",
        _train(NPZ),
        "[train_labels]: labels (8, 5) hold value 3 at item 7 (label 2); a multi-label array holds 0 or 1",
        setup=npz_set(np.zeros((8, 4, 4), np.uint8), _multi_hot_with(3, 7, 2)),
    ),
    Case(
        "medical/npz multi-label fraction",
        _train(NPZ),
        "hold value 0.5 at item 1 (label 0)",
        setup=npz_set(np.zeros((8, 4, 4), np.uint8), _multi_hot_with(0.5, 1, 0)),
    ),
    Case(
        "medical/npz multi-label classes of another count",
        _train(NPZ),
        "[classes]: names 2 classes but the labels have 3 columns",
        setup=npz_set(np.zeros((3, 4, 4), np.uint8), np.eye(3), classes=np.array(["a", "b"])),
    ),
    Case(
        "medical/npz multi-label train, single-label test",
        _train(NPZ),
        "[test_labels]: labels have shape (3,) but",
        setup=npz_set(
            np.zeros((3, 4, 4), np.uint8), np.eye(3), test_images=np.zeros((3, 4, 4)), test_labels=np.arange(3)
        ),
    ),
    Case(
        "medical/npz volumes of 4 channels",
        _train(NPZ),
        "[train_images]: images have shape (3, 5, 6, 7, 4); expected images",
        setup=npz_set(np.zeros((3, 5, 6, 7, 4), np.uint8)),
    ),
    Case(
        "medical/npz volumes with a two-number resize",
        _train(NPZ, "--resize", "8,8"),
        "set.npz holds 3-D volumes; expected D,H,W",
        setup=npz_set(np.zeros((3, 6, 6, 6), np.uint8)),
    ),
    Case(
        "medical/npz images with a three-number resize",
        _train(NPZ, "--resize", "8,8,8"),
        "set.npz holds 2-D images; expected H,W (or one number for a square), got 8,8,8",
        setup=npz_set(np.zeros((3, 6, 6), np.uint8)),
    ),
    Case(
        "medical/npz train volumes, test images",
        _train(NPZ),
        "set.npz: test images are (3, 1, 6, 6) but train images are (3, 1, 6, 6, 6)",
        setup=npz_set(np.zeros((3, 6, 6, 6), np.uint8), test_images=np.zeros((3, 6, 6)), test_labels=np.arange(3)),
    ),
    Case(
        "medical/npz pixels beyond 32-bit integers",
        _train(NPZ),
        "set.npz: pixel values span 0..10000000000000; expected values that fit 32-bit integers",
        setup=npz_set(np.array([0, 10**13, 1], np.int64)[:, None, None] * np.ones((3, 4, 4), np.int64)),
    ),
]

CASES = MANIFEST_CASES + NPZ_CASES
