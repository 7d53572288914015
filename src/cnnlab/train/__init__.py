"""Training: `fit(TrainConfig(...))` is what `cnnlab train` runs."""

from cnnlab.train.config import EarlyStoppingConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from cnnlab.train.fit import FitResult, fit, resume_config

__all__ = [
    "EarlyStoppingConfig",
    "FitResult",
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "fit",
    "resume_config",
]
