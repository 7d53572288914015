"""A run folder works from any working directory: run.json stores the absolute paths of the files the config names
(`data`, `test_data`, a YAML model), evaluate/report/resume/diagnose read them from there, and data that has moved
is one line naming the missing path and the flag that points at its new place."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnlab.cli import main
from cnnlab.runs import resolve_saved_paths

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"
pytestmark = pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shipped MNIST")

TINY_NET = {"layers": [{"conv": {"out": 4, "kernel": 5}}, "relu", {"pool": {"size": 4}}, "flatten", {"fc": "classes"}]}


def _idx(name: str, count: int, header: int, item: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(item))
    with gzip.open(MNIST / name) as handle:
        data = handle.read(header + count * size)
    return np.frombuffer(data[header:], dtype=np.uint8).reshape(count, *item)


def _write_digits(path: Path, train: int = 300, test: int = 100) -> None:
    """Real MNIST digits as an .npz (reading only the first images keeps this fast)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        train_images=_idx("train-images-idx3-ubyte.gz", train, 16, (28, 28)),
        train_labels=_idx("train-labels-idx1-ubyte.gz", train, 8, ()),
        test_images=_idx("t10k-images-idx3-ubyte.gz", test, 16, (28, 28)),
        test_labels=_idx("t10k-labels-idx1-ubyte.gz", test, 8, ()),
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A project folder: data/digits.npz, nets/tiny.yaml, and runs/tiny trained there with relative paths."""
    root = tmp_path_factory.mktemp("project")
    _write_digits(root / "data" / "digits.npz")
    (root / "nets").mkdir()
    (root / "nets" / "tiny.yaml").write_text(yaml.safe_dump(TINY_NET), encoding="utf-8")
    argv = ["train", "--model", "nets/tiny.yaml", "--data", "data/digits.npz", "--epochs", "1", "--batch-size", "64"]
    argv += ["--schedule.name", "none"]  # a constant rate: the run can be resumed for more epochs
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main([*argv, "--no-progress", "--out", "runs/tiny", "--seed", "0"]) == 0
    return root


@pytest.fixture
def elsewhere(tmp_path, monkeypatch) -> Path:
    """Another working directory, with nothing of the project in it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def _copy_run(project: Path, to: Path) -> Path:
    return Path(shutil.copytree(project / "runs" / "tiny", to / "run"))


def _edit_meta(run: Path, edit) -> None:
    meta = json.loads((run / "run.json").read_text())
    edit(meta)
    (run / "run.json").write_text(json.dumps(meta))


