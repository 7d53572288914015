"""TrainConfig: the one dataclass that a YAML file and `cnnlab train` flags both fill.

Every field is checked when its dataclass is built (from YAML, flags or Python alike) against the rule tables
below, so a wrong value is refused in one line that names the field as a user types it and the allowed range,
before any data is read. NaN and infinity are refused wherever a number is expected: YAML and flags read
`nan` and `inf` as floats, and either would train silently to garbage.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnlab.data.augment import AugmentSpec
from cnnlab.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("none", "constant", "step", "multistep", "cosine", "onecycle", "plateau")
PRECISIONS = ("fp32", "bf16", "fp16")
# numpy's seed must fit in 32 bits (`seed_everything` seeds numpy too).
MAX_SEED = 2**32 - 1


# -- rules: what a field's value may be, and how to say it --------------------------------------------------
def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 1e15 else f"{value:g}"


@dataclass(frozen=True)
class Number:
    """A finite real number (a whole one with `whole`) between `low` and `high`; an end may be open or absent."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False

    def accepts(self, value: Any) -> bool:
        kind = numbers.Integral if self.whole else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or (value < self.high or (not self.high_open and value == self.high))

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"{kind} in {left}{_number_text(self.low)}, {_number_text(self.high)}{right}"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {_number_text(self.low)}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {_number_text(self.high)}"
        return kind


@dataclass(frozen=True)
class OneOf:
    """One of a few names (letter case ignored with `ignore_case`, for names the builders lower-case)."""

    choices: tuple[Any, ...]
    ignore_case: bool = False

    def accepts(self, value: Any) -> bool:
        if self.ignore_case and isinstance(value, str):
            value = value.lower()
        return not isinstance(value, bool) and value in self.choices

    def describe(self) -> str:
        return "one of " + ", ".join(str(choice) for choice in self.choices)


@dataclass(frozen=True)
class Pattern:
    """A string matching a regular expression, described by `text`."""

    regex: str
    text: str

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.regex, value) is not None

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class Each:
    """A list whose items each follow `item`; `lengths` allowed counts (any when empty); `increasing` strictly."""

    item: Number
    lengths: tuple[int, ...] = ()
    increasing: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            return False
        if self.lengths and len(value) not in self.lengths:
            return False
        if self.increasing and any(b <= a for a, b in zip(value, value[1:])):
            return False
        return all(self.item.accepts(item) for item in value)

    def describe(self) -> str:
        count = " or ".join(str(n) for n in self.lengths) + " values" if self.lengths else "a list of values"
        order = " in increasing order" if self.increasing else ""
        return f"{count}{order}, each {self.item.describe()}"


Rule = Number | OneOf | Pattern | Each

POSITIVE = Number(0, low_open=True)
NON_NEGATIVE = Number(0)
FRACTION = Number(0, 1, high_open=True)  # [0, 1): a rate, a probability that must leave something
OPEN_FRACTION = Number(0, 1, low_open=True, high_open=True)
COUNT = Number(1, whole=True)
NON_NEGATIVE_COUNT = Number(0, whole=True)


def check_rules(config: Any, section: str, rules: Mapping[str, Rule]) -> None:
    """Raise a ConfigError naming the first field of `config` that breaks its rule.

    A field whose default is None may be None (it means "off" or "the default"); `section` is the dotted
    prefix a user types (`optimizer.`), so the message says `optimizer.lr`, not `lr`.
    """
    optional = {f.name for f in dataclasses.fields(config) if f.default is None}
    for name, rule in rules.items():
        value = getattr(config, name)
        if value is None and name in optional:
            continue
        check_value(section + name, value, rule)


def check_value(name: str, value: Any, rule: Rule) -> None:
    """Raise a ConfigError unless `value` follows `rule`; `name` is the dotted field a user types."""
    if not rule.accepts(value):
        raise ConfigError(f"config field '{name}' must be {rule.describe()}, got {value!r}")


