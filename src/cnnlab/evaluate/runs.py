"""Evaluating a saved run on one split of its data (or on other data with the same classes)."""

from __future__ import annotations

from pathlib import Path

from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.runs import (
    LoadedRun,
    check_output_file,
    check_run_data,
    load_run,
    read_run_config,
    require_classification,
    writing,
)
from cnnlab.tasks.classification.metrics import ClassificationReport, classification_report, collect_logits


def run_config(run: LoadedRun):
    """The run's TrainConfig from its config.yaml, its paths made absolute from run.json (so it reads the run's
    data from any working directory); a damaged or incomplete file is a RunError naming it."""
    from cnnlab.config import build_dataclass
    from cnnlab.train.config import TrainConfig

    values = read_run_config(run.run_dir)
    try:
        return build_dataclass(TrainConfig, values)
    except ConfigError as error:
        raise RunError(f"{run.run_dir / 'config.yaml'}: {error}") from error


def load_run_split(run: LoadedRun, data: str | None, split: str, data_format: str | None = None):
    """The run's own split, re-read by the very loader training used (same seed, same `train_samples`
    subset, so `val` is the run's validation images), or a split of other `data` at the run's input size.

    Raises:
        DataError: the run's data has moved since training (the message names the path and says to pass
            `--data PATH`), or the data lacks the split or the run's classes.
    """
    from cnnlab.data import load_dataset

    config = run_config(run)
    if data:
        splits = load_dataset(
            data,
            format=data_format,
            val_split=0.0 if split != "val" else config.val_split,
            seed=config.seed,
            resize=tuple(run.input_shape[1:]),
            channels=run.input_shape[0],
        )
    else:
        check_run_data(config, run.meta)
        splits = run.task.load_data(config)
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
    require_classification(run, "evaluate")
    json_target, png_target = run.run_dir / f"evaluation_{split}.json", run.run_dir / f"confusion_matrix_{split}.png"
    for target in (json_target, png_target):  # refused before the (long) evaluation, not after it
        check_output_file(target)
    imageset = load_run_split(run, data, split, data_format)
    logits, labels = collect_logits(
        run.model, make_batches(imageset, batch_size, shuffle=False), run.preprocess, device
    )
    report = classification_report(logits, labels, run.classes)
    with writing(json_target):
        json_path = atomic_write_json(
            json_target, {"split": split, "data": data, "checkpoint_epoch": run.checkpoint_epoch, **report.to_dict()}
        )
    with writing(png_target):
        png_path = plot_confusion_matrix(report.confusion, run.classes, png_target)
    return report, [json_path, png_path]