def _cli(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def test_run_json_stores_absolute_paths_config_keeps_the_users_words(project):
    run = project / "runs" / "tiny"
    paths = json.loads((run / "run.json").read_text())["data"]["paths"]
    assert paths == {"data": str(project / "data" / "digits.npz"), "model": str(project / "nets" / "tiny.yaml")}
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert (config["data"], config["model"]) == ("data/digits.npz", "nets/tiny.yaml")


def test_evaluate_from_another_directory_gives_the_training_figure(project, elsewhere, capsys):
    run = project / "runs" / "tiny"
    code, out, err = _cli(["evaluate", str(run), "--json"], capsys)
    assert code == 0 and err == []
    trained = json.loads((run / "results.json").read_text())["test"]["accuracy"]
    assert round(json.loads(out)["accuracy"], 4) == trained
    code, out, _ = _cli(["evaluate", str(run), "--split", "val", "--json"], capsys)
    val_size = json.loads((run / "run.json").read_text())["data"]["sizes"]["val"]  # the run's own validation images
    assert code == 0 and sum(map(sum, json.loads(out)["confusion_matrix"])) == val_size


def test_report_from_another_directory_has_every_section(project, elsewhere, capsys):
    code, out, err = _cli(["report", str(project / "runs" / "tiny"), "--out", str(elsewhere / "r.html")], capsys)
    assert code == 0 and err == [], err
    assert out.strip() == f"written: {elsewhere / 'r.html'}"
    html = (elsewhere / "r.html").read_text()
    assert "Not made" not in html and "<h2>Evaluation (test split)</h2>" in html


def test_resume_from_another_directory(project, elsewhere, capsys):
    run = _copy_run(project, elsewhere.parent)
    code, out, err = _cli(["train", "--resume", str(run), "--epochs", "2", "--no-progress"], capsys)
    assert code == 0, err
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 2


def test_resume_with_moved_data_is_pointed_at_its_new_place(project, elsewhere, capsys):
    run = _copy_run(project, elsewhere.parent)
    gone = elsewhere.parent / "old_place" / "digits.npz"
    _edit_meta(run, lambda meta: meta["data"]["paths"].update(data=str(gone)))
    argv = ["train", "--resume", str(run), "--epochs", "2", "--no-progress"]
    code, _, err = _cli(argv, capsys)
    assert code == 1 and len(err) == 1 and str(gone) in err[0] and "--data PATH" in err[0]
    code, _, err = _cli([*argv, "--data", str(project / "data" / "digits.npz")], capsys)
    assert code == 0, err


def test_diagnose_learning_curve_from_another_directory(project, elsewhere, capsys):
    run = _copy_run(project, elsewhere.parent)
    code, out, err = _cli(["diagnose", str(run), "--data-fractions", "0.5,1.0", "--json"], capsys)
    assert code == 0, err
    assert (run / "learning_curve" / "learning_curve.json").is_file()


def test_moved_data_is_one_line_naming_the_path_and_the_flag(project, elsewhere, capsys):
    run = _copy_run(project, elsewhere.parent)
    gone = elsewhere.parent / "old_place" / "digits.npz"
    _edit_meta(run, lambda meta: meta["data"]["paths"].update(data=str(gone)))
    code, _, err = _cli(["evaluate", str(run)], capsys)
    assert code == 1 and len(err) == 1
    assert err[0].startswith(f"cnnlab: error: {gone}: the run's data is not there any more")
    assert "--data PATH" in err[0]
    code, out, err = _cli(["evaluate", str(run), "--data", str(project / "data" / "digits.npz")], capsys)
    assert code == 0 and err == [] and "test accuracy" in out


def test_report_with_moved_data_says_which_sections_are_missing_and_why(project, elsewhere, capsys):
    run = _copy_run(project, elsewhere.parent)
    gone = elsewhere.parent / "old_place" / "digits.npz"
    _edit_meta(run, lambda meta: meta["data"]["paths"].update(data=str(gone)))
    code, out, err = _cli(["report", str(run)], capsys)
    assert code == 0
    assert all(line.startswith("cnnlab: note: report section ") for line in err) and len(err) == 4
    assert str(gone) in err[0] and "--data PATH" in err[0]
    assert "not made: Evaluation (test split), Most confident mistakes, Feature maps, Grad-CAM" in out
    code, out, err = _cli(["report", str(run), "--data", str(project / "data" / "digits.npz")], capsys)
    assert code == 0 and err == []


def test_a_run_without_stored_paths_says_where_its_relative_path_was_looked_for(project, elsewhere, capsys):
    run = _copy_run(project, elsewhere.parent)
    _edit_meta(run, lambda meta: meta["data"].pop("paths"))
    code, _, err = _cli(["evaluate", str(run)], capsys)
    assert code == 1 and len(err) == 1
    assert f"data/digits.npz: the run's data is not found from {elsewhere}" in err[0] and "--data PATH" in err[0]


def test_resolving_saved_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stored, here = tmp_path / "stored.npz", tmp_path / "data" / "digits.npz"
    values = {"data": "data/digits.npz", "test_data": None, "model": "lenet5"}
    # The stored absolute path wins over the relative one while it exists...
    stored.touch()
    assert resolve_saved_paths(values, {"data": str(stored)})["data"] == str(stored)
    # ...a relative path that exists here is kept when the stored one is gone (the whole project moved)...
    stored.unlink()
    here.parent.mkdir()
    here.touch()
    assert resolve_saved_paths(values, {"data": str(stored)})["data"] == "data/digits.npz"
    # ...and with neither, the stored path is what the error will name.
    here.unlink()
    assert resolve_saved_paths(values, {"data": str(stored)})["data"] == str(stored)
    # Absolute paths and names (never stored) are left alone.
    assert resolve_saved_paths({"data": "/x/y.npz"}, {"data": str(stored)}) == {"data": "/x/y.npz"}
    assert resolve_saved_paths({"data": "mnist", "model": "lenet5"}, {}) == {"data": "mnist", "model": "lenet5"}


def test_a_named_data_set_stays_a_name(elsewhere, capsys):
    argv = ["train", "--model", "lenet5", "--data", "mnist", "--train-samples", "100", "--epochs", "1"]
    assert main([*argv, "--quiet", "--out", "run"]) == 0
    assert json.loads((elsewhere / "run" / "run.json").read_text())["data"]["paths"] == {}
    assert yaml.safe_load((elsewhere / "run" / "config.yaml").read_text())["data"] == "mnist"
