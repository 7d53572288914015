"""TrainConfig: the one dataclass that a YAML file and `cnnlab train` flags both fill."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OptimizerConfig:
    name: str = field(default="sgd", metadata={"help": "sgd | adam | adamw"})
    lr: float = field(default=0.01, metadata={"help": "peak learning rate"})
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = field(default=0.0, metadata={"help": "L2 as decoupled/optimizer weight decay"})
    decay_bias_and_norm: bool = field(default=False, metadata={"help": "also decay biases and norm parameters"})


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = field(default="none", metadata={"help": "none | step | multistep | cosine | onecycle | plateau"})
    warmup_epochs: float = field(default=0.0, metadata={"help": "linear warm-up length (epochs, may be fractional)"})
    step_size: int = 10
    milestones: tuple[int, ...] = (30, 60, 90)
    gamma: float = 0.1
    min_lr: float = 0.0
    patience: int = field(default=5, metadata={"help": "plateau: epochs without improvement before decaying"})
    pct_start: float = field(default=0.25, metadata={"help": "onecycle: fraction of steps spent rising"})


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int | None = field(default=None, metadata={"help": "epochs without improvement before stopping"})
    monitor: str | None = field(default=None, metadata={"help": "any logged metric (default: the run's monitor)"})
    mode: str = field(default="auto", metadata={"help": "min | max | auto (as the task declares the metric)"})
    min_delta: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    # what to train
    task: str = field(default="classification", metadata={"help": "the task (cnnlab.tasks.list_tasks())"})
    task_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the task's own options: k=v,..."})
    model: str = field(default="lenet5", metadata={"help": "zoo model name or a YAML layer-list file"})
    model_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "extra model options: k=v,..."})
    layers: list[Any] | None = None
    dropout: float | None = field(default=None, metadata={"help": "dropout rate for models that have dropout"})
    batch_norm: bool | None = field(default=None, metadata={"help": "batch norm for models that offer it (VGG)"})
    # data
    data: str = field(default="", metadata={"help": "idx folder, class folders, .npz, .csv or CIFAR batches"})
    data_format: str | None = field(default=None, metadata={"help": "idx | cifar | npz | folder | csv"})
    test_data: str | None = None
    val_split: float = 0.1
    train_samples: int | None = field(default=None, metadata={"help": "train on a stratified subset of N images"})
    resize: tuple[int, ...] | None = None
    channels: int | None = None
    augment: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. rotate=15,flip,crop=4"})
    workers: int = field(default=0, metadata={"help": "data-loader workers for streamed (large) data sets"})
    # optimisation
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1024
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # regularisation
    l1: float = field(default=0.0, metadata={"help": "L1 penalty coefficient on weights (sparsity)"})
    l2: float = field(default=0.0, metadata={"help": "explicit L2 penalty term coefficient on weights"})
    label_smoothing: float = 0.0
    grad_clip: float | None = field(default=None, metadata={"help": "max global gradient norm"})
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    # run
    monitor: str | None = field(
        default=None,
        metadata={"help": "metric that picks the best epoch (best.pt, restored weights); default: the task's"},
    )
    out: str = field(default="", metadata={"help": "run folder (default runs/<model>)"})
    seed: int = 0
    deterministic: bool = False
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N | mps"})
    precision: str = field(default="fp32", metadata={"help": "fp32 | bf16 | fp16 (autocast)"})
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    tensorboard: bool = False
    progress: bool = True
