"""Diagnosis per task: rules judge the tasks they apply to, loss rules use the task's reference loss, and
remedies respect what the task forbids."""

from __future__ import annotations

import math

from cnnlab.diagnose import diagnose
from cnnlab.diagnose.facts import build_facts
from cnnlab.diagnose.remedies import augmentation
from cnnlab.tasks import Task, register_task

from . import cases


@register_task
class LateralityTask(Task):
    """A test task on chest-X-ray-like images: left and right must not be swapped."""

    name = "test_laterality"
    metrics = {"loss": "min", "auc": "max"}
    forbidden_augmentations = frozenset({"flip"})


def task_meta(name: str, reference_loss: float | None, **kwargs) -> dict:
    meta = cases.meta(**kwargs)
    meta["task"] = {"name": name, "options": {}, "metrics": {"loss": "min"}, "reference_loss": reference_loss}
    return meta


def falling_loss_history() -> list[dict]:
    # A healthy margin-loss run: starts near its reference loss of 20 and falls; no accuracy is logged.
    losses = [19.0, 15.0, 12.0, 10.0, 9.0]
    return [{"epoch": i + 1, "train_loss": v, "val_loss": v + 0.5, "lr": 0.1} for i, v in enumerate(losses)]


def test_the_tasks_reference_loss_decides_divergence():
    rows = falling_loss_history()
    healthy = diagnose(rows, cases.config(epochs=5), task_meta("faces_like", reference_loss=20.0))
    assert "divergence" not in {f.id for f in healthy}
    # Judged as 10-way classification (ln 10 = 2.3) the same losses are 4x an untrained model's: diverged.
    classified = diagnose(rows, cases.config(epochs=5), task_meta("classification", reference_loss=math.log(10)))
    assert "divergence" in {f.id for f in classified}


def test_accuracy_rules_do_not_judge_other_tasks():
    rows = falling_loss_history()
    findings = diagnose(rows, cases.config(epochs=5), task_meta("faces_like", reference_loss=None))
    accuracy_rules = {"underfitting", "high_variance", "trained_too_long", "limited_data", "class_imbalance"}
    assert not accuracy_rules & {f.id for f in findings}


def test_remedies_leave_out_what_the_task_forbids():
    shape = (3, 32, 32)  # colour images: the remedy is crop + flip
    plain = build_facts([], cases.config(augment={}), cases.meta(shape=shape))
    assert augmentation(plain).get("augment.flip") is True
    lateral = build_facts([], cases.config(augment={}), task_meta("test_laterality", None, shape=shape))
    assert "augment.flip" not in augmentation(lateral) and "augment.crop" in augmentation(lateral)


def test_an_overfitting_text_run_gets_no_image_augmentation_and_no_coupled_decay():
    """Kim's CNN on MR overfits like an image classifier (train 100%, val 76%); the diagnosis says so, but
    prescribes neither image augmentations (the text task forbids them) nor L2 under Adadelta."""
    from cnnlab.tasks.text.task import TextTask

    rows, cfg, _ = cases.overfitting()
    cfg = {**cfg, "task": "text", "model": "kim_cnn", "optimizer": {"name": "adadelta", "lr": 1.0}}
    meta = cases.meta("kim_cnn", 5_460_302, [4317, 4318], 960, shape=(56,))
    meta["task"] = {**TextTask().run_meta(), "reference_loss": math.log(2)}
    findings = diagnose(rows, cfg, meta)
    ids = {f.id for f in findings}
    assert "high_variance" in ids and "limited_data" not in ids and "complex_architecture" not in ids
    changes = {key for f in findings for key in f.changes}
    assert not any(key.startswith("augment.") for key in changes)
    assert "optimizer.weight_decay" not in changes
    assert "early_stopping.patience" in changes
