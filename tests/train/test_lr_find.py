"""The learning-rate range test: its rules on scripted curves, a real sweep on MNIST, and `--optimizer.lr auto`."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cnnlab.cli import main
from cnnlab.config import load_config
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, fit
from cnnlab.train.config import OptimizerConfig
from cnnlab.train.lr_find import (
    SmoothedLoss,
    find_learning_rate,
    steepest_index,
    suggest,
    sweep_lr,
    valley_index,
    write_lr_find,
)
from cnnlab.train.setup import build_model

from .test_fit import small_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_the_sweep_is_exponential_from_start_to_end():
    assert sweep_lr(0, 100) == pytest.approx(1e-7)
    assert sweep_lr(50, 100) == pytest.approx(1e-7 * (1e8) ** 0.5)
    assert sweep_lr(100, 100) == pytest.approx(10.0)


def test_the_smoothed_loss_is_debiased():
    smoothed = SmoothedLoss(beta=0.98)
    assert smoothed.update(2.0) == pytest.approx(2.0)  # no pull towards the average's zero start
    assert smoothed.update(2.0) == pytest.approx(2.0)
    assert 2.0 < smoothed.update(4.0) < 3.0


def test_valley_is_inside_the_longest_fall_and_steepest_at_the_cliff():
    # flat, a long gentle fall (steps 10-49), a short steep drop (50-52), then divergence
    losses = [2.3] * 10 + [2.3 - 0.01 * i for i in range(40)] + [1.5, 1.0, 0.9] + [5.0, 9.0]
    lrs = [10 ** (-7 + 8 * i / len(losses)) for i in range(len(losses))]
    valley = valley_index(losses)
    assert 10 < valley < 50  # a third plus a sixth into the fall, not at its flat start nor at the cliff
    assert steepest_index(lrs, losses) == 50  # 1.5 -> 1.0: the biggest drop per decade
    assert suggest(lrs, losses, "diverged").suggestion == lrs[5 + valley_index(losses[5:-5])]


def test_a_sweep_that_diverges_at_once_says_so():
    with pytest.raises(Exception, match="diverged within 2 steps"):
        suggest([1e-7, 1e-6], [2.3, 2.2], "not finite")


def test_lr_auto_is_a_value_of_the_field():
    assert OptimizerConfig(lr="auto").lr == "auto"
    assert OptimizerConfig(lr="AUTO").lr == "auto"
    assert OptimizerConfig(lr="1e-3").lr == 0.001  # YAML reads 1e-3 (no dot) as text: still a number
    with pytest.raises(ConfigError, match="cannot read 'fast' as float"):
        OptimizerConfig(lr="fast")
    with pytest.raises(ConfigError, match="must be a finite number > 0, got -1.0"):
        OptimizerConfig(lr="-1")


def test_lr_find_on_mnist_suggests_a_sane_rate_and_leaves_the_weights(tmp_path):
    config = small_config(tmp_path, train_samples=400, batch_size=32, optimizer={"name": "adam"})
    model = build_model({"name": "lenet5_modern", "options": {}}, 1, 10, (28, 28))
    before = {key: value.clone() for key, value in model.state_dict().items()}
    result = find_learning_rate(config, model=model)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # weights and batch-norm statistics alike
    # Adam on LeNet trains well around 1e-3 and diverges near 0.1: the suggestion must land in between.
    assert 1e-4 <= result.suggestion <= 1e-1
    assert len(result.lrs) == len(result.losses) <= 100 and all(map(math.isfinite, result.losses))
    json_path, png_path = write_lr_find(result, tmp_path / "lr")
    assert png_path.read_bytes().startswith(PNG_SIGNATURE)
    assert json.loads(json_path.read_text())["suggestion"] == result.suggestion
    assert not list((tmp_path / "lr").glob(".*.tmp"))  # written atomically: no temp file left


def test_the_lr_find_command_writes_the_plot_and_prints_the_rate(tmp_path, capsys):
    out = tmp_path / "find"
    args = ["--model", "lenet5_modern", "--data", "data/mnist", "--train-samples", "300", "--batch-size", "32"]
    assert main(["lr-find", *args, "--optimizer.name", "adam", "--steps", "60", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "lr_find.json").read_text())
    assert f"suggested learning rate: {saved['suggestion']:.3g}" in printed
    assert 1e-4 <= saved["suggestion"] <= 1e-1 and len(saved["lrs"]) <= 60
    assert (out / "lr_find.png").read_bytes().startswith(PNG_SIGNATURE)
    assert not (out / "run.json").exists()  # the sweep's scratch run lives elsewhere


def test_training_with_lr_auto_saves_the_number_and_trains_as_if_given_it(tmp_path):
    def run(name, lr):
        return fit(
            small_config(
                tmp_path, name, epochs=1, train_samples=400, batch_size=32, optimizer={"name": "adam", "lr": lr}
            )
        )

    auto = run("auto", "auto")
    saved = load_config(TrainConfig, auto.run_dir / "config.yaml").optimizer.lr
    assert isinstance(saved, float) and 1e-4 <= saved <= 1e-1
    assert auto.results["test"]["accuracy"] > 0.3  # it trained (10 classes: chance is 0.1)
    given = run("given", saved)
    for key, value in given.model.state_dict().items():  # the finder left no trace in the random state
        assert torch.equal(value, auto.model.state_dict()[key]), key
