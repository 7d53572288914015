"""Every registered model honours the zoo interface: sizes, channels, gradients, feature/head split, new heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.models import create, get_entry, list_models, register_model
from cnnlab.models.base import ZooModel

# Smallest convenient input side per model: AlexNet's stride-4 stem and three 3x3/2 max-pools need at least 63x63;
# VGG's five 2x2 pools and ResNet's /32 reduce 32x32 to 1x1 (the adaptive pools take it from there).
SMALL_SIDE = {"alexnet": 64, "alexnet_paper": 64, "lenet5_modern": 28}
DEFAULT_SIDE = 32

# The VGGs and the paper AlexNet spend a second or two in N(0, 0.01) init of ~100M fc weights; they are built once,
# at the non-default channel count. Their default-channel forward is covered by the torchvision comparisons.
# The detectors (yolo_v1, yolo_grid) output grids, not class logits: tests/models/test_yolo.py covers them.
# The volume models (Conv3d, inputs (N, C, D, H, W)) have the same checks on volumes in test_resnet3d.py.
CLASSIFIERS = [
    name for name in list_models() if not name.startswith(("yolo", "face_")) and get_entry(name).spatial_dims == 2
]
SLOW_TO_BUILD = {name for name in list_models() if name.startswith("vgg")} | {"alexnet_paper"}


def _cases() -> list[tuple[str, int]]:
    cases = []
    for name in CLASSIFIERS:
        default_channels = get_entry(name).default_input[0]
        other = 3 if default_channels == 1 else 1
        channels = [other] if name in SLOW_TO_BUILD else [default_channels, other]
        cases += [(name, c) for c in channels]
    return cases


@pytest.mark.parametrize(("name", "in_channels"), _cases())
def test_model_interface(name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = create(name, num_classes=7, in_channels=in_channels)
    assert isinstance(model, ZooModel)
    side = SMALL_SIDE.get(name, DEFAULT_SIDE)
    x = torch.randn(2, in_channels, side, side)

    # Training step: right shape, finite, and a gradient reaches every trainable parameter.
    model.train()
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([0, 6])).backward()
    for param_name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None, f"{name}: {param_name} got no gradient"
            # A sum is NaN/inf when any entry is, at a fraction of the cost of isfinite() over 100M weights.
            assert torch.isfinite(param.grad.sum()), f"{name}: {param_name} has a non-finite gradient"

    # The feature/head split is the forward pass; pre-logits feed the classifier.
    model.eval()
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 4
        logits = model(x)
        assert torch.equal(model.forward_head(features), logits)
        pre_logits = model.forward_head(features, pre_logits=True)
        assert pre_logits.shape == (2, model.get_classifier().in_features)

        model.reset_classifier(5)
        assert model(x).shape == (2, 5)


def test_all_families_registered() -> None:
    names = set(list_models())
    expected = {"lenet5", "lenet5_modern", "alexnet", "alexnet_paper"}
    expected |= {f"vgg{depth}{bn}" for depth in (11, 13, 16, 19) for bn in ("", "_bn")}
    expected |= {f"resnet{depth}" for depth in (18, 34, 50, 101, 152, 20, 32, 44, 56, 110)}
    expected |= {"resnet10_3d", "resnet18_3d", "resnet34_3d", "cnn3d_small"}
    assert expected <= names


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_in_channels_reach_the_first_conv(name: str) -> None:
    # Built on the meta device: no memory, no init cost, so every model can be checked at both channel counts.
    for in_channels in (1, 3):
        with torch.device("meta"):
            model = create(name, in_channels=in_channels)
        first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        assert first_conv.in_channels == in_channels


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_defaults_match_registry(name: str) -> None:
    entry = get_entry(name)
    with torch.device("meta"):
        model = create(name)
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == entry.default_input[0]
    assert getattr(model.get_classifier(), "out_features", None) == entry.default_classes
    assert entry.paper


def test_lenet5_accepts_28x28_by_padding() -> None:
    torch.manual_seed(0)
    model = create("lenet5").eval()
    digits = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        assert model(digits).shape == (2, 10)
        # Replicate-padding to the 32x32 field the paper uses.
        padded = nn.functional.pad(digits, (2, 2, 2, 2), mode="replicate")
        assert torch.equal(model(digits), model(padded))


def test_lenet5_one_step_lowers_the_loss() -> None:
    torch.manual_seed(0)
    model = create("lenet5")
    x, y = torch.randn(16, 1, 32, 32), torch.randint(0, 10, (16,))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_before = nn.functional.cross_entropy(model(x), y)
    loss_before.backward()
    optimiser.step()
    with torch.no_grad():
        loss_after = nn.functional.cross_entropy(model(x), y)
    assert loss_after < loss_before


def test_dropout_option_reaches_the_model() -> None:
    model = create("lenet5_modern", dropout=0.3)
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    with torch.device("meta"):
        for name in ("alexnet", "alexnet_paper", "vgg11", "vgg11_bn"):
            model = create(name, dropout=0.1)
            assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.1, 0.1]


def test_vgg_batch_norm_flag_matches_bn_variant() -> None:
    with torch.device("meta"):
        flagged = create("vgg13", batch_norm=True)
        variant = create("vgg13_bn")
    assert [(k, v.shape) for k, v in flagged.state_dict().items()] == [
        (k, v.shape) for k, v in variant.state_dict().items()
    ]


def test_unknown_model_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet9000'"):
        create("resnet9000")


def test_unknown_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="resnet18"):
        create("resnet18", dropout=0.5)  # the paper's ResNet has no dropout


def test_duplicate_registration_raises() -> None:
    before = list_models()
    with pytest.raises(ValueError, match="registered twice"):

        @register_model(paper="duplicate")
        def lenet5(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
            return nn.Identity()

    assert list_models() == before
    assert isinstance(create("lenet5"), ZooModel)
