"""Small detection data and a tiny backbone shared by the detection tests."""

from __future__ import annotations

import pytest

# A fast stride-16 backbone for 128x128 digit scenes (the shipped detect_digits example uses the same shape).
SMALL_BACKBONE = {
    "layers": [
        {"conv": {"out": 16, "kernel": 3, "stride": 2, "padding": 1}}, "bn", "relu",
        {"conv": {"out": 32, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 64, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 96, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 96, "kernel": 3, "padding": 1}}, "bn", "relu",
    ]
}  # fmt: skip
SMALL_MODEL_OPTIONS = {"backbone": SMALL_BACKBONE, "neck_channels": 96, "neck_depth": 1}


@pytest.fixture(scope="session")
def digit_splits():
    from cnnlab.data.synthetic import digit_detection_splits

    return digit_detection_splits(train=800, val=100, test=200, seed=0)
