"""Weight constraints applied after each optimiser step (Kim 2014's max-norm, the PAD row kept at zero).

A layer takes part by having a `constrain()` method; the trainer finds them once and calls them after every step,
so the loop needs no knowledge of which layers have constraints.
"""

from __future__ import annotations

import torch
from torch import nn


def constrained_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of `model` that have a `constrain()` method, in module order."""
    return [module for module in model.modules() if callable(getattr(module, "constrain", None))]


def apply_constraints(modules: list[nn.Module]) -> None:
    """Call each module's `constrain()` outside autograd (after `optimizer.step()`)."""
    with torch.no_grad():
        for module in modules:
            module.constrain()
