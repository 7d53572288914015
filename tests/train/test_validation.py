"""Every TrainConfig option is checked where it is parsed: one ConfigError naming the field and its range."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from cnnlab.config import load_config
from cnnlab.data.augment import AugmentSpec
from cnnlab.errors import ConfigError
from cnnlab.train.config import (
    OPTIMIZERS,
    SCHEDULES,
    EarlyStoppingConfig,
    Number,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
)
from cnnlab.train.optim import build_optimizer, build_scheduler

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# (overrides as flags give them: text), the message expected, in full
REFUSED = [
    ({"optimizer": {"lr": "-1"}}, "config field 'optimizer.lr' must be a finite number > 0, got -1.0"),
    ({"optimizer": {"lr": "nan"}}, "config field 'optimizer.lr' must be a finite number > 0, got nan"),
    ({"optimizer": {"lr": "-inf"}}, "config field 'optimizer.lr' must be a finite number > 0, got -inf"),
    ({"optimizer": {"momentum": "1"}}, "config field 'optimizer.momentum' must be a finite number in [0, 1), got 1.0"),
    (
        {"optimizer": {"betas": "0.9,1.5"}},
        "config field 'optimizer.betas' must be 2 values, each a finite number in [0, 1), got (0.9, 1.5)",
    ),
    (
        {"optimizer": {"name": "rmsprop"}},
        "config field 'optimizer.name' must be one of sgd, adam, adamw, adadelta, got 'rmsprop'",
    ),
    ({"schedule": {"step_size": "0"}}, "config field 'schedule.step_size' must be a whole number >= 1, got 0"),
    ({"schedule": {"pct_start": "1"}}, "config field 'schedule.pct_start' must be a finite number in (0, 1), got 1.0"),
    (
        {"schedule": {"milestones": "30,30"}},
        "config field 'schedule.milestones' must be a list of values in increasing order, each a whole number >= 1, "
        "got (30, 30)",
    ),
    (
        {"early_stopping": {"mode": "best"}},
        "config field 'early_stopping.mode' must be one of min, max, auto, got 'best'",
    ),
    (
        {"early_stopping": {"patience": "0"}},
        "config field 'early_stopping.patience' must be a whole number >= 1, got 0",
    ),
    ({"batch_size": "0"}, "config field 'batch_size' must be a whole number >= 1, got 0"),
    ({"workers": "-1"}, "config field 'workers' must be a whole number >= 0, got -1"),
    ({"val_split": "1"}, "config field 'val_split' must be a finite number in [0, 1), got 1.0"),
    ({"grad_clip": "0"}, "config field 'grad_clip' must be a finite number > 0, got 0.0"),
    ({"l2": "nan"}, "config field 'l2' must be a finite number >= 0, got nan"),
    ({"precision": "half"}, "config field 'precision' must be one of fp32, bf16, fp16, got 'half'"),
    ({"device": "tpu"}, "config field 'device' must be auto, cpu, cuda, cuda:N or mps, got 'tpu'"),
    ({"channels": "4"}, "config field 'channels' must be one of 1, 3, got 4"),
    ({"augment": "rotate=nan"}, "config field 'augment.rotate' must be a finite number in [0, 180], got nan"),
    ({"augment": "flip=sometimes"}, "config field 'augment.flip' must be true or false, got 'sometimes'"),
    ({"model_options": "width=inf"}, "config field 'model_options.width' must be a finite number, got 'inf'"),
    ({"model_options": "dropout=1"}, "config field 'model_options.dropout' must be a finite number in [0, 1), got 1"),
]


@pytest.mark.parametrize(("overrides", "message"), REFUSED, ids=[m.split(" must")[0][14:] for _, m in REFUSED])
def test_a_bad_value_is_refused_with_the_field_and_its_range(overrides, message):
    with pytest.raises(ConfigError) as error:
        load_config(TrainConfig, None, overrides)
    assert str(error.value) == message


def test_a_yaml_file_is_named_and_its_nan_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  lr: .nan\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml: config field 'optimizer\.lr' must be a finite number > 0, got nan"
    ):
        load_config(TrainConfig, path)


def test_python_construction_is_checked_too():
    with pytest.raises(ConfigError, match="'optimizer.lr'"):
        OptimizerConfig(lr=math.nan)
    with pytest.raises(ConfigError, match="'schedule.gamma'"):
        ScheduleConfig(gamma=-1.0)
    with pytest.raises(ConfigError, match="'early_stopping.min_delta'"):
        EarlyStoppingConfig(min_delta=-0.5)
    with pytest.raises(ConfigError, match="'epochs' must be a whole number >= 1, got 2.5"):
        TrainConfig(epochs=2.5)
    with pytest.raises(ConfigError, match="'batch_size' must be a whole number >= 1, got True"):
        TrainConfig(batch_size=True)
    with pytest.raises(ConfigError, match="'epochs'"):
        dataclasses.replace(TrainConfig(), epochs=0)  # replace() re-checks: a resume override cannot slip through
    with pytest.raises(ConfigError, match="'augment.scale' must be a finite number in \\[0, 1\\), got 1.0"):
        AugmentSpec(scale=1.0)


def test_cross_field_rules():
    with pytest.raises(ConfigError, match="'optimizer.nesterov' needs optimizer.momentum > 0"):
        OptimizerConfig(name="sgd", nesterov=True, momentum=0.0)
    assert OptimizerConfig(name="adam", nesterov=True, momentum=0.0).nesterov  # only SGD uses it
    with pytest.raises(ConfigError, match="in \\(0, 1\\) for the plateau schedule"):
        ScheduleConfig(name="plateau", gamma=1.0)
    assert ScheduleConfig(name="step", gamma=2.0).gamma == 2.0
    with pytest.raises(ConfigError, match="at most the run's 3 epochs, got 4.0"):
        TrainConfig(epochs=3, schedule=ScheduleConfig(warmup_epochs=4.0))


def test_the_edges_of_each_range_that_are_allowed():
    config = load_config(
        TrainConfig,
        None,
        {
            "optimizer": {"lr": "1e-9", "momentum": "0", "betas": "0,0.999999", "weight_decay": "0", "name": "AdamW"},
            "schedule": {"name": "Cosine", "warmup_epochs": "2", "milestones": "", "pct_start": "0.999"},
            "early_stopping": {"patience": "1", "min_delta": "0", "mode": "max"},
            "epochs": "2",
            "val_split": "0",
            "label_smoothing": "0.99",
            "dropout": "0",
            "threads": "1",
            "workers": "0",
            "train_samples": "1",
            "seed": str(2**32 - 1),
            "resize": "28",
            "channels": "3",
            "device": "cuda:1",
            "augment": "rotate=180,scale=0.99,translate=1,erase=1,crop=0,flip=no,vflip=on,mixup=0",
            "model_options": "dropout=0.5,name=wide",
        },
    )
    assert config.optimizer.betas == (0.0, 0.999999) and config.schedule.milestones == () and config.resize == (28,)
    assert AugmentSpec.from_config(config.augment).vflip is True


def test_shipped_examples_and_defaults_still_load():
    TrainConfig()
    model_files = {"custom_net.yaml", "kim_cnn_layers.yaml"}  # layer lists (--model FILE), not training configs
    paths = [path for path in sorted(EXAMPLES.glob("*.yaml")) if path.name not in model_files]
    assert paths
    for path in paths:
        load_config(TrainConfig, path)


def test_every_name_the_rules_allow_builds():
    model = torch.nn.Linear(2, 2)
    for name in OPTIMIZERS:
        build_optimizer(model, OptimizerConfig(name=name))
    for name in SCHEDULES:
        optimizer = build_optimizer(model, OptimizerConfig())
        build_scheduler(optimizer, ScheduleConfig(name=name), epochs=3, steps_per_epoch=2)


def test_number_rule_descriptions():
    assert Number(0, low_open=True).describe() == "a finite number > 0"
    assert Number(0, 1, high_open=True).describe() == "a finite number in [0, 1)"
    assert Number(1, whole=True).describe() == "a whole number >= 1"
    assert Number(high=5).describe() == "a finite number <= 5"
    assert not Number(0).accepts(math.inf) and not Number(0).accepts("1") and Number(0).accepts(0)
