"""`diagnose_run(run_dir)`: read a run folder written by `cnnlab train` and diagnose it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.config import build_dataclass
from cnnlab.diagnose import prescribe
from cnnlab.diagnose.facts import build_facts
from cnnlab.diagnose.findings import Diagnosis, verdict
from cnnlab.diagnose.rules import run_rules
from cnnlab.errors import ConfigError, RunError
from cnnlab.runs import read_metrics, read_results, read_run_meta
from cnnlab.runs import read_run_config as read_saved_config
from cnnlab.train.config import TrainConfig


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch metrics of a run: metrics.jsonl, else metrics.csv (a damaged file names its line)."""
    rows = read_metrics(run_dir)
    if rows is None:
        raise RunError(f"{run_dir}: no metrics.jsonl or metrics.csv; the run has not finished an epoch")
    if not rows:
        jsonl = Path(run_dir) / "metrics.jsonl"
        name = jsonl if jsonl.is_file() else Path(run_dir) / "metrics.csv"
        raise RunError(f"{name}: no epoch in it; the run has not finished an epoch")
    return rows


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """config.yaml as a dict, checked against TrainConfig so that a wrong value names its field here, not
    as a crash inside a rule."""
    values = read_saved_config(run_dir)
    path = Path(run_dir) / "config.yaml"
    try:
        build_dataclass(TrainConfig, values)
    except ConfigError as error:
        raise RunError(f"{path}: {error}") from error
    return values


def diagnose_run(run_dir: str | Path, learning_curve: dict[str, Any] | None = None) -> Diagnosis:
    """Diagnose the run in `run_dir`: its history, config, run.json and (rebuilt) model.

    Args:
        run_dir: a folder written by `cnnlab train` / `cnnlab.train.fit`.
        learning_curve: a measured learning curve (`LearningCurve.to_dict()`), to say whether more data helps.

    Raises:
        RunError: the folder is missing or lacks config.yaml, run.json or metrics.
    """
    meta = read_run_meta(run_dir)
    config = read_run_config(run_dir)
    history = read_history(run_dir)
    results = read_results(run_dir)
    facts = build_facts(history, config, meta, None, results, learning_curve)
    findings = run_rules(facts)
    return Diagnosis(str(run_dir), findings, verdict(findings), facts.summary(), config)


def fixed_config(diagnosis: Diagnosis, out: str | None = None, only: list[str] | None = None) -> TrainConfig:
    """The run's config with every prescription (or those of the findings in `only`) applied.

    `out` defaults to the run folder's name with `_fixed`, so training it never overwrites the original.
    """
    changes = prescribe.merge_changes(diagnosis.findings, only)
    return prescribe.prescribed_config(diagnosis.config, changes, out or f"{diagnosis.run_dir.rstrip('/')}_fixed")


def write_fixed_config(
    diagnosis: Diagnosis, path: str | Path, out: str | None = None, only: list[str] | None = None
) -> TrainConfig:
    """Write `fixed_config(...)` as YAML at `path` (ready for `cnnlab train --config path`)."""
    config = fixed_config(diagnosis, out, only)
    prescribe.write_config(config, path)
    return config
