"""The training loop: it owns the order of things; the task owns what a batch means; callbacks own side effects."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.errors import TrainingDiverged
from cnnlab.layers.constraints import apply_constraints, constrained_modules
from cnnlab.tasks.base import StepContext, StepOutput, Task
from cnnlab.train.callbacks.base import Callback
from cnnlab.train.checkpoint import capture_rng_state, restore_rng_state
from cnnlab.train.regularization import WeightPenalty


@dataclass
class StepSettings:
    """What changes the arithmetic of one step (kept apart from bookkeeping)."""

    device: torch.device
    precision: str = "fp32"  # fp32 | bf16 | fp16
    grad_clip: float | None = None

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


class DivergenceWatch:
    """Brackets the steps in which the running loss sum stopped being finite, without stalling the device.

    Every `every` steps it queues a device-to-host copy of `isfinite(loss sum)` and reads the copy queued at
    the previous check, which finished long ago: no step waits on the device for it (on the CPU both are
    immediate). A sum stays NaN/inf once one step's loss was, so the last finite check and the first
    non-finite one bracket the step that diverged. Its cost: per 25 steps one `isfinite` on a scalar and, on
    CUDA, one asynchronous 1-byte copy; no host sync is added to any step.
    """

    def __init__(self, every: int = 25) -> None:
        self.every = every
        self.start_epoch()

    def start_epoch(self) -> None:
        self.last_finite_step = 0
        self.first_bad_step: int | None = None
        self._pending: tuple[int, torch.Tensor, Any] | None = None

    def after_step(self, step: int, loss_sum: torch.Tensor | None) -> bool:
        """Check every `every` steps; True once the loss is known to have diverged (the epoch may stop)."""
        if loss_sum is None or step % self.every:
            return False
        self._read_pending()
        if self.first_bad_step is None:
            self._pending = (step, *_queue_host_copy(torch.isfinite(loss_sum)))
        return self.first_bad_step is not None

    def diverged_steps(self, steps_done: int, finite_at_end: bool) -> tuple[int, int] | None:
        """At the end of the epoch (its sums already read): the (first, last) steps that may have diverged."""
        self._read_pending()
        if finite_at_end and self.first_bad_step is None:
            return None
        return self.last_finite_step + 1, self.first_bad_step or steps_done

    def _read_pending(self) -> None:
        if self._pending is None:
            return
        step, flag, done = self._pending
        self._pending = None
        if done is not None:
            done.synchronize()
        if bool(flag):
            self.last_finite_step = step
        elif self.first_bad_step is None:
            self.first_bad_step = step


def _queue_host_copy(flag: torch.Tensor) -> tuple[torch.Tensor, Any]:
    """(host tensor, CUDA event to wait on before reading it, or None where the value is already there)."""
    if flag.device.type != "cuda":
        return flag, None
    host = torch.empty(flag.shape, dtype=flag.dtype, pin_memory=True)  # pinned: the copy is truly asynchronous
    host.copy_(flag, non_blocking=True)
    done = torch.cuda.Event()
    done.record()
    return host, done


def divergence_message(
    epoch: int,
    steps: tuple[int, int],
    steps_per_epoch: int,
    loss: float,
    lr: float,
    peak_lr: float,
    settings: StepSettings,
) -> str:
    """One line: where the loss blew up, the likely cause and what to try (as `cnnlab train` flags)."""
    first, last = steps
    where = f"step {first}" if first == last else f"steps {first}-{last}"
    tries = [f"--optimizer.lr {peak_lr / 10:g}"] + ([] if settings.grad_clip else ["--grad-clip 1"])
    if settings.precision == "fp16":
        cause = "fp16 likely overflowed (its largest number is 65504): try --precision bf16 or " + " or ".join(tries)
    else:
        cause = "the learning rate is likely too high for this model: try " + " or ".join(tries)
    return (
        f"training diverged: the loss became {loss} in epoch {epoch} ({where} of {steps_per_epoch}, "
        f"learning rate {lr:g}); {cause}"
    )


def callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """A stable key per callback for checkpoints: its `state_key`, else its class name (numbered when repeated)."""
    keys, seen = [], {}
    for callback in callbacks:
        base = getattr(callback, "state_key", None) or type(callback).__name__
        seen[base] = seen.get(base, 0) + 1
        keys.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return keys


class Trainer:
    """Runs epochs of `train_batches()` through `task.training_step`, then `validate(model)`, calling callbacks.

    Args:
        model: what is trained (possibly compiled or wrapped in DistributedDataParallel).
        task: turns a batch into a loss and running sums (`cnnlab.tasks.Task`).
        optimizer: over the model's parameters and the task's extra modules.
        train_batches: called once per epoch; returns that epoch's batches.
        steps_per_epoch: batches per epoch (progress bars, per-step schedules).
        context: device, precision context, preprocessing and extra modules handed to the task.
        validate: `validate(model) -> {"val_...": value}`; None for no validation.
        unwrapped_model: the module whose state_dict is saved (not the compiled/DDP wrapper).
        distributed: a `train.distributed.Distributed` when running on several processes.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        task: Task,
        optimizer: torch.optim.Optimizer,
        train_batches: Callable[[], Iterable],
        steps_per_epoch: int,
        epochs: int,
        settings: StepSettings,
        context: StepContext | None = None,
        validate: Callable[[nn.Module], dict[str, float]] | None = None,
        scheduler: Any = None,
        schedule_unit: str = "step",
        penalty: WeightPenalty | None = None,
        callbacks: Sequence[Callback] = (),
        generator: torch.Generator | None = None,
        unwrapped_model: nn.Module | None = None,
        distributed: Any = None,
    ) -> None:
        self.model = model
        self.unwrapped_model = unwrapped_model or model
        self.task = task
        self.optimizer, self.scheduler, self.schedule_unit = optimizer, scheduler, schedule_unit
        self.train_batches, self.steps_per_epoch = train_batches, steps_per_epoch
        self.validate, self.settings, self.epochs = validate, settings, epochs
        self.context = context or StepContext(settings.device, autocast=settings.autocast)
        self.penalty = penalty if penalty is not None and penalty.active else None
        self.callbacks = list(callbacks)
        self.generator = generator
        self.distributed = distributed
        self.scaler = torch.amp.GradScaler(settings.device.type, enabled=settings.precision == "fp16")
        self.history: list[dict[str, float]] = []
        self.start_epoch = 1
        self.should_stop = False
        self.restored_epoch: int | None = None
        self.step_output: StepOutput | None = None  # the last step's, for batch hooks
        self._sums: dict[str, torch.Tensor] = {}
        self._seen = 0
        self._stop_now = False
        # The model's parameters in module order, then the task's modules: the gradient norm sums in this order.
        self._clipped = [*self.model.parameters(), *self.context.modules.parameters()]
        self.divergence_watch = DivergenceWatch()
        self._steps_done = 0
        # Weight constraints the model declares (Kim 2014's max-norm): applied after every optimiser step.
        self._constrained = constrained_modules(self.unwrapped_model)

    def stop(self, now: bool = False) -> None:
        """End training after this epoch; with `now`, after the current batch (the partial epoch is still
        validated, logged and checkpointed). For callbacks: e.g. stop at a target accuracy mid-epoch."""
        self.should_stop = True
        self._stop_now = now

    @property
    def is_main(self) -> bool:
        """True on the process that writes files (the only one when not distributed)."""
        return self.distributed is None or self.distributed.is_main

    @property
    def extra_modules(self) -> nn.ModuleDict:
        return self.context.modules

    # -- one step -----------------------------------------------------------------------------------------
    def train_step(self, batch: Any) -> StepOutput:
        s = self.settings
        output = self.task.training_step(self.model, batch, self.context)
        loss = output.loss
        if self.distributed is not None:
            # DDP averages gradients over ranks; weighting each rank's mean by its share of the global batch
            # makes that average the gradient of the global batch's mean, as on one process.
            loss = loss * self.distributed.batch_weight(output.count)
        objective = loss + self.penalty() if self.penalty else loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(objective).backward()
        if self.distributed is not None and len(self.extra_modules):
            self.distributed.average_gradients(self.extra_modules)
        if s.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self._clipped, s.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self._constrained:
            apply_constraints(self._constrained)
        if self.scheduler is not None and self.schedule_unit == "step":
            self.scheduler.step()
        for key, value in output.sums.items():
            if key in self._sums:
                self._sums[key] += value
            else:
                self._sums[key] = value.detach().clone()
        self._seen += output.count
        self.step_output = output
        return output

    def running_metrics(self) -> dict[str, float]:
        """This process's training metrics so far in the epoch (a host sync: call it sparingly)."""
        return self.task.running_metrics({k: float(v) for k, v in self._sums.items()}, self._seen)

    # -- one epoch ----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        self.model.train()
        for module in self.extra_modules.values():
            module.train()
        self._sums, self._seen, self._steps_done = {}, 0, 0
        self.divergence_watch.start_epoch()
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        for step, batch in enumerate(self.train_batches(), start=1):
            output = self.train_step(batch)
            self._steps_done = step
            for callback in self.callbacks:
                callback.on_batch_end(self, step, output.count)
            if self._stop_now:
                break
            # A diverged loss never recovers: end the epoch early (not in distributed runs, whose ranks must
            # stay in step: they find it together at the epoch's end, where the sums are reduced).
            if self.divergence_watch.after_step(step, self._sums.get("loss")) and self.distributed is None:
                break
        sums, seen = {k: float(v) for k, v in self._sums.items()}, self._seen
        if self.distributed is not None:
            sums, seen = self.distributed.sum_metrics(sums, seen)
        seconds = time.perf_counter() - start
        metrics = {"epoch": epoch}
        metrics.update({f"train_{k}": v for k, v in self.task.running_metrics(sums, seen).items()})
        metrics.update({"lr": lr, "epoch_seconds": seconds, "images_per_second": seen / max(seconds, 1e-9)})
        return metrics

    def fit(self) -> list[dict[str, float]]:
        for callback in self.callbacks:
            callback.on_fit_start(self)
        for epoch in range(self.start_epoch, self.epochs + 1):
            if self.should_stop:
                break
            for callback in self.callbacks:
                callback.on_epoch_start(self, epoch)
            metrics = self.train_epoch(epoch)
            if not math.isfinite(metrics.get("train_loss", 0.0)):
                raise self._diverged(epoch, metrics)
            val_start = time.perf_counter()
            if self.validate is not None:
                metrics.update(self.validate(self.model))
            metrics["val_seconds"] = time.perf_counter() - val_start
            if self.scheduler is not None and self.schedule_unit == "epoch":
                self.scheduler.step(metrics.get("val_loss", metrics["train_loss"]))
            self.history.append(metrics)
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch, metrics)
            if self.distributed is not None:
                self.should_stop = self.distributed.agree(self.should_stop)
        for callback in self.callbacks:
            callback.on_fit_end(self)
        return self.history

    def _diverged(self, epoch: int, metrics: dict[str, float]) -> TrainingDiverged:
        """The diverged epoch joins the history (for the loggers), but no callback sees it as a finished epoch:
        checkpoints keep the last finite weights. Its validation is skipped: NaN weights score nothing."""
        self.history.append(metrics)
        steps = self.divergence_watch.diverged_steps(self._steps_done, finite_at_end=False)
        lr = self.optimizer.param_groups[0]["lr"]  # where a per-step schedule had taken it by then
        peak_lr = self.optimizer.defaults.get("lr", lr)
        message = divergence_message(
            epoch, steps, self.steps_per_epoch, metrics["train_loss"], lr, peak_lr, self.settings
        )
        return TrainingDiverged(message)

    # -- state for checkpoints ----------------------------------------------------------------------------
    def full_state(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "model": self.unwrapped_model.state_dict(),
            "modules": self.extra_modules.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "rng": capture_rng_state(self.generator),
            "history": list(self.history),
            "should_stop": self.should_stop,
            "callbacks": {key: cb.state_dict() for key, cb in zip(callback_keys(self.callbacks), self.callbacks)},
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        self.unwrapped_model.load_state_dict(state["model"])
        if state.get("modules"):
            self.extra_modules.load_state_dict(state["modules"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"], self.generator)
        self.history = list(state["history"])
        self.should_stop = state["should_stop"]
        self.start_epoch = state["epoch"] + 1
        saved = state["callbacks"]
        for key, callback in zip(callback_keys(self.callbacks), self.callbacks):
            if saved.get(key):
                callback.load_state_dict(saved[key])
