"""Evaluating a saved run on one split of its data (or on other data with the same classes)."""

from __future__ import annotations

import json
from pathlib import Path

from cnnlab.errors import DataError
from cnnlab.evaluate.metrics import ClassificationReport, classification_report, collect_logits
from cnnlab.runs import load_run
from cnnlab.train.setup import resolve_device


def load_run_split(run, data: str | None, split: str, data_format: str | None = None):
    """The run's own data split (re-read with the run's seed, so `val` is the same images), or `data`'s."""
    from cnnlab.config import load_config
    from cnnlab.data import load_dataset
    from cnnlab.train.config import TrainConfig

    config = load_config(TrainConfig, run.run_dir / "config.yaml")
    channels = run.input_shape[0]
    if data:
        splits = load_dataset(
            data,
            format=data_format,
            val_split=0.0 if split != "val" else config.val_split,
            seed=config.seed,
            resize=tuple(run.input_shape[1:]),
            channels=channels,
        )
    else:
        splits = load_dataset(
            config.data,
            format=config.data_format,
            test_path=config.test_data,
            val_split=config.val_split,
            seed=config.seed,
            resize=config.resize,
            channels=config.channels,
        )
    imageset = getattr(splits, split)
    if imageset is None:
        raise DataError(f"{data or config.data}: has no {split!r} split")
    if list(splits.classes) != run.classes:
        raise DataError(f"{data or config.data}: classes {list(splits.classes)} differ from the run's {run.classes}")
    return imageset


def evaluate_run(
    run_dir: str | Path,
    data: str | None = None,
    split: str = "test",
    batch_size: int = 1024,
    data_format: str | None = None,
) -> tuple[ClassificationReport, list[Path]]:
    from cnnlab.data import make_batches
    from cnnlab.viz.plots import plot_confusion_matrix

    device = resolve_device("auto")
    run = load_run(run_dir, device=device)
    imageset = load_run_split(run, data, split, data_format)
    logits, labels = collect_logits(
        run.model, make_batches(imageset, batch_size, shuffle=False), run.preprocess, device
    )
    report = classification_report(logits, labels, run.classes)
    json_path = run.run_dir / f"evaluation_{split}.json"
    json_path.write_text(
        json.dumps(
            {"split": split, "data": data, "checkpoint_epoch": run.checkpoint_epoch, **report.to_dict()}, indent=2
        )
    )
    png_path = plot_confusion_matrix(report.confusion, run.classes, run.run_dir / f"confusion_matrix_{split}.png")
    return report, [json_path, png_path]
