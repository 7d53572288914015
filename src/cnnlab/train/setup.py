"""Turning a TrainConfig into the pieces a Trainer needs: the model spec, the run folder and its files."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

import cnnlab
from cnnlab.config import save_config
from cnnlab.data.preprocess import Preprocess
from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError
from cnnlab.io import atomic_write_json
from cnnlab.models import build_from_spec
from cnnlab.train.config import TrainConfig

__all__ = [
    "Preprocess",
    "build_model",
    "count_parameters",
    "model_spec",
    "resolve_device",
    "write_run_files",
]


def model_spec(config: TrainConfig) -> dict[str, Any]:
    """What rebuilds the model later (stored in run.json): a zoo name + options, or a layer list."""
    if config.layers is not None:
        return {"layers": list(config.layers)}
    if config.model.endswith((".yaml", ".yml")):
        from cnnlab.config import read_yaml

        spec = read_yaml(config.model)
        if "layers" not in spec:
            raise ConfigError(f"{config.model}: missing the `layers:` list")
        return {"layers": spec["layers"], "source": config.model}
    options = dict(config.model_options)
    if config.dropout is not None:
        options["dropout"] = config.dropout
    if config.batch_norm is not None:
        options["batch_norm"] = config.batch_norm
    return {"name": config.model, "options": options}


def build_model(spec: dict[str, Any], in_channels: int, num_classes: int, image_size: tuple[int, ...]) -> nn.Module:
    return build_from_spec(spec, in_channels, num_classes, image_size)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def write_run_files(run_dir: Path, config: TrainConfig, meta: dict[str, Any]) -> None:
    """run.json first: it marks the folder as a cnnlab run, so a kill after it never leaves a foreign folder."""
    meta = {
        **meta,
        "versions": {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    atomic_write_json(run_dir / "run.json", meta)
    save_config(config, run_dir / "config.yaml")
