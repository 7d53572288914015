"""CSV manifests (and class folders) pointing at DICOM files, DICOM series folders and NIfTI images.

Files come from pydicom's and nibabel's own test data, or are written here with known Hounsfield units so that
windowing is checked on numbers.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

from pydicom.data import get_testdata_file, get_testdata_files  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from cnnlab.data import load_dataset  # noqa: E402
from cnnlab.data.medical import is_medical_path, parse_window  # noqa: E402
from cnnlab.errors import ConfigError, DataError  # noqa: E402
from tests.data.conftest import write_image  # noqa: E402

LUNG_LOW, LUNG_WIDTH = -600 - 1500 / 2, 1500  # the lung preset, W1500 L-600: -1350 HU -> 0, 150 HU -> 1


def shipped(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not shipped with this pydicom")
    return path


def nib_data(name: str) -> str:
    from nibabel.testing import data_path

    path = os.path.join(data_path, name)
    if not os.path.exists(path):
        pytest.skip(f"nibabel test file {name} not found")
    return path


def write_ct(path: Path, hu: np.ndarray, z: float = 0.0, series: str | None = None, **extra) -> Path:
    """A CT slice storing `hu` as signed 16-bit raw values (HU + 1024) with intercept -1024, slope 1."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.SeriesInstanceUID = series or generate_uid()
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelSpacing = [0.7, 0.7]
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_series(folder: Path, volume: np.ndarray, shuffle: bool = True) -> Path:
    """One CT slice per depth index, written in a shuffled file order (the reader must sort by position)."""
    series = generate_uid()
    order = np.random.default_rng(0).permutation(len(volume)) if shuffle else range(len(volume))
    for i, depth in enumerate(order):
        write_ct(folder / f"slice{i:02d}.dcm", volume[depth], z=2.5 * depth, series=series)
    return folder


def write_nifti(path: Path, volume_ijk: np.ndarray, cal: tuple[float, float] | None = None) -> Path:
    image = nib.Nifti1Image(volume_ijk.astype(np.float32), np.eye(4))
    if cal is not None:
        image.header["cal_min"], image.header["cal_max"] = cal
    nib.save(image, str(path))
    return path


def manifest(folder: Path, rows: list[str], header: str = "path,label") -> Path:
    path = folder / "m.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def lung(hu: float) -> float:
    return min(1.0, max(0.0, (hu - LUNG_LOW) / LUNG_WIDTH))


# ---------------------------------------------------------------- DICOM files


def test_dicom_rows_windowed_with_the_lung_preset_on_numbers(tmp_path):
    hu = np.array([[-1000, -600, 0, 40], [150, 400, -1350, -2000]], np.int16)
    write_ct(tmp_path / "a.dcm", hu)
    write_ct(tmp_path / "b.dcm", -hu)
    splits = load_dataset(manifest(tmp_path, ["a.dcm,normal", "b.dcm,nodule"]), val_split=0, window="lung")
    images = splits.train.images
    assert images.dtype == torch.float32 and images.shape == (2, 1, 2, 4)
    assert images[0, 0, 0, 1].item() == pytest.approx(0.5)  # -600 HU is the lung window's centre
    assert images[0, 0, 0, 0].item() == pytest.approx(350 / 1500)  # air-filled lung, -1000 HU
    assert images[0, 0].flatten().tolist() == pytest.approx([lung(v) for v in hu.flatten()])
    assert images[1, 0].flatten().tolist() == pytest.approx([lung(v) for v in (-hu).flatten()])
    assert splits.classes == ["nodule", "normal"] and splits.train.labels.tolist() == [1, 0]
    assert splits.train.paths == [str(tmp_path / "a.dcm"), str(tmp_path / "b.dcm")]


def test_window_center_width_and_file_window(tmp_path):
    hu = np.array([[-160, 40, 240, 1000]], np.int16)
    write_ct(tmp_path / "a.dcm", hu, WindowCenter=40, WindowWidth=400)
    path = manifest(tmp_path, ["a.dcm,x"])
    by_numbers = load_dataset(path, val_split=0, window="40,400").train.images.flatten().tolist()
    assert by_numbers == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert load_dataset(path, val_split=0, window="file").train.images.flatten().tolist() == by_numbers
    assert load_dataset(path, val_split=0).train.images.flatten().tolist() == by_numbers  # default: file's own


