"""The Task seam: everything that differs between applications, behind one interface the engine calls.

The engine (`cnnlab.train`) owns the order of things: epochs, optimiser steps, schedules, precision,
distributed reduction, callbacks, checkpoints. A task owns what a batch means: how it becomes a loss and the
running sums it logs, the extra trainable modules it needs (an ArcFace margin head), how samples are batched
(a P×K identity sampler), its validation and test metrics and their directions, what `run.json` records, what
a trained model returns to a user, the outputs an export carries and the loss a fresh model starts from (the
diagnosis's reference). References: Keras' `compile(loss, metrics)`, Lightning's `training_step`,
torchvision's one registry for many tasks.

Tasks import data, layers and models, never the engine: `cnnlab.runs` loads a run for inference through its
task without importing training code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from cnnlab.errors import ConfigError


@dataclass(frozen=True)
class NoOptions:
    """A task without options of its own."""


@dataclass
class StepOutput:
    """What one training step hands back to the engine.

    Attributes:
        loss: the scalar to minimise (the engine adds weight penalties and calls backward).
        count: samples in this batch (the running metrics are per-sample means).
        sums: detached running sums on the device, added up over the epoch without a host sync
            (e.g. {"loss": loss * n, "correct": ...}); the task's `running_metrics` turns them into metrics.
        outputs: the model's outputs, for batch hooks (callbacks see them as `trainer.step_output`).
    """

    loss: torch.Tensor
    count: int
    sums: dict[str, torch.Tensor]
    outputs: Any = None


@dataclass
class StepContext:
    """What a task's step may use: the device, the precision context, the input preprocessing, extra modules."""

    device: torch.device
    prepare: nn.Module = field(default_factory=nn.Identity)
    modules: nn.ModuleDict = field(default_factory=nn.ModuleDict)
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


