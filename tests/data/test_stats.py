"""Normalizer: exact per-channel statistics of the train split, and the transform itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnlab.data import ImageSet, Normalizer
from cnnlab.errors import DataError


@pytest.fixture
def rgb_set():
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (300, 3, 5, 4), dtype=np.uint8))
    images[:, 2] //= 4  # a channel with a different distribution
    return ImageSet(images, torch.zeros(300, dtype=torch.int64), ["only"])


def test_mean_and_std_match_numpy(rgb_set):
    stats = Normalizer.from_imageset(rgb_set)
    pixels = rgb_set.images.numpy().astype(np.float64) / 255.0
    np.testing.assert_allclose(stats.mean, pixels.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(stats.std, pixels.std(axis=(0, 2, 3)), rtol=1e-10)


def test_mnist_statistics_are_the_well_known_ones(mnist):
    stats = Normalizer.from_imageset(mnist.train)
    assert stats.mean == pytest.approx([0.1307], abs=1e-4)
    assert stats.std == pytest.approx([0.3081], abs=1e-4)


def test_uint8_and_float_inputs_give_the_same_result(rgb_set):
    stats = Normalizer.from_imageset(rgb_set)
    from_uint8 = stats(rgb_set.images)
    from_float = stats(rgb_set.images.float() / 255)
    assert from_uint8.dtype == torch.float32
    torch.testing.assert_close(from_uint8, from_float)
    assert from_uint8.mean(dim=(0, 2, 3)).abs().max() < 1e-5
    assert (from_uint8.std(dim=(0, 2, 3), correction=0) - 1).abs().max() < 1e-4
    torch.testing.assert_close(stats.denormalize(from_uint8), rgb_set.images.float() / 255)
    assert stats(rgb_set.images[0]).shape == (3, 5, 4)


def test_dict_round_trip_and_errors(rgb_set):
    stats = Normalizer.from_imageset(rgb_set)
    again = Normalizer.from_dict(stats.to_dict())
    assert again.mean == stats.mean and again.std == stats.std
    with pytest.raises(DataError, match="mean"):
        Normalizer.from_dict({"avg": [0.5]})
    with pytest.raises(DataError, match="3 channels but the batch has 1"):
        stats(torch.zeros(2, 1, 4, 4, dtype=torch.uint8))


def test_constant_channel_does_not_divide_by_zero():
    images = torch.full((4, 1, 2, 2), 9, dtype=torch.uint8)
    stats = Normalizer.from_imageset(ImageSet(images, torch.zeros(4), ["x"]))
    assert stats.std == [1.0]
    assert torch.isfinite(stats(images)).all()
