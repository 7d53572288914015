"""Numbers read off a training history (one dict per epoch, as in metrics.jsonl): gaps, best epochs, trends.

Pure functions on lists, so the rules can be tested on histories written by hand.
"""

from __future__ import annotations

import math
from typing import Any

History = list[dict[str, Any]]


def infer_mode(metric: str, meta: dict[str, Any] | None = None) -> str:
    """A metric's direction as the run's task declared it in run.json, else as a registered task declares it;
    for a metric no task declares (an old run's custom metric), losses and errors are minimised."""
    from cnnlab.tasks import metric_mode

    base = metric.split("_", 1)[1] if metric.startswith(("train_", "val_", "test_")) else metric
    declared = ((meta or {}).get("task") or {}).get("metrics") or {}
    mode = declared.get(base) or metric_mode(metric)
    if mode is None:
        mode = "min" if any(word in metric.lower() for word in ("loss", "error", "err", "mae", "mse")) else "max"
    return mode


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def column(history: History, key: str) -> list[float]:
    """The values of one metric per epoch (nan where an epoch did not log it)."""
    return [float(row[key]) if row.get(key) is not None else math.nan for row in history]


def has_metric(history: History, key: str) -> bool:
    return any(is_finite(row.get(key)) for row in history)


def epoch_of(history: History, index: int) -> int:
    return int(history[index].get("epoch", index + 1))


def best_index(history: History, monitor: str, mode: str = "auto") -> int | None:
    """Index of the best finite value of `monitor` (the first one on ties, as early stopping counts)."""
    mode = infer_mode(monitor) if mode == "auto" else mode
    values = [(v, i) for i, v in enumerate(column(history, monitor)) if math.isfinite(v)]
    if not values:
        return None
    pick = min if mode == "min" else max
    best = pick(v for v, _ in values)
    return next(i for v, i in values if v == best)


def accuracy_gap(row: dict[str, Any]) -> float | None:
    """train accuracy - val accuracy (fraction); positive when the model does better on what it trained on."""
    if not (is_finite(row.get("train_accuracy")) and is_finite(row.get("val_accuracy"))):
        return None
    return float(row["train_accuracy"]) - float(row["val_accuracy"])


def loss_gap(row: dict[str, Any]) -> float | None:
    """val loss - train loss (nats)."""
    if not (is_finite(row.get("train_loss")) and is_finite(row.get("val_loss"))):
        return None
    return float(row["val_loss"]) - float(row["train_loss"])


def gap_opened_index(history: History, threshold: float) -> int | None:
    """First index from which the accuracy gap stays >= threshold to the end (None if it is not open at the end)."""
    opened = None
    for index in range(len(history) - 1, -1, -1):
        gap = accuracy_gap(history[index])
        if gap is None or gap < threshold:
            break
        opened = index
    return opened


def val_loss_turn(history: History) -> dict[str, float] | None:
    """Where validation loss bottomed out, and how val and train loss moved after it.

    Returns:
        {"index", "val_loss_min", "val_loss_end", "val_rise" (relative), "train_fall" (relative)} or None when
        the minimum is the last epoch (val loss never turned).
    """
    val = column(history, "val_loss")
    train = column(history, "train_loss")
    index = best_index(history, "val_loss", "min")
    if index is None or index == len(history) - 1 or not (math.isfinite(val[-1]) and math.isfinite(train[-1])):
        return None
    lowest, train_then = val[index], train[index]
    return {
        "index": index,
        "val_loss_min": lowest,
        "val_loss_end": val[-1],
        "val_rise": val[-1] / lowest - 1.0 if lowest > 0 else math.inf,
        "train_fall": 1.0 - train[-1] / train_then if train_then > 0 else 0.0,
    }


def standard_error(accuracy: float, samples: int | None) -> float:
    """Binomial standard error of an accuracy measured on `samples` images (0 when the count is unknown)."""
    if not samples:
        return 0.0
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / samples)


def first_nonfinite_index(history: History, keys: tuple[str, ...] = ("train_loss", "val_loss")) -> int | None:
    for index, row in enumerate(history):
        if any(key in row and not is_finite(row[key]) for key in keys):
            return index
    return None


def relative_increases(values: list[float]) -> list[tuple[int, float]]:
    """(index, relative rise) for each epoch whose value rose above the previous epoch's."""
    rises = []
    for index in range(1, len(values)):
        before, after = values[index - 1], values[index]
        if math.isfinite(before) and math.isfinite(after) and after > before and before > 0:
            rises.append((index, after / before - 1.0))
    return rises


def is_steadily_decreasing(values: list[float], tolerance: float = 0.0) -> bool:
    """Every epoch lower than the one before by more than `tolerance` (relative)."""
    pairs = list(zip(values, values[1:]))
    return bool(pairs) and all(math.isfinite(a) and math.isfinite(b) and b < a * (1.0 - tolerance) for a, b in pairs)


def half_drops(values: list[float]) -> tuple[float, float]:
    """(drop over the first half of the epochs, drop over the second half); equal drops mean a straight line."""
    middle = (len(values) - 1) / 2.0
    low, high = math.floor(middle), math.ceil(middle)
    mid_value = (values[low] + values[high]) / 2.0
    return values[0] - mid_value, mid_value - values[-1]
