"""Classification data from a config: the one loader `fit`, `evaluate`, `report` and the learning curve share."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cnnlab.data import DataSplits, load_dataset
from cnnlab.data.splits import split_indices, split_off_val
from cnnlab.errors import ConfigError


def load_classification_data(config: Any) -> DataSplits:
    """The splits a config describes: read, val carved (stratified, seeded), `train_samples` applied.

    Evaluating a run re-reads its data through this function, so `--split val` is the very validation set
    the run was trained against, whatever subset it trained on.
    """
    if not config.data:
        raise ConfigError("data: no data set given; pass --data PATH (or `data:` in the config)")
    splits = load_dataset(
        config.data,
        format=config.data_format,
        test_path=config.test_data,
        val_split=0.0 if config.train_samples else config.val_split,
        seed=config.seed,
        resize=config.resize,
        channels=config.channels,
        window=config.window,
    )
    return limit_training_samples(splits, config) if config.train_samples else splits


def limit_training_samples(splits: DataSplits, config: Any) -> DataSplits:
    """Keep a stratified `train_samples` of the training data, then carve validation from those."""
    total = len(splits.train)
    if config.train_samples < 1:
        raise ConfigError(f"train_samples must be positive, got {config.train_samples}")
    train = splits.train
    if config.train_samples < total:
        _, kept = split_indices(train, config.train_samples / total, config.seed)
        train = train.subset(kept)
    val = splits.val
    if val is None and config.val_split > 0:
        train, val = split_off_val(train, config.val_split, config.seed)
    return replace(splits, train=train, val=val)
