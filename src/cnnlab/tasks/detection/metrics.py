"""Detection metrics: COCO mAP@0.5 and mAP@[.5:.95], VOC all-point AP@0.5, per-class AP and PR curves.

Written by hand (numpy, vectorised over the ten IoU thresholds) because it runs on the validation split every
epoch, and built to give pycocotools' COCOeval figures exactly (bbox, area range 'all', maxDets=100); the tests
hold it against COCOeval on randomised prediction sets. The pycocotools semantics reproduced here:

- IoU on xywh boxes in float64 with no +1 (``maskApi.c`` ``bbIou``): ``w = min(x1 + w1, x2 + w2) - max(x1, x2)``.
- Per image and per class, detections are sorted by score (stable mergesort on ``-score``) and only the top
  ``max_detections`` of *that class in that image* are kept: the limit is per (image, class), not per image.
- Greedy matching per IoU threshold: each detection, best score first, takes the unmatched ground-truth box of
  highest IoU with ``IoU >= t`` (ties go to the later box, as COCOeval's ``<`` comparison does).
- Per class, detections of all images are merged (stable sort on ``-score``, images in their given order),
  precision is ``tp / (tp + fp + eps)`` made monotone (the envelope), sampled at 101 recall points with
  ``searchsorted(..., side='left')``; points past the last recall reached count as 0.
- A class without ground truth anywhere has no AP (COCOeval's -1) and is left out of the means; a class with
  ground truth but no detections has AP 0. No class with ground truth at all gives means of 0.0.

VOC AP@0.5 uses the same matches at IoU 0.5 (no +1, ``IoU >= 0.5``, no 'difficult' flags: the targets carry
none) with the VOC2010+ all-point interpolation: the area under the precision envelope.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

# The exact threshold arrays of pycocotools' Params.setDetParams (np.linspace, not arange, as it notes).
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


@dataclass
class DetectionReport:
    """Detection quality of one split; ``to_dict`` is what results.json stores."""

    map50: float
    map50_95: float
    voc_map50: float
    per_class: dict[str, dict[str, float]]
    pr_curves: dict[str, tuple[list[float], list[float]]] = field(repr=False)
    precision: float
    recall: float
    score_threshold: float = 0.25

    def to_dict(self) -> dict:
        """JSON-ready: APs of classes without ground truth (NaN here) become null."""

        def clean(value: float | int) -> float | int | None:
            return None if isinstance(value, float) and math.isnan(value) else value

        return {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "voc_map50": self.voc_map50,
            "precision": self.precision,
            "recall": self.recall,
            "per_class": {name: {k: clean(v) for k, v in row.items()} for name, row in self.per_class.items()},
        }


@dataclass
class _ClassAccumulator:
    """Per-image results of one class, merged over images at the end (COCOeval's evalImgs of one category)."""

    scores: list[np.ndarray] = field(default_factory=list)
    matches: list[np.ndarray] = field(default_factory=list)  # (T, d) bool per image
    ground_truth: int = 0


def _as_numpy(value: Tensor | np.ndarray | list, dtype) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=dtype)


