"""A trained run folder, loaded back for inference: its task, model with the best weights, preprocessing.

Imports no training code (`cnnlab.train`): evaluation, prediction, export and the server load runs through
the run's task and the model zoo only. Every file of a run folder is read here (run.json, results.json,
metrics.jsonl, config.yaml), so a damaged one is one RunError naming the file and what is wrong with it,
whichever command met it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab import tasks
from cnnlab.errors import CnnlabError, ConfigError, RunError
from cnnlab.io import load_checkpoint
from cnnlab.runfiles import (  # noqa: F401  (re-exported: commands read run files through cnnlab.runs)
    PATH_FIELDS,
    RUN_CONFIG_FIELDS,
    _cut,
    check_run_data,
    check_run_meta,
    read_json_file,
    read_json_object,
    read_metrics,
    read_results,
    read_run_config,
    read_run_meta,
    resolve_saved_paths,
    saved_paths,
)


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
        return read_json_file(self.run_dir / name)


# -- where a command writes ----------------------------------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_writable(folder: Path, target: Path) -> None:
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        because = f" (cannot write {target})" if existing != target else ""
        raise RunError(f"{existing}: not a folder{because}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunError(f"{existing}: permission denied (cannot write there)")


def check_output_folder(folder: str | Path) -> Path:
    """Refuse, before any work, a folder that cannot be made or written: a file in its place or above it, or no
    write permission on the nearest folder that exists."""
    folder = Path(folder)
    _check_writable(folder, folder)
    return folder


def check_output_file(path: str | Path) -> Path:
    """`check_output_folder` for the file's folder, and no folder at the file's own place. (A read-only file
    itself is no obstacle: files are replaced by rename.)"""
    path = Path(path)
    if path.is_dir():
        raise RunError(f"{path}: is a folder; give a file name")
    _check_writable(path.parent, path)
    return path


@contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """An OSError while writing `path` becomes one line naming `path` (not a temp file beside it) and why."""
    try:
        yield
    except OSError as error:
        raise RunError(f"{path}: {error.strerror or error}") from error


# -- the model back from a run folder -------------------------------------------------------------------------


# The command that does for a task's runs what a classification command does.
TASK_COMMANDS = {
    "detection": {"evaluate": "cnnlab detect evaluate", "predict": "cnnlab detect predict"},
    "faces": {"evaluate": "cnnlab faces evaluate", "predict": "cnnlab faces identify"},
    "text": {"evaluate": "cnnlab text evaluate", "predict": "cnnlab text predict"},
}


def require_classification(run: LoadedRun, command: str) -> None:
    """Refuse, in one line naming the right command, a run of another task given to a classification command."""
    name = run.task.name if run.task is not None else "classification"
    if name != "classification":
        other = TASK_COMMANDS.get(name, {}).get(command)
        hint = f"; use `{other} {run.run_dir}`" if other else ""
        raise ConfigError(f"{run.run_dir}: a {name} run, which `cnnlab {command}` does not handle{hint}")


def run_task(meta: dict[str, Any]) -> tasks.Task:
    """The run's task, with its saved options (runs from before tasks existed are classification runs)."""
    entry = meta.get("task") or {"name": "classification"}
    return tasks.create(entry["name"], entry.get("options"))


def _rebuild(meta: dict[str, Any], path: Path) -> tuple[tasks.Task, nn.Module, nn.Module]:
    """The task, the (untrained) model and the preprocessing that run.json describes; its faults name it."""
    try:
        task = run_task(meta)
        return task, task.build_model(_without_start_weights(meta["model"]), meta), task.preprocess_from_meta(meta)
    except KeyError as error:
        raise RunError(f"{path}: missing field {error.args[0]!r}; the file is damaged") from error
    except CnnlabError as error:
        raise RunError(f"{path}: {error}") from error
    except (TypeError, ValueError, IndexError, RuntimeError) as error:
        raise RunError(f"{path}: cannot rebuild the model ({type(error).__name__}: {error})") from error


def _without_start_weights(spec: dict[str, Any]) -> dict[str, Any]:
    """The model spec without the weight file training started from: the checkpoint holds the trained weights,
    and that file may be gone by now."""
    options = spec.get("options") if isinstance(spec, dict) else None
    if not isinstance(options, dict) or "backbone_weights" not in options:
        return spec
    return {**spec, "options": {k: v for k, v in options.items() if k != "backbone_weights"}}


def _load_weights(model: nn.Module, state: dict[str, Any], path: Path, meta_path: Path) -> None:
    weights = state.get("model") if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise RunError(f"{path}: not a cnnlab checkpoint (no model weights)")
    try:
        model.load_state_dict(weights)
    except RuntimeError as error:
        # torch's message: a header line, then one line per mismatch; the first mismatch is the telling one.
        lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
        first = _cut(lines[min(1, len(lines) - 1)], 200)
        raise RunError(f"{path}: the weights do not fit the model {meta_path} describes ({first})") from error


def _fields_needed(meta: dict[str, Any]) -> tuple[str, ...]:
    return ("model", "classes") if "num_classes" in meta else ("model",)


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model from run.json and load `best.pt` (falling back to `last.pt`)."""
    run_dir = Path(run_dir)
    meta = read_run_meta(run_dir)
    meta_path = run_dir / "run.json"
    # A field the task reads is named by the task's own KeyError; these two are read here. A model with K
    # classes has K names (a task without classes, e.g. a regression, records neither).
    missing = [key for key in _fields_needed(meta) if key not in meta]
    if missing:
        raise RunError(f"{meta_path}: missing field {missing[0]!r}; the file is damaged")
    if "custom" in meta["model"]:
        raise RunError(
            f"{run_dir}: the model was a custom module ({meta['model']['custom']}); run.json cannot rebuild it"
        )
    task, model, preprocess = _rebuild(meta, meta_path)
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file():
        path = run_dir / "last.pt"
    state = load_checkpoint(path, map_location=device)
    _load_weights(model, state, path, meta_path)
    model.to(device).eval()
    epoch = state.get("epoch")
    shape, classes = tuple(meta.get("input_shape", ())), [str(c) for c in meta.get("classes", [])]
    return LoadedRun(run_dir, model, preprocess.to(device), classes, shape, meta, epoch, task)
