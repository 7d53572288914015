"""Bias and variance of a detection run, read off its train/val loss curves and its val mAP per epoch.

A detection run logs no training mAP (scoring every training image each epoch would cost as much as the epoch),
so the train/val comparison is made on the loss, where the classification rules compare accuracies, and the
validation mAP@0.5 is the score the classification rules read as accuracy. Finding ids are shared with the
classification rules (`underfitting`, `high_variance`), so verdicts, `--write-config` and reports work alike.
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.diagnose import curves, remedies
from cnnlab.diagnose.facts import RunFacts
from cnnlab.diagnose.findings import Finding
from cnnlab.diagnose.prescribe import make_finding
from cnnlab.diagnose.rules_fit import STILL_IMPROVING, Variance, loss_turn_evidence, variance

DETECTION = frozenset({"detection"})
# A detector still gaining 1 point of val mAP@0.5 per epoch at the end was stopped while learning.
MAP_STILL_RISING = 0.01
# Below 0.90 val mAP@0.5 a detector still rising has room to grow (the goal on the digits set is 0.90;
# YOLOv1 reached 0.634 on VOC2007, Ultralytics YOLOv8n 0.76 on raccoon from scratch).
UNDERFIT_RISING_MAP50 = 0.90
# A plateau below 0.5 (half of the objects missed or mislocated at IoU 0.5) with no train/val loss gap is high
# bias; below 0.1 the detector has found next to nothing.
UNDERFIT_PLATEAU_MAP50 = 0.50
CRITICAL_MAP50 = 0.10


def _map_column(facts: RunFacts) -> list[float]:
    return [v for v in curves.column(facts.history, "val_map50") if math.isfinite(v)]


def _rising(facts: RunFacts) -> tuple[bool, bool]:
    """(val mAP@0.5 still rising at the end, training loss still falling at the end)."""
    maps = _map_column(facts)
    losses = [v for v in curves.column(facts.history, "train_loss") if math.isfinite(v)]
    map_rising = len(maps) < 2 or maps[-1] - maps[-2] >= MAP_STILL_RISING
    loss_falling = len(losses) < 2 or losses[-1] <= losses[-2] * (1.0 - STILL_IMPROVING)
    return map_rising, loss_falling


def detection_underfitting(facts: RunFacts) -> Finding | None:
    """The detector has not learnt the task yet: val mAP low, train and val loss close together."""
    best = facts.best_val_map50
    if best is None or not facts.history or curves.first_nonfinite_index(facts.history) is not None:
        return None
    if variance(facts).shows:
        return None  # a wide train/val gap is variance, not bias (detection_variance)
    map_rising, loss_falling = _rising(facts)
    improving = map_rising or loss_falling
    if best >= (UNDERFIT_RISING_MAP50 if improving else UNDERFIT_PLATEAU_MAP50):
        return None
    last = facts.last
    evidence = {
        "val_map50_best": best,
        "val_map50_end": last.get("val_map50"),
        "val_map50_95_end": last.get("val_map50_95"),
        "train_loss_end": last.get("train_loss"),
        "val_loss_end": last.get("val_loss"),
        "epochs_run": facts.epochs_run,
        "map_still_rising": map_rising,
        "loss_still_falling": loss_falling,
    }
    summary = (
        f"After {facts.epochs_run} epoch(s) the best validation mAP@0.5 is {best:.3f} (mAP@0.5:0.95 "
        f"{float(last.get('val_map50_95') or 0.0):.3f} at the end), with train loss "
        f"{float(last.get('train_loss', math.nan)):.4f} and val loss {float(last.get('val_loss', math.nan)):.4f} "
        "close together; "
        + ("it was still improving at the end." if improving else "mAP and training loss have levelled off.")
    )
    if improving:
        changes: dict[str, Any] = {"epochs": max(3 * facts.epochs_planned, 10)}
        words = "Train longer (mAP is still rising); if it then levels off low, use a larger backbone."
    else:
        changes = {}
        words = (
            "Give the detector more capacity (a larger backbone: --backbone resnet18), a higher learning rate, a "
            "larger --image-size for small objects, or less augmentation; training longer will not lift a plateau."
        )
    return make_finding(
        facts.config,
        "underfitting",
        "critical" if best < CRITICAL_MAP50 and not improving else "warning",
        "Underfitting (high bias): the detector has not learnt the task yet",
        evidence,
        summary,
        changes,
        words,
    )


detection_underfitting.tasks = DETECTION  # type: ignore[attr-defined]


def _variance_sentences(facts: RunFacts, v: Variance) -> tuple[dict[str, Any], list[str]]:
    last = facts.last
    evidence: dict[str, Any] = {
        "train_loss_end": last.get("train_loss"),
        "val_loss_end": last.get("val_loss"),
        "loss_gap_end": v.loss_gap_end,
        "loss_ratio_end": v.loss_ratio_end,
        "val_map50_best": facts.best_val_map50,
        "val_map50_end": last.get("val_map50"),
        "best_epoch": facts.best_epoch,
    }
    sentences = [
        f"At the end (epoch {curves.epoch_of(facts.history, -1)}) val loss is {float(last['val_loss']):.4f} "
        f"against train loss {float(last['train_loss']):.4f}"
        + (f" ({v.loss_ratio_end:.1f}x)" if v.loss_ratio_end is not None else "")
        + f"; val mAP@0.5 {float(last.get('val_map50') or 0.0):.3f}, best {facts.best_val_map50 or 0.0:.3f} "
        f"in epoch {facts.best_epoch}."
    ]
    if v.loss_turned and v.turn:
        sentences.append(loss_turn_evidence(facts, v, evidence, digits=4))
    return evidence, sentences


def detection_variance(facts: RunFacts) -> Finding | None:
    """The detector fits its training images far better than the validation images (loss gap, val-loss turn)."""
    if not facts.has_validation or not facts.history or curves.first_nonfinite_index(facts.history) is not None:
        return None
    v = variance(facts)
    if not (v.loss_turned or v.loss_gap_wide):
        return None
    evidence, sentences = _variance_sentences(facts, v)
    words = (
        "Regularise harder: box-aware augmentation (scale, translate, mosaic; flips only where mirrored objects "
        "keep their class), weight decay, and early stopping on val mAP; more annotated images are the surest cure."
    )
    return make_finding(
        facts.config,
        "high_variance",
        "critical" if v.loss_turned and v.loss_gap_wide else "warning",
        "High variance: the detector fits its training images far better than unseen ones",
        evidence,
        " ".join(sentences),
        remedies.regularize(facts, stronger=True),
        words,
    )


detection_variance.tasks = DETECTION  # type: ignore[attr-defined]
