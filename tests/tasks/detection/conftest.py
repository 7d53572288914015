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
    """Small scenes that train in seconds: 1-2 digits of 16-28 px on a 64x64 canvas (a 4x4 grid of cells)."""
    from cnnlab.data import DataSplits, ImageSet
    from cnnlab.data.synthetic import DIGIT_CLASSES, digit_scenes

    def split(name: str, count: int, seed: int) -> ImageSet:
        images, targets = digit_scenes(count, split=name, canvas=64, digits=(1, 2), scale=(16, 28), seed=seed)
        return ImageSet(images, targets, classes=DIGIT_CLASSES, source=f"digits/{name}")

    train, val, test = split("train", 2000, 0), split("val", 200, 1), split("test", 400, 2)
    return DataSplits(train, val, test, list(DIGIT_CLASSES), "digits", "small digit scenes")
