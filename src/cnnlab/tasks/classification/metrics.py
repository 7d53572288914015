"""Classification metrics computed from logits: loss, accuracy, top-k, confusion matrix, per-class P/R/F1."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@torch.inference_mode()
def collect_logits(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    prepare: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    autocast: contextlib.AbstractContextManager | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (float32, on CPU) and labels for every batch; the model is put in eval mode."""
    was_training = model.training
    model.eval()
    all_logits, all_labels = [], []
    try:
        for x, y in batches:
            with autocast or contextlib.nullcontext():
                logits = model(prepare(x.to(device, non_blocking=True)))
            all_logits.append(logits.float().cpu())
            all_labels.append(y.cpu())
    finally:
        model.train(was_training)
    return torch.cat(all_logits), torch.cat(all_labels)


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rows are true classes, columns predicted (scikit-learn's convention)."""
    index = labels.long() * num_classes + predictions.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_scores(matrix: torch.Tensor) -> dict[str, list[float]]:
    """Precision, recall, F1 and support per class; 0 where undefined (scikit-learn's zero_division=0)."""
    matrix = matrix.double()
    true_positive = matrix.diag()
    predicted = matrix.sum(0)
    support = matrix.sum(1)
    precision = torch.where(predicted > 0, true_positive / predicted.clamp(min=1), torch.zeros_like(predicted))
    recall = torch.where(support > 0, true_positive / support.clamp(min=1), torch.zeros_like(support))
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp(min=1e-12), torch.zeros_like(support))
    return {
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.long().tolist(),
    }


@dataclass
class ClassificationReport:
    """Scores of one evaluation; `per_class` holds lists indexed like `classes`.

    `macro_f1` is scikit-learn's `f1_score(average="macro")`: the mean F1 over the classes that occur in the
    labels or in the predictions (support > 0 or predicted > 0). A class absent from both has no defined F1 and
    is left out rather than counted as 0, so a 10-class model evaluated on a split holding 7 of the classes is not
    marked down for the 3 it was never asked about and never predicted. `balanced_accuracy` is the mean recall
    over the classes with support > 0 (scikit-learn's `balanced_accuracy_score`). Both are 0 when nothing is
    present.
    """

    loss: float
    accuracy: float
    top5_accuracy: float | None
    confusion: list[list[int]]
    per_class: dict[str, list[float]]
    classes: list[str]
    macro_f1: float = field(init=False)
    balanced_accuracy: float = field(init=False)

    def __post_init__(self) -> None:
        support = self.per_class["support"]
        # Column sums of the confusion matrix: how often each class was predicted.
        predicted = [sum(column) for column in zip(*self.confusion)] if self.confusion else [0] * len(support)
        seen = [f for f, n, m in zip(self.per_class["f1"], support, predicted) if n > 0 or m > 0]
        present = [r for r, n in zip(self.per_class["recall"], support) if n > 0]
        self.macro_f1 = sum(seen) / max(len(seen), 1)
        self.balanced_accuracy = sum(present) / max(len(present), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "top5_accuracy": self.top5_accuracy,
            "macro_f1": self.macro_f1,
            "balanced_accuracy": self.balanced_accuracy,
            "classes": self.classes,
            "per_class": {
                name: {key: values[i] for key, values in self.per_class.items()} for i, name in enumerate(self.classes)
            },
            "confusion_matrix": self.confusion,
        }


def classification_report(logits: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> ClassificationReport:
    num_classes = len(classes)
    predictions = logits.argmax(1)
    matrix = confusion_matrix(predictions, labels, num_classes)
    top5 = None
    if num_classes > 5:
        top5 = float((logits.topk(5, dim=1).indices == labels[:, None]).any(1).double().mean())
    return ClassificationReport(
        loss=float(F.cross_entropy(logits, labels.long())),
        accuracy=float((predictions == labels).double().mean()),
        top5_accuracy=top5,
        confusion=matrix.tolist(),
        per_class=per_class_scores(matrix),
        classes=list(classes),
    )


def loss_and_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    return {
        "loss": float(F.cross_entropy(logits, labels.long())),
        "accuracy": float((logits.argmax(1) == labels).double().mean()),
    }
