"""Feature maps per conv stage and first-layer filter grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.errors import ConfigError
from cnnlab.models import create
from cnnlab.viz.features import feature_maps, save_feature_maps, stage_grid
from cnnlab.viz.filters import filter_grid, first_conv_weight
from cnnlab.viz.images import tile_grid


@pytest.mark.parametrize(
    ("name", "shape", "stages"),
    [
        ("lenet5_modern", (1, 28, 28), [(6, 28, 28), (16, 10, 10)]),  # conv+ReLU before each max-pool
        ("lenet5", (1, 32, 32), [(6, 28, 28), (16, 10, 10)]),  # C5 is 1x1: not a map
        ("resnet20", (3, 32, 32), [(16, 32, 32), (32, 16, 16), (64, 8, 8)]),  # one per stage of the paper
        ("resnet18", (3, 64, 64), [(64, 32, 32), (64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]),
    ],
)
def test_one_stage_per_resolution(name, shape, stages):
    model = create(name, num_classes=10, in_channels=shape[0]).eval()
    found = feature_maps(model, torch.randn(2, *shape))
    assert [tuple(s.activation.shape) for s in found] == stages


def test_stage_output_is_the_activation_not_the_raw_conv():
    torch.manual_seed(0)
    model = create("lenet5_modern", num_classes=10).eval()
    x = torch.randn(1, 1, 28, 28)
    first = feature_maps(model, x)[0]
    assert first.modules == ["features.0", "features.1"] and first.name == "features.0–1"
    expected = torch.relu(model.features[0](x))[0]
    torch.testing.assert_close(first.activation, expected)


def test_grid_and_files(tmp_path):
    model = create("lenet5_modern", num_classes=10).eval()
    stages = feature_maps(model, torch.randn(1, 1, 28, 28))
    grid = stage_grid(stages[1], channels=16, columns=8, min_side=50)  # 10x10 maps enlarged 5x
    assert grid.shape == (2 * (50 + 2) + 2, 8 * (50 + 2) + 2, 3)
    paths = save_feature_maps(stages, tmp_path, "digit")
    assert [p.name for p in paths] == ["digit_stage1.png", "digit_stage2.png"]
    assert all(Image.open(p).size[0] > 0 for p in paths)


def test_filter_grid_grey_one_row_per_16():
    weight = torch.randn(6, 1, 5, 5)
    grid = filter_grid(weight, min_side=40)  # 5x5 kernels enlarged 8x, 3 px gaps, one row
    assert grid.shape == (40 + 6, 6 * 43 + 3, 3)
    tile = grid[3:43, 3:43]
    expected = (weight[0, 0] - weight[0, 0].min()) / (weight[0, 0].max() - weight[0, 0].min())
    np.testing.assert_allclose(tile[::8, ::8, 0], expected.numpy(), atol=1e-6)  # scaled per filter
    assert np.array_equal(tile[..., 0], tile[..., 2])  # grey


def test_filter_grid_rgb_and_multichannel():
    weight = torch.zeros(2, 3, 3, 3)
    weight[0, 0] = 1.0  # filter 0 is pure red
    rgb = filter_grid(weight, min_side=3)
    assert rgb.shape == (3 + 6, 2 * 6 + 3, 3)
    assert rgb[3:6, 3:6].tolist() == [[[1.0, 0.0, 0.0]] * 3] * 3
    two_inputs = filter_grid(torch.randn(4, 2, 3, 3), min_side=3)  # a row per filter, a column per input
    assert two_inputs.shape == (4 * 6 + 3, 2 * 6 + 3, 3)


@pytest.mark.parametrize(
    ("name", "shape", "kernel"),
    [
        ("lenet5", (1, 32, 32), (6, 1, 5, 5)),
        ("resnet20", (3, 32, 32), (16, 3, 3, 3)),
    ],
)
def test_first_conv_weight(name, shape, kernel):
    model = create(name, num_classes=10, in_channels=shape[0])
    weight = first_conv_weight(model, shape)
    assert tuple(weight.shape) == kernel
    assert filter_grid(weight).ndim == 3


def test_no_conv_is_a_config_error():
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="no 2-D conv"):
        first_conv_weight(mlp, (1, 2, 2))


def test_tile_grid_pads_incomplete_rows():
    tiles = [np.full((2, 2, 3), 0.0)] * 3
    grid = tile_grid(tiles, columns=2, pad=1, background=1.0)
    assert grid.shape == (7, 7, 3) and grid[4:6, 4:6].min() == 1.0
