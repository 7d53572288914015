"""What a classification run reports beyond accuracy, by label mode: ROC-AUC, PR-AUC, an operating point chosen on
validation and applied unchanged to test, sensitivity/specificity there, calibration and bootstrap intervals.

Label modes (run.json `label_mode`): "binary" (two classes, the positive class is class 1: the second name, e.g.
"pneumonia" after "normal"), "multiclass" (softmax over K > 2), "multilabel" (multi-hot targets, a sigmoid per
label). The numbers come from `cnnlab.tasks.medical.metrics`, which the tests hold against scikit-learn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.errors import DataError
from cnnlab.tasks.medical import metrics as M

LABEL_MODES = ("multiclass", "binary", "multilabel")
DEFAULT_THRESHOLD = 0.5  # binary without a validation split: the argmax call


def label_mode_of(targets: Any, num_classes: int) -> str:
    """From the targets' shape: multi-hot (N, L) -> multilabel; two classes -> binary; else multiclass."""
    if isinstance(targets, torch.Tensor) and targets.ndim == 2:
        return "multilabel"
    return "binary" if num_classes == 2 else "multiclass"


def mode_of(meta: dict[str, Any]) -> str:
    """A run's label mode; runs from before label modes were recorded are binary when they have two classes."""
    return meta.get("label_mode") or ("binary" if len(meta.get("classes", ())) == 2 else "multiclass")


def probabilities(logits: torch.Tensor, mode: str) -> torch.Tensor:
    """Softmax over classes, or an independent sigmoid per label."""
    return torch.sigmoid(logits.float()) if mode == "multilabel" else torch.softmax(logits.float(), dim=1)


def positive_scores(logits: torch.Tensor) -> np.ndarray:
    """The binary score: the probability of class 1."""
    return torch.softmax(logits.float(), dim=1)[:, 1].double().numpy()


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 6)


def _auc_or_none(scores: np.ndarray, labels: np.ndarray) -> float | None:
    try:
        return M.roc_auc(scores, labels)
    except DataError:  # one class only in this split
        return None


