"""Synthetic digit scenes: deterministic, tight boxes, disjoint digit sources per split, writers that parse back."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from torchvision.ops import box_iou

from cnnlab.data import DataSplits, ImageSet
from cnnlab.data import synthetic as S
from cnnlab.data.synthetic import DIGIT_CLASSES, digit_detection_splits, digit_scenes, write_detection_dataset
from cnnlab.errors import ConfigError


@pytest.fixture(scope="module")
def scenes():
    return digit_scenes(60, seed=1)


def test_same_seed_same_bytes_other_seed_differs(scenes):
    images, targets = scenes
    again, again_targets = digit_scenes(60, seed=1)
    assert images.dtype == torch.uint8 and images.shape == (60, 1, 128, 128)
    assert torch.equal(images, again)
    for a, b in zip(targets, again_targets):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])
    other, _ = digit_scenes(60, seed=2)
    assert not torch.equal(images, other)


def test_boxes_are_tight_around_the_ink(scenes):
    images, targets = scenes
    for image, target in zip(images[:, 0], targets):
        boxes = target["boxes"]
        assert boxes.dtype == torch.float32 and target["labels"].dtype == torch.int64
        ink = image > S.INK_LEVEL
        inside = torch.zeros_like(ink)
        for x1, y1, x2, y2 in boxes.long().tolist():
            assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 128
            inside[y1:y2, x1:x2] = True
            # tight: ink on each of the box's four edges
            assert ink[y1, x1:x2].any() and ink[y2 - 1, x1:x2].any()
            assert ink[y1:y2, x1].any() and ink[y1:y2, x2 - 1].any()
        assert not (ink & ~inside).any(), "ink outside every box"
        assert int(image[~inside].max()) <= S.INK_LEVEL  # only noise and faint stroke edges outside


def test_counts_labels_and_overlap_within_limits():
    _, targets = digit_scenes(200, digits=(2, 3), scale=(16, 30), canvas=96, seed=4)
    counts = [len(t["labels"]) for t in targets]
    assert min(counts) >= 2 and max(counts) <= 3 and len(set(counts)) == 2
    labels = torch.cat([t["labels"] for t in targets])
    assert set(labels.tolist()) == set(range(10))
    for target in targets:
        boxes = target["boxes"]
        if len(boxes) > 1:
            overlaps = box_iou(boxes, boxes).fill_diagonal_(0)
            assert float(overlaps.max()) <= S.MAX_IOU + 1e-6


def test_splits_draw_from_disjoint_mnist_digits():
    seen = {}
    for split in ("train", "val", "test"):
        _, targets, sources = S._compose(300, split, 128, (1, 4), (20, 48), 0, S.NOISE_LEVEL)
        _, _, kind, _ = S.digit_pool(split)
        mnist_images, mnist_labels = S._mnist(kind)
        flat = np.concatenate(sources)
        # each box's label is the MNIST label of the digit it was drawn from
        assert torch.equal(torch.cat([t["labels"] for t in targets]), mnist_labels[torch.from_numpy(flat)])
        seen[split] = {(kind, int(i)) for i in flat}
    assert all(i < S.VAL_FROM for _, i in seen["train"]) and all(i >= S.VAL_FROM for _, i in seen["val"])
    assert all(kind == "t10k" for kind, _ in seen["test"]) and all(kind == "train" for kind, _ in seen["train"])
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])


def test_detection_splits_are_datasplits_with_file_names():
    splits = digit_detection_splits(train=20, val=5, test=6, canvas=64)
    assert isinstance(splits, DataSplits) and splits.format == "digits" and splits.classes == DIGIT_CLASSES
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [20, 5, 6]
    assert isinstance(splits.train, ImageSet) and splits.train.images.shape == (20, 1, 64, 64)
    target = splits.val.labels[3]
    assert target["file"] == "digits/val/00003.png" and target["orig_size"] == (64, 64)
    assert splits.image_size == (64, 64) and splits.in_channels == 1
    image, first = splits.test[0]
    assert image.shape == (1, 64, 64) and set(first) == {"boxes", "labels", "file", "orig_size"}
    assert not torch.equal(splits.train.images[:5], splits.val.images)
    assert len(splits.train.subset([0, 2]).labels) == 2


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="split"):
        digit_scenes(2, split="holdout")
    with pytest.raises(ConfigError, match="digits"):
        digit_scenes(2, digits=(3, 1))
    with pytest.raises(ConfigError, match="scale"):
        digit_scenes(2, canvas=32, scale=(20, 48))
    with pytest.raises(ConfigError, match="voc, coco, yolo"):
        write_detection_dataset("x", torch.zeros(0, 1, 8, 8, dtype=torch.uint8), [], DIGIT_CLASSES, "kitti")


@pytest.fixture(scope="module")
def small_set():
    images, targets = digit_scenes(6, canvas=64, scale=(14, 30), seed=3)
    targets.append({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)})
    images = torch.cat([images, torch.zeros(1, 1, 64, 64, dtype=torch.uint8)])
    return images, targets


def _same_boxes(parsed: list[list[float]], target: dict) -> None:
    expected = target["boxes"]
    got = torch.tensor(parsed, dtype=torch.float32).reshape(-1, 4)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() <= 1.0 if len(got) else True


def _png(path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path)))


def test_voc_writer_parses_back(tmp_path, small_set):
    images, targets = small_set
    folder = write_detection_dataset(tmp_path / "voc", images, targets, DIGIT_CLASSES, "voc")
    xmls = sorted((folder / "Annotations").glob("*.xml"))
    assert len(xmls) == len(images)
    for path, image, target in zip(xmls, images, targets):
        root = ET.parse(path).getroot()
        name = root.findtext("filename")
        assert torch.equal(_png(folder / "JPEGImages" / name), image[0])
        assert (int(root.findtext("size/width")), int(root.findtext("size/height"))) == (64, 64)
        boxes, labels = [], []
        for item in root.findall("object"):
            labels.append(DIGIT_CLASSES.index(item.findtext("name")))
            bb = item.find("bndbox")
            xmin, ymin, xmax, ymax = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.append([xmin - 1, ymin - 1, xmax, ymax])  # VOC is 1-based, inclusive
        _same_boxes(boxes, target)
        assert labels == target["labels"].tolist()


def test_coco_writer_parses_back(tmp_path, small_set):
    images, targets = small_set
    folder = write_detection_dataset(tmp_path / "coco", images, targets, DIGIT_CLASSES, "coco")
    data = json.loads((folder / "annotations.json").read_text())
    assert [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])] == DIGIT_CLASSES
    names = {c["id"]: c["name"] for c in data["categories"]}
    assert len(data["images"]) == len(images)
    for entry, image, target in zip(data["images"], images, targets):
        assert torch.equal(_png(folder / "images" / entry["file_name"]), image[0])
        assert (entry["width"], entry["height"]) == (64, 64)
        mine = [a for a in data["annotations"] if a["image_id"] == entry["id"]]
        _same_boxes([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in mine)], target)
        assert [DIGIT_CLASSES.index(names[a["category_id"]]) for a in mine] == target["labels"].tolist()
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])


def test_yolo_writer_parses_back(tmp_path, small_set):
    images, targets = small_set
    folder = write_detection_dataset(tmp_path / "yolo", images, targets, DIGIT_CLASSES, "yolo")
    meta = yaml.safe_load((folder / "data.yaml").read_text())
    assert meta["names"] == DIGIT_CLASSES and meta["nc"] == 10
    pictures = sorted((folder / "images").glob("*.png"))
    assert len(pictures) == len(images)
    for picture, image, target in zip(pictures, images, targets):
        assert torch.equal(_png(picture), image[0])
        lines = (folder / "labels" / f"{picture.stem}.txt").read_text().split("\n")
        rows = [[float(v) for v in line.split()] for line in lines if line.strip()]
        assert all(0 <= v <= 1 for row in rows for v in row[1:])
        boxes = [
            [(cx - w / 2) * 64, (cy - h / 2) * 64, (cx + w / 2) * 64, (cy + h / 2) * 64] for _, cx, cy, w, h in rows
        ]
        _same_boxes(boxes, target)
        assert [int(row[0]) for row in rows] == target["labels"].tolist()


def test_writer_uses_target_file_names(tmp_path):
    splits = digit_detection_splits(train=3, val=0, test=0, canvas=48)
    folder = write_detection_dataset(
        tmp_path / "named", splits.train.images, splits.train.labels, DIGIT_CLASSES, "coco"
    )
    assert sorted(p.name for p in (folder / "images").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert not list(folder.glob(".*.tmp"))  # atomic writes leave no temp files
