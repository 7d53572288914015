"""cnnlab.summary: MACs agree with closed-form per-layer counts, receptive fields with hand derivations, params add up.

summary.py counts MACs with torch's FlopCounterMode, so the zoo check below does not: it walks the modules with forward
hooks and applies the textbook formula for each layer type to the shapes it sees.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import ConfigError
from cnnlab.summary import parse_input_shape, summarize, summarize_builder


def flop_counter_macs(model: nn.Module, input_shape: tuple[int, ...], batch_size: int = 1) -> int:
    """The reference: torch's own count, which is 2 x MACs for matmul-like ops."""
    device = next(model.parameters()).device
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(batch_size, *input_shape, device=device))
    return counter.get_total_flops() // 2


def classic_lenet5() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.Tanh(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 120, 5),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(120, 84),
        nn.Tanh(),
        nn.Linear(84, 10),
    )


def field_steps(summary, types: tuple[str, ...]) -> list[tuple[int, int]]:
    """(RF, jump) after each layer of the given types, in execution order (square kernels: one number each)."""
    steps = []
    for row in summary.rows:
        if row.type in types:
            assert len(set(row.receptive_field)) == 1 and len(set(row.jump)) == 1
            steps.append((row.receptive_field[0], int(row.jump[0])))
    return steps


def rows_named(summary) -> dict:
    return {row.name: row for row in summary.rows}


# ------------------------------------------------------------------------------------------ MACs


def test_hand_built_lenet_macs_match_flop_counter_and_hand_count():
    model = classic_lenet5()
    summary = summarize(model, (1, 32, 32))
    # C1 6x28x28 outputs x 25, C3 16x10x10 x 6*25, C5 120 x 16*25, F6 120*84, output 84*10.
    by_hand = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 120 * 400 + 120 * 84 + 84 * 10
    assert summary.macs == by_hand == flop_counter_macs(model, (1, 32, 32))
    assert summary.flops == 2 * summary.macs
    assert summary.params == sum(p.numel() for p in model.parameters()) == 61_706


