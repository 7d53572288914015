"""Logs that read well anywhere: epoch lines without a terminal, a bar on one, --quiet, and Ctrl-C's resume hint."""

import io
import json
import re
import sys
from types import SimpleNamespace

import pytest

from cnnlab.cli import main, train_cmd
from cnnlab.train.callbacks import Callback
from cnnlab.train.callbacks.progress import ProgressBar, epoch_line

EPOCH_LINE = re.compile(
    r"epoch (\d+)/(\d+)  train loss \d+\.\d{4} acc \d\.\d{4}  val loss \d+\.\d{4} acc \d\.\d{4}  "
    r"lr \d\.\d{4}  \d+\.\d s  [\d,]+ img/s"
)
BAR_MARKS = ("\r", "█", "batch/s", "it/s", "%|")


def train(tmp_path, *flags, epochs=2, name="run"):
    argv = ["train", "--model", "lenet5_modern", "--data", "data/mnist", "--train-samples", "300"]
    argv += ["--schedule.name", "none"]  # the old default, pinned: one-cycle's first lr (1.2e-04) is not 0.dddd
    return main([*argv, "--batch-size", "64", "--epochs", str(epochs), "--out", str(tmp_path / name), *flags])


def result_lines(out: str) -> list[str]:
    lines = out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["run folder", "best epoch", "test accuracy"]
    return lines


def test_epoch_line_has_a_fixed_order_and_units():
    metrics = {
        "val_seconds": 0.4,
        "val_accuracy": 0.942,
        "epoch": 3,
        "train_accuracy": 0.93124,
        "lr": 0.01,
        "images_per_second": 8702.4,
        "val_loss": 0.198,
        "epoch_seconds": 5.8,
        "train_loss": 0.23111,
    }
    line = epoch_line(3, 10, metrics, order={"loss": "min", "accuracy": "max"})
    assert line == "epoch 3/10  train loss 0.2311 acc 0.9312  val loss 0.1980 acc 0.9420  lr 0.0100  6.2 s  8,702 img/s"


def test_epoch_line_for_any_task_and_small_learning_rates():
    metrics = {"train_loss": 1.5, "val_dice": 0.81, "val_loss": 1.25, "val_iou": 0.7, "lr": 3e-4, "epoch_seconds": 2}
    line = epoch_line(1, 5, metrics, order=["loss", "iou", "dice"])
    assert line == "epoch 1/5  train loss 1.5000  val loss 1.2500 iou 0.7000 dice 0.8100  lr 3.0e-04  2.0 s"


@pytest.mark.parametrize(("lr", "text"), [(0.01, "0.0100"), (3e-4, "3.0e-04"), (0.0, "0.0000"), (4e10, "4.0e+10")])
def test_learning_rates_read_at_any_size(lr, text):
    assert epoch_line(1, 1, {"lr": lr}) == f"epoch 1/1  lr {text}"


def test_a_diverged_epoch_leaves_its_line_to_the_error(capsys):
    trainer = SimpleNamespace(task=SimpleNamespace(metrics={"loss": "min"}))
    progress = ProgressBar(2, bar=False)
    progress.on_epoch_end(trainer, 1, {"train_loss": 0.5, "lr": 0.1})
    progress.on_epoch_end(trainer, 2, {"train_loss": float("nan"), "lr": 0.1})
    assert capsys.readouterr().err == "epoch 1/2  train loss 0.5000  lr 0.1000\n"


