"""`cnnlab report` and `cnnlab diagnose` on a detection run: a tiny detector trained in the fixture (seconds)."""

from __future__ import annotations

import re

import pytest
import torch

BACKBONE = {
    "layers": [
        {"conv": {"out": 8, "kernel": 3, "padding": 1}},
        "relu",
        {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 16, "kernel": 3, "padding": 1}},
        "relu",
        {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 16, "kernel": 3, "padding": 1}},
        "relu",
        {"pool": {"type": "max", "size": 2}},
    ]
}


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory):
    from cnnlab.data.synthetic import digit_detection_splits
    from cnnlab.train import TrainConfig, fit
    from cnnlab.train.config import OptimizerConfig

    torch.set_num_threads(1)
    data = digit_detection_splits(train=64, val=16, test=16, canvas=64)
    out = tmp_path_factory.mktemp("det") / "run"
    config = TrainConfig(
        task="detection",
        model="yolo_grid",
        model_options={"backbone": BACKBONE},
        data="digits",
        epochs=2,
        batch_size=16,
        optimizer=OptimizerConfig(name="adamw", lr=0.003),
        out=str(out),
        progress=False,
        quiet=True,
        threads=1,
    )
    fit(config, data=data)
    return out, data


@pytest.fixture()
def in_memory_splits(monkeypatch, detection_run):
    """The report re-reads the run's splits; here they are the fixture's, not a regenerated digits set."""
    import cnnlab.evaluate.detection as evaluation

    _, data = detection_run
    monkeypatch.setattr(evaluation, "load_detection_split", lambda run, data_, split, *a: getattr(data, split))


def test_report_of_a_detection_run_has_its_sections(detection_run, in_memory_splits):
    from cnnlab.viz.report import write_report

    run_dir, _ = detection_run
    written = write_report(run_dir, mistakes=4)
    html = written.path.read_text(encoding="utf-8")
    assert written.missing == []
    titles = re.findall(r"<h2>(.*?)</h2>", html)
    assert titles == [
        "Overview",
        "Diagnosis",
        "Learning curves",
        "Evaluation (test split)",
        "Predicted vs. true boxes (val split)",
        "Configuration",
    ]
    for text in ("test mAP@0.5", "mAP@0.5:0.95", "AP@0.5", "true boxes", "confidence ≥ 0.25"):
        assert text in html
    assert html.count("data:image/png;base64,") == 3  # curves, PR curves, box grid
    for classification_only in ("Confusion", "Grad-CAM", "accuracy", "top-5"):
        assert classification_only not in html


def test_report_says_why_when_the_data_is_gone(detection_run, monkeypatch):
    import cnnlab.evaluate.detection as evaluation
    from cnnlab.errors import DataError
    from cnnlab.viz.report import write_report

    def gone(*args):
        raise DataError("/nowhere: data folder not found")

    monkeypatch.setattr(evaluation, "load_detection_split", gone)
    run_dir, _ = detection_run
    written = write_report(run_dir, out=run_dir / "gone.html")
    assert [title for title, _ in written.missing] == [
        "Evaluation (test split)",
        "Predicted vs. true boxes (val split)",
    ]
    assert all("data folder not found" in why for _, why in written.missing)


def test_diagnosis_of_a_detection_run_speaks_detection(detection_run):
    from cnnlab.diagnose import diagnose_run

    run_dir, _ = detection_run
    diagnosis = diagnose_run(run_dir)
    assert diagnosis.facts["monitor"] == "val_map50"
    text = " ".join(f.summary + " " + f.advice for f in diagnosis.findings).lower()
    for words in ("accuracy", "top-5", "classes", "ln k"):
        assert words not in text
    assert not {"class_imbalance", "limited_data", "complex_architecture"} & set(diagnosis.ids)
