"""DICOM and NIfTI readers for the medical task; they live in `cnnlab.data.medical_readers` so that the data
path (`cnnlab train --data manifest.csv`) can read the same files without importing a task."""

from __future__ import annotations

from cnnlab.data.medical_readers import (
    WINDOWS,
    MedicalImage,
    apply_window,
    read_dicom,
    read_dicom_series,
    read_nifti,
)

__all__ = ["WINDOWS", "MedicalImage", "apply_window", "read_dicom", "read_dicom_series", "read_nifti"]
