"""Turning a TrainConfig into the pieces a Trainer needs: device, data, model, run folder."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

import cnnlab
from cnnlab.config import save_config
from cnnlab.errors import ConfigError, RunError
from cnnlab.train.config import TrainConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"device: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} asked for, but CUDA is not available on this machine")
    return device


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


def build_model(spec: dict[str, Any], in_channels: int, num_classes: int, image_size: tuple[int, int]) -> nn.Module:
    if "layers" in spec:
        from cnnlab.layers import build_network

        return build_network(spec["layers"], (in_channels, *image_size), num_classes)
    from cnnlab.models import create

    return create(spec["name"], num_classes=num_classes, in_channels=in_channels, **spec.get("options", {}))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def choose_run_dir(config: TrainConfig, overwrite: bool) -> Path:
    """The run folder; an existing run is never silently overwritten (a numbered sibling is used)."""
    base = Path(config.out or Path("runs") / Path(config.model).stem)
    if overwrite or not (base / "last.pt").exists():
        base.mkdir(parents=True, exist_ok=True)
        return base
    for number in range(2, 10_000):
        candidate = base.with_name(f"{base.name}-{number}")
        if not (candidate / "last.pt").exists():
            candidate.mkdir(parents=True, exist_ok=True)
            return candidate
    raise RunError(f"{base}: too many runs with this name")


def write_run_files(run_dir: Path, config: TrainConfig, meta: dict[str, Any]) -> None:
    save_config(config, run_dir / "config.yaml")
    meta = {
        **meta,
        "versions": {"cnnlab": cnnlab.__version__, "torch": torch.__version__, "python": platform.python_version()},
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))


class Preprocess(nn.Module):
    """uint8 (or [0,1] float) batch -> normalised float32, one fused multiply-add per element."""

    def __init__(self, mean: list[float], std: list[float], channels_last: bool = False) -> None:
        super().__init__()
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / std_t)
        self.register_buffer("shift", -mean_t / std_t)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale / 255.0 if x.dtype == torch.uint8 else self.scale
        x = torch.addcmul(self.shift, x.float(), scale)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
