"""RunFacts: the numbers every rule needs, gathered once from the history, config, run.json and the model."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.diagnose import capacity, curves
from cnnlab.diagnose.curves import infer_mode

# What `fit` falls back to when a config leaves these out (TrainConfig's defaults).
DEFAULT_MONITOR = "val_accuracy"
DEFAULT_OPTIMIZER = {"name": "sgd", "lr": 0.01, "weight_decay": 0.0}
# Tasks without a reference loss whose loss-shape rules use the first epoch's training loss as the scale.
FIRST_EPOCH_SCALE_TASKS = frozenset({"detection"})


@dataclass(frozen=True)
class Regularization:
    """Which regularizers the run used, read from the config and, where available, the model's own modules."""

    augment: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    batch_norm: bool = False
    weight_decay: float = 0.0
    l1: float = 0.0
    l2: float = 0.0
    label_smoothing: float = 0.0
    early_stopping_patience: int | None = None

    @property
    def weight_penalty(self) -> bool:
        return bool(self.weight_decay or self.l1 or self.l2)

    @property
    def mixes_labels(self) -> bool:
        """Mixup/CutMix train on blended labels, so the logged train accuracy understates the fit."""
        return bool(self.augment.get("mixup") or self.augment.get("cutmix"))

    def unused(self) -> list[str]:
        """The regularizers of the classic toolbox this run did not use, in a fixed order."""
        used = {
            "augmentation": bool(self.augment),
            "dropout": self.dropout > 0,
            "batch_norm": self.batch_norm,
            "weight_decay": self.weight_penalty,
            "early_stopping": self.early_stopping_patience is not None,
        }
        return [name for name, on in used.items() if not on]


@dataclass(frozen=True)
class RunFacts:
    history: list[dict[str, Any]]
    config: dict[str, Any]
    num_classes: int
    input_shape: tuple[int, int, int] | None
    train_size: int | None
    val_size: int | None
    class_counts: list[int] | None
    parameters: int | None
    model_name: str | None
    model_options: set[str]
    optimizer: dict[str, Any]
    monitor: str | None
    best_index: int | None
    regularization: Regularization
    results: dict[str, Any] | None = None
    classes: list[str] = field(default_factory=list)
    learning_curve: dict[str, Any] | None = None
    task: str = "classification"
    reference_loss: float | None = None
    forbidden_augmentations: frozenset[str] = frozenset()

    # -- derived numbers --------------------------------------------------------------------------------
    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def epochs_planned(self) -> int:
        return int(self.config.get("epochs", self.epochs_run) or self.epochs_run)

    @property
    def has_validation(self) -> bool:
        return curves.has_metric(self.history, "val_accuracy") or curves.has_metric(self.history, "val_loss")

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}

    @property
    def best(self) -> dict[str, Any]:
        return self.history[self.best_index] if self.best_index is not None else self.last

    @property
    def best_epoch(self) -> int | None:
        return curves.epoch_of(self.history, self.best_index) if self.best_index is not None else None

    @property
    def best_val_accuracy(self) -> float | None:
        values = [v for v in curves.column(self.history, "val_accuracy") if math.isfinite(v)]
        return max(values) if values else None

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / max(self.num_classes, 1)

    @property
    def chance_loss(self) -> float:
        """The loss a fresh model starts near, as the run's task declares it (ln K for K-way cross-entropy);
        infinite when the task declares none, so no loss-ratio rule fires on a loss it cannot judge."""
        if self.reference_loss is not None:
            return float(self.reference_loss)
        return math.log(max(self.num_classes, 2)) if self.task == "classification" else math.inf

    @property
    def loss_scale(self) -> float:
        """What the loss-shape rules measure rises and falls against: the reference loss where the task declares
        one; for detection (whose summed box, objectness and class losses have no closed-form start) the first
        epoch's mean training loss; else infinite (no such rule fires)."""
        if math.isfinite(self.chance_loss) or self.task not in FIRST_EPOCH_SCALE_TASKS:
            return self.chance_loss
        losses = [v for v in curves.column(self.history, "train_loss") if math.isfinite(v) and v > 0]
        return losses[0] if losses else math.inf

    @property
    def loss_scale_words(self) -> str:
        """How a sentence names `loss_scale`."""
        if math.isfinite(self.chance_loss):
            return f"the {self.chance_loss:.3f} an untrained model starts at"
        return f"the first epoch's {self.loss_scale:.3f}"

    @property
    def best_val_map50(self) -> float | None:
        """A detection run's best validation mAP@0.5 (the score its rules read where others read accuracy)."""
        values = [v for v in curves.column(self.history, "val_map50") if math.isfinite(v)]
        return max(values) if values else None

    @property
    def samples_per_class(self) -> float | None:
        if self.class_counts:
            return min(self.class_counts)
        if self.train_size:
            return self.train_size / max(self.num_classes, 1)
        return None

    @property
    def params_per_sample(self) -> float | None:
        if self.parameters is None or not self.train_size:
            return None
        return self.parameters / self.train_size

    @property
    def lr(self) -> float:
        return float(self.optimizer.get("lr", DEFAULT_OPTIMIZER["lr"]))

    @property
    def optimizer_name(self) -> str:
        return str(self.optimizer.get("name", DEFAULT_OPTIMIZER["name"])).lower()

    def summary(self) -> dict[str, Any]:
        """The run's key numbers, for the header of a report."""
        return {
            "model": self.model_name or "layer list",
            "parameters": self.parameters,
            "num_classes": self.num_classes,
            "task": self.task,
            "input_shape": list(self.input_shape) if self.input_shape else None,
            "train_samples": self.train_size,
            "val_samples": self.val_size,
            "epochs_run": self.epochs_run,
            "epochs_planned": self.epochs_planned,
            "monitor": self.monitor,
            "best_epoch": self.best_epoch,
        }