def test_ct_small_and_mr_small_rows(tmp_path):
    shutil.copy(shipped("CT_small.dcm"), tmp_path / "ct.dcm")
    shutil.copy(shipped("MR_small.dcm"), tmp_path / "mr.dcm")
    path = manifest(tmp_path, ["ct.dcm,ct", "mr.dcm,mr"])
    with pytest.raises(DataError, match=r"mr.dcm: is 64x64 \(HxW\) but .*ct.dcm is 128x128 \(HxW\).*--resize H,W"):
        load_dataset(path)
    splits = load_dataset(path, val_split=0, resize=64)
    assert splits.train.images.shape == (2, 1, 64, 64) and splits.train.images.dtype == torch.float32
    ds = pydicom.dcmread(tmp_path / "ct.dcm")
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    # no window in the file: min-max of its HU, so the brightest pixel is 1 and the darkest 0 (before resize)
    alone = load_dataset(manifest(tmp_path, ["ct.dcm,ct"]), val_split=0).train.images[0, 0].double().numpy()
    assert np.allclose(alone, (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)
    mr = pydicom.dcmread(tmp_path / "mr.dcm")
    center, width = float(mr.WindowCenter), float(mr.WindowWidth)  # MR_small has its own window
    alone = load_dataset(manifest(tmp_path, ["mr.dcm,mr"]), val_split=0).train.images[0, 0].double().numpy()
    assert np.allclose(alone, np.clip((mr.pixel_array - (center - width / 2)) / width, 0, 1), atol=1e-6)


def test_manifest_splits_and_a_test_manifest(tmp_path):
    for i in range(4):
        write_ct(tmp_path / f"{i}.dcm", np.full((3, 3), -1000 + 100 * i, np.int16))
    rows = ["0.dcm,a,train", "1.dcm,b,train", "2.dcm,a,val", "3.dcm,b,test"]
    splits = load_dataset(manifest(tmp_path, rows, "path,label,split"), window="lung")
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [2, 1, 1]
    assert splits.test.images.flatten().tolist() == pytest.approx([lung(-700)] * 9)


# ---------------------------------------------------------------- series folders and NIfTI


def test_series_folder_rows_are_volumes_sorted_by_position(tmp_path):
    volume = np.arange(4 * 2 * 3, dtype=np.int16).reshape(4, 2, 3) * 50 - 1000
    write_series(tmp_path / "p1", volume)
    write_series(tmp_path / "p2", volume[::-1])
    splits = load_dataset(manifest(tmp_path, ["p1,a", "p2,b"]), val_split=0, window="lung")
    images = splits.train.images
    assert images.shape == (2, 1, 4, 2, 3) and images.dtype == torch.float32 and splits.image_size == (4, 2, 3)
    expected = torch.tensor([[lung(v) for v in depth.flatten()] for depth in volume], dtype=torch.float32)
    expected = expected.reshape(4, 2, 3)
    assert torch.allclose(images[0, 0], expected) and torch.allclose(images[1, 0], expected.flip(0))


def test_pydicom_ct5_series_and_cube_resize(tmp_path):
    files = get_testdata_files("**/CT5N/*")
    if len(files) != 5:
        pytest.skip("pydicom's 5-slice CT series not found")
    shutil.copytree(os.path.dirname(files[0]), tmp_path / "ct5")
    write_series(tmp_path / "mine", np.zeros((3, 8, 8), np.int16))
    path = manifest(tmp_path, ["ct5,a", "mine,b"])
    with pytest.raises(DataError, match=r"mine: is 3x8x8 \(DxHxW\) but .*ct5 is 5x16x16 \(DxHxW\).*--resize D,H,W"):
        load_dataset(path)
    splits = load_dataset(path, val_split=0, resize=8, window="soft_tissue")
    assert splits.train.images.shape == (2, 1, 8, 8, 8)
    assert 0 <= float(splits.train.images.min()) and float(splits.train.images.max()) <= 1
    with pytest.raises(ConfigError, match=r"resize: .*m.csv holds 3-D volumes; expected D,H,W"):
        load_dataset(path, resize=(8, 8))


def test_nifti_rows_nii_and_nii_gz(tmp_path):
    ijk = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5) * 10 - 1000  # (x, y, z) = (i, j, k)
    write_nifti(tmp_path / "a.nii", ijk)
    write_nifti(tmp_path / "b.nii.gz", ijk * 0 + 40)
    splits = load_dataset(manifest(tmp_path, ["a.nii,x", "b.nii.gz,y"]), val_split=0, window="lung")
    images = splits.train.images
    assert images.shape == (2, 1, 5, 4, 3) and images.dtype == torch.float32  # axes (S, A, R) = (k, j, i)
    expected = torch.tensor(np.vectorize(lung)(ijk.transpose(2, 1, 0)), dtype=torch.float32)
    assert torch.allclose(images[0, 0], expected)
    assert images[1].unique().tolist() == pytest.approx([lung(40)])
    # without a window: min-max per image (a constant image maps to 0)
    default = load_dataset(manifest(tmp_path, ["a.nii,x"]), val_split=0).train.images
    assert float(default.min()) == 0 and float(default.max()) == 1


