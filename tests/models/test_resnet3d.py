"""The volume models: interface on 5-D inputs, exact parameter counts by hand, the 2-D ResNet with one more axis."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models import create, get_entry, list_models
from cnnlab.models.base import ZooModel

VOLUME_MODELS = ["resnet10_3d", "resnet18_3d", "resnet34_3d", "cnn3d_small"]
# A ResNet's 64-plane convs at 16^3 cost seconds each pass; 8^3 (8 -> 8 -> 4 -> 2 -> 1) checks the same wiring, so
# only resnet18_3d (and the small net) run at 16^3, with one channel.
FULL_SIZE_CASES = {("resnet18_3d", 1), ("cnn3d_small", 1), ("cnn3d_small", 3)}


def test_volume_models_are_registered_as_3d() -> None:
    assert set(VOLUME_MODELS) <= set(list_models())
    for name in VOLUME_MODELS:
        entry = get_entry(name)
        assert entry.default_input == (1, 28, 28, 28) and entry.spatial_dims == 3 and entry.default_classes == 2
    assert get_entry("resnet18").spatial_dims == 2


@pytest.mark.parametrize("name", VOLUME_MODELS)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_forward_backward_on_a_small_volume(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=5, in_channels=in_channels)
    assert isinstance(model, ZooModel)
    side = 16 if (name, in_channels) in FULL_SIZE_CASES else 8
    x = torch.randn(2, in_channels, side, side, side)

    model.train()
    out = model(x)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([0, 4])).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{name}: {param_name} got no gradient"
        assert torch.isfinite(param.grad).all(), f"{name}: {param_name} has a non-finite gradient"

    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 5
        assert torch.equal(model.forward_head(features), model(x))
        assert model.forward_head(features, pre_logits=True).shape == (2, model.get_classifier().in_features)
        model.reset_classifier(3)
        assert model(x).shape == (2, 3)


def test_non_cubic_volumes_run() -> None:
    with torch.no_grad():
        for name in ("resnet18_3d", "cnn3d_small"):
            assert create(name, num_classes=4).eval()(torch.zeros(1, 1, 8, 20, 12)).shape == (1, 4)


def _conv(in_planes: int, out_planes: int, kernel: int) -> int:
    return in_planes * out_planes * kernel**3


def _bn(planes: int) -> int:
    return 2 * planes  # weight and bias (running statistics are buffers)


def resnet3d_parameters(blocks: list[int], in_channels: int, num_classes: int, stem_kernel: int) -> int:
    """The ResNet's parameters from its table: stem, BasicBlocks, option-B projections, fc."""
    total = _conv(in_channels, 64, stem_kernel) + _bn(64)
    inplanes = 64
    for planes, count, stride in zip((64, 128, 256, 512), blocks, (1, 2, 2, 2)):
        for index in range(count):
            total += _conv(inplanes, planes, 3) + _bn(planes) + _conv(planes, planes, 3) + _bn(planes)
            if index == 0 and (stride != 1 or inplanes != planes):
                total += _conv(inplanes, planes, 1) + _bn(planes)
            inplanes = planes
    return total + 512 * num_classes + num_classes


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_resnet18_3d_parameter_count_by_hand() -> None:
    # 1 channel, 2 classes, 3x3x3 stem: 1,728 + 128 (stem) + 442,880 + 1,557,760 + 6,228,480 + 24,908,800 (stages)
    # + 1,026 (fc).
    assert resnet3d_parameters([2, 2, 2, 2], 1, 2, 3) == 33_140_802
    with torch.device("meta"):
        assert count(create("resnet18_3d", num_classes=2, in_channels=1)) == 33_140_802
        assert count(create("resnet18_3d", stem="imagenet")) == 33_140_802 - 1_728 + 64 * 7**3
        for name, blocks in (("resnet10_3d", [1, 1, 1, 1]), ("resnet34_3d", [3, 4, 6, 3])):
            for channels, classes in ((1, 2), (3, 11)):
                model = create(name, num_classes=classes, in_channels=channels)
                assert count(model) == resnet3d_parameters(blocks, channels, classes, 3), name


