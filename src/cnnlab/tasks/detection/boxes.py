"""Box helpers the detection task shares: anchors by k-means, target tensors, the responsible-cell rule."""

from __future__ import annotations

import torch


def wh_iou(wh_a: torch.Tensor, wh_b: torch.Tensor) -> torch.Tensor:
    """IoU of boxes that share a centre, from widths and heights alone: (A, 2) x (B, 2) -> (A, B)."""
    inter = torch.min(wh_a[:, None, :], wh_b[None, :, :]).prod(-1)
    return inter / (wh_a.prod(-1)[:, None] + wh_b.prod(-1)[None, :] - inter).clamp(min=1e-9)


def kmeans_anchors(wh: torch.Tensor, k: int, *, seed: int = 0, iterations: int = 100) -> torch.Tensor:
    """k anchor (w, h) pairs from the training boxes by k-means with the distance 1 - IoU (YOLOv2, sec. 2).

    Euclidean k-means favours large boxes (their errors are larger in pixels); the IoU distance does not.
    Fewer distinct boxes than k gives fewer anchors. Sorted by area; seeded (k-means++ initialisation).
    """
    wh = wh.float().reshape(-1, 2)
    wh = wh[(wh > 0).all(1)]
    distinct = torch.unique(wh, dim=0)
    k = max(1, min(k, len(distinct)))
    if len(distinct) == 0:
        raise ValueError("no boxes to fit anchors to")
    generator = torch.Generator().manual_seed(seed)
    centres = distinct[torch.randint(len(distinct), (1,), generator=generator)]
    while len(centres) < k:  # k-means++: the next centre far (in 1 - IoU) from those chosen
        distance = (1 - wh_iou(wh, centres)).min(1).values.clamp(min=0) ** 2
        pick = torch.multinomial(distance + 1e-12, 1, generator=generator)
        centres = torch.cat([centres, wh[pick]])
    for _ in range(iterations):
        nearest = wh_iou(wh, centres).argmax(1)
        updated = torch.stack(
            [wh[nearest == j].median(0).values if (nearest == j).any() else centres[j] for j in range(k)]
        )  # the median, as YOLOv2's reference implementation: robust to a few very large boxes
        if torch.allclose(updated, centres):
            break
        centres = updated
    return centres[centres.prod(1).argsort()]


def mean_best_iou(wh: torch.Tensor, anchors: torch.Tensor) -> float:
    """The average IoU of each box with its best anchor (YOLOv2's "Avg IOU", Table 1): how well anchors fit."""
    if len(wh) == 0:
        return 0.0
    return float(wh_iou(wh.float(), anchors.float()).max(1).values.mean())