def _nested(tree: dict[str, Any], key: str) -> dict[str, Any]:
    value = tree.get(key)
    return value if isinstance(value, dict) else {}


def _class_counts(meta: dict[str, Any], split: str) -> list[int] | None:
    counts = _nested(_nested(meta, "data"), "class_counts").get(split)
    return [int(c) for c in counts] if counts else None


def _split_size(meta: dict[str, Any], split: str) -> int | None:
    size = _nested(_nested(meta, "data"), "sizes").get(split)
    if size is not None:
        return int(size)
    counts = _class_counts(meta, split)
    return sum(counts) if counts else None


def _build_model(meta: dict[str, Any]) -> nn.Module | None:
    """The run's model rebuilt from run.json (untrained: only its layer types are read)."""
    from cnnlab.runs import run_task

    spec, shape = meta.get("model"), meta.get("input_shape")
    if not spec or not shape or not meta.get("num_classes"):
        return None
    try:
        return run_task(meta).build_model(spec, meta)
    except Exception:  # a model that cannot be rebuilt leaves the config's word as the only evidence
        return None


def _regularization(
    config: dict[str, Any], meta: dict[str, Any], model: nn.Module | None, model_name: str | None
) -> Regularization:
    augment = config.get("augment") or _nested(meta, "regularization").get("augment") or {}
    if model is not None:
        dropout, batch_norm = capacity.model_regularizers(model)
    else:
        dropout = config.get("dropout")
        dropout = capacity.builder_default(model_name, "dropout") if dropout is None else dropout
        batch_norm = bool(config.get("batch_norm") or capacity.builder_default(model_name, "batch_norm"))
    early = _nested(config, "early_stopping")
    return Regularization(
        augment={key: value for key, value in augment.items() if value},
        dropout=float(dropout or 0.0),
        batch_norm=bool(batch_norm),
        weight_decay=float(_nested(config, "optimizer").get("weight_decay", 0.0) or 0.0),
        l1=float(config.get("l1", 0.0) or 0.0),
        l2=float(config.get("l2", 0.0) or 0.0),
        label_smoothing=float(config.get("label_smoothing", 0.0) or 0.0),
        early_stopping_patience=early.get("patience"),
    )


def _monitor(config: dict[str, Any], has_validation: bool, meta_monitor: str | None = None) -> str | None:
    """The metric whose best epoch `fit` restores at the end: early stopping's monitor, else the run's."""
    if not has_validation:
        return None
    early = _nested(config, "early_stopping")
    return str(early.get("monitor") or config.get("monitor") or meta_monitor or DEFAULT_MONITOR)


def build_facts(
    history: list[dict[str, Any]],
    config: dict[str, Any],
    meta: dict[str, Any],
    model: nn.Module | None = None,
    results: dict[str, Any] | None = None,
    learning_curve: dict[str, Any] | None = None,
) -> RunFacts:
    """Gather what the rules read; the model (rebuilt from run.json when not given) says which layers exist."""
    spec = meta.get("model") or {}
    model_name = spec.get("name") if "name" in spec else (None if config.get("layers") else config.get("model"))
    if model is None:
        model = _build_model(meta)
    parameters = meta.get("parameters") or (capacity.count_parameters(model) if model is not None else None)
    has_val = curves.has_metric(history, "val_accuracy") or curves.has_metric(history, "val_loss")
    # A task validated by other metrics (a faces run's val_auc) still has the best epoch its monitor chose.
    has_val = has_val or curves.has_metric(history, str(meta.get("monitor") or "-"))
    monitor = _monitor(config, has_val, meta.get("monitor"))
    shape = meta.get("input_shape")
    return RunFacts(
        history=list(history),
        config=dict(config),
        num_classes=int(meta.get("num_classes") or len(_class_counts(meta, "train") or []) or 2),
        input_shape=tuple(int(v) for v in shape) if shape else None,
        train_size=_split_size(meta, "train"),
        val_size=_split_size(meta, "val"),
        class_counts=_class_counts(meta, "train"),
        parameters=int(parameters) if parameters else None,
        model_name=model_name,
        model_options=capacity.builder_options(model_name),
        optimizer={**DEFAULT_OPTIMIZER, **_nested(config, "optimizer")},
        monitor=monitor,
        best_index=curves.best_index(history, monitor, infer_mode(monitor, meta)) if monitor else None,
        regularization=_regularization(config, meta, model, model_name),
        results=results,
        classes=[str(c) for c in meta.get("classes") or []],
        learning_curve=learning_curve,
        **_task_facts(meta),
    )


def _task_facts(meta: dict[str, Any]) -> dict[str, Any]:
    """The run's task, its reference loss and the augmentations it forbids (old runs: classification)."""
    entry = meta.get("task") or {"name": "classification"}
    forbidden: frozenset[str] = frozenset()
    try:
        from cnnlab.runs import run_task

        forbidden = frozenset(run_task(meta).forbidden_augmentations)
    except Exception:  # a task this installation lacks: judge by what run.json says
        pass
    return {"task": entry["name"], "reference_loss": entry.get("reference_loss"), "forbidden_augmentations": forbidden}
