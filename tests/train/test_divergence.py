"""A loss that becomes NaN/inf stops the run in one line; the folder keeps what happened and finite checkpoints;
`diagnose` prescribes only finite values; `export` refuses non-finite weights."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cnnlab.diagnose import diagnose_run
from cnnlab.diagnose.facts import build_facts
from cnnlab.diagnose.prescribe import make_finding
from cnnlab.diagnose.rules import run_rules
from cnnlab.diagnose.run import fixed_config
from cnnlab.errors import ConfigError, RunError, TrainingDiverged
from cnnlab.export import export_run
from cnnlab.export.exporters import MAX_OPSET, MIN_OPSET, check_opset
from cnnlab.train import fit
from cnnlab.train.callbacks import Callback
from cnnlab.train.loop import DivergenceWatch, StepSettings, divergence_message
from tests.diagnose import cases

from .test_fit import small_config


class PoisonAfterEpoch(Callback):
    """Sets one weight to NaN after `epoch` was checkpointed (user callbacks run after the checkpoint), and
    counts the steps of each epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.steps: dict[int, int] = {}
        self.current = 0

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.current = epoch

    def on_batch_end(self, trainer, step: int, batch_size: int) -> None:
        self.steps[self.current] = step

    def on_epoch_end(self, trainer, epoch: int, metrics) -> None:
        if epoch == self.epoch:
            with torch.no_grad():
                next(trainer.unwrapped_model.parameters()).view(-1)[0] = math.nan


def finite(state: dict) -> bool:
    return all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


@pytest.fixture(scope="module")
def diverged(tmp_path_factory):
    """A run whose loss became NaN in epoch 2 of 3 (900 training images, 113 steps of 8)."""
    tmp = tmp_path_factory.mktemp("diverged")
    config = small_config(tmp, train_samples=1000, batch_size=8, epochs=3)
    poison = PoisonAfterEpoch(1)
    with pytest.raises(TrainingDiverged) as error:
        fit(config, callbacks=[poison])
    return config, tmp / "run", str(error.value), poison


def test_the_message_names_the_run_epoch_steps_cause_and_what_is_kept(diverged):
    _, run, message, _ = diverged
    assert message == (
        f"{run}: training diverged: the loss became nan in epoch 2 (steps 1-25 of 113, learning rate 0.003); "
        "the learning rate is likely too high for this model: try --optimizer.lr 0.0003 or --grad-clip 1; "
        "last.pt keeps epoch 1"
    )
    assert "\n" not in message


def test_the_epoch_stops_at_the_next_check_not_at_its_end(diverged):
    *_, poison = diverged
    # The NaN was in the sum checked at step 25; that check is read at step 50 (never waiting on the device).
    assert poison.steps == {1: 113, 2: 50}


def test_the_folder_keeps_the_diverged_epoch_and_finite_checkpoints(diverged):
    _, run, _, _ = diverged
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2]
    assert math.isfinite(rows[0]["train_loss"]) and math.isnan(rows[1]["train_loss"])
    assert "val_loss" not in rows[1]  # NaN weights are not validated
    last = torch.load(run / "last.pt", weights_only=False)
    best = torch.load(run / "best.pt", weights_only=False)
    assert last["epoch"] == best["epoch"] == 1 and len(last["history"]) == 1
    assert finite(last["model"]) and finite(best["model"])
    assert not (run / "results.json").exists()


def test_diagnose_finds_the_divergence_and_prescribes_finite_values(diverged):
    _, run, _, _ = diverged
    diagnosis = diagnose_run(run)
    assert diagnosis.findings[0].id == "divergence"
    changes = diagnosis.findings[0].changes
    assert changes == {"optimizer.lr": pytest.approx(0.0003), "grad_clip": 1.0, "schedule.warmup_epochs": 1}
    fixed = fixed_config(diagnosis)
    assert fixed.optimizer.lr == pytest.approx(0.0003) and fixed.grad_clip == 1.0


def test_a_diverged_run_resumes_from_its_last_finite_epoch(diverged):
    config, run, _, _ = diverged
    result = fit(config, resume=run)
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert all(math.isfinite(row["train_loss"]) for row in result.history)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in rows] == [1, 2, 3]


