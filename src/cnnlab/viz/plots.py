"""Matplotlib figures (headless: the Agg backend), written as PNG files or returned as PNG bytes for the report."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from cnnlab.io import atomic_write_bytes  # noqa: E402


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot would otherwise keep every figure alive)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, figure_png(fig))
    return path


def confusion_matrix_figure(matrix: list[list[int]], classes: list[str], normalize: bool = True) -> Figure:
    """Row-normalised confusion matrix (recall on the diagonal) with raw counts in the cells."""
    counts = np.asarray(matrix, dtype=np.int64)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1) if normalize else counts
    size = max(4.0, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(classes) <= 20:
        for (row, col), value in np.ndenumerate(counts):
            ax.text(
                col,
                row,
                str(value),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if rates[row, col] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.046, label="fraction of true class" if normalize else "count")
    ax.set_title("confusion matrix")
    fig.tight_layout()
    return fig


def plot_confusion_matrix(
    matrix: list[list[int]], classes: list[str], path: str | Path, normalize: bool = True
) -> Path:
    return _save(confusion_matrix_figure(matrix, classes, normalize), path)


def learning_curves_figure(history: list[dict[str, float]]) -> Figure:
    """Loss, accuracy and learning rate per epoch, train against validation."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes[:2], ("loss", "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            key = f"{split}_{metric}"
            if any(key in row for row in history):
                ax.plot(epochs, [row.get(key, np.nan) for row in history], style, ms=3, label=split)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    axes[2].plot(epochs, [row.get("lr", np.nan) for row in history], "-o", ms=3, color="tab:green")
    axes[2].set_title("learning rate (epoch start)")
    axes[2].set_xlabel("epoch")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_learning_curves(history: list[dict[str, float]], path: str | Path) -> Path:
    return _save(learning_curves_figure(history), path)
