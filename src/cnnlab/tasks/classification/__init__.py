"""Image classification, the first task: cross-entropy, accuracy, top-5, per-class metrics."""

from cnnlab.tasks.classification.task import ClassificationTask

__all__ = ["ClassificationTask"]
