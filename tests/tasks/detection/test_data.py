"""Detection readers on small real files (PIL images, hand-written XML / JSON / txt) and on the raccoon set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnlab.errors import ConfigError, DataError
from cnnlab.tasks.detection.data import DetectionData, detect_format, load_detection_data

RACCOON = Path(__file__).parents[3] / ".." / "shared" / "data" / "detection" / "raccoon"

# name, (width, height), objects as (class, x1, y1, x2, y2) in 0-based continuous pixels
SAMPLES = [
    ("a.jpg", (64, 48), [("cat", 4, 6, 30, 40)]),
    ("b.jpg", (40, 60), [("dog", 0, 0, 40, 60), ("cat", 10, 12, 20, 30)]),
    ("c.png", (50, 50), [("dog", 5, 5, 45, 25)]),
    ("d.jpg", (32, 32), []),
    ("e.jpg", (80, 40), [("cat", 60, 10, 80, 38), ("cat", 2, 2, 12, 12), ("dog", 30, 0, 50, 20)]),
    ("f.png", (36, 52), [("dog", 8, 8, 28, 44)]),
    ("g.jpg", (48, 48), [("cat", 16, 16, 32, 32)]),
    ("h.jpg", (56, 44), [("dog", 1, 1, 55, 43)]),
    ("i.png", (44, 56), [("cat", 20, 4, 40, 50)]),
    ("j.jpg", (60, 30), [("dog", 10, 5, 50, 25)]),
]
CLASSES = ["cat", "dog"]


def write_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    channels = 3 if mode == "RGB" else 1
    pixels = torch.randint(0, 256, (size[1], size[0], channels), generator=generator, dtype=torch.uint8).numpy()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)


def voc_xml(filename: str, size: tuple[int, int], objects: list, path: str | None = None) -> str:
    """VOC coordinates are 1-based: a 0-based box x1 is written as x1 + 1 (the reader undoes it)."""
    parts = [f"<annotation><folder>x</folder><filename>{filename}</filename>"]
    if path:
        parts.append(f"<path>{path}</path>")
    parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, x1, y1, x2, y2 in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>\n"


def make_voc(root: Path, samples=SAMPLES, ann="Annotations", img="JPEGImages") -> Path:
    for k, (name, size, objects) in enumerate(samples):
        write_image(root / img / name, size, seed=k)
        (root / ann).mkdir(parents=True, exist_ok=True)
        (root / ann / (Path(name).stem + ".xml")).write_text(voc_xml(name, size, objects))
    return root


def coco_dict(samples=SAMPLES, classes=CLASSES) -> dict:
    images, annotations = [], []
    for k, (name, size, objects) in enumerate(samples):
        images.append({"id": k + 1, "file_name": name, "width": size[0], "height": size[1]})
        for cls, x1, y1, x2, y2 in objects:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": k + 1,
                    "category_id": classes.index(cls) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "supercategory": "animal"} for i, n in enumerate(classes)]
    return {"images": images, "annotations": annotations, "categories": categories}


def make_coco(root: Path, samples=SAMPLES, data: dict | None = None) -> Path:
    for k, (name, size, _) in enumerate(samples):
        write_image(root / "images" / name, size, seed=k)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances.json").write_text(json.dumps(data or coco_dict(samples)))
    return root


def yolo_lines(size: tuple[int, int], objects: list) -> str:
    w, h = size
    rows = []
    for cls, x1, y1, x2, y2 in objects:
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        rows.append(f"{CLASSES.index(cls)} {cx:.8f} {cy:.8f} {bw:.8f} {bh:.8f}")
    return "\n".join(rows) + ("\n" if rows else "")


def make_yolo(root: Path, samples=SAMPLES, split: str | None = None, names_yaml: bool = True) -> Path:
    sub = Path(split) if split else Path()
    for k, (name, size, objects) in enumerate(samples):
        write_image(root / "images" / sub / name, size, seed=k)
        if objects:  # an image without a label file has no objects (Ultralytics' rule)
            label = root / "labels" / sub / (Path(name).stem + ".txt")
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(yolo_lines(size, objects))
    if names_yaml:
        (root / "data.yaml").write_text("names:\n  0: cat\n  1: dog\n")
    return root


def expected_boxes(size: tuple[int, int], objects: list, stored: int) -> torch.Tensor:
    w, h = size
    rows = [[x1 * stored / w, y1 * stored / h, x2 * stored / w, y2 * stored / h] for _, x1, y1, x2, y2 in objects]
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def by_name(data: DetectionData) -> dict[str, tuple[str, dict]]:
    out = {}
    for split, imageset in data.splits().items():
        for target in imageset.labels:
            out[Path(target["file"]).name] = (split, target)
    return out


# ------------------------------------------------------------------------------------------------- readers


def check_against_samples(data: DetectionData, stored: int) -> None:
    seen = by_name(data)
    assert sorted(seen) == sorted(name for name, _, _ in SAMPLES)
    for name, size, objects in SAMPLES:
        target = seen[name][1]
        assert target["orig_size"] == (size[1], size[0])
        assert target["boxes"].dtype == torch.float32 and target["labels"].dtype == torch.int64
        torch.testing.assert_close(target["boxes"], expected_boxes(size, objects, stored), atol=1e-4, rtol=0)
        assert target["labels"].tolist() == [CLASSES.index(c) for c, *_ in objects]


def test_voc_reader(tmp_path):
    root = make_voc(tmp_path / "voc")
    assert detect_format(root) == "voc"
    data = load_detection_data(root, image_size=32)
    assert data.format == "voc" and data.classes == CLASSES and data.skipped == []
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (3, 32, 32)
    assert (len(data.train), len(data.val), len(data.test)) == (7, 1, 2)
    check_against_samples(data, 32)


def test_coco_reader_ignores_crowds(tmp_path):
    data = coco_dict()
    data["annotations"].append(
        {"id": 99, "image_id": 1, "category_id": 2, "bbox": [0, 0, 64, 48], "area": 1, "iscrowd": 1}
    )
    root = make_coco(tmp_path / "coco", data=data)
    assert detect_format(root) == "coco"
    loaded = load_detection_data(root, image_size=32)
    assert loaded.format == "coco" and loaded.classes == CLASSES
    check_against_samples(loaded, 32)


def test_yolo_reader_and_class_files(tmp_path):
    root = make_yolo(tmp_path / "yolo")
    assert detect_format(root) == "yolo"
    data = load_detection_data(root, image_size=32)
    assert data.classes == CLASSES
    check_against_samples(data, 32)
    assert by_name(data)["d.jpg"][1]["boxes"].shape == (0, 4)  # no label file: no objects
    (root / "data.yaml").unlink()
    (root / "classes.txt").write_text("cat\ndog\n")
    assert load_detection_data(root, image_size=32).classes == CLASSES


def test_same_data_in_three_formats_gives_same_splits_and_targets(tmp_path):
    loads = [
        load_detection_data(make_voc(tmp_path / "voc"), image_size=40, seed=3),
        load_detection_data(make_coco(tmp_path / "coco"), image_size=40, seed=3),
        load_detection_data(make_yolo(tmp_path / "yolo"), image_size=40, seed=3),
    ]
    first = loads[0]
    for other in loads[1:]:
        assert other.classes == first.classes
        for split in ("train", "val", "test"):
            mine, theirs = getattr(first, split), getattr(other, split)
            assert [Path(p).name for p in mine.paths] == [Path(p).name for p in theirs.paths]
            torch.testing.assert_close(mine.images, theirs.images)
            for a, b in zip(mine.labels, theirs.labels):
                torch.testing.assert_close(a["boxes"], b["boxes"], atol=1e-4, rtol=0)
                assert a["labels"].tolist() == b["labels"].tolist() and a["orig_size"] == b["orig_size"]
    other_seed = load_detection_data(tmp_path / "voc", image_size=40, seed=4)
    assert [Path(p).name for p in other_seed.test.paths] != [Path(p).name for p in first.test.paths]


def test_voc_images_found_in_siblings_without_or_with_other_extension(tmp_path):
    root = tmp_path / "set"
    write_image(root / "pictures" / "one.jpg", (30, 20))
    write_image(root / "pictures" / "two.png", (30, 20))
    write_image(root / "labels_xml" / "three.jpg", (30, 20))  # beside its XML
    write_image(tmp_path / "elsewhere" / "four.jpg", (30, 20))  # only through <path>
    write_image(root / "pictures" / "five.jpg", (30, 20))  # <filename> wrong: found by the XML's own stem
    box = [("cat", 2, 2, 10, 10)]
    ann = root / "labels_xml"
    ann.mkdir(parents=True, exist_ok=True)
    (ann / "one.xml").write_text(voc_xml("one", (30, 20), box))
    (ann / "two.xml").write_text(voc_xml("two.jpg", (30, 20), box))
    (ann / "three.xml").write_text(voc_xml("three.jpg", (30, 20), box))
    (ann / "four.xml").write_text(voc_xml("four.jpg", (30, 20), box, path=str(tmp_path / "elsewhere" / "four.jpg")))
    (ann / "five.xml").write_text(voc_xml("IMG_0001.JPG", (30, 20), box))
    data = load_detection_data(root, image_size=16, val_split=0, test_split=0)
    files = {Path(t["file"]).name: Path(t["file"]).parent.name for t in data.train.labels}
    assert files == {
        "one.jpg": "pictures",
        "two.png": "pictures",
        "three.jpg": "labels_xml",
        "four.jpg": "elsewhere",
        "five.jpg": "pictures",
    }


def test_voc_size_tag_is_not_trusted_and_small_overhang_is_clipped(tmp_path):
    root = tmp_path / "voc"
    write_image(root / "images" / "a.jpg", (40, 30))
    xml = voc_xml("a.jpg", (999, 999), [("cat", -0.5, 0, 40.5, 30)])  # <size> wrong, box 0.5 px over both sides
    (root / "annotations").mkdir()
    (root / "annotations" / "a.xml").write_text(xml)
    data = load_detection_data(root, image_size=40, val_split=0, test_split=0)
    target = data.train.labels[0]
    assert target["orig_size"] == (30, 40)
    torch.testing.assert_close(target["boxes"], torch.tensor([[0.0, 0.0, 40.0, 40.0]]))


def test_declared_splits_are_kept(tmp_path):
    voc = make_voc(tmp_path / "voc")
    main = voc / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("a\nb\nc\nd\ne\nf\n")
    (main / "val.txt").write_text("g\nh\n")
    (main / "test.txt").write_text("i\nj\n")
    data = load_detection_data(voc, image_size=16)
    assert [Path(p).stem for p in data.val.paths] == ["g", "h"]
    assert [Path(p).stem for p in data.test.paths] == ["i", "j"]

    yolo = tmp_path / "yolo"
    make_yolo(yolo, SAMPLES[:7], split="train")
    make_yolo(yolo, SAMPLES[7:], split="val")
    data = load_detection_data(yolo, image_size=16, test_split=0.2)
    assert sorted(Path(p).name for p in data.val.paths) == ["h.jpg", "i.png", "j.jpg"]
    assert len(data.train) + len(data.test) == 7 and len(data.test) == 1  # the missing test split is carved

    coco = tmp_path / "coco"
    for k, (name, size, _) in enumerate(SAMPLES):
        write_image(coco / "images" / name, size, seed=k)
    (coco / "annotations").mkdir()
    (coco / "annotations" / "instances_train.json").write_text(json.dumps(coco_dict(SAMPLES[:8])))
    (coco / "annotations" / "instances_val.json").write_text(json.dumps(coco_dict(SAMPLES[8:])))
    data = load_detection_data(coco, image_size=16, test_split=0)
    assert sorted(Path(p).name for p in data.val.paths) == ["i.png", "j.jpg"] and len(data.train) == 8


def test_test_data_replaces_the_test_split(tmp_path):
    main = make_voc(tmp_path / "voc", SAMPLES[:8])
    test = make_yolo(tmp_path / "yolo", SAMPLES[8:])
    data = load_detection_data(main, image_size=16, test_data=str(test))
    assert sorted(Path(p).name for p in data.test.paths) == ["i.png", "j.jpg"]
    assert len(data.train) + len(data.val) == 8


def test_channels_follow_the_images(tmp_path):
    root = tmp_path / "grey"
    write_image(root / "images" / "a.png", (20, 20), mode="L")
    write_image(root / "images" / "b.png", (20, 20), mode="L")
    (root / "annotations").mkdir()
    for stem in "ab":
        (root / "annotations" / f"{stem}.xml").write_text(voc_xml(f"{stem}.png", (20, 20), [("cat", 1, 1, 9, 9)]))
    assert load_detection_data(root, image_size=8, val_split=0, test_split=0).train.images.shape[1] == 1
    assert load_detection_data(root, image_size=8, channels=3, val_split=0, test_split=0).in_channels == 3
    write_image(root / "images" / "b.png", (20, 20), mode="RGB")
    assert load_detection_data(root, image_size=8, val_split=0, test_split=0).in_channels == 3


# ---------------------------------------------------------------------------------------------- bad input


def voc_with(tmp_path: Path, objects: list, size=(40, 30), classes=None, **kwargs) -> DetectionData:
    root = tmp_path / "bad"
    write_image(root / "images" / "ok.jpg", (40, 30))
    write_image(root / "images" / "x.jpg", size)
    (root / "annotations").mkdir(exist_ok=True)
    (root / "annotations" / "ok.xml").write_text(voc_xml("ok.jpg", (40, 30), [("cat", 1, 1, 20, 20)]))
    (root / "annotations" / "x.xml").write_text(voc_xml("x.jpg", size, objects))
    return load_detection_data(root, image_size=16, val_split=0, test_split=0, classes=classes, **kwargs)


@pytest.mark.parametrize(
    ("objects", "classes", "words"),
    [
        ([("cat", 1, 1, 20, 20), ("cat", 10, 10, 45, 20)], None, ["x.xml", "object 2", "outside the 40x30"]),
        ([("cat", 5, 5, 5, 20)], None, ["x.xml", "object 1", "zero or negative area"]),
        ([("cat", 20, 5, 10, 20)], None, ["x.xml", "object 1", "zero or negative area"]),
        ([("cat", 1, 1, 9, 9), ("bird", 1, 1, 9, 9)], ["cat", "dog"], ["x.xml", "object 2", "'bird'", "class list"]),
    ],
)
def test_bad_voc_boxes_name_file_and_box(tmp_path, objects, classes, words):
    with pytest.raises(DataError) as caught:
        voc_with(tmp_path, objects, classes=classes)
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_missing_truncated_and_malformed_files(tmp_path):
    root = make_voc(tmp_path / "voc", SAMPLES[:3])
    (root / "JPEGImages" / "b.jpg").unlink()
    with pytest.raises(DataError, match=r"b\.xml: image 'b\.jpg' not found"):
        load_detection_data(root, image_size=16)
    write_image(root / "JPEGImages" / "b.jpg", (40, 60))
    data = (root / "JPEGImages" / "b.jpg").read_bytes()
    (root / "JPEGImages" / "b.jpg").write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match=r"b\.xml: .*b\.jpg: cannot decode image"):
        load_detection_data(root, image_size=16)
    write_image(root / "JPEGImages" / "b.jpg", (40, 60))
    (root / "Annotations" / "c.xml").write_text("<annotation>\n<filename>c.png</filename>\n<object>\n</annotation>")
    with pytest.raises(DataError, match=r"c\.xml: malformed XML at line 4"):
        load_detection_data(root, image_size=16)
    (root / "Annotations" / "c.xml").write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><annotation>&a;</annotation>')
    with pytest.raises(DataError, match=r"c\.xml: XML with a DOCTYPE"):
        load_detection_data(root, image_size=16)


def test_bad_coco_and_yolo_files(tmp_path):
    coco = make_coco(tmp_path / "coco", SAMPLES[:3])
    instances = coco / "annotations" / "instances.json"
    instances.write_text('{"images": [\n{"id": 1,\n "file_name": "a.jpg"}\n,]}')
    with pytest.raises(DataError, match=r"instances\.json: malformed JSON at line 4"):
        load_detection_data(coco, image_size=16)
    data = coco_dict(SAMPLES[:3])
    data["annotations"][0]["category_id"] = 7
    data["annotations"][1]["bbox"] = [60, 40, 10, 10]
    instances.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances\.json: annotation id 1 box \[4, 6, 26, 34\]: category_id 7"):
        load_detection_data(coco, image_size=16)
    data["annotations"][0]["category_id"] = 1
    instances.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"instances\.json: annotation id 2 \('dog'\) box \[60, 40, 10, 10\]: outside"):
        load_detection_data(coco, image_size=16)

    yolo = make_yolo(tmp_path / "yolo", SAMPLES[:3])
    (yolo / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n\n0 0.5 oops 0.2\n")
    with pytest.raises(DataError, match=r"a\.txt: line 3 box 0 0\.5 oops 0\.2: expected 'class cx cy w h'"):
        load_detection_data(yolo, image_size=16)
    (yolo / "labels" / "a.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=r"a\.txt: line 1 box .*: class 5 is not in the class list"):
        load_detection_data(yolo, image_size=16)
    (yolo / "labels" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (yolo / "labels" / "ghost.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=r"ghost\.txt: label file has no image"):
        load_detection_data(yolo, image_size=16)


def test_empty_and_unknown_data(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="cannot tell the detection data format"):
        load_detection_data(tmp_path / "empty")
    with pytest.raises(DataError, match="no Pascal VOC .xml"):
        load_detection_data(tmp_path / "empty", data_format="voc")
    with pytest.raises(DataError, match="does not exist"):
        load_detection_data(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="data format must be one of"):
        load_detection_data(tmp_path / "empty", data_format="csv")
    coco = make_coco(tmp_path / "coco", SAMPLES[:1], data={"images": [], "annotations": [], "categories": []})
    with pytest.raises(DataError, match="no usable images"):
        load_detection_data(coco)
    make_voc(tmp_path / "coco", SAMPLES[:2], ann="annotations", img="images")
    with pytest.raises(DataError, match=r"several formats \(voc, coco\)"):
        detect_format(tmp_path / "coco")


def test_skip_invalid_skips_and_lists_each_bad_box_and_image(tmp_path):
    root = make_voc(tmp_path / "voc")
    ann = root / "Annotations"
    (ann / "a.xml").write_text(voc_xml("a.jpg", (64, 48), [("cat", 4, 6, 30, 40), ("cat", 4, 6, 90, 40)]))
    (ann / "b.xml").write_text(voc_xml("b.jpg", (40, 60), [("dog", 5, 5, 5, 9)]))
    (root / "JPEGImages" / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (ann / "zz.xml").write_text(voc_xml("zz.jpg", (10, 10), []))
    data = load_detection_data(root, image_size=16, skip_invalid=True)
    assert len(data.skipped) == 4, data.skipped
    assert [line.split(":")[0].rsplit("/", 1)[-1] for line in data.skipped] == ["zz.xml", "c.xml", "a.xml", "b.xml"]
    seen = by_name(data)
    assert "c.png" not in seen and len(seen) == 9
    assert seen["a.jpg"][1]["boxes"].shape == (1, 4) and seen["b.jpg"][1]["boxes"].shape == (0, 4)
    for name in "abcdefghij":
        (ann / f"{name}.xml").write_text("<annotation")
    with pytest.raises(DataError, match="no usable images"):
        load_detection_data(root, image_size=16, skip_invalid=True)


# ---------------------------------------------------------------------------------------------- real data


@pytest.mark.skipif(not RACCOON.is_dir(), reason="the raccoon data set is not in ../shared/data/detection")
def test_raccoon():
    data = load_detection_data(RACCOON, image_size=64)
    assert data.format == "voc" and data.classes == ["raccoon"] and data.skipped == []
    assert len(data.train) + len(data.val) + len(data.test) == 200 and len(data.test) == 40
    assert data.in_channels == 3  # three of the photos are greyscale JPEGs: repeated to RGB
    targets = [t for split in data.splits().values() for t in split.labels]
    boxes = torch.cat([t["boxes"] for t in targets])
    assert len(boxes) == 217 and all(len(t["boxes"]) >= 1 for t in targets)
    assert boxes.min() >= 0 and boxes.max() <= 64
    assert ((boxes[:, 2:] - boxes[:, :2]) > 0).all()