def _xywh(boxes_xyxy: np.ndarray) -> np.ndarray:
    """xyxy -> xywh in float64, the form COCO stores and computes IoU on."""
    boxes = boxes_xyxy.astype(np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def box_iou_coco(detections: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """(D, G) IoU of xywh boxes, operation for operation as pycocotools' C ``bbIou`` (so thresholds tie alike)."""
    d = detections[:, None, :]
    g = ground_truth[None, :, :]
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    union = (d[..., 2] * d[..., 3]) + (g[..., 2] * g[..., 3]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def greedy_match(ious: np.ndarray, thresholds: np.ndarray = IOU_THRESHOLDS) -> np.ndarray:
    """(T, D) bool: detection d (rows of ``ious`` in score order) is a true positive at threshold t.

    COCOeval's loop, vectorised over thresholds: a detection takes the unmatched ground truth of highest IoU that
    reaches the threshold; among equal IoUs the last box wins, hence the argmax over the reversed columns.
    """
    num_t, (num_d, num_g) = len(thresholds), ious.shape
    hits = np.zeros((num_t, num_d), dtype=bool)
    if num_d == 0 or num_g == 0:
        return hits
    limits = np.minimum(thresholds, 1 - 1e-10)[:, None]
    reversed_ious = ious[:, ::-1]
    taken = np.zeros((num_t, num_g), dtype=bool)  # in reversed column order
    rows = np.arange(num_t)
    # a detection below the lowest threshold against every box can never match: skip it (most of a weak model's)
    for d in np.flatnonzero(ious.max(axis=1) >= limits[0, 0]):
        row = reversed_ious[d][None, :]
        eligible = ~taken & (row >= limits)
        if not eligible.any():
            continue
        best = np.where(eligible, row, -1.0).argmax(axis=1)
        found = eligible[rows, best]
        taken[rows[found], best[found]] = True
        hits[found, d] = True
    return hits


def _image_class_results(
    pred_boxes: np.ndarray, scores: np.ndarray, gt_boxes: np.ndarray, max_detections: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scores (sorted, top ``max_detections``) and their (T, d) matches for one image and one class."""
    order = np.argsort(-scores, kind="mergesort")[:max_detections]
    scores = scores[order]
    if len(gt_boxes) == 0 or len(order) == 0:
        return scores, np.zeros((len(IOU_THRESHOLDS), len(order)), dtype=bool)
    return scores, greedy_match(box_iou_coco(pred_boxes[order], gt_boxes))


def _coco_precision(matches: np.ndarray, num_gt: int) -> np.ndarray:
    """(T, R) interpolated precision at the 101 recall points (COCOeval.accumulate for one class)."""
    num_t, num_d = matches.shape
    sampled = np.zeros((num_t, len(RECALL_POINTS)))
    if num_d == 0:
        return sampled
    tp = np.cumsum(matches, axis=1).astype(float)
    fp = np.cumsum(~matches, axis=1).astype(float)
    recall = tp / num_gt
    precision = tp / (fp + tp + np.spacing(1))
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    for t in range(num_t):
        index = np.searchsorted(recall[t], RECALL_POINTS, side="left")
        inside = index < num_d
        sampled[t, inside] = envelope[t, index[inside]]
    return sampled


def voc_average_precision(matches: np.ndarray, num_gt: int) -> float:
    """VOC2010+ all-point AP of one class from its score-sorted true-positive flags at one IoU."""
    if len(matches) == 0 or num_gt == 0:
        return 0.0
    tp = np.cumsum(matches).astype(float)
    fp = np.cumsum(~matches).astype(float)
    recall = np.concatenate([[0.0], tp / num_gt, [1.0]])
    precision = np.concatenate([[0.0], tp / np.maximum(tp + fp, np.finfo(np.float64).eps), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def _check_labels(labels: np.ndarray, num_classes: int, what: str, index: int) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{what} {index} has label {int(labels.max())} outside 0..{num_classes - 1}")


def _accumulate(
    predictions: list[dict], targets: list[dict], num_classes: int, max_detections: int
) -> tuple[list[_ClassAccumulator], list[int]]:
    """COCOeval.evaluate: per image, per class present, the sorted scores and their matches."""
    classes = [_ClassAccumulator() for _ in range(num_classes)]
    predicted = [0] * num_classes
    for index, (prediction, target) in enumerate(zip(predictions, targets)):
        gt_labels = _as_numpy(target["labels"], np.int64).reshape(-1)
        gt_boxes = _xywh(_as_numpy(target["boxes"], np.float64))
        pred = prediction or {}
        pred_labels = _as_numpy(pred.get("labels", []), np.int64).reshape(-1)
        pred_boxes = _xywh(_as_numpy(pred.get("boxes", np.zeros((0, 4))), np.float64))
        scores = _as_numpy(pred.get("scores", []), np.float64).reshape(-1)
        _check_labels(gt_labels, num_classes, "target", index)
        _check_labels(pred_labels, num_classes, "prediction", index)
        if not len(pred_labels) == len(pred_boxes) == len(scores):
            raise ValueError(
                f"prediction {index} has {len(pred_boxes)} boxes, {len(scores)} scores, {len(pred_labels)} labels"
            )
        for label in np.union1d(gt_labels, pred_labels):
            gt_of_class = gt_boxes[gt_labels == label]
            mine = pred_labels == label
            class_scores, matches = _image_class_results(pred_boxes[mine], scores[mine], gt_of_class, max_detections)
            accumulator = classes[label]
            accumulator.ground_truth += len(gt_of_class)
            accumulator.scores.append(class_scores)
            accumulator.matches.append(matches)
            predicted[label] += len(class_scores)
    return classes, predicted


def evaluate_detections(
    predictions: list[dict],
    targets: list[dict],
    class_names: list[str],
    *,
    max_detections: int = 100,
    score_threshold: float = 0.25,
) -> DetectionReport:
    """mAPs, per-class AP, PR curves and thresholded precision/recall of ``predictions`` against ``targets``.

    ``predictions[i]`` (``boxes`` xyxy, ``scores``, ``labels``; ``None`` for no detections) belongs to image
    ``targets[i]`` (``boxes``, ``labels``). ``precision``/``recall`` count the detections scoring at least
    ``score_threshold`` as matched at IoU 0.5 (micro over classes): what a user of that threshold sees.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets: one per image expected")
    classes, predicted = _accumulate(predictions, targets, len(class_names), max_detections)

    per_class: dict[str, dict[str, float]] = {}
    pr_curves: dict[str, tuple[list[float], list[float]]] = {}
    sampled_with_gt, voc_aps = [], []
    true_positives = kept = total_gt = 0
    for name, accumulator, count in zip(class_names, classes, predicted):
        scores = np.concatenate(accumulator.scores) if accumulator.scores else np.zeros(0)
        matches = (
            np.concatenate(accumulator.matches, axis=1)
            if accumulator.matches
            else np.zeros((len(IOU_THRESHOLDS), 0), dtype=bool)
        )
        order = np.argsort(-scores, kind="mergesort")
        scores, matches = scores[order], matches[:, order]
        above = scores >= score_threshold
        true_positives += int(matches[0, above].sum())
        kept += int(above.sum())
        total_gt += accumulator.ground_truth
        row: dict[str, float] = {"ground_truth": accumulator.ground_truth, "predictions": count}
        if accumulator.ground_truth == 0:
            row.update(ap50=math.nan, ap50_95=math.nan, voc_ap50=math.nan)
        else:
            sampled = _coco_precision(matches, accumulator.ground_truth)
            voc = voc_average_precision(matches[0], accumulator.ground_truth)
            sampled_with_gt.append(sampled)
            voc_aps.append(voc)
            row.update(ap50=float(sampled[0].mean()), ap50_95=float(sampled.mean()), voc_ap50=voc)
            pr_curves[name] = (RECALL_POINTS.tolist(), sampled[0].tolist())
        per_class[name] = {key: row[key] for key in ("ap50", "ap50_95", "voc_ap50", "ground_truth", "predictions")}

    if sampled_with_gt:
        stacked = np.stack(sampled_with_gt, axis=-1)  # (T, R, K) as COCOeval.eval["precision"][..., 0, -1]
        map50, map50_95, voc_map50 = float(stacked[0].mean()), float(stacked.mean()), float(np.mean(voc_aps))
    else:
        map50 = map50_95 = voc_map50 = 0.0
    return DetectionReport(
        map50=map50,
        map50_95=map50_95,
        voc_map50=voc_map50,
        per_class=per_class,
        pr_curves=pr_curves,
        precision=true_positives / kept if kept else 0.0,
        recall=true_positives / total_gt if total_gt else 0.0,
        score_threshold=score_threshold,
    )


__all__ = ["DetectionReport", "evaluate_detections", "box_iou_coco", "greedy_match", "voc_average_precision"]
