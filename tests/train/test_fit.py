"""Real training on a small MNIST subset: accuracy floor, early stopping, exact resume, L1 sparsity."""

import json

import pytest
import torch

from cnnlab.train import TrainConfig, fit
from cnnlab.train.callbacks import Callback
from cnnlab.train.checkpoint import load_checkpoint
from cnnlab.train.regularization import weight_sparsity

MNIST = "data/mnist"


class KillAfterEpoch(Callback):
    """Simulates a killed run (Ctrl-C) right after epoch `epoch` was checkpointed."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, metrics):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def small_config(tmp_path, name="run", **overrides):
    base = dict(
        model="lenet5_modern",
        data=MNIST,
        train_samples=2000,
        val_split=0.1,
        epochs=3,
        batch_size=64,
        eval_batch_size=2000,
        out=str(tmp_path / name),
        progress=False,
        quiet=True,
        seed=1,
        optimizer={"name": "adam", "lr": 0.003},
        schedule={"name": "none"},  # the old default, pinned: resumes extend runs, which one-cycle refuses
    )
    base.update(overrides)
    from cnnlab.config import build_dataclass

    return build_dataclass(TrainConfig, base)


def test_short_training_clears_accuracy_floor_and_writes_run(tmp_path):
    result = fit(small_config(tmp_path))
    run = result.run_dir
    # 2,000 images, 3 epochs: LeNet reaches well over 90% on the 10,000 MNIST test images
    assert result.results["test"]["accuracy"] > 0.90
    assert result.results["test"]["samples"] == 10000
    for name in ("config.yaml", "run.json", "metrics.csv", "metrics.jsonl", "last.pt", "best.pt", "results.json"):
        assert (run / name).is_file(), name
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "epoch_seconds"} <= set(rows[0])
    meta = json.loads((run / "run.json").read_text())
    sizes = meta["data"]["sizes"]
    assert sizes["train"] + sizes["val"] == 2000 and abs(sizes["val"] - 200) <= 10 and sizes["test"] == 10000
    assert meta["parameters"] == 61706


def test_best_weights_are_restored_and_equal_best_pt(tmp_path):
    # A too-high learning rate late in training makes the last epoch worse than the best one.
    result = fit(
        small_config(
            tmp_path,
            epochs=4,
            schedule={"name": "step", "step_size": 3, "gamma": 30.0},
            early_stopping={"monitor": "val_loss"},
            monitor="val_loss",
        )
    )
    best = load_checkpoint(result.run_dir / "best.pt")
    history = result.history
    best_epoch = min(history, key=lambda r: r["val_loss"])["epoch"]
    assert best["epoch"] == best_epoch == result.results["best_epoch"]
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, best["model"][key]), key


def test_early_stopping_stops(tmp_path):
    # lr 1e-12 (0 is refused) makes nothing improve by min_delta after epoch 1: patience 2 stops at epoch 3 of 10
    result = fit(
        small_config(
            tmp_path,
            epochs=10,
            optimizer={"name": "sgd", "lr": 1e-12},
            early_stopping={"patience": 2, "monitor": "val_loss", "min_delta": 1e-3},
        )
    )
    assert result.results["epochs_run"] == 3 and result.results["stopped_early"] is True


def test_interrupted_and_resumed_equals_uninterrupted(tmp_path):
    common = dict(
        deterministic=True,
        epochs=3,
        dropout=0.3,
        augment={"rotate": 10, "flip": True},
        schedule={"name": "cosine"},
        train_samples=600,
    )
    full = fit(small_config(tmp_path, "full", **common))
    with pytest.raises(KeyboardInterrupt):
        fit(small_config(tmp_path, "partial", **common), callbacks=[KillAfterEpoch(2)])
    assert load_checkpoint(tmp_path / "partial" / "last.pt")["epoch"] == 2
    resumed = fit(small_config(tmp_path, "partial", **common), resume=tmp_path / "partial")
    assert resumed.results["epochs_run"] == 3
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    full_last = load_checkpoint(full.run_dir / "last.pt")
    resumed_last = load_checkpoint(resumed.run_dir / "last.pt")
    for key, value in full_last["model"].items():
        assert torch.equal(value, resumed_last["model"][key]), key
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]


def test_l1_increases_weight_sparsity(tmp_path):
    plain = fit(small_config(tmp_path, "plain", epochs=2, train_samples=1000))
    sparse = fit(small_config(tmp_path, "l1", epochs=2, train_samples=1000, l1=1e-3))
    assert weight_sparsity(sparse.model) > 3 * weight_sparsity(plain.model) + 0.1


def test_bad_data_path_is_a_clear_error(tmp_path):
    from cnnlab.errors import DataError

    with pytest.raises(DataError, match="does-not-exist"):
        fit(small_config(tmp_path, data=str(tmp_path / "does-not-exist")))


@pytest.mark.parametrize(
    "options",
    [
        {"precision": "bf16"},
        {"channels_last": True, "tensorboard": True},
        {"augment": {"mixup": 0.2, "rotate": 10}, "label_smoothing": 0.1, "grad_clip": 1.0},
        {"model": "examples/custom_net.yaml"},
    ],
    ids=["bf16", "channels_last+tensorboard", "mixup+smoothing+clip", "yaml-layer-list"],
)
def test_training_options_still_learn(tmp_path, options):
    config = small_config(tmp_path, epochs=1, train_samples=1500, batch_size=32, **options)
    result = fit(config)
    assert result.results["test"]["accuracy"] > 0.6
    if options.get("tensorboard"):
        assert any((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
