"""Real short trainings on MNIST digits, diagnosed end to end (seconds each on 2 CPU cores)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnnlab.cli import main
from cnnlab.data import mnist_path
from cnnlab.data.readers import read_idx
from cnnlab.diagnose import diagnose_run
from cnnlab.diagnose.learning_curve import learning_curve
from cnnlab.train import OptimizerConfig, TrainConfig, fit


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """MNIST's t10k digits (quick to read) as a .npz: 100 training images (10 per class), 500 for validation."""
    folder = mnist_path()
    images = read_idx(folder / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx(folder / "t10k-labels-idx1-ubyte.gz", 1).astype(np.int64)
    train = np.concatenate([np.flatnonzero(labels == c)[:10] for c in range(10)])
    val = np.arange(5000, 5500)
    path = tmp_path_factory.mktemp("digits") / "digits.npz"
    np.savez(
        path, train_images=images[train], train_labels=labels[train], val_images=images[val], val_labels=labels[val]
    )
    return path


def short_config(data, out, **values) -> TrainConfig:
    # One thread: these nets are tiny, and on a machine shared with other jobs two threads wait on each other.
    base = {
        "model": "lenet5_modern",
        "data": str(data),
        "batch_size": 20,
        "progress": False,
        "threads": 1,
        "out": str(out),
        "eval_batch_size": 500,
    }
    return TrainConfig(**{**base, **values})


def test_memorising_100_digits_is_diagnosed_as_overfitting(digits, tmp_path):
    config = short_config(digits, tmp_path / "overfit", epochs=15, optimizer=OptimizerConfig(name="adam", lr=3e-3))
    result = fit(config)
    assert result.history[-1]["train_accuracy"] >= 0.98
    diagnosis = diagnose_run(result.run_dir)
    assert diagnosis.verdict == "overfitting"
    assert {"high_variance", "limited_data", "inadequate_regularization"} <= set(diagnosis.ids)
    assert "underfitting" not in diagnosis.ids
    unused = diagnosis.get("inadequate_regularization").evidence["unused"]
    assert unused == ["augmentation", "dropout", "batch_norm", "weight_decay", "early_stopping"]
    assert diagnosis.get("limited_data").evidence["min_samples_per_class"] == 10


def test_small_model_trained_too_briefly_is_underfitting_not_overfitting(digits, tmp_path, capsys):
    config = short_config(digits, tmp_path / "brief", epochs=1, optimizer=OptimizerConfig(name="sgd", lr=1e-3))
    run_dir = fit(config).run_dir
    assert main(["diagnose", str(run_dir), "--json"]) == 0
    ids = [f["id"] for f in json.loads(capsys.readouterr().out)]
    assert "underfitting" in ids and "high_variance" not in ids
    assert diagnose_run(run_dir).verdict == "underfitting"


def test_learning_curve_on_nested_fractions(digits, tmp_path):
    config = short_config(digits, tmp_path / "unused", epochs=2, optimizer=OptimizerConfig(name="adam", lr=3e-3))
    curve = learning_curve(config, [0.5, 1.0], tmp_path / "curve", log=None)
    assert [p.train_size for p in curve.points] == [50, 100]
    assert [p.epochs_run for p in curve.points] == [4, 2]  # same number of steps for every fraction
    saved = json.loads((tmp_path / "curve" / "learning_curve.json").read_text())
    assert saved["more_data_helps"] == curve.more_data_helps
    assert saved["points"][1]["val_accuracy"] == pytest.approx(curve.points[1].val_accuracy)
    assert (tmp_path / "curve" / "learning_curve.png").stat().st_size > 1000


def test_learning_curve_command_prints_a_table_and_writes_files(digits, tmp_path, capsys):
    flags = "--model lenet5_modern --fractions 0.5,1.0 --epochs 1 --batch-size 25 --threads 1".split()
    argv = ["learning-curve", *flags, "--data", str(digits), "--out", str(tmp_path / "curve")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "fraction  images  val_accuracy" in text and "\n       1     100" in text
    assert (tmp_path / "curve" / "learning_curve.json").is_file()


def test_diagnose_with_data_fractions_reuses_the_runs_config(digits, tmp_path, capsys):
    config = short_config(digits, tmp_path / "brief", epochs=1, optimizer=OptimizerConfig(name="sgd", lr=1e-3))
    run_dir = fit(config).run_dir
    assert main(["diagnose", str(run_dir), "--data-fractions", "0.5,1", "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "learning curve:" in text and "UNDERFITTING" in text
    assert (run_dir / "learning_curve" / "learning_curve.png").is_file()