def test_without_a_terminal_one_line_per_epoch_and_no_bar(tmp_path, capsys):
    assert train(tmp_path) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 2, captured.err
    assert [EPOCH_LINE.fullmatch(line).groups() for line in lines] == [("1", "2"), ("2", "2")]
    assert not any(mark in captured.err for mark in BAR_MARKS)
    result_lines(captured.out)
    rows = [json.loads(row) for row in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert f"train loss {rows[1]['train_loss']:.4f} acc {rows[1]['train_accuracy']:.4f}" in lines[1]


def test_no_progress_keeps_the_epoch_lines(tmp_path, capsys):
    assert train(tmp_path, "--no-progress", epochs=1) == 0
    captured = capsys.readouterr()
    assert EPOCH_LINE.fullmatch(captured.err.strip()), captured.err
    result_lines(captured.out)


def test_quiet_prints_only_the_result(tmp_path, capsys):
    assert train(tmp_path, "--quiet", epochs=1) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    result_lines(captured.out)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_and_the_epoch_lines(tmp_path, capsys, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert train(tmp_path, epochs=1) == 0
    shown = terminal.getvalue()
    assert "\r" in shown and "batch" in shown  # the bar was drawn
    assert sum(bool(EPOCH_LINE.fullmatch(line.strip())) for line in re.split("[\r\n]", shown)) == 1
    result_lines(capsys.readouterr().out)


class InterruptAt(Callback):
    """Ctrl-C as the run sees it: a KeyboardInterrupt at the end of `epoch` (checkpointed), in its first batch
    (`where="batch"`) or once every epoch is done, before the test evaluation (`where="fit_end"`)."""

    def __init__(self, epoch: int, where: str = "epoch_end") -> None:
        self.epoch, self.where, self.current = epoch, where, 0

    def on_epoch_start(self, trainer, epoch):
        self.current = epoch

    def on_batch_end(self, trainer, step, batch_size):
        if self.where == "batch" and self.current == self.epoch:
            raise KeyboardInterrupt

    def on_epoch_end(self, trainer, epoch, metrics):
        if self.where == "epoch_end" and epoch == self.epoch:
            raise KeyboardInterrupt

    def on_fit_end(self, trainer):
        if self.where == "fit_end":
            raise KeyboardInterrupt


@pytest.fixture
def interrupt(monkeypatch):
    """`interrupt(epoch, where)`: the next `cnnlab train` is interrupted there."""
    real_fit = train_cmd.fit

    def arm(epoch: int, where: str = "epoch_end") -> None:
        def fit(*args, callbacks=None, **kwargs):
            return real_fit(*args, callbacks=[*(callbacks or []), InterruptAt(epoch, where)], **kwargs)

        monkeypatch.setattr(train_cmd, "fit", fit)

    return arm


def test_ctrl_c_says_how_to_resume_and_the_resume_works(tmp_path, capsys, interrupt, monkeypatch):
    interrupt(1)
    assert train(tmp_path, epochs=2) == 130
    captured = capsys.readouterr()
    run = tmp_path / "run"
    assert (
        captured.err.splitlines()[-1]
        == f"cnnlab: interrupted after epoch 1 of 2; resume with: cnnlab train --resume {run}"
    )
    assert captured.out == ""
    monkeypatch.undo()  # no more interruptions
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # quiet is a setting a resume may change
    captured = capsys.readouterr()
    assert captured.err == "" and result_lines(captured.out)[1].startswith("best epoch: ")
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 2


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(tmp_path, capsys, interrupt):
    interrupt(1, where="batch")
    assert train(tmp_path, epochs=2) == 130
    last = capsys.readouterr().err.splitlines()[-1]
    assert (
        last == f"cnnlab: interrupted in epoch 1 of 2, before its checkpoint; nothing to resume in {tmp_path / 'run'}"
    )


def test_ctrl_c_on_another_rank_prints_nothing(tmp_path, capsys, interrupt, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # WORLD_SIZE unset: the run itself is not distributed
    interrupt(1)
    assert train(tmp_path, "--quiet", epochs=2) == 130
    assert capsys.readouterr().err == ""


def test_ctrl_c_after_the_last_epoch_resumes_to_the_evaluation(tmp_path, capsys, interrupt, monkeypatch):
    interrupt(1, where="fit_end")
    assert train(tmp_path, "--quiet", epochs=1) == 130
    run = tmp_path / "run"
    last = capsys.readouterr().err.splitlines()[-1]
    assert (
        last
        == f"cnnlab: interrupted after the last epoch, before the evaluation; finish with: cnnlab train --resume {run}"
    )
    assert not (run / "results.json").exists()
    monkeypatch.undo()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    assert json.loads((run / "results.json").read_text())["epochs_run"] == 1
