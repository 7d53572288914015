"""A trained run folder, loaded back: model with its best weights, preprocessing, class names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import RunError
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.setup import Preprocess, build_model


@dataclass
class LoadedRun:
    run_dir: Path
    model: nn.Module
    preprocess: Preprocess
    classes: list[str]
    input_shape: tuple[int, int, int]
    meta: dict[str, Any]
    checkpoint_epoch: int | None

    def read_json(self, name: str) -> Any:
        path = self.run_dir / name
        return json.loads(path.read_text()) if path.is_file() else None


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder not found")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a cnnlab run folder (no run.json); train one with `cnnlab train`")
    return json.loads(path.read_text())


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model from run.json and load `best.pt` (falling back to `last.pt`)."""
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    shape = tuple(meta["input_shape"])
    model = build_model(meta["model"], shape[0], meta["num_classes"], shape[1:])
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file():
        path = run_dir / "last.pt"
    state = load_checkpoint(path, map_location=device)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    norm = meta["normalization"]
    preprocess = Preprocess(norm["mean"], norm["std"]).to(device)
    return LoadedRun(run_dir, model, preprocess, list(meta["classes"]), shape, meta, state.get("epoch"))
