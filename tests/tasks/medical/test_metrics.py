"""Medical metrics against scikit-learn (random and heavily tied scores) and against answers worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.medical.metrics import (
    at_threshold,
    binary_report,
    bootstrap_ci,
    calibration,
    choose_threshold,
    multiclass_auc,
    multilabel_auc,
    pr_auc,
    roc_auc,
    roc_curve,
)


def case(seed: int, n: int = 300, tied: bool = False, prevalence: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Scores loosely separating the classes; ``tied`` rounds them to a handful of values."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(np.int64)
    s = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.2 * y - 0.5)))
    return (np.round(s * 4) / 4 if tied else s), y


CASES = [(seed, tied) for seed in range(4) for tied in (False, True)]


@pytest.mark.parametrize(("seed", "tied"), CASES)
def test_binary_auc_and_average_precision_equal_sklearn(seed, tied):
    s, y = case(seed, tied=tied)
    assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert pr_auc(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert roc_auc(torch.tensor(s), torch.tensor(y)) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


@pytest.mark.parametrize(("seed", "tied"), CASES)
@pytest.mark.parametrize("drop", [False, True])
def test_roc_curve_equals_sklearn(seed, tied, drop):
    s, y = case(seed, tied=tied)
    fpr, tpr, thresholds = roc_curve(s, y, drop_intermediate=drop)
    sk_fpr, sk_tpr, sk_thresholds = sk_roc_curve(y, s, drop_intermediate=drop)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thresholds, sk_thresholds)


def test_all_tied_scores_give_half():
    y = np.array([0, 1, 0, 1, 1])
    assert roc_auc(np.full(5, 0.3), y) == roc_auc_score(y, np.full(5, 0.3)) == 0.5
    assert pr_auc(np.full(5, 0.3), y) == pytest.approx(average_precision_score(y, np.full(5, 0.3)))


@pytest.mark.parametrize("tied", [False, True])
def test_multiclass_ovr_macro_equals_sklearn(tied):
    rng = np.random.default_rng(7)
    n, k = 400, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    if tied:
        logits = np.round(logits)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = multiclass_auc(p, y)
    assert result.mean == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    per_class = roc_auc_score(y, p, multi_class="ovr", average=None)
    np.testing.assert_allclose(result.aucs, per_class, atol=1e-12)
    assert result.skipped == 0


@pytest.mark.parametrize("tied", [False, True])
def test_multilabel_per_label_equals_sklearn_and_skips_one_class_labels(tied):
    rng = np.random.default_rng(3)
    n, labels = 250, 5
    t = (rng.random((n, labels)) < 0.4).astype(np.int64)
    s = rng.normal(size=(n, labels)) + t
    if tied:
        s = np.round(s)
    np.testing.assert_allclose(multilabel_auc(s, t).aucs, roc_auc_score(t, s, average=None), atol=1e-12)
    assert multilabel_auc(s, t).mean == pytest.approx(roc_auc_score(t, s, average="macro"), abs=1e-12)
    t[:, 2] = 0  # no positive for label 2: skipped, counted, left out of the mean
    result = multilabel_auc(s, t)
    assert result.aucs[2] is None and result.skipped == 1
    kept = [c for c in range(labels) if c != 2]
    assert result.mean == pytest.approx(np.mean([roc_auc_score(t[:, c], s[:, c]) for c in kept]), abs=1e-12)
    json.dumps(result.to_dict())


@pytest.mark.parametrize(("seed", "tied"), CASES)
def test_youden_threshold_is_argmax_of_sklearn_roc(seed, tied):
    s, y = case(seed, tied=tied)
    fpr, tpr, thresholds = sk_roc_curve(y, s, drop_intermediate=False)
    assert choose_threshold(s, y, "youden") == thresholds[np.argmax(tpr - fpr)]


@pytest.mark.parametrize(("seed", "tied"), CASES)
@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 1.0])
def test_target_sensitivity_reached_on_validation_then_applied_unchanged_to_test(seed, tied, target):
    s_val, y_val = case(seed, tied=tied)
    s_test, y_test = case(seed + 100, tied=tied)
    t = choose_threshold(s_val, y_val, "sensitivity", target_sensitivity=target)
    val = at_threshold(s_val, y_val, t)
    assert val.sensitivity >= target
    higher = s_val[s_val > t]  # the next threshold up would miss the target: the best specificity is kept
    if len(higher):
        assert at_threshold(s_val, y_val, higher.min()).sensitivity < target
    test = at_threshold(s_test, y_test, t)
    expected = confusion_matrix(y_test, (s_test >= t).astype(int), labels=[0, 1])
    assert test.confusion == expected.tolist()
    (tn, fp), (fn, tp) = expected
    assert test.sensitivity == tp / (tp + fn) and test.specificity == tn / (tn + fp)
    assert test.accuracy == (tp + tn) / len(y_test)
    assert test.ppv == tp / (tp + fp)
    assert test.npv == tn / (tn + fn) if tn + fn else math.isnan(test.npv)  # no case called negative


def test_score_equal_to_threshold_is_positive():
    point = at_threshold([0.2, 0.5, 0.7], [0, 1, 1], 0.5)
    assert point.confusion == [[1, 0], [0, 2]]
    assert math.isnan(at_threshold([0.2, 0.3], [0, 0], 0.5).sensitivity)


def test_ece_by_hand_binary_and_top_label():
    # Binary, 2 bins: [0, .5) holds 0.1, 0.2 (one positive): |0.5 - 0.15| = 0.35 on 2 cases;
    # [.5, 1] holds 0.6, 0.9, 1.0 (all positive): |1 - 0.8333| on 3 cases.
    cal = calibration([0.1, 0.2, 0.6, 0.9, 1.0], [0, 1, 1, 1, 1], n_bins=2)
    assert cal.ece == pytest.approx((2 * 0.35 + 3 * (1 - 2.5 / 3)) / 5)
    assert cal.count.tolist() == [2, 3]
    np.testing.assert_allclose(cal.confidence, [0.15, 2.5 / 3])
    np.testing.assert_allclose(cal.accuracy, [0.5, 1.0])
    # Top label, 10 bins: confidences 0.9 (right), 0.8 (wrong), 0.6, 0.6 (one right); bin 7 empty.
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]])
    cal = calibration(p, [0, 0, 0, 0], n_bins=10)
    assert cal.ece == pytest.approx((abs(1 - 0.9) + abs(0 - 0.8) + 2 * abs(0.5 - 0.6)) / 4)
    assert cal.count[6] == 2 and cal.count[7] == 0 and math.isnan(cal.accuracy[7])
    json.dumps(cal.to_dict())


def test_perfect_calibration_has_zero_ece():
    assert calibration([0.0, 0.0, 1.0], [0, 0, 1], n_bins=5).ece == 0.0


def test_bootstrap_ci_contains_estimate_repeats_with_seed_and_counts_skips():
    s, y = case(1, n=200)
    ci = bootstrap_ci(lambda a, b: roc_auc(a, b), s, y, n_boot=300, seed=5)
    assert ci.lo <= roc_auc(s, y) <= ci.hi and ci.lo < ci.hi
    assert ci == bootstrap_ci(lambda a, b: roc_auc(a, b), s, y, n_boot=300, seed=5)
    assert ci != bootstrap_ci(lambda a, b: roc_auc(a, b), s, y, n_boot=300, seed=6)
    rare = bootstrap_ci(lambda a, b: roc_auc(a, b), [0.1, 0.2, 0.3, 0.9], [0, 0, 0, 1], n_boot=200, seed=0)
    assert rare.skipped > 0 and rare.used + rare.skipped == 200


def test_binary_report_in_plain_json():
    s_val, y_val = case(0, n=400)
    s_test, y_test = case(1, n=400)
    report = binary_report(s_val, y_val, s_test, y_test, rule="sensitivity", target_sensitivity=0.9, n_boot=200)
    d = report.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["auc"] == pytest.approx(roc_auc_score(y_test, s_test), abs=1e-6)
    assert d["pr_auc"] == pytest.approx(average_precision_score(y_test, s_test), abs=1e-6)
    t = choose_threshold(s_val, y_val, "sensitivity", 0.9)
    assert d["threshold"] == pytest.approx(t, abs=1e-6)
    assert d["confusion"] == confusion_matrix(y_test, (s_test >= t).astype(int)).tolist()
    assert d["auc_ci"][0] <= d["auc"] <= d["auc_ci"][1]
    assert d["accuracy_ci"][0] <= d["accuracy"] <= d["accuracy_ci"][1]
    assert 0 <= d["ece"] <= 1
    assert binary_report(s_val, y_val, s_test * 10 - 5, y_test, n_boot=10).ece is None  # logits: no ECE


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: roc_auc([0.1, 0.2, 0.3], [0, 1]), "3 scores for 2 labels"),
        (lambda: roc_auc([0.1, 0.2], [1, 1]), "only one class"),
        (lambda: pr_auc([0.1, 0.2], [0, 0]), "only one class"),
        (lambda: roc_auc([0.1, math.nan], [0, 1]), "NaN"),
        (lambda: roc_auc([0.1, 0.2], [0, 2]), "0 or 1"),
        (lambda: choose_threshold([0.1, 0.2], [0, 0]), "only one class"),
        (lambda: at_threshold([0.1], [0, 1], 0.5), "1 scores for 2 labels"),
        (lambda: multiclass_auc(np.ones((3, 2)) / 2, [0, 1, 2]), "0..1"),
        (lambda: multilabel_auc(np.ones((3, 2)), np.zeros((3, 2))), "one class only"),
        (lambda: calibration([0.5, 1.5], [0, 1]), r"\[0, 1\]"),
        (lambda: calibration([0.5, math.nan], [0, 1]), "NaN"),
        (lambda: calibration(np.ones((2, 2)) / 2, [0, 3]), "labels in 0..1"),
    ],
)
def test_bad_input_raises_data_error(call, match):
    with pytest.raises(DataError, match=match):
        call()


def test_bad_settings_raise_config_error():
    s, y = case(0, n=50)
    with pytest.raises(ConfigError, match="rule"):
        choose_threshold(s, y, "f1")
    with pytest.raises(ConfigError, match="target sensitivity"):
        choose_threshold(s, y, "sensitivity", target_sensitivity=1.5)
    with pytest.raises(ConfigError, match="n_bins"):
        calibration(s, y, n_bins=0)
