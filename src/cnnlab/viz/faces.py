"""Pictures of face recognition: the verification ROC and a grid of queries with their best matches.

The ROC's FAR axis is logarithmic by default: face systems are run at FAR 1 % or 0.1 %, where a linear axis
shows nothing. The grid frames each match green when it names the query's person and red when not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from cnnlab.viz.plots import figure_png, plt

if TYPE_CHECKING:
    from cnnlab.tasks.faces.metrics import VerificationReport

RIGHT_COLOUR = (0, 200, 0)
WRONG_COLOUR = (220, 0, 0)
_PLOT_POINTS = 4000  # a million-point ROC drawn from this many: the same picture, 200x faster


def _thinned(fpr: np.ndarray, tpr: np.ndarray, log_far: bool) -> tuple[np.ndarray, np.ndarray]:
    """The ROC's upper envelope sampled on an FAR grid (log-spaced for a log axis); short curves unchanged."""
    if len(fpr) <= _PLOT_POINTS:
        return fpr, tpr
    low = max(float(fpr[fpr > 0].min()), 1e-9) if (fpr > 0).any() else 1e-9
    grid = np.geomspace(low, 1.0, _PLOT_POINTS) if log_far else np.linspace(0.0, 1.0, _PLOT_POINTS)
    index = np.unique(np.r_[0, np.searchsorted(fpr, grid, side="right") - 1, len(fpr) - 1])
    return fpr[index], tpr[index]


def roc_png(report: VerificationReport, log_far: bool = True) -> bytes:
    """TAR against FAR with the EER point marked and the AUC in the legend (FAR on a log axis unless told)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    fpr, tpr = _thinned(report.fpr, report.tpr, log_far)
    ax.plot(fpr, tpr, lw=1.5, color="tab:blue", label=f"ROC, AUC {report.auc:.4f}")
    ax.plot([report.eer], [1 - report.eer], "o", color="tab:red", ms=6, label=f"EER {100 * report.eer:.2f} %")
    for far, tar in sorted(report.tar_at_far.items()):
        ax.plot([far], [tar], "s", ms=4, color="tab:green")
        ax.annotate(f"TAR {100 * tar:.1f} % @ FAR {100 * far:g} %", (far, tar), fontsize=7,
                    textcoords="offset points", xytext=(6, -10))  # fmt: skip
    if log_far:
        # the smallest FAR the pairs can show is one impostor pair: the axis starts a decade below it
        ax.set_xscale("log")
        ax.set_xlim(max(0.1 / max(report.impostor_pairs, 1), 1e-7), 1.0)
        ax.set_xlabel("false accept rate (log scale)")
    else:
        ax.plot([0, 1], [1, 0], ":", color="grey", lw=0.8)  # FAR = FRR: the EER lies on it
        ax.set_xlim(0, 1)
        ax.set_xlabel("false accept rate")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("true accept rate")
    ax.set_title(
        f"verification ROC: {report.genuine_pairs} genuine / {report.impostor_pairs} impostor pairs"
        + (" (sampled)" if report.sampled else ""),
        fontsize=9,
    )
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return figure_png(fig)


def _rgb(image: Tensor) -> np.ndarray:
    """(H, W, 3) uint8 array of a uint8 (1|3, H, W) image."""
    image = torch.as_tensor(image).detach().cpu()
    if image.dim() != 3 or image.shape[0] not in (1, 3) or image.dtype != torch.uint8:
        raise ValueError(f"face images must be uint8 (1|3, H, W), got {image.dtype} {tuple(image.shape)}")
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return np.ascontiguousarray(image.permute(1, 2, 0).numpy())


def _framed(picture: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """The picture inside a border of ``colour`` about 1/16 of its side thick (2 px at least)."""
    width = max(2, round(min(picture.shape[:2]) / 16))
    framed = np.empty((picture.shape[0] + 2 * width, picture.shape[1] + 2 * width, 3), dtype=np.uint8)
    framed[:] = colour
    framed[width:-width, width:-width] = picture
    return framed


def matches_grid_png(
    query_images: Tensor | Sequence[Tensor],
    match_images: Sequence[Sequence[Tensor]],
    names: Sequence[Sequence[str]],
    scores: Sequence[Sequence[float]],
    truth_names: Sequence[str],
) -> bytes:
    """One row per query: the query (captioned with its true name), then its best matches in order, each captioned
    ``"name 0.873"`` and framed green when the name is the query's person, red when not.

    Args:
        query_images: (Q, C, H, W) uint8, or Q images (C, H, W) uint8 with C of 1 or 3.
        match_images: per query, its match images (enrolled images of the matched people).
        names: per query, the matched names, in the order of ``match_images``.
        scores: per query, the cosine of each match.
        truth_names: the true name of each query.
    """
    count = len(query_images)
    if not len(match_images) == len(names) == len(scores) == len(truth_names) == count:
        raise ValueError(
            f"{count} queries but {len(match_images)} match lists, {len(names)} name lists, "
            f"{len(scores)} score lists and {len(truth_names)} true names"
        )
    # pictures first: a bad image raises before a figure exists to leak
    queries = [_rgb(query) for query in query_images]
    framed = [
        [_framed(_rgb(image), RIGHT_COLOUR if name == truth else WRONG_COLOUR) for image, name in zip(row, row_names)]
        for row, row_names, truth in zip(match_images, names, truth_names)
    ]
    columns = 1 + max((len(row) for row in framed), default=0)
    rows = max(count, 1)
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns, 1.9 * rows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for row, (query, pictures, row_names, row_scores, truth) in enumerate(
        zip(queries, framed, names, scores, truth_names)
    ):
        axes[row, 0].imshow(query)
        axes[row, 0].set_title(f"query: {truth}", fontsize=7, fontweight="bold")
        for column, (picture, name, score) in enumerate(zip(pictures, row_names, row_scores), start=1):
            colour = np.array(RIGHT_COLOUR if name == truth else WRONG_COLOUR) / 255
            axes[row, column].imshow(picture)
            axes[row, column].set_title(f"{name} {score:.3f}", fontsize=7, color=colour)
    if count == 0:
        axes[0, 0].text(0.5, 0.5, "no queries", ha="center", va="center")
    fig.suptitle("queries and their best matches (green: right person, red: wrong)", fontsize=8)
    fig.tight_layout()
    return figure_png(fig)


__all__ = ["matches_grid_png", "roc_png"]
