"""Class weights, focal loss and the balanced sampler, against torch/torchvision/scikit-learn references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torchvision.ops import sigmoid_focal_loss

from cnnlab.data.samplers import BalancedBatchSampler, balanced_weights
from cnnlab.errors import ConfigError
from cnnlab.tasks.classification.losses import ClassificationLoss, parse_class_weights, softmax_focal_loss


def test_balanced_weights_equal_scikit_learns():
    labels = np.array([0] * 90 + [1] * 10 + [2] * 30)
    weights = parse_class_weights("balanced", np.bincount(labels).tolist(), len(labels), ["a", "b", "c"], False)
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    assert torch.allclose(weights.double(), torch.from_numpy(expected), atol=1e-6)


def test_multilabel_balanced_weights_are_negatives_over_positives():
    weights = parse_class_weights("balanced", [10, 50], 100, ["x", "y"], True)
    assert weights.tolist() == pytest.approx([9.0, 1.0])


def test_explicit_weights_and_their_errors():
    assert parse_class_weights("1,3", [5, 5], 10, ["a", "b"], False).tolist() == [1.0, 3.0]
    with pytest.raises(ConfigError, match="class_weights: 3 weights for 2 classes"):
        parse_class_weights("1,2,3", [5, 5], 10, ["a", "b"], False)
    with pytest.raises(ConfigError, match="class 'b' has no training images"):
        parse_class_weights("balanced", [5, 0], 5, ["a", "b"], False)


def test_focal_with_gamma_zero_is_cross_entropy_weighted_or_not():
    torch.manual_seed(0)
    logits, target = torch.randn(32, 4), torch.randint(0, 4, (32,))
    weight = torch.tensor([1.0, 2.0, 0.5, 3.0])
    assert torch.allclose(softmax_focal_loss(logits, target, 0.0), F.cross_entropy(logits, target), atol=1e-6)
    assert torch.allclose(
        softmax_focal_loss(logits, target, 0.0, weight), F.cross_entropy(logits, target, weight=weight), atol=1e-6
    )
    smoothed = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(softmax_focal_loss(logits, target, 0.0, label_smoothing=0.1), smoothed, atol=1e-6)


def test_focal_down_weights_easy_examples_by_one_minus_p_to_gamma():
    logits, target = torch.tensor([[4.0, 0.0], [0.0, 0.5]]), torch.tensor([0, 1])
    p_true = torch.softmax(logits, 1)[torch.arange(2), target]
    expected = (-((1 - p_true) ** 2) * p_true.log()).mean()
    assert torch.allclose(softmax_focal_loss(logits, target, 2.0), expected, atol=1e-6)


def test_multilabel_focal_equals_torchvisions_sigmoid_focal_loss():
    torch.manual_seed(1)
    logits, target = torch.randn(16, 5), (torch.rand(16, 5) > 0.7).float()
    loss = ClassificationLoss(multilabel=True, focal_gamma=2.0)(logits, target)
    assert torch.allclose(loss, sigmoid_focal_loss(logits, target, alpha=-1, gamma=2.0, reduction="mean"), atol=1e-6)
    plain = ClassificationLoss(multilabel=True)(logits, target)
    assert torch.allclose(plain, F.binary_cross_entropy_with_logits(logits, target), atol=1e-6)


def test_balanced_sampler_draws_classes_about_equally_and_repeats_with_a_seed():
    labels = torch.tensor([0] * 900 + [1] * 100)
    sampler = BalancedBatchSampler(balanced_weights(labels), 64)
    batches = list(sampler.batches(torch.Generator().manual_seed(0)))
    assert len(batches) == len(sampler) == 16 and sum(len(b) for b in batches) == 1000
    drawn = labels[torch.cat(batches)]
    assert 0.45 < drawn.float().mean() < 0.55  # 10 % of the data, about half of the draws
    again = list(sampler.batches(torch.Generator().manual_seed(0)))
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_balanced_weights_for_multi_hot_targets_follow_the_rarest_positive_label():
    targets = torch.tensor([[1, 0], [1, 0], [1, 1], [0, 0]], dtype=torch.float32)
    assert balanced_weights(targets).tolist() == pytest.approx([1 / 3, 1 / 3, 1.0, 1.0])
