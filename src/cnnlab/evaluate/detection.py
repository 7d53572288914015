"""Evaluating a saved detection run: mAP, per-class AP and PR curves on a split of its data (or other data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, DataError
from cnnlab.evaluate.runs import run_config
from cnnlab.io import atomic_write_bytes, atomic_write_json
from cnnlab.runs import LoadedRun, load_run
from cnnlab.tasks.base import StepContext, collect


def load_detection_split(run: LoadedRun, data: str | None = None, split: str = "test", data_format: str | None = None):
    """The run's own split, re-read by the loader training used (same seed, same split), or a split of `data`."""
    task = run.task
    if task is None or task.name != "detection":
        raise ConfigError(f"{run.run_dir}: not a detection run; use `cnnlab evaluate {run.run_dir}`")
    config = run_config(run)
    if data:
        config = replace(config, data=data, test_data=None)
    if data_format:
        config = replace(config, data_format=data_format)
    task.configure(replace(config, quiet=True))
    splits = task.load_data(config)
    chosen = getattr(splits, split, None)
    if chosen is None or len(chosen) == 0:
        raise DataError(f"{config.data}: the data has no {split} split")
    if list(splits.classes) != list(run.meta["classes"]):
        raise DataError(
            f"{config.data}: the data's classes {list(splits.classes)[:6]} differ from the run's "
            f"{list(run.meta['classes'])[:6]}"
        )
    return chosen


def predict_split(run: LoadedRun, split, batch_size: int = 32) -> tuple[list[dict], list[dict]]:
    """(predictions, targets) of every image of `split`, as evaluation scores them (conf >= 0.001)."""
    device = next(run.model.parameters()).device
    context = StepContext(device, run.preprocess)
    outputs, targets = collect(run.task, run.model, run.task.eval_batches(split, batch_size), context)
    return outputs["predictions"], targets


def evaluate_detection_run(
    run_dir: str | Path, data: str | None = None, split: str = "test", data_format: str | None = None
) -> tuple[Any, list[Path]]:
    """The DetectionReport of one split; writes evaluation_<split>.json and pr_curves_<split>.png in the run."""
    from cnnlab.tasks.detection.metrics import evaluate_detections
    from cnnlab.viz.detection import pr_curve_png

    run = load_run(run_dir)
    images = load_detection_split(run, data, split, data_format)
    predictions, targets = predict_split(run, images)
    report = evaluate_detections(predictions, targets, list(run.meta["classes"]))
    folder = Path(run_dir)
    written = [
        atomic_write_json(folder / f"evaluation_{split}.json", report.to_dict()),
        atomic_write_bytes(folder / f"pr_curves_{split}.png", pr_curve_png(report)),
    ]
    return report, written
