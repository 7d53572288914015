"""Data for cnnlab: read any supported format into uint8 splits, batch them fast, augment per sample.

    splits = load_dataset("data/mnist")                      # idx / cifar / npz / folder / csv
    norm = Normalizer.from_imageset(splits.train)           # per-channel mean/std of TRAIN, [0, 1] units
    augment = build_augmenter(AugmentSpec.from_config({"rotate": 15, "flip": True}))
    for x, y in make_batches(splits.train, 256, shuffle=True, generator=g, augment=augment):
        logits = model(norm(x.to(device)))                  # x stays uint8 until normalised

Images are uint8 (N, C, H, W) throughout so copies and host-to-device transfers move a quarter of
the bytes of float32. See `augment` for the augmenter's call contract (dtype-preserving, seeded by
a torch.Generator, soft labels with mixup/cutmix).
"""

from __future__ import annotations

import os
from pathlib import Path

from cnnlab.data.augment import Augmenter, AugmentSpec, build_augmenter
from cnnlab.data.decode import IMAGE_EXTENSIONS
from cnnlab.data.formats import FORMATS, detect_format, load_dataset
from cnnlab.data.imageset import DataSplits, ImageSet
from cnnlab.data.loader import Batches, make_batches
from cnnlab.data.splits import stratified_split
from cnnlab.data.stats import Normalizer
from cnnlab.errors import DataError

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "AugmentSpec",
    "Augmenter",
    "Batches",
    "DataSplits",
    "ImageSet",
    "Normalizer",
    "build_augmenter",
    "detect_format",
    "load_dataset",
    "make_batches",
    "mnist_path",
    "stratified_split",
]


def mnist_path() -> Path:
    """The MNIST idx files shipped with the repository (data/mnist), else $CNNLAB_DATA[/mnist]."""
    shipped = Path(__file__).resolve().parents[3] / "data" / "mnist"
    if shipped.is_dir():
        return shipped
    env = os.environ.get("CNNLAB_DATA")
    if env:
        for candidate in (Path(env) / "mnist", Path(env)):
            if candidate.is_dir() and detect_format(candidate) == "idx":
                return candidate
    raise DataError(
        f"{shipped}: MNIST files not found; set CNNLAB_DATA to a folder holding mnist/train-images-idx3-ubyte.gz etc."
    )
