"""Evaluating a saved run on one split of its data (or on other data with the same classes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.runs import (
    LoadedRun,
    check_output_file,
    check_run_data,
    load_run,
    read_run_config,
    require_classification,
    writing,
)
from cnnlab.tasks.classification.metrics import ClassificationReport, classification_report, collect_logits


def run_config(run: LoadedRun):
    """The run's TrainConfig from its config.yaml, its paths made absolute from run.json (so it reads the run's
    data from any working directory); a damaged or incomplete file is a RunError naming it."""
    from cnnlab.config import build_dataclass
    from cnnlab.train.config import TrainConfig

    values = read_run_config(run.run_dir)
    try:
        return build_dataclass(TrainConfig, values)
    except ConfigError as error:
        raise RunError(f"{run.run_dir / 'config.yaml'}: {error}") from error


def load_run_split(run: LoadedRun, data: str | None, split: str, data_format: str | None = None):
    """The run's own split, re-read by the very loader training used (same seed, same `train_samples`
    subset, so `val` is the run's validation images), or a split of other `data` at the run's input size.

    Raises:
        DataError: the run's data has moved since training (the message names the path and says to pass
            `--data PATH`), or the data lacks the split or the run's classes.
    """
    from cnnlab.data import load_dataset

    config = run_config(run)
    if data:
        splits = load_dataset(
            data,
            format=data_format,
            val_split=0.0 if split != "val" else config.val_split,
            seed=config.seed,
            resize=tuple(run.input_shape[1:]),
            channels=run.input_shape[0],
            window=config.window,
        )
    else:
        check_run_data(config, run.meta)
        splits = run.task.load_data(config)
    imageset = getattr(splits, split)
    if imageset is None:
        raise DataError(f"{data or config.data}: has no {split!r} split")
    if list(splits.classes) != run.classes:
        raise DataError(f"{data or config.data}: classes {list(splits.classes)} differ from the run's {run.classes}")
    return imageset


CLINICAL_METRICS = ("auc", "sensitivity", "specificity")


@dataclass
class Evaluation:
    """One split's scores: the classification report (None for multi-label runs, which have no single call per
    image), the clinical figures (binary and multi-label runs always; multi-class with `metrics`), the files
    written, and the run's label mode."""

    report: ClassificationReport | None
    clinical: dict[str, Any] | None
    paths: list[Path] = field(default_factory=list)
    label_mode: str = "multiclass"
    classes: list[str] = field(default_factory=list)


def parse_metrics(text: str | None) -> tuple[str, ...]:
    """`--metrics auc,sensitivity,specificity`: extra figures for multi-class runs (binary ones always get them)."""
    if not text:
        return ()
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in CLINICAL_METRICS]
    if unknown:
        raise ConfigError(f"--metrics: unknown metric {unknown[0]!r}; expected some of {', '.join(CLINICAL_METRICS)}")
    return names


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    split: str = "test",
    batch_size: int = 1024,
    data_format: str | None = None,
    metrics: tuple[str, ...] = (),
) -> Evaluation:
    """Score a run on one split and write evaluation_<split>.json (+ the confusion matrix PNG when there is one
    call per image); binary runs apply the threshold their training chose on validation (results.json)."""
    from cnnlab.data import make_batches
    from cnnlab.runs import read_results
    from cnnlab.tasks.classification import clinical
    from cnnlab.viz.plots import plot_confusion_matrix

    device = resolve_device("auto")
    run = load_run(run_dir, device=device)
    require_classification(run, "evaluate")
    mode = clinical.mode_of(run.meta)
    json_target, png_target = run.run_dir / f"evaluation_{split}.json", run.run_dir / f"confusion_matrix_{split}.png"
    targets = [json_target] if mode == "multilabel" else [json_target, png_target]
    for target in targets:  # refused before the (long) evaluation, not after it
        check_output_file(target)
    imageset = load_run_split(run, data, split, data_format)
    logits, labels = collect_logits(
        run.model, make_batches(imageset, batch_size, shuffle=False), run.preprocess, device
    )
    report = None if mode == "multilabel" else classification_report(logits, labels, run.classes)
    figures = None
    if mode != "multiclass" or metrics:
        meta = {**run.meta, "calibration": _saved_calibration(run.run_dir, read_results(run.run_dir) or {})}
        figures = clinical.clinical_report(logits, labels, meta)
    record = {"split": split, "data": data, "checkpoint_epoch": run.checkpoint_epoch, "label_mode": mode}
    record.update(report.to_dict() if report is not None else {})
    record.update({"clinical": figures} if figures is not None else {})
    with writing(json_target):
        paths = [atomic_write_json(json_target, record)]
    if report is not None:
        with writing(png_target):
            paths.append(plot_confusion_matrix(report.confusion, run.classes, png_target))
    return Evaluation(report, figures, paths, mode, list(run.classes))


def _saved_calibration(run_dir: Path, results: dict[str, Any]) -> dict[str, Any]:
    """The operating point training chose on validation; a damaged one is a RunError naming results.json."""
    import math

    calibration = results.get("calibration") or {}
    values = [calibration.get("threshold")] if "threshold" in calibration else []
    values += list((calibration.get("thresholds") or {}).values()) if isinstance(calibration, dict) else []
    if not isinstance(calibration, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
    ):
        raise RunError(f"{run_dir / 'results.json'}: 'calibration' holds no valid threshold; the file is damaged")
    return calibration
