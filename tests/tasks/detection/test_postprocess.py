"""Decoding round-trips known boxes; selection thresholds and suppresses duplicates per class (batched_nms)."""

from __future__ import annotations

import math

import torch

from cnnlab.tasks.detection.postprocess import Selection, decode_grid, decode_yolo_v1, select


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_decode_grid_places_a_box_from_its_cell_offset_and_anchor():
    anchors = torch.tensor([[20.0, 40.0]])
    out = torch.full((1, 1, 4, 4, 7), -10.0)
    out[0, 0, 1, 2, 0] = logit(0.25)  # x offset 0 in cell column 2 (cells of 32 px on a 128 image)
    out[0, 0, 1, 2, 1] = logit(0.5)  # y offset 0.5 in row 1
    out[0, 0, 1, 2, 2:4] = 0.0  # (sigmoid(0) * 2)^2 = 1 x the anchor
    out[0, 0, 1, 2, 4] = 10.0
    out[0, 0, 1, 2, 5 + 1] = 10.0  # class 1
    boxes, scores = decode_grid(out, anchors, 128)
    index = 1 * 4 + 2
    cx, cy = 2 * 32, 1.5 * 32
    assert torch.allclose(boxes[0, index], torch.tensor([cx - 10, cy - 20, cx + 10, cy + 20]), atol=1e-4)
    assert scores[0, index].argmax() == 1 and scores[0, index, 1] > 0.99


def test_decode_yolo_v1_reads_sqrt_sizes_and_class_specific_confidence():
    out = torch.zeros(1, 2, 2, 2 * 5 + 3)
    out[0, 1, 0, 0:5] = torch.tensor([0.5, 0.5, 0.5, 0.5, 0.8])  # cell row 1 col 0; w = h = 0.25 of the image
    out[0, 1, 0, 10:] = torch.tensor([0.1, 0.9, 0.0])
    boxes, scores = decode_yolo_v1(out, 100, boxes=2)
    index = (1 * 2 + 0) * 2 + 0
    assert torch.allclose(boxes[0, index], torch.tensor([12.5, 62.5, 37.5, 87.5]))
    assert torch.allclose(scores[0, index], torch.tensor([0.08, 0.72, 0.0]))


def test_select_thresholds_and_suppresses_per_class():
    boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.5, 0.5, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0], [50, 50, 60, 60]]])
    scores = torch.tensor([[[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.1, 0.0]]])
    (kept,) = select(boxes, scores, 100, Selection(conf_threshold=0.25, nms_iou=0.5))
    # the second box overlaps the first (same class): suppressed; the third has another class: kept; the last
    # is below the threshold
    assert kept["labels"].tolist() == [0, 1]
    assert torch.allclose(kept["scores"], torch.tensor([0.9, 0.7]))


def test_select_multi_label_keeps_each_class_above_threshold_and_clips():
    boxes = torch.tensor([[[-5.0, -5.0, 120.0, 50.0]]])
    scores = torch.tensor([[[0.6, 0.4]]])
    (kept,) = select(boxes, scores, 100, Selection(conf_threshold=0.3, multi_label=True))
    assert sorted(kept["labels"].tolist()) == [0, 1]
    assert kept["boxes"].min() >= 0 and kept["boxes"].max() <= 100


def test_select_caps_detections():
    boxes = torch.rand(1, 500, 2) * 90
    boxes = torch.cat([boxes, boxes + 5], -1)
    scores = torch.rand(1, 500, 1)
    (kept,) = select(boxes, scores, 100, Selection(conf_threshold=0.0, nms_iou=0.99, max_detections=7))
    assert len(kept["scores"]) == 7 and (kept["scores"][:-1] >= kept["scores"][1:]).all()
