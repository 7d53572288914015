"""Boxes drawn where they belong, grey images made RGB, PR curves and grids as valid PNGs, images saved atomically."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.tasks.detection.metrics import evaluate_detections
from cnnlab.viz.detection import (
    GROUND_TRUTH_COLOUR,
    class_colour,
    detection_grid_png,
    draw_boxes,
    pr_curve_png,
    save_image,
)

CLASSES = ["zero", "one", "two"]


def box_target(boxes, labels) -> dict:
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}


def outline_mask(x1: int, y1: int, x2: int, y2: int, size: int) -> torch.Tensor:
    """The pixels of a 1-px rectangle outline, corners included (PIL's rectangle covers x1..x2, y1..y2)."""
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[y1, x1 : x2 + 1] = mask[y2, x1 : x2 + 1] = True
    mask[y1 : y2 + 1, x1] = mask[y1 : y2 + 1, x2] = True
    return mask


def test_ground_truth_box_changes_exactly_its_outline_in_green():
    image = torch.full((3, 64, 64), 40, dtype=torch.uint8)
    drawn = draw_boxes(image, None, box_target([[10, 12, 30, 40]], [1]), CLASSES)
    changed = (drawn != image).any(0)
    expected = outline_mask(10, 12, 30, 40, 64)
    assert torch.equal(changed, expected)
    assert drawn[:, 12, 20].tolist() == list(GROUND_TRUTH_COLOUR)  # top edge
    assert drawn[:, 25, 30].tolist() == list(GROUND_TRUTH_COLOUR)  # right edge
    assert drawn[:, 25, 20].tolist() == [40, 40, 40]  # interior untouched
    assert torch.equal(image, torch.full((3, 64, 64), 40, dtype=torch.uint8))  # the input is not drawn on


def test_prediction_box_in_class_colour_with_label_inside():
    image = torch.zeros(3, 80, 80, dtype=torch.uint8)
    prediction = {**box_target([[20, 20, 70, 60]], [2]), "scores": torch.tensor([0.87])}
    drawn = draw_boxes(image, prediction, None, CLASSES)
    outline = outline_mask(20, 20, 70, 60, 80)
    assert (drawn[:, outline] == torch.tensor(class_colour(2)).view(3, 1)).all()
    changed = (drawn != 0).any(0)
    # off the outline, only the "two 0.87" text changed pixels, all of them inside the box
    text = changed & ~outline
    assert text.any()
    ys, xs = text.nonzero(as_tuple=True)
    assert xs.min() > 20 and ys.min() > 20 and xs.max() < 70 and ys.max() < 60
    assert class_colour(2) != GROUND_TRUTH_COLOUR


def test_grey_image_becomes_rgb_and_empty_inputs_pass_through():
    grey = torch.randint(0, 255, (1, 32, 32), dtype=torch.uint8)
    drawn = draw_boxes(grey, None, None, CLASSES)
    assert drawn.shape == (3, 32, 32) and drawn.dtype == torch.uint8
    assert torch.equal(drawn, grey.expand(3, -1, -1))
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64), "scores": torch.zeros(0)}
    assert draw_boxes(grey, empty, box_target([[2, 2, 9, 9]], [0]), CLASSES).shape == (3, 32, 32)


def test_boxes_reversed_or_outside_the_image_are_drawn_not_refused():
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    prediction = {**box_target([[15, 15, 5, 5], [-4, -4, 50, 50]], [0, 1]), "scores": torch.tensor([0.5, 0.4])}
    assert draw_boxes(image, prediction, None, CLASSES).shape == (3, 20, 20)


def test_pr_curve_png_is_a_valid_png():
    targets = [box_target([[0, 0, 10, 10], [20, 20, 40, 40]], [0, 1])]
    predictions = [{**box_target([[0, 0, 10, 10], [21, 20, 40, 41]], [0, 1]), "scores": torch.tensor([0.9, 0.3])}]
    report = evaluate_detections(predictions, targets, CLASSES)
    picture = Image.open(io.BytesIO(pr_curve_png(report)))
    assert picture.format == "PNG" and picture.size[0] > 100
    empty = evaluate_detections([], [], CLASSES)
    assert Image.open(io.BytesIO(pr_curve_png(empty))).format == "PNG"


def test_detection_grid_png():
    images = torch.randint(0, 255, (5, 1, 48, 48), dtype=torch.uint8)
    targets = [box_target([[4, 4, 20, 20]], [k % 3]) for k in range(5)]
    predictions = [{**t, "scores": torch.tensor([0.6])} for t in targets[:4]] + [None]
    picture = Image.open(io.BytesIO(detection_grid_png(images, predictions, targets, CLASSES, columns=3)))
    assert picture.format == "PNG"


@pytest.mark.parametrize("suffix,kind", [(".png", "PNG"), (".jpg", "JPEG"), (".JPEG", "JPEG")])
def test_save_image_by_suffix(tmp_path, suffix, kind):
    image = torch.randint(0, 255, (3, 24, 30), dtype=torch.uint8)
    path = save_image(image, tmp_path / "sub" / f"out{suffix}")
    with Image.open(path) as picture:
        assert picture.format == kind and picture.size == (30, 24) and picture.mode == "RGB"
    if kind == "PNG":
        assert torch.equal(torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1), image)


def test_save_image_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "boxes.png"
    save_image(torch.zeros(3, 8, 8, dtype=torch.uint8), path)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        save_image(torch.full((3, 8, 8), 255, dtype=torch.uint8), path)
    assert path.read_bytes() == before  # the old file is whole, and no temporary is left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["boxes.png"]


def test_save_image_unknown_suffix(tmp_path):
    with pytest.raises(ValueError, match="suffix"):
        save_image(torch.zeros(3, 4, 4, dtype=torch.uint8), tmp_path / "x.unknownfmt")
