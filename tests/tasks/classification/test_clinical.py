"""The clinical figures of binary, multi-class and multi-label runs, held against scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cnnlab.tasks.classification import clinical


def _binary_logits(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) < 0.6).long()
    margin = labels.float() * 1.5 + torch.randn(n, generator=g)
    return torch.stack([torch.zeros(n), margin], 1), labels


def test_binary_threshold_is_chosen_on_val_and_applied_unchanged_to_test():
    val_logits, val_labels = _binary_logits(300, 0)
    test_logits, test_labels = _binary_logits(400, 1)
    meta = {"classes": ["normal", "pneumonia"], "label_mode": "binary"}
    chosen = clinical.choose_operating_point(val_logits, val_labels, meta, None)
    val_scores = torch.softmax(val_logits, 1)[:, 1].numpy()
    fpr, tpr, thresholds = skm.roc_curve(val_labels.numpy(), val_scores)
    assert chosen["threshold"] == pytest.approx(thresholds[np.argmax(tpr - fpr)])
    report = clinical.clinical_report(test_logits, test_labels, {**meta, "calibration": chosen}, n_boot=200)
    scores, y = torch.softmax(test_logits, 1)[:, 1].numpy(), test_labels.numpy()
    called = (scores >= chosen["threshold"]).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, called).ravel()
    assert report["threshold"] == chosen["threshold"]
    assert report["auc"] == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-6)
    assert report["pr_auc"] == pytest.approx(skm.average_precision_score(y, scores), abs=1e-6)
    assert report["sensitivity"] == pytest.approx(tp / (tp + fn), abs=1e-6)
    assert report["specificity"] == pytest.approx(tn / (tn + fp), abs=1e-6)
    assert report["accuracy"] == pytest.approx(skm.accuracy_score(y, called), abs=1e-6)
    assert report["accuracy_argmax"] == pytest.approx(skm.accuracy_score(y, test_logits.argmax(1).numpy()), abs=1e-6)
    assert report["confusion_at_threshold"] == [[tn, fp], [fn, tp]]
    lo, hi = report["auc_ci"]
    assert lo < report["auc"] < hi


def test_a_target_sensitivity_keeps_at_least_that_sensitivity_on_val():
    logits, labels = _binary_logits(500, 2)
    chosen = clinical.choose_operating_point(logits, labels, {"classes": ["a", "b"]}, 0.95)
    assert chosen["rule"] == "sensitivity" and chosen["val_sensitivity"] >= 0.95
    scores = torch.softmax(logits, 1)[:, 1].numpy()
    assert skm.recall_score(labels.numpy(), scores >= chosen["threshold"]) >= 0.95


def test_multiclass_macro_auc_and_per_class_specificity():
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (300,), generator=g)
    logits = torch.randn(300, 4, generator=g) + 1.2 * torch.nn.functional.one_hot(labels, 4)
    report = clinical.clinical_report(logits, labels, {"classes": list("abcd"), "label_mode": "multiclass"})
    probs = torch.softmax(logits, 1).numpy()
    assert report["auc"] == pytest.approx(skm.roc_auc_score(labels.numpy(), probs, multi_class="ovr"), abs=1e-6)
    matrix = skm.confusion_matrix(labels.numpy(), probs.argmax(1))
    tn = matrix.sum() - matrix[:, 1].sum() - matrix[1].sum() + matrix[1, 1]
    assert report["per_class"]["b"]["specificity"] == pytest.approx(tn / (matrix.sum() - matrix[1].sum()), abs=1e-6)


def test_multilabel_per_label_auc_and_mean():
    g = torch.Generator().manual_seed(4)
    targets = (torch.rand(200, 3, generator=g) < 0.3).float()
    logits = torch.randn(200, 3, generator=g) + 2 * targets
    report = clinical.clinical_report(logits, targets, {"classes": ["x", "y", "z"], "label_mode": "multilabel"})
    probs = torch.sigmoid(logits).numpy()
    per_label = [skm.roc_auc_score(targets[:, k].numpy(), probs[:, k]) for k in range(3)]
    assert [report["per_label"][n]["auc"] for n in "xyz"] == pytest.approx(per_label, abs=1e-6)
    assert report["auc"] == pytest.approx(skm.roc_auc_score(targets.numpy(), probs, average="macro"), abs=1e-6)


def test_label_mode_comes_from_the_targets_shape():
    assert clinical.label_mode_of(torch.zeros(4, 3), 3) == "multilabel"
    assert clinical.label_mode_of(torch.zeros(4, dtype=torch.long), 2) == "binary"
    assert clinical.label_mode_of(torch.zeros(4, dtype=torch.long), 5) == "multiclass"
