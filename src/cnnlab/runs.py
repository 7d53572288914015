"""A trained run folder, loaded back for inference: its task, model with the best weights, preprocessing.

Imports no training code (`cnnlab.train`): evaluation, prediction, export and the server load runs through
the run's task and the model zoo only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab import tasks
from cnnlab.errors import RunError
from cnnlab.io import load_checkpoint


@dataclass
class LoadedRun:
    run_dir: Path
    model: nn.Module
    preprocess: nn.Module
    classes: list[str]
    input_shape: tuple[int, ...]
    meta: dict[str, Any]
    checkpoint_epoch: int | None
    task: tasks.Task | None = None

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
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunError(f"{path}: not valid JSON ({error})") from error


def run_task(meta: dict[str, Any]) -> tasks.Task:
    """The run's task, with its saved options (runs from before tasks existed are classification runs)."""
    entry = meta.get("task") or {"name": "classification"}
    return tasks.create(entry["name"], entry.get("options"))


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model from run.json and load `best.pt` (falling back to `last.pt`)."""
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    if "custom" in meta.get("model", {}):
        raise RunError(
            f"{run_dir}: the model was a custom module ({meta['model']['custom']}); run.json cannot rebuild it"
        )
    task = run_task(meta)
    model = task.build_model(meta["model"], meta)
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file():
        path = run_dir / "last.pt"
    state = load_checkpoint(path, map_location=device)
    model.load_state_dict(state["model"])
    model.to(device).eval()
    preprocess = task.preprocess_from_meta(meta).to(device)
    shape = tuple(meta.get("input_shape", ()))
    return LoadedRun(run_dir, model, preprocess, list(meta.get("classes", [])), shape, meta, state.get("epoch"), task)
