"""`cnnlab faces ...` in the order a user runs them: train, evaluate, enroll, identify, verify, list, remove;
and the one-line errors a user meets on the way."""

from __future__ import annotations

import json
import sqlite3

import pytest
import yaml

from cnnlab.cli import main
from tests.tasks.faces.conftest import write_people
from tests.tasks.faces.test_task import TINY_BACKBONE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    people = write_people(root / "people", people=8, images=6)
    backbone = root / "tiny.yaml"
    backbone.write_text(yaml.safe_dump(TINY_BACKBONE))
    args = [
        "faces", "train", "--data", str(people), "--backbone", str(backbone), "--embedding-dim", "16",
        "--image-size", "32", "--no-detect", "--test-people", "2", "--val-people", "2", "--epochs", "4",
        "--batch-size", "8", "--threads", "1", "--out", str(root / "run"), "--no-progress",
    ]  # fmt: skip
    assert main(args) == 0
    return root


def _last_line(capsys) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_train_prints_the_eer_last_and_stores_the_threshold(trained):
    results = json.loads((trained / "run" / "results.json").read_text())
    assert set(results["test"]) >= {"verification", "identification", "open_set", "verification_at_threshold"}
    assert results["calibration"]["rule"] == "eer" and -1 <= results["calibration"]["threshold"] <= 1
    assert results["test"]["identification"]["k1"]["people"] == 2


def test_evaluate_writes_the_report_and_the_roc(trained, capsys):
    assert main(["faces", "evaluate", str(trained / "run")]) == 0
    last = _last_line(capsys)
    saved = json.loads((trained / "run" / "results.json").read_text())["test"]["verification"]["eer"]
    assert last == f"test verification EER: {saved:.4f}"  # the same people, the same figure
    assert (trained / "run" / "faces_test_roc.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["faces", "evaluate", str(trained / "run"), "--data", str(trained / "people"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["people"] == 8 and report["images"] == 48


def test_enroll_identify_verify_list_remove(trained, tmp_path, capsys):
    run, people, gallery = str(trained / "run"), trained / "people", str(tmp_path / "g.db")
    for person in ("person00", "person01", "person02"):
        files = [str(people / person / f"img{i}.png") for i in (0, 1)]
        assert main(["faces", "enroll", "--run", run, "--gallery", gallery, "--name", person, *files]) == 0
    assert "enrolled 2 images of person02 (2 in" in capsys.readouterr().out
    query = str(people / "person01" / "img4.png")
    assert main(["faces", "identify", "--run", run, "--gallery", gallery, query, "--json", "--threshold", "-1"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in answer["matches"]][:1] == ["person01"] and answer["identity"] == "person01"
    assert answer["matches"][0]["score"] >= answer["matches"][1]["score"]
    # nobody is similar enough at a threshold of 1: the open-set answer
    assert main(["faces", "identify", "--run", run, "--gallery", gallery, query, "--json", "--threshold", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["identity"] == "unknown"
    assert main(["faces", "verify", "--run", run, query, str(people / "person01" / "img5.png"), "--json"]) == 0
    verdict = json.loads(capsys.readouterr().out)
    assert set(verdict) == {"same", "score", "threshold", "files"} and isinstance(verdict["same"], bool)
    assert main(["faces", "list", "--gallery", gallery, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"name": f"person0{i}", "images": 2} for i in range(3)]
    assert main(["faces", "remove", "--gallery", gallery, "--name", "person01"]) == 0
    assert capsys.readouterr().out.startswith("removed person01 (2 images)")
    assert main(["faces", "list", "--gallery", gallery, "--json"]) == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["person00", "person02"]


def test_one_line_errors(trained, tmp_path, capsys):
    run, people = str(trained / "run"), trained / "people"
    image = str(people / "person00" / "img0.png")
    other = tmp_path / "other.db"
    from cnnlab.tasks.faces.gallery import Gallery

    with Gallery(other, model_id="0123456789abcdef", dim=16):
        pass
    empty = tmp_path / "empty.db"
    not_image = tmp_path / "notes.png"
    not_image.write_text("not an image")
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("create table t (x)").connection.close()
    cases = [
        (["faces", "identify", "--run", run, "--gallery", str(other), image], "was made by model"),
        (["faces", "identify", "--run", run, "--gallery", str(empty), image], str(empty)),
        (["faces", "list", "--gallery", str(foreign)], "not a cnnlab face gallery"),
        (["faces", "verify", "--run", run, image, str(not_image)], "notes.png: cannot decode image"),
        (["faces", "verify", "--run", run, image, str(tmp_path / "missing.png")], "no such image file"),
        (["faces", "evaluate", str(tmp_path)], "run.json"),
        (["faces", "enroll", "--run", run, "--gallery", str(empty), "--name", " ", image], "--name must not be empty"),
    ]
    for argv, expected in cases:
        assert main(argv) != 0, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, (argv, err)


def test_classification_commands_point_to_the_faces_commands(trained, capsys):
    assert main(["evaluate", str(trained / "run")]) != 0
    assert "use `cnnlab faces evaluate" in capsys.readouterr().err
