"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural Networks", section 3.3),
as fastai's `Learner.lr_find`: train for a short while with the learning rate growing exponentially, watch the
smoothed loss, and suggest a rate from where it falls fastest for longest. The weights are restored afterwards.

It runs the engine's own step (`Trainer.train_step` of a run from `build_run`), so the loss, the task, the
precision, clipping and penalties are exactly those of training; only the learning rate is set here, per step.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.errors import ConfigError, TrainingDiverged
from cnnlab.io import atomic_write_bytes, atomic_write_json
from cnnlab.train.build import TrainingRun, build_run
from cnnlab.train.checkpoint import capture_rng_state, restore_rng_state
from cnnlab.train.config import AUTO_LR, EarlyStoppingConfig, ScheduleConfig, TrainConfig

# fastai's defaults (`lr_find(start_lr=1e-7, end_lr=10, num_it=100, stop_div=True)`, `AvgSmoothLoss(beta=0.98)`).
START_LR = 1e-7
END_LR = 10.0
STEPS = 100
DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds 4x its minimum: past there the curve says nothing
SMOOTHING = 0.98  # weight of the past in the loss's moving average (debiased, as Adam's moments)
# The suggestion ignores the first tenth of the sweep (the average still warms up) and its last 5 steps
# (the divergence that stopped it), as fastai does.
SKIP_START_FRACTION = 0.1
SKIP_END = 5


@dataclass
class LrFindResult:
    """The sweep and what it suggests.

    Attributes:
        lrs: the learning rate of each step.
        losses: the smoothed training loss after each step (what the plot shows).
        suggestion: the rate to train with: `valley` (fastai's default rule, see `valley_index`).
        valley: a rate 1/3 + 1/6 into the longest stretch of falling loss.
        steepest: the rate where the smoothed loss falls fastest per decade.
        minimum_over_10: a tenth of the rate with the lowest loss (Smith's and fastai v1's rule of thumb).
        stopped: why the sweep ended ("steps", "diverged": loss > 4x its minimum, or "not finite").
    """

    lrs: list[float]
    losses: list[float]
    suggestion: float
    valley: float
    steepest: float
    minimum_over_10: float
    stopped: str
    rule: str = "valley"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sweep_lr(step: int, steps: int, start_lr: float = START_LR, end_lr: float = END_LR) -> float:
    """The rate of step `step` (0-based): exponential from `start_lr` at step 0 to `end_lr` at step `steps`."""
    return start_lr * (end_lr / start_lr) ** (step / steps)


class SmoothedLoss:
    """Exponential moving average of the loss, divided by 1 - beta^n so the first values are not biased to 0."""

    def __init__(self, beta: float = SMOOTHING) -> None:
        self.beta, self.average, self.count = beta, 0.0, 0

    def update(self, loss: float) -> float:
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        return self.average / (1 - self.beta**self.count)


# -- the rules that pick a rate from the curve --------------------------------------------------------------
def valley_index(losses: list[float]) -> int:
    """fastai's "valley" (its default since v2.4, from ArcGIS's `lr_find`): the longest run of decreasing loss.

    The longest decreasing subsequence of the curve marks where training makes steady progress; the point 1/2
    of the way into its middle third is far enough from the flat start to learn fast and from the cliff at its
    end to be safe. Unlike the steepest point, one noisy step cannot move it.
    """
    n = len(losses)
    longest = [1] * n  # longest decreasing subsequence ending at i
    start, end = 0, 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[end] < longest[i]:
            end, start = i, i - longest[i]
    third = (end - start) / 3
    return min(start + int(third) + int(third / 2), n - 1)


def steepest_index(lrs: list[float], losses: list[float]) -> int:
    """The step where the loss falls fastest per unit of log(lr) (fastai's "steep", Smith's own reading)."""
    slopes = [(losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(losses) - 1)]
    return min(range(len(slopes)), key=slopes.__getitem__) if slopes else 0


def suggest(lrs: list[float], losses: list[float], stopped: str) -> LrFindResult:
    """The suggestions from a sweep, over its trimmed middle (see SKIP_START_FRACTION, SKIP_END)."""
    steps = len(lrs)
    if steps < 3:
        raise TrainingDiverged(
            f"lr-find: the loss diverged within {steps} steps (at learning rate {lrs[-1]:g}): the model does not "
            "train even at tiny rates; check the data and the model, or try --grad-clip 1"
        )
    begin, end = int(steps * SKIP_START_FRACTION), steps - SKIP_END
    if end - begin < 3:  # a short sweep: keep all of it
        begin, end = 0, steps
    lr_part, loss_part = lrs[begin:end], losses[begin:end]
    valley = lr_part[valley_index(loss_part)]
    steepest = lr_part[steepest_index(lr_part, loss_part)]
    lowest = lr_part[min(range(len(loss_part)), key=loss_part.__getitem__)]
    return LrFindResult(lrs, losses, valley, valley, steepest, lowest / 10, stopped)


# -- the sweep ----------------------------------------------------------------------------------------------
def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def _batches_forever(run: TrainingRun):
    """The run's training batches, epoch after epoch (a small data set has fewer batches than the sweep)."""
    while True:
        empty = True
        for batch in run.trainer.train_batches():
            empty = False
            yield batch
        if empty:
            raise ConfigError("lr-find: the training split yields no batches")


