"""One registry for every model: `create("vgg16", num_classes=10)` builds any zoo model by name."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    paper: str
    default_input: tuple[int, ...]  # (C, H, W), or (C, D, H, W) for a volume model
    default_classes: int

    @property
    def spatial_dims(self) -> int:
        """2 for image models, 3 for volume models (Conv3d, inputs (N, C, D, H, W))."""
        return len(self.default_input) - 1


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    paper: str, default_input: tuple[int, ...] = (3, 224, 224), default_classes: int = 1000
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name; a duplicate name is an error."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = builder.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelEntry(name, builder, paper, tuple(default_input), default_classes)
        return builder

    return decorator


def _ensure_loaded() -> None:
    # Importing the package runs every family's @register_model.
    import cnnlab.models  # noqa: F401


def _natural_key(name: str) -> list:
    # resnet18 before resnet101: compare digit runs as numbers
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY, key=_natural_key)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY, key=_natural_key))
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; known models: {known}")
    return _REGISTRY[name]


def create(name: str, **options) -> nn.Module:
    """Build a zoo model by name. Every model takes `num_classes` and `in_channels`."""
    entry = get_entry(name)
    try:
        return entry.builder(**options)
    except TypeError as error:
        raise ConfigError(f"model {name!r}: {error}") from error
