"""The RNG states an exact resume needs (atomic writes and checkpoint loading live in `cnnlab.io`)."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from cnnlab.io import atomic_save, load_checkpoint

__all__ = ["atomic_save", "capture_rng_state", "load_checkpoint", "restore_rng_state", "seed_everything"]


def capture_rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    if generator is not None:
        state["data"] = generator.get_state()
    return state


def restore_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and state.get("data") is not None:
        generator.set_state(state["data"])


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