def sweep(run: TrainingRun, steps: int = STEPS, start_lr: float = START_LR, end_lr: float = END_LR) -> LrFindResult:
    """Train `run` for up to `steps` steps at exponentially growing rates; restore its weights; suggest a rate."""
    trainer = run.trainer
    trainer.scheduler = None  # the rate is set here, step by step; a schedule would overwrite it
    saved = _snapshot(run.model), _snapshot(trainer.extra_modules)
    trainer.model.train()
    trainer.extra_modules.train()
    smoothed, lrs, losses, best, stopped = SmoothedLoss(), [], [], math.inf, "steps"
    try:
        for step, batch in zip(range(steps), _batches_forever(run)):
            lr = sweep_lr(step, steps, start_lr, end_lr)
            for group in trainer.optimizer.param_groups:
                group["lr"] = lr
            loss = float(trainer.train_step(batch).loss.detach())
            if not math.isfinite(loss):
                stopped = "not finite"
                break
            lrs.append(lr)
            losses.append(smoothed.update(loss))
            best = min(best, losses[-1])
            if losses[-1] > DIVERGE_FACTOR * best:
                stopped = "diverged"
                break
    finally:
        run.model.load_state_dict(saved[0])
        trainer.extra_modules.load_state_dict(saved[1])
    return suggest(lrs, losses, stopped)


def finder_config(config: TrainConfig, out: str | Path, start_lr: float = START_LR) -> TrainConfig:
    """The run the sweep drives: the user's, with a constant schedule (set per step), in a scratch folder."""
    return replace(
        config,
        optimizer=replace(config.optimizer, lr=start_lr),
        schedule=ScheduleConfig("none"),
        early_stopping=EarlyStoppingConfig(),
        epochs=1,
        out=str(out),
        progress=False,
        quiet=True,
        tensorboard=False,
    )


def find_learning_rate(
    config: TrainConfig,
    *,
    data: Any = None,
    model: nn.Module | None = None,
    task: Any = None,
    steps: int = STEPS,
    start_lr: float = START_LR,
    end_lr: float = END_LR,
) -> LrFindResult:
    """Run the range test on `config`'s model and data (or the given ones); the model's weights are unchanged.

    Args:
        config: what would be trained (its optimizer, batch size, augmentation, precision...); lr is ignored.
        data, model, task: as for `build_run` (a model given is trained for the sweep, then restored).
        steps: at most this many steps; fewer when the loss diverges first.
        start_lr, end_lr: the range swept, exponentially.

    Raises:
        ConfigError: the range is empty or not positive.
        TrainingDiverged: the loss diverged at once, leaving nothing to read.
    """
    if not 0 < start_lr < end_lr or steps < 2:
        raise ConfigError(f"lr-find: need 0 < start lr < end lr and >= 2 steps, got {start_lr:g}, {end_lr:g}, {steps}")
    with tempfile.TemporaryDirectory(prefix="cnnlab-lr-find-") as scratch:
        run = build_run(finder_config(config, Path(scratch) / "run", start_lr), data=data, model=model, task=task)
        try:
            return sweep(run, steps, start_lr, end_lr)
        finally:
            run.close()


def resolve_learning_rate(
    config: TrainConfig,
    *,
    data: Any = None,
    model: nn.Module | None = None,
    task: Any = None,
    log: Callable | None = print,
) -> TrainConfig:
    """`--optimizer.lr auto`: the config with the range test's suggestion as its number (what config.yaml saves,
    so a resume trains on with the same rate). The random state is left as it was, so the run that follows
    starts exactly as one given that number would."""
    if config.optimizer.lr != AUTO_LR:
        return config
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(
            "optimizer.lr auto runs the learning-rate finder on one process: run `cnnlab lr-find` with the same "
            "flags first, then train with --nproc and --optimizer.lr set to its suggestion"
        )
    rng = capture_rng_state()
    try:
        result = find_learning_rate(config, data=data, model=model, task=task)
    finally:
        restore_rng_state(rng)
    if log is not None and not config.quiet:
        log(f"lr-find: optimizer.lr auto -> {result.suggestion:.3g} ({result.rule} rule; plot: cnnlab lr-find)")
    return replace(config, optimizer=replace(config.optimizer, lr=float(f"{result.suggestion:.3g}")))


# -- the plot -----------------------------------------------------------------------------------------------
def plot_lr_find(result: LrFindResult, path: str | Path) -> Path:
    """Smoothed loss against learning rate (log axis), the suggestions marked; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result.lrs, result.losses)
    marks = [("valley (suggested)", result.valley, "o", "C3"), ("steepest", result.steepest, "s", "C2")]
    for label, lr, marker, color in marks:
        index = min(range(len(result.lrs)), key=lambda i: abs(result.lrs[i] - lr))
        ax.plot([lr], [result.losses[index]], marker, color=color, label=f"{label}: {lr:.2g}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss (smoothed)")
    ax.set_title("learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def write_lr_find(result: LrFindResult, folder: str | Path) -> tuple[Path, Path]:
    """lr_find.json (the sweep and the suggestions) and lr_find.png in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return atomic_write_json(folder / "lr_find.json", result.to_dict()), plot_lr_find(result, folder / "lr_find.png")
