"""cnnlab's Adadelta against torch.optim.Adadelta: dense groups and row-lazy embedding groups give the same numbers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.train.adadelta import Adadelta, embedding_parameters


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Embedding(50, 8, padding_idx=0), nn.Flatten(), nn.Linear(4 * 8, 3))


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 40) -> None:
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        # Few distinct tokens per batch, so most rows sit out most steps (the lazy path's case).
        ids = torch.randint(0, 12, (6, 4), generator=generator) * torch.randint(1, 4, (1,), generator=generator)
        target = torch.randint(0, 3, (6,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(ids.clamp(max=49)), target).backward()
        optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_lazy_rows_match_torch_adadelta(weight_decay: float) -> None:
    reference, lazy = _net(), _net()
    _train(
        reference, torch.optim.Adadelta(reference.parameters(), lr=1.0, rho=0.95, eps=1e-6, weight_decay=weight_decay)
    )
    tables = embedding_parameters(lazy)
    params = list(lazy.parameters())
    groups = [
        {"params": [p for p in params if id(p) not in tables]},
        {"params": [p for p in params if id(p) in tables], "lazy_rows": True},
    ]
    optimizer = Adadelta(groups, lr=1.0, rho=0.95, eps=1e-6, weight_decay=weight_decay)
    _train(lazy, optimizer)
    for (name, a), b in zip(reference.named_parameters(), lazy.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"{name} differs")


def test_lazy_rows_settle_to_the_dense_running_averages() -> None:
    reference, lazy = _net(), _net()
    dense_opt = torch.optim.Adadelta(reference.parameters(), lr=1.0, rho=0.9)
    _train(reference, dense_opt, steps=25)
    tables = embedding_parameters(lazy)
    params = list(lazy.parameters())
    optimizer = Adadelta(
        [{"params": [p for p in params if id(p) not in tables]}, {"params": [lazy[0].weight], "lazy_rows": True}],
        lr=1.0,
        rho=0.9,
    )
    _train(lazy, optimizer, steps=25)
    optimizer.settle()
    dense_state, lazy_state = dense_opt.state[reference[0].weight], optimizer.state[lazy[0].weight]
    torch.testing.assert_close(lazy_state["square_avg"], dense_state["square_avg"], rtol=1e-5, atol=1e-9)
    torch.testing.assert_close(lazy_state["acc_delta"], dense_state["acc_delta"], rtol=1e-5, atol=1e-9)


def test_rows_never_used_stay_put() -> None:
    model = _net()
    before = model[0].weight.detach().clone()
    optimizer = Adadelta([{"params": [model[0].weight], "lazy_rows": True}, {"params": list(model[2].parameters())}])
    _train(model, optimizer, steps=5)
    used = torch.zeros(50, dtype=torch.bool)
    used[:37] = True  # ids drawn are < 12 times < 4, so rows 37.. are never looked up
    assert torch.equal(model[0].weight[~used], before[~used])
    assert not torch.equal(model[0].weight[1:12], before[1:12])
