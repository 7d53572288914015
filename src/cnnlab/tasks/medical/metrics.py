"""Clinical classification metrics: ROC-AUC, PR-AUC, an operating point chosen on validation and applied unchanged
to test, calibration (ECE, reliability diagram) and bootstrap confidence intervals.

Written by hand in numpy (float64) so that evaluation needs no scikit-learn at run time; the tests hold every
figure against ``sklearn.metrics``. Conventions, made exact:

- Binary scores are the positive-class probability (any score works for AUC); labels are 0/1. A case is called
  positive when ``score >= threshold``.
- AUC counts a tie between a positive and a negative as half a win (average ranks), which is the trapezoid under
  the ROC that ``roc_auc_score`` integrates. PR-AUC is ``average_precision_score``: the step sum
  ``sum_k (R_k - R_{k-1}) P_k`` over distinct thresholds, not a trapezoid (which overstates it).
- The ROC has one point per distinct score plus ``(0, 0)`` at ``+inf`` (``roc_curve(drop_intermediate=False)``).
- Youden picks the ROC point with the largest ``tpr - fpr`` (the highest threshold among ties); the ``+inf`` point
  is no candidate, so the threshold is always a validation score. ``sensitivity`` picks the highest threshold whose
  validation sensitivity reaches the target (the best specificity that keeps it).
- ECE uses ``n_bins`` equal-width bins ``[i/n, (i+1)/n)`` (the last includes 1). Multi-class: top-label ECE
  (confidence = max probability, accuracy = argmax is right). Binary: on the positive-class probability (accuracy of
  a bin = its fraction of positives), as ``sklearn.calibration.calibration_curve`` draws it.
- Bootstrap: percentile intervals over ``n_boot`` seeded resamples of cases; a resample on which the metric is
  undefined (one class only) is skipped and counted, not redrawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from cnnlab.errors import ConfigError, DataError

RULES = ("youden", "sensitivity")
DEFAULT_BINS = 15
DEFAULT_BOOT = 1000

ArrayLike = Tensor | np.ndarray | list


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _scores(scores: ArrayLike, what: str = "scores") -> np.ndarray:
    s = _np(scores).astype(np.float64)
    if not np.isfinite(s).all():
        raise DataError(f"{what} contain NaN or infinite values (did training diverge?)")
    return s


def _binary(scores: ArrayLike, labels: ArrayLike, need_both: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """1-D float64 scores and bool labels, checked; AUC-like metrics need both classes present."""
    s, y = _scores(scores), _np(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise DataError(f"binary metrics take 1-D scores and labels, got shapes {s.shape} and {y.shape}")
    if len(s) != len(y):
        raise DataError(f"{len(s)} scores for {len(y)} labels: one score per case expected")
    if len(y) and not np.isin(y, (0, 1)).all():
        raise DataError(f"binary labels must be 0 or 1, got values {np.unique(y)[:5].tolist()}")
    y = y.astype(bool)
    if need_both and (y.all() or not y.any()):
        raise DataError(f"only one class present in {len(y)} labels: AUC needs positives and negatives")
    return s, y


def _fmt(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


# ------------------------------------------------------------------------------------------------------ binary


def _counts(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false/true positives at each distinct score, highest first, and those scores."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[ends]
    return 1 + ends - tps, tps, s[ends]


def roc_curve(
    scores: ArrayLike, labels: ArrayLike, drop_intermediate: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), thresholds descending from ``+inf``; ``drop_intermediate`` drops collinear points
    exactly as scikit-learn does (the AUC does not change)."""
    s, y = _binary(scores, labels)
    fps, tps, thresholds = _counts(s, y)
    if drop_intermediate and len(fps) > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps, thresholds = np.r_[0, fps], np.r_[0, tps], np.r_[np.inf, thresholds]
    return fps / fps[-1], tps / tps[-1], thresholds


def _auc(s: np.ndarray, y: np.ndarray) -> float:
    """Mann-Whitney U / (P N) with average ranks for ties (= the ROC trapezoid)."""
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    p = int(y.sum())
    n = len(y) - p
    return float((ranks[y].sum() - p * (p + 1) / 2.0) / (p * n))


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC; a positive-negative tie counts half."""
    return _auc(*_binary(scores, labels))


def pr_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Average precision: precision at each distinct threshold weighted by the recall it adds."""
    s, y = _binary(scores, labels)
    fps, tps, _ = _counts(s, y)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * tps / (tps + fps)))


# --------------------------------------------------------------------------------------- multi-class / label


@dataclass(frozen=True)
class PerLabelAUC:
    """AUC of each column (None where skipped: one class only) and the mean of the others."""

    aucs: list[float | None]
    mean: float
    skipped: int

    def to_dict(self) -> dict:
        return {"aucs": [_fmt(a) for a in self.aucs], "mean": _fmt(self.mean), "skipped": self.skipped}