def multilabel_loss_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Mean per-label BCE, and per-label accuracy at probability 0.5 averaged over labels and images."""
    targets = targets.float()
    return {
        "loss": float(F.binary_cross_entropy_with_logits(logits.float(), targets)),
        "accuracy": float(((logits > 0) == (targets > 0.5)).double().mean()),
    }


def validation_auc(logits: torch.Tensor, targets: torch.Tensor, mode: str) -> float | None:
    """Binary: the ROC-AUC of class 1; multi-label: the mean over labels with both values present (None when no
    AUC is defined, e.g. a validation split of one class)."""
    if mode == "binary":
        return _auc_or_none(positive_scores(logits), targets.numpy())
    if mode == "multilabel":
        try:
            return _finite(M.multilabel_auc(torch.sigmoid(logits.float()).double().numpy(), targets.numpy()).mean)
        except DataError:
            return None
    return None


# -------------------------------------------------------------------------------------------- operating point


def choose_operating_point(
    logits: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any], target_sensitivity: float | None
) -> dict[str, Any]:
    """The threshold(s) chosen on validation: Youden's J, or the highest threshold reaching `target_sensitivity`.

    Binary: one threshold on P(class 1). Multi-label: one per label (a label that validation holds only one value
    of keeps 0.5). Multi-class: none (the call is the argmax).
    """
    mode = mode_of(meta)
    rule = "sensitivity" if target_sensitivity is not None else "youden"
    common = {"rule": rule, "target_sensitivity": target_sensitivity, "chosen_on": "val"}
    if mode == "binary":
        scores, labels = positive_scores(logits), targets.numpy()
        try:
            threshold = M.choose_threshold(scores, labels, rule, target_sensitivity or 0.95)
        except DataError as error:
            return {**common, "threshold": DEFAULT_THRESHOLD, "rule": "default", "why": str(error)}
        point = M.at_threshold(scores, labels, threshold)
        return {
            **common,
            "threshold": threshold,
            "val_sensitivity": _finite(point.sensitivity),
            "val_specificity": _finite(point.specificity),
        }
    if mode == "multilabel":
        probs, truth = torch.sigmoid(logits.float()).double().numpy(), targets.numpy() > 0.5
        thresholds = []
        for column in range(probs.shape[1]):
            try:
                thresholds.append(
                    M.choose_threshold(probs[:, column], truth[:, column], rule, target_sensitivity or 0.95)
                )
            except DataError:
                thresholds.append(DEFAULT_THRESHOLD)
        return {**common, "thresholds": dict(zip(meta["classes"], thresholds))}
    return {}


# ------------------------------------------------------------------------------------------------ test report


def clinical_report(logits: torch.Tensor, targets: torch.Tensor, meta: dict[str, Any], n_boot: int = 1000) -> dict:
    """The clinical figures of one split, for results.json and `cnnlab evaluate` (see the module docstring)."""
    mode = mode_of(meta)
    calibration = meta.get("calibration") or {}
    if mode == "binary":
        return binary_figures(logits, targets, calibration, n_boot)
    if mode == "multilabel":
        return multilabel_figures(logits, targets, list(meta["classes"]), calibration)
    return multiclass_figures(logits, targets, list(meta["classes"]))


def binary_figures(logits: torch.Tensor, targets: torch.Tensor, calibration: dict, n_boot: int = 1000) -> dict:
    """AUC, PR-AUC, sensitivity/specificity/PPV/NPV and accuracy at the validation threshold, the confusion matrix
    there, ECE with its reliability bins, 95 % bootstrap intervals for AUC and accuracy; `accuracy_argmax` is the
    call at 0.5 (MedMNIST's ACC)."""
    scores, labels = positive_scores(logits), targets.numpy().astype(np.int64)
    threshold = float(calibration.get("threshold", DEFAULT_THRESHOLD))
    rule = calibration.get("rule", "default")
    point = M.at_threshold(scores, labels, threshold)
    out: dict[str, Any] = {
        "auc": None,
        "pr_auc": None,
        "accuracy": _finite(point.accuracy),
        "accuracy_argmax": _finite(float(np.mean((scores >= 0.5) == labels))),
        "sensitivity": _finite(point.sensitivity),
        "specificity": _finite(point.specificity),
        "ppv": _finite(point.ppv),
        "npv": _finite(point.npv),
        "threshold": threshold,
        "threshold_rule": rule,
        "confusion_at_threshold": point.confusion,
    }
    reliability = M.calibration(scores, labels)
    out["ece"] = _finite(reliability.ece)
    out["reliability"] = reliability.to_dict()
    if labels.min() != labels.max():
        out["auc"], out["pr_auc"] = _finite(M.roc_auc(scores, labels)), _finite(M.pr_auc(scores, labels))

        def accuracy(s: np.ndarray, y: np.ndarray) -> float:
            return float(np.mean((s >= threshold) == y))

        def auc(s: np.ndarray, y: np.ndarray) -> float:
            if y.min() == y.max():
                raise DataError("one class only")
            return M.roc_auc(s, y)

        out["auc_ci"] = M.bootstrap_ci(auc, scores, labels, n_boot).to_list()
        out["accuracy_ci"] = M.bootstrap_ci(accuracy, scores, labels, n_boot).to_list()
    return out


def multilabel_figures(logits: torch.Tensor, targets: torch.Tensor, classes: list[str], calibration: dict) -> dict:
    """Per-label AUC and their mean, and per-label sensitivity/specificity at the validation thresholds."""
    probs, truth = torch.sigmoid(logits.float()).double().numpy(), targets.numpy() > 0.5
    try:
        per_label = M.multilabel_auc(probs, truth)
        aucs, mean = per_label.aucs, per_label.mean
    except DataError:  # no label holds both values in this split
        aucs, mean = [None] * len(classes), None
    thresholds = calibration.get("thresholds") or {}
    labels: dict[str, dict[str, Any]] = {}
    for column, name in enumerate(classes):
        threshold = float(thresholds.get(name, DEFAULT_THRESHOLD))
        point = M.at_threshold(probs[:, column], truth[:, column], threshold)
        labels[name] = {
            "auc": _finite(aucs[column]),
            "threshold": threshold,
            "sensitivity": _finite(point.sensitivity),
            "specificity": _finite(point.specificity),
            "positives": int(truth[:, column].sum()),
        }
    return {
        **multilabel_loss_accuracy(logits, targets),
        "auc": _finite(mean),
        "per_label": labels,
        "samples": len(truth),
    }


def multiclass_figures(logits: torch.Tensor, targets: torch.Tensor, classes: list[str]) -> dict:
    """One-vs-rest ROC-AUC per class and their macro mean, per-class sensitivity (recall) and specificity at the
    argmax call, and the top-label ECE."""
    probs, labels = torch.softmax(logits.float(), dim=1).double().numpy(), targets.numpy().astype(np.int64)
    try:
        per_class = M.multiclass_auc(probs, labels)
        aucs, mean = per_class.aucs, per_class.mean
    except DataError:
        aucs, mean = [None] * len(classes), None
    called = probs.argmax(1)
    rows: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(classes):
        point = M.at_threshold((called == k).astype(np.float64), labels == k, 0.5)
        rows[name] = {
            "auc": _finite(aucs[k]),
            "sensitivity": _finite(point.sensitivity),
            "specificity": _finite(point.specificity),
        }
    return {"auc": _finite(mean), "ece": _finite(M.calibration(probs, labels).ece), "per_class": rows}


# ---------------------------------------------------------------------------------------------------- printing


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(interval: list | None) -> str:
    return f" (95% CI {_num(interval[0])}-{_num(interval[1])})" if interval and None not in interval else ""


def format_clinical(scores: dict[str, Any], split: str, classes: list[str]) -> list[str]:
    """The lines `cnnlab train` and `cnnlab evaluate` print for binary and multi-label runs; the last is the
    headline (`test accuracy: …` for binary, `test mean AUC: …` for multi-label)."""
    if "per_label" in scores:
        width = max(len(name) for name in [*scores["per_label"], "label"])
        lines = [f"{'label':<{width}}     AUC  threshold  sensitivity  specificity  positives"]
        for name, row in scores["per_label"].items():
            lines.append(
                f"{name:<{width}}  {_num(row['auc'])}  {row['threshold']:9.4f}  {_num(row['sensitivity']):>11}  "
                f"{_num(row['specificity']):>11}  {row['positives']:9d}"
            )
        return [*lines, f"{split} mean AUC: {_num(scores['auc'])}"]
    negative, positive = (classes + ["0", "1"])[:2] if len(classes) >= 2 else ("0", "1")
    rule = scores.get("threshold_rule", "default")
    chosen = "the argmax call: no threshold was chosen on validation" if rule == "default" else f"{rule} on val"
    (tn, fp), (fn, tp) = scores["confusion_at_threshold"]
    return [
        f"{split} AUC: {_num(scores['auc'])}{_ci(scores.get('auc_ci'))}  PR-AUC: {_num(scores['pr_auc'])}  "
        f"ECE: {_num(scores['ece'])}",
        f"operating point: P({positive}) >= {scores['threshold']:.4f} ({chosen})  "
        f"sensitivity {_num(scores['sensitivity'])}  specificity {_num(scores['specificity'])}  "
        f"PPV {_num(scores['ppv'])}  NPV {_num(scores['npv'])}",
        f"confusion at the threshold: {negative}: {tn} right, {fp} called {positive}; "
        f"{positive}: {tp} right, {fn} missed",
        f"accuracy at 0.5 (argmax): {_num(scores['accuracy_argmax'])}",
        f"{split} accuracy: {_num(scores['accuracy'])}{_ci(scores.get('accuracy_ci'))}",
    ]
