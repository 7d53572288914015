"""The detectors' losses on hand-computed cases (YOLOv1's eq. 3 term by term) and the grid assignment rule."""

from __future__ import annotations

import math

import pytest
import torch

from cnnlab.tasks.detection.losses import GridLoss, YoloV1Loss

# S=2, B=2, C=2 on a 100-pixel image: one object (0, 0, 50, 50) -> cell (0, 0), x = y = 0.5, w = h = 0.5.
V1 = YoloV1Loss(grid=2, boxes=2, num_classes=2, image_size=100)
OBJECT = [{"boxes": torch.tensor([[0.0, 0.0, 50.0, 50.0]]), "labels": torch.tensor([1])}]
ROOT_HALF = math.sqrt(0.5)


def v1_output() -> torch.Tensor:
    out = torch.zeros(1, 2, 2, 12)
    out[0, 0, 0, 0:5] = torch.tensor([0.5, 0.5, ROOT_HALF, ROOT_HALF, 1.0])  # box 0: exact, confidence 1
    out[0, 0, 0, 5:10] = torch.tensor([0.5, 0.5, 0.1, 0.1, 0.3])  # box 1: tiny, confidence 0.3
    out[0, 0, 0, 10:] = torch.tensor([0.0, 1.0])  # class probabilities: exactly the object's class
    return out


def test_yolo_v1_exact_box_leaves_only_the_noobj_term():
    total, parts = V1(v1_output(), OBJECT)
    # box 1 is not responsible (lower IoU): lambda_noobj * 0.3^2; every other cell predicts 0 everywhere.
    assert parts["box"].item() == pytest.approx(0.0, abs=1e-7)
    assert parts["objectness"].item() == pytest.approx(0.5 * 0.3**2)
    assert parts["class"].item() == pytest.approx(0.0)
    assert total.item() == pytest.approx(0.045)


def test_yolo_v1_coordinates_sqrt_sizes_and_lambda_coord():
    out = v1_output()
    out[0, 0, 0, 0] = 0.7  # x off by 0.2
    out[0, 0, 0, 2] = 0.5  # sqrt(w) 0.5 instead of sqrt(0.5): the paper's square-rooted width error
    _, parts = V1(out, OBJECT)
    expected = 5.0 * (0.2**2 + (0.5 - ROOT_HALF) ** 2)
    assert parts["box"].item() == pytest.approx(expected, rel=1e-5)


def test_yolo_v1_responsible_box_is_the_highest_iou_one():
    out = v1_output()
    out[0, 0, 0, 0:4] = torch.tensor([0.9, 0.9, 0.2, 0.2])  # box 0 now far off: IoU 0
    out[0, 0, 0, 5:9] = torch.tensor([0.5, 0.6, ROOT_HALF, ROOT_HALF])  # box 1 close: it is responsible
    _, parts = V1(out, OBJECT)
    assert parts["box"].item() == pytest.approx(5.0 * 0.1**2, rel=1e-5)
    # box 1's confidence target is its IoU with the object (0.5 x 0.5 box shifted by 0.05 of the image).
    iou = (0.5 * 0.45) / (0.25 + 0.25 - 0.5 * 0.45)
    expected = (0.3 - iou) ** 2 + 0.5 * 1.0**2  # box 0 (confidence 1) now counts as a no-object box
    assert parts["objectness"].item() == pytest.approx(expected, rel=1e-5)


def test_yolo_v1_class_term_is_sum_squared_error_in_object_cells_only():
    out = v1_output()
    out[0, 0, 0, 10:] = torch.tensor([0.4, 0.6])
    out[0, 1, 1, 10:] = torch.tensor([0.9, 0.9])  # a cell without an object: no class term
    _, parts = V1(out, OBJECT)
    assert parts["class"].item() == pytest.approx(0.4**2 + 0.4**2)


def test_yolo_v1_mean_over_images_and_one_object_per_cell():
    two = OBJECT + [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}]
    out = torch.cat([v1_output(), torch.zeros(1, 2, 2, 12)])
    _, parts = V1(out, two)
    assert parts["objectness"].item() == pytest.approx(0.045 / 2)
    # two objects centred in one cell: the larger one is the cell's object
    crowded = [
        {"boxes": torch.tensor([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 40.0, 40.0]]), "labels": torch.tensor([0, 1])}
    ]
    cells = V1.cell_targets(crowded, torch.device("cpu"))
    assert cells["object"].sum() == 1 and cells["class"][0, 0, 0].tolist() == [0.0, 1.0]


def test_grid_assignment_uses_own_and_two_neighbour_cells():
    loss = GridLoss(torch.tensor([[20.0, 20.0], [50.0, 50.0]]), 2, 128)
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 40.0, 50.0]]), "labels": torch.tensor([1])}]
    image, anchor, row, col, label, box, _ = loss.assign(targets, torch.Size([1, 2, 8, 8, 7]), torch.device("cpu"))
    # centre (25, 30) px = (1.56, 1.88) cells: own cell (1, 1), right neighbour (col 2), lower neighbour (row 2)
    cells = sorted(set(zip(row.tolist(), col.tolist())))
    assert cells == [(1, 1), (1, 2), (2, 1)]
    assert sorted(set(anchor.tolist())) == [0, 1]  # both anchors within the 4x shape ratio
    assert set(label.tolist()) == {1}
    assert ((box[:, :2] > -0.5) & (box[:, :2] < 1.5)).all()  # offsets YOLOv5's decoder can reach


def test_grid_loss_is_low_for_a_matching_prediction_and_has_gradients():
    anchors = torch.tensor([[32.0, 32.0]])
    loss = GridLoss(anchors, 1, 128, neighbours=False)
    targets = [{"boxes": torch.tensor([[48.0, 48.0, 80.0, 80.0]]), "labels": torch.tensor([0])}]
    good = torch.full((1, 1, 4, 4, 6), -8.0)
    good[0, 0, 2, 2, :4] = 0.0  # raw 0: centre offset sigmoid(0) * 2 - 0.5 = 0.5 cell, size 32 px
    good.requires_grad_(True)
    total, parts = loss(good, targets)
    total.backward()
    # the object's centre (64, 64) is cell (2, 2) at offset 0: raw 0 predicts half a cell further, so the CIoU
    # loss is positive and its gradient pushes both offsets down; raw logit(0.25) is exact
    assert parts["box"].item() > 0
    assert good.grad[0, 0, 2, 2, 0] > 0 and good.grad[0, 0, 2, 2, 1] > 0
    exact = good.detach().clone()
    exact[0, 0, 2, 2, 0:2] = math.log(0.25 / 0.75)
    exact[0, 0, 2, 2, 2:4] = 0.0  # (sigmoid(0) * 2)^2 * 32 = 32 px
    _, parts = loss(exact, targets)
    assert parts["box"].item() == pytest.approx(0.0, abs=1e-5)