def closed_form_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    """The textbook MAC count of one layer call from its input and output shapes (bias, pooling, activations,
    normalisation and other elementwise work count 0, as summary.py documents). Unknown layer types fail the test,
    so a new layer in the zoo gets a rule here before it is trusted."""
    from cnnlab.models.lenet import EuclideanRBF, PartialConv2d, ScaledTanh, Subsampling
    from cnnlab.models.resnet_cifar import ShortcutA

    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        # every output element is a dot product over (in_channels / groups) x kernel inputs
        return output.numel() * (module.in_channels // module.groups) * math.prod(module.kernel_size)
    if isinstance(module, PartialConv2d):
        # C3 runs as a dense 6 -> 16 convolution over the kernel tensor assembled from Table I (zeros included)
        return output.numel() * module.in_channels * module.kernel_size**2
    if isinstance(module, nn.Linear):
        rows = inputs[0].numel() // module.in_features  # batch (and any other leading dims)
        return rows * module.in_features * module.out_features
    zero = (
        nn.ReLU,
        nn.Tanh,
        ScaledTanh,
        nn.BatchNorm2d,
        nn.BatchNorm3d,
        nn.MaxPool3d,
        nn.AdaptiveAvgPool3d,
        nn.Identity,  # resnet18_3d's small stem has no max-pool
        nn.MaxPool2d,
        nn.AvgPool2d,
        nn.AdaptiveAvgPool2d,
        nn.Dropout,
        nn.Flatten,
        Subsampling,  # a 2x2 pool times a per-map coefficient: elementwise
        EuclideanRBF,  # squared differences to fixed centres: no matmul
        ShortcutA,  # subsample and zero-pad
    )
    if isinstance(module, zero):
        return 0
    raise AssertionError(f"no closed-form MAC rule for {type(module).__name__}; add one to this test")


def hooked_macs(model: nn.Module, input_shape: tuple[int, ...], batch_size: int) -> dict[str, int]:
    """MACs per leaf module name (summed over calls), from forward hooks and `closed_form_macs`."""
    counts: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue

        def hook(module, inputs, output, name=name):
            counts[name] = counts.get(name, 0) + closed_form_macs(module, inputs, output)

        handles.append(module.register_forward_hook(hook))
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(batch_size, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return counts


@pytest.mark.parametrize(
    ("name", "shape", "batch_size"),
    [
        ("lenet5", (1, 32, 32), 1),
        ("lenet5", (1, 28, 28), 2),  # padded to 32x32 inside forward
        ("lenet5_modern", (1, 28, 28), 3),
        ("resnet20", (3, 32, 32), 2),
        ("resnet18", (3, 224, 224), 1),
        ("vgg11", (3, 224, 224), 1),
        ("alexnet", (3, 224, 224), 1),
        ("resnet18_3d", (1, 28, 28, 28), 1),  # volumes: Conv3d, BatchNorm3d, 3-D pools
        ("cnn3d_small", (2, 16, 20, 24), 2),
    ],
)
def test_zoo_macs_equal_closed_form_per_layer_counts(name, shape, batch_size):
    """Independent of FlopCounterMode: per-layer formulas applied to the shapes forward hooks see."""
    from cnnlab.models import create

    try:  # the meta device gives the shapes without the arithmetic (VGG-11 is 7.6 GMACs)
        with torch.device("meta"):
            model = create(name, in_channels=shape[0])
        expected = hooked_macs(model, shape, batch_size)
    except (RuntimeError, NotImplementedError):  # LeNet-5 keeps CPU buffers (Table I, RBF centres)
        model = create(name, in_channels=shape[0])
        expected = hooked_macs(model, shape, batch_size)
    summary = summarize(model, shape, batch_size=batch_size)

    per_layer: dict[str, int] = {}
    for row in summary.rows:
        if row.called:
            per_layer[row.name] = per_layer.get(row.name, 0) + row.macs
    assert per_layer == expected  # also: no "(functional ops)" row, every MAC sits in a layer
    assert summary.macs == sum(expected.values())
    assert summary.params == sum(p.numel() for p in model.parameters())


def test_closed_form_counts_match_the_hand_count_of_lenet5():
    """The hook-based reference itself, on LeNet-5 as published: the dense C3 is 16x10x10 outputs x 6 x 25."""
    from cnnlab.models import create

    counts = hooked_macs(create("lenet5"), (1, 32, 32), 1)
    assert counts["features.c1"] == 6 * 28 * 28 * 25
    assert counts["features.c3"] == 16 * 10 * 10 * 6 * 25
    assert counts["features.c5"] == 120 * 16 * 25
    assert counts["f6"] == 120 * 84
    assert counts["features.s2"] == counts["rbf"] == 0
    assert sum(counts.values()) == 415_680  # the hand-built LeNet's 416,520 less its 84 x 10 output layer (here an RBF)


def test_cifar_resnet20_is_the_papers_41m():
    from cnnlab.models import create

    summary = summarize_builder(lambda: create("resnet20"), (3, 32, 32))
    assert 40.5e6 <= summary.macs <= 41.0e6
    assert summary.params == 269_722  # the paper's "0.27M"


def test_resnet50_matches_torchvision_reference():
    from cnnlab.models import create

    summary = summarize_builder(lambda: create("resnet50"), (3, 224, 224))
    assert summary.params == 25_557_032
    assert summary.macs == pytest.approx(4.09e9, rel=0.005)  # torchvision: 4,089,184,256


def test_conv3d_macs_shapes_and_receptive_field_by_hand():
    from cnnlab.models import create

    with torch.device("meta"):
        model = create("resnet18_3d", num_classes=2, in_channels=1)
    summary = summarize(model, (1, 28, 28, 28))
    rows = rows_named(summary)
    # stem: 64 x 28^3 outputs, each a dot product over 1 channel x 3x3x3 taps
    assert rows["conv1"].macs == 64 * 28**3 * 1 * 27 == 37_933_056
    assert rows["layer1.0.conv1"].macs == 64 * 28**3 * 64 * 27
    # stride 2: ceil(28 / 2) = 14 voxels a side
    assert rows["layer2.0.conv1"].output_shape == (1, 128, 14, 14, 14)
    assert rows["layer2.0.conv1"].macs == 128 * 14**3 * 64 * 27 == 606_928_896
    assert rows["layer2.0.downsample.0"].macs == 128 * 14**3 * 64
    assert rows["layer4.1.conv2"].output_shape == (1, 512, 4, 4, 4)
    assert rows["fc"].macs == 512 * 2
    assert rows["conv1"].receptive_field == (3, 3, 3) and rows["layer1.0.conv1"].receptive_field == (5, 5, 5)
    assert rows["layer2.0.conv1"].jump == (2, 2, 2)
    assert rows["avgpool"].rf_global
    assert summary.params == 33_140_802


def test_summary_cli_takes_a_volume_shape(capsys):
    from cnnlab.cli import main

    assert main(["summary", "cnn3d_small", "--input", "1x28x28x28", "--num-classes", "3"]) == 0
    out = capsys.readouterr().out
    assert "input 1x28x28x28" in out and "[1, 16, 28, 28, 28]" in out and "(Conv3d)" in out
    first_conv = next(line for line in out.splitlines() if "(Conv3d)" in line)
    assert "9.48 M" in first_conv  # 16 x 28^3 x 27 = 9,483,264
    assert "Total params:       69,971" in out  # 69,906 - 130 + (64 * 3 + 3)
    assert main(["summary", "resnet18_3d", "--input", "1x28x28"]) == 1
    assert "the model needs 4: CxDxHxW, e.g. 1x28x28x28" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "gmacs"), [("alexnet", 0.714), ("vgg16", 15.47), ("vgg19", 19.63), ("resnet18", 1.81)]
)
def test_imagenet_models_match_published_gmacs(name, gmacs):
    from cnnlab.models import create

    summary = summarize_builder(lambda: create(name), (3, 224, 224))
    assert summary.macs / 1e9 == pytest.approx(gmacs, rel=0.005)