def test_a_learning_rate_far_too_high_diverges_in_the_first_epoch(tmp_path):
    config = small_config(tmp_path, train_samples=300, batch_size=16, epochs=2, optimizer={"name": "sgd", "lr": 1e12})
    with pytest.raises(TrainingDiverged, match=r"in epoch 1 \(.*; no epoch finished, so no checkpoint was written$"):
        fit(config)
    assert not (tmp_path / "run" / "last.pt").exists() and not (tmp_path / "run" / "results.json").exists()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 1


def test_the_watch_brackets_the_steps_without_waiting():
    watch = DivergenceWatch(every=5)
    total = torch.zeros(())
    stopped = None
    for step in range(1, 40):
        total += math.nan if step == 13 else 1.0
        if watch.after_step(step, total):
            stopped = step
            break
    assert stopped == 20  # the check of step 15 is read at step 20
    assert watch.diverged_steps(stopped, finite_at_end=False) == (11, 15)
    watch.start_epoch()
    for step in range(1, 8):
        watch.after_step(step, torch.ones(()))
    assert watch.diverged_steps(7, finite_at_end=True) is None
    assert watch.diverged_steps(7, finite_at_end=False) == (6, 7)  # NaN only after the last check


def test_fp16_divergence_points_at_the_overflow():
    settings = StepSettings(torch.device("cpu"), precision="fp16", grad_clip=1.0)
    message = divergence_message(3, (4, 4), 10, math.inf, 0.1, 0.1, settings)
    assert message == (
        "training diverged: the loss became inf in epoch 3 (step 4 of 10, learning rate 0.1); fp16 likely "
        "overflowed (its largest number is 65504): try --precision bf16 or --optimizer.lr 0.01"
    )


def test_the_rules_never_prescribe_a_nan_even_from_a_nan_learning_rate():
    # A config from before options were validated (diagnose_run itself refuses such a config.yaml in one line).
    rows, cfg, meta = cases.healthy()
    cfg = {**cfg, "optimizer": {**cfg.get("optimizer", {}), "lr": math.nan}}
    findings = run_rules(build_facts(rows[:2] + [cases.nan_row(3)], cfg, meta))
    assert findings[0].id == "divergence"
    for finding in findings:
        assert all(not _nonfinite(value) for value in finding.changes.values()), finding
    assert findings[0].changes["optimizer.lr"] == pytest.approx(0.01)  # SGD's typical 0.1, a tenth
    assert "nan" not in findings[0].advice


def test_make_finding_drops_a_non_finite_change():
    finding = make_finding(
        {}, "underfitting", "warning", "t", {}, "s", {"optimizer.lr": math.inf, "epochs": 20}, "Words."
    )
    assert finding.changes == {"epochs": 20} and finding.advice == "Words. Flags: --epochs 20"


def _nonfinite(value) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def test_export_refuses_non_finite_weights_naming_the_run_and_parameter(tmp_path):
    result = fit(small_config(tmp_path, train_samples=300, epochs=1))
    path = result.run_dir / "best.pt"
    state = torch.load(path, weights_only=False)
    state["model"]["classifier.0.bias"][3] = math.inf
    torch.save(state, path)
    with pytest.raises(RunError) as error:
        export_run(result.run_dir, "torchscript")
    assert str(error.value) == (
        f"{result.run_dir}: cannot export: parameter 'classifier.0.bias' holds NaN or infinite values (checkpoint of "
        "epoch 1); the run diverged: retrain it with a lower --optimizer.lr or --grad-clip 1"
    )
    assert not (result.run_dir / "model.pt").exists()


def test_opset_is_checked():
    assert check_opset("17") == 17 and check_opset(MIN_OPSET) == MIN_OPSET and check_opset(MAX_OPSET) == MAX_OPSET
    for bad in ("", "x", "17.0", "-1", str(MIN_OPSET - 1), str(MAX_OPSET + 1)):
        with pytest.raises(ConfigError, match=f"--opset must be a whole number in \\[{MIN_OPSET}, {MAX_OPSET}\\]"):
            check_opset(bad)
