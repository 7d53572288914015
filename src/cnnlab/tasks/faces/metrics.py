"""Face recognition metrics on unseen people: verification (ROC, AUC, EER, TAR@FAR), closed-set identification
(top-k with k enrolment images per person) and open-set identification (DIR@FAR, rejection of unknown people).

Written by hand in numpy (float64) so that the evaluation needs no scikit-learn at run time; the tests hold it
against ``sklearn.metrics.roc_curve`` / ``roc_auc_score``. Similarity is cosine: the embeddings are L2-normalised
again here, so the score of a pair is the dot product of unit vectors, as the gallery computes it.

Conventions (what the face literature reports, made exact):

- Pairs are all ``i < j``; genuine = same identity, impostor = different. Beyond ``max_pairs`` of a kind, a
  seeded uniform sample without repetition of that kind is kept (a sample of a million impostor pairs gives
  FAR figures to about 0.1 %-relative; the full set of 13 k images would be 84 M pairs).
- The ROC has one point per distinct score, plus ``(0, 0)`` at threshold ``inf``: ``roc_curve`` with
  ``drop_intermediate=False``, so tied scores make one diagonal step and AUC counts a tie as half a win.
- EER is where FAR = FRR on the ROC interpolated linearly between the two points where ``FAR - FRR`` changes
  sign (the sign is decided on integer counts, so an exact crossing is found exactly).
- TAR@FAR is the highest TPR at a point with FPR <= the target.
- A threshold (``eer_threshold``, ``threshold_at_far``) is put midway between the lowest accepted score and the
  next lower one: it accepts the same validation pairs as the score itself, and does not sit on a sample.
- Identification ranks people by their best cosine over their enrolled images; a tie with another person counts
  against the query (rank = number of other people scoring >= the true one), so collapsed embeddings score 0, not
  1. Top-k is averaged over seeded trials that redraw the enrolment images (and, open-set, the unknown people).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from cnnlab.errors import ConfigError, DataError

DEFAULT_MAX_PAIRS = 1_000_000  # per kind (genuine, impostor): 8 MB of float64 scores
DEFAULT_TRIALS = 5
_SCORE_ROWS = 65_536  # pair rows gathered at once: 2 x 64 MB of float64 at D = 128
_QUERY_ROWS = 2_048  # query rows of a similarity block
RATE_DIGITS = 4
SCORE_DIGITS = 6


def _rate(value: float) -> float:
    return round(float(value), RATE_DIGITS)


def _score(value: float) -> float | None:
    return round(float(value), SCORE_DIGITS) if math.isfinite(value) else None


def _far_key(far: float) -> str:
    return f"{far:g}"


# ---------------------------------------------------------------------------------------------------- inputs


def _as_arrays(embeddings: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 unit rows and int64 labels, checked."""
    x = embeddings.detach().cpu().numpy() if isinstance(embeddings, Tensor) else np.asarray(embeddings)
    y = labels.detach().cpu().numpy() if isinstance(labels, Tensor) else np.asarray(labels)
    if x.ndim != 2:
        raise DataError(f"embeddings must be (N, D), got shape {tuple(x.shape)}")
    if y.shape != (len(x),):
        raise DataError(f"{y.size} labels for {len(x)} embeddings: one identity per embedding expected")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise DataError("embeddings contain NaN or infinite values (did training diverge?)")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12), y.astype(np.int64)


def _check_rate(value: float, what: str) -> float:
    if not 0 < value < 1:
        raise ConfigError(f"{what} must be between 0 and 1 (exclusive), got {value}")
    return float(value)


@dataclass(frozen=True)
class _People:
    """Images grouped by identity: person p owns ``order[starts[p] : starts[p] + counts[p]]`` (ascending)."""

    labels: np.ndarray  # (P,) identity of each person
    order: np.ndarray
    starts: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, labels: np.ndarray) -> _People:
        order = np.argsort(labels, kind="stable")
        identities, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        return cls(identities, order, starts, counts)

    def members(self, person: int) -> np.ndarray:
        return self.order[self.starts[person] : self.starts[person] + self.counts[person]]


