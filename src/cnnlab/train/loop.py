"""The training loop: it owns the order of things; callbacks own every side effect."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.train.callbacks.base import Callback
from cnnlab.train.checkpoint import capture_rng_state, restore_rng_state
from cnnlab.train.regularization import WeightPenalty

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class StepSettings:
    """What changes the arithmetic of one step (kept apart from bookkeeping)."""

    device: torch.device
    precision: str = "fp32"  # fp32 | bf16 | fp16
    channels_last: bool = False
    label_smoothing: float = 0.0
    grad_clip: float | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def soft_or_hard_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    # Mixup/CutMix give soft (probability) targets; F.cross_entropy takes either form.
    return F.cross_entropy(logits.float(), target, label_smoothing=smoothing)


def count_correct(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    hard = target.argmax(1) if target.ndim == 2 else target
    return (logits.argmax(1) == hard).sum()


class Trainer:
    """Runs epochs of `train_batches()` and `validate()`, calling callbacks at fixed points."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        train_batches: Callable[[], Iterable[Batch]],
        steps_per_epoch: int,
        prepare: Callable[[torch.Tensor], torch.Tensor],
        validate: Callable[[nn.Module], dict[str, float]],
        settings: StepSettings,
        epochs: int,
        scheduler: Any = None,
        schedule_unit: str = "step",
        penalty: WeightPenalty | None = None,
        callbacks: list[Callback] | None = None,
        generator: torch.Generator | None = None,
        unwrapped_model: nn.Module | None = None,
    ) -> None:
        self.model = model
        self.unwrapped_model = unwrapped_model or model  # the module whose state_dict is saved (not compiled/DDP)
        self.optimizer, self.scheduler, self.schedule_unit = optimizer, scheduler, schedule_unit
        self.train_batches, self.steps_per_epoch, self.prepare = train_batches, steps_per_epoch, prepare
        self.validate, self.settings, self.epochs = validate, settings, epochs
        self.penalty = penalty if penalty is not None and penalty.active else None
        self.callbacks = callbacks or []
        self.generator = generator
        self.scaler = torch.amp.GradScaler(settings.device.type, enabled=settings.precision == "fp16")
        self.history: list[dict[str, float]] = []
        self.start_epoch = 1
        self.should_stop = False
        self.restored_epoch: int | None = None
        self._loss_sum = torch.zeros((), device=settings.device)
        self._correct = torch.zeros((), device=settings.device, dtype=torch.long)
        self._seen = 0

    # -- one step -----------------------------------------------------------------------------------------
    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        s = self.settings
        x = self.prepare(x.to(s.device, non_blocking=True))
        y = y.to(s.device, non_blocking=True)
        with s.autocast():
            logits = self.model(x)
        loss = soft_or_hard_cross_entropy(logits, y, s.label_smoothing)
        objective = loss + self.penalty() if self.penalty else loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        if s.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), s.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None and self.schedule_unit == "step":
            self.scheduler.step()
        # Accumulate on the device: no .item() (a host sync) per step.
        self._loss_sum += loss.detach() * len(y)
        self._correct += count_correct(logits.detach(), y)
        self._seen += len(y)

    def running_metrics(self) -> tuple[float, float]:
        seen = max(self._seen, 1)
        return float(self._loss_sum) / seen, float(self._correct) / seen

    # -- one epoch ----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        self._loss_sum.zero_()
        self._correct.zero_()
        self._seen = 0
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        for step, (x, y) in enumerate(self.train_batches(), start=1):
            self.train_step(x, y)
            for callback in self.callbacks:
                callback.on_batch_end(self, step, len(y))
        loss, accuracy = self.running_metrics()
        seconds = time.perf_counter() - start
        return {
            "epoch": epoch,
            "train_loss": loss,
            "train_accuracy": accuracy,
            "lr": lr,
            "epoch_seconds": seconds,
            "images_per_second": self._seen / max(seconds, 1e-9),
        }

    def fit(self) -> list[dict[str, float]]:
        for callback in self.callbacks:
            callback.on_fit_start(self)
        for epoch in range(self.start_epoch, self.epochs + 1):
            if self.should_stop:
                break
            for callback in self.callbacks:
                callback.on_epoch_start(self, epoch)
            metrics = self.train_epoch(epoch)
            val_start = time.perf_counter()
            metrics.update(self.validate(self.model))
            metrics["val_seconds"] = time.perf_counter() - val_start
            if self.scheduler is not None and self.schedule_unit == "epoch":
                self.scheduler.step(metrics.get("val_loss", metrics["train_loss"]))
            self.history.append(metrics)
            if not math.isfinite(metrics["train_loss"]):
                self.should_stop = True  # diverged: nothing more to learn; diagnose reports it
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch, metrics)
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return self.history

    # -- state for checkpoints ----------------------------------------------------------------------------
    def full_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.unwrapped_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(self.generator),
            "history": list(self.history),
            "should_stop": self.should_stop,
            "callbacks": {type(cb).__name__: cb.state_dict() for cb in self.callbacks},
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"], self.generator)
        self.history = list(state["history"])
        self.should_stop = state["should_stop"]
        self.start_epoch = state["epoch"] + 1
        for callback in self.callbacks:
            saved = state["callbacks"].get(type(callback).__name__)
            if saved:
                callback.load_state_dict(saved)
