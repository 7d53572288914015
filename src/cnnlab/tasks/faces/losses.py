"""The face-embedding losses, each called as `loss(embeddings, labels) -> (loss, stats)`.

`ArcFace` (Deng et al. 2019, "ArcFace: Additive Angular Margin Loss for Deep Face Recognition") is a softmax
over identities whose target logit has its angle widened by a margin; it owns one trainable centre per training
identity, so it is an extra module saved in checkpoints. `TripletLoss` (Schroff et al. 2015, with the batch-hard
mining of Hermans et al. 2017, "In Defense of the Triplet Loss for Person Re-Identification") has no parameters
and needs batches of P identities x K images (a P x K sampler), so every anchor has a positive.

Stats are detached 0-dim tensors (no device sync per step); call `.item()` to log them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError

# 1 - cos^2 and squared distances are clamped to at least this before sqrt: the clamped entries get a zero gradient
# instead of sqrt's infinite one at 0 (NaN after the chain rule), sqrt's gradient stays under 1 / (2 sqrt(eps)) = 500,
# and float32 rounding noise in 2 - 2 cos (~1e-7) falls under the clamp instead of giving random directions.
# The values move by at most sqrt(eps) = 1e-3 (a distance of 0 reads 1e-3).
_SQRT_EPS = 1e-6


class ArcFace(nn.Module):
    """Additive angular margin loss: logits s * cos(theta + m) for the true identity, s * cos(theta) for the others.

    Defaults: m = 0.5 (the paper's), s = 30. The paper's s = 64 is for 85k identities, where the softmax needs
    large logits to reach a confident probability; with tens or hundreds of identities s = 64 saturates the
    softmax at once and the gradients vanish; s = 30 is the usual choice there (CosFace's and insightface's
    smaller-data setting). When theta + m would pass pi, cos(theta + m) stops decreasing in theta, so (as in
    insightface) the target logit becomes cos(theta) - m * sin(m) there, which keeps it monotonic.

    Args:
        num_classes: training identities, fixed at init (one weight row, the identity's centre, per class).
        dim: embedding size.
        scale: s, the logit scale.
        margin: m, in radians.
    """

    def __init__(self, num_classes: int, dim: int, scale: float = 30.0, margin: float = 0.5) -> None:
        super().__init__()
        if num_classes < 2 or dim < 1:
            raise ConfigError(f"ArcFace needs num_classes >= 2 and dim >= 1, got {num_classes} and {dim}")
        if not 0.0 <= margin < math.pi / 2 or scale <= 0:
            raise ConfigError(f"ArcFace needs 0 <= margin < pi/2 and scale > 0, got margin {margin}, scale {scale}")
        self.num_classes, self.dim, self.scale, self.margin = num_classes, dim, scale, margin
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.xavier_uniform_(self.weight)  # as insightface; only its direction matters (rows are normalised)

    def cosines(self, embeddings: torch.Tensor) -> torch.Tensor:
        """cos(theta) (N, num_classes) between each embedding and each identity's centre."""
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))

    def logits(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Scaled logits (N, num_classes) with the angular margin on each row's true class."""
        cosine = self.cosines(embeddings)
        target = cosine.gather(1, labels.reshape(-1, 1))
        sine = torch.sqrt((1.0 - target * target).clamp(min=_SQRT_EPS))
        shifted = target * math.cos(self.margin) - sine * math.sin(self.margin)  # cos(theta + m)
        # theta + m > pi exactly when cos(theta) < cos(pi - m); sin(pi - m) = sin(m).
        fallback = target - self.margin * math.sin(self.margin)
        target = torch.where(target > math.cos(math.pi - self.margin), shifted, fallback)
        return self.scale * cosine.scatter(1, labels.reshape(-1, 1), target)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Mean cross-entropy over the batch, and {"accuracy"}: the fraction whose nearest centre is its own
        identity, on cosines without the margin (what identification sees; the margin would only lower it)."""
        labels = labels.to(torch.int64)
        logits = self.logits(embeddings, labels)
        with torch.no_grad():
            accuracy = (self.cosines(embeddings).argmax(1) == labels).float().mean()
        return F.cross_entropy(logits, labels), {"accuracy": accuracy}

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, dim={self.dim}, scale={self.scale}, margin={self.margin}"


def pairwise_distances(embeddings: torch.Tensor) -> torch.Tensor:
    """Euclidean distances (N, N) between L2-normalised embeddings: sqrt(2 - 2 cos), clamped before sqrt."""
    unit = F.normalize(embeddings, dim=1)
    squared = 2.0 - 2.0 * (unit @ unit.T)
    return torch.sqrt(squared.clamp(min=_SQRT_EPS))


def batch_hard_triplet_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, soft: bool = False
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each anchor against its hardest positive (farthest same identity) and hardest negative (nearest other one).

    The loss per anchor is max(0, d_ap - d_an + margin), or with `soft` the soft margin log(1 + exp(d_ap - d_an))
    (Hermans et al. 2017, which needs no margin to tune; `margin` is then unused). Anchors with no other image of
    their identity, or no other identity in the batch, have no triplet and are left out of the mean.

    Args:
        embeddings: (N, D), normalised here if they are not.
        labels: (N,) identities.
        margin: the hinge's margin, in Euclidean distance on the unit sphere (0 to 2).
        soft: softplus instead of the hinge.

    Returns:
        (mean loss over anchors with a triplet, stats): "active", the fraction of those anchors that violate the
        margin (with `soft`: whose hardest negative is no farther than their hardest positive); "d_ap" and
        "d_an", the mean hardest distances; "anchors", how many anchors had a triplet. A batch without any
        triplet gives a zero loss that still backpropagates (zero gradients) and zero stats.
    """
    labels = labels.reshape(-1)
    distances = pairwise_distances(embeddings)
    same = labels[:, None] == labels[None, :]
    itself = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive, negative = same & ~itself, ~same
    valid = positive.any(1) & negative.any(1)
    d_ap = torch.where(positive, distances, torch.zeros_like(distances)).amax(1)[valid]  # distances are >= 0
    d_an = torch.where(negative, distances, torch.full_like(distances, math.inf)).amin(1)[valid]
    gap = d_ap - d_an
    losses = F.softplus(gap) if soft else F.relu(gap + margin)
    count = valid.sum()
    per_anchor = count.clamp(min=1)  # a mean that is 0, not NaN, over no anchors; no host sync to test for them
    with torch.no_grad():
        active = (gap >= 0) if soft else (gap + margin > 0)
        stats = {"active": active.sum() / per_anchor, "d_ap": d_ap.sum() / per_anchor, "d_an": d_an.sum() / per_anchor}
    return losses.sum() / per_anchor, {**stats, "anchors": count}


class TripletLoss(nn.Module):
    """`batch_hard_triplet_loss` as a module with ArcFace's call signature; it has no parameters.

    Args:
        margin: the hinge's margin (unused with `soft`).
        soft: the soft-margin variant.
    """

    def __init__(self, margin: float = 0.2, soft: bool = False) -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"triplet margin must be >= 0, got {margin}")
        self.margin, self.soft = margin, soft

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return batch_hard_triplet_loss(embeddings, labels, margin=self.margin, soft=self.soft)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, soft={self.soft}"