def test_nifti_display_range_is_its_file_window(tmp_path):
    write_nifti(tmp_path / "a.nii", np.array([0.0, 50.0, 100.0, 200.0]).reshape(4, 1, 1), cal=(0, 100))
    path = manifest(tmp_path, ["a.nii,x"])
    for window in (None, "file"):
        values = load_dataset(path, val_split=0, window=window).train.images.flatten().tolist()
        assert values == pytest.approx([0.0, 0.5, 1.0, 1.0])
    write_nifti(tmp_path / "a.nii", np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match=r"a.nii: window='file' but the NIfTI header sets no display range"):
        load_dataset(path, window="file")


def test_nibabel_anatomical_and_4d_example(tmp_path):
    shutil.copy(nib_data("anatomical.nii"), tmp_path / "anat.nii")
    (tmp_path / "anat2.nii.gz").write_bytes(gzip.compress((tmp_path / "anat.nii").read_bytes()))
    splits = load_dataset(manifest(tmp_path, ["anat.nii,a", "anat2.nii.gz,b"]), val_split=0)
    assert splits.train.images.shape == (2, 1, 25, 41, 33)
    assert torch.equal(splits.train.images[0], splits.train.images[1])
    shutil.copy(nib_data("example4d.nii.gz"), tmp_path / "four.nii.gz")
    four = load_dataset(manifest(tmp_path, ["four.nii.gz,a"]), val_split=0).train.images
    assert four.shape == (1, 2, 24, 96, 128)  # the time axis becomes two channels
    with pytest.raises(DataError, match=r"four.nii.gz: a volume with 2 channel\(s\).*anat.nii is a volume with 1"):
        load_dataset(manifest(tmp_path, ["anat.nii,a", "four.nii.gz,b"]), resize=8)


# ---------------------------------------------------------------- class folders


def test_class_folders_of_dicom_files_and_series(tmp_path):
    write_ct(tmp_path / "set" / "normal" / "1.dcm", np.full((4, 4), -1000, np.int16))
    write_ct(tmp_path / "set" / "normal" / "2.dcm", np.full((4, 4), -600, np.int16))
    write_ct(tmp_path / "set" / "nodule" / "1.dcm", np.full((4, 4), 40, np.int16))
    splits = load_dataset(tmp_path / "set", val_split=0, window="lung")
    assert splits.format == "folder" and splits.train.images.shape == (3, 1, 4, 4)
    assert splits.train.images[:, 0, 0, 0].tolist() == pytest.approx([lung(40), lung(-1000), 0.5])
    write_series(tmp_path / "vol" / "a" / "patient1", np.zeros((2, 4, 4), np.int16))
    write_series(tmp_path / "vol" / "b" / "patient2", np.zeros((2, 4, 4), np.int16))
    assert load_dataset(tmp_path / "vol", val_split=0).train.images.shape == (2, 1, 2, 4, 4)


# ---------------------------------------------------------------- mixtures and bad files


