"""Constructed runs for the diagnosis tests: histories, configs and run.json contents written by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from cnnlab.config import save_config
from cnnlab.train.config import TrainConfig

MNIST_COUNTS = [5331, 6068, 5362, 5518, 5258, 4879, 5326, 5638, 5266, 5354]


def history(train_loss, train_accuracy, val_loss=None, val_accuracy=None, lr: float = 0.01) -> list[dict[str, Any]]:
    rows = []
    for index, (loss, accuracy) in enumerate(zip(train_loss, train_accuracy)):
        row = {"epoch": index + 1, "train_loss": loss, "train_accuracy": accuracy, "lr": lr, "epoch_seconds": 2.0}
        if val_loss is not None:
            row.update(val_loss=val_loss[index], val_accuracy=val_accuracy[index], val_seconds=0.5)
        rows.append(row)
    return rows


def meta(
    model: str = "lenet5_modern",
    parameters: int = 61_706,
    counts: list[int] | None = None,
    val_size: int = 6000,
    shape: tuple[int, int, int] = (1, 28, 28),
    options: dict | None = None,
) -> dict:
    counts = counts or MNIST_COUNTS
    return {
        "model": {"name": model, "options": options or {}},
        "num_classes": len(counts),
        "classes": [str(i) for i in range(len(counts))],
        "input_shape": list(shape),
        "parameters": parameters,
        "data": {"class_counts": {"train": counts}, "sizes": {"train": sum(counts), "val": val_size}},
    }


def config(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "lenet5_modern",
        "data": "data/mnist",
        "epochs": 12,
        "optimizer": {"name": "sgd", "lr": 0.1, "weight_decay": 5e-4},
        "early_stopping": {"patience": 4, "monitor": "val_accuracy"},
        "augment": {"rotate": 10, "translate": 0.1},
        "dropout": 0.2,
        "out": "runs/case",
    }
    for key, value in values.items():
        if value and isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


def healthy() -> tuple[list[dict], dict, dict]:
    """LeNet-5 (modern) on all of MNIST, regularised, 99% validation accuracy, a gap under one point."""
    train_loss = [0.35, 0.08, 0.055, 0.045, 0.038, 0.032, 0.028, 0.024, 0.021, 0.018, 0.016, 0.015]
    train_acc = [0.89, 0.975, 0.983, 0.986, 0.988, 0.990, 0.991, 0.992, 0.993, 0.994, 0.995, 0.995]
    val_loss = [0.09, 0.06, 0.05, 0.045, 0.042, 0.040, 0.038, 0.037, 0.036, 0.036, 0.035, 0.036]
    val_acc = [0.972, 0.981, 0.984, 0.986, 0.987, 0.988, 0.989, 0.989, 0.990, 0.990, 0.991, 0.990]
    return history(train_loss, train_acc, val_loss, val_acc), config(), meta()


def overfitting(epochs: int = 30) -> tuple[list[dict], dict, dict]:
    """ResNet-18 on 1,000 images, no regularization: train accuracy 100%, validation stuck near 90%, val loss up."""
    train_loss = [max(1.2 * 0.6**e, 1e-3) for e in range(epochs)]
    train_acc = [min(0.6 + 0.08 * e, 1.0) for e in range(epochs)]
    val_loss = [0.9 - 0.1 * e if e < 6 else 0.3 + 0.02 * (e - 5) for e in range(epochs)]
    val_acc = [min(0.55 + 0.07 * e, 0.90) - (0.002 * (e - 8) if e > 8 else 0) for e in range(epochs)]
    cfg = config(
        model="resnet18",
        epochs=epochs,
        optimizer={"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
        early_stopping={"patience": None},
        augment={},
        dropout=None,
    )
    counts = [100] * 10
    return history(train_loss, train_acc, val_loss, val_acc, lr=1e-3), cfg, meta("resnet18", 11_175_370, counts, 1000)


def write_run(folder: Path, rows: list[dict], cfg: dict, run_meta: dict, results: dict | None = None) -> Path:
    """A run folder as `cnnlab train` writes it (no checkpoints: diagnosis does not need them)."""
    from cnnlab.config import load_config

    folder.mkdir(parents=True, exist_ok=True)
    save_config(load_config(TrainConfig, None, cfg), folder / "config.yaml")
    (folder / "run.json").write_text(json.dumps(run_meta))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    if results is not None:
        (folder / "results.json").write_text(json.dumps(results))
    return folder


def nan_row(epoch: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "train_loss": math.nan,
        "train_accuracy": 0.1,
        "lr": 1.0,
        "epoch_seconds": 1.0,
        "val_loss": math.nan,
        "val_accuracy": 0.1,
    }