def check_finite_values(mapping: Mapping[str, Any], section: str) -> None:
    """Free mappings (model options) may hold anything but a NaN or infinite number, at any depth."""
    for key, value in mapping.items():
        name = f"{section}.{key}"
        if isinstance(value, Mapping):
            check_finite_values(value, name)
        elif isinstance(value, (list, tuple)):
            check_finite_values({str(i): v for i, v in enumerate(value)}, name)
        elif _is_nonfinite(value):
            raise ConfigError(f"config field '{name}' must be a finite number, got {value!r}")


def _is_nonfinite(value: Any) -> bool:
    """NaN or inf, also as text: `--model-options width=nan` hands the builder the string 'nan'."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


# -- the config ---------------------------------------------------------------------------------------------
AUTO_LR = "auto"  # optimizer.lr: run the learning-rate range test first and train with its suggestion


@dataclass(frozen=True)
class NumberOrAuto:
    """`number`, or the word "auto" (a value the engine measures before training, e.g. the learning rate).

    Described as the number alone, so a wrong number reads as before ("must be a finite number > 0").
    """

    number: Number

    def accepts(self, value: Any) -> bool:
        return value == AUTO_LR or self.number.accepts(value)

    def describe(self) -> str:
        return self.number.describe()


def _learning_rate(value: Any) -> Any:
    """A float, or "auto": the field holds both, so text is read here (a flag, or YAML's `1e-3` without a dot)."""
    if isinstance(value, bool) or not isinstance(value, (str, numbers.Real)):
        return value  # the rule refuses it, naming the field
    if not isinstance(value, str):
        return float(value)
    if value.strip().lower() == AUTO_LR:
        return AUTO_LR
    try:
        return float(value)
    except ValueError:
        raise ConfigError(
            f"config field 'optimizer.lr': cannot read {value!r} as float (or 'auto' to run the learning-rate finder)"
        ) from None


# The defaults (AdamW at 3e-3 with a one-cycle schedule, fastai's recipe) were chosen by measurement on digits,
# X-rays and photos: the best mean test accuracy of five recipes, 0.655 against 0.422 for the former SGD 0.01
# with a constant rate (bench/defaults.py; bench/RESULTS.md, "Default recipe by measurement"). AdamW, not Adam:
# the same with weight decay 0, and decoupled decay (Loshchilov & Hutter 2019) once a user adds some.
@dataclass(frozen=True)
class OptimizerConfig:
    name: str = field(default="adamw", metadata={"help": "sgd | adam | adamw | adadelta"})
    lr: float | str = field(
        default=3e-3,
        metadata={
            "help": "peak learning rate, or auto: the learning-rate finder's (cnnlab lr-find)",
            "aliases": ["--lr"],
        },
    )
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    rho: float = field(default=0.95, metadata={"help": "adadelta: decay of the running averages"})
    eps: float = field(default=1e-6, metadata={"help": "adadelta: added to the running averages"})
    weight_decay: float = field(default=0.0, metadata={"help": "L2 as decoupled/optimizer weight decay"})
    decay_bias_and_norm: bool = field(default=False, metadata={"help": "also decay biases and norm parameters"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "lr", _learning_rate(self.lr))
        check_rules(self, "optimizer.", OPTIMIZER_RULES)
        if self.nesterov and self.name.lower() == "sgd" and self.momentum == 0:
            raise ConfigError("config field 'optimizer.nesterov' needs optimizer.momentum > 0, got momentum 0")


OPTIMIZER_RULES: dict[str, Rule] = {
    "name": OneOf(OPTIMIZERS, ignore_case=True),
    "lr": NumberOrAuto(POSITIVE),
    "momentum": FRACTION,
    "betas": Each(FRACTION, lengths=(2,)),
    "rho": FRACTION,
    "eps": POSITIVE,
    "weight_decay": NON_NEGATIVE,
}


@dataclass(frozen=True)
class ScheduleConfig:
    name: str = field(  # one-cycle by default: measured with the optimizer's defaults above
        default="onecycle", metadata={"help": "none | step | multistep | cosine | onecycle | plateau"}
    )
    warmup_epochs: float = field(default=0.0, metadata={"help": "linear warm-up length (epochs, may be fractional)"})
    step_size: int = 10
    milestones: tuple[int, ...] = (30, 60, 90)
    gamma: float = 0.1
    min_lr: float = 0.0
    patience: int = field(default=5, metadata={"help": "plateau: epochs without improvement before decaying"})
    pct_start: float = field(default=0.25, metadata={"help": "onecycle: fraction of steps spent rising"})

    def __post_init__(self) -> None:
        check_rules(self, "schedule.", SCHEDULE_RULES)
        if self.name.lower() == "plateau" and self.gamma >= 1:
            raise ConfigError(
                f"config field 'schedule.gamma' must be a finite number in (0, 1) for the plateau schedule "
                f"(the factor that lowers the learning rate), got {self.gamma!r}"
            )


SCHEDULE_RULES: dict[str, Rule] = {
    "name": OneOf(SCHEDULES, ignore_case=True),
    "warmup_epochs": NON_NEGATIVE,
    "step_size": COUNT,
    "milestones": Each(COUNT, increasing=True),
    "gamma": POSITIVE,
    "min_lr": NON_NEGATIVE,
    "patience": NON_NEGATIVE_COUNT,  # ReduceLROnPlateau's own: 0 lowers the rate at the first flat epoch
    "pct_start": OPEN_FRACTION,
}


@dataclass(frozen=True)
class EarlyStoppingConfig:
    patience: int | None = field(default=None, metadata={"help": "epochs without improvement before stopping"})
    monitor: str | None = field(default=None, metadata={"help": "any logged metric (default: the run's monitor)"})
    mode: str = field(default="auto", metadata={"help": "min | max | auto (as the task declares the metric)"})
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        check_rules(self, "early_stopping.", EARLY_STOPPING_RULES)


EARLY_STOPPING_RULES: dict[str, Rule] = {
    "patience": COUNT,
    "mode": OneOf(("min", "max", "auto")),
    "min_delta": NON_NEGATIVE,
}


@dataclass(frozen=True)
class TrainConfig:
    # what to train
    task: str = field(default="classification", metadata={"help": "the task (cnnlab.tasks.list_tasks())"})
    task_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "the task's own options: k=v,..."})
    model: str = field(
        default="lenet5", metadata={"help": "zoo model name or a YAML layer-list file", "aliases": ["-m"]}
    )
    model_options: dict[str, Any] = field(default_factory=dict, metadata={"help": "extra model options: k=v,..."})
    layers: list[Any] | None = None
    dropout: float | None = field(default=None, metadata={"help": "dropout rate for models that have dropout"})
    batch_norm: bool | None = field(default=None, metadata={"help": "batch norm for models that offer it (VGG)"})
    # data
    data: str = field(
        default="", metadata={"help": "idx folder, class folders, .npz, .csv or CIFAR batches", "aliases": ["-d"]}
    )
    data_format: str | None = field(default=None, metadata={"help": "idx | cifar | npz | folder | csv"})
    test_data: str | None = None
    val_split: float = 0.1
    train_samples: int | None = field(default=None, metadata={"help": "train on a stratified subset of N images"})
    resize: tuple[int, ...] | None = None
    channels: int | None = None
    window: str | None = field(
        default=None,
        metadata={"help": "DICOM window: lung | mediastinum | soft_tissue | bone | brain | file | CENTER,WIDTH"},
    )
    augment: dict[str, Any] = field(default_factory=dict, metadata={"help": "e.g. rotate=15,flip,crop=4"})
    workers: int = field(default=0, metadata={"help": "data-loader workers for streamed (large) data sets"})
    max_image_pixels: int | None = field(
        default=None, metadata={"help": "refuse image files over this many pixels (default 89,478,485, as Pillow)"}
    )
    # optimisation
    epochs: int = field(default=10, metadata={"aliases": ["-e"]})
    batch_size: int = field(default=128, metadata={"aliases": ["-b", "--bs"]})
    eval_batch_size: int = 1024
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # regularisation
    l1: float = field(default=0.0, metadata={"help": "L1 penalty coefficient on weights (sparsity)"})
    l2: float = field(default=0.0, metadata={"help": "explicit L2 penalty term coefficient on weights"})
    label_smoothing: float = 0.0
    grad_clip: float | None = field(default=None, metadata={"help": "max global gradient norm"})
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    # class imbalance (classification)
    class_weights: str | None = field(
        default=None, metadata={"help": "balanced | W0,W1,...: per-class weights in the loss"}
    )
    sampler: str = field(default="shuffle", metadata={"help": "shuffle | balanced (every class drawn equally often)"})
    focal_gamma: float | None = field(
        default=None, metadata={"help": "focal loss (Lin et al. 2017) with this gamma, e.g. 2 (default: plain loss)"}
    )
    target_sensitivity: float | None = field(
        default=None,
        metadata={"help": "binary/multi-label: the val threshold reaching this sensitivity (default: Youden's J)"},
    )
    # run
    monitor: str | None = field(
        default=None,
        metadata={"help": "metric that picks the best epoch (best.pt, restored weights); default: the task's"},
    )
    out: str = field(default="", metadata={"help": "run folder (default runs/<model>)", "aliases": ["-o"]})
    seed: int = 0
    deterministic: bool = False
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N | mps"})
    precision: str = field(default="fp32", metadata={"help": "fp32 | bf16 | fp16 (autocast)"})
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    tensorboard: bool = False
    progress: bool = True
    quiet: bool = field(default=False, metadata={"help": "print only the result: no epoch lines, no bar, no notes"})

    def __post_init__(self) -> None:
        check_rules(self, "", TRAIN_RULES)
        check_finite_values(self.model_options, "model_options")
        if "dropout" in self.model_options:
            check_value("model_options.dropout", self.model_options["dropout"], FRACTION)
        if self.task == "classification":  # other tasks check their own augmentations (configure)
            AugmentSpec.from_config(self.augment)
        if self.schedule.warmup_epochs > self.epochs:
            raise ConfigError(
                f"config field 'schedule.warmup_epochs' must be at most the run's {self.epochs} epochs, "
                f"got {self.schedule.warmup_epochs!r} (the learning rate would never reach optimizer.lr)"
            )