def test_batch_size_scales_macs_and_memory_not_params():
    one, four = summarize(classic_lenet5(), (1, 32, 32)), summarize(classic_lenet5(), (1, 32, 32), batch_size=4)
    assert four.macs == 4 * one.macs
    assert four.activation_bytes == 4 * one.activation_bytes
    assert four.params == one.params
    assert four.rows[0].output_shape == (4, 6, 28, 28)


@pytest.mark.parametrize(
    ("layer", "shape", "expected"),
    [
        # out elements x (in / groups) x kernel: 8 x 14 outputs, 4/2 inputs, kernel 3
        (nn.Conv1d(4, 8, 3, groups=2), (4, 16), 8 * 14 * 2 * 3),
        # depthwise: each of 16 maps reads one input map; 16 x 8 x 8 outputs x 1 x 9
        (nn.Conv2d(16, 16, 3, padding=1, groups=16), (16, 8, 8), 16 * 8 * 8 * 9),
        # 3-D: 2 x 4x4x4 outputs x 3 x 27
        (nn.Conv3d(3, 2, 3), (3, 6, 6, 6), 2 * 64 * 3 * 27),
        (nn.Linear(20, 7), (20,), 20 * 7),
    ],
)
def test_mac_rules(layer, shape, expected):
    summary = summarize(layer, shape)
    assert summary.macs == expected
    assert summary.rows[0].macs == expected
    assert f"{expected:,}" in summary.format_table()


