"""Cross-validation bookkeeping: the folder it writes into, and the mean and spread of the folds' figures."""

from __future__ import annotations

import statistics

import pytest

from cnnlab.errors import ConfigError, RunError
from cnnlab.train.config import TrainConfig
from cnnlab.train.cv import cross_validate, cv_folder, summarize_folds


def test_summary_holds_every_fold_the_mean_and_the_sample_spread() -> None:
    reports = [{"accuracy": 0.7, "samples": 10, "name": "x"}, {"accuracy": 0.8, "samples": 10, "name": "y"}]
    summary = summarize_folds(reports)
    assert summary["folds"] == 2 and "name" not in summary
    assert summary["accuracy"]["per_fold"] == [0.7, 0.8]
    assert summary["accuracy"]["mean"] == pytest.approx(0.75)
    assert summary["accuracy"]["std"] == pytest.approx(statistics.stdev([0.7, 0.8]))


def test_a_finished_cross_validation_is_kept_and_a_foreign_folder_refused(tmp_path) -> None:
    base = tmp_path / "cv"
    assert cv_folder(base, overwrite=False) == base  # new
    base.mkdir()
    (base / "cv.json").write_text("{}")
    assert cv_folder(base, overwrite=False) == base  # unfinished: continued in place
    (base / "results.json").write_text("{}")
    assert cv_folder(base, overwrite=False) == tmp_path / "cv-2"
    assert cv_folder(base, overwrite=True) == base
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(RunError, match="no cross-validation of cnnlab's"):
        cv_folder(other, overwrite=True)


def test_a_task_without_folds_is_refused() -> None:
    with pytest.raises(ConfigError, match="the classification task has no folds"):
        cross_validate(TrainConfig(data="x"), 10)
