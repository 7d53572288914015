"""Early stopping on any logged metric; the best weights are restored at the end, stopped early or not."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from cnnlab.errors import ConfigError
from cnnlab.train.callbacks.base import Callback


def infer_mode(metric: str, task: Any = None) -> str:
    """The direction a metric is declared with by its task (any registered task when `task` is None).

    Raises:
        ConfigError: no task declares the metric, so whether higher is better is unknown.
    """
    from cnnlab.tasks import metric_mode

    mode = metric_mode(metric, task)
    if mode is None:
        raise ConfigError(
            f"monitor {metric!r}: no task declares this metric, so its direction is unknown; "
            "set early_stopping.mode to min or max"
        )
    return mode


class MetricTracker:
    """Best value of one metric under a mode and min_delta.

    One tracker is shared by early stopping, `best.pt` and the weights restored at the end, so all three
    agree on the best epoch. `update` is idempotent within an epoch: every holder may call it.
    """

    def __init__(self, monitor: str, mode: str = "auto", min_delta: float = 0.0, task: Any = None) -> None:
        self.monitor = monitor
        self.mode = infer_mode(monitor, task) if mode == "auto" else mode
        if self.mode not in ("min", "max"):
            raise ConfigError(f"early_stopping.mode must be min, max or auto, got {mode!r}")
        self.min_delta = abs(min_delta)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self._last: tuple[int, bool] | None = None

    def improved(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """True if this epoch improved on the best (by more than min_delta).

        Raises:
            ConfigError: the monitored metric is not among the logged ones (named in the message).
        """
        if self._last is not None and self._last[0] == epoch:
            return self._last[1]
        if self.monitor not in metrics:
            logged = ", ".join(sorted(k for k in metrics if k.startswith(("train_", "val_"))))
            raise ConfigError(f"monitor {self.monitor!r} is not logged by this run; logged metrics: {logged}")
        value = float(metrics[self.monitor])
        better = self.improved(value)
        if better:
            self.best, self.best_epoch = value, epoch
        self._last = (epoch, better)
        return better

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = state["best"], state["best_epoch"]


class EarlyStopping(Callback):
    """Stop after `patience` epochs without improvement; keep the best weights and restore them at the end.

    With patience=None it never stops but still restores the best epoch's weights (Keras'
    restore_best_weights, applied whether or not training stopped early). Pass `tracker` to share the
    engine's tracker (then monitor, mode and min_delta come from it).
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int | None = None,
        mode: str = "auto",
        min_delta: float = 0.0,
        restore_best: bool = True,
        tracker: MetricTracker | None = None,
    ) -> None:
        self.tracker = tracker or MetricTracker(monitor, mode, min_delta)
        self.patience = patience
        self.restore_best = restore_best
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict[str, Any] | None = None

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.tracker.update(epoch, metrics):
            self.wait = 0
            self.best_weights = copy.deepcopy(_weights(trainer))
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def on_fit_end(self, trainer) -> None:
        if self.restore_best and self.best_weights is not None:
            trainer.unwrapped_model.load_state_dict(self.best_weights["model"])
            modules = getattr(trainer, "extra_modules", None)
            if modules is not None and self.best_weights.get("modules"):
                modules.load_state_dict(self.best_weights["modules"])
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
        weights = state.get("best_weights")
        if weights is not None and "model" not in weights:  # checkpoints from before extra modules existed
            weights = {"model": weights, "modules": {}}
        self.best_weights = weights


def _weights(trainer) -> dict[str, Any]:
    modules = getattr(trainer, "extra_modules", None)
    state: dict[str, torch.Tensor] = modules.state_dict() if modules is not None else {}
    return {"model": trainer.unwrapped_model.state_dict(), "modules": state}
