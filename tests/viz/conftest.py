"""A real (tiny) run shared by the viz tests: LeNet-5 on 600 MNIST training images for one epoch (~3 s)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"


def read_idx(path: Path, count: int, header: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """The first `count` items of a gzipped IDX file (reading only their bytes keeps this fast)."""
    size = int(np.prod(item_shape))
    with gzip.open(path) as handle:
        data = handle.read(header + count * size)
    return np.frombuffer(data[header:], dtype=np.uint8).reshape(count, *item_shape)


@pytest.fixture(scope="session")
def mnist_npz(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "mnist_small.npz"
    np.savez(
        path,
        train_images=read_idx(MNIST / "train-images-idx3-ubyte.gz", 600, 16, (28, 28)),
        train_labels=read_idx(MNIST / "train-labels-idx1-ubyte.gz", 600, 8, ()),
        test_images=read_idx(MNIST / "t10k-images-idx3-ubyte.gz", 200, 16, (28, 28)),
        test_labels=read_idx(MNIST / "t10k-labels-idx1-ubyte.gz", 200, 8, ()),
    )
    return path


@pytest.fixture(scope="session")
def tiny_run(mnist_npz, tmp_path_factory) -> Path:
    from cnnlab.train import OptimizerConfig, TrainConfig, fit

    out = tmp_path_factory.mktemp("runs") / "lenet"
    config = TrainConfig(
        model="lenet5_modern",
        data=str(mnist_npz),
        epochs=1,
        batch_size=32,
        progress=False,
        optimizer=OptimizerConfig(name="adam", lr=0.003),
        out=str(out),
    )
    return fit(config).run_dir


@pytest.fixture(scope="session")
def digit_png(tmp_path_factory) -> Path:
    """A real MNIST test digit (a 7) as a PNG file."""
    path = tmp_path_factory.mktemp("images") / "seven.png"
    Image.fromarray(read_idx(MNIST / "t10k-images-idx3-ubyte.gz", 1, 16, (28, 28))[0]).save(path)
    return path
