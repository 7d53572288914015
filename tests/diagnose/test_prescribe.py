"""Prescriptions: flags that parse back to the same config, and written configs that load as a TrainConfig."""

from __future__ import annotations

import shlex

import pytest

from cnnlab.cli import build_parser
from cnnlab.config import load_config, overrides_from_args
from cnnlab.diagnose import diagnose_run, fixed_config, merge_changes, render_flags, write_fixed_config
from cnnlab.diagnose.findings import Finding
from cnnlab.diagnose.prescribe import apply_changes, make_compatible, prescribed_config
from cnnlab.errors import ConfigError
from cnnlab.train.config import TrainConfig
from tests.diagnose import cases


def test_render_flags_keeps_the_runs_own_augmentations():
    changes = {
        "augment.rotate": 10,
        "optimizer.weight_decay": 5e-4,
        "early_stopping.patience": 5,
        "batch_norm": True,
        "layers": None,
    }
    flags = render_flags(changes, {"augment": {"flip": True}})
    assert flags == (
        "--augment flip,rotate=10 --optimizer.weight-decay 0.0005 --early-stopping.patience 5 --batch-norm"
    )


def test_flags_parse_back_to_the_prescribed_config(tmp_path):
    rows, cfg, meta = cases.overfitting()
    run = cases.write_run(tmp_path / "run", rows, cfg, meta)
    diagnosis = diagnose_run(run)
    changes = merge_changes(diagnosis.findings)
    argv = ["train", "--config", str(run / "config.yaml"), *shlex.split(render_flags(changes, diagnosis.config))]
    args = build_parser(argv).parse_args(argv)
    from_flags = load_config(TrainConfig, args.config, overrides_from_args(args, TrainConfig))
    expected = fixed_config(diagnosis, out=from_flags.out)
    assert from_flags == expected


def test_merge_prefers_the_more_severe_finding():
    low = Finding("trained_too_long", "info", "t", {}, "s", {"early_stopping.patience": 5, "epochs": 3})
    high = Finding("divergence", "critical", "t", {}, "s", {"epochs": 9})
    assert merge_changes([low, high]) == {"epochs": 9, "early_stopping.patience": 5}
    assert merge_changes([low, high], only=["trained_too_long"]) == {"early_stopping.patience": 5, "epochs": 3}


def test_switching_model_drops_options_the_new_model_lacks():
    cfg = {"model": "vgg11", "batch_norm": True, "dropout": 0.3, "model_options": {"batch_norm": True}}
    fixed = make_compatible(apply_changes(cfg, {"model": "resnet20"}))
    assert fixed["model_options"] == {} and fixed["batch_norm"] is None and fixed["dropout"] is None
    kept = make_compatible(apply_changes(cfg, {"model": "lenet5_modern"}))
    assert kept["dropout"] == 0.3 and kept["batch_norm"] is None


def test_invalid_prescription_is_a_config_error():
    with pytest.raises(ConfigError, match="augment"):
        prescribed_config(cases.config(), {"augment.twirl": 3}, "runs/x")


def test_write_config_loads_as_a_train_config_with_the_prescribed_keys(tmp_path):
    rows, cfg, meta = cases.overfitting()
    run = cases.write_run(tmp_path / "run", rows, cfg, meta)
    path = tmp_path / "fixed.yaml"
    written = write_fixed_config(diagnose_run(run), path)
    loaded = load_config(TrainConfig, path)
    assert loaded == written
    assert loaded.out == f"{run}_fixed"
    assert loaded.model == "lenet5_modern" and loaded.dropout == 0.5
    assert loaded.augment == {"rotate": 10, "scale": 0.1, "translate": 0.1}
    assert loaded.optimizer.name == "adamw" and loaded.optimizer.weight_decay == 0.05
    assert loaded.early_stopping.patience == 5
    assert loaded.epochs == cfg["epochs"] and loaded.data == cfg["data"]  # everything else untouched


def test_write_config_with_only_some_findings(tmp_path):
    rows, cfg, meta = cases.overfitting()
    run = cases.write_run(tmp_path / "run", rows, cfg, meta)
    config = write_fixed_config(diagnose_run(run), tmp_path / "f.yaml", out="runs/x", only=["trained_too_long"])
    assert config.model == "resnet18" and config.early_stopping.patience == 5 and config.augment == {}
