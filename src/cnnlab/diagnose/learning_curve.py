"""Learning curves: train on growing stratified fractions of the training data and ask whether more would help.

Each fraction is written as a MedMNIST-layout .npz (train_/val_ arrays) and trained with the unchanged `fit`,
so the curve runs exactly the training a user would. Every fraction is validated on the same, full validation
split, and the subsets are nested (the 25% subset contains the 10% one), so the points differ only in size.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from cnnlab.diagnose import curves
from cnnlab.diagnose.curves import infer_mode
from cnnlab.errors import ConfigError, DataError
from cnnlab.io import atomic_write_bytes, atomic_write_json
from cnnlab.train.config import TrainConfig

# Hestness et al. 2017 ("Deep learning scaling is predictable, empirically"): validation error falls as a power
# law of the training-set size (a straight line on log-log axes) until it nears the irreducible error and the
# curve flattens. At least one accuracy point per doubling of the data at the largest size measured means the
# curve has not flattened: more data of the same kind will pay.
MORE_DATA_GAIN = 0.01
# Each fraction trains for epochs / fraction (so every point gets the same number of optimisation steps, and a
# small subset is not starved of updates) but at most this many times the configured epochs.
MAX_EPOCH_FACTOR = 10


@dataclass
class CurvePoint:
    fraction: float
    train_size: int
    val_accuracy: float
    val_loss: float
    train_accuracy: float
    best_epoch: int
    epochs_run: int
    seconds: float
    run_dir: str


@dataclass
class LearningCurve:
    """Validation accuracy against training-set size, and the verdict on more data.

    Attributes:
        points: one per fraction, smallest first (val metrics of the best epoch).
        gain_per_doubling: accuracy gained per doubling of the data over the last segment (None with one point).
        trend_gain_per_doubling: least-squares slope of accuracy against log2(size) over all points.
        predicted_accuracy_2x: the power-law fit of the error, extrapolated to twice the largest size.
        more_data_helps: whether `gain_per_doubling` reaches MORE_DATA_GAIN.
        message: the verdict in a sentence.
    """

    points: list[CurvePoint]
    gain_per_doubling: float | None
    trend_gain_per_doubling: float | None
    predicted_accuracy_2x: float | None
    more_data_helps: bool
    message: str

    def to_dict(self) -> dict:
        return {**asdict(self), "threshold_gain_per_doubling": MORE_DATA_GAIN}


def parse_fractions(text: str) -> list[float]:
    """ "0.1,0.25,0.5,1.0" -> sorted unique fractions in (0, 1]."""
    try:
        values = sorted({float(part) for part in text.split(",") if part.strip()})
    except ValueError as error:
        raise ConfigError(f"--fractions: cannot read {text!r} as comma-separated numbers") from error
    if not values or values[0] <= 0 or values[-1] > 1:
        raise ConfigError(f"--fractions: need fractions in (0, 1], got {text!r}")
    return values


def nested_subsets(labels: np.ndarray, fractions: list[float], seed: int = 0) -> dict[float, np.ndarray]:
    """Sorted indices per fraction, stratified (each class keeps its share, at least one image) and nested."""
    rng = np.random.default_rng(seed)
    orders = {c: rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    subsets = {}
    for fraction in fractions:
        parts = [order[: max(1, round(fraction * len(order)))] for order in orders.values()]
        subsets[fraction] = np.sort(np.concatenate(parts))
    return subsets


def _fraction_data(splits, indices: np.ndarray):
    """The data of one point: that subset of training, the full validation split, no test (all in memory)."""
    return replace(splits, train=splits.train.subset(indices), test=None)


def _load_splits(config: TrainConfig):
    from cnnlab.train.fit import load_data

    splits = load_data(config)
    if not splits.train.in_memory:
        raise DataError(f"{config.data}: learning curves need an in-memory data set; this one is streamed from disk")
    if splits.val is None:
        raise ConfigError(f"{config.data}: learning curves need a validation split; set val_split above 0")
    return splits


def _point(config: TrainConfig, data, fraction: float, size: int) -> CurvePoint:
    from cnnlab.train.fit import fit

    start = time.perf_counter()
    result = fit(config, overwrite=True, data=data)
    history = result.history
    monitor = config.monitor or "val_accuracy"
    index = curves.best_index(history, monitor, infer_mode(monitor))
    best = history[index if index is not None else -1]
    return CurvePoint(
        fraction,
        size,
        float(best.get("val_accuracy", math.nan)),
        float(best.get("val_loss", math.nan)),
        float(best.get("train_accuracy", math.nan)),
        int(best.get("epoch", len(history))),
        len(history),
        round(time.perf_counter() - start, 2),
        str(result.run_dir),
    )


def _power_law_prediction(points: list[CurvePoint]) -> float | None:
    """Fit error = a * n^-b through the points (log-log least squares) and evaluate it at twice the largest n."""
    usable = [(p.train_size, 1.0 - p.val_accuracy) for p in points if 0 < 1.0 - p.val_accuracy < 1]
    if len(usable) < 2:
        return None
    log_n, log_err = np.log([n for n, _ in usable]), np.log([e for _, e in usable])
    slope, intercept = np.polyfit(log_n, log_err, 1)
    error = math.exp(intercept + slope * math.log(2 * points[-1].train_size))
    return float(min(max(1.0 - error, 0.0), 1.0))


def summarize(points: list[CurvePoint]) -> LearningCurve:
    """The verdict on more data from the measured points (smallest first)."""
    if len(points) < 2:
        return LearningCurve(points, None, None, None, False, "one point only: give at least two fractions")
    last, before = points[-1], points[-2]
    gain = (last.val_accuracy - before.val_accuracy) / math.log2(last.train_size / before.train_size)
    trend = float(np.polyfit(np.log2([p.train_size for p in points]), [p.val_accuracy for p in points], 1)[0])
    predicted = _power_law_prediction(points)
    helps = gain >= MORE_DATA_GAIN
    if helps:
        message = (
            f"More data would help: doubling it gained {100 * gain:.1f} accuracy points at the largest size "
            f"(trend {100 * trend:+.1f} per doubling)"
            + (f"; twice the data should reach about {100 * predicted:.1f}%." if predicted else ".")
        )
    else:
        message = (
            f"The curve has flattened ({100 * gain:+.1f} points per doubling at the largest size): more data "
            "of the same kind will not help much; change the model, its regularization or the labels."
        )
    return LearningCurve(points, gain, trend, predicted, helps, message)


def _fraction_config(config: TrainConfig, out: Path, fraction: float, epochs: int) -> TrainConfig:
    scaled = min(math.ceil(epochs / fraction), epochs * MAX_EPOCH_FACTOR)
    # The data is handed to fit in memory (no temporary files); the config keeps naming its source.
    return replace(config, test_data=None, out=str(out / f"fraction_{fraction:g}"), epochs=scaled, progress=False)


def learning_curve(
    config: TrainConfig, fractions: list[float], out_dir: str | Path, epochs: int | None = None, log=print
) -> LearningCurve:
    """Train `config` on each fraction of its training data; write learning_curve.json and .png to `out_dir`.

    Args:
        config: the training to repeat (its data must load into memory and have a validation split).
        fractions: fractions of the training split in (0, 1], e.g. [0.1, 0.25, 0.5, 1.0].
        out_dir: folder for the per-fraction runs, learning_curve.json and learning_curve.png.
        epochs: epochs for the full data (default: the config's); smaller fractions get proportionally more.
        log: called with one line per finished fraction (None for silence).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if config.task != "classification":
        raise ConfigError(
            f"task: the learning curve subsamples images per class label and reads val accuracy, so it measures "
            f"classification runs only, got task {config.task!r}"
        )
    splits = _load_splits(config)
    subsets = nested_subsets(splits.train.labels.numpy(), sorted(fractions), config.seed)
    points = []
    for fraction, indices in subsets.items():
        run_config = _fraction_config(config, out_dir, fraction, epochs or config.epochs)
        points.append(_point(run_config, _fraction_data(splits, indices), fraction, len(indices)))
        if log:
            p = points[-1]
            log(
                f"fraction {fraction:g}: {p.train_size} images, val accuracy {p.val_accuracy:.4f} "
                f"(epoch {p.best_epoch} of {p.epochs_run}, {p.seconds:.0f} s)"
            )
    curve = summarize(points)
    atomic_write_json(out_dir / "learning_curve.json", curve.to_dict())
    plot_learning_curve(curve, out_dir / "learning_curve.png")
    return curve


def plot_learning_curve(curve: LearningCurve, path: str | Path) -> Path:
    """Validation (and training) accuracy against training-set size on a log axis, with the fitted trend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = np.array([p.train_size for p in curve.points], dtype=float)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [p.val_accuracy for p in curve.points], "-o", label="validation (best epoch)")
    ax.plot(sizes, [p.train_accuracy for p in curve.points], "--s", alpha=0.6, label="train (same epoch)")
    if curve.predicted_accuracy_2x is not None:
        ax.plot(
            [sizes[-1], 2 * sizes[-1]],
            [curve.points[-1].val_accuracy, curve.predicted_accuracy_2x],
            ":",
            color="gray",
            label="power-law extrapolation",
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [f"{int(n):,}" for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training images")
    ax.set_ylabel("accuracy")
    ax.set_title("learning curve: " + ("more data helps" if curve.more_data_helps else "flattened"))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
