"""The files of a run folder read and checked: run.json, results.json, metrics.jsonl/.csv, config.yaml.

A damaged file is one RunError naming the file and what is wrong with it, whichever command met it. This
module sits below the training engine (it imports config, data and errors only), so that `cnnlab.train` can
read a run's saved config and data paths on resume, and `cnnlab.runs` can load a run, without either
importing the other's side.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnnlab.config import read_yaml
from cnnlab.data import is_named_dataset
from cnnlab.errors import ConfigError, DataError, RunError

# -- reading the files of a run folder ------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise RunError(f"{path}: not a text file (byte {error.start} is not UTF-8); the file is damaged") from error
    except OSError as error:
        raise RunError(f"{path}: cannot read ({error.strerror or error})") from error


def _parse_json(text: str, path: Path, line: int | None = None) -> Any:
    """`text` (the whole file, or its `line`) as JSON; a fault names the line and column, as YAML errors do."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        where = f"line {line or error.lineno}, column {error.colno}"
        raise RunError(f"{path}: {where}: not valid JSON ({error.msg}); the file is damaged") from error
    except RecursionError as error:
        raise RunError(f"{path}: JSON nested too deeply; the file is damaged") from error


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _shown(value: Any) -> str:
    """A value as the message quotes it: its repr, cut short (a whole damaged list is no help on one line)."""
    return _cut(repr(value), 60)


def read_json_file(path: str | Path) -> Any:
    """A JSON file of a run folder (None when it is absent); a damaged one is a RunError naming it."""
    path = Path(path)
    if not path.is_file():
        return None
    text = _read_text(path)
    if not text.strip():
        raise RunError(f"{path}: empty file (expected JSON); the file is damaged")
    return _parse_json(text, path)


def read_json_object(path: str | Path) -> dict[str, Any] | None:
    """`read_json_file`, which must hold a JSON object (run.json and results.json do)."""
    data = read_json_file(path)
    if data is not None and not isinstance(data, dict):
        raise RunError(f"{path}: expected a JSON object, got a {_json_type(data)}; the file is damaged")
    return data


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_shape(value: Any) -> bool:
    # Channels and at least two spatial sizes (images and volumes), or one sentence length (token ids of text runs).
    return isinstance(value, list) and len(value) in (1, 3, 4) and all(_is_positive_int(v) for v in value)


def _is_name_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value)


def _is_number_list(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 1 and all(_is_number(v) and math.isfinite(v) for v in value)


def _is_normalization(value: Any) -> bool:
    return isinstance(value, dict) and _is_number_list(value.get("mean")) and _is_number_list(value.get("std"))


def _is_task_entry(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("options"), (dict, type(None)))
    )


def _is_path_mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(
        key in PATH_FIELDS and isinstance(path, str) and os.path.isabs(path) for key, path in value.items()
    )


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_count_mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(_is_count(v) for v in value.values())


def _is_counts_mapping(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(c, list) and all(map(_is_count, c)) for c in value.values())


# Config fields that may name a file or folder. run.json keeps their absolute paths (`data.paths`), as they were
# when `train` ran, so that a run folder finds its data from any working directory.
PATH_FIELDS = ("data", "test_data", "model")

# run.json fields that readers rely on, and what each must be; checked whenever present.
RUN_META_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: isinstance(v, dict), "a mapping (the model's name and options, or its layers)"),
    "input_shape": (_is_shape, "a list of positive integers [channels, height, width] (or [length] for text)"),
    "num_classes": (_is_positive_int, "a positive integer"),
    "classes": (_is_name_list, "a list of class names"),
    "normalization": (_is_normalization, "a mapping with 'mean' and 'std' lists of finite numbers"),
    "task": (lambda v: v is None or _is_task_entry(v), "a mapping with a 'name' and 'options'"),
    "data": (lambda v: isinstance(v, dict), "a mapping"),
    "data.sizes": (_is_count_mapping, "a mapping of split names to image counts"),
    "data.class_counts": (_is_counts_mapping, "a mapping of split names to lists of per-class image counts"),
    "data.paths": (_is_path_mapping, f"a mapping of config fields ({', '.join(PATH_FIELDS)}) to absolute paths"),
    "parameters": (lambda v: v is None or _is_positive_int(v), "a positive integer"),
}


