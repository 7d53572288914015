"""kim_cnn's four variants and char_cnn: parameter counts from the papers' formulas, gradients, constraints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.layers import apply_constraints, constrained_modules
from cnnlab.models import create, get_entry

V, D, F, K = 60, 6, 5, 3  # vocabulary, embedding size, filters per width, classes
WIDTHS = (3, 4, 5)


def _counts(model: nn.Module) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return trainable, frozen


def _kim(variant: str, **options) -> nn.Module:
    torch.manual_seed(0)
    return create("kim_cnn", num_classes=K, vocab_size=V, embedding_dim=D, filters=F, variant=variant, **options)


@pytest.mark.parametrize(
    ("variant", "trainable_tables", "frozen_tables"),
    [("rand", 1, 0), ("static", 0, 1), ("non-static", 1, 0), ("multichannel", 1, 1)],
)
def test_kim_variants_parameter_counts(variant, trainable_tables, frozen_tables):
    channels = D * (trainable_tables + frozen_tables)
    convs = sum(h * channels * F + F for h in WIDTHS)
    fc = len(WIDTHS) * F * K + K
    assert _counts(_kim(variant)) == (trainable_tables * V * D + convs + fc, frozen_tables * V * D)


def test_kim_paper_size():
    # Kim's configuration on MR's vocabulary (18,765 words, 300-d): 3 x 100 filters, 2 classes.
    trainable, frozen = _counts(create("kim_cnn", vocab_size=18765, variant="multichannel"))
    assert frozen == 18765 * 300
    assert trainable == 18765 * 300 + sum(h * 600 * 100 + 100 for h in (3, 4, 5)) + 300 * 2 + 2


@pytest.mark.parametrize("variant", ["rand", "static", "multichannel"])
def test_kim_gradients_reach_every_trainable_parameter(variant):
    model = _kim(variant).train()
    ids = torch.randint(1, V, (4, 9))
    ids[0, 6:] = 0  # a padded sentence
    out = model(ids)
    assert out.shape == (4, K)
    nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    for name, param in model.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    for table in model.embedding.tables:
        if table.weight.requires_grad:
            assert torch.equal(table.weight.grad[0], torch.zeros(D))  # PAD gets no gradient


def test_kim_interface():
    model = _kim("rand").eval()
    ids = torch.randint(1, V, (2, 7))
    features = model.forward_features(ids)
    assert features.shape == (2, len(WIDTHS) * F)
    assert torch.equal(model.forward_head(features), model(ids))
    assert model.input_dtype == torch.long and model.text_model
    model.reset_classifier(5)
    assert model(ids).shape == (2, 5) and model.get_classifier().max_norm == 3.0
    entry = get_entry("kim_cnn")
    assert entry.default_input == (56,) and entry.default_classes == 2


def test_max_norm_holds_after_a_big_step_and_pad_stays_zero():
    model = _kim("rand", max_norm=3.0)
    with torch.no_grad():
        model.fc.weight[1].copy_(torch.full((len(WIDTHS) * F,), 0.01))  # a row far under the limit
    frozen_row = model.fc.weight[1].clone()
    optimiser = torch.optim.SGD(model.parameters(), lr=50.0, weight_decay=0.1)
    modules = constrained_modules(model)
    ids = torch.randint(0, V, (8, 10))
    model.fc.weight.register_hook(lambda grad: grad * torch.tensor([[1.0], [0.0], [1.0]]))  # row 1: decay only
    for _ in range(3):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(ids), torch.randint(0, K, (8,))).backward()
        optimiser.step()
        apply_constraints(modules)
    norms = model.fc.weight.norm(dim=1)
    assert (norms <= 3.0 + 1e-6).all() and norms.max() > 2.99  # the big step pushed a row to the limit
    # weight decay alone moved the untouched row; it is under the limit, so the constraint left it as SGD made it
    assert torch.allclose(model.fc.weight[1], frozen_row * (1 - 50.0 * 0.1) ** 3)
    assert torch.equal(model.embedding.tables[0].weight[0], torch.zeros(D))


def test_ngram_activations_point_at_the_winning_window():
    model = _kim("rand").eval()
    ids = torch.randint(1, V, (2, 8))
    with torch.no_grad():
        results = model.ngram_activations(ids)
        assert [width for width, _, _ in results] == list(WIDTHS)
        width, values, starts = results[1]  # width 4
        conv = model.convs[1]
        vectors = model.embedding(ids)  # (N, D, L)
        n, f = 1, 2
        start = int(starts[n, f])
        padded = nn.functional.pad(vectors, (width - 1, width - 1))
        window = padded[n, :, start + width - 1 : start + 2 * width - 1]
        by_hand = torch.relu((conv.weight[f] * window).sum() + conv.bias[f])
        assert torch.allclose(by_hand, values[n, f], atol=1e-6)
        every_window = [
            torch.relu((conv.weight[f] * padded[n, :, t : t + width]).sum() + conv.bias[f])
            for t in range(8 + width - 1)
        ]
        assert torch.allclose(values[n, f], torch.stack(every_window).max(), atol=1e-6)
        assert -(width - 1) <= start <= 7


def test_char_cnn_parameter_count_and_forward():
    torch.manual_seed(0)
    alphabet, classes = 72, 4
    model = create("char_cnn", num_classes=classes, vocab_size=alphabet)
    convs = 7 * alphabet * 256 + 256 + 7 * 256 * 256 + 256 + 4 * (3 * 256 * 256 + 256)
    fcs = 34 * 256 * 1024 + 1024 + 1024 * 1024 + 1024 + 1024 * classes + classes
    assert _counts(model) == (convs + fcs, 0)
    model.eval()
    ids = torch.randint(0, alphabet, (2, 1014))
    with torch.no_grad():
        assert model(ids).shape == (2, classes)
        assert model.forward_features(ids).shape == (2, 256, 34)
    assert get_entry("char_cnn").default_input == (1014,)
