"""Explicit weight penalties: L1 drives weights to exactly zero, L2 shrinks them (both skip biases/norms)."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.train.optim import split_decay_parameters


class WeightPenalty:
    """l1 * sum|w| + l2 * sum w^2 over the weights (not biases or norm parameters)."""

    def __init__(self, model: nn.Module, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = l1, l2
        self.weights = split_decay_parameters(model)[0]

    @property
    def active(self) -> bool:
        return self.l1 > 0 or self.l2 > 0

    def __call__(self) -> torch.Tensor:
        total = torch.zeros((), device=self.weights[0].device)
        if self.l1 > 0:
            total = total + self.l1 * torch.stack([w.abs().sum() for w in self.weights]).sum()
        if self.l2 > 0:
            total = total + self.l2 * torch.stack([w.pow(2).sum() for w in self.weights]).sum()
        return total


def weight_sparsity(model: nn.Module, threshold: float = 1e-3) -> float:
    """Fraction of weights with |w| < threshold: what an L1 penalty should raise."""
    weights = split_decay_parameters(model)[0]
    small = sum(int((w.detach().abs() < threshold).sum()) for w in weights)
    return small / max(sum(w.numel() for w in weights), 1)
