"""mAP against answers known by hand and against pycocotools' COCOeval on randomised prediction sets."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from cnnlab.tasks.detection.metrics import evaluate_detections

CLASSES = ["cat", "dog", "bird"]


def target(boxes, labels) -> dict:
    return {
        "boxes": torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4),
        "labels": torch.as_tensor(np.asarray(labels, dtype=np.int64)).reshape(-1),
    }


def prediction(boxes, scores, labels) -> dict:
    return {**target(boxes, labels), "scores": torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(-1)}


def xywh(box) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_reference(predictions, targets, num_classes) -> tuple[float, float]:
    """(mAP@0.5, mAP@[.5:.95]) by COCOeval on the same sets, built in memory."""
    images = [{"id": i + 1, "width": 640, "height": 640} for i in range(len(targets))]
    annotations = []
    for i, t in enumerate(targets):
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist()):
            w, h = xywh(box)[2:]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1, "bbox": xywh(box),
                 "area": w * h, "iscrowd": 0}
            )  # fmt: skip
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": k + 1, "name": str(k)} for k in range(num_classes)]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        results = [
            {"image_id": i + 1, "category_id": label + 1, "bbox": xywh(box), "score": score}
            for i, p in enumerate(predictions)
            for box, label, score in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist())
        ]
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[1]), float(evaluator.stats[0])


def voc_reference(predictions, targets, label) -> float:
    """Plain-loop all-point VOC AP of one class, matching at IoU >= 0.5 greedily to the best unmatched box."""
    detections = []
    for i, p in enumerate(predictions):
        for box, lab, score in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
            if lab == label:
                detections.append((score, i, box))
    truth = {i: [b for b, lab in zip(t["boxes"].tolist(), t["labels"].tolist()) if lab == label]
             for i, t in enumerate(targets)}  # fmt: skip
    used = {i: [False] * len(b) for i, b in truth.items()}
    npos = sum(len(b) for b in truth.values())
    detections.sort(key=lambda d: -d[0])  # stable, like mergesort
    flags = []
    for _, i, box in detections:
        best, best_iou = -1, 0.5
        for g, gbox in enumerate(truth[i]):
            if used[i][g]:
                continue
            a, b = xywh(box), xywh(gbox)
            w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
            h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
            iou = 0.0 if w <= 0 or h <= 0 else w * h / (a[2] * a[3] + b[2] * b[3] - w * h)
            if iou >= best_iou:
                best, best_iou = g, iou
        if best >= 0:
            used[i][best] = True
        flags.append(best >= 0)
    tp = fp = 0
    recalls, precisions = [0.0], [0.0]
    for flag in flags:
        tp, fp = tp + flag, fp + (not flag)
        recalls.append(tp / npos)
        precisions.append(tp / (tp + fp))
    recalls.append(1.0)
    precisions.append(0.0)
    for k in range(len(precisions) - 2, -1, -1):
        precisions[k] = max(precisions[k], precisions[k + 1])
    return sum((recalls[k + 1] - recalls[k]) * precisions[k + 1] for k in range(len(recalls) - 1))


# ---------------------------------------------------------------- known answers


def test_perfect_predictions_score_one():
    targets = [target([[10, 10, 50, 50], [60, 60, 90, 100]], [0, 1]), target([[5, 5, 30, 40]], [2])]
    predictions = [prediction(t["boxes"], [0.9] * len(t["labels"]), t["labels"]) for t in targets]
    report = evaluate_detections(predictions, targets, CLASSES)
    assert report.map50 == pytest.approx(1.0)
    assert report.map50_95 == pytest.approx(1.0)
    assert report.voc_map50 == pytest.approx(1.0)
    assert report.precision == 1.0 and report.recall == 1.0
    assert report.per_class["dog"] == {"ap50": pytest.approx(1.0), "ap50_95": pytest.approx(1.0),
                                       "voc_ap50": pytest.approx(1.0), "ground_truth": 1, "predictions": 1}  # fmt: skip
    recall, precision = report.pr_curves["cat"]
    assert len(recall) == len(precision) == 101 and min(precision) == pytest.approx(1.0)


def test_right_boxes_wrong_classes_score_zero():
    targets = [target([[10, 10, 50, 50], [60, 60, 90, 100]], [0, 1])]
    predictions = [prediction([[10, 10, 50, 50], [60, 60, 90, 100]], [0.9, 0.8], [1, 2])]
    report = evaluate_detections(predictions, targets, CLASSES)
    assert report.map50 == 0.0 and report.map50_95 == 0.0 and report.voc_map50 == 0.0
    assert report.precision == 0.0 and report.recall == 0.0
    # bird has predictions but no ground truth: no AP, left out of the mean (the mean is over cat and dog)
    assert math.isnan(report.per_class["bird"]["ap50"]) and report.per_class["bird"]["predictions"] == 1
    assert report.to_dict()["per_class"]["bird"]["ap50"] is None
    json.dumps(report.to_dict())


def test_one_of_two_found_at_iou_0_6():
    # ground truth 100x100; the prediction shifted 25 px: intersection 75*100, union 125*100 -> IoU 0.6 exactly
    targets = [target([[0, 0, 100, 100], [200, 200, 300, 300]], [0, 0])]
    predictions = [prediction([[25, 0, 125, 100]], [0.9], [0])]
    report = evaluate_detections(predictions, targets, CLASSES)
    # precision 1 up to recall 0.5: recall points 0.00..0.50 (51 of 101) -> AP50 = 51/101
    assert report.map50 == pytest.approx(51 / 101, abs=1e-12)
    # matched at thresholds 0.50, 0.55, 0.60 (IoU >= t), missed at 0.65..0.95 -> 3 of 10
    assert report.map50_95 == pytest.approx(3 / 10 * 51 / 101, abs=1e-12)
    assert report.voc_map50 == pytest.approx(0.5)
    assert report.precision == 1.0 and report.recall == 0.5
    assert report.map50 == pytest.approx(coco_reference(predictions, targets, 3)[0], abs=1e-12)


def test_duplicates_are_false_positives():
    targets = [target([[0, 0, 100, 100]], [0])]
    # the best-scoring duplicate takes the box; the next two are false positives
    predictions = [prediction([[0, 0, 100, 100], [1, 1, 100, 100], [2, 2, 100, 100]], [0.9, 0.8, 0.7], [0, 0, 0])]
    report = evaluate_detections(predictions, targets, CLASSES)
    assert report.map50 == pytest.approx(1.0)  # the true positive comes first: precision 1 at recall 1
    assert report.precision == pytest.approx(1 / 3) and report.recall == 1.0
    # now the duplicates score higher than the exact box: at recall 1 precision is 1/3
    predictions = [prediction([[0, 0, 100, 100], [1, 1, 100, 100], [2, 2, 100, 100]], [0.7, 0.9, 0.8], [0, 0, 0])]
    report = evaluate_detections(predictions, targets, CLASSES)
    assert report.map50 == pytest.approx(1.0)  # [1,1,100,100] has IoU 0.98: it is the match, the others are FPs
    predictions = [prediction([[0, 0, 100, 100], [50, 50, 150, 150], [60, 60, 160, 160]], [0.7, 0.9, 0.8], [0, 0, 0])]
    report = evaluate_detections(predictions, targets, CLASSES)
    assert report.map50 == pytest.approx(1 / 3, abs=1e-12)
    assert report.voc_map50 == pytest.approx(1 / 3)
    assert report.map50 == pytest.approx(coco_reference(predictions, targets, 3)[0], abs=1e-12)


def test_class_with_ground_truth_but_no_predictions_scores_zero():
    targets = [target([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1])]
    predictions = [prediction([[0, 0, 10, 10]], [0.9], [0])]
    report = evaluate_detections(predictions, targets, CLASSES)
    assert report.per_class["dog"]["ap50"] == 0.0
    assert report.map50 == pytest.approx(0.5)


def test_empty_inputs_give_zero_not_nan():
    assert evaluate_detections([], [], CLASSES).map50 == 0.0
    empty = target(np.zeros((0, 4)), [])
    report = evaluate_detections([None, prediction(np.zeros((0, 4)), [], [])], [empty, empty], CLASSES)
    assert (report.map50, report.map50_95, report.voc_map50, report.precision, report.recall) == (0, 0, 0, 0, 0)
    assert report.pr_curves == {}


def test_max_detections_is_per_image_and_class():
    # 3 boxes of class 0 (the right one last by score) and one of class 1; max_detections=2 drops the match of
    # class 0 but not class 1's only detection, as COCOeval's maxDets does
    targets = [target([[0, 0, 10, 10], [50, 50, 60, 60]], [0, 1])]
    predictions = [prediction([[20, 20, 30, 30], [30, 30, 40, 40], [0, 0, 10, 10], [50, 50, 60, 60]],
                              [0.9, 0.8, 0.7, 0.6], [0, 0, 0, 1])]  # fmt: skip
    report = evaluate_detections(predictions, targets, CLASSES, max_detections=2)
    assert report.per_class["cat"]["ap50"] == 0.0 and report.per_class["dog"]["ap50"] == pytest.approx(1.0)
    assert report.per_class["cat"]["predictions"] == 2


def test_mismatched_lengths_and_bad_labels_raise():
    with pytest.raises(ValueError, match="one per image"):
        evaluate_detections([None], [], CLASSES)
    with pytest.raises(ValueError, match="outside"):
        evaluate_detections([prediction([[0, 0, 1, 1]], [0.5], [3])], [target([[0, 0, 1, 1]], [0])], CLASSES)


# ---------------------------------------------------------------- against pycocotools


def random_set(seed: int, num_images: int = 12, num_classes: int = 4) -> tuple[list[dict], list[dict]]:
    """Images of 0-6 objects; predictions: jittered copies (some missed, some duplicated, some wrong class),
    plus random extra boxes; scores random, with ties (rounded) so the tie order is exercised too."""
    rng = np.random.default_rng(seed)
    targets, predictions = [], []
    for _ in range(num_images):
        n = int(rng.integers(0, 7))
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(8, 160, (n, 2))
        boxes = np.concatenate([xy, xy + wh], 1)
        labels = rng.integers(0, num_classes, n)
        targets.append(target(boxes, labels))
        pred_boxes, pred_labels = [], []
        for box, label in zip(boxes, labels):
            for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):
                size = np.tile(box[2:] - box[:2], 2)
                pred_boxes.append(box + rng.normal(0, 0.12, 4) * size)
                pred_labels.append(label if rng.random() > 0.15 else rng.integers(0, num_classes))
        for _ in range(int(rng.integers(0, 4))):
            xy = rng.uniform(0, 400, 2)
            pred_boxes.append(np.concatenate([xy, xy + rng.uniform(8, 160, 2)]))
            pred_labels.append(rng.integers(0, num_classes))
        pred = np.array(pred_boxes).reshape(-1, 4)
        pred = np.concatenate([np.minimum(pred[:, :2], pred[:, 2:]), np.maximum(pred[:, :2], pred[:, 2:])], 1)
        scores = np.round(rng.uniform(0.05, 1.0, len(pred)), 2)
        predictions.append(prediction(pred, scores, pred_labels))
    return predictions, targets


@pytest.mark.parametrize("seed", range(24))
def test_equals_pycocotools_on_random_sets(seed):
    predictions, targets = random_set(seed, num_classes=3 + seed % 3)
    num_classes = 3 + seed % 3
    report = evaluate_detections(predictions, targets, [str(k) for k in range(num_classes)])
    map50, map50_95 = coco_reference(predictions, targets, num_classes)
    if map50 < 0:  # COCOeval's -1: no class has ground truth
        map50 = map50_95 = 0.0
    assert report.map50 == pytest.approx(map50, abs=1e-9)
    assert report.map50_95 == pytest.approx(map50_95, abs=1e-9)
    voc = [voc_reference(predictions, targets, k) for k in range(num_classes)
           if any((t["labels"] == k).any() for t in targets)]  # fmt: skip
    assert report.voc_map50 == pytest.approx(float(np.mean(voc)) if voc else 0.0, abs=1e-9)


def test_equals_pycocotools_with_many_detections_per_image():
    # more than 100 detections of one class in one image: the maxDets=100 cut has to agree
    rng = np.random.default_rng(7)
    boxes = np.concatenate([rng.uniform(0, 300, (30, 2)), np.zeros((30, 2))], 1)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(10, 80, (30, 2))
    targets = [target(boxes, np.zeros(30, dtype=np.int64))]
    pred = np.repeat(boxes, 5, 0) + rng.normal(0, 3, (150, 4))
    pred[:, 2:] = np.maximum(pred[:, 2:], pred[:, :2] + 1)
    predictions = [prediction(pred, rng.uniform(0, 1, 150), np.zeros(150, dtype=np.int64))]
    report = evaluate_detections(predictions, targets, ["a"])
    map50, map50_95 = coco_reference(predictions, targets, 1)
    assert report.per_class["a"]["predictions"] == 100
    assert report.map50 == pytest.approx(map50, abs=1e-9)
    assert report.map50_95 == pytest.approx(map50_95, abs=1e-9)
