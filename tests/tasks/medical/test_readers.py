"""DICOM and NIfTI readers on the files shipped inside pydicom and nibabel, plus each bad-file case."""

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

from cnnlab.errors import ConfigError, DataError  # noqa: E402
from cnnlab.tasks.medical.readers import (  # noqa: E402
    WINDOWS,
    MedicalImage,
    apply_window,
    read_dicom,
    read_dicom_series,
    read_nifti,
)


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not shipped with this pydicom")
    return path


@pytest.fixture
def ct5_folder() -> str:
    files = get_testdata_files("**/CT5N/*")
    if len(files) != 5:
        pytest.skip("pydicom's 5-slice CT series (dicomdirtests/98892001/CT5N) not found")
    return os.path.dirname(files[0])


def _nib_data(name: str) -> str:
    from nibabel.testing import data_path

    path = os.path.join(data_path, name)
    if not os.path.exists(path):
        pytest.skip(f"nibabel test file {name} not found")
    return path


# --- DICOM: single files -------------------------------------------------------------------------------------


def test_ct_hounsfield_units_are_raw_times_slope_plus_intercept():
    path = _testdata("CT_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path)
    assert isinstance(image, MedicalImage)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert image.array.dtype == torch.float32
    assert image.array.shape == (ds.Rows, ds.Columns)
    np.testing.assert_array_equal(image.array.numpy(), expected.astype(np.float32))
    assert image.units == "HU" and image.modality == "CT"
    assert image.spacing == pytest.approx((float(ds.PixelSpacing[0]), float(ds.PixelSpacing[1])))
    # the full range is kept: CT_small's intercept is -1024, so raw values near 0 become negative HU, nothing clipped
    assert image.array.min().item() == pytest.approx(ds.pixel_array.min() * float(ds.RescaleSlope) - 1024)
    assert image.array.max().item() == pytest.approx(float(ds.pixel_array.max()) * float(ds.RescaleSlope) - 1024)


def test_mr_without_rescale_keeps_raw_values_and_uses_its_own_window():
    path = _testdata("MR_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path)
    np.testing.assert_array_equal(image.array.numpy(), ds.pixel_array.astype(np.float32))
    assert image.units == "raw" and image.modality == "MR"
    windowed = read_dicom(path, window="file")
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    assert windowed.metadata["window"] == (center, width)
    np.testing.assert_allclose(
        windowed.array.numpy(), np.clip((ds.pixel_array - (center - width / 2)) / width, 0, 1), atol=1e-6
    )


def test_window_file_takes_the_first_of_several_values(tmp_path):
    ds = pydicom.dcmread(_testdata("MR_small.dcm"))
    ds.WindowCenter = [500, 900]
    ds.WindowWidth = [1000, 200]
    ds.save_as(tmp_path / "multi.dcm")
    assert read_dicom(tmp_path / "multi.dcm", window="file").metadata["window"] == (500.0, 1000.0)


def test_apply_window_on_numbers():
    center, width = WINDOWS["lung"]
    hu = np.array([center, center - width / 2, center + width / 2, -3000, 3000, center + width / 4], dtype=np.float32)
    out = apply_window(hu, center, width)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.5, 0.0, 1.0, 0.0, 1.0, 0.75], atol=1e-6)
    as_tensor = apply_window(torch.from_numpy(hu), center, width)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float32
    np.testing.assert_allclose(as_tensor.numpy(), out)
    with pytest.raises(ConfigError):
        apply_window(hu, 0, 0)


