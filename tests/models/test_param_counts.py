"""Exact parameter counts: the papers' architectures, not approximations of them."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cnnlab.models import create
from cnnlab.models.lenet import C3_TABLE, c3_connection_table


def trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def count(name: str, **options) -> int:
    # The meta device allocates nothing and skips the init, so counting VGG-19 costs milliseconds.
    with torch.device("meta"):
        return trainable(create(name, **options))


def torchvision_count(name: str) -> int:
    with torch.device("meta"):
        return trainable(getattr(torchvision.models, name)(weights=None))


def create_meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return create(name)


TORCHVISION_ARCHS = [
    "alexnet",
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
    "vgg11_bn",
    "vgg13_bn",
    "vgg16_bn",
    "vgg19_bn",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
]

EXPECTED = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "lenet5": 60_000,
    # conv1 6@5x5 (156) + conv2 16@5x5 (2,416) + fc 400-120 (48,120) + 120-84 (10,164) + 84-10 (850)
    "lenet5_modern": 61_706,
}

# AlexNet as in the 2012 paper (groups=2 on conv2, conv4, conv5), weights + biases:
#   conv1  96 x 3 x 11 x 11        + 96   =     34,944
#   conv2 256 x (96/2) x 5 x 5     + 256  =    307,456
#   conv3 384 x 256 x 3 x 3        + 384  =    885,120
#   conv4 384 x (384/2) x 3 x 3    + 384  =    663,936
#   conv5 256 x (384/2) x 3 x 3    + 256  =    442,624
#   fc6  4096 x 9216               + 4096 = 37,752,832
#   fc7  4096 x 4096               + 4096 = 16,781,312
#   fc8  1000 x 4096               + 1000 =  4,097,000
#   total                                   60,965,224  (the paper's "60 million parameters")
EXPECTED["alexnet_paper"] = 60_965_224

# CIFAR ResNets, 6n+2 layers, option-A (parameter-free) shortcuts; BatchNorm has 2 parameters per channel:
#   stem: conv 3x3 3->16 (432) + BN (32)                                      =     464
#   stage 1, each block: 2 x (16x16x9 = 2,304) + 2 BN (32 each)               =   4,672
#   stage 2, first block: 16x32x9 (4,608) + 32x32x9 (9,216) + 2 BN (64 each) =  13,952
#            other blocks: 2 x 9,216 + 128                                    =  18,560
#   stage 3, first block: 32x64x9 (18,432) + 64x64x9 (36,864) + 256           =  55,552
#            other blocks: 2 x 36,864 + 256                                   =  73,984
#   fc 64 -> 10                                                               =     650
#   total(n) = 464 + 650 + 13,952 + 55,552 + 4,672 n + (n - 1)(18,560 + 73,984) = 97,216 n - 21,926
# (Projection shortcuts, option B, would add 1x1 conv + BN: 576 + 2,176 = 2,752 to every depth.)
CIFAR_BLOCKS = {"resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}
EXPECTED |= {
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count(name: str) -> None:
    assert count(name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(CIFAR_BLOCKS))
def test_cifar_resnet_count_follows_the_derivation(name: str) -> None:
    assert EXPECTED[name] == 97_216 * CIFAR_BLOCKS[name] - 21_926


@pytest.mark.parametrize("name", TORCHVISION_ARCHS)
def test_count_equals_torchvision(name: str) -> None:
    assert count(name) == torchvision_count(name)


def test_vgg_batch_norm_adds_two_parameters_per_conv_channel() -> None:
    for depth in (11, 13, 16, 19):
        convs = [m for m in create_meta(f"vgg{depth}").features if isinstance(m, nn.Conv2d)]
        assert count(f"vgg{depth}_bn") - count(f"vgg{depth}") == 2 * sum(c.out_channels for c in convs)


def test_lenet5_per_layer_counts() -> None:
    model = create("lenet5")
    layers = model.features
    assert trainable(layers.c1) == 156  # 6 x (5x5 + 1)
    assert trainable(layers.s2) == 12  # 6 x (coefficient + bias)
    assert trainable(layers.c3) == 1_516  # 60 connections x 25 + 16 biases
    assert trainable(layers.s4) == 32  # 16 x 2
    assert trainable(layers.c5) == 48_120  # 120 x (16 x 25 + 1)
    assert trainable(model.f6) == 10_164  # 84 x (120 + 1)
    assert trainable(model.rbf) == 0
    assert list(model.rbf.parameters()) == []
    assert "rbf.centres" in model.state_dict()  # fixed, but saved with the model
    assert trainable(model) == 60_000


def test_lenet5_rbf_centres_are_a_fixed_plus_minus_one_code() -> None:
    centres = create("lenet5").rbf.centres
    assert centres.shape == (10, 84)
    assert set(centres.unique().tolist()) == {-1.0, 1.0}
    assert torch.equal(centres, create("lenet5").rbf.centres)  # deterministic
    assert torch.cdist(centres, centres).add(torch.eye(10) * 100).min() > 0  # distinct
    assert create("lenet5", num_classes=26).rbf.centres.shape == (26, 84)


def test_lenet5_c3_table_is_the_papers_table_1() -> None:
    # Section II.B: the first six C3 maps read every contiguous subset of three S2 maps, the next six every
    # contiguous subset of four, the next three some discontinuous subsets of four, and the last one all six.
    expected = [{i % 6, (i + 1) % 6, (i + 2) % 6} for i in range(6)]
    expected += [{i % 6, (i + 1) % 6, (i + 2) % 6, (i + 3) % 6} for i in range(6)]
    expected += [{0, 1, 3, 4}, {1, 2, 4, 5}, {0, 2, 3, 5}]
    expected += [set(range(6))]
    table = c3_connection_table()
    assert table.shape == (6, 16)
    assert [set(table[:, j].nonzero().flatten().tolist()) for j in range(16)] == expected
    assert int(table.sum()) == 60
    assert torch.equal(create("lenet5").features.c3.table, table)
    assert len(C3_TABLE) == 6 and all(len(row) == 16 for row in C3_TABLE)


def test_lenet5_c3_only_uses_connected_maps() -> None:
    torch.manual_seed(0)
    c3 = create("lenet5").features.c3
    x = torch.randn(1, 6, 10, 10, requires_grad=True)
    for j in range(16):
        (grad,) = torch.autograd.grad(c3(x)[0, j].sum(), x)
        touched = grad.abs().sum(dim=(0, 2, 3)) > 0
        assert torch.equal(touched, c3.table[:, j]), f"C3 map {j}"
