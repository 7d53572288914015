"""`cnnlab detect train|evaluate|predict` as a new user meets them: three annotation formats of the same scenes
give the same result, broken files are named (or skipped with --skip-invalid), predictions name their class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.data.synthetic import DIGIT_CLASSES, digit_scenes, write_detection_dataset
from tests.tasks.detection.conftest import SMALL_BACKBONE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenes():
    images, targets = digit_scenes(60, seed=3)
    for i, target in enumerate(targets):
        target["file"] = f"scene_{i:03d}.png"
    return images, targets


@pytest.fixture(scope="module")
def backbone_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("backbone") / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL_BACKBONE))
    return path


def train_args(data: Path, out: Path, backbone: Path, *extra: str) -> list[str]:
    return [
        "detect", "train", "--data", str(data), "--backbone", str(backbone), "--model-options",
        "neck_channels=32,neck_depth=1", "--epochs", "1", "--batch-size", "16", "--threads", "1",
        "--out", str(out), "--no-progress", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def voc_run(tmp_path_factory, scenes, backbone_file):
    root = tmp_path_factory.mktemp("voc")
    write_detection_dataset(root / "data", *scenes, DIGIT_CLASSES, "voc")
    assert main(train_args(root / "data", root / "run", backbone_file)) == 0
    return root


def test_formats_give_the_same_result(voc_run, tmp_path, scenes, backbone_file, capsys):
    expected = json.loads((voc_run / "run" / "results.json").read_text())["test"]
    for fmt in ("coco", "yolo"):
        write_detection_dataset(tmp_path / fmt, *scenes, DIGIT_CLASSES, fmt)
        assert main(train_args(tmp_path / fmt, tmp_path / f"run_{fmt}", backbone_file)) == 0
        result = json.loads((tmp_path / f"run_{fmt}" / "results.json").read_text())["test"]
        assert result["map50"] == expected["map50"] and result["map50_95"] == expected["map50_95"], fmt
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == f"test mAP@0.5: {expected['map50']:.4f}"


def test_broken_files_are_named_or_skipped(tmp_path, scenes, backbone_file, capsys):
    data = tmp_path / "data"
    write_detection_dataset(data, *scenes, DIGIT_CLASSES, "voc")
    xml = sorted((data / "Annotations").glob("*.xml"))
    text = xml[0].read_text()
    xml[0].write_text(text.replace("<xmax>", "<xmax>9", 1))  # a box far outside its 128-pixel image
    (data / "JPEGImages" / xml[1].with_suffix(".png").name).unlink()  # an annotation without its image
    png = data / "JPEGImages" / xml[2].with_suffix(".png").name
    png.write_bytes(png.read_bytes()[:60])  # a truncated image
    assert main(train_args(data, tmp_path / "run", backbone_file)) == 1
    error = capsys.readouterr().err.strip().splitlines()
    broken = (xml[0].name, xml[1].name, png.name)
    assert len(error) == 1 and error[0].startswith("cnnlab: error: ") and any(name in error[0] for name in broken)
    assert not (tmp_path / "run").exists()
    assert main(train_args(data, tmp_path / "run", backbone_file, "--skip-invalid")) == 0
    captured = capsys.readouterr()
    assert "skipped 3 invalid" in captured.err
    skipped = (tmp_path / "run" / "skipped.txt").read_text().splitlines()
    assert len(skipped) == 3 and any(xml[1].name in line or xml[1].stem in line for line in skipped)


def test_evaluate_and_predict(voc_run, tmp_path, capsys):
    run = voc_run / "run"
    results = json.loads((run / "results.json").read_text())["test"]
    assert main(["detect", "evaluate", str(run)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"test mAP@0.5: {results['map50']:.4f}"
    assert (run / "pr_curves_test.png").stat().st_size > 1000
    images = voc_run / "data" / "JPEGImages"
    assert (
        main(
            [
                "detect",
                "predict",
                str(run),
                str(images),
                "--json",
                "--conf",
                "0.01",
                "--save-dir",
                str(tmp_path / "drawn"),
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert len(report["images"]) == 60
    found = [d for item in report["images"] for d in item["detections"]]
    assert found and all(d["class"] in DIGIT_CLASSES for d in found)
    assert all(0 <= v <= 128 for d in found for v in d["box"])
    assert len(list((tmp_path / "drawn").glob("*.png"))) == 60


def test_detect_errors_are_one_line(tmp_path, capsys):
    assert main(["detect", "train", "--data", "digits", "--model", "resnet18", "--out", str(tmp_path / "r")]) == 1
    assert "--model yolo_grid --backbone resnet18" in capsys.readouterr().err
    assert main(["detect", "train", "--data", "digits", "--augment", "rotate=10", "--out", str(tmp_path / "r")]) == 1
    assert "augment.rotate is not supported for detection" in capsys.readouterr().err
    assert main(["detect"]) == 2


def test_classification_commands_point_to_detect(voc_run, capsys):
    run = str(voc_run / "run")
    assert main(["evaluate", run]) == 1
    assert f"use `cnnlab detect evaluate {run}`" in capsys.readouterr().err
    assert main(["predict", run, str(voc_run / "data" / "JPEGImages")]) == 1
    assert f"use `cnnlab detect predict {run}`" in capsys.readouterr().err
