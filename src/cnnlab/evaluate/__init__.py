"""Metrics and evaluation of trained runs (the classification metrics live with their task)."""

from cnnlab.evaluate import metrics
from cnnlab.evaluate.metrics import *  # noqa: F403  (the names listed in metrics.__all__)

__all__ = list(metrics.__all__)