# ----------------------------------------------------------------------------------------------------- pairs


@dataclass
class PairScores:
    """Cosine scores of image pairs ``(first[m], second[m])``, ``first < second``, and whether each is genuine."""

    first: np.ndarray
    second: np.ndarray
    scores: np.ndarray
    genuine: np.ndarray
    genuine_total: int  # pairs of that kind before sampling
    impostor_total: int

    @property
    def sampled(self) -> bool:
        return int(self.genuine.sum()) < self.genuine_total or int((~self.genuine).sum()) < self.impostor_total


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)


def _all_genuine(people: _People) -> tuple[np.ndarray, np.ndarray]:
    firsts, seconds = [], []
    for person in range(len(people.labels)):
        members = people.members(person)
        a, b = np.triu_indices(len(members), k=1)
        firsts.append(members[a])
        seconds.append(members[b])
    return _cat(firsts), _cat(seconds)


def _all_impostors(people: _People) -> tuple[np.ndarray, np.ndarray]:
    firsts, seconds = [], []
    for person in range(len(people.labels) - 1):
        members, others = people.members(person), people.order[people.starts[person] + people.counts[person] :]
        a, b = np.repeat(members, len(others)), np.tile(others, len(members))
        firsts.append(np.minimum(a, b))
        seconds.append(np.maximum(a, b))
    return _cat(firsts), _cat(seconds)