def _per_column(s: np.ndarray, y: np.ndarray) -> PerLabelAUC:
    aucs: list[float | None] = []
    for column in range(s.shape[1]):
        target = y[:, column]
        aucs.append(_auc(s[:, column], target) if 0 < target.sum() < len(target) else None)
    kept = [a for a in aucs if a is not None]
    if not kept:
        raise DataError(f"every one of {s.shape[1]} columns has one class only: no AUC can be computed")
    return PerLabelAUC(aucs, float(np.mean(kept)), len(aucs) - len(kept))


def multilabel_auc(scores: ArrayLike, targets: ArrayLike) -> PerLabelAUC:
    """Per-label AUC of (N, L) scores against (N, L) 0/1 targets; a label whose test cases are all one class has
    no AUC, so it is skipped, counted in ``skipped``, and left out of the mean."""
    s, t = _scores(scores), _np(targets)
    if s.ndim != 2 or s.shape != t.shape:
        raise DataError(f"multi-label scores and targets must both be (N, L), got {s.shape} and {t.shape}")
    if t.size and not np.isin(t, (0, 1)).all():
        raise DataError("multi-label targets must be 0 or 1")
    return _per_column(s, t.astype(bool))


def multiclass_auc(probs: ArrayLike, labels: ArrayLike) -> PerLabelAUC:
    """One-vs-rest AUC of each class from (N, K) probabilities; ``mean`` is the macro average, equal to
    ``roc_auc_score(multi_class="ovr", average="macro")``. A class absent from ``labels`` is skipped and counted."""
    s, y = _scores(probs, "probabilities"), _np(labels)
    if s.ndim != 2 or y.shape != (len(s),):
        raise DataError(f"multi-class AUC takes (N, K) probabilities and N labels, got {s.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= s.shape[1]):
        raise DataError(f"labels must lie in 0..{s.shape[1] - 1} for {s.shape[1]} probability columns")
    return _per_column(s, y[:, None] == np.arange(s.shape[1])[None, :])


# -------------------------------------------------------------------------------------------- operating point


def choose_threshold(
    scores: ArrayLike, labels: ArrayLike, rule: str = "youden", target_sensitivity: float = 0.95
) -> float:
    """The threshold to choose on validation (never on test): Youden's J, or the target sensitivity kept at the
    best specificity. Cases with ``score >= threshold`` are called positive."""
    if rule not in RULES:
        raise ConfigError(f"threshold rule must be one of {', '.join(RULES)}, got {rule!r}")
    s, y = _binary(scores, labels)
    fps, tps, thresholds = _counts(s, y)
    tpr, fpr = tps / tps[-1], fps / fps[-1]
    if rule == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    if not 0 < target_sensitivity <= 1:
        raise ConfigError(f"target sensitivity must be in (0, 1], got {target_sensitivity}")
    return float(thresholds[int(np.argmax(tpr >= target_sensitivity))])  # tpr reaches 1 at the lowest score


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


@dataclass(frozen=True)
class OperatingPoint:
    """Counts and rates at one threshold (``score >= threshold`` is positive); a rate with no cases is NaN."""

    threshold: float
    tn: int
    fp: int
    fn: int
    tp: int

    @property
    def sensitivity(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def specificity(self) -> float:
        return _ratio(self.tn, self.tn + self.fp)

    @property
    def accuracy(self) -> float:
        return _ratio(self.tp + self.tn, self.tp + self.tn + self.fp + self.fn)

    @property
    def ppv(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def npv(self) -> float:
        return _ratio(self.tn, self.tn + self.fn)

    @property
    def confusion(self) -> list[list[int]]:
        """Rows are the truth (negative, positive), columns the call: sklearn's ``confusion_matrix`` layout."""
        return [[self.tn, self.fp], [self.fn, self.tp]]


def at_threshold(scores: ArrayLike, labels: ArrayLike, threshold: float) -> OperatingPoint:
    """Apply a threshold chosen elsewhere, unchanged; one class only is allowed (its other rates are NaN)."""
    s, y = _binary(scores, labels, need_both=False)
    called = s >= threshold
    tp, fp = int((called & y).sum()), int((called & ~y).sum())
    return OperatingPoint(float(threshold), int((~y).sum()) - fp, fp, int(y.sum()) - tp, tp)


# ------------------------------------------------------------------------------------------------ calibration


@dataclass(frozen=True)
class Calibration:
    """ECE and the reliability diagram: per bin, mean confidence, accuracy (NaN where empty) and case count."""

    ece: float
    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict:
        return {
            "ece": _fmt(self.ece),
            "edges": [float(e) for e in self.edges],
            "confidence": [_fmt(c) for c in self.confidence],
            "accuracy": [_fmt(a) for a in self.accuracy],
            "count": [int(c) for c in self.count],
        }


def calibration(probs: ArrayLike, labels: ArrayLike, n_bins: int = DEFAULT_BINS) -> Calibration:
    """Expected calibration error over equal-width bins: 1-D probs are the positive-class probability against 0/1
    labels; (N, K) probs give the top-label ECE."""
    if n_bins < 1:
        raise ConfigError(f"n_bins must be at least 1, got {n_bins}")
    p = _scores(probs, "probabilities")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise DataError("ECE needs probabilities in [0, 1] (apply softmax or sigmoid to logits first)")
    if p.ndim == 2:
        y = _np(labels)
        if y.shape != (len(p),) or (len(y) and (y.min() < 0 or y.max() >= p.shape[1])):
            raise DataError(f"need {len(p)} labels in 0..{p.shape[1] - 1} for ({len(p)}, {p.shape[1]}) probabilities")
        confidence, hit = p.max(axis=1), (p.argmax(axis=1) == y).astype(np.float64)
    else:
        confidence, y = _binary(p, labels, need_both=False)
        hit = y.astype(np.float64)
    if not len(confidence):
        raise DataError("ECE of no cases is undefined")
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(bins, confidence, n_bins) / count
        acc = np.bincount(bins, hit, n_bins) / count
    gap = np.where(count > 0, np.abs(np.nan_to_num(acc) - np.nan_to_num(conf)), 0.0)
    ece = float(np.sum(count * gap) / len(confidence))
    return Calibration(ece, np.linspace(0.0, 1.0, n_bins + 1), conf, acc, count)


# -------------------------------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class Interval:
    """A percentile bootstrap interval; ``skipped`` resamples had the metric undefined (one class only)."""

    lo: float
    hi: float
    used: int
    skipped: int

    def to_list(self) -> list[float | None]:
        return [_fmt(self.lo), _fmt(self.hi)]


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    scores: ArrayLike,
    labels: ArrayLike,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """Resample cases with replacement ``n_boot`` times (seeded, so the interval repeats) and take the central
    ``level`` of ``metric``; a resample on which ``metric`` raises DataError is skipped and counted."""
    if n_boot < 1 or not 0 < level < 1:
        raise ConfigError(f"bootstrap needs n_boot >= 1 and 0 < level < 1, got {n_boot} and {level}")
    s, y = _scores(scores), _np(labels)
    if len(s) != len(y) or not len(s):
        raise DataError(f"{len(s)} scores for {len(y)} labels: one score per case expected")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        index = rng.integers(0, len(s), len(s))
        try:
            values.append(metric(s[index], y[index]))
        except DataError:
            continue
    if not values:
        raise DataError(f"the metric was undefined on all {n_boot} bootstrap resamples")
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return Interval(float(lo), float(hi), len(values), n_boot - len(values))


# ----------------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class BinaryReport:
    """Test figures at the operating point chosen on validation, with bootstrap intervals over test cases."""

    auc: float
    pr_auc: float
    point: OperatingPoint
    rule: str
    ece: float | None  # None when the scores are not probabilities
    auc_ci: Interval
    accuracy_ci: Interval

    def to_dict(self) -> dict:
        """Plain JSON types (NaN and infinity become None), ready for results.json."""
        p = self.point
        return {
            "auc": _fmt(self.auc),
            "pr_auc": _fmt(self.pr_auc),
            "accuracy": _fmt(p.accuracy),
            "sensitivity": _fmt(p.sensitivity),
            "specificity": _fmt(p.specificity),
            "ppv": _fmt(p.ppv),
            "npv": _fmt(p.npv),
            "threshold": float(p.threshold) if math.isfinite(p.threshold) else None,  # unrounded: reusable
            "rule": self.rule,
            "ece": _fmt(self.ece),
            "auc_ci": self.auc_ci.to_list(),
            "accuracy_ci": self.accuracy_ci.to_list(),
            "bootstrap_skipped": self.auc_ci.skipped,
            "confusion": p.confusion,
        }


def binary_report(
    val_scores: ArrayLike,
    val_labels: ArrayLike,
    test_scores: ArrayLike,
    test_labels: ArrayLike,
    rule: str = "youden",
    target_sensitivity: float = 0.95,
    n_bins: int = DEFAULT_BINS,
    n_boot: int = DEFAULT_BOOT,
    seed: int = 0,
) -> BinaryReport:
    """Choose the threshold on validation, then report test AUC, PR-AUC, the rates at that threshold, ECE and
    95 % intervals; both intervals draw the same resamples (same seed), only AUC skips one-class ones."""
    threshold = choose_threshold(val_scores, val_labels, rule, target_sensitivity)
    s, y = _binary(test_scores, test_labels)
    ece = calibration(s, y, n_bins).ece if s.min() >= 0 and s.max() <= 1 else None

    def accuracy(ss: np.ndarray, yy: np.ndarray) -> float:
        return float(np.mean((ss >= threshold) == yy))

    def auc(ss: np.ndarray, yy: np.ndarray) -> float:
        if yy.all() or not yy.any():
            raise DataError("one class only")
        return _auc(ss, yy)

    return BinaryReport(
        auc=_auc(s, y),
        pr_auc=pr_auc(s, y),
        point=at_threshold(s, y, threshold),
        rule=rule,
        ece=ece,
        auc_ci=bootstrap_ci(auc, s, y, n_boot, seed),
        accuracy_ci=bootstrap_ci(accuracy, s, y, n_boot, seed),
    )
