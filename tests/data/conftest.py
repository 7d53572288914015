"""Shared fixtures: the shipped MNIST (loaded once) and writers of small image folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.data import load_dataset, mnist_path

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def write_image(path: Path, array: np.ndarray) -> Path:
    """Save an (H, W) or (H, W, 3) uint8 array; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_class_folder(
    root: Path, counts: dict[str, int], size: tuple[int, int] = (8, 6), ext: str = "png", seed: int = 0
) -> dict[str, list[np.ndarray]]:
    """root/<class>/<i>.<ext> of random RGB pixels; returns the arrays per class (file order)."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, list[np.ndarray]] = {}
    for name, count in counts.items():
        arrays[name] = []
        for i in range(count):
            array = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            write_image(root / name / f"{i:03d}.{ext}", array)
            arrays[name].append(array)
    return arrays


@pytest.fixture(scope="session")
def mnist():
    return load_dataset(mnist_path(), val_split=0.0)