def test_functional_matmul_outside_layers_is_counted():
    class Projected(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(6, 6)
            self.weight = nn.Parameter(torch.ones(6, 5))

        def forward(self, x):
            return self.linear(x) @ self.weight  # in no leaf module: gets a "(functional ops)" row

    summary = summarize(Projected(), (6,))
    assert summary.macs == 36 + 30
    assert [(row.name, row.macs, row.params) for row in summary.rows] == [
        ("linear", 36, 42),
        ("(functional ops)", 30, 0),
        ("", 0, 30),  # the container's own parameter
    ]
    assert not summary.rows[-1].called


# -------------------------------------------------------------------------------- receptive field


def test_lenet5_receptive_field_by_hand():
    """Derivation (no padding; rf_out = rf_in + (k - 1) * jump_in, jump_out = jump_in * stride).

    input  rf 1,  jump 1
    C1 5x5 conv, stride 1:  rf 1 + 4*1 = 5,    jump 1
    S2 2x2 subsample, s 2:  rf 5 + 1*1 = 6,    jump 2
    C3 5x5 conv:            rf 6 + 4*2 = 14,   jump 2
    S4 2x2 subsample, s 2:  rf 14 + 1*2 = 16,  jump 4
    C5 5x5 conv:            rf 16 + 4*4 = 32,  jump 4   (one C5 unit sees the whole 32x32 input, as the paper says)
    """
    from cnnlab.models import create

    expected = [(5, 1), (6, 2), (14, 2), (16, 4), (32, 4)]
    hand_built = summarize(classic_lenet5(), (1, 32, 32))
    assert field_steps(hand_built, ("Conv2d", "AvgPool2d")) == expected

    zoo = rows_named(summarize(create("lenet5"), (1, 32, 32)))
    layers = ["features.c1", "features.s2", "features.c3", "features.s4", "features.c5"]
    assert [(zoo[n].receptive_field[0], int(zoo[n].jump[0])) for n in layers] == expected
    assert zoo["f6"].rf_global and zoo["f6"].receptive_field == (32, 32)


def test_vgg16_receptive_field_by_hand():
    """Derivation: 3x3 convs (stride 1, padding 1) add 2*jump each; 2x2 max-pools (stride 2) add 1*jump, double it.

    block 1 (jump 1): conv1_1 1+2 = 3,     conv1_2 3+2 = 5,        pool1 5+1 = 6,       jump -> 2
    block 2 (jump 2): conv2_1 6+4 = 10,    conv2_2 10+4 = 14,      pool2 14+2 = 16,     jump -> 4
    block 3 (jump 4): conv3_x 16+8 = 24, 32, 40,                   pool3 40+4 = 44,     jump -> 8
    block 4 (jump 8): conv4_x 44+16 = 60, 76, 92,                  pool4 92+8 = 100,    jump -> 16
    block 5 (jump 16): conv5_x 100+32 = 132, 164, 196,             pool5 196+16 = 212,  jump -> 32
    """
    from cnnlab.models import create

    expected = [(3, 1), (5, 1), (6, 2)]
    expected += [(10, 2), (14, 2), (16, 4)]
    expected += [(24, 4), (32, 4), (40, 4), (44, 8)]
    expected += [(60, 8), (76, 8), (92, 8), (100, 16)]
    expected += [(132, 16), (164, 16), (196, 16), (212, 32)]
    summary = summarize_builder(lambda: create("vgg16"), (3, 224, 224))
    assert field_steps(summary, ("Conv2d", "MaxPool2d")) == expected
    classifier = [row for row in summary.rows if row.type == "Linear"]
    assert all(row.rf_global and row.receptive_field == (224, 224) for row in classifier)


def test_resnet50_receptive_field_follows_the_conv_path():
    """torchvision-style ResNet-50 (stride in the 3x3 conv):

    conv1 7x7/2: 7, jump 2; maxpool 3x3/2: 7 + 2*2 = 11, jump 4
    layer1: 3 blocks, one 3x3 each at jump 4: 11 + 8 = 19, 27, 35
    layer2: strided 3x3 at jump 4: 35 + 8 = 43, jump 8; 3 more blocks: 43 + 3*16 = 91
    layer3: 91 + 16 = 107, jump 16; 5 more: 107 + 5*32 = 267
    layer4: 267 + 32 = 299, jump 32; 2 more: 299 + 2*64 = 427
    The 1x1 downsample shortcut (RF of the block input) is narrower, so each block's output keeps the conv path's RF.
    """
    from cnnlab.models import create

    summary = summarize_builder(lambda: create("resnet50"), (3, 224, 224))
    # Each bottleneck calls its relu three times; the last call is the block's output (after the residual add).
    block_outputs = {row.name: row for row in summary.rows if row.type == "ReLU" and row.name.count(".") == 2}
    assert {name: (row.receptive_field[0], int(row.jump[0])) for name, row in block_outputs.items()} == {
        "layer1.0.relu": (19, 4),
        "layer1.1.relu": (27, 4),
        "layer1.2.relu": (35, 4),
        "layer2.0.relu": (43, 8),
        "layer2.1.relu": (59, 8),
        "layer2.2.relu": (75, 8),
        "layer2.3.relu": (91, 8),
        "layer3.0.relu": (107, 16),
        "layer3.1.relu": (139, 16),
        "layer3.2.relu": (171, 16),
        "layer3.3.relu": (203, 16),
        "layer3.4.relu": (235, 16),
        "layer3.5.relu": (267, 16),
        "layer4.0.relu": (299, 32),
        "layer4.1.relu": (363, 32),
        "layer4.2.relu": (427, 32),
    }
    assert rows_named(summary)["layer1.0.downsample.0"].receptive_field == (11, 11)


def test_receptive_field_matches_gradient_support():
    """Independent check: the input pixels that influence one central output unit span exactly the RF."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.AvgPool2d(2),
        nn.Conv2d(2, 2, 3, dilation=2),
        nn.Conv2d(2, 1, 5, stride=2),
    )
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(param.abs() + 0.1)  # positive weights: no accidental cancellation
    summary = summarize(model, (1, 64, 64))
    # 3 -> pool: 3 + 1 = 4, jump 2 -> dilated 3x3 (k_eff 5): 4 + 4*2 = 12 -> 5x5/2: 12 + 4*2 = 20, jump 4
    assert summary.rows[-1].receptive_field == (20, 20) and summary.rows[-1].jump == (4, 4)

    x = torch.zeros(1, 1, 64, 64, requires_grad=True)
    out = model(x)
    out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    rows, cols = x.grad[0, 0].nonzero(as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (20, 20)


def test_residual_join_takes_the_wider_branch_and_shortcut_subsampling_grows_the_jump():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.shortcut = nn.Conv2d(4, 4, 1)
            self.act = nn.ReLU()

        def forward(self, x):
            out = self.conv2(self.conv1(x))
            return self.act(out + self.shortcut(x))  # a non-in-place join, shortcut computed last

    class Strided(nn.Module):
        def forward(self, x):
            return x[:, :, ::2, ::2]  # the option-A shortcut of CIFAR ResNets

    summary = rows_named(summarize(nn.Sequential(Block(), Strided()), (4, 16, 16)))
    assert summary["0.shortcut"].receptive_field == (1, 1)
    assert summary["0.act"].receptive_field == (5, 5)
    assert summary["1"].receptive_field == (5, 5) and summary["1"].jump == (2, 2)


# ------------------------------------------------------------------------------------- parameters


def test_shared_parameters_are_counted_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(8, 8)
            self.decoder = nn.Linear(8, 8)
            self.decoder.weight = self.encoder.weight  # tied weights

        def forward(self, x):
            return self.decoder(self.encoder(self.encoder(x)))  # and one module called twice

    summary = summarize(Tied(), (8,))
    assert summary.params == 8 * 8 + 8 + 8
    assert [row.params for row in summary.rows] == [72, 0, 8]
    assert [row.macs for row in summary.rows] == [64, 64, 64]


def test_frozen_parameters_are_reported_as_frozen():
    model = classic_lenet5()
    for param in model[0].parameters():
        param.requires_grad_(False)
    summary = summarize(model, (1, 32, 32))
    assert summary.params_frozen == 156
    assert summary.params_trainable == 61_706 - 156
    assert summary.rows[0].params_frozen == 156 and summary.rows[0].params_trainable == 0
    table = summary.format_table()
    assert "Frozen" in table and "Frozen params:    156" in table


@pytest.mark.parametrize("name", ["lenet5", "lenet5_modern", "resnet20", "alexnet_paper"])
def test_layer_params_add_up_to_the_total(name):
    from cnnlab.models import create, get_entry

    summary = summarize_builder(lambda: create(name), get_entry(name).default_input)
    assert sum(row.params for row in summary.rows) == summary.params
    assert sum(row.params_trainable for row in summary.rows) == summary.params_trainable


def test_uncalled_modules_and_container_parameters_still_count():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))  # a container's own parameter
            self.used = nn.Linear(4, 4)
            self.unused = nn.Linear(4, 100)

        def forward(self, x):
            return self.used(x) * self.scale

    summary = summarize(Odd(), (4,))
    assert summary.params == 1 + 20 + 500
    assert sum(row.params for row in summary.rows) == summary.params
    assert {row.name for row in summary.rows if not row.called} == {"", "unused"}
    assert "not called" in summary.format_table()


def test_summary_leaves_the_model_as_it_was():
    model = classic_lenet5().train()
    summarize(model, (1, 32, 32))
    assert model.training and all(module.training for module in model.modules())
    assert not model[0]._forward_hooks and not model[0]._forward_pre_hooks
    assert next(model.parameters()).device.type == "cpu"


def test_meta_device_copy_does_not_touch_the_callers_model():
    model = classic_lenet5()
    summary = summarize(model, (1, 32, 32), device="meta")
    assert summary.macs == 416_520
    assert next(model.parameters()).device.type == "cpu"


# ---------------------------------------------------------------------------------------- output


def test_to_dict_and_table():
    summary = summarize(classic_lenet5(), (1, 32, 32))
    data = summary.to_dict()
    assert data["totals"]["params"] == 61_706 and data["totals"]["macs"] == 416_520
    assert data["rows"][0]["output_shape"] == [1, 6, 28, 28]
    assert json.loads(json.dumps(data)) == data
    assert data["rows"][0]["jump"] == [1, 1]
    table = summary.format_table()
    for text in ("Output shape", "MACs", "RF", "Jump", "61,706", "416.52 K", "FLOPs = 2 x MACs", "32 global"):
        assert text in table


def test_wrong_input_is_a_config_error():
    with pytest.raises(ConfigError, match="cannot run on input 3x32x32"):
        summarize(classic_lenet5(), (3, 32, 32))
    with pytest.raises(ConfigError, match="batch size"):
        summarize(classic_lenet5(), (1, 32, 32), batch_size=0)


@pytest.mark.parametrize(
    ("text", "shape"), [("3x224x224", (3, 224, 224)), ("1, 28, 28", (1, 28, 28)), ("3×32×32", (3, 32, 32))]
)
def test_parse_input_shape(text, shape):
    assert parse_input_shape(text) == shape


@pytest.mark.parametrize("text", ["3x224", "3x224x224x2", "axbxc", "3x0x5", "", "3x-1x4"])
def test_parse_input_shape_rejects_bad_text(text):
    with pytest.raises(ConfigError, match="input shape"):
        parse_input_shape(text)


def test_parse_input_shape_other_ranks():
    assert parse_input_shape("3x100", ndim=2) == (3, 100)
    assert parse_input_shape("4x8x8x8", ndim=None) == (4, 8, 8, 8)
