import argparse

import pytest

from cnnlab.config import add_dataclass_arguments, load_config, overrides_from_args, parse_mapping
from cnnlab.errors import ConfigError
from cnnlab.train.config import TrainConfig


def parse(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_dataclass_arguments(parser, TrainConfig)
    args = parser.parse_args(argv)
    return load_config(TrainConfig, args.config, overrides_from_args(args, TrainConfig))


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: vgg11\nepochs: 3\noptimizer:\n  lr: 0.5\n  name: adam\nearly-stopping:\n  patience: 2\n")
    config = parse(
        [
            "--config",
            str(path),
            "--epochs",
            "7",
            "--optimizer.lr",
            "0.05",
            "--early-stopping.patience",
            "5",
            "--l1",
            "1e-5",
            "--augment",
            "rotate=15,flip",
            "--no-progress",
        ]
    )
    assert config.model == "vgg11"  # from YAML
    assert config.epochs == 7 and config.optimizer.lr == 0.05  # flags win
    assert config.optimizer.name == "adam"  # YAML kept where no flag is given
    assert config.early_stopping.patience == 5
    assert config.l1 == 1e-5
    assert config.augment == {"rotate": 15, "flip": True}
    assert config.progress is False


def test_tuple_and_optional_fields():
    config = parse(["--schedule.milestones", "5,8", "--resize", "32", "--grad-clip", "1.0"])
    assert config.schedule.milestones == (5, 8)
    assert config.resize == (32,)
    assert config.grad_clip == 1.0


def test_unknown_yaml_key_names_file_and_suggests(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  lrr: 0.1\n")
    with pytest.raises(
        ConfigError, match=r"c\.yaml: unknown config field 'optimizer\.lrr'; did you mean 'optimizer\.lr'"
    ):
        parse(["--config", str(path)])


def test_bad_value_names_field():
    with pytest.raises(ConfigError, match="config field 'epochs': cannot read 'ten' as int"):
        parse(["--epochs", "ten"])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        parse(["--config", "nope.yaml"])


def test_parse_mapping():
    assert parse_mapping("rotate=15, flip,scale=0.1,name=x") == {"rotate": 15, "flip": True, "scale": 0.1, "name": "x"}
