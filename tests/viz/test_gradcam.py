"""Grad-CAM against a hand computation and on inputs where only one region can explain the class."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers import build_network
from cnnlab.models import create
from cnnlab.viz.gradcam import find_target_layer, grad_cam, gradcam_panel


class OneConvNet(nn.Module):
    """conv -> ReLU -> global average pool -> linear, with the zoo interface."""

    def __init__(self, in_channels: int = 1, channels: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(channels, classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.fc(x.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@pytest.mark.parametrize("inplace", [False, True])
def test_matches_hand_computation(inplace):
    """Default target: the conv's rectified output R_k = ReLU(A_k), the paper's feature maps."""
    torch.manual_seed(0)
    model = OneConvNet().eval()
    model.features[1].inplace = inplace  # an in-place ReLU overwrites the conv output; the result must not change
    x = torch.randn(1, 1, 9, 7)
    result = grad_cam(model, x, class_index=1)
    assert result.layer == "features.1"
    # By hand: y_c = sum_k w_ck mean_ij R_k(i, j), so dy_c/dR_k(i, j) = w_ck / (H W) = alpha_k.
    rectified = np.maximum(conv_output(model, x), 0)
    alpha = model.fc.weight[1].detach().numpy() / (rectified.shape[1] * rectified.shape[2])
    expected = np.maximum((alpha[:, None, None] * rectified).sum(0), 0)
    assert expected.max() > 0  # the comparison below is not a trivial all-zero one
    np.testing.assert_allclose(result.cam[0].numpy(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.heatmap[0].numpy(), expected / expected.max(), rtol=1e-4, atol=1e-6)
    assert result.class_index.tolist() == [1]


@pytest.mark.parametrize("inplace", [False, True])
def test_matches_hand_computation_before_the_activation(inplace):
    """`layer=` the conv itself: A_k is pre-ReLU and dy_c/dA_k(i, j) = w_ck [A_k(i, j) > 0] / (H W)."""
    torch.manual_seed(0)
    model = OneConvNet().eval()
    model.features[1].inplace = inplace
    x = torch.randn(1, 1, 9, 7)
    result = grad_cam(model, x, class_index=2, layer="features.0")
    activation = conv_output(model, x)
    positions = activation.shape[1] * activation.shape[2]
    gradient = model.fc.weight[2].detach().numpy()[:, None, None] * (activation > 0) / positions
    alpha = gradient.mean(axis=(1, 2))
    expected = np.maximum((alpha[:, None, None] * activation).sum(0), 0)
    assert expected.max() > 0
    np.testing.assert_allclose(result.cam[0].numpy(), expected, rtol=1e-5, atol=1e-7)


def conv_output(model: OneConvNet, x: torch.Tensor) -> np.ndarray:
    conv = model.features[0]
    return F.conv2d(x, conv.weight, conv.bias, padding=1)[0].detach().numpy()  # K x H x W


def detector_net() -> OneConvNet:
    """Channel 0 fires on bright 3x3 areas, channel 1 on dark ones; class 0 reads only channel 0, class 1 only 1."""
    model = OneConvNet(channels=2, classes=2)
    with torch.no_grad():
        model.features[0].weight.copy_(torch.stack([torch.full((1, 3, 3), 1 / 9), torch.full((1, 3, 3), -1 / 9)]))
        model.features[0].bias.fill_(-0.5)
        model.fc.weight.copy_(torch.eye(2))
        model.fc.bias.zero_()
    return model.eval()


QUADRANTS = {"top-left": (0, 0), "top-right": (0, 1), "bottom-left": (1, 0), "bottom-right": (1, 1)}


def quadrant_mass(heatmap: torch.Tensor, row: int, col: int) -> float:
    half_h, half_w = heatmap.shape[0] // 2, heatmap.shape[1] // 2
    part = heatmap[row * half_h : (row + 1) * half_h, col * half_w : (col + 1) * half_w]
    return float(part.sum() / heatmap.sum())


@pytest.mark.parametrize("quadrant", list(QUADRANTS))
def test_evidence_lies_where_the_only_explanation_is(quadrant):
    """A bright patch in one quadrant and a dark patch in the opposite one: each class has exactly one source."""
    bright_row, bright_col = QUADRANTS[quadrant]
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 2 + 8 * bright_row : 6 + 8 * bright_row, 2 + 8 * bright_col : 6 + 8 * bright_col] = 1.0
    dark_row, dark_col = 1 - bright_row, 1 - bright_col
    x[0, 0, 2 + 8 * dark_row : 6 + 8 * dark_row, 2 + 8 * dark_col : 6 + 8 * dark_col] = -1.0
    model = detector_net()
    for class_index, (row, col) in ((0, (bright_row, bright_col)), (1, (dark_row, dark_col))):
        heatmap = grad_cam(model, x, class_index).heatmap[0]
        peak_row, peak_col = divmod(int(heatmap.argmax()), heatmap.shape[1])
        assert (peak_row // 8, peak_col // 8) == (row, col)
        assert quadrant_mass(heatmap, row, col) > 0.99


def test_batch_images_do_not_mix():
    torch.manual_seed(1)
    model = create("lenet5_modern", num_classes=10).eval()
    x = torch.randn(3, 1, 28, 28)
    together = grad_cam(model, x)
    for i in range(3):
        alone = grad_cam(model, x[i : i + 1])
        torch.testing.assert_close(together.cam[i], alone.cam[0], rtol=1e-4, atol=1e-6)
        assert int(together.class_index[i]) == int(alone.predicted[0])


@pytest.mark.parametrize(
    ("name", "shape", "expected"),
    [
        ("lenet5", (1, 32, 32), "features.act3"),  # C5's output is 1x1: nothing spatial left, so C3's
        ("lenet5_modern", (1, 28, 28), "features.4"),
        ("resnet20", (3, 32, 32), "layer3.2.relu"),  # conv2 -> bn2 -> (+ shortcut) -> relu: the block output
    ],
)
def test_target_is_the_last_spatial_conv(name, shape, expected):
    model = create(name, num_classes=10, in_channels=shape[0]).eval()
    x = torch.randn(2, *shape)
    assert find_target_layer(model, x) == expected
    result = grad_cam(model, x)
    assert result.heatmap.shape == (2, *shape[1:])
    assert float(result.heatmap.min()) >= 0 and float(result.heatmap.max()) <= 1


def test_layer_list_net_and_explicit_layer():
    layers = [
        {"conv": {"out": 4, "kernel": 3, "padding": 1}},
        {"act": "relu"},
        {"pool": {"size": 2}},
        {"conv": {"out": 8, "kernel": 3}},
        {"act": "relu"},
        "flatten",
        {"fc": "classes"},
    ]
    model = build_network(layers, (1, 12, 12), num_classes=5).eval()
    x = torch.randn(1, 1, 12, 12)
    assert grad_cam(model, x).layer == find_target_layer(model, x)
    first = grad_cam(model, x, class_index=2, layer="features.0")
    assert first.cam.shape == (1, 12, 12) and first.layer == "features.0"


def test_bad_layer_and_class_are_config_errors():
    model = create("lenet5_modern", num_classes=10).eval()
    x = torch.randn(1, 1, 28, 28)
    with pytest.raises(ConfigError, match="did you mean features.3"):
        grad_cam(model, x, layer="features.33")
    with pytest.raises(ConfigError, match="out of range"):
        grad_cam(model, x, class_index=10)
    with pytest.raises(ConfigError, match="gave no N×C×H×W feature map"):
        grad_cam(model, x, layer="classifier.0")


def test_training_mode_is_restored_and_statistics_untouched():
    model = create("resnet20", num_classes=10).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grad_cam(model, torch.randn(2, 3, 32, 32))
    assert model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_panel_is_image_and_overlay_side_by_side():
    panel = gradcam_panel(torch.zeros(1, 28, 28, dtype=torch.uint8), torch.ones(28, 28), min_side=56)
    assert panel.shape == (56 + 8, 2 * 56 + 12, 3)
    left, right = panel[4:60, 4:60], panel[4:60, 64:120]
    assert left.max() == 0 and right.max() > 0  # the overlay adds the heat colour
