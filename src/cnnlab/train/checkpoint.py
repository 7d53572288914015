"""The RNG states an exact resume needs, and last.pt read back for a resume.

Atomic writes and checkpoint loading live in `cnnlab.io`. Everything here is stored as tensors and plain values
(lists, tuples, numbers), so that checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.errors import RunError
from cnnlab.io import atomic_save, load_checkpoint

__all__ = [
    "TRAINING_STATE_KEYS",
    "atomic_save",
    "capture_rng_state",
    "load_checkpoint",
    "load_training_state",
    "restore_rng_state",
    "seed_everything",
]

# What `Trainer.full_state` writes and `Trainer.load_full_state` reads; best.pt holds only model and modules.
TRAINING_STATE_KEYS = (
    "epoch",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "rng",
    "history",
    "should_stop",
    "callbacks",
)


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every generator a training step draws from: Python's, numpy's, torch's (CPU and CUDA) and the data's."""
    name, key, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),  # (version, tuple of 625 ints, gauss_next): plain values already
        # numpy's MT19937 key is a uint32 array, which weights-only loading refuses: kept as a list of ints.
        "numpy": (str(name), key.tolist(), int(position), int(has_gauss), float(cached_gaussian)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if generator is not None:
        state["data"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Undo `capture_rng_state` exactly (also for states of older checkpoints, with numpy arrays inside)."""
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    name, key, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("data") is not None:
        generator.set_state(state["data"])


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """last.pt for a resume: a safe-loaded checkpoint that also holds all that `Trainer.load_full_state` reads.

    Raises:
        RunError: the file is not a checkpoint (see `load_checkpoint`) or lacks the training state, e.g. a
            best.pt copied over last.pt.
    """
    state = load_checkpoint(path, map_location)
    missing = [key for key in TRAINING_STATE_KEYS if key not in state]
    if missing:
        raise RunError(
            f"{path}: not a resumable checkpoint (no {', '.join(missing)} in it); "
            "only the last.pt a training writes holds the optimizer and RNG states a resume needs"
        )
    return state


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
