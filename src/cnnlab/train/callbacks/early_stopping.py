"""Early stopping on any logged metric; the best weights are restored at the end, stopped early or not."""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import torch

from cnnlab.train.callbacks.base import Callback


def infer_mode(metric: str) -> str:
    """`min` for losses and errors, `max` for accuracies, AUC, F1 and the like."""
    lowered = metric.lower()
    return "min" if any(word in lowered for word in ("loss", "error", "err", "mae", "mse")) else "max"


class MetricTracker:
    """Best value of one metric under a mode and min_delta (shared by early stopping and best.pt)."""

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0) -> None:
        self.monitor = monitor
        self.mode = infer_mode(monitor) if mode == "auto" else mode
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be min, max or auto, got {mode!r}")
        self.min_delta = abs(min_delta)
        self.best: float | None = None
        self.best_epoch: int | None = None

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, metrics: dict[str, float]) -> bool | None:
        """True if improved, False if not, None if the metric is missing (warns once, naming what exists)."""
        if self.monitor not in metrics:
            warnings.warn(
                f"monitored metric {self.monitor!r} is not logged; available: {', '.join(sorted(metrics))}",
                stacklevel=2,
            )
            return None
        value = float(metrics[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(Callback):
    """Stop after `patience` epochs without improvement; keep the best weights and restore them at the end.

    With patience=None it never stops but still restores the best epoch's weights (Keras'
    restore_best_weights, applied whether or not training stopped early).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int | None = None,
        mode: str = "auto",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ) -> None:
        self.tracker = MetricTracker(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best = restore_best
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        improved = self.tracker.update(epoch, metrics)
        if improved is None:
            return
        if improved:
            self.wait = 0
            self.best_weights = copy.deepcopy(trainer.unwrapped_model.state_dict())
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def on_fit_end(self, trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.unwrapped_model.load_state_dict(self.best_weights)
            trainer.restored_epoch = self.tracker.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.tracker.state_dict(),
            "wait": self.wait,
            "stopped_epoch": self.stopped_epoch,
            "best_weights": self.best_weights,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tracker.load_state_dict(state)
        self.wait, self.stopped_epoch = state["wait"], state["stopped_epoch"]
        self.best_weights = state.get("best_weights")
