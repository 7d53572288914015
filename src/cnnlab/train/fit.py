"""`fit(config)` in three parts: `build_run` (train/build.py) -> `train` -> `evaluate`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import TrainingDiverged
from cnnlab.io import atomic_write_json
from cnnlab.tasks.base import Task, collect
from cnnlab.train import callbacks as cb
from cnnlab.train.build import TrainingRun, build_run, resume_config
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import Trainer

__all__ = ["FitResult", "TrainingRun", "build_run", "evaluate", "fit", "load_data", "resume_config", "train"]


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, float]]
    results: dict[str, Any]
    model: torch.nn.Module


def load_data(config: TrainConfig):
    """The data `fit` trains on for this config, read through the config's task."""
    from cnnlab import tasks

    return tasks.create(config.task, config.task_options).load_data(config)


# Callbacks that only show or log epochs also record the one that diverged (metrics.jsonl keeps it); the others
# (checkpoints, early stopping, user callbacks) never see it, so last.pt and best.pt keep finite weights.
RECORDS_DIVERGED_EPOCH = (cb.MetricsLogger, cb.TensorBoardLogger, cb.ProgressBar)


def train(run: TrainingRun) -> list[dict[str, float]]:
    """Train until the last epoch or an early stop; the best epoch's weights are back in `run.model`.

    Raises:
        TrainingDiverged: the loss became NaN/inf; the message names the run folder, the epoch, the steps, the
            likely cause and what last.pt keeps. results.json is not written.
    """
    try:
        return run.trainer.fit()
    except TrainingDiverged as error:
        epoch = _record_diverged_epoch(run.trainer)
        kept = f"last.pt keeps epoch {epoch - 1}" if epoch > 1 else "no epoch finished, so no checkpoint was written"
        raise TrainingDiverged(f"{run.run_dir}: {error}; {kept}") from None


def _record_diverged_epoch(trainer: Trainer) -> int:
    metrics = trainer.history[-1]
    for callback in trainer.callbacks:
        if isinstance(callback, RECORDS_DIVERGED_EPOCH):
            callback.on_epoch_end(trainer, metrics["epoch"], metrics)
            callback.on_fit_end(trainer)
    return int(metrics["epoch"])


def evaluate(run: TrainingRun) -> dict[str, Any]:
    """Score the restored weights on the test split (else val, else train) and write results.json (rank 0)."""
    trainer, data = run.trainer, run.data
    results: dict[str, Any] = {}
    if run.is_main:
        split_name = next(name for name in ("test", "val", "train") if getattr(data, name, None) is not None)
        calibration = _calibrate(run)
        batches = run.task.eval_batches(getattr(data, split_name), run.config.eval_batch_size)
        outputs, targets = collect(run.task, run.model, batches, run.context)
        history = trainer.history
        meta = {**run.meta, "calibration": calibration} if calibration else run.meta
        results = {
            split_name: run.task.test_report(outputs, targets, meta),
            **({"calibration": calibration} if calibration else {}),
            "evaluated_split": split_name,
            "best_epoch": trainer.restored_epoch,
            "epochs_run": len(history),
            "stopped_early": any(isinstance(c, cb.EarlyStopping) and c.stopped_epoch for c in trainer.callbacks),
            "epoch_seconds": [round(row["epoch_seconds"], 3) for row in history],
            # Summed per epoch so that a resumed run counts the epochs before its interruption too.
            "train_seconds": round(sum(row["epoch_seconds"] + row.get("val_seconds", 0.0) for row in history), 3),
        }
        atomic_write_json(run.run_dir / "results.json", results)
    if run.distributed is not None:
        results = run.distributed.broadcast(results)
    return results


def _calibrate(run: TrainingRun) -> dict[str, Any]:
    """What the task chooses on the validation split with the restored weights ({} without a val split)."""
    if getattr(run.data, "val", None) is None or type(run.task).calibrate is Task.calibrate:
        return {}
    batches = run.task.eval_batches(run.data.val, run.config.eval_batch_size)
    outputs, targets = collect(run.task, run.model, batches, run.context)
    return run.task.calibrate(outputs, targets, run.meta)


def fit(
    config: TrainConfig,
    resume: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[cb.Callback] | None = None,
    *,
    data: Any = None,
    model: torch.nn.Module | None = None,
    task: Any = None,
) -> FitResult:
    """Train as the config says; with `resume`, continue the run in that folder exactly where it stopped.

    `data`, `model` and `task` replace what the config would read or build (see `build_run`); `callbacks`
    run after the built-in ones (so a checkpoint of the epoch exists when they are called).
    """
    run = build_run(config, data=data, model=model, task=task, resume=resume, overwrite=overwrite, callbacks=callbacks)
    try:
        history = train(run)
        results = evaluate(run)
    finally:
        run.close()
    return FitResult(run.run_dir, history, results, run.model)
