"""Prescriptions into configs: merge the findings' changes, keep them valid for the model, write a YAML file.

A prescription is a dict of dotted TrainConfig keys (`"optimizer.weight_decay": 5e-4`, `"augment.rotate": 10`);
the same dict renders as `cnnlab train` flags, so the printed advice and the written config never disagree.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

from cnnlab.config import load_config, save_config
from cnnlab.data.augment import AugmentSpec
from cnnlab.diagnose import capacity
from cnnlab.diagnose.findings import Finding, sort_findings
from cnnlab.errors import ConfigError
from cnnlab.train.config import TrainConfig


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _mapping_text(mapping: dict[str, Any]) -> str:
    """{"rotate": 10, "flip": True} -> "rotate=10,flip" (what `parse_mapping` reads back)."""
    return ",".join(key if value is True else f"{key}={format_value(value)}" for key, value in mapping.items())


def _flag(key: str, value: Any, config: dict[str, Any]) -> str | None:
    flag = "--" + key.replace("_", "-")
    if value is None:
        return None  # e.g. `layers: null`: no flag for it; the written config carries it
    if isinstance(value, bool):
        return flag if value else f"--no-{flag[2:]}"
    if isinstance(value, dict):
        if value:
            return f"{flag} {_mapping_text(value)}"
        return f'{flag} ""' if config.get(key) else None
    return f"{flag} {format_value(value)}"


def render_flags(changes: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """`cnnlab train` flags for `changes` on top of `config`.

    `--augment` replaces the whole augmentation mapping, so it is printed with the run's own augmentations kept.
    """
    config = config or {}
    parts = []
    new_augment = {k.split(".", 1)[1]: v for k, v in changes.items() if k.startswith("augment.")}
    if new_augment:
        parts.append("--augment " + _mapping_text({**(config.get("augment") or {}), **new_augment}))
    for key, value in changes.items():
        if not key.startswith("augment."):
            flag = _flag(key, value, config)
            if flag:
                parts.append(flag)
    return " ".join(parts)


def merge_changes(findings: list[Finding], only: list[str] | None = None) -> dict[str, Any]:
    """All findings' changes in one dict; where two set the same key, the more severe finding wins."""
    merged: dict[str, Any] = {}
    for finding in sort_findings(findings):
        if only is None or finding.id in only:
            for key, value in finding.changes.items():
                merged.setdefault(key, value)
    return merged


def apply_changes(config: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A copy of the nested config dict with the dotted changes set."""
    result = copy.deepcopy(config)
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = result
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = copy.deepcopy(value)
    return result


def make_compatible(config: dict[str, Any]) -> dict[str, Any]:
    """Drop options the (possibly new) zoo model does not take, so the config still builds a model.

    A prescription may switch `resnet18` to `lenet5_modern`; `batch_norm` or VGG's model options then no longer
    apply, and passing them would make the model builder fail.
    """
    name = config.get("model")
    if config.get("layers") is not None or not name or str(name).endswith((".yaml", ".yml")):
        return config
    accepted = capacity.builder_options(str(name))
    if not accepted and name not in _zoo_names():
        return config
    result = dict(config)
    result["model_options"] = {k: v for k, v in (config.get("model_options") or {}).items() if k in accepted}
    for option in ("dropout", "batch_norm"):
        if result.get(option) is not None and option not in accepted:
            result[option] = None
    return result


def _zoo_names() -> list[str]:
    from cnnlab.models import list_models

    return list_models()


def prescribed_config(config: dict[str, Any], changes: dict[str, Any], out: str) -> TrainConfig:
    """The run's config with `changes` applied and `out` set, validated as a TrainConfig."""
    values = make_compatible(apply_changes(config, changes))
    values["out"] = out
    try:
        check_augment(values)
        return load_config(TrainConfig, None, values)
    except ConfigError as error:
        raise ConfigError(f"prescribed config is not valid ({error}); changes were {changes}") from error


def check_augment(values: dict[str, Any]) -> None:
    """The augmentations checked by the spec of the config's task (detection's are box-aware, with other keys)."""
    augment = values.get("augment") or {}
    if values.get("task", "classification") == "detection":
        from cnnlab.tasks.detection.augment import DetectionAugmentSpec

        DetectionAugmentSpec.from_mapping(dict(augment))
    else:
        AugmentSpec.from_config(augment)


def write_config(config: TrainConfig, path: str | Path) -> Path:
    """Write `config` as YAML and read it back, so what is written is known to load with `cnnlab train`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(config, path)
    load_config(TrainConfig, path)
    return path


def make_finding(
    facts_config: dict[str, Any],
    finding_id: str,
    severity: str,
    title: str,
    evidence: dict[str, Any],
    summary: str,
    changes: dict[str, Any],
    words: str,
) -> Finding:
    """A Finding whose advice ends with the `cnnlab train` flags equivalent to `changes`.

    A change computed from a NaN or infinite number (an old run whose config held `lr: .nan`) is dropped, never
    prescribed: training refuses such values, and a written config must load.
    """
    changes = finite_changes(changes)
    flags = render_flags(changes, facts_config)
    advice = f"{words} Flags: {flags}" if flags else words
    return Finding(finding_id, severity, title, _rounded(evidence), summary, dict(changes), advice)


def finite_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` without the numbers that are NaN or infinite."""
    return {key: value for key, value in changes.items() if not _is_nonfinite(value)}


def _is_nonfinite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isfinite(value)


def _rounded(evidence: dict[str, Any]) -> dict[str, Any]:
    """Evidence floats to 5 significant digits, and NaN/inf as strings, so `--json` output is strict JSON."""
    return {k: _json_number(v) if isinstance(v, float) else v for k, v in evidence.items()}


def _json_number(value: float) -> float | str:
    return float(f"{value:.5g}") if math.isfinite(value) else str(value)
