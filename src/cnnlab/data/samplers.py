"""Batch samplers for `make_batches(batch_sampler=...)`: which samples make up each global batch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from cnnlab.errors import ConfigError


class IdentityBatchSampler:
    """P identities × K samples each per batch, as batch-hard triplet mining needs (Hermans et al. 2017).

    An epoch visits every identity with at least K samples once, in a seeded random order, P at a time; each
    identity contributes K of its samples drawn without replacement (an identity with fewer than K samples
    is skipped: it could give no positive pairs). Batches hold P·K samples.
    """

    def __init__(self, identities: Sequence | np.ndarray | torch.Tensor, p: int, k: int) -> None:
        if p < 2 or k < 2:
            raise ConfigError(
                f"identity sampler: P (identities per batch) and K (per identity) must be >= 2, got {p}, {k}"
            )
        ids = np.asarray(identities.cpu() if isinstance(identities, torch.Tensor) else identities)
        _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        self.members = [torch.from_numpy(np.flatnonzero(inverse == i)) for i in np.flatnonzero(counts >= k)]
        if len(self.members) < p:
            raise ConfigError(
                f"identity sampler: only {len(self.members)} identities have at least {k} samples; need {p} per batch"
            )
        self.p, self.k = p, k

    def __len__(self) -> int:
        return len(self.members) // self.p

    def batches(self, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(self.members), generator=generator)
        for start in range(0, len(self) * self.p, self.p):
            chosen = []
            for identity in order[start : start + self.p].tolist():
                members = self.members[identity]
                chosen.append(members[torch.randperm(len(members), generator=generator)[: self.k]])
            yield torch.cat(chosen)


class BalancedBatchSampler:
    """Every class drawn equally often: an epoch of `len(weights)` samples drawn with replacement, each with
    probability proportional to its weight (torch's WeightedRandomSampler, batched), so a 9:1 data set gives
    batches of about 1:1 and the small class's images are seen about nine times as often.

    `balanced_weights` gives the per-sample weights for single labels (1 / its class's count) and multi-hot
    targets (1 / the count of its rarest positive label; samples with no positive label form a group of their own).
    """

    def __init__(self, weights: torch.Tensor, batch_size: int) -> None:
        if batch_size < 1:
            raise ConfigError(f"balanced sampler: batch size must be >= 1, got {batch_size}")
        self.weights = weights.double()
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.weights) // self.batch_size)

    def batches(self, generator: torch.Generator | None) -> Iterator[torch.Tensor]:
        drawn = torch.multinomial(self.weights, len(self.weights), replacement=True, generator=generator)
        yield from drawn.split(self.batch_size)


def balanced_weights(targets: torch.Tensor) -> torch.Tensor:
    """Per-sample weights that make every class (or rarest positive label) equally likely to be drawn."""
    if targets.ndim == 1:
        counts = torch.bincount(targets.long())
        return 1.0 / counts[targets.long()].double()
    positive = targets > 0.5
    label_counts = positive.sum(0).double()
    none = ~positive.any(1)
    rarest = torch.where(positive, label_counts.expand_as(positive), torch.inf).amin(1)
    rarest[none] = none.sum().double()
    return 1.0 / rarest
