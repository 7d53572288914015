"""Image classification: softmax cross-entropy, accuracy, top-5, per-class P/R/F1 (the first task)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.data import DataSplits, build_augmenter, make_batches
from cnnlab.data.augment import AugmentSpec
from cnnlab.models import build_from_spec
from cnnlab.tasks import register_task
from cnnlab.tasks.base import NormalizedImageTask, StepContext, StepOutput
from cnnlab.tasks.classification.data import load_classification_data
from cnnlab.tasks.classification.metrics import classification_report, loss_and_accuracy


@register_task
class ClassificationTask(NormalizedImageTask):
    """One label per image out of K classes (MNIST, CIFAR, a folder of class sub-folders)."""

    name = "classification"
    metrics = {"loss": "min", "accuracy": "max", "top5_accuracy": "max", "macro_f1": "max", "balanced_accuracy": "max"}
    default_monitor = "val_accuracy"
    export_outputs = ("logits",)

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.label_smoothing = 0.0
        self.channels_last = False

    def configure(self, config: Any) -> None:
        self.label_smoothing = config.label_smoothing
        self.channels_last = config.channels_last

    # -- data and model -----------------------------------------------------------------------------------
    def load_data(self, config: Any) -> DataSplits:
        return load_classification_data(config)

    def data_meta(self, data: DataSplits) -> dict[str, Any]:
        return {
            "source": data.source,
            "format": data.format,
            "class_counts": data.class_counts(),
            "sizes": {name: len(split) for name, split in data.splits().items()},
        }

    def model_meta(self, data: DataSplits) -> dict[str, Any]:
        return {
            "num_classes": len(data.classes),
            "classes": list(data.classes),
            "input_shape": [data.in_channels, *data.image_size],
        }

    def build_model(self, spec: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        shape = meta["input_shape"]
        return build_from_spec(spec, shape[0], meta["num_classes"], tuple(shape[1:]))

    def reference_loss(self, meta: dict[str, Any]) -> float:
        """ln K: the cross-entropy of a uniform guess, where a freshly initialised classifier starts."""
        return math.log(max(int(meta.get("num_classes", 2)), 2))

    # -- batches ------------------------------------------------------------------------------------------
    def build_augment(self, config: Any):
        return build_augmenter(AugmentSpec.from_config(dict(config.augment)))

    def train_batches(self, split, config, generator, augment, shard=None):
        return make_batches(
            split,
            config.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=config.workers,
            augment=augment,
            shard=shard,
        )

    def eval_batches(self, split, batch_size: int):
        return make_batches(split, batch_size, shuffle=False)

    # -- steps --------------------------------------------------------------------------------------------
    def training_step(self, model: nn.Module, batch, context: StepContext) -> StepOutput:
        images, target = batch
        x = context.prepare(images.to(context.device, non_blocking=True))
        target = target.to(context.device, non_blocking=True)
        with context.autocast():
            logits = model(x)
        # Mixup/CutMix give soft (probability) targets; F.cross_entropy takes either form.
        loss = F.cross_entropy(logits.float(), target, label_smoothing=self.label_smoothing)
        hard = target.argmax(1) if target.ndim == 2 else target
        count = len(target)
        # Accumulated on the device: no .item() (a host sync) per step.
        sums = {"loss": loss.detach() * count, "accuracy": (logits.detach().argmax(1) == hard).sum()}
        return StepOutput(loss, count, sums, logits)

    def evaluation_step(self, model: nn.Module, batch, context: StepContext):
        images, labels = batch
        with context.autocast():
            logits = model(context.prepare(images.to(context.device, non_blocking=True)))
        return logits.float().cpu(), labels.cpu()

    def validation_metrics(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]):
        return loss_and_accuracy(outputs, targets)

    def test_report(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]) -> dict[str, Any]:
        report = classification_report(outputs, targets, list(meta["classes"]))
        return {
            "accuracy": report.accuracy,
            "loss": report.loss,
            "top5_accuracy": report.top5_accuracy,
            "macro_f1": report.macro_f1,
            "samples": len(targets),
        }

    # -- inference ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, model: nn.Module, preprocess: nn.Module, images: torch.Tensor, top_k: int = 5):
        """Top-k (class indices, probabilities) per image of a raw batch."""
        probabilities = torch.softmax(model(preprocess(images)).float(), dim=1)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        return indices.tolist(), values.tolist()
