"""`cross_validate(config, folds)`: k stratified folds, each an ordinary run of the engine, and their mean.

Kim 2014 (and Pang & Lee before him) report data sets without a test split (MR, Subj) as the mean accuracy of a
10-fold cross-validation. Each fold is a full run in `<out>/fold-NN` (its own checkpoints, metrics, report);
the parent folder's results.json holds every fold's test figures, their mean and standard deviation.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from cnnlab import tasks
from cnnlab.errors import ConfigError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.train.config import TrainConfig
from cnnlab.train.fit import FitResult, fit

MARKER = "cv.json"  # written first: it marks the folder as a cross-validation


@dataclass
class CrossValidation:
    out: Path
    folds: list[FitResult]
    results: dict[str, Any]


def _check_task(config: TrainConfig) -> None:
    options = tasks.get_task_class(config.task).Options
    if not {"folds", "fold"} <= {f.name for f in fields(options)}:
        raise ConfigError(f"--cv: the {config.task} task has no folds; cross-validation is for the text task")


def cv_folder(base: Path, overwrite: bool) -> Path:
    """`base`, or with a finished cross-validation there, `base-2`, `base-3`, ...; never someone else's folder."""
    for number in range(1, 10_000):
        candidate = base if number == 1 else base.with_name(f"{base.name}-{number}")
        if candidate.exists() and not candidate.is_dir():
            raise RunError(f"{candidate}: exists and is not a folder")
        owned = not candidate.exists() or not any(candidate.iterdir()) or (candidate / MARKER).exists()
        if not owned:
            if number == 1:
                raise RunError(f"{candidate}: a folder that is no cross-validation of cnnlab's; choose another --out")
            continue
        if overwrite or not (candidate / "results.json").exists():
            return candidate
    raise RunError(f"{base}: too many runs with this name")


def summarize_folds(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric: every fold's value, the mean and the sample standard deviation (n - 1)."""
    summary: dict[str, Any] = {"folds": len(reports)}
    for key, value in reports[0].items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        values = [float(report[key]) for report in reports]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[key] = {"mean": statistics.fmean(values), "std": spread, "per_fold": values}
    return summary


def cross_validate(
    config: TrainConfig, folds: int, *, overwrite: bool = False, callbacks_for_fold: Any = None
) -> CrossValidation:
    """Train fold 1..folds of `config` (the task's `folds`/`fold` options set per run) and summarise them.

    Args:
        callbacks_for_fold: `fn(fold) -> list of callbacks` for each fold's run (e.g. a resume hint).
    """
    _check_task(config)
    if folds < 2:
        raise ConfigError(f"--cv must be at least 2 folds, got {folds}")
    out = cv_folder(Path(config.out or Path("runs") / Path(config.model).stem), overwrite)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / MARKER, {"folds": folds, "seed": config.seed, "task": config.task})
    results: list[FitResult] = []
    for fold in range(1, folds + 1):
        options = {**config.task_options, "folds": folds, "fold": fold}
        fold_config = replace(config, out=str(out / f"fold-{fold:02d}"), task_options=options)
        callbacks = callbacks_for_fold(fold) if callbacks_for_fold else None
        results.append(fit(fold_config, overwrite=True, callbacks=callbacks))
    reports = [result.results["test"] for result in results]
    summary = summarize_folds(reports)
    means = {key: value["mean"] for key, value in summary.items() if isinstance(value, dict)}
    combined = {
        "test": means,
        "cv": summary,
        "evaluated_split": "test",
        "fold_runs": [str(result.run_dir) for result in results],
        "train_seconds": round(sum(result.results.get("train_seconds", 0.0) for result in results), 3),
    }
    atomic_write_json(out / "results.json", combined)
    return CrossValidation(out, results, combined)
