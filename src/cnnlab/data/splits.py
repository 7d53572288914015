"""Seeded validation splits: stratified (every class keeps its share) or by group (no identity or patient in
both), and the same seed gives the same split."""

from __future__ import annotations

import numpy as np
import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.errors import ConfigError


def stratified_split(
    labels: torch.Tensor | np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), both sorted, with round(fraction * n_c) of each class c in val.

    Vectorised (one permutation and one stable sort), so a million labels split in well under a
    second. A class keeps at least one training image; if rounding leaves val empty, the largest
    class gives one image so that asking for a validation split always yields one.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_split must be a fraction in [0, 1), got {fraction!r}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    total = len(labels)
    if fraction == 0.0 or total < 2:
        return np.arange(total), np.arange(0)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(total)
    order = shuffled[np.argsort(labels[shuffled], kind="stable")]
    counts = np.bincount(labels)
    n_val = np.minimum(np.floor(fraction * counts + 0.5).astype(np.int64), np.maximum(counts - 1, 0))
    if n_val.sum() == 0:
        n_val[np.argmax(counts)] = 1
    starts = np.cumsum(counts) - counts
    rank = np.arange(total) - np.repeat(starts, counts)
    in_val = rank < np.repeat(n_val, counts)
    return np.sort(order[~in_val]), np.sort(order[in_val])


def group_split(groups: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), both sorted, with whole groups in val until it holds about `fraction` of the samples.

    A face identity or a patient is never in both splits, so validation measures what happens on people the
    model has not seen. At least one group stays in training, and a non-zero fraction gives val one group.
    """
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_split must be a fraction in [0, 1), got {fraction!r}")
    groups = np.asarray(groups).reshape(-1)
    names, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if fraction == 0.0 or len(names) < 2:
        return np.arange(len(groups)), np.arange(0)
    order = np.random.default_rng(seed).permutation(len(names))
    taken = np.cumsum(counts[order])
    n_val_groups = int(np.clip(np.searchsorted(taken, fraction * len(groups), side="left") + 1, 1, len(names) - 1))
    in_val = np.isin(inverse, order[:n_val_groups])
    return np.flatnonzero(~in_val), np.flatnonzero(in_val)


def random_split(total: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val), both sorted, for targets that have no classes to stratify by (e.g. regression)."""
    if not 0.0 <= fraction < 1.0:
        raise ConfigError(f"val_split must be a fraction in [0, 1), got {fraction!r}")
    n_val = min(int(round(fraction * total)) or (1 if fraction > 0 and total > 1 else 0), max(total - 1, 0))
    order = np.random.default_rng(seed).permutation(total)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def split_indices(imageset: ImageSet, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """By group when the set has groups, stratified when it has class labels, else at random."""
    if imageset.groups is not None:
        return group_split(imageset.groups, fraction, seed)
    if imageset.has_class_labels:
        return stratified_split(imageset.labels, fraction, seed)
    return random_split(len(imageset), fraction, seed)


def split_off_val(train: ImageSet, fraction: float, seed: int = 0) -> tuple[ImageSet, ImageSet | None]:
    """(train, val) carved from `train`; val is None when `fraction` is 0."""
    train_idx, val_idx = split_indices(train, fraction, seed)
    if len(val_idx) == 0:
        return train, None
    return train.subset(train_idx), train.subset(val_idx)