def _draw_genuine(people: _People, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` genuine pairs drawn uniformly (with repetition): a person by its share of pairs, then two images."""
    counts = people.counts.astype(np.float64)
    weights = counts * (counts - 1) / 2
    person = rng.choice(len(counts), size=size, p=weights / weights.sum())
    u = rng.integers(0, people.counts[person])
    v = rng.integers(0, people.counts[person] - 1)
    v = v + (v >= u)
    start = people.starts[person]
    return people.order[start + u], people.order[start + v]


def _draw_impostors(people: _People, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ordered pairs of images, those of one person rejected: uniform over impostor pairs."""
    n = len(people.order)
    identity = np.empty(n, dtype=np.int64)
    identity[people.order] = np.repeat(np.arange(len(people.counts)), people.counts)
    a, b = rng.integers(0, n, size), rng.integers(0, n, size)
    keep = identity[a] != identity[b]
    return a[keep], b[keep]


def _draw_unique(draw: Callable, count: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``count`` distinct pairs from repeated draws; used only when the kind has over 4x ``count`` pairs."""
    keys = np.zeros(0, dtype=np.int64)
    while len(keys) < count:
        a, b = draw(rng, 2 * (count - len(keys)) + 64)
        keys = np.unique(np.concatenate([keys, np.minimum(a, b) * n + np.maximum(a, b)]))
    keys = np.sort(rng.permutation(keys)[:count])
    return keys // n, keys % n


def _capped_pairs(
    total: int, max_pairs: int | None, enumerate_all: Callable, draw: Callable, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    if max_pairs is None or total <= max_pairs:
        return enumerate_all()
    if total <= 4 * max_pairs:  # enumerating is cheap, and rejection would redraw many repeats
        first, second = enumerate_all()
        keep = np.sort(rng.choice(total, size=max_pairs, replace=False))
        return first[keep], second[keep]
    return _draw_unique(draw, max_pairs, n, rng)


def _pair_dots(x: np.ndarray, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    scores = np.empty(len(first), dtype=np.float64)
    for start in range(0, len(first), _SCORE_ROWS):
        stop = start + _SCORE_ROWS
        scores[start:stop] = np.einsum("ij,ij->i", x[first[start:stop]], x[second[start:stop]])
    return scores


def pair_scores(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    seed: int = 0,
) -> PairScores:
    """Cosine scores of all pairs ``i < j``, genuine pairs first, each kind capped at ``max_pairs`` by a seeded sample.

    Args:
        embeddings: (N, D) embeddings (normalised again here).
        labels: (N,) identities.
        max_pairs: most pairs kept of each kind (genuine, impostor); ``None`` keeps all.
        seed: seeds the sample, so a run's figures are reproducible.
    """
    x, y = _as_arrays(embeddings, labels)
    if max_pairs is not None and max_pairs < 1:
        raise ConfigError(f"max_pairs must be a positive number of pairs or None, got {max_pairs}")
    people = _People.of(y)
    n = len(y)
    genuine_total = int((people.counts * (people.counts - 1) // 2).sum())
    impostor_total = n * (n - 1) // 2 - genuine_total
    rng = np.random.default_rng(seed)
    genuine = _capped_pairs(
        genuine_total, max_pairs, lambda: _all_genuine(people), lambda r, s: _draw_genuine(people, r, s), n, rng
    )
    impostor = _capped_pairs(
        impostor_total, max_pairs, lambda: _all_impostors(people), lambda r, s: _draw_impostors(people, r, s), n, rng
    )
    first, second = np.concatenate([genuine[0], impostor[0]]), np.concatenate([genuine[1], impostor[1]])
    is_genuine = np.zeros(len(first), dtype=bool)
    is_genuine[: len(genuine[0])] = True
    return PairScores(first, second, _pair_dots(x, first, second), is_genuine, genuine_total, impostor_total)


# ------------------------------------------------------------------------------------------------------- ROC


def roc_counts(scores: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false accepts, true accepts, thresholds) at each distinct score, highest first, after ``(0, 0, inf)``.

    Point m accepts the pairs scoring >= ``thresholds[m]``: ``sklearn.metrics.roc_curve(genuine, scores,
    drop_intermediate=False)`` before its division by the totals.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    genuine = np.asarray(genuine, dtype=bool).reshape(-1)
    if len(scores) != len(genuine):
        raise DataError(f"{len(scores)} scores for {len(genuine)} genuine flags")
    if np.isnan(scores).any():
        raise DataError("pair scores contain NaN")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_genuine = scores[order], genuine[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1] if len(scores) else np.zeros(0, int)
    true_accepts = np.cumsum(sorted_genuine, dtype=np.int64)[last_of_value]
    false_accepts = last_of_value + 1 - true_accepts
    return (
        np.r_[0, false_accepts].astype(np.int64),
        np.r_[0, true_accepts].astype(np.int64),
        np.r_[np.inf, sorted_scores[last_of_value]],
    )


def _operating_thresholds(thresholds: np.ndarray) -> np.ndarray:
    """Per ROC point, a threshold midway to the next lower score (accepts the same pairs; see the module doc)."""
    operating = thresholds.copy()
    operating[:-1] = (thresholds[:-1] + thresholds[1:]) / 2
    if len(thresholds) > 1:  # the (0, 0) point: just above the highest score
        operating[0] = np.nextafter(thresholds[1], np.inf)
    return operating


def _equal_error(false_accepts: np.ndarray, true_accepts: np.ndarray, operating: np.ndarray) -> tuple[float, float]:
    """(EER, its threshold) where FAR - FRR changes sign, interpolated linearly between the two points."""
    impostors, genuines = int(false_accepts[-1]), int(true_accepts[-1])
    gap = false_accepts * genuines - (genuines - true_accepts) * impostors  # (FAR - FRR) * I * G, exact
    k = int(np.argmax(gap >= 0))  # exists: the last point has FAR 1, FRR 0
    fpr = false_accepts / impostors
    if gap[k] == 0:
        return float(fpr[k]), float(operating[k])
    alpha = -gap[k - 1] / (gap[k] - gap[k - 1])
    eer = fpr[k - 1] + alpha * (fpr[k] - fpr[k - 1])
    return float(eer), float(operating[k - 1] + alpha * (operating[k] - operating[k - 1]))


def _far_point(fpr: np.ndarray, far: float) -> int:
    """Index of the highest TPR with FPR <= far (TPR rises with the index, so the last such point)."""
    return int(np.flatnonzero(fpr <= far)[-1])


@dataclass
class VerificationReport:
    """Verification of pairs ("same person?"); ``to_dict`` is what results.json stores (no ROC arrays)."""

    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[float, float]
    threshold_at_far: dict[float, float]
    genuine_pairs: int
    impostor_pairs: int
    genuine_total: int
    impostor_total: int
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)  # thresholds[0] = inf: the (0, 0) point

    @property
    def sampled(self) -> bool:
        return self.genuine_pairs < self.genuine_total or self.impostor_pairs < self.impostor_total

    def to_dict(self) -> dict:
        return {
            "auc": _rate(self.auc),
            "eer": _rate(self.eer),
            "eer_threshold": _score(self.eer_threshold),
            "tar_at_far": {_far_key(far): _rate(tar) for far, tar in self.tar_at_far.items()},
            "threshold_at_far": {_far_key(far): _score(t) for far, t in self.threshold_at_far.items()},
            "genuine_pairs": self.genuine_pairs,
            "impostor_pairs": self.impostor_pairs,
            "sampled": self.sampled,
        }


def verification_from_scores(
    scores: np.ndarray,
    genuine: np.ndarray,
    far_targets: Sequence[float] = (0.01, 0.001),
    genuine_total: int | None = None,
    impostor_total: int | None = None,
) -> VerificationReport:
    """ROC, AUC, EER and TAR@FAR of scored pairs (a protocol's pair list, or ``pair_scores``'s).

    Raises:
        DataError: no genuine or no impostor pair.
    """
    fars = [_check_rate(far, "a FAR target") for far in far_targets]
    false_accepts, true_accepts, thresholds = roc_counts(scores, genuine)
    impostors, genuines = int(false_accepts[-1]), int(true_accepts[-1])
    if impostors == 0 or genuines == 0:
        raise DataError(
            f"verification needs genuine and impostor pairs, got {genuines} and {impostors} "
            "(at least two images of one person and two people)"
        )
    fpr, tpr = false_accepts / impostors, true_accepts / genuines
    operating = _operating_thresholds(thresholds)
    eer, eer_threshold = _equal_error(false_accepts, true_accepts, operating)
    points = {far: _far_point(fpr, far) for far in fars}
    return VerificationReport(
        auc=float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)),  # trapezoids, as sklearn.metrics.auc
        eer=eer,
        eer_threshold=eer_threshold,
        tar_at_far={far: float(tpr[m]) for far, m in points.items()},
        threshold_at_far={far: float(operating[m]) for far, m in points.items()},
        genuine_pairs=genuines,
        impostor_pairs=impostors,
        genuine_total=genuines if genuine_total is None else genuine_total,
        impostor_total=impostors if impostor_total is None else impostor_total,
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
    )


def verification_report(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    far_targets: Sequence[float] = (0.01, 0.001),
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    seed: int = 0,
) -> VerificationReport:
    """Verification over all pairs of ``embeddings`` (each kind capped at ``max_pairs`` by a seeded sample)."""
    pairs = pair_scores(embeddings, labels, max_pairs=max_pairs, seed=seed)
    return verification_from_scores(pairs.scores, pairs.genuine, far_targets, pairs.genuine_total, pairs.impostor_total)


def choose_threshold(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    rule: str = "eer",
    far: float = 0.01,
    max_pairs: int | None = DEFAULT_MAX_PAIRS,
    seed: int = 0,
) -> float:
    """The "same person" cosine threshold chosen on validation people: at the EER, or the lowest one whose FAR is
    at most ``far`` (rule ``"far"``). A pair is the same person when its score is >= the threshold."""
    if rule not in ("eer", "far"):
        raise ConfigError(f"threshold rule must be 'eer' or 'far', got {rule!r}")
    report = verification_report(embeddings, labels, far_targets=(far,), max_pairs=max_pairs, seed=seed)
    return report.eer_threshold if rule == "eer" else report.threshold_at_far[far]


# ------------------------------------------------------------------------------------------- identification


def person_scores(queries: np.ndarray, enrolled: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(Q, P) best cosine of each query over each person's enrolled rows ``enrolled[starts[p] : starts[p + 1]]``."""
    scores = np.empty((len(queries), len(starts)), dtype=np.float64)
    for start in range(0, len(queries), _QUERY_ROWS):
        block = queries[start : start + _QUERY_ROWS] @ enrolled.T
        scores[start : start + _QUERY_ROWS] = np.maximum.reduceat(block, starts, axis=1)
    return scores


def _ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rank of the true person per query: how many other people score at least as high (ties count against)."""
    true_scores = scores[np.arange(len(truth)), truth]
    return (scores >= true_scores[:, None]).sum(axis=1) - 1


@dataclass
class _Gallery:
    """One seeded draw: enrolled rows grouped by person (column p of the scores), probes with their column."""

    enrolled: np.ndarray  # image indices, k per gallery person, in person order
    probes: np.ndarray
    probe_person: np.ndarray  # gallery column of each probe


def _enrol(people: _People, persons: Sequence[int], k: int, rng: np.random.Generator) -> _Gallery:
    enrolled, probes, columns = [], [], []
    for column, person in enumerate(persons):
        drawn = rng.permutation(people.members(person))
        enrolled.append(drawn[:k])
        probes.append(drawn[k:])
        columns.append(np.full(len(drawn) - k, column))
    return _Gallery(_cat(enrolled), _cat(probes), _cat(columns))


def _check_counts(k: int, trials: int) -> None:
    if k < 1:
        raise ConfigError(f"enroll_per_person must be at least 1, got {k}")
    if trials < 1:
        raise ConfigError(f"trials must be at least 1, got {trials}")


@dataclass
class IdentificationReport:
    """Closed-set identification: each query's person is enrolled; top-k = true person among the k best."""

    enroll_per_person: int
    top_accuracy: dict[int, float]
    people: int  # people in the gallery
    queries: int  # per trial
    skipped_people: int  # fewer than enroll_per_person + 1 images
    trials: int

    def to_dict(self) -> dict:
        return {
            "enroll_per_person": self.enroll_per_person,
            **{f"top{top}": _rate(accuracy) for top, accuracy in self.top_accuracy.items()},
            "people": self.people,
            "queries": self.queries,
            "skipped_people": self.skipped_people,
            "trials": self.trials,
        }


def identification_report(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    enroll_per_person: int = 1,
    seed: int = 0,
    top: Sequence[int] = (1, 5),
    trials: int = DEFAULT_TRIALS,
) -> IdentificationReport:
    """Top-k accuracy with ``enroll_per_person`` seeded enrolment images per person, the rest as queries.

    People with fewer than ``enroll_per_person + 1`` images are skipped (counted). Accuracy is the mean over
    ``trials`` seeded draws of the enrolment images; a top-k over more people than the gallery holds is 1.

    Raises:
        DataError: fewer than two people have enough images.
    """
    _check_counts(enroll_per_person, trials)
    x, y = _as_arrays(embeddings, labels)
    people = _People.of(y)
    eligible = np.flatnonzero(people.counts >= enroll_per_person + 1)
    if len(eligible) < 2:
        raise DataError(
            f"identification with {enroll_per_person} enrolment image(s) needs two people with at least "
            f"{enroll_per_person + 1} images, found {len(eligible)}"
        )
    rng = np.random.default_rng(seed)
    starts = np.arange(len(eligible)) * enroll_per_person
    hits = {t: [] for t in top}
    for _ in range(trials):
        gallery = _enrol(people, eligible, enroll_per_person, rng)
        ranks = _ranks(person_scores(x[gallery.probes], x[gallery.enrolled], starts), gallery.probe_person)
        for t in top:
            hits[t].append(float(np.mean(ranks < t)))
    return IdentificationReport(
        enroll_per_person=enroll_per_person,
        top_accuracy={t: float(np.mean(values)) for t, values in hits.items()},
        people=len(eligible),
        queries=len(gallery.probes),
        skipped_people=len(people.counts) - len(eligible),
        trials=trials,
    )


# ---------------------------------------------------------------------------------------------------- open set


@dataclass
class _OpenSetTrial:
    known_best: np.ndarray  # best gallery score of each probe of an enrolled person
    known_correct: np.ndarray  # its best person is the true one (ties count against)
    unknown_best: np.ndarray  # best gallery score of each probe of a person not enrolled
    known_people: int
    unknown_people: int
    skipped_people: int


def _open_set_trials(
    x: np.ndarray, people: _People, k: int, unknown_fraction: float, seed: int, trials: int
) -> Iterator[_OpenSetTrial]:
    """Seeded splits: a fraction of the people out of the gallery (all their images probe it), k images of each
    other person enrolled and the rest probes. The same seed gives the same splits in every function here."""
    count = len(people.counts)
    unknown_count = min(max(round(unknown_fraction * count), 1), count - 1)
    rng = np.random.default_rng(seed)
    for _ in range(trials):
        shuffled = rng.permutation(count)
        unknown, candidates = np.sort(shuffled[:unknown_count]), np.sort(shuffled[unknown_count:])
        known = candidates[people.counts[candidates] >= k + 1]
        if len(known) == 0:
            raise DataError(f"open-set identification needs enrolled people with at least {k + 1} images, found none")
        gallery = _enrol(people, known, k, rng)
        starts = np.arange(len(known)) * k
        enrolled = x[gallery.enrolled]
        known_scores = person_scores(x[gallery.probes], enrolled, starts)
        unknown_probes = _cat([people.members(p) for p in unknown])
        yield _OpenSetTrial(
            known_best=known_scores.max(axis=1),
            known_correct=_ranks(known_scores, gallery.probe_person) == 0,
            unknown_best=person_scores(x[unknown_probes], enrolled, starts).max(axis=1),
            known_people=len(known),
            unknown_people=len(unknown),
            skipped_people=len(candidates) - len(known),
        )


def _prepare_open_set(embeddings, labels, k: int, unknown_fraction: float, trials: int) -> tuple[np.ndarray, _People]:
    _check_counts(k, trials)
    _check_rate(unknown_fraction, "unknown_fraction")
    x, y = _as_arrays(embeddings, labels)
    people = _People.of(y)
    if len(people.counts) < 2:
        raise DataError(f"open-set identification needs at least two people, found {len(people.counts)}")
    return x, people


def detection_identification_rate(
    known_best: np.ndarray, known_correct: np.ndarray, unknown_best: np.ndarray, far: float
) -> tuple[float, float]:
    """(DIR, threshold) at false-alarm rate ``far``: the threshold is the lowest that at most ``far`` of the
    unknown probes reach (score >= threshold); DIR is the fraction of enrolled probes whose best person is the
    true one (``known_correct``) with a best score ``known_best`` >= the threshold."""
    far = _check_rate(far, "a FAR")
    unknown_best = np.asarray(unknown_best, dtype=np.float64)
    if len(unknown_best) == 0:
        raise DataError("DIR@FAR needs probes of people who are not enrolled, got none")
    allowed = math.floor(far * len(unknown_best) + 1e-9)  # < len: far < 1
    threshold = float(np.nextafter(np.sort(unknown_best)[::-1][allowed], np.inf))
    hits = np.asarray(known_correct, dtype=bool) & (np.asarray(known_best, dtype=np.float64) >= threshold)
    return float(hits.mean()) if len(hits) else 0.0, threshold


@dataclass
class OpenSetReport:
    """Open-set identification: DIR@FAR = rate of enrolled probes identified at rank 1 with a score >= the
    threshold at which a fraction FAR of the unknown probes raise a (false) alarm. Counts are per-trial means."""

    enroll_per_person: int
    unknown_fraction: float
    dir_at_far: dict[float, float]
    threshold_at_far: dict[float, float]  # mean over trials
    rank1_rate: float  # DIR with no threshold: the closed-set top-1 of the enrolled probes
    known_people: float
    unknown_people: int  # the same in every trial
    known_probes: float
    unknown_probes: float  # FAR resolution is 1 / unknown_probes
    skipped_people: float
    trials: int

    def to_dict(self) -> dict:
        counts = ("known_people", "known_probes", "unknown_probes", "skipped_people")
        return {
            "enroll_per_person": self.enroll_per_person,
            "unknown_fraction": self.unknown_fraction,
            "dir_at_far": {_far_key(far): _rate(rate) for far, rate in self.dir_at_far.items()},
            "threshold_at_far": {_far_key(far): _score(t) for far, t in self.threshold_at_far.items()},
            "rank1_rate": _rate(self.rank1_rate),
            "unknown_people": self.unknown_people,
            **{name: round(getattr(self, name), 1) for name in counts},
            "trials": self.trials,
        }


def _mean_counts(runs: list[_OpenSetTrial]) -> dict[str, float]:
    return {
        "known_people": float(np.mean([r.known_people for r in runs])),
        "known_probes": float(np.mean([len(r.known_best) for r in runs])),
        "unknown_probes": float(np.mean([len(r.unknown_best) for r in runs])),
        "skipped_people": float(np.mean([r.skipped_people for r in runs])),
    }


def open_set_report(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    enroll_per_person: int = 1,
    unknown_fraction: float = 0.5,
    fars: Sequence[float] = (0.01, 0.1),
    seed: int = 0,
    trials: int = DEFAULT_TRIALS,
) -> OpenSetReport:
    """DIR@FAR with a seeded ``unknown_fraction`` of the people held out of the gallery, averaged over trials.

    Raises:
        DataError: fewer than two people, or no person left to enrol with ``enroll_per_person + 1`` images.
    """
    fars = [_check_rate(far, "a FAR") for far in fars]
    x, people = _prepare_open_set(embeddings, labels, enroll_per_person, unknown_fraction, trials)
    runs = list(_open_set_trials(x, people, enroll_per_person, unknown_fraction, seed, trials))
    rates: dict[float, list[float]] = {far: [] for far in fars}
    thresholds: dict[float, list[float]] = {far: [] for far in fars}
    for run in runs:
        for far in fars:
            rate, threshold = detection_identification_rate(run.known_best, run.known_correct, run.unknown_best, far)
            rates[far].append(rate)
            thresholds[far].append(threshold)
    return OpenSetReport(
        enroll_per_person=enroll_per_person,
        unknown_fraction=unknown_fraction,
        dir_at_far={far: float(np.mean(values)) for far, values in rates.items()},
        threshold_at_far={far: float(np.mean(values)) for far, values in thresholds.items()},
        rank1_rate=float(np.mean([run.known_correct.mean() for run in runs])),
        unknown_people=runs[0].unknown_people,
        trials=trials,
        **_mean_counts(runs),
    )


@dataclass
class OpenSetThresholdReport:
    """What a fixed "same person" threshold (the run's) does in the open set; rates are means over trials."""

    threshold: float
    unknown_rejection_rate: float  # unknown probes whose best score is below the threshold
    false_alarm_rate: float  # 1 - unknown_rejection_rate
    detection_identification_rate: float  # enrolled probes identified at rank 1 with a score >= threshold
    known_rejection_rate: float  # enrolled probes wrongly called unknown (best score below the threshold)
    known_probes: float
    unknown_probes: float
    trials: int

    def to_dict(self) -> dict:
        return {
            "threshold": _score(self.threshold),
            "unknown_rejection_rate": _rate(self.unknown_rejection_rate),
            "false_alarm_rate": _rate(self.false_alarm_rate),
            "detection_identification_rate": _rate(self.detection_identification_rate),
            "known_rejection_rate": _rate(self.known_rejection_rate),
            "known_probes": round(self.known_probes, 1),
            "unknown_probes": round(self.unknown_probes, 1),
            "trials": self.trials,
        }


def open_set_at_threshold(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    threshold: float,
    enroll_per_person: int = 1,
    unknown_fraction: float = 0.5,
    seed: int = 0,
    trials: int = DEFAULT_TRIALS,
) -> OpenSetThresholdReport:
    """Rejection of unknown people and identification of enrolled ones at ``threshold`` (the splits of
    ``open_set_report`` with the same seed)."""
    x, people = _prepare_open_set(embeddings, labels, enroll_per_person, unknown_fraction, trials)
    runs = list(_open_set_trials(x, people, enroll_per_person, unknown_fraction, seed, trials))
    rejected = float(np.mean([np.mean(run.unknown_best < threshold) for run in runs]))
    counts = _mean_counts(runs)
    return OpenSetThresholdReport(
        threshold=float(threshold),
        unknown_rejection_rate=rejected,
        false_alarm_rate=1.0 - rejected,
        detection_identification_rate=float(
            np.mean([np.mean(run.known_correct & (run.known_best >= threshold)) for run in runs])
        ),
        known_rejection_rate=float(np.mean([np.mean(run.known_best < threshold) for run in runs])),
        known_probes=counts["known_probes"],
        unknown_probes=counts["unknown_probes"],
        trials=trials,
    )


# ------------------------------------------------------------------------------------------------------ all


@dataclass
class FaceEvaluation:
    """Everything ``cnnlab faces evaluate`` reports on one split; an entry the data cannot give is None, with
    the reason in ``notes``."""

    verification: VerificationReport
    identification: dict[int, IdentificationReport | None]
    open_set: OpenSetReport | None
    at_threshold: OpenSetThresholdReport | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def plain(report):
            return None if report is None else report.to_dict()

        return {
            "verification": self.verification.to_dict(),
            "identification": {f"k{k}": plain(report) for k, report in self.identification.items()},
            "open_set": plain(self.open_set),
            "open_set_at_threshold": plain(self.at_threshold),
            "notes": list(self.notes),
        }


def evaluate_faces(
    embeddings: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    threshold: float | None = None,
    enroll: Sequence[int] = (1, 3),
    far_targets: Sequence[float] = (0.01, 0.001),
    open_set_fars: Sequence[float] = (0.01, 0.1),
    seed: int = 0,
) -> FaceEvaluation:
    """Verification, closed-set identification for each k in ``enroll``, open set with one enrolment image, and
    the open set at ``threshold`` (the run's stored one) when given."""
    notes: list[str] = []

    def attempt(make):
        try:
            return make()
        except DataError as error:
            notes.append(str(error))
            return None

    return FaceEvaluation(
        verification=verification_report(embeddings, labels, far_targets=far_targets, seed=seed),
        identification={
            k: attempt(lambda k=k: identification_report(embeddings, labels, enroll_per_person=k, seed=seed))
            for k in enroll
        },
        open_set=attempt(lambda: open_set_report(embeddings, labels, fars=open_set_fars, seed=seed)),
        at_threshold=None
        if threshold is None
        else attempt(lambda: open_set_at_threshold(embeddings, labels, threshold, seed=seed)),
        notes=notes,
    )


__all__ = [
    "DEFAULT_MAX_PAIRS",
    "FaceEvaluation",
    "IdentificationReport",
    "OpenSetReport",
    "OpenSetThresholdReport",
    "PairScores",
    "VerificationReport",
    "choose_threshold",
    "detection_identification_rate",
    "evaluate_faces",
    "identification_report",
    "open_set_at_threshold",
    "open_set_report",
    "pair_scores",
    "person_scores",
    "roc_counts",
    "verification_from_scores",
    "verification_report",
]