def test_window_presets_are_the_usual_values():
    assert WINDOWS["lung"] == (-600, 1500)
    assert WINDOWS["mediastinum"] == WINDOWS["soft_tissue"] == (40, 400)
    assert WINDOWS["bone"] == (400, 1800)
    assert WINDOWS["brain"] == (40, 80)


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_read_dicom_with_a_preset_window(name):
    path = _testdata("CT_small.dcm")
    hu = read_dicom(path).array
    windowed = read_dicom(path, window=name)
    center, width = WINDOWS[name]
    assert windowed.units == "window" and windowed.metadata["window"] == (center, width)
    assert 0.0 <= windowed.array.min().item() and windowed.array.max().item() <= 1.0
    np.testing.assert_allclose(windowed.array.numpy(), np.clip((hu.numpy() - (center - width / 2)) / width, 0, 1))
    # a pixel below the window is 0, above it 1
    assert torch.all(windowed.array[hu <= center - width / 2] == 0)
    assert torch.all(windowed.array[hu >= center + width / 2] == 1)


def test_unknown_window_and_missing_file_window(tmp_path):
    with pytest.raises(ConfigError, match="unknown window 'liver'"):
        read_dicom(_testdata("CT_small.dcm"), window="liver")
    with pytest.raises(DataError, match="no WindowCenter"):
        read_dicom(_testdata("CT_small.dcm"), window="file")


# --- DICOM: series -------------------------------------------------------------------------------------------


def test_series_sorted_by_position_along_the_normal(ct5_folder):
    image = read_dicom_series(ct5_folder)
    assert image.array.shape == (5, 16, 16) and image.array.dtype == torch.float32
    assert image.metadata["sorted_by"] == "ImagePositionPatient"
    positions = image.metadata["positions"]
    assert positions == sorted(positions) and len(set(positions)) == 5
    # axial slices (normal = +z): the positions are the z of ImagePositionPatient, increasing
    zs = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in image.metadata["files"]]
    assert zs == pytest.approx(positions) and zs == sorted(zs)
    # file-name order is z decreasing here, so the sort did work; each slice is that file's HU
    by_name = sorted(os.listdir(ct5_folder))
    assert [os.path.basename(f) for f in image.metadata["files"]] == by_name[::-1]
    for k, f in enumerate(image.metadata["files"]):
        ds = pydicom.dcmread(f)
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(image.array[k].numpy(), expected.astype(np.float32))
    assert image.spacing == pytest.approx((2.5, 0.488281, 0.488281))
    assert image.units == "HU"


def test_series_window_from_file(ct5_folder):
    image = read_dicom_series(ct5_folder, window="file")
    assert image.metadata["window"] == (40.0, 400.0)
    assert 0.0 <= image.array.min().item() and image.array.max().item() <= 1.0


def test_series_falls_back_to_instance_number(tmp_path, ct5_folder):
    for f in sorted(os.listdir(ct5_folder)):
        ds = pydicom.dcmread(os.path.join(ct5_folder, f))
        del ds.ImagePositionPatient
        ds.save_as(tmp_path / f)
    image = read_dicom_series(tmp_path)
    assert image.metadata["sorted_by"] == "InstanceNumber"
    numbers = [int(pydicom.dcmread(f).InstanceNumber) for f in image.metadata["files"]]
    assert numbers == sorted(numbers)


def test_series_skips_non_dicom_files(tmp_path, ct5_folder):
    for f in os.listdir(ct5_folder):
        shutil.copy(os.path.join(ct5_folder, f), tmp_path / f)
    (tmp_path / "README.txt").write_text("not a slice\n")
    assert read_dicom_series(tmp_path).array.shape == (5, 16, 16)


# --- DICOM: bad files ----------------------------------------------------------------------------------------