def _dotted(tree: dict[str, Any], key: str) -> tuple[bool, Any]:
    """(present, value) of `data.sizes`-style keys; absent (and left to its parent's check) under a non-mapping."""
    node: Any = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_run_meta(meta: Any, path: Path) -> dict[str, Any]:
    """Refuse a run.json whose fields have the wrong type or disagree with each other, naming the field."""
    if not isinstance(meta, dict):
        raise RunError(f"{path}: expected a JSON object, got a {_json_type(meta)}; the file is damaged")
    for key, (is_valid, expected) in RUN_META_FIELDS.items():
        found, value = _dotted(meta, key)
        if found and not is_valid(value):
            raise RunError(f"{path}: field {key!r} must be {expected}, got {_shown(value)}")
    classes, count = meta.get("classes"), meta.get("num_classes")
    if classes is not None and count is not None and len(classes) != count:
        raise RunError(f"{path}: {len(classes)} names in 'classes' but 'num_classes' is {count}")
    shape, norm = meta.get("input_shape"), meta.get("normalization")
    if shape and norm and not len(norm["mean"]) == len(norm["std"]) == shape[0]:
        raise RunError(
            f"{path}: 'normalization' has {len(norm['mean'])} means and {len(norm['std'])} stds "
            f"for {shape[0]} input channels"
        )
    return meta


def read_run_meta(run_dir: str | Path) -> dict[str, Any]:
    """run.json of a run folder, checked: the folder, the file and the type of every field it relies on."""
    run_dir = Path(run_dir)
    path = run_dir / "run.json"
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: is a file, not a run folder")
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run folder not found")
    if not path.is_file():
        raise RunError(f"{run_dir}: not a cnnlab run folder (no run.json); train one with `cnnlab train`")
    return check_run_meta(read_json_file(path), path)


SCORE_TEXT_FIELDS = {"threshold_rule"}  # a binary run's how-the-threshold-was-chosen


def _is_score_item(item: Any) -> bool:
    if isinstance(item, list):
        return all(_is_score_item(i) for i in item)
    return item is None or isinstance(item, (str, bool)) or _is_number(item)