TRAIN_RULES: dict[str, Rule] = {
    "dropout": FRACTION,
    "val_split": FRACTION,
    "train_samples": COUNT,
    "resize": Each(COUNT, lengths=(1, 2, 3)),
    "window": Pattern(
        r"lung|mediastinum|soft_tissue|bone|brain|file|-?\d+(\.\d+)?,\d+(\.\d+)?",
        "lung, mediastinum, soft_tissue, bone, brain, file or CENTER,WIDTH (e.g. -600,1500)",
    ),
    "class_weights": Pattern(r"balanced|\d+(\.\d+)?(,\d+(\.\d+)?)+", "balanced or one weight per class (1,3)"),
    "sampler": OneOf(("shuffle", "balanced")),
    "focal_gamma": NON_NEGATIVE,
    "target_sensitivity": Number(0, 1, low_open=True, high_open=True),
    "channels": OneOf((1, 3)),
    "workers": NON_NEGATIVE_COUNT,
    "max_image_pixels": COUNT,
    "epochs": COUNT,
    "batch_size": COUNT,
    "eval_batch_size": COUNT,
    "l1": NON_NEGATIVE,
    "l2": NON_NEGATIVE,
    "label_smoothing": FRACTION,
    "grad_clip": POSITIVE,
    "seed": Number(0, MAX_SEED, whole=True),
    "device": Pattern(r"auto|cpu|mps|cuda(:\d+)?", "auto, cpu, cuda, cuda:N or mps"),
    "precision": OneOf(PRECISIONS),
    "threads": COUNT,
}