class Task:
    """Base class of every task; override what differs. Register subclasses with `@register_task`.

    Class attributes:
        name: the registry name (`TrainConfig.task`).
        Options: a frozen dataclass of the task's typed options (`TrainConfig.task_options`).
        metrics: every metric the task logs, without the train_/val_/test_ prefix, with its direction
            ("max" or "min"); the monitored metric's direction comes from here, never from its name.
        default_monitor: the metric that picks the best epoch when the config names none.
        export_outputs: the names of the exported model's outputs.
        forbidden_augmentations: augmentations the diagnosis must not prescribe (e.g. flips where
            laterality matters).
        known_data_names: data set names the task generates or knows (`--data digits`), not paths.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    metrics: ClassVar[dict[str, str]] = {"loss": "min"}
    default_monitor: ClassVar[str] = "val_loss"
    export_outputs: ClassVar[tuple[str, ...]] = ("output",)
    forbidden_augmentations: ClassVar[frozenset[str]] = frozenset()
    known_data_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any = None) -> None:
        self.options = options if options is not None else self.Options()

    # -- metrics ------------------------------------------------------------------------------------------
    def metric_mode(self, metric: str) -> str | None:
        """ "max" or "min" for a logged metric name (with or without its split prefix), None if unknown."""
        base = metric
        for prefix in ("train_", "val_", "test_"):
            if base.startswith(prefix):
                base = base[len(prefix) :]
                break
        return self.metrics.get(base)

    def running_metrics(self, sums: dict[str, float], count: int) -> dict[str, float]:
        """The epoch's training metrics from the step sums (default: every sum as a per-sample mean)."""
        return {name: value / max(count, 1) for name, value in sums.items()}

    def reference_loss(self, meta: dict[str, Any]) -> float | None:
        """The loss a freshly initialised model starts near (ln K for K-way cross-entropy); None if none is known."""
        return None

    # -- data and model -----------------------------------------------------------------------------------
    def load_data(self, config: Any) -> Any:
        raise NotImplementedError(f"task {self.name!r} does not load data from a config; pass data= to fit")

    def data_meta(self, data: Any) -> dict[str, Any]:
        """What run.json records about the data (plain JSON types)."""
        return {}

    def run_files(self, data: Any) -> dict[str, str]:
        """Text files the run folder gets beside run.json (name -> content), e.g. what loading skipped."""
        return {}

    def build_preprocess(self, data: Any) -> nn.Module:
        """Input preprocessing fitted on the training split (its state goes into run.json via `preprocess_meta`)."""
        return nn.Identity()

    def preprocess_meta(self, preprocess: nn.Module) -> dict[str, Any]:
        return {}

    def preprocess_from_meta(self, meta: dict[str, Any]) -> nn.Module:
        return nn.Identity()

    def model_meta(self, data: Any) -> dict[str, Any]:
        """What the model builder needs to rebuild the model later (stored in run.json)."""
        return {}

    def build_model(self, spec: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def extra_modules(self, model: nn.Module, meta: dict[str, Any]) -> dict[str, nn.Module]:
        """Trainable modules beside the model (a margin head, a loss with parameters); saved in checkpoints."""
        return {}

    # -- batches ------------------------------------------------------------------------------------------
    def build_augment(self, config: Any) -> Any:
        return None

    def train_batches(self, split: Any, config: Any, generator: torch.Generator, augment: Any, shard=None) -> Iterable:
        raise NotImplementedError

    def eval_batches(self, split: Any, batch_size: int) -> Iterable:
        raise NotImplementedError

    # -- steps and evaluation -----------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch: Any, context: StepContext) -> StepOutput:
        raise NotImplementedError

    def evaluation_step(self, model: nn.Module, batch: Any, context: StepContext) -> tuple[Any, Any]:
        """(outputs, targets) for one batch, on the CPU; `collect` concatenates them over the split."""
        raise NotImplementedError

    def validation_metrics(self, outputs: Any, targets: Any, meta: dict[str, Any]) -> dict[str, float]:
        raise NotImplementedError

    def calibrate(self, outputs: Any, targets: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """Settings chosen on the validation split after training and applied unchanged to test (a face
        verification threshold, a clinical operating point); results.json keeps them as `calibration` and
        `test_report` finds them in `meta["calibration"]`. Default: none."""
        return {}

    def test_report(self, outputs: Any, targets: Any, meta: dict[str, Any]) -> dict[str, Any]:
        """The test metrics results.json records (default: the validation metrics)."""
        return self.validation_metrics(outputs, targets, meta)

    def run_meta(self) -> dict[str, Any]:
        """The task's own entry in run.json: name, options, metric directions."""
        from dataclasses import asdict, is_dataclass

        options = asdict(self.options) if is_dataclass(self.options) else {}
        return {"name": self.name, "options": options, "metrics": dict(self.metrics)}

    # -- deployment ---------------------------------------------------------------------------------------
    def inference_module(self, model: nn.Module, preprocess: nn.Module, meta: dict[str, Any]) -> nn.Module:
        """Raw input -> the task's outputs (`export_outputs`, in order), in eval mode: one module that export
        writes and the torch serve backend runs, so both backends answer alike. Default: preprocess, then model."""
        return InferenceModule(preprocess, model).eval()

    def export_inputs(self, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """The inference module's inputs: [{"name", "dtype", "shape"}], "batch" marking the symbolic batch axis."""
        return [{"name": "input", "dtype": "float32", "shape": ["batch", *meta.get("input_shape", [])]}]


class InferenceModule(nn.Module):
    """`model(preprocess(x))`: the raw batch in, the model's output out (the preprocessing travels with it)."""

    def __init__(self, preprocess: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x))


class NormalizedImageTask(Task):
    """A task whose input is images normalised by the training split's per-channel mean/std: the one
    preprocessing classification, detection and faces share (`cnnlab.data.preprocess.Preprocess`)."""

    channels_last: bool = False

    def build_preprocess(self, data: Any) -> nn.Module:
        from cnnlab.data import Normalizer
        from cnnlab.data.preprocess import Preprocess

        normalizer = Normalizer.from_imageset(data.train)
        return Preprocess(normalizer.mean, normalizer.std, self.channels_last)

    def preprocess_meta(self, preprocess: nn.Module) -> dict[str, Any]:
        return preprocess.to_meta()

    def preprocess_from_meta(self, meta: dict[str, Any]) -> nn.Module:
        from cnnlab.data.preprocess import Preprocess

        return Preprocess.from_meta(meta)

    def export_inputs(self, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """`images`: the decoded batch (uint8 N×C×H×W, or N×C×D×H×W volumes), normalised inside the module. A run
        whose run.json records another `input_dtype` (float volumes read from DICOM/NIfTI) takes that dtype."""
        dtype = str(meta.get("input_dtype", "uint8"))
        return [{"name": "images", "dtype": dtype, "shape": ["batch", *meta["input_shape"]]}]


@torch.inference_mode()
def collect(task: Task, model: nn.Module, batches: Iterable, context: StepContext) -> tuple[Any, Any]:
    """The task's (outputs, targets) over every batch, concatenated; the model is put in eval mode."""
    was_training = model.training
    model.eval()
    outputs, targets = [], []
    try:
        for batch in batches:
            out, target = task.evaluation_step(model, batch, context)
            outputs.append(out)
            targets.append(target)
    finally:
        model.train(was_training)
    return concatenate(outputs), concatenate(targets)


def concatenate(parts: list[Any]) -> Any:
    """Tensors are concatenated on dim 0, dicts key by key, lists chained."""
    if not parts:
        return torch.empty(0)
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts)
    if isinstance(first, dict):
        return {key: concatenate([part[key] for part in parts]) for key in first}
    if isinstance(first, list):
        return [item for part in parts for item in part]
    raise TypeError(f"cannot concatenate {type(first).__name__} outputs")


def build_options(task_cls: type[Task], values: dict[str, Any] | None) -> Any:
    """A task's typed options from a mapping; unknown keys are errors naming the task."""
    from cnnlab.config import build_dataclass

    try:
        return build_dataclass(task_cls.Options, dict(values or {}), prefix="task_options.")
    except ConfigError as error:
        raise ConfigError(f"task {task_cls.name!r}: {error}") from error
