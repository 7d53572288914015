"""`fit(config)`: set up, train, restore the best weights, evaluate on the test split, write results."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from cnnlab.config import load_config
from cnnlab.errors import ConfigError, RunError
from cnnlab.evaluate.metrics import classification_report, collect_logits, loss_and_accuracy
from cnnlab.train import callbacks as cb
from cnnlab.train.checkpoint import load_checkpoint, seed_everything
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import StepSettings, Trainer
from cnnlab.train.optim import build_optimizer, build_scheduler
from cnnlab.train.regularization import WeightPenalty
from cnnlab.train.setup import (
    Preprocess,
    build_model,
    choose_run_dir,
    count_parameters,
    model_spec,
    resolve_device,
    write_run_files,
)


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, float]]
    results: dict[str, Any]
    model: torch.nn.Module


def load_data(config: TrainConfig):
    from cnnlab.data import load_dataset

    if not config.data:
        raise ConfigError("data: no data set given; pass --data PATH (or `data:` in the config)")
    resize = config.resize
    if resize is not None and len(resize) == 1:
        resize = (resize[0], resize[0])
    val_split = 0.0 if config.train_samples else config.val_split
    splits = load_dataset(
        config.data,
        format=config.data_format,
        test_path=config.test_data,
        val_split=val_split,
        seed=config.seed,
        resize=resize,
        channels=config.channels,
    )
    return limit_training_samples(splits, config) if config.train_samples else splits


def limit_training_samples(splits, config: TrainConfig):
    """Keep a stratified `train_samples` of the training data, then carve validation from those."""
    from cnnlab.data.splits import split_off_val, stratified_split

    total = len(splits.train)
    if config.train_samples < 1:
        raise ConfigError(f"train_samples must be positive, got {config.train_samples}")
    train = splits.train
    if config.train_samples < total:
        _, kept = stratified_split(train.labels, config.train_samples / total, config.seed)
        train = train.subset(kept)
    val = splits.val
    if val is None and config.val_split > 0:
        train, val = split_off_val(train, config.val_split, config.seed)
    return replace(splits, train=train, val=val)


def _run_meta(config: TrainConfig, splits, spec: dict[str, Any], normalizer, params: int, device) -> dict[str, Any]:
    return {
        "model": spec,
        "num_classes": len(splits.classes),
        "classes": list(splits.classes),
        "input_shape": [splits.in_channels, *splits.image_size],
        "normalization": normalizer.to_dict(),
        "parameters": params,
        "device": str(device),
        "data": {
            "source": splits.source,
            "format": splits.format,
            "class_counts": splits.class_counts(),
            "sizes": {name: len(s) for name in ("train", "val", "test") if (s := getattr(splits, name))},
        },
        "regularization": {
            "augment": dict(config.augment),
            "dropout": spec.get("options", {}).get("dropout", config.dropout),
            "batch_norm": config.batch_norm,
            "weight_decay": config.optimizer.weight_decay,
            "l1": config.l1,
            "l2": config.l2,
            "label_smoothing": config.label_smoothing,
            "early_stopping": config.early_stopping.patience is not None,
        },
    }


def fit(
    config: TrainConfig,
    resume: str | Path | None = None,
    overwrite: bool = False,
    callbacks: list[cb.Callback] | None = None,
) -> FitResult:
    """Train as the config says; with `resume`, continue the run in that folder exactly where it stopped.

    `callbacks` run after the built-in ones (so a checkpoint of the epoch exists when they are called).
    """
    from cnnlab.data import Normalizer, build_augmenter, make_batches
    from cnnlab.data.augment import AugmentSpec

    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed, config.deterministic)
    device = resolve_device(config.device)
    splits = load_data(config)
    spec = model_spec(config)
    model = build_model(spec, splits.in_channels, len(splits.classes), tuple(splits.image_size)).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    normalizer = Normalizer.from_imageset(splits.train)
    run_dir = Path(resume) if resume else choose_run_dir(config, overwrite)
    write_run_files(run_dir, config, _run_meta(config, splits, spec, normalizer, count_parameters(model), device))

    prepare = Preprocess(normalizer.mean, normalizer.std, config.channels_last).to(device)
    settings = StepSettings(device, config.precision, config.channels_last, config.label_smoothing, config.grad_clip)
    generator = torch.Generator().manual_seed(config.seed)
    augment = build_augmenter(AugmentSpec.from_config(dict(config.augment)))
    steps_per_epoch = math.ceil(len(splits.train) / config.batch_size)
    optimizer = build_optimizer(model, config.optimizer)
    scheduler, unit = build_scheduler(optimizer, config.schedule, config.epochs, steps_per_epoch)
    train_model = torch.compile(model) if config.compile else model

    def train_batches():
        return make_batches(
            splits.train,
            config.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=config.workers,
            augment=augment,
        )

    val_set = splits.val

    def validate(current) -> dict[str, float]:
        if val_set is None:
            return {}
        logits, labels = collect_logits(
            current, make_batches(val_set, config.eval_batch_size, shuffle=False), prepare, device, settings.autocast()
        )
        return {f"val_{k}": v for k, v in loss_and_accuracy(logits, labels).items()}

    es = config.early_stopping
    user_callbacks = list(callbacks or [])
    callbacks = [cb.MetricsLogger(run_dir)]
    if config.tensorboard:
        callbacks.append(cb.TensorBoardLogger(run_dir))
    if config.progress:
        callbacks.append(cb.ProgressBar(config.epochs))
    # One metric picks the best epoch for both best.pt and the weights restored at the end.
    monitor = es.monitor or config.monitor
    if val_set is None:
        monitor = monitor.replace("val_", "train_")
    callbacks.append(cb.EarlyStopping(monitor, es.patience, es.mode, es.min_delta))
    callbacks.append(cb.ModelCheckpoint(run_dir, monitor, es.mode))  # after the others: saves their state too
    callbacks += user_callbacks

    trainer = Trainer(
        train_model,
        optimizer,
        train_batches,
        steps_per_epoch,
        prepare,
        validate,
        settings,
        config.epochs,
        scheduler,
        unit,
        WeightPenalty(model, config.l1, config.l2),
        callbacks,
        generator,
        unwrapped_model=model,
    )
    if resume:
        trainer.load_full_state(load_checkpoint(Path(resume) / "last.pt", map_location=device))
    history = trainer.fit()
    results = evaluate_after_fit(model, splits, prepare, device, settings, config, trainer)
    # Summed per epoch so that a resumed run counts the epochs before its interruption too.
    results["train_seconds"] = round(sum(row["epoch_seconds"] + row.get("val_seconds", 0.0) for row in history), 3)
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return FitResult(run_dir, history, results, model)


def evaluate_after_fit(model, splits, prepare, device, settings, config, trainer) -> dict[str, Any]:
    from cnnlab.data import make_batches

    split_name = "test" if splits.test is not None else "val" if splits.val is not None else "train"
    imageset = getattr(splits, split_name)
    logits, labels = collect_logits(
        model, make_batches(imageset, config.eval_batch_size, shuffle=False), prepare, device, settings.autocast()
    )
    report = classification_report(logits, labels, list(splits.classes))
    history = trainer.history
    return {
        split_name: {
            "accuracy": report.accuracy,
            "loss": report.loss,
            "top5_accuracy": report.top5_accuracy,
            "macro_f1": report.macro_f1,
            "samples": len(labels),
        },
        "evaluated_split": split_name,
        "best_epoch": trainer.restored_epoch,
        "epochs_run": len(history),
        "stopped_early": any(isinstance(c, cb.EarlyStopping) and c.stopped_epoch for c in trainer.callbacks),
        "epoch_seconds": [round(row["epoch_seconds"], 3) for row in history],
    }


def resume_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The saved config of a run, with overrides (e.g. more epochs) applied."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a run folder (no config.yaml)")
    if not (Path(run_dir) / "last.pt").is_file():
        raise RunError(f"{run_dir}: nothing to resume (no last.pt)")
    config = load_config(TrainConfig, path, overrides)
    return replace(config, out=str(run_dir))
