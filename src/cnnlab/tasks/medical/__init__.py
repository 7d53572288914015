"""Medical imaging: DICOM/NIfTI readers, clinical metrics and the care clinical data needs."""
