"""Training: the engine every task shares. `fit(TrainConfig(...))` is what `cnnlab train` runs."""

from cnnlab.train.build import TrainingRun, build_run
from cnnlab.train.config import EarlyStoppingConfig, OptimizerConfig, ScheduleConfig, TrainConfig
from cnnlab.train.fit import FitResult, evaluate, fit, resume_config, train
from cnnlab.train.loop import StepSettings, Trainer

__all__ = [
    "EarlyStoppingConfig",
    "FitResult",
    "OptimizerConfig",
    "ScheduleConfig",
    "StepSettings",
    "TrainConfig",
    "Trainer",
    "TrainingRun",
    "build_run",
    "evaluate",
    "fit",
    "resume_config",
    "train",
]
