"""Built-in callbacks use the same interface users get."""

from cnnlab.train.callbacks.base import Callback
from cnnlab.train.callbacks.checkpoint import ModelCheckpoint
from cnnlab.train.callbacks.early_stopping import EarlyStopping, MetricTracker, infer_mode
from cnnlab.train.callbacks.logging import MetricsLogger, TensorBoardLogger
from cnnlab.train.callbacks.progress import ProgressBar

__all__ = [
    "Callback",
    "EarlyStopping",
    "MetricTracker",
    "MetricsLogger",
    "ModelCheckpoint",
    "ProgressBar",
    "TensorBoardLogger",
    "infer_mode",
]
