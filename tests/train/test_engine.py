"""The engine's contracts: one tracker for best.pt / restored weights / results.json, resume refusals,
one loader for training and evaluation, task registry, and runs loading without training code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from cnnlab import tasks
from cnnlab.cli import main
from cnnlab.config import load_config
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, build_run, fit
from cnnlab.train.callbacks import Callback

from .test_fit import small_config


def history_of(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_best_pt_restored_weights_and_results_agree_with_min_delta(tmp_path):
    config = small_config(
        tmp_path, epochs=5, train_samples=1000, early_stopping={"monitor": "val_loss", "min_delta": 0.05}
    )
    result = fit(config)
    run = result.run_dir
    # The min_delta rule applied to the logged history by hand: an epoch counts only if it beats the best by 0.05.
    best, best_epoch = None, None
    for row in history_of(run):
        if best is None or row["val_loss"] < best - 0.05:
            best, best_epoch = row["val_loss"], row["epoch"]
    saved = torch.load(run / "best.pt", weights_only=False)
    assert result.results["best_epoch"] == saved["epoch"] == best_epoch
    for key, value in result.model.state_dict().items():
        assert torch.equal(value, saved["model"][key]), key


def test_extending_a_one_cycle_run_is_refused_in_one_line(tmp_path, capsys):
    run = fit(small_config(tmp_path, epochs=2, train_samples=500, schedule={"name": "onecycle"})).run_dir
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "run.json")}
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "cannot extend a one-cycle run from 2 to 3 epochs" in error
    assert {name: (run / name).read_bytes() for name in before} == before  # nothing written


def test_extending_a_cosine_run_works(tmp_path, capsys):
    run = fit(small_config(tmp_path, epochs=2, train_samples=500, schedule={"name": "cosine"})).run_dir
    assert main(["train", "--resume", str(run), "--epochs", "3"]) == 0
    assert [row["epoch"] for row in history_of(run)] == [1, 2, 3]
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    assert "already trained 3 epochs" in capsys.readouterr().err


def test_evaluate_val_of_a_train_samples_run_is_the_runs_own_validation_set(tmp_path):
    from cnnlab.evaluate.runs import evaluate_run

    result = fit(small_config(tmp_path, epochs=2, train_samples=600, val_split=0.2))
    meta = json.loads((result.run_dir / "run.json").read_text())
    report = evaluate_run(result.run_dir, split="val").report
    assert sum(report.per_class["support"]) == meta["data"]["sizes"]["val"]
    best = next(row for row in history_of(result.run_dir) if row["epoch"] == result.results["best_epoch"])
    assert report.accuracy == pytest.approx(best["val_accuracy"], abs=1e-12)


def test_a_bare_yaml_list_of_layers_is_a_net(tmp_path):
    net = tmp_path / "net.yaml"
    net.write_text("- conv: {out: 8, kernel: 3}\n- relu\n- global_pool\n- fc: classes\n")
    assert load_config(TrainConfig, net).layers[0] == {"conv": {"out": 8, "kernel": 3}}
    run = build_run(small_config(tmp_path, model=str(net), train_samples=200, epochs=1))
    assert run.meta["model"]["layers"][-1] == {"fc": "classes"}
    assert run.model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_task_registry():
    assert "classification" in tasks.list_tasks()
    task = tasks.create("classification")
    assert task.metric_mode("val_accuracy") == "max" and task.metric_mode("train_loss") == "min"
    with pytest.raises(ConfigError, match="unknown task 'clasification'; did you mean 'classification'"):
        tasks.create("clasification")
    with pytest.raises(ConfigError, match="unknown config field 'task_options.margin'"):
        tasks.create("classification", {"margin": 0.5})


def test_a_monitor_that_is_never_logged_fails_at_the_first_epoch(tmp_path):
    with pytest.raises(ConfigError, match="'val_dice'.*direction is unknown"):
        fit(small_config(tmp_path, epochs=1, train_samples=200, monitor="val_dice"))
    config = small_config(tmp_path, epochs=1, train_samples=200, monitor="val_dice", early_stopping={"mode": "max"})
    with pytest.raises(ConfigError, match="'val_dice' is not logged by this run; logged metrics: train_accuracy"):
        fit(config)


def test_loading_a_run_imports_no_training_code(tmp_path):
    run = fit(small_config(tmp_path, epochs=1, train_samples=200)).run_dir
    code = (
        "import sys, cnnlab.runs, cnnlab.evaluate.predict;"
        f"run = cnnlab.runs.load_run({str(run)!r});"
        "print(sorted(m for m in sys.modules if m.startswith('cnnlab.train')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


class Counter(Callback):
    """Counts batches; its count must survive a resume, per instance."""

    def __init__(self, state_key=None):
        self.batches, self.losses = 0, []
        if state_key:
            self.state_key = state_key

    def on_batch_end(self, trainer, step, batch_size):
        self.batches += 1
        self.losses.append(float(trainer.step_output.loss))  # batch hooks see the step's loss and outputs
        assert trainer.step_output.outputs.shape == (batch_size, 10)

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state):
        self.batches = state["batches"]


def test_two_callbacks_of_one_class_keep_their_own_state_across_a_resume(tmp_path):
    from .test_fit import KillAfterEpoch

    config = small_config(tmp_path, epochs=2, train_samples=300, batch_size=100)
    first, second = Counter(), Counter()
    second.batches = 1000  # a different starting count: their states must not be swapped or merged
    with pytest.raises(KeyboardInterrupt):
        fit(config, callbacks=[first, second, KillAfterEpoch(1)])
    assert (first.batches, second.batches) == (3, 1003) and all(loss > 0 for loss in first.losses)
    resumed_first, resumed_second = Counter(), Counter()
    fit(config, resume=config.out, callbacks=[resumed_first, resumed_second])
    assert (resumed_first.batches, resumed_second.batches) == (6, 1006)


def test_the_engine_does_not_import_the_inference_side():
    """Dependencies point one way: cnnlab.train reads saved run files through cnnlab.runfiles, never cnnlab.runs."""
    import ast
    from pathlib import Path

    import cnnlab.train

    for path in Path(cnnlab.train.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith(("cnnlab.runs", "cnnlab.evaluate", "cnnlab.viz")), path
