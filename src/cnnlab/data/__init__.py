"""Data for cnnlab: read any supported format into uint8 splits, batch them fast, augment per sample.

    splits = load_dataset("data/mnist")                      # idx / cifar / npz / folder / csv
    splits = load_dataset("cifar10")                         # a named set: downloaded once, then cached
    norm = Normalizer.from_imageset(splits.train)           # per-channel mean/std of TRAIN, [0, 1] units
    augment = build_augmenter(AugmentSpec.from_config({"rotate": 15, "flip": True}))
    for x, y in make_batches(splits.train, 256, shuffle=True, generator=g, augment=augment):
        logits = model(norm(x.to(device)))                  # x stays uint8 until normalised

Images are uint8 (N, C, H, W) throughout so copies and host-to-device transfers move a quarter of
the bytes of float32. See `augment` for the augmenter's call contract (dtype-preserving, seeded by
a torch.Generator, soft labels with mixup/cutmix).
"""

from __future__ import annotations

from cnnlab.data.augment import Augmenter, AugmentSpec, build_augmenter
from cnnlab.data.datasets import NAMED_DATASETS, is_named_dataset, mnist_path, resolve_dataset
from cnnlab.data.decode import IMAGE_EXTENSIONS
from cnnlab.data.formats import FORMATS, detect_format, load_dataset
from cnnlab.data.imageset import DataSplits, ImageSet
from cnnlab.data.loader import Batches, make_batches
from cnnlab.data.splits import stratified_split
from cnnlab.data.stats import Normalizer

__all__ = [
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "NAMED_DATASETS",
    "AugmentSpec",
    "Augmenter",
    "Batches",
    "DataSplits",
    "ImageSet",
    "Normalizer",
    "build_augmenter",
    "detect_format",
    "is_named_dataset",
    "load_dataset",
    "make_batches",
    "mnist_path",
    "resolve_dataset",
    "stratified_split",
]