def _check_scores(value: Any, path: Path, where: str) -> None:
    """A split's scores: numbers (or null, true/false), nested mappings of them (detection's per-class APs, a
    faces run's verification and identification blocks, a binary run's reliability bins), lists of numbers or
    notes (a confusion matrix, a confidence interval, strings), and the text fields in SCORE_TEXT_FIELDS."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_scores(item, path, f"{where}.{key}")
    elif isinstance(value, list):
        if not _is_score_item(value):
            raise RunError(f"{path}: {where} must be a list of numbers or notes, got {_shown(value)}")
    elif isinstance(value, str) and where.rsplit(".", 1)[-1] in SCORE_TEXT_FIELDS:
        return
    elif value is not None and not isinstance(value, bool) and not _is_number(value):
        raise RunError(f"{path}: {where} must be a number, got {_shown(value)}")


def _check_results(results: dict[str, Any], path: Path) -> dict[str, Any]:
    split = results.get("evaluated_split")
    if split is not None and not isinstance(split, str):
        raise RunError(f"{path}: field 'evaluated_split' must be a split name, got {_shown(split)}")
    for name in ("train", "val", "test"):
        scores = results.get(name)
        if scores is None:
            continue
        if not isinstance(scores, dict):
            raise RunError(f"{path}: field {name!r} must be a mapping of metrics, got {_shown(scores)}")
        _check_scores(scores, path, name)
    for key in ("best_epoch", "epochs_run"):
        if results.get(key) is not None and not _is_positive_int(results[key]):
            raise RunError(f"{path}: field {key!r} must be a positive integer, got {_shown(results[key])}")
    return results


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """results.json (None before training finished), with the fields diagnose and report read checked."""
    path = Path(run_dir) / "results.json"
    results = read_json_object(path)
    return None if results is None else _check_results(results, path)


def _check_epoch_row(row: Any, path: Path, line: int) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise RunError(f"{path}: line {line}: expected a JSON object (one epoch's metrics), got a {_json_type(row)}")
    for key, value in row.items():
        if value is not None and not _is_number(value):
            raise RunError(f"{path}: line {line}: {key!r} must be a number, got {_shown(value)}")
    return row


def _read_metrics_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if line.strip():
            rows.append(_check_epoch_row(_parse_json(line, path, number), path, number))
    return rows


def _number(value: str, path: Path, line: int, key: str) -> float:
    try:
        return float(value)
    except ValueError as error:
        raise RunError(f"{path}: line {line}: {key!r} must be a number, got {_shown(value)}") from error


def _read_metrics_csv(path: Path) -> list[dict[str, Any]]:
    reader = csv.DictReader(_read_text(path).splitlines())
    rows = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise RunError(f"{path}: line {line}: more values than the header has columns")
        rows.append({k: _number(v, path, line, k) for k, v in row.items() if v not in ("", None)})
    return rows


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]] | None:
    """The per-epoch metrics (metrics.jsonl, else metrics.csv); [] before the first epoch, None with neither."""
    run_dir = Path(run_dir)
    jsonl, csv_path = run_dir / "metrics.jsonl", run_dir / "metrics.csv"
    if jsonl.is_file():
        return _read_metrics_jsonl(jsonl)
    if csv_path.is_file():
        return _read_metrics_csv(csv_path)
    return None


# Fields every saved config.yaml holds (`cnnlab train` writes them all); without them it is damaged.
RUN_CONFIG_FIELDS = ("model", "data")


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """config.yaml of a run folder as a dict: a mapping that names at least the model and the data (a user's
    own config file may be empty; a run's never is), its relative paths resolved (`resolve_saved_paths`) so
    that it reads the run's data from any working directory. Building the typed config is left to the caller,
    which may import the training code."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml)")
    try:
        values = read_yaml(path, required=RUN_CONFIG_FIELDS)
    except ConfigError as error:
        raise RunError(f"{error}; the file is damaged") from error
    meta_path = Path(run_dir) / "run.json"
    meta = check_run_meta(read_json_file(meta_path), meta_path) if meta_path.is_file() else {}
    return resolve_saved_paths(values, saved_paths(meta))


# -- the files a run's config names ---------------------------------------------------------------------------


def saved_paths(meta: dict[str, Any]) -> dict[str, str]:
    """The absolute paths run.json recorded for the config's path fields (none for runs before they were)."""
    data = meta.get("data")
    return dict(data.get("paths") or {}) if isinstance(data, dict) else {}


def resolve_saved_paths(values: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    """`values` of a run's config.yaml with each relative path replaced by the absolute one run.json stored.

    config.yaml keeps the user's words (`data: data/mnist`, relative to where `train` ran); run.json knows where
    that was. A relative path that exists here while the stored one is gone (the whole project moved) is kept.
    Named data sets (`mnist`) were never stored as paths, so they stay names.
    """
    resolved = dict(values)
    for key, absolute in paths.items():
        given = values.get(key)
        if not isinstance(given, str) or not given or Path(given).is_absolute():
            continue
        if Path(absolute).exists() or not Path(given).exists():
            resolved[key] = absolute
    return resolved


def check_run_data(config: Any, meta: dict[str, Any], hint: str = "pass --data PATH to say where it is now") -> None:
    """Refuse, in one line naming the missing path and how to point at it, a run whose data has moved since
    training (before the long load that would fail on it).

    Args:
        config: the run's config (a TrainConfig, or anything with `data` and `test_data` attributes), its paths
            resolved by `read_run_config`.
        hint: how the command at hand takes another path.
    """
    stored = saved_paths(meta)
    for key in ("data", "test_data"):
        path = getattr(config, key, None)
        if not path or Path(path).exists():
            continue
        what = "data" if key == "data" else "test data"
        if key in stored:
            raise DataError(f"{path}: the run's {what} is not there any more (moved or deleted?); {hint}")
        if not Path(path).is_absolute() and not is_named_dataset(path):  # a run from before paths were stored
            raise DataError(
                f"{path}: the run's {what} is not found from {Path.cwd()} (it is relative to where `cnnlab train` "
                f"ran, which this run does not record); run from that folder, or {hint}"
            )
