"""Classification metrics live with the classification task; re-exported here for existing imports."""

from cnnlab.tasks.classification.metrics import (
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
