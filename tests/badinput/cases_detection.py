"""Bad-input cases of `cnnlab detect`: broken annotations in each format, detection options, detection runs.

Each data case writes a few generated digit scenes in one format and breaks one thing; `detect train` must stop
while loading, with one line naming the file (and the box), before any training.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.badinput.cases import Case

Setup = Callable[[Path], None]


def train(*extra: str, data: str = "{tmp}/d") -> list[str]:
    return ["detect", "train", "--data", data, "--epochs", "1", "--quiet", "--out", "{tmp}/out", *extra]


def write(tmp: Path, fmt: str, count: int = 6) -> Path:
    from cnnlab.data.synthetic import DIGIT_CLASSES, digit_scenes, write_detection_dataset

    images, targets = digit_scenes(count, seed=1)
    for i, target in enumerate(targets):
        target["file"] = f"s{i}.png"
    return write_detection_dataset(tmp / "d", images, targets, DIGIT_CLASSES, fmt)


def voc(change: Callable[[Path], None]) -> Setup:
    def setup(tmp: Path) -> None:
        write(tmp, "voc")
        change(tmp / "d")

    return setup


def edit_xml(old: str, new: str, name: str = "s0.xml") -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / "Annotations" / name
        path.write_text(path.read_text().replace(old, new, 1))

    return change


def coco(change: Callable[[dict], None]) -> Setup:
    def setup(tmp: Path) -> None:
        write(tmp, "coco")
        path = tmp / "d" / "annotations.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))

    return setup


def yolo(change: Callable[[Path], None]) -> Setup:
    def setup(tmp: Path) -> None:
        write(tmp, "yolo")
        change(tmp / "d")

    return setup


def yolo_line(text: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        (root / "labels" / "s0.txt").write_text(text)

    return change


def remove(relative: str) -> Callable[[Path], None]:
    return lambda root: (root / relative).unlink()


def truncate(relative: str) -> Callable[[Path], None]:
    def change(root: Path) -> None:
        path = root / relative
        path.write_bytes(path.read_bytes()[:50])

    return change


def first_box(key: str, value) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["annotations"][0][key] = value

    return change


def _set_bbox(values: list[float]) -> Callable[[dict], None]:
    return first_box("bbox", values)


def _xml_header(root: Path) -> None:
    path = root / "Annotations" / "s0.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]>' + path.read_text().split("?>", 1)[-1])


def _nameless(root: Path) -> None:
    import re

    path = root / "Annotations" / "s0.xml"
    path.write_text(re.sub(r"<object>\s*<name>[^<]*</name>", "<object><name></name>", path.read_text(), count=1))


CASES = [
    # Pascal VOC XML
    Case(
        "detection/voc box outside the image", train(), "outside the 128x128", setup=voc(edit_xml("<xmax>", "<xmax>9"))
    ),
    Case("detection/voc zero-area box", train(), "zero or negative area", setup=voc(edit_xml("<xmin>", "<xmin>9"))),
    Case("detection/voc missing image", train(), "not found", setup=voc(remove("JPEGImages/s1.png"))),
    Case("detection/voc truncated image", train(), "s2.png", setup=voc(truncate("JPEGImages/s2.png"))),
    Case("detection/voc malformed xml", train(), "malformed XML", setup=voc(edit_xml("</annotation>", "<annotation>"))),
    Case("detection/voc entity declaration", train(), "DOCTYPE", setup=voc(_xml_header)),
    Case("detection/voc box without numbers", train(), "needs numbers", setup=voc(edit_xml("<ymin>", "<ymin>a"))),
    Case("detection/voc object without name", train(), "no <name>", setup=voc(_nameless)),
    Case(
        "detection/voc no annotations",
        train(),
        "cannot tell the detection data format",
        setup=voc(lambda r: [p.unlink() for p in (r / "Annotations").iterdir()]),
        tags=("format",),
    ),  # fmt: skip
    # COCO JSON
    Case("detection/coco box outside the image", train(), "outside", setup=coco(_set_bbox([100, 100, 90, 90]))),
    Case("detection/coco zero-area box", train(), "zero or negative area", setup=coco(_set_bbox([10, 10, 0, 5]))),
    Case("detection/coco unknown category", train(), "category_id 99", setup=coco(first_box("category_id", 99))),
    Case("detection/coco unknown image id", train(), "image id 12345", setup=coco(first_box("image_id", 12345))),
    Case("detection/coco no categories", train(), "'categories'", setup=coco(lambda d: d.pop("categories"))),
    Case(
        "detection/coco malformed json",
        train(),
        "malformed JSON",
        setup=lambda t: (write(t, "coco"), (t / "d" / "annotations.json").write_text('{"images": [')) and None,
    ),  # fmt: skip
    Case(
        "detection/coco missing image",
        train(),
        "not found",
        setup=lambda t: (write(t, "coco"), (t / "d" / "images" / "s3.png").unlink()) and None,
    ),  # fmt: skip
    # YOLO txt
    Case(
        "detection/yolo class not in the list",
        train(),
        "class 12 is not in the class list",
        setup=yolo(yolo_line("12 0.5 0.5 0.2 0.2\n")),
    ),  # fmt: skip
    Case("detection/yolo short line", train(), "line 1", setup=yolo(yolo_line("1 0.5 0.5\n"))),
    Case("detection/yolo box outside", train(), "outside", setup=yolo(yolo_line("1 0.95 0.5 0.4 0.2\n"))),
    Case("detection/yolo label without image", train(), "label file has no image", setup=yolo(remove("images/s4.png"))),
    Case(
        "detection/yolo bad names", train(), "'names'", setup=yolo(lambda r: (r / "data.yaml").write_text("names: 7\n"))
    ),
    # options and commands
    Case("detection/a classifier as the model", train("--model", "resnet18", data="digits"), "--backbone resnet18"),
    Case("detection/a rotation", train("--augment", "rotate=5", data="digits"), "augment.rotate is not supported"),
    Case("detection/unknown backbone", train("--backbone", "resnet19", data="digits"), "resnet19"),
    Case(
        "detection/image size text", train("--image-size", "big", data="digits"), "--image-size must be a whole number"
    ),  # fmt: skip
    Case("detection/image size tiny", train("--image-size", "4", data="digits"), "task_options.image_size"),
    Case("detection/negative test split", train("--test-split", "-0.5", data="digits"), "task_options.test_split"),
    Case("detection/data path missing", train(data="{tmp}/nothing"), "does not exist"),
    Case(
        "detection/unknown data format",
        train("--data-format", "kitti"),
        "voc, coco, yolo",
        setup=lambda t: write(t, "voc") and None,
    ),  # fmt: skip
    Case("detection/no command", ["detect"], "detect needs a command", exit_code=2),
    Case("detection/evaluate a missing run", ["detect", "evaluate", "{tmp}/none"], "{tmp}/none".split("/")[-1]),
    Case(
        "detection/predict a classification run",
        ["detect", "predict", "{run}", "{mnist}"],
        "not a detection run",
        needs_run=True,
    ),  # fmt: skip
    Case(
        "detection/evaluate a classification run",
        ["detect", "evaluate", "{run}"],
        "not a detection run",
        needs_run=True,
    ),  # fmt: skip
]
