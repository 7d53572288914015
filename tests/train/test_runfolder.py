"""No data loss: run folders chosen safely, locked while written, cleared only when ours; atomic writes under
kills and full disks; a refused resume writes nothing."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.io import atomic_save, atomic_write_json, remove_stale_temp_files
from cnnlab.train import fit
from cnnlab.train.runfolder import RunLock

from .test_fit import MNIST, small_config

TINY = ["--model", "lenet5_modern", "--data", MNIST, "--train-samples", "200", "--epochs", "1", "--quiet"]
TINY += ["--optimizer.name", "sgd", "--optimizer.lr", "0.01", "--schedule.name", "none"]  # the old defaults, pinned


def train(out: Path, *extra: str) -> int:
    return main(["train", *TINY, "--out", str(out), *extra])


def test_an_existing_folder_that_is_not_a_run_is_never_written(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"precious")
    for flags in ([], ["--overwrite"]):
        assert train(folder, *flags) == 1
        assert "not a cnnlab run; cnnlab will not write into it" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["holiday.jpg"]
    (tmp_path / "file").write_text("x")
    assert train(tmp_path / "file") == 1 and "is a file, not a folder" in capsys.readouterr().err
    assert train(tmp_path / "empty_is_fine") == 0


def test_overwrite_replaces_only_the_runs_own_files(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    for stale in ("evaluation_test.json", "model.onnx", "report.html", "confusion_matrix_test.png"):
        (run / stale).write_text("from the old run")
    (run / "explain").mkdir()
    (run / "notes.txt").write_text("mine")
    old_best = (run / "best.pt").stat().st_mtime_ns
    assert train(run) == 0 and (tmp_path / "run-2" / "last.pt").is_file()  # kept: a numbered sibling
    assert train(run, "--overwrite") == 0
    names = {p.name for p in run.iterdir()}
    assert not names & {"evaluation_test.json", "model.onnx", "report.html", "confusion_matrix_test.png", "explain"}
    assert (run / "notes.txt").read_text() == "mine" and (run / "best.pt").stat().st_mtime_ns != old_best
    assert ".lock" not in names  # released at the end


def test_a_locked_run_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run) == 0
    before = {name: (run / name).read_bytes() for name in ("config.yaml", "run.json", "last.pt")}
    live = {"pid": os.getppid(), "host": socket.gethostname(), "started": time.time()}
    (run / ".lock").write_text(json.dumps(live))
    for argv in (["train", "--resume", str(run)], ["train", *TINY, "--out", str(run), "--overwrite"]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"a training (pid {os.getppid()} on {socket.gethostname()}" in err
    assert {name: (run / name).read_bytes() for name in before} == before
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / ".lock").write_text(json.dumps({**live, "pid": int(dead.stdout)}))
    assert train(run, "--overwrite") == 0 and not (run / ".lock").exists()


def test_two_writers_on_one_folder(tmp_path):
    run = tmp_path / "run"
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cnnlab",
            "train",
            "--model",
            "lenet5_modern",
            "--data",
            MNIST,
            "--train-samples",
            "6000",
            "--epochs",
            "100",
            "--schedule.name",
            "none",  # the old default, pinned: the run is resumed with fewer epochs, which one-cycle refuses
            "--no-progress",
            "--out",
            str(run),
        ],  # fmt: skip
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 120
        while not (run / "last.pt").exists() and time.time() < deadline:
            time.sleep(0.2)
        second = subprocess.run(
            [sys.executable, "-m", "cnnlab", "train", "--resume", str(run)], capture_output=True, text=True
        )
        assert second.returncode == 1 and f"a training (pid {first.pid} on" in second.stderr
    finally:
        first.kill()
        first.wait()
    # The killed first writer left a stale lock: the next resume takes it over and finishes the run.
    assert (run / ".lock").exists()
    done = torch.load(run / "last.pt", weights_only=True)["epoch"]
    assert main(["train", "--resume", str(run), "--epochs", str(done + 1)]) == 0
    assert not (run / ".lock").exists()


def test_a_refused_resume_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--epochs", "2") == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    cases = [
        (["--optimizer.lr", "0.5"], "a resume cannot change 'optimizer.lr' (optimizer.lr was 0.01, now 0.5)"),
        (["--model", "resnet20"], "a resume cannot change the model (model was 'lenet5_modern', now 'resnet20')"),
        (["--epochs", "1"], "already trained 2 epochs"),
    ]
    for flags, message in cases:
        assert main(["train", "--resume", str(run), *flags]) == 1
        assert message in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


KILLED_WRITE = """
import os, signal, sys, torch
from cnnlab.io import atomic_save
real_save = torch.save
def half_then_die(obj, handle, *args, **kwargs):
    handle.write(b"PK\\x03\\x04 half a checkpoint")
    handle.flush()
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = half_then_die
atomic_save({"model": {}}, sys.argv[1])
"""


def test_a_kill_during_a_checkpoint_write_leaves_the_old_file_and_a_temp_that_is_cleaned(tmp_path):
    target = tmp_path / "last.pt"
    atomic_save({"model": {}, "epoch": 1}, target)
    old = target.read_bytes()
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(target)], capture_output=True)
    assert killed.returncode == -9
    assert target.read_bytes() == old  # the rename never happened
    temps = list(tmp_path.glob(".last.pt.*.tmp"))
    assert len(temps) == 1 and temps[0].stat().st_size > 0
    assert remove_stale_temp_files(tmp_path) == temps and not list(tmp_path.glob("*.tmp"))


def test_a_full_disk_is_named_and_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_json(target, {"old": True})

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(RunError, match=r"results\.json: no space left on device"):
        atomic_write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True} and sorted(p.name for p in tmp_path.iterdir()) == [
        "results.json"
    ]


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_training_onto_a_full_disk(small_disk, capsys):
    run = small_disk / "run"
    assert train(run) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".pt: no space left on device" in err
    for path in run.iterdir():  # nothing empty or half-written: only complete small files, no temp files
        assert not path.name.endswith(".tmp") and path.stat().st_size > 0, path
    assert not (run / "last.pt").exists() and not (run / ".lock").exists()


def test_lock_is_exclusive(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(RunError, match="is writing this run"):
        RunLock(tmp_path).acquire()
    first.release()
    RunLock(tmp_path).acquire().release()


def test_fit_from_python_releases_the_lock_when_training_fails(tmp_path):
    class Boom(Exception):
        pass

    from cnnlab.train.callbacks import Callback

    class Explode(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            raise Boom

    config = small_config(tmp_path, epochs=1, train_samples=200)
    with pytest.raises(Boom):
        fit(config, callbacks=[Explode()])
    assert not (Path(config.out) / ".lock").exists()