def test_text_file_named_dcm_is_not_dicom(tmp_path):
    path = tmp_path / "scan.dcm"
    path.write_text("patient: nobody\n")
    with pytest.raises(DataError, match=r"scan\.dcm: not a DICOM file"):
        read_dicom(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dicom(tmp_path / "absent.dcm")


def test_dicom_without_pixel_data(tmp_path):
    ds = pydicom.dcmread(_testdata("CT_small.dcm"))
    del ds.PixelData
    path = tmp_path / "nopixels.dcm"
    ds.save_as(path)
    with pytest.raises(DataError, match=r"nopixels\.dcm: DICOM file has no pixel data"):
        read_dicom(path)


def test_compressed_without_decoder():
    path = _testdata("MR_small_jpeg_ls_lossless.dcm")
    try:
        _ = pydicom.dcmread(path).pixel_array
    except Exception:
        pass
    else:
        pytest.skip("a JPEG-LS decoder is installed, so this file decodes")
    with pytest.raises(DataError, match=r"MR_small_jpeg_ls_lossless\.dcm: compressed pixel data \(JPEG-LS"):
        read_dicom(path)


def test_series_with_a_slice_of_another_size(tmp_path, ct5_folder):
    for f in os.listdir(ct5_folder):
        shutil.copy(os.path.join(ct5_folder, f), tmp_path / f)
    odd = sorted(os.listdir(tmp_path))[2]
    ds = pydicom.dcmread(tmp_path / odd)
    ds.Rows, ds.Columns = 8, 8
    ds.PixelData = np.zeros((8, 8), dtype=np.int16).tobytes()
    ds.save_as(tmp_path / odd)
    with pytest.raises(DataError, match=rf"{odd}: slice is 8x8, expected 16x16"):
        read_dicom_series(tmp_path)


def test_series_folder_without_slices(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here\n")
    with pytest.raises(DataError, match="no DICOM slices"):
        read_dicom_series(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        read_dicom_series(tmp_path / "notes.txt")


def test_series_mixing_two_series(tmp_path, ct5_folder):
    for f in os.listdir(ct5_folder):
        shutil.copy(os.path.join(ct5_folder, f), tmp_path / f)
    shutil.copy(_testdata("CT_small.dcm"), tmp_path / "other.dcm")
    with pytest.raises(DataError, match="holds 2 series"):
        read_dicom_series(tmp_path)


# --- NIfTI ---------------------------------------------------------------------------------------------------


def test_nifti_canonical_orientation_and_spacing():
    path = _nib_data("anatomical.nii")
    original = nib.load(path)
    assert nib.aff2axcodes(original.affine) == ("L", "A", "S")  # so the reorientation has something to do
    canonical = nib.as_closest_canonical(original)
    image = read_nifti(path)
    assert image.array.dtype == torch.float32
    assert image.metadata["axes"] == "SAR"
    expected = canonical.get_fdata().astype(np.float32).transpose(2, 1, 0)
    np.testing.assert_array_equal(image.array.numpy(), expected)
    # and the flip really happened: the first R index is the last L index of the file's array
    np.testing.assert_array_equal(image.array.numpy()[:, :, 0], original.get_fdata()[-1].T.astype(np.float32))
    assert image.spacing == pytest.approx(tuple(float(z) for z in original.header.get_zooms()[:3])[::-1])
    assert nib.aff2axcodes(np.array(image.metadata["affine"])) == ("R", "A", "S")


def test_nifti_4d_becomes_channels():
    path = _nib_data("example4d.nii.gz")
    original = nib.load(path)
    image = read_nifti(path)
    x, y, z, t = original.shape
    assert image.array.shape == (t, z, y, x)
    assert image.metadata["channels"] == t
    expected = nib.as_closest_canonical(original).get_fdata().astype(np.float32).transpose(3, 2, 1, 0)
    np.testing.assert_array_equal(image.array.numpy(), expected)
    assert image.spacing == pytest.approx((2.2, 2.0, 2.0), abs=1e-5)


def test_truncated_nifti_gz(tmp_path):
    data = Path(_nib_data("example4d.nii.gz")).read_bytes()
    path = tmp_path / "cut.nii.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.nii\.gz: not a readable NIfTI image"):
        read_nifti(path)


def test_text_file_named_nii(tmp_path):
    path = tmp_path / "brain.nii"
    path.write_text("hello\n")
    with pytest.raises(DataError, match=r"brain\.nii: not a readable NIfTI image"):
        read_nifti(path)
    gz = tmp_path / "brain.nii.gz"
    gz.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(DataError, match=r"brain\.nii\.gz: not a readable NIfTI image"):
        read_nifti(gz)
