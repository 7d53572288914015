"""Image classification: one label of K (softmax cross-entropy), binary with an operating point, or multi-label
(a sigmoid per label); 2-D images or 3-D volumes; class weights, a balanced sampler or focal loss for imbalance."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from cnnlab.data import DataSplits, build_augmenter, make_batches
from cnnlab.data.augment import AugmentSpec
from cnnlab.data.samplers import BalancedBatchSampler, balanced_weights
from cnnlab.errors import ConfigError
from cnnlab.models import build_from_spec
from cnnlab.tasks import register_task
from cnnlab.tasks.base import NormalizedImageTask, StepContext, StepOutput
from cnnlab.tasks.classification import clinical
from cnnlab.tasks.classification.data import load_classification_data
from cnnlab.tasks.classification.losses import ClassificationLoss, parse_class_weights
from cnnlab.tasks.classification.metrics import classification_report, loss_and_accuracy


@register_task
class ClassificationTask(NormalizedImageTask):
    """One label per image out of K classes (MNIST, CIFAR, a folder of class sub-folders, a chest X-ray set), or
    several labels per image (multi-hot targets): the label mode comes from the targets' shape (`clinical`)."""

    name = "classification"
    metrics = {
        "loss": "min",
        "accuracy": "max",
        "top5_accuracy": "max",
        "macro_f1": "max",
        "balanced_accuracy": "max",
        "auc": "max",
        "pr_auc": "max",
        "sensitivity": "max",
        "specificity": "max",
        "ece": "min",
    }
    default_monitor = "val_accuracy"
    export_outputs = ("logits",)

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.label_smoothing = 0.0
        self.channels_last = False
        self.config: Any = None
        self.loss = ClassificationLoss()
        self.label_mode = "multiclass"

    def configure(self, config: Any) -> None:
        self.config = config
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
        """Also settles the label mode and the training loss (class weights come from the training counts)."""
        self.label_mode = clinical.label_mode_of(data.train.labels, len(data.classes))
        self.loss = self._loss(data)
        return {
            "num_classes": len(data.classes),
            "classes": list(data.classes),
            "input_shape": [data.in_channels, *data.image_size],
            "label_mode": self.label_mode,
            "loss": self.loss.describe(),
        }

    def _loss(self, data: DataSplits) -> ClassificationLoss:
        config, multilabel = self.config, self.label_mode == "multilabel"
        if config is None:
            return ClassificationLoss(multilabel)
        if multilabel and config.label_smoothing:
            raise ConfigError("label_smoothing: multi-label targets are 0/1 per label; label smoothing is for softmax")
        weight = parse_class_weights(
            config.class_weights, data.train.class_counts(), len(data.train), data.classes, multilabel
        )
        return ClassificationLoss(multilabel, weight, config.focal_gamma, config.label_smoothing)

    def build_model(self, spec: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        self.label_mode = clinical.mode_of(meta)  # a run rebuilt for inference predicts in its own mode
        shape = meta["input_shape"]
        return build_from_spec(spec, shape[0], meta["num_classes"], tuple(shape[1:]))

    def reference_loss(self, meta: dict[str, Any]) -> float:
        """ln K: the cross-entropy of a uniform guess, where a freshly initialised classifier starts (ln 2 per label
        for multi-label: every sigmoid starts near 0.5)."""
        if meta.get("label_mode") == "multilabel":
            return math.log(2)
        return math.log(max(int(meta.get("num_classes", 2)), 2))

    # -- batches ------------------------------------------------------------------------------------------
    def build_augment(self, config: Any):
        return build_augmenter(AugmentSpec.from_config(dict(config.augment)))

    def train_batches(self, split, config, generator, augment, shard=None):
        if self.label_mode == "multilabel" and ({"mixup", "cutmix"} & set(config.augment)):
            raise ConfigError("augment: mixup and cutmix mix one label per image; multi-label targets take neither")
        sampler = None
        if config.sampler == "balanced":
            sampler = BalancedBatchSampler(balanced_weights(split.labels), config.batch_size)
        return make_batches(
            split,
            config.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=config.workers,
            augment=augment,
            shard=shard,
            batch_sampler=sampler,
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
        loss = self.loss(logits.float(), target)
        count = len(target)
        # Accumulated on the device: no .item() (a host sync) per step.
        if self.label_mode == "multilabel":
            correct = ((logits.detach() > 0) == (target > 0.5)).float().mean(1).sum()
        else:
            hard = target.argmax(1) if target.ndim == 2 else target
            correct = (logits.detach().argmax(1) == hard).sum()
        return StepOutput(loss, count, {"loss": loss.detach() * count, "accuracy": correct}, logits)

    def evaluation_step(self, model: nn.Module, batch, context: StepContext):
        images, labels = batch
        with context.autocast():
            logits = model(context.prepare(images.to(context.device, non_blocking=True)))
        return logits.float().cpu(), labels.cpu()

    def validation_metrics(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]):
        """Loss (the training loss, class weights and focal term included, so the two curves compare like with
        like) and accuracy; binary and multi-label runs also log the ROC-AUC (`--monitor val_auc`)."""
        mode = clinical.mode_of(meta)
        metrics = clinical.multilabel_loss_accuracy(outputs, targets) if mode == "multilabel" else None
        metrics = metrics or loss_and_accuracy(outputs, targets)
        if self.loss.weight is not None or self.loss.focal_gamma is not None:
            metrics["loss"] = float(self.loss(outputs, targets))
        auc = clinical.validation_auc(outputs, targets, mode)
        return {**metrics, "auc": auc} if auc is not None else metrics

    def calibrate(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]) -> dict[str, Any]:
        """The operating point of binary and multi-label runs, chosen on validation (`clinical`)."""
        target = self.config.target_sensitivity if self.config is not None else None
        return clinical.choose_operating_point(outputs, targets, meta, target)

    def test_report(self, outputs: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any]) -> dict[str, Any]:
        mode = clinical.mode_of(meta)
        if mode == "multilabel":
            return clinical.clinical_report(outputs, targets, meta)
        report = classification_report(outputs, targets, list(meta["classes"]))
        plain = {
            "accuracy": report.accuracy,
            "loss": report.loss,
            "top5_accuracy": report.top5_accuracy,
            "macro_f1": report.macro_f1,
            "samples": len(targets),
        }
        if mode == "binary":  # accuracy at the operating point; the argmax call's stays as accuracy_argmax
            return {**plain, **clinical.clinical_report(outputs, targets, meta)}
        return {**plain, "auc": clinical.clinical_report(outputs, targets, meta)["auc"]}

    # -- inference ----------------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, model: nn.Module, preprocess: nn.Module, images: torch.Tensor, top_k: int = 5):
        """Top-k (class indices, probabilities) per image of a raw batch (multi-label: independent sigmoids)."""
        probabilities = clinical.probabilities(model(preprocess(images)), self.label_mode)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        return indices.tolist(), values.tolist()
