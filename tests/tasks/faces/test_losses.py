"""ArcFace and batch-hard triplet losses on hand-computed 2-D cases (points at known angles on the unit circle)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cnnlab.errors import ConfigError
from cnnlab.tasks.faces.losses import ArcFace, TripletLoss, batch_hard_triplet_loss


def at(*degrees: float) -> torch.Tensor:
    """Unit vectors (N, 2) at these angles."""
    radians = torch.tensor(degrees, dtype=torch.float64).deg2rad()
    return torch.stack([radians.cos(), radians.sin()], 1).float()


def chord(degrees: float) -> float:
    """Euclidean distance between two unit vectors `degrees` apart."""
    return 2 * math.sin(math.radians(degrees) / 2)


def two_class_arcface(scale: float, margin: float) -> ArcFace:
    """Class 0's centre on the x axis, class 1's on the y axis (given unnormalised: the loss normalises)."""
    arcface = ArcFace(2, 2, scale=scale, margin=margin)
    with torch.no_grad():
        arcface.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    return arcface


def cross_entropy(target: float, other: float) -> float:
    return -math.log(math.exp(target) / (math.exp(target) + math.exp(other)))


# -- ArcFace ------------------------------------------------------------------------------------------------------
def test_arcface_hand_computed_logits_loss_and_accuracy():
    s, m = 4.0, 0.5
    arcface = two_class_arcface(s, m)
    # 30 deg from class 0 (its own); 10 deg from class 1 (its own); 80 deg from class 0 but 10 from class 1 (wrong).
    embeddings, labels = at(30, 100, 80), torch.tensor([0, 1, 0])
    t = math.radians
    expected_logits = [
        [s * math.cos(t(30) + m), s * math.cos(t(60))],
        [s * math.cos(t(100)), s * math.cos(t(10) + m)],
        [s * math.cos(t(80) + m), s * math.cos(t(10))],
    ]
    logits = arcface.logits(embeddings, labels)
    assert logits.flatten().tolist() == pytest.approx([v for row in expected_logits for v in row], abs=1e-5)
    loss, stats = arcface(embeddings, labels)
    expected = [cross_entropy(row[label], row[1 - label]) for row, label in zip(expected_logits, [0, 1, 0])]
    assert loss.item() == pytest.approx(sum(expected) / 3, abs=1e-5)
    assert stats["accuracy"].item() == pytest.approx(2 / 3)


def test_arcface_without_margin_is_cross_entropy_on_scaled_cosines():
    torch.manual_seed(0)
    arcface = ArcFace(7, 16, scale=30.0, margin=0.0)
    embeddings, labels = F.normalize(torch.randn(20, 16), dim=1), torch.randint(0, 7, (20,))
    cosines = embeddings @ F.normalize(arcface.weight, dim=1).T
    loss, stats = arcface(embeddings, labels)
    assert loss.item() == pytest.approx(F.cross_entropy(30.0 * cosines, labels).item(), rel=1e-5)
    assert stats["accuracy"].item() == pytest.approx((cosines.argmax(1) == labels).float().mean().item())


def test_arcface_past_pi_uses_the_monotonic_fallback():
    s, m = 1.0, 0.5
    arcface = two_class_arcface(s, m)
    # theta = 170 deg: theta + m = 3.47 rad > pi, where cos(theta + m) would rise again; insightface's
    # cos(theta) - m sin(m) takes over. theta = 145 deg: 2.53 + 0.5 = 3.03 rad < pi, still cos(theta + m).
    logits = arcface.logits(at(170, 145), torch.tensor([0, 0]))
    assert logits[0, 0].item() == pytest.approx(math.cos(math.radians(170)) - 0.5 * math.sin(0.5), abs=1e-6)
    assert logits[1, 0].item() == pytest.approx(math.cos(math.radians(145) + 0.5), abs=1e-6)
    assert logits[0, 0] < logits[1, 0]  # farther from the centre, lower target logit: monotonic across the switch
    assert logits[:, 1].tolist() == pytest.approx([math.cos(math.radians(80)), math.cos(math.radians(55))], abs=1e-6)


def test_arcface_gradients_finite_on_and_opposite_the_centre():
    arcface = two_class_arcface(30.0, 0.5)
    # theta = 0 and theta = pi exactly: 1 - cos^2 = 0, where an unclamped sqrt has an infinite gradient.
    embeddings = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    loss, _ = arcface(embeddings, torch.tensor([0, 0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(embeddings.grad).all() and torch.isfinite(arcface.weight.grad).all()


def test_arcface_weight_is_a_trainable_parameter_in_the_state_dict():
    arcface = ArcFace(5, 8)
    assert list(arcface.state_dict()) == ["weight"] and arcface.weight.shape == (5, 8)
    assert arcface.weight.requires_grad and (arcface.scale, arcface.margin) == (30.0, 0.5)
    with pytest.raises(ConfigError, match="margin"):
        ArcFace(5, 8, margin=2.0)
    with pytest.raises(ConfigError, match="num_classes"):
        ArcFace(1, 8)


# -- batch-hard triplet -------------------------------------------------------------------------------------------
# Identity 0 at 0, 20, 45 deg; identity 1 at 100, 160 deg; identity 2 alone at 200 deg (no positive: no anchor).
POINTS, LABELS = at(0, 20, 45, 100, 160, 200), torch.tensor([0, 0, 0, 1, 1, 2])
# Per anchor, by hand: (hardest positive, hardest negative) as angular gaps in degrees.
HARDEST = [
    (45, 100),  # 0 deg: farthest of its own at 45; nearest other at 100 (200 is 160 away)
    (25, 80),  # 20 deg: 45 is 25 away (farther than 0, 20 away); nearest other at 100
    (45, 55),  # 45 deg: 0 is 45 away; nearest other at 100
    (60, 55),  # 100 deg: 160 is 60 away; 45 is 55 away (200 is 100 away)
    (60, 40),  # 160 deg: 100 is 60 away; 200 is 40 away
]


def test_batch_hard_triplet_hand_computed():
    loss, stats = batch_hard_triplet_loss(POINTS, LABELS, margin=0.2)
    hinges = [max(0.0, chord(p) - chord(n) + 0.2) for p, n in HARDEST]
    assert [h > 0 for h in hinges] == [False, False, True, True, True]
    assert loss.item() == pytest.approx(sum(hinges) / 5, abs=1e-5)
    assert stats["active"].item() == pytest.approx(3 / 5)
    assert stats["anchors"].item() == 5
    assert stats["d_ap"].item() == pytest.approx(sum(chord(p) for p, _ in HARDEST) / 5, abs=1e-5)
    assert stats["d_an"].item() == pytest.approx(sum(chord(n) for _, n in HARDEST) / 5, abs=1e-5)


def test_batch_hard_triplet_soft_margin():
    loss, stats = batch_hard_triplet_loss(POINTS, LABELS, margin=0.2, soft=True)
    soft = [math.log(1 + math.exp(chord(p) - chord(n))) for p, n in HARDEST]
    assert loss.item() == pytest.approx(sum(soft) / 5, abs=1e-5)
    assert stats["active"].item() == pytest.approx(2 / 5)  # the two anchors whose negative is nearer than positive


def test_anchors_without_a_positive_or_negative_are_left_out():
    # More singletons change no anchor's triplet among the others, only add negatives far away.
    extra = torch.cat([POINTS, at(270, 300)]), torch.cat([LABELS, torch.tensor([3, 4])])
    assert batch_hard_triplet_loss(*extra)[0].item() == pytest.approx(batch_hard_triplet_loss(POINTS, LABELS)[0].item())
    for labels in (torch.arange(6), torch.zeros(6, dtype=torch.int64)):  # no positives; no negatives
        points = POINTS.clone().requires_grad_()
        loss, stats = batch_hard_triplet_loss(points, labels)
        loss.backward()
        assert loss.item() == 0.0 and stats["anchors"].item() == 0 and stats["active"].item() == 0.0
        assert (points.grad == 0).all()


def test_triplet_gradients_finite_with_identical_embeddings():
    # Three copies of one point: d = 0 to the positive (anchors 0, 1), to the negative (0, 1, 2), on the diagonal.
    points = at(30, 30, 30, 90).requires_grad_()
    loss, stats = batch_hard_triplet_loss(points, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(points.grad).all()
    # Hardest positives: 0, 0 (each reads 1e-3: the clamp), 60 deg, 60 deg.
    assert stats["d_ap"].item() == pytest.approx(2 * chord(60) / 4, abs=1e-3)


def test_triplet_module_matches_function_and_has_no_parameters():
    module = TripletLoss(margin=0.3)
    assert list(module.parameters()) == []
    assert module(POINTS, LABELS)[0].item() == batch_hard_triplet_loss(POINTS, LABELS, margin=0.3)[0].item()
    with pytest.raises(ConfigError, match="margin"):
        TripletLoss(margin=-0.1)
