"""`cnnlab diagnose`: readable text, a JSON list of findings, --write-config, and one-line errors."""

from __future__ import annotations

import json

from cnnlab.cli import main
from cnnlab.config import load_config
from cnnlab.train.config import TrainConfig
from tests.diagnose import cases


def test_json_output_is_a_list_of_findings(tmp_path, capsys):
    run = cases.write_run(tmp_path / "run", *cases.overfitting())
    assert main(["diagnose", str(run), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    assert isinstance(findings, list) and findings
    for finding in findings:
        assert set(finding) == {"id", "severity", "title", "evidence", "prescription"}
        assert set(finding["evidence"]) == {"summary", "values"}
        assert set(finding["prescription"]) == {"changes", "advice"}
        assert finding["severity"] in ("critical", "warning", "info")
    assert findings[0]["id"] == "high_variance"
    assert findings[0]["evidence"]["values"]["accuracy_gap_end"] > 0.1


def test_json_is_strict_even_for_a_nan_loss(tmp_path, capsys):
    rows, cfg, meta = cases.healthy()
    run = cases.write_run(tmp_path / "run", rows[:3] + [cases.nan_row(4)], cfg, meta)
    assert main(["diagnose", str(run), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out, parse_constant=lambda name: 1 / 0)
    assert findings[0]["id"] == "divergence"


def test_text_output_shows_verdict_evidence_and_flags(tmp_path, capsys):
    run = cases.write_run(tmp_path / "run", *cases.overfitting())
    assert main(["diagnose", str(run)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].endswith("OVERFITTING (1 critical, 4 warning)")
    assert "[critical] high_variance" in text and "14.2 points" in text
    assert "--early-stopping.patience 5" in text and "all together: cnnlab train --config" in text


def test_healthy_run_prints_healthy(tmp_path, capsys):
    run = cases.write_run(tmp_path / "run", *cases.healthy())
    assert main(["diagnose", str(run)]) == 0
    assert "HEALTHY (no findings)" in capsys.readouterr().out


def test_write_config_from_the_command_line(tmp_path, capsys):
    run = cases.write_run(tmp_path / "run", *cases.overfitting())
    fixed = tmp_path / "fixed.yaml"
    assert main(["diagnose", str(run), "--json", "--write-config", str(fixed), "--out", "runs/again"]) == 0
    captured = capsys.readouterr()
    json.loads(captured.out)  # stdout stays pure JSON; the note goes to stderr
    assert "written:" in captured.err
    config = load_config(TrainConfig, fixed)
    assert config.out == "runs/again" and config.early_stopping.patience == 5


def test_missing_run_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["diagnose", str(tmp_path / "nope")]) == 1
    assert "run folder not found" in capsys.readouterr().err


def test_unknown_only_id_is_rejected(tmp_path, capsys):
    run = cases.write_run(tmp_path / "run", *cases.healthy())
    assert main(["diagnose", str(run), "--only", "overfit", "--write-config", str(tmp_path / "f.yaml")]) == 1
    assert "unknown finding id 'overfit'" in capsys.readouterr().err
