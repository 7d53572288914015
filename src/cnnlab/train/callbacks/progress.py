"""Progress on stderr: one line per epoch everywhere, and a live bar beside it on a terminal.

A bar redraws itself with carriage returns, which turn a log file, a CI page or a pipe into one unreadable
line; so the bar is drawn only where someone watches (a terminal, a notebook), and the epoch line, in a fixed
order with units, reads the same in both places.
"""

from __future__ import annotations

import math
import os
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

from tqdm.auto import tqdm

from cnnlab.train.callbacks.base import Callback
from cnnlab.train.callbacks.checkpoint import ModelCheckpoint

SHORT_NAMES = {"accuracy": "acc"}  # the one metric every classification log abbreviates
NOT_METRICS = {"val_seconds"}  # timing, shown once as the epoch's seconds


def _value_text(value: float) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _lr_text(lr: float) -> str:
    # Four decimals read well from 1e-3 up; below (Adam's 3e-4, a one-cycle start) they would round to 0.
    return f"{lr:.4f}" if 1e-3 <= lr < 1e3 or lr == 0 else f"{lr:.1e}"


def _split_part(metrics: Mapping[str, float], split: str, order: Iterable[str]) -> str | None:
    """`train loss 0.2311 acc 0.9312`: the split's metrics, in the task's declared order, then any others."""
    prefix = f"{split}_"
    names = [key[len(prefix) :] for key in metrics if key.startswith(prefix) and key not in NOT_METRICS]
    if not names:
        return None
    rank = {name: index for index, name in enumerate(order)}
    names.sort(key=lambda name: rank.get(name, len(rank)))  # stable: undeclared metrics keep their order
    values = " ".join(f"{SHORT_NAMES.get(name, name)} {_value_text(metrics[prefix + name])}" for name in names)
    return f"{split} {values}"


def epoch_line(
    epoch: int, epochs: int, metrics: Mapping[str, float], order: Iterable[str] = (), unit: str = "img"
) -> str:
    """One epoch on one line, for any task.

    `epoch 3/10  train loss 0.2311 acc 0.9312  val loss 0.1980 acc 0.9420  lr 0.0100  6.2 s  8,702 img/s`:
    the training metrics, the validation metrics (each in the order of `order`, the task's declared
    metrics), the learning rate of the epoch, its seconds (training and validation) and training images/s.
    """
    order = list(order)
    parts = [f"epoch {epoch}/{epochs}"]
    parts += [part for split in ("train", "val") if (part := _split_part(metrics, split, order))]
    if "lr" in metrics:
        parts.append(f"lr {_lr_text(metrics['lr'])}")
    if "epoch_seconds" in metrics:
        parts.append(f"{metrics['epoch_seconds'] + metrics.get('val_seconds', 0.0):.1f} s")
    if "images_per_second" in metrics:
        parts.append(f"{metrics['images_per_second']:,.0f} {unit}/s")
    return "  ".join(parts)


def is_interactive(stream: TextIO) -> bool:
    """A terminal or a Jupyter kernel (whose stderr is no TTY, but where tqdm.auto draws a widget)."""
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
    return "ipykernel" in sys.modules


class ProgressBar(Callback):
    """An epoch line per epoch on stderr; with `bar`, a live bar during the epoch as well.

    Args:
        epochs: the run's last epoch (the `/10` of `epoch 3/10`).
        bar: draw the bar: True, False, or None to draw it only where stderr is interactive (a terminal).
    """

    # Reading the running loss forces a device sync; doing it every 25 steps keeps the bar live at no cost.
    refresh_every = 25
    main_process_only = True

    def __init__(self, epochs: int, bar: bool | None = None) -> None:
        self.epochs = epochs
        self.show_bar = bar
        self.bar: tqdm | None = None
        self.start, self.images = time.perf_counter(), 0

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.start, self.images = time.perf_counter(), 0
        show = self.show_bar if self.show_bar is not None else is_interactive(sys.stderr)
        if not show:
            return
        self.bar = tqdm(
            total=trainer.steps_per_epoch,
            desc=f"epoch {epoch}/{self.epochs}",
            unit="batch",
            leave=False,
            file=sys.stderr,
            dynamic_ncols=True,
        )

    def on_batch_end(self, trainer, step: int, batch_size: int) -> None:
        self.images += batch_size
        if self.bar is None:
            return
        if step % self.refresh_every == 0 or step == trainer.steps_per_epoch:
            running = {name: f"{value:.4f}" for name, value in trainer.running_metrics().items()}
            rate = self.images / max(time.perf_counter() - self.start, 1e-9)
            self.bar.set_postfix(**running, img_s=f"{rate:,.0f}", refresh=False)
            self.bar.update(step - self.bar.n)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not math.isfinite(metrics.get("train_loss", 0.0)):
            return  # a diverged epoch: the error that ends the run says so, in its one line
        task = trainer.task
        line = epoch_line(
            epoch, self.epochs, metrics, getattr(task, "metrics", {}), getattr(task, "sample_unit", "img")
        )
        tqdm.write(line, file=sys.stderr)  # redraws any bar still open (a user's) below the line

    def on_fit_end(self, trainer) -> None:
        if self.bar is not None:  # a diverged epoch ends without on_epoch_end
            self.bar.close()
            self.bar = None


class ResumeHint(Callback):
    """Remembers where a run stands so that an interruption (Ctrl-C) can say how to continue it.

    Pass it to `fit(callbacks=[...])`: user callbacks run after the checkpoint, so every epoch it has seen end
    is in last.pt. `message()` is the line to print, or None before training started (nothing to resume yet).
    """

    def __init__(self) -> None:
        self.run_dir: Path | None = None
        self.epochs = 0
        self.done = 0
        self.processes = 1
        self.finished = False

    def on_fit_start(self, trainer) -> None:
        checkpoints = [c for c in trainer.callbacks if isinstance(c, ModelCheckpoint)]
        self.run_dir = checkpoints[0].run_dir if checkpoints else None
        self.epochs, self.done = trainer.epochs, trainer.start_epoch - 1
        self.processes = getattr(trainer.distributed, "world_size", 1)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict[str, float]) -> None:
        self.done = epoch

    def on_fit_end(self, trainer) -> None:
        self.finished = True

    def resume_command(self) -> str:
        nproc = f" --nproc {self.processes}" if self.processes > 1 else ""
        return f"cnnlab train --resume {shlex.quote(os.fspath(self.run_dir))}{nproc}"

    def message(self) -> str | None:
        """`interrupted after epoch 3 of 10; resume with: cnnlab train --resume runs/x`, or None."""
        if self.run_dir is None:
            return None
        if self.done == 0:
            return (
                f"interrupted in epoch 1 of {self.epochs}, before its checkpoint; nothing to resume in {self.run_dir}"
            )
        if self.finished:
            return f"interrupted after the last epoch, before the evaluation; finish with: {self.resume_command()}"
        return f"interrupted after epoch {self.done} of {self.epochs}; resume with: {self.resume_command()}"
