"""Text layers: token embeddings, max-norm, constraints, and the layer-list builder's text entries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import cnnlab
from cnnlab.errors import ConfigError
from cnnlab.layers import (
    MaxNormLinear,
    MaxOverTime,
    Parallel,
    TokenEmbedding,
    apply_constraints,
    build_network,
    constrained_modules,
    load_network,
)
from cnnlab.models import create

KIM_LAYERS = Path(cnnlab.__file__).parent / "examples" / "kim_cnn_layers.yaml"


def test_embedding_is_channels_first_and_pad_is_zero():
    torch.manual_seed(0)
    embedding = TokenEmbedding(10, 4)
    ids = torch.tensor([[3, 5, 0, 0]])
    out = embedding(ids)
    assert out.shape == (1, 4, 4)
    assert torch.equal(out[0, :, 2], torch.zeros(4))
    assert torch.equal(out[0, :, 0], embedding.tables[0].weight[3])
    weight = embedding.tables[0].weight
    assert weight[1:].abs().max() <= 0.25 and weight[1:].abs().max() > 0.2  # Kim's U[-0.25, 0.25]


def test_multichannel_has_a_frozen_and_a_trained_copy():
    embedding = TokenEmbedding(10, 4, mode="multichannel")
    vectors = torch.arange(40, dtype=torch.float32).view(10, 4)
    embedding.load_vectors(vectors)
    frozen, trained = embedding.tables
    assert not frozen.weight.requires_grad and trained.weight.requires_grad
    assert torch.equal(frozen.weight[1:], vectors[1:]) and torch.equal(frozen.weight[0], torch.zeros(4))
    out = embedding(torch.tensor([[2]]))
    assert out.shape == (1, 8, 1)
    assert torch.equal(out[0, :, 0], torch.cat([vectors[2], vectors[2]]))


def test_load_vectors_wrong_shape_is_a_config_error():
    with pytest.raises(ConfigError, match=r"\(10, 5\).*\(10, 4\)"):
        TokenEmbedding(10, 4).load_vectors(torch.zeros(10, 5))


def test_onehot_embedding_has_no_parameters():
    embedding = TokenEmbedding(6, 6, mode="onehot")
    assert sum(p.numel() for p in embedding.parameters()) == 0
    out = embedding(torch.tensor([[0, 3]]))
    assert out.shape == (1, 6, 2)
    assert out[0, :, 0].sum() == 0 and out[0, 3, 1] == 1 and out[0, :, 1].sum() == 1
    with pytest.raises(ConfigError, match="dim == vocabulary size"):
        TokenEmbedding(6, 4, mode="onehot")


def test_max_norm_rescales_only_rows_over_the_limit():
    layer = MaxNormLinear(4, 3, max_norm=3.0)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[4.0, 0, 0, 0], [1.0, 1.0, 0, 0], [6.0, 8.0, 0, 0]]))
    layer.constrain()
    assert torch.allclose(layer.weight[0], torch.tensor([3.0, 0, 0, 0]))
    assert torch.equal(layer.weight[1], torch.tensor([1.0, 1.0, 0, 0]))  # under the limit: untouched
    assert torch.allclose(layer.weight[2], torch.tensor([1.8, 2.4, 0, 0]))


def test_constraints_are_found_and_applied():
    model = nn.Sequential(TokenEmbedding(5, 2), nn.Flatten(), MaxNormLinear(2, 2, max_norm=1.0))
    modules = constrained_modules(model)
    assert [type(m) for m in modules] == [TokenEmbedding, MaxNormLinear]
    with torch.no_grad():
        model[0].tables[0].weight[0].fill_(7.0)
        model[2].weight.fill_(5.0)
    apply_constraints(modules)
    assert torch.equal(model[0].tables[0].weight[0], torch.zeros(2))
    assert torch.allclose(model[2].weight.norm(dim=1), torch.ones(2))


def test_parallel_and_max_over_time():
    x = torch.randn(2, 3, 7)
    parallel = Parallel(nn.Conv1d(3, 4, 2), nn.Conv1d(3, 5, 2))
    assert parallel(x).shape == (2, 9, 6)
    assert torch.equal(MaxOverTime()(x), x.max(dim=2).values)


def test_kim_layer_list_matches_the_zoo_model():
    net, shape = load_network(KIM_LAYERS, vocab_size=500)
    zoo = create("kim_cnn", vocab_size=500)
    assert shape == (56,)
    assert sum(p.numel() for p in net.parameters()) == sum(p.numel() for p in zoo.parameters())
    assert net.input_dtype == torch.long and net.embedding is net.features[0]
    assert isinstance(net.get_classifier(), MaxNormLinear) and net.get_classifier().max_norm == 3.0
    out = net(torch.randint(0, 500, (2, 56)))
    assert out.shape == (2, 2)


def test_embedding_vocab_comes_from_the_task():
    layers = [{"embedding": {"dim": 8}}, {"conv1d": {"out": 4, "kernel": 3}}, "max_over_time", {"fc": "classes"}]
    net = build_network(layers, (20,), num_classes=3, vocab_size=50)
    assert net.features[0].num_embeddings == 50
    assert net(torch.randint(0, 50, (2, 20))).shape == (2, 3)
    with pytest.raises(ConfigError, match="layer 0 \\(embedding\\).*vocabulary size"):
        build_network(layers, (20,), num_classes=3)


def test_embedding_not_first_is_an_error():
    layers = [{"fc": 8}, {"embedding": {"dim": 8, "vocab": 50}}]
    with pytest.raises(ConfigError, match=r"layer 1 \(embedding\): must be the first layer"):
        build_network(layers, (20,))


def test_parallel_branch_shape_mismatch_names_the_branch():
    layers = [
        {"embedding": {"dim": 8, "vocab": 50}},
        {"parallel": [[{"conv1d": {"out": 4, "kernel": 3}}], [{"conv1d": {"out": 4, "kernel": 5}}]]},
    ]
    with pytest.raises(ConfigError, match=r"layer 1 \(parallel\): branch 1 outputs 4×16 but branch 0 outputs 4×18"):
        build_network(layers, (20,))


def test_error_inside_a_branch_names_branch_and_layer():
    layers = [{"embedding": {"dim": 8, "vocab": 50}}, {"parallel": [[{"conv1d": {"out": 4}}]]}]
    with pytest.raises(ConfigError, match=r"layer 1 branch 0 layer 0 \(conv\): field 'kernel' is required"):
        build_network(layers, (20,))
