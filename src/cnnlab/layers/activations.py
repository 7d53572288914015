"""Activation functions by name, including LeCun's scaled tanh."""

from __future__ import annotations

import torch
from torch import nn

from cnnlab.errors import ConfigError


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a) with A = 1.7159, S = 2/3 (LeCun et al. 1998, Appendix A).

    Chosen so that f(1) = 1 and f(-1) = -1, with maximal second derivative at +-1.
    """

    def __init__(self, amplitude: float = 1.7159, slope: float = 2.0 / 3.0) -> None:
        super().__init__()
        self.amplitude = amplitude
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leaky_relu": lambda slope=0.01: nn.LeakyReLU(slope, inplace=True),
    "elu": lambda alpha=1.0: nn.ELU(alpha, inplace=True),
    "gelu": lambda: nn.GELU(),
    "tanh": lambda: nn.Tanh(),
    "sigmoid": lambda: nn.Sigmoid(),
    "scaled_tanh": lambda: ScaledTanh(),
    "lecun_tanh": lambda: ScaledTanh(),
    "silu": lambda: nn.SiLU(inplace=True),
    "identity": lambda: nn.Identity(),
}


def get_activation(name: str, **options) -> nn.Module:
    """Build an activation module by name (`relu`, `leaky_relu`, `scaled_tanh`, ...)."""
    key = name.lower().replace("-", "_")
    if key not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")
    try:
        return ACTIVATIONS[key](**options)
    except TypeError as error:
        raise ConfigError(f"activation {name!r}: {error}") from error
