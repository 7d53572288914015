"""Metrics and evaluation of trained runs."""

from cnnlab.evaluate.metrics import (
    ClassificationReport,
    classification_report,
    collect_logits,
    confusion_matrix,
    loss_and_accuracy,
    per_class_scores,
)

__all__ = [
    "ClassificationReport",
    "classification_report",
    "collect_logits",
    "confusion_matrix",
    "loss_and_accuracy",
    "per_class_scores",
]
