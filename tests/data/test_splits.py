"""Stratified validation splits: per-class proportions, determinism, and the val_split=0 switch."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data import load_dataset, mnist_path, stratified_split
from cnnlab.errors import ConfigError


def test_each_class_keeps_its_share():
    labels = np.repeat(np.arange(4), [100, 40, 7, 1])
    train, val = stratified_split(labels, 0.2, seed=3)
    assert np.bincount(labels[val], minlength=4).tolist() == [20, 8, 1, 0]
    assert np.bincount(labels[train], minlength=4).tolist() == [80, 32, 6, 1]
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(len(labels)))


def test_same_seed_same_split_other_seed_other_split():
    labels = np.random.default_rng(0).integers(0, 5, 500)
    first, again, other = (stratified_split(labels, 0.1, seed=s)[1] for s in (7, 7, 8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_tiny_data_still_gets_one_val_image_and_zero_means_none():
    train, val = stratified_split(np.array([0, 0, 1]), 0.1)
    assert len(val) == 1 and len(train) == 2
    assert len(stratified_split(np.array([0, 1, 1]), 0.0)[1]) == 0
    with pytest.raises(ConfigError, match="val_split"):
        stratified_split(np.array([0, 1]), 1.5)


def test_mnist_val_split_is_stratified(mnist):
    splits = load_dataset(mnist_path(), val_split=0.1, seed=0)
    counts = splits.class_counts()
    full = mnist.class_counts()["train"]
    assert counts["val"] == [int(np.floor(0.1 * n + 0.5)) for n in full]
    assert [a + b for a, b in zip(counts["train"], counts["val"])] == full
    assert splits.val is not None and splits.test is not None and len(splits.test) == 10000