def test_mixed_kinds_are_errors(tmp_path):
    write_ct(tmp_path / "a.dcm", np.zeros((4, 4), np.int16))
    write_series(tmp_path / "vol", np.zeros((2, 4, 4), np.int16))
    write_image(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"vol: a volume with 1 channel\(s\), 2x4x4 \(DxHxW\), but .*a.dcm is an image"):
        load_dataset(manifest(tmp_path, ["a.dcm,x", "vol,y"]), resize=4)
    with pytest.raises(DataError, match=r"m.csv: mixes image files \(.*b.png\) with DICOM/NIfTI \(.*a.dcm\)"):
        load_dataset(manifest(tmp_path, ["a.dcm,x", "b.png,y"]))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("patient: nobody\n"), r"scan.dcm: not a DICOM file"),
        (lambda p: _without_pixels(p), r"scan.dcm: DICOM file has no pixel data"),
        (lambda p: p.write_bytes(b""), r"scan.dcm: "),
    ],
)
def test_bad_dicom_rows_name_the_file(tmp_path, make, message):
    make(tmp_path / "scan.dcm")
    with pytest.raises(DataError, match=message):
        load_dataset(manifest(tmp_path, ["scan.dcm,x"]))


def _without_pixels(path: Path) -> None:
    write_ct(path, np.zeros((2, 2), np.int16))
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)


def test_compressed_dicom_without_a_decoder_names_the_file(tmp_path):
    source = shipped("MR_small_jpeg_ls_lossless.dcm")
    try:
        _ = pydicom.dcmread(source).pixel_array
    except Exception:
        pass
    else:
        pytest.skip("a JPEG-LS decoder is installed, so this file decodes")
    shutil.copy(source, tmp_path / "jls.dcm")
    with pytest.raises(DataError, match=r"jls.dcm: compressed pixel data \(JPEG-LS.*no installed decoder"):
        load_dataset(manifest(tmp_path, ["jls.dcm,x"]))


def test_series_with_slices_of_two_sizes_names_the_slice(tmp_path):
    write_series(tmp_path / "vol", np.zeros((3, 4, 4), np.int16), shuffle=False)
    write_ct(
        tmp_path / "vol" / "slice01.dcm",
        np.zeros((2, 2), np.int16),
        series=pydicom.dcmread(tmp_path / "vol" / "slice00.dcm").SeriesInstanceUID,
    )
    with pytest.raises(DataError, match=r"slice01.dcm: slice is 2x2, expected 4x4"):
        load_dataset(manifest(tmp_path, ["vol,x"]))


def test_corrupt_nifti_names_the_file(tmp_path):
    (tmp_path / "brain.nii").write_text("hello\n")
    with pytest.raises(DataError, match=r"brain.nii: not a readable NIfTI image"):
        load_dataset(manifest(tmp_path, ["brain.nii,x"]))
    data = Path(nib_data("example4d.nii.gz")).read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.nii.gz: not a readable NIfTI image"):
        load_dataset(manifest(tmp_path, ["cut.nii.gz,x"]))


def test_a_folder_row_without_dicom_is_still_an_error(tmp_path):
    (tmp_path / "img").mkdir()
    write_image(tmp_path / "img" / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"line 2: image file .*img is a folder, not an image file \(nor a DICOM"):
        load_dataset(manifest(tmp_path, ["img,x"]))
    assert not is_medical_path(str(tmp_path / "img"))


def test_a_single_dicom_file_as_data_says_to_use_a_manifest(tmp_path):
    write_ct(tmp_path / "a.dcm", np.zeros((2, 2), np.int16))
    with pytest.raises(DataError, match=r"a.dcm: one DICOM/NIfTI image, not a data set; list such files"):
        load_dataset(tmp_path / "a.dcm")


def test_window_values_are_checked_before_reading():
    assert parse_window("lung") == "lung" and parse_window("-600,1500") == (-600.0, 1500.0)
    assert parse_window(None) is None and parse_window("file") == "file"
    with pytest.raises(ConfigError, match=r"window: unknown window 'lungs'; expected one of lung, "):
        parse_window("lungs")
    with pytest.raises(ConfigError, match=r"window: width must be positive, got 0"):
        parse_window("40,0")
