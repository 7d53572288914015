"""Face metrics against scikit-learn's roc_curve / roc_auc_score and against answers worked out by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.faces.metrics import (
    choose_threshold,
    detection_identification_rate,
    evaluate_faces,
    identification_report,
    open_set_at_threshold,
    open_set_report,
    pair_scores,
    verification_from_scores,
    verification_report,
)


def unit(rows) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(rows, dtype=np.float64))
    return torch.nn.functional.normalize(x, dim=1).float()


def clusters(people: int, per_person: int, dim: int = 32, noise: float = 0.1, seed: int = 0):
    """Unit embeddings around one random centre per person, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(people), per_person)
    points = centres[labels] + noise * rng.normal(size=(len(labels), dim)) / math.sqrt(dim)
    return unit(points), torch.as_tensor(labels, dtype=torch.int64)


def reference_eer(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """EER on sklearn's ROC: linear interpolation between the two points where FAR - FRR changes sign."""
    gap = fpr - (1 - tpr)
    k = int(np.flatnonzero(gap >= 0)[0])
    if gap[k] == 0:
        return float(fpr[k])
    t = -gap[k - 1] / (gap[k] - gap[k - 1])
    return float(fpr[k - 1] + t * (fpr[k] - fpr[k - 1]))


def random_scores(seed: int, count: int = 400, tied: bool = False):
    rng = np.random.default_rng(seed)
    genuine = rng.random(count) < 0.3
    scores = rng.normal(size=count) + 1.2 * genuine
    if tied:  # few distinct values: many ties across genuine and impostor
        scores = np.round(scores, 1)
    return scores, genuine


# ---------------------------------------------------------------------------------------------- verification


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_eer_tar_match_sklearn(seed, tied):
    scores, genuine = random_scores(seed, tied=tied)
    report = verification_from_scores(scores, genuine, far_targets=(0.01, 0.05, 0.1, 0.3))
    fpr, tpr, thresholds = roc_curve(genuine, scores, drop_intermediate=False)
    np.testing.assert_allclose(report.fpr, fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(report.tpr, tpr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(report.thresholds, thresholds)
    assert report.auc == pytest.approx(roc_auc_score(genuine, scores), abs=1e-12)
    assert report.eer == pytest.approx(reference_eer(fpr, tpr), abs=1e-12)
    for far, tar in report.tar_at_far.items():
        assert tar == tpr[fpr <= far].max()
    assert (report.genuine_pairs, report.impostor_pairs) == (genuine.sum(), (~genuine).sum())
    if tied:
        assert len(fpr) < len(scores) / 4  # the tie case really has ties


def test_all_scores_tied_is_chance():
    report = verification_from_scores(np.full(10, 0.3), np.arange(10) < 4)
    assert report.auc == pytest.approx(0.5)
    assert report.eer == pytest.approx(0.5)
    assert report.tar_at_far[0.01] == 0.0


def test_eer_exact_crossing_by_hand():
    # ROC: (0,0) (0,1/3) (0,2/3) (1/3,2/3) (2/3,2/3) (2/3,1) (1,1): FAR = FRR = 1/3 at score 0.7
    scores = np.array([0.9, 0.8, 0.3, 0.7, 0.4, 0.2])
    genuine = np.array([True, True, True, False, False, False])
    report = verification_from_scores(scores, genuine, far_targets=(0.01, 0.5))
    assert report.eer == pytest.approx(1 / 3)
    assert report.eer_threshold == pytest.approx(0.55)  # midway between 0.7 (accepted) and 0.4
    assert report.tar_at_far[0.01] == pytest.approx(2 / 3)
    assert report.threshold_at_far[0.01] == pytest.approx(0.75)
    assert report.tar_at_far[0.5] == pytest.approx(2 / 3)  # FAR 1/3 is the last point below 1/2
    assert report.threshold_at_far[0.5] == pytest.approx(0.55)


def test_eer_interpolated_by_hand():
    # G = (0.9, 0.6, 0.55), I = (0.8, 0.5): FAR - FRR is -1/6 at 0.8 (1/2, 1/3) and +1/6 at 0.6 (1/2, 2/3)
    scores = np.array([0.9, 0.6, 0.55, 0.8, 0.5])
    genuine = np.array([True, True, True, False, False])
    report = verification_from_scores(scores, genuine)
    assert report.eer == pytest.approx(0.5)
    # halfway between the operating thresholds of the two points: (0.8 + 0.6) / 2 and (0.6 + 0.55) / 2
    assert report.eer_threshold == pytest.approx((0.7 + 0.575) / 2)


def test_pair_scores_are_all_pairs_with_their_cosine():
    embeddings, labels = clusters(5, 4, noise=0.8, seed=3)
    pairs = pair_scores(embeddings, labels)
    x = embeddings.double().numpy()
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    expected = {(i, j): (x[i] @ x[j], labels[i] == labels[j]) for i, j in itertools.combinations(range(20), 2)}
    assert len(pairs.scores) == len(expected) == 190
    assert pairs.genuine_total == 5 * 6 and pairs.impostor_total == 160 and not pairs.sampled
    for i, j, score, same in zip(pairs.first, pairs.second, pairs.scores, pairs.genuine):
        assert i < j
        assert score == pytest.approx(expected[(i, j)][0], abs=1e-12)
        assert same == expected[(i, j)][1]
    # verification on embeddings = sklearn on the same pairs
    report = verification_report(embeddings, labels)
    fpr, tpr, _ = roc_curve(pairs.genuine, pairs.scores, drop_intermediate=False)
    np.testing.assert_allclose(report.tpr, tpr, atol=1e-15)
    assert report.auc == pytest.approx(roc_auc_score(pairs.genuine, pairs.scores), abs=1e-12)
    assert report.eer == pytest.approx(reference_eer(fpr, tpr), abs=1e-12)


def test_duplicate_images_tie_like_sklearn():
    embeddings, labels = clusters(4, 3, noise=1.0, seed=4)
    embeddings, labels = torch.cat([embeddings, embeddings]), torch.cat([labels, labels])  # exact duplicates
    pairs = pair_scores(embeddings, labels)
    report = verification_report(embeddings, labels, far_targets=(0.05,))
    fpr, tpr, thresholds = roc_curve(pairs.genuine, pairs.scores, drop_intermediate=False)
    assert len(thresholds) < len(pairs.scores)
    np.testing.assert_allclose(report.fpr, fpr, atol=1e-15)
    np.testing.assert_allclose(report.tpr, tpr, atol=1e-15)
    assert report.auc == pytest.approx(roc_auc_score(pairs.genuine, pairs.scores), abs=1e-12)
    assert report.tar_at_far[0.05] == tpr[fpr <= 0.05].max()


@pytest.mark.parametrize("max_pairs", [40, 100, 1500])  # over 4x max_pairs: distinct random draws; else subsample
def test_pairs_capped_by_a_seeded_sample(max_pairs):
    embeddings, labels = clusters(20, 5, seed=5)  # 200 genuine, 4750 impostor pairs
    pairs = pair_scores(embeddings, labels, max_pairs=max_pairs, seed=1)
    assert pairs.sampled and (pairs.genuine_total, pairs.impostor_total) == (200, 4750)
    assert pairs.genuine.sum() == min(max_pairs, 200) and (~pairs.genuine).sum() == max_pairs
    assert (pairs.first < pairs.second).all()
    assert len(set(zip(pairs.first.tolist(), pairs.second.tolist()))) == len(pairs.first)
    same = labels.numpy()[pairs.first] == labels.numpy()[pairs.second]
    np.testing.assert_array_equal(same, pairs.genuine)
    again = pair_scores(embeddings, labels, max_pairs=max_pairs, seed=1)
    np.testing.assert_array_equal(again.first, pairs.first)
    other = pair_scores(embeddings, labels, max_pairs=max_pairs, seed=2)
    assert not np.array_equal(other.first, pairs.first)
    report = verification_report(embeddings, labels, max_pairs=max_pairs)
    assert report.sampled and report.to_dict()["sampled"] is True


def test_perfectly_separated_people():
    embeddings, labels = clusters(8, 4, dim=64, noise=0.05, seed=6)
    report = verification_report(embeddings, labels)
    assert (report.auc, report.eer, report.tar_at_far[0.001]) == (1.0, 0.0, 1.0)
    pairs = pair_scores(embeddings, labels)
    lowest_genuine, highest_impostor = pairs.scores[pairs.genuine].min(), pairs.scores[~pairs.genuine].max()
    assert report.eer_threshold == pytest.approx((lowest_genuine + highest_impostor) / 2)
    assert highest_impostor < choose_threshold(embeddings, labels, rule="eer") <= lowest_genuine
    # the FAR rule takes the lowest threshold that keeps FAR <= 1 %: 4 of the 448 impostor pairs pass it
    threshold = choose_threshold(embeddings, labels, rule="far", far=0.01)
    impostors = np.sort(pairs.scores[~pairs.genuine])[::-1]
    assert len(impostors) == 448 and impostors[4] < threshold < impostors[3]
    top = identification_report(embeddings, labels, enroll_per_person=1)
    assert top.top_accuracy == {1: 1.0, 5: 1.0}


def test_verification_to_dict_is_plain_json():
    report = verification_from_scores(*random_scores(7))
    data = report.to_dict()
    assert set(data) == {
        "auc", "eer", "eer_threshold", "tar_at_far", "threshold_at_far", "genuine_pairs", "impostor_pairs", "sampled"
    }  # fmt: skip
    assert set(data["tar_at_far"]) == {"0.01", "0.001"}
    assert data["eer"] == round(report.eer, 4) and isinstance(data["genuine_pairs"], int)


def test_verification_refuses_one_person_or_singletons():
    with pytest.raises(DataError, match="genuine and impostor"):
        verification_report(unit(np.eye(3)), torch.tensor([0, 0, 0]))
    with pytest.raises(DataError, match="genuine and impostor"):
        verification_report(unit(np.eye(3)), torch.tensor([0, 1, 2]))
    with pytest.raises(DataError, match="labels"):
        verification_report(unit(np.eye(3)), torch.tensor([0, 1]))
    with pytest.raises(ConfigError):
        verification_report(unit(np.eye(3)), torch.tensor([0, 0, 1]), far_targets=(0.0,))
    with pytest.raises(ConfigError):
        choose_threshold(unit(np.eye(3)), torch.tensor([0, 0, 1]), rule="median")


# ------------------------------------------------------------------------------------------ identification


def look_alike_gallery() -> tuple[torch.Tensor, torch.Tensor]:
    """Person 0 has two poses, at 0 and 60 degrees in one plane (two images each); person 4 looks like person 0's
    average, at 30 degrees (four images). People 1-3 are orthogonal to that plane (four identical images each).

    k = 1: person 0 enrols one image; of its three queries the one in the same pose scores 1, the two in the other
    pose score cos 60 = 0.5 to it but cos 30 = 0.87 to person 4: wrong (rank 2). All other queries are right.
    k = 3: any three of person 0's images hold both poses, so its query scores 1: all right.
    """
    plane = [[1, 0], [math.cos(math.pi / 3), math.sin(math.pi / 3)], [math.cos(math.pi / 6), math.sin(math.pi / 6)]]
    rows, labels = [], []
    for angle in (0, 1, 0, 1):
        rows.append(plane[angle] + [0, 0, 0])
        labels.append(0)
    for person in (1, 2, 3):
        rows += [[0, 0] + [float(person == p) for p in (1, 2, 3)]] * 4
        labels += [person] * 4
    rows += [plane[2] + [0, 0, 0]] * 4
    labels += [4] * 4
    return unit(rows), torch.tensor(labels)


def test_identification_k1_and_k3_by_hand():
    embeddings, labels = look_alike_gallery()
    one = identification_report(embeddings, labels, enroll_per_person=1, top=(1, 2, 5), trials=4)
    assert one.top_accuracy[1] == pytest.approx(13 / 15)
    assert one.top_accuracy[2] == 1.0 and one.top_accuracy[5] == 1.0
    assert (one.people, one.queries, one.skipped_people, one.trials) == (5, 15, 0, 4)
    three = identification_report(embeddings, labels, enroll_per_person=3, trials=4)
    assert three.top_accuracy[1] == 1.0 and three.queries == 5
    assert three.to_dict() == {
        "enroll_per_person": 3, "top1": 1.0, "top5": 1.0, "people": 5, "queries": 5, "skipped_people": 0, "trials": 4
    }  # fmt: skip


def test_identification_skips_people_without_enough_images():
    embeddings, labels = look_alike_gallery()
    embeddings = torch.cat([embeddings, unit([[0, 0, 0, 0, 1]])])  # a sixth person with one image
    labels = torch.cat([labels, torch.tensor([5])])
    report = identification_report(embeddings, labels, enroll_per_person=1)
    assert (report.people, report.skipped_people) == (5, 1)
    assert report.top_accuracy[1] == pytest.approx(13 / 15)
    with pytest.raises(DataError, match="two people with at least 5 images"):
        identification_report(embeddings, labels, enroll_per_person=4)


def test_collapsed_embeddings_identify_nobody():
    """Every score tied: ties count against the query, so a collapsed model gets top-1 0, not 1."""
    embeddings = unit(np.ones((12, 4)))
    report = identification_report(embeddings, torch.arange(12) // 3, enroll_per_person=1, top=(1, 4))
    assert report.top_accuracy == {1: 0.0, 4: 1.0}


def test_swapped_person_known_top1():
    """Person 2's images carry person 3's label and the other way round, in the gallery and the queries alike:
    identities are names, so a consistent swap changes nothing. Persons 0 and 5 made one face (the same image
    under two names) tie every one of their queries: those fail at top-1 and pass at top-2, the others stay right."""
    embeddings, labels = clusters(6, 3, dim=64, noise=0.05, seed=8)
    swapped = labels.clone()
    swapped[labels == 2], swapped[labels == 3] = 3, 2
    assert identification_report(embeddings, swapped).top_accuracy[1] == 1.0
    twin = embeddings.clone()
    twin[(labels == 0) | (labels == 5)] = embeddings[0]
    report = identification_report(twin, labels, enroll_per_person=1, top=(1, 2))
    assert report.top_accuracy[1] == pytest.approx(4 / 6)
    assert report.top_accuracy[2] == 1.0


# ---------------------------------------------------------------------------------------------------- open set


def test_dir_at_far_by_hand():
    unknown = np.array([0.9, 0.7, 0.5, 0.3, 0.1, 0.05, 0.0, -0.1, -0.2, -0.3])
    known = np.array([0.95, 0.85, 0.75, 0.7, 0.6, 0.4])
    correct = np.array([True, True, False, True, True, True])
    # FAR 0.01: no unknown may pass, the threshold is just above 0.9 -> 0.95 only
    rate, threshold = detection_identification_rate(known, correct, unknown, 0.01)
    assert rate == pytest.approx(1 / 6) and 0.9 < threshold < 0.9 + 1e-12
    # FAR 0.1: one unknown (0.9) may pass; a known score tied with the second unknown (0.7) would let it pass too
    rate, threshold = detection_identification_rate(known, correct, unknown, 0.1)
    assert rate == pytest.approx(2 / 6) and 0.7 < threshold < 0.7 + 1e-12
    # FAR 0.35: three may pass (floor of 3.5), threshold above 0.3 -> every right known probe
    rate, _ = detection_identification_rate(known, correct, unknown, 0.35)
    assert rate == pytest.approx(5 / 6)


def test_open_set_rejects_unknown_people_at_the_validation_threshold():
    embeddings, labels = clusters(24, 4, dim=64, noise=0.15, seed=9)
    validation, test = labels < 12, labels >= 12
    threshold = choose_threshold(embeddings[validation], labels[validation])
    at = open_set_at_threshold(embeddings[test], labels[test], threshold, trials=3)
    assert at.unknown_rejection_rate == 1.0 and at.false_alarm_rate == 0.0
    assert at.detection_identification_rate == 1.0 and at.known_rejection_rate == 0.0
    assert (at.known_probes, at.unknown_probes) == (6 * 3, 6 * 4)
    # a threshold below every score rejects nobody
    low = open_set_at_threshold(embeddings[test], labels[test], -1.0, trials=3)
    assert low.unknown_rejection_rate == 0.0 and low.detection_identification_rate == 1.0
    report = open_set_report(embeddings[test], labels[test], trials=3)
    assert report.dir_at_far == {0.01: 1.0, 0.1: 1.0} and report.rank1_rate == 1.0
    assert (report.known_people, report.unknown_people, report.skipped_people) == (6, 6, 0)


def test_open_set_report_threshold_holds_its_far_on_the_same_splits():
    embeddings, labels = clusters(30, 5, dim=16, noise=1.2, seed=10)  # noisy: DIR well below 1
    report = open_set_report(embeddings, labels, fars=(0.05, 0.2), trials=1, seed=3)
    for far in (0.05, 0.2):
        at = open_set_at_threshold(embeddings, labels, report.threshold_at_far[far], trials=1, seed=3)
        assert at.false_alarm_rate <= far
        assert at.detection_identification_rate == pytest.approx(report.dir_at_far[far])
    assert report.dir_at_far[0.05] <= report.dir_at_far[0.2] <= report.rank1_rate < 1
    assert report.unknown_probes == 15 * 5 and report.known_probes == 15 * 4
    data = report.to_dict()
    assert set(data["dir_at_far"]) == {"0.05", "0.2"} and data["trials"] == 1


def test_evaluate_faces_collects_everything_and_notes_what_cannot_be_done():
    embeddings, labels = clusters(10, 3, dim=64, noise=0.1, seed=11)  # 3 images each: no k = 3
    result = evaluate_faces(embeddings, labels, threshold=0.5)
    data = result.to_dict()
    assert data["identification"]["k1"]["top1"] == 1.0 and data["identification"]["k3"] is None
    assert "at least 4 images" in data["notes"][0]
    assert data["verification"]["eer"] == 0.0 and data["open_set_at_threshold"]["unknown_rejection_rate"] == 1.0
