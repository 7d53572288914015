"""Bias and variance: high_variance, trained_too_long and underfitting, read off the train/val curves."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cnnlab.diagnose import capacity, curves, remedies
from cnnlab.diagnose.curves import infer_mode
from cnnlab.diagnose.facts import RunFacts
from cnnlab.diagnose.findings import Finding
from cnnlab.diagnose.prescribe import make_finding

# A 5-point train/val accuracy gap is far above what a well-regularised model shows (LeNet-5 on MNIST: under one
# point) and large enough to matter; at 15 points the model plainly memorises its training set.
GAP_WARNING = 0.05
GAP_CRITICAL = 0.15
# A gap (or a drop from the best epoch) must also exceed 2 binomial standard errors of the validation accuracy
# (~95% one-sided), so a small validation split cannot raise an alarm on noise.
NOISE_Z = 2.0
# Validation loss 20% above its minimum while training loss fell another 20%: the classic overfitting signature
# (Prechelt 1998, "Early stopping - but when?", stops at a generalisation loss of a few percent; 20% is
# unambiguous). The absolute floor ignores a tiny loss creeping up (0.03 -> 0.04 nats on MNIST), which is
# over-confidence on a few images, not lost accuracy.
VAL_LOSS_RISE = 0.20
VAL_LOSS_RISE_MIN = 0.05
TRAIN_LOSS_FALL = 0.20
# The gap in the loss itself (val - train cross-entropy) is the generalisation gap of what training minimises
# (Goodfellow et al. 2016, section 5.2): 0.1 nats with a validation loss 3x the training loss means the model is
# far surer of the images it trained on than of new ones (LeNet-5 on MNIST ends near 0.02 nats and 2x).
LOSS_GAP = 0.1
LOSS_RATIO = 3.0
# Past the best epoch: at least 3 epochs and a quarter of the run before it counts as training too long.
TOO_LONG_MIN_EPOCHS = 3
TOO_LONG_FRACTION = 0.25
# A monitored loss 5% above its best is Prechelt's GL5 stopping point; accuracy needs half a point at least.
LOSS_DEGRADED = 0.05
ACCURACY_DEGRADED = 0.005
# Zhang et al. 2017 ("Understanding deep learning requires rethinking generalization") fit even random labels
# with standard CNNs: a model with enough capacity, epochs and a workable learning rate gets nearly its whole
# training set right. Below 90% it has not fit its own data: high bias.
UNDERFIT_ACCURACY = 0.90
# Still improving: the training loss fell at least 2% in the last epoch, so more epochs would help.
STILL_IMPROVING = 0.02


@dataclass(frozen=True)
class Variance:
    """The train/val gap of a run: at the end, at the best epoch, when it opened, and the val-loss turn."""

    gap_end: float | None
    gap_best: float | None
    loss_gap_end: float | None
    loss_gap_best: float | None
    loss_ratio_end: float | None
    threshold: float
    opened_index: int | None
    turn: dict[str, float] | None

    @property
    def gap_open(self) -> bool:
        return self.gap_end is not None and self.gap_end >= self.threshold

    loss_unit: float = 1.0

    @property
    def loss_turned(self) -> bool:
        turn = self.turn
        return bool(turn) and (
            turn["val_rise"] >= VAL_LOSS_RISE
            and turn["val_loss_end"] - turn["val_loss_min"] >= VAL_LOSS_RISE_MIN * self.loss_unit
            and turn["train_fall"] >= TRAIN_LOSS_FALL
        )

    @property
    def loss_gap_wide(self) -> bool:
        ratio = self.loss_ratio_end
        return (
            self.loss_gap_end is not None
            and self.loss_gap_end >= LOSS_GAP * self.loss_unit
            and ratio is not None
            and (ratio >= LOSS_RATIO)
        )

    @property
    def signals(self) -> int:
        """How many of the three independent signs of variance the run shows."""
        return int(self.gap_open) + int(self.loss_turned) + int(self.loss_gap_wide)

    @property
    def shows(self) -> bool:
        return self.signals > 0


def variance(facts: RunFacts) -> Variance:
    last = facts.last
    noise = NOISE_Z * curves.standard_error(float(last.get("val_accuracy", 0.0) or 0.0), facts.val_size)
    threshold = max(GAP_WARNING, noise)
    return Variance(
        gap_end=curves.accuracy_gap(last),
        gap_best=curves.accuracy_gap(facts.best),
        loss_gap_end=curves.loss_gap(last),
        loss_gap_best=curves.loss_gap(facts.best),
        loss_ratio_end=_loss_ratio(last),
        threshold=threshold,
        opened_index=curves.gap_opened_index(facts.history, threshold),
        turn=curves.val_loss_turn(facts.history),
        loss_unit=loss_unit(facts),
    )


def loss_unit(facts: RunFacts) -> float:
    """The absolute loss floors above are nats of a 10-class cross-entropy (ln 10 at the start); a task without
    a reference loss (detection) measures them in its own loss_scale instead. 1 where the task declares one."""
    if math.isfinite(facts.chance_loss) or not math.isfinite(facts.loss_scale):
        return 1.0
    return facts.loss_scale / math.log(10)


def _loss_ratio(row: dict[str, Any]) -> float | None:
    train, val = row.get("train_loss"), row.get("val_loss")
    if not (curves.is_finite(train) and curves.is_finite(val)) or train <= 0:
        return None
    return float(val) / float(train)


def _points(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} points"


def _percent(value: Any) -> str:
    return f"{100 * float(value):.1f}%"


def _variance_evidence(facts: RunFacts, v: Variance) -> tuple[dict[str, Any], list[str]]:
    """The numbers behind a high-variance finding, and the sentences that quote them."""
    last, epoch_end = facts.last, curves.epoch_of(facts.history, -1)
    evidence: dict[str, Any] = {
        "train_accuracy_end": last.get("train_accuracy"),
        "val_accuracy_end": last.get("val_accuracy"),
        "accuracy_gap_end": v.gap_end,
        "loss_gap_end": v.loss_gap_end,
        "train_loss_end": last.get("train_loss"),
        "val_loss_end": last.get("val_loss"),
        "best_epoch": facts.best_epoch,
        "accuracy_gap_best": v.gap_best,
        "loss_gap_best": v.loss_gap_best,
        "gap_threshold": v.threshold,
        "gap_opened_epoch": None,
        "val_loss_min_epoch": None,
    }
    sentences = [
        f"At the end (epoch {epoch_end}) train accuracy is {_percent(last.get('train_accuracy', 0))} but validation "
        f"{_percent(last.get('val_accuracy', 0))}: a gap of {_points(v.gap_end)} (loss {last.get('train_loss', 0):.3f} "
        f"vs {last.get('val_loss', 0):.3f}); at the best epoch ({facts.best_epoch}) it was {_points(v.gap_best)}."
    ]
    if v.loss_gap_wide:
        evidence["loss_ratio_end"] = v.loss_ratio_end
        sentences.append(f"Validation loss is {v.loss_ratio_end:,.0f}x the training loss.")
    if v.opened_index is not None:
        evidence["gap_opened_epoch"] = curves.epoch_of(facts.history, v.opened_index)
        sentences.append(f"The gap has stayed above {_points(v.threshold)} since epoch {evidence['gap_opened_epoch']}.")
    if v.loss_turned:
        sentences.append(loss_turn_evidence(facts, v, evidence, digits=3))
    return evidence, sentences


def loss_turn_evidence(facts: RunFacts, v: Variance, evidence: dict[str, Any], digits: int) -> str:
    """Where validation loss bottomed and how far it rose since: added to `evidence`, told as one sentence."""
    turn = v.turn
    evidence.update(
        val_loss_min_epoch=curves.epoch_of(facts.history, int(turn["index"])),
        val_loss_min=turn["val_loss_min"],
        val_loss_rise=turn["val_rise"],
        train_loss_fall=turn["train_fall"],
    )
    return (
        f"Validation loss bottomed at {turn['val_loss_min']:.{digits}f} in epoch {evidence['val_loss_min_epoch']} "
        f"and then rose {_percent(turn['val_rise'])} while training loss fell {_percent(turn['train_fall'])}."
    )


def high_variance(facts: RunFacts) -> Finding | None:
    """The model does much better on its training data than on data it has not seen."""
    if not facts.has_validation or not facts.history:
        return None
    v = variance(facts)
    if not v.shows:
        return None
    severe = (v.gap_end or 0.0) >= GAP_CRITICAL or v.signals >= 2
    evidence, sentences = _variance_evidence(facts, v)
    words = (
        "Regularise harder: augment the data, add dropout and weight decay where missing, and stop early; "
        "more training data is the surest cure (see limited_data)."
    )
    return make_finding(
        facts.config,
        "high_variance",
        "critical" if severe else "warning",
        "High variance: the model fits its training data far better than unseen data",
        evidence,
        " ".join(sentences),
        remedies.regularize(facts, stronger=True),
        words,
    )


def degradation(facts: RunFacts) -> tuple[float, bool]:
    """(how much worse the monitored metric is at the end than at its best, whether that exceeds the noise)."""
    monitor = facts.monitor
    best, end = facts.best.get(monitor), facts.last.get(monitor)
    if not (curves.is_finite(best) and curves.is_finite(end)):
        return 0.0, False
    if infer_mode(monitor) == "min":
        worse = float(end) - float(best)
        return worse, worse >= LOSS_DEGRADED * abs(float(best)) and worse >= VAL_LOSS_RISE_MIN / 2
    worse = float(best) - float(end)
    noise = NOISE_Z * curves.standard_error(float(best), facts.val_size)
    return worse, worse >= max(ACCURACY_DEGRADED, noise)


def _seconds_after(facts: RunFacts, index: int) -> float:
    rows = facts.history[index + 1 :]
    return sum(float(r.get("epoch_seconds", 0.0)) + float(r.get("val_seconds", 0.0)) for r in rows)


def trained_too_long(facts: RunFacts) -> Finding | None:
    """Epochs kept running long after the monitored validation metric peaked, and it got worse meanwhile."""
    if not facts.has_validation or facts.best_index is None or facts.monitor is None:
        return None
    patience = facts.regularization.early_stopping_patience
    if patience is not None and patience <= remedies.patience_for(facts):
        return None  # early stopping with a sensible patience is on: it already ends such runs
    past = facts.epochs_run - 1 - facts.best_index
    if past < max(TOO_LONG_MIN_EPOCHS, TOO_LONG_FRACTION * facts.epochs_run):
        return None
    worse, significant = degradation(facts)
    if not (significant or variance(facts).loss_turned):
        return None
    seconds = _seconds_after(facts, facts.best_index)
    evidence = {
        "monitor": facts.monitor,
        "best_epoch": facts.best_epoch,
        "epochs_run": facts.epochs_run,
        "epochs_past_best": past,
        "best_value": facts.best.get(facts.monitor),
        "end_value": facts.last.get(facts.monitor),
        "degradation": worse,
        "seconds_past_best": seconds,
        "early_stopping_patience": patience,
    }
    summary = (
        f"{facts.monitor} was best at epoch {facts.best_epoch} ({facts.best[facts.monitor]:.4f}) and ended at "
        f"{facts.last[facts.monitor]:.4f} after {past} more epochs ({seconds:.0f} s) "
        + ("without early stopping." if patience is None else f"because early stopping waits {patience} epochs.")
    )
    changes = remedies.early_stopping(facts)
    words = (
        f"Stop once {facts.monitor} has not improved for "
        f"{remedies.patience_for(facts)} epochs; the best epoch's weights are restored at the end."
    )
    severity = "warning" if past >= 0.5 * facts.epochs_run else "info"
    return make_finding(
        facts.config,
        "trained_too_long",
        severity,
        "Trained too long past the best epoch",
        evidence,
        summary,
        changes,
        words,
    )


def _fit_accuracy(facts: RunFacts) -> float | None:
    """How well the model fits: the better of final train and best val accuracy (augmentation, dropout and
    mixup make the logged train accuracy understate it)."""
    values = [facts.last.get("train_accuracy"), facts.best_val_accuracy]
    finite = [float(v) for v in values if curves.is_finite(v)]
    return max(finite) if finite else None


def _still_improving(facts: RunFacts) -> bool:
    losses = curves.column(facts.history, "train_loss")
    if len(losses) < 2:
        return True  # one epoch says nothing about a plateau; more epochs are the first thing to try
    before, after = losses[-2], losses[-1]
    return math.isfinite(before) and math.isfinite(after) and after <= before * (1.0 - STILL_IMPROVING)


def _bigger_model(facts: RunFacts) -> dict[str, Any]:
    if facts.input_shape is None or facts.parameters is None:
        return {}
    larger = capacity.larger_models(facts.input_shape, facts.num_classes, facts.parameters)
    return {"model": larger[0][0], "layers": None} if larger else {}


def _trend_words(facts: RunFacts, improving: bool) -> str:
    if facts.epochs_run < 2:
        return "one epoch shows no trend yet."
    return "it was still improving at the end." if improving else "its training loss has levelled off."


def underfitting(facts: RunFacts) -> Finding | None:
    """High bias: the model does not fit even its training data."""
    if not facts.history or curves.first_nonfinite_index(facts.history) is not None:
        return None
    fit = _fit_accuracy(facts)
    if fit is None or fit >= UNDERFIT_ACCURACY:
        return None
    improving = _still_improving(facts)
    critical = fit < max(2 * facts.chance_accuracy, 0.5)
    evidence = {
        "train_accuracy_end": facts.last.get("train_accuracy"),
        "val_accuracy_best": facts.best_val_accuracy,
        "train_loss_end": facts.last.get("train_loss"),
        "chance_accuracy": facts.chance_accuracy,
        "chance_loss": facts.chance_loss,
        "epochs_run": facts.epochs_run,
        "still_improving": improving,
        "accuracy_gap_end": curves.accuracy_gap(facts.last),
    }
    summary = (
        f"After {facts.epochs_run} epoch(s) the model gets only {_percent(fit)} right (train "
        f"{_percent(facts.last.get('train_accuracy', 0))}, best validation "
        f"{_percent(facts.best_val_accuracy or 0)}; chance is {_percent(facts.chance_accuracy)}), with "
        f"train loss {facts.last.get('train_loss', math.nan):.3f} against {facts.chance_loss:.3f} for a uniform "
        "guess; " + _trend_words(facts, improving)
    )
    if improving:
        changes = {"epochs": max(3 * facts.epochs_planned, 10)}
        falling = " (the loss is still falling)" if facts.epochs_run >= 2 else ""
        words = f"Train longer{falling}; if it then levels off below 90%, use a bigger model."
    else:
        changes = _bigger_model(facts)
        words = (
            "Add capacity (a bigger model), train with a larger learning rate, or use less regularization; "
            "training longer will not help a plateau."
        )
    return make_finding(
        facts.config,
        "underfitting",
        "critical" if critical else "warning",
        "Underfitting (high bias): the model does not fit its own training data",
        evidence,
        summary,
        changes,
        words,
    )
