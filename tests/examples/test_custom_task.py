"""examples/custom_task.py: a task cnnlab does not ship, trained through the public API."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cnnlab.data import mnist_path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_task.py"


def load_example():
    spec = importlib.util.spec_from_file_location("custom_task_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not Path(mnist_path()).is_dir(), reason="needs the shipped MNIST")
def test_custom_regression_task_trains_through_the_engine(tmp_path):
    example = load_example()
    error = example.main(out=str(tmp_path / "run"), train=3000, epochs=3)
    # Predicting 0 everywhere scores 22.5 degrees; a trained model must do far better.
    assert error < 14.0
    run = tmp_path / "run"
    meta = json.loads((run / "run.json").read_text())
    assert meta["task"]["name"] == "digit_rotation" and meta["monitor"] == "val_mae_degrees"
    assert meta["model"]["name"] == "lenet5_modern"
    results = json.loads((run / "results.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    # The engine chose the best epoch by the task's metric, in the task's direction (lower is better).
    best = min(history, key=lambda row: row["val_mae_degrees"])
    assert results["best_epoch"] == best["epoch"]
    assert {"last.pt", "best.pt", "metrics.csv", "config.yaml"} <= {p.name for p in run.iterdir()}
