"""A model from its spec as run.json stores it: a zoo name with options, or a YAML layer list."""

from __future__ import annotations

from typing import Any

from torch import nn


def build_from_spec(spec: dict[str, Any], in_channels: int, num_classes: int, image_size: tuple[int, ...]) -> nn.Module:
    if "layers" in spec:
        from cnnlab.layers import build_network

        return build_network(spec["layers"], (in_channels, *image_size), num_classes)
    from cnnlab.models.registry import create

    return create(spec["name"], num_classes=num_classes, in_channels=in_channels, **spec.get("options", {}))
