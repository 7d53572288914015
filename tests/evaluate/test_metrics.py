import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from cnnlab.evaluate import classification_report


@pytest.mark.parametrize("num_classes", [2, 7, 10])
def test_report_equals_scikit_learn(num_classes):
    generator = torch.Generator().manual_seed(num_classes)
    labels = torch.randint(0, num_classes, (500,), generator=generator)
    logits = torch.randn(500, num_classes, generator=generator)
    logits[torch.arange(500), labels] += 1.0  # better than chance, not perfect
    report = classification_report(logits, labels, [f"c{i}" for i in range(num_classes)])
    predictions = logits.argmax(1).numpy()
    y = labels.numpy()
    assert report.accuracy == pytest.approx(skm.accuracy_score(y, predictions))
    assert np.array_equal(report.confusion, skm.confusion_matrix(y, predictions, labels=range(num_classes)))
    p, r, f, s = skm.precision_recall_fscore_support(y, predictions, labels=range(num_classes), zero_division=0)
    np.testing.assert_allclose(report.per_class["precision"], p)
    np.testing.assert_allclose(report.per_class["recall"], r)
    np.testing.assert_allclose(report.per_class["f1"], f)
    assert report.per_class["support"] == s.tolist()
    assert report.macro_f1 == pytest.approx(skm.f1_score(y, predictions, average="macro", zero_division=0))
    assert report.balanced_accuracy == pytest.approx(skm.balanced_accuracy_score(y, predictions))
    probabilities = torch.softmax(logits, 1).numpy()
    assert report.loss == pytest.approx(skm.log_loss(y, probabilities, labels=range(num_classes)), rel=1e-5)
    if num_classes > 5:
        expected = skm.top_k_accuracy_score(y, logits.numpy(), k=5, labels=range(num_classes))
        assert report.top5_accuracy == pytest.approx(expected)


def test_absent_class_has_zero_scores_not_nan():
    labels = torch.tensor([0, 0, 1, 1])
    logits = torch.tensor([[2.0, 0, 0], [2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0]])
    report = classification_report(logits, labels, ["a", "b", "c"])
    assert report.per_class["precision"][2] == 0.0 and report.per_class["f1"][2] == 0.0
    assert report.per_class["recall"] == [1.0, 0.5, 0.0]


def test_macro_f1_averages_over_classes_seen_in_labels_or_predictions_like_scikit_learn():
    # Class 2 ("c") is in neither the labels nor the predictions; class 3 ("d") is only ever predicted.
    # scikit-learn's macro average runs over the labels in y_true | y_pred, i.e. {0, 1, 3}: the absent class is left
    # out, while the predicted-only class counts with F1 0. Averaging over all four would give 1.3 / 4 = 0.325.
    labels = torch.tensor([0, 0, 1, 1, 1])
    logits = torch.zeros(5, 4)
    logits[torch.arange(5), torch.tensor([0, 0, 1, 0, 3])] = 2.0
    report = classification_report(logits, labels, ["a", "b", "c", "d"])
    y, predictions = labels.numpy(), logits.argmax(1).numpy()
    expected = skm.f1_score(y, predictions, average="macro", zero_division=0)
    assert report.macro_f1 == pytest.approx(expected)
    assert report.macro_f1 == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    assert report.per_class["f1"][2] == 0.0  # still reported per class, just not averaged
