"""`cnnlab report` never leaves a section silently empty: one that cannot be made says why on the page and in one
`cnnlab: note:` line on the terminal, and the page is still written (exit 0). Values read as people write them."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from cnnlab.cli import main
from cnnlab.viz import report_html as H

NOTE = re.compile(r"^cnnlab: note: report section '([^']+)' not made: (.+)$")


def _section(html: str, anchor: str) -> str:
    return html.split(f'<section id="{anchor}">')[1].split("</section>")[0]


def _report(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    capsys.readouterr()
    code = main(["report", *argv])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_run, tmp_path / "run"))


def _move_data(run: Path, to: Path) -> None:
    """As if the data had moved since training: config.yaml and run.json name a path that is gone."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"] = str(to)
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    meta = json.loads((run / "run.json").read_text())
    meta["data"]["paths"]["data"] = str(to)
    (run / "run.json").write_text(json.dumps(meta))


def test_moved_data_notes_each_missing_section_on_the_terminal_and_the_page(run_copy, tmp_path, capsys):
    gone = tmp_path / "gone" / "mnist_small.npz"
    _move_data(run_copy, gone)
    code, out, err = _report([str(run_copy)], capsys)
    assert code == 0
    notes = [NOTE.match(line) for line in err]
    assert all(notes), err
    assert [n.group(1) for n in notes] == [
        "Evaluation (test split)",
        "Most confident mistakes",
        "Feature maps",
        "Grad-CAM",
    ]
    assert (
        notes[0].group(2).startswith(f"no split could be evaluated (test and val: {gone}: the run's data is not there")
    )
    assert "--data PATH" in notes[0].group(2)
    assert all(n.group(2) == "no split could be evaluated (see Evaluation)" for n in notes[1:])
    assert out.strip().startswith(f"written: {run_copy / 'report.html'} (not made: Evaluation (test split), ")

    html = (run_copy / "report.html").read_text()
    for anchor in ("evaluation", "mistakes", "features", "gradcam"):
        assert '<p class="note missing"><b>Not made:</b> ' in _section(html, anchor)
    assert str(gone) in _section(html, "evaluation")
    for anchor in ("overview", "curves", "filters", "config"):
        assert "Not made" not in _section(html, anchor)
    notice = html.split("<main>")[1].split("<section")[0]
    assert '<a href="#evaluation">Evaluation (test split)</a>, <a href="#mistakes">' in notice


def test_other_missing_parts_each_say_why(run_copy, capsys):
    for name in ("metrics.jsonl", "metrics.csv"):
        (run_copy / name).unlink(missing_ok=True)
    code, out, err = _report([str(run_copy), "--gradcam", "0"], capsys)
    assert code == 0
    reasons = dict(NOTE.match(line).groups() for line in err)
    assert set(reasons) == {"Diagnosis", "Learning curves", "Grad-CAM"}, reasons
    assert reasons["Learning curves"] == "no metrics.jsonl in the run folder: no epoch finished"
    assert reasons["Diagnosis"].startswith("the diagnosis failed: ") and "no metrics.jsonl" in reasons["Diagnosis"]
    assert reasons["Grad-CAM"] == "0 images asked for (--gradcam)"

    (run_copy / "config.yaml").unlink()
    code, out, err = _report([str(run_copy)], capsys)
    reasons = dict(NOTE.match(line).groups() for line in err)
    assert code == 0 and reasons["Configuration"] == "no config.yaml in the run folder"
    assert "no config.yaml" in reasons["Evaluation (test split)"]


def test_a_complete_report_prints_no_note(tiny_run, tmp_path, capsys):
    code, out, err = _report([str(tiny_run), "--out", str(tmp_path / "r.html")], capsys)
    assert (code, err, out.strip()) == (0, [], f"written: {tmp_path / 'r.html'}")
    html = (tmp_path / "r.html").read_text()
    assert "Not made" not in html

    # Item 8 of issue 11: yes/no, —, seconds with one decimal and a unit; never Python's False/None.
    overview, config = _section(html, "overview"), _section(html, "config")
    assert "<th>stopped early</th><td>no</td>" in overview
    seconds = json.loads((tiny_run / "results.json").read_text())["train_seconds"]
    assert f"<th>training time</th><td>{seconds:.1f} s</td>" in overview
    assert "<td>progress</td><td>no</td>" in config and "<td>batch_norm</td><td>—</td>" in config
    assert "<td>optimizer.lr</td><td>0.003</td>" in config and "<td>augment</td><td>—</td>" in config
    assert "<th>early_stopping</th><td>no</td>" in config  # the regularization table
    assert not re.search(r">(False|True|None)<", html)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(True, "yes"), (False, "no"), (None, "—"), (60000, "60,000"), (0.1, "0.1"), (5e-05, "5e-05"), (0.003, "0.003")]
    + [(428.8870, "428.9"), (12345.6, "12,346"), ("adam", "adam")],
)
def test_values_are_shown_as_people_write_them(value, shown):
    assert H.text(value) == shown


def test_seconds_have_one_decimal_and_a_unit():
    assert (H.seconds(428.8870), H.seconds(0.16), H.seconds(None)) == ("428.9 s", "0.2 s", "—")
