"""The classification losses: cross-entropy (softmax) or binary cross-entropy (multi-label), each with optional
per-class weights and the focal term of Lin et al. 2017, for imbalanced data.

`class_weights: balanced` is scikit-learn's `compute_class_weight("balanced")`: n_samples / (n_classes * count);
for multi-label targets it is each label's `pos_weight` = negatives / positives (BCEWithLogitsLoss's own weight).
With `focal_gamma` 0 the focal loss equals the plain one exactly (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError


def parse_class_weights(
    spec: str | None, counts: Sequence[int], total: int, classes: Sequence[str], multilabel: bool
) -> torch.Tensor | None:
    """The loss's weight per class from `class_weights` (None, "balanced" or "w0,w1,...") and the training
    counts: images per class, or for multi-label positives per label out of `total` images."""
    if spec is None:
        return None
    k = len(classes)
    if spec != "balanced":
        weights = [float(v) for v in spec.split(",")]
        if len(weights) != k:
            raise ConfigError(
                f"class_weights: {len(weights)} weights for {k} classes ({', '.join(classes)}); give one per class"
            )
        return torch.tensor(weights, dtype=torch.float32)
    positives = torch.tensor(list(counts), dtype=torch.float64)
    for name, count in zip(classes, positives.tolist()):
        if count == 0:
            raise ConfigError(f"class_weights: balanced: class {name!r} has no training images, so no weight")
    if multilabel:
        return ((total - positives) / positives).float()
    return (positives.sum() / (k * positives)).float()


@dataclass
class ClassificationLoss:
    """The training loss of a classification run; `multilabel` switches softmax CE for per-label BCE."""

    multilabel: bool = False
    weight: torch.Tensor | None = None
    focal_gamma: float | None = None  # None: the plain loss
    label_smoothing: float = 0.0

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weight = None if self.weight is None else self.weight.to(logits.device)
        if self.multilabel:
            return multilabel_loss(logits, target.float(), weight, self.focal_gamma)
        if self.focal_gamma is None:
            return F.cross_entropy(logits, target, weight=weight, label_smoothing=self.label_smoothing)
        return softmax_focal_loss(logits, target, self.focal_gamma, weight, self.label_smoothing)

    def describe(self) -> dict:
        """What run.json records about the loss."""
        return {
            "name": ("focal" if self.focal_gamma is not None else "bce" if self.multilabel else "cross_entropy"),
            "focal_gamma": self.focal_gamma,
            "class_weights": None if self.weight is None else [round(float(w), 6) for w in self.weight],
        }


def softmax_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """-sum_c w_c q_c (1 - p_c)^gamma log p_c per sample, q the (smoothed or mixed) target distribution; averaged
    over the batch as F.cross_entropy averages: by the summed weights of the true classes for hard labels."""
    k = logits.shape[1]
    log_p = F.log_softmax(logits, dim=1)
    hard = target.ndim == 1
    q = F.one_hot(target.long(), k).to(log_p.dtype) if hard else target.to(log_p.dtype)
    if label_smoothing:
        q = q * (1 - label_smoothing) + label_smoothing / k
    per_class = -q * (1 - log_p.exp()).pow(gamma) * log_p
    if weight is not None:
        per_class = per_class * weight
    per_sample = per_class.sum(1)
    if weight is not None and hard:
        return per_sample.sum() / weight[target.long()].sum()
    return per_sample.mean()


def multilabel_loss(
    logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None, gamma: float | None
) -> torch.Tensor:
    """Per-label binary cross-entropy (pos_weight scales the positive term), times (1 - p_t)^gamma when focal."""
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight, reduction="none")
    if gamma is None:
        return bce.mean()
    p = torch.sigmoid(logits)
    p_t = p * target + (1 - p) * (1 - target)
    return (bce * (1 - p_t).pow(gamma)).mean()