def test_cnn3d_small_parameter_count_by_hand() -> None:
    expected = _conv(1, 16, 3) + _bn(16) + _conv(16, 32, 3) + _bn(32) + _conv(32, 64, 3) + _bn(64) + 64 * 2 + 2
    assert expected == 69_906
    assert count(create("cnn3d_small", num_classes=2, in_channels=1)) == 69_906
    assert count(create("cnn3d_small", width=8, num_classes=2)) == (
        _conv(1, 8, 3) + _bn(8) + _conv(8, 16, 3) + _bn(16) + _conv(16, 32, 3) + _bn(32) + 32 * 2 + 2
    )


def test_same_keys_as_the_2d_resnet18_and_one_more_kernel_axis() -> None:
    with torch.device("meta"):
        volume = create("resnet18_3d", num_classes=10, in_channels=1, stem="imagenet").state_dict()
        image = create("resnet18", num_classes=10, in_channels=1).state_dict()
    assert list(volume) == list(image)
    conv_weights = 0
    for key, tensor in image.items():
        if tensor.dim() == 4:  # a conv weight (out, in, k, k) -> (out, in, k, k, k)
            kernel = tensor.shape[-1]
            assert volume[key].shape == (*tensor.shape, kernel), key
            assert volume[key].numel() == tensor.numel() * kernel
            conv_weights += tensor.numel() * kernel
        else:
            assert volume[key].shape == tensor.shape, key
    assert conv_weights == sum(t.numel() for k, t in volume.items() if t.dim() == 5)


def test_stems_and_feature_map_sizes_at_28() -> None:
    x = torch.zeros(1, 1, 28, 28, 28)
    with torch.no_grad():
        small = create("resnet18_3d").eval()
        assert small.conv1.kernel_size == (3, 3, 3) and small.conv1.stride == (1, 1, 1)
        assert not any(isinstance(m, nn.MaxPool3d) for m in small.modules())
        assert small.forward_features(x).shape == (1, 512, 4, 4, 4)  # 28 -> 28 -> 14 -> 7 -> 4
        imagenet = create("resnet18_3d", stem="imagenet").eval()
        assert imagenet.conv1.kernel_size == (7, 7, 7) and imagenet.conv1.stride == (2, 2, 2)
        assert imagenet.forward_features(x).shape == (1, 512, 1, 1, 1)  # 28 -> 14 -> 7 -> 7 -> 4 -> 2 -> 1
        assert create("cnn3d_small").eval().forward_features(x).shape == (1, 64, 3, 3, 3)


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="'stem' must be one of small, imagenet, got 'tiny'"):
        create("resnet18_3d", stem="tiny")
    with pytest.raises(ConfigError, match="'dropout'"):
        create("cnn3d_small", dropout=1.5)
    with pytest.raises(ConfigError, match="cnn3d_small"):
        create("cnn3d_small", depth=4)


def test_dropout_option_reaches_the_head() -> None:
    model = create("cnn3d_small", dropout=0.35)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.35]


def test_cnn3d_small_learns_a_toy_volume_task_in_seconds() -> None:
    # Class 1 has a bright 4^3 cube somewhere in the 12^3 volume, class 0 none: 20 Adam steps fit the training set.
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 12, 12, 12, generator=generator) * 0.5
    y = torch.arange(32) % 2
    corners = torch.randint(0, 8, (32, 3), generator=generator)
    for i in torch.nonzero(y).flatten().tolist():
        d, h, w = corners[i].tolist()
        x[i, 0, d : d + 4, h : h + 4, w : w + 4] += 0.5
    torch.manual_seed(0)
    model = create("cnn3d_small", num_classes=2, dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        optimiser.zero_grad()
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        optimiser.step()
    assert loss.item() < 0.1 and bool((logits.argmax(1) == y).all())
    # BatchNorm's running statistics lag 20 steps behind (momentum 0.1): recompute them once, then evaluate.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.reset_running_stats()
                module.momentum = None  # a plain average over the passes
        model(x)
        assert bool((model.eval()(x).argmax(1) == y).all())
