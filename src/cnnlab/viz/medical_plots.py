"""Figures of a clinical classifier: the ROC and precision–recall curves with the operating point marked, the
reliability diagram, and per-label ROC curves and AUCs of a multi-label model.

Every number drawn comes from `cnnlab.tasks.medical.metrics` (the functions `cnnlab evaluate` reports with), so a
marked point and the printed sensitivity and specificity cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from cnnlab.tasks.medical.metrics import Calibration, OperatingPoint, roc_curve
from cnnlab.viz.plots import plt

OPERATING_POINT = "operating point"  # the label of the marker, which tests and readers look for


def precision_recall_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score, from the ROC's counts: tp = tpr·P and fp = fpr·N. The ROC's
    ``+inf`` point (nothing called positive) has no precision and is left out."""
    fpr, tpr, _ = roc_curve(scores, labels)
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    tp, fp = tpr[1:] * positives, fpr[1:] * negatives
    return tpr[1:], tp / (tp + fp)


def roc_figure(scores: np.ndarray, labels: np.ndarray, point: OperatingPoint, auc: float, title: str = "") -> Figure:
    """The ROC with the operating point at (1 − specificity, sensitivity) of `point` and its threshold."""
    fpr, tpr, _ = roc_curve(scores, labels)
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(fpr, tpr, "-", color="tab:blue", lw=1.6, label=f"ROC (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance")
    ax.plot(
        [1 - point.specificity],
        [point.sensitivity],
        "o",
        color="tab:red",
        ms=7,
        label=OPERATING_POINT,
    )
    ax.annotate(
        f"threshold {point.threshold:.3g}\nsens {point.sensitivity:.3f}, spec {point.specificity:.3f}",
        (1 - point.specificity, point.sensitivity),
        xytext=(12, -28),
        textcoords="offset points",
        fontsize=8,
        color="tab:red",
    )
    _square(ax, "1 − specificity (false positive rate)", "sensitivity (true positive rate)")
    ax.set_title(title or "ROC", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def pr_figure(scores: np.ndarray, labels: np.ndarray, point: OperatingPoint, ap: float) -> Figure:
    """Precision against recall, the prevalence (a useless model's precision) and the operating point."""
    recall, precision = precision_recall_curve(scores, labels)
    prevalence = float(np.mean(np.asarray(labels).astype(bool)))
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.step(recall, precision, where="post", color="tab:blue", lw=1.6, label=f"PR (AP {ap:.3f})")
    ax.axhline(prevalence, ls=":", color="grey", lw=1, label=f"prevalence {prevalence:.2f}")
    if point.tp + point.fp:
        ax.plot([point.sensitivity], [point.ppv], "o", color="tab:red", ms=7, label=OPERATING_POINT)
    _square(ax, "recall (sensitivity)", "precision (PPV)")
    ax.set_title("precision–recall", fontsize=10)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def reliability_figure(calibration: Calibration, what: str = "predicted probability of the positive class") -> Figure:
    """Observed frequency against mean predicted probability per bin (the diagonal is perfect calibration),
    with how many cases each bin holds below; ECE in the title."""
    fig, (ax, counts) = plt.subplots(
        2, 1, figsize=(4.2, 4.6), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08}
    )
    edges = calibration.edges
    centres, width = (edges[:-1] + edges[1:]) / 2, float(edges[1] - edges[0])
    filled = calibration.count > 0
    ax.bar(
        centres[filled],
        calibration.accuracy[filled],
        width=width * 0.9,
        color="tab:blue",
        alpha=0.75,
        label="observed",
    )
    ax.plot(calibration.confidence[filled], calibration.accuracy[filled], "o", color="tab:orange", ms=3)
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="perfectly calibrated")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction positive")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"reliability (ECE {calibration.ece:.3f}, {len(centres)} bins)", fontsize=10)
    counts.bar(centres, calibration.count, width=width * 0.9, color="grey")
    counts.set_yscale("log" if calibration.count.max() > 50 * max(1, calibration.count[filled].min()) else "linear")
    counts.set_xlabel(what)
    counts.set_ylabel("cases", fontsize=8)
    fig.subplots_adjust(left=0.16, right=0.97, top=0.93, bottom=0.11)
    return fig


def per_label_roc_figure(
    scores: np.ndarray, targets: np.ndarray, names: Sequence[str], aucs: Sequence[float | None]
) -> Figure:
    """One ROC per label that has positives and negatives in the split (the others have none to draw)."""
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    colours = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    for column, (name, auc) in enumerate(zip(names, aucs)):
        if auc is None:
            continue
        fpr, tpr, _ = roc_curve(scores[:, column], targets[:, column])
        ax.plot(fpr, tpr, lw=1.2, color=colours(column % colours.N), label=f"{name} ({auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1)
    _square(ax, "1 − specificity", "sensitivity")
    ax.set_title("ROC per label (AUC)", fontsize=10)
    ax.legend(fontsize=6 if len(names) > 8 else 7, loc="lower right", ncol=2 if len(names) > 10 else 1)
    fig.tight_layout()
    return fig


def per_label_auc_figure(names: Sequence[str], aucs: Sequence[float | None], mean: float) -> Figure:
    """A bar per label (a label without an AUC is marked, not drawn as 0), the mean as a line."""
    fig, ax = plt.subplots(figsize=(max(4.5, 0.45 * len(names) + 1.5), 3.6))
    values = [a if a is not None else 0.0 for a in aucs]
    bars = ax.bar(range(len(names)), values, color=["tab:blue" if a is not None else "white" for a in aucs])
    for bar, auc in zip(bars, aucs):
        if auc is None:
            ax.text(bar.get_x() + bar.get_width() / 2, 0.52, "n/a", ha="center", fontsize=7, rotation=90)
    ax.axhline(mean, color="tab:red", lw=1, label=f"mean {mean:.3f}")
    ax.axhline(0.5, color="grey", ls=":", lw=1, label="chance")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_ylim(0.5 if min(values + [1.0]) >= 0.5 else 0.0, 1.0)
    ax.set_ylabel("AUC")
    ax.set_title("AUC per label", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _square(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(alpha=0.3)
