import pytest
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers import ScaledTanh, build_network, load_network, parse_shape

LENET_LIKE = [
    {"conv": {"out": 6, "kernel": 5, "padding": 2}},
    {"act": "tanh"},
    {"pool": {"type": "avg", "size": 2}},
    {"conv": {"out": 16, "kernel": 5}},
    "relu",
    "maxpool",
    "flatten",
    {"fc": 120},
    "bn",
    {"dropout": 0.5},
    {"fc": "classes"},
    "softmax",
]


def test_shapes_are_inferred_and_classes_substituted():
    net = build_network(LENET_LIKE, (1, 28, 28), num_classes=7)
    assert net.head[1].in_features == 16 * 5 * 5
    assert net.get_classifier().out_features == 7
    out = net(torch.randn(4, 1, 28, 28))
    assert out.shape == (4, 7)
    # the softmax head emits log-probabilities
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))
    # 156 + 2,416 + 48,120 + 240 (bn) + 847
    assert sum(p.numel() for p in net.parameters()) == 156 + 2416 + 48120 + 240 + 847


def test_features_and_head_split_at_flatten():
    net = build_network(LENET_LIKE, (1, 28, 28)).eval()
    x = torch.randn(2, 1, 28, 28)
    assert net.forward_features(x).shape == (2, 16, 5, 5)
    assert torch.equal(net.forward_head(net.forward_features(x)), net(x))
    assert net.forward_head(net.forward_features(x), pre_logits=True).shape == (2, 120)


def test_conv1d_and_global_pool():
    net = build_network([{"conv1d": {"out": 8, "kernel": 3}}, "relu", {"global_pool": "max"}, {"fc": 2}], (4, 20))
    assert isinstance(net.features[0], nn.Conv1d)
    assert net(torch.randn(3, 4, 20)).shape == (3, 2)


def test_scaled_tanh_is_lecuns():
    act = ScaledTanh()
    torch.testing.assert_close(act(torch.tensor([1.0, -1.0])), torch.tensor([1.0, -1.0]), atol=2e-4, rtol=0)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([{"convv": {"out": 6, "kernel": 5}}], "layer 0: unknown layer type 'convv'; did you mean 'conv'?"),
        ([{"conv": {"out": 6, "kernel": -5}}], "layer 0 (conv): field 'kernel' must be a positive integer"),
        ([{"conv": {"out": 6, "kernel": 5}}, {"fc": 10}], "layer 1 (fc): input is 6×24×24; add a `flatten`"),
        (["flatten", "flatten"], "layer 1 (flatten): input is already flat (784 features)"),
        (
            [{"conv": {"out": 6, "kernel": 5, "stide": 2}}],
            "layer 0 (conv): unknown field 'stide'; did you mean 'stride'",
        ),
        ([{"conv": {"out": 6, "kernel": 50}}], "layer 0 (conv): does not fit its input 1×28×28"),
        ([{"conv": {"kernel": 5}}], "layer 0 (conv): field 'out' is required"),
        (["flatten", {"dropout": 1.5}], "layer 1 (dropout): field 'p' must be a probability"),
        ([{"pool": {"type": "median"}}], "layer 0 (pool): field 'type' must be 'max' or 'avg'"),
        ([{"act": "swish2"}], "layer 0 (act): unknown activation 'swish2'"),
    ],
)
def test_malformed_layer_lists_name_the_layer_and_field(layers, message):
    with pytest.raises(ConfigError) as info:
        build_network(layers, (1, 28, 28))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_load_network_from_yaml_names_the_file(tmp_path):
    good = tmp_path / "net.yaml"
    good.write_text(
        "input: 3x32x32\nlayers:\n  - conv: {out: 8, kernel: 3, padding: same}\n  - relu\n"
        "  - global_pool\n  - fc: classes\n"
    )
    net, shape = load_network(good, num_classes=5)
    assert shape == (3, 32, 32)
    assert net(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: 3x32x32\nlayers:\n  - conv: {out: 8, kernel: 0}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: layer 0 \(conv\): field 'kernel'"):
        load_network(bad)


@pytest.mark.parametrize("text", ["3x224", "axbxc", "0x3x3", ""])
def test_parse_shape_rejects_bad_text(text):
    if text == "3x224":  # two dimensions is a valid 1-D shape (C×L)
        assert parse_shape(text) == (3, 224)
        return
    with pytest.raises(ConfigError):
        parse_shape(text)
