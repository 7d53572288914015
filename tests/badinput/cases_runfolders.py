"""Run folders: --out onto foreign folders and files, locked runs, resumes that would change the experiment."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from tests.badinput.cases import Case, train_args


def foreign_folder(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "thesis.tex").write_text("years of work")


def out_is_a_file(tmp: Path) -> None:
    (tmp / "out").write_text("a file")


def locked(tmp: Path) -> None:
    owner = {"pid": os.getppid(), "host": socket.gethostname(), "started": time.time()}
    (tmp / "run" / ".lock").write_text(json.dumps(owner))


def foreign_untouched(tmp: Path) -> None:
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["thesis.tex"]


def run_untouched(names=("config.yaml", "run.json", "last.pt", "metrics.jsonl")):
    def check(tmp: Path) -> None:
        saved = json.loads((tmp / "snapshot.json").read_text())
        for name in names:
            assert (tmp / "run" / name).read_bytes().hex() == saved[name], name

    return check


def snapshot(then=None):
    def setup(tmp: Path) -> None:
        if then is not None:
            then(tmp)
        names = ("config.yaml", "run.json", "last.pt", "metrics.jsonl")
        (tmp / "snapshot.json").write_text(json.dumps({n: (tmp / "run" / n).read_bytes().hex() for n in names}))

    return setup


def no_run_json(tmp: Path) -> None:
    (tmp / "run" / "run.json").unlink()


RESUME_CHANGES = [
    ("learning rate", ["--optimizer.lr", "0.5"], "cannot change 'optimizer.lr'"),
    ("optimizer", ["--optimizer.name", "sgd"], "cannot change 'optimizer.name'"),
    ("batch size", ["--batch-size", "32"], "cannot change 'batch_size'"),
    ("model", ["--model", "resnet20"], "cannot change the model"),
    ("dropout", ["--dropout", "0.3"], "cannot change the model"),
    ("layers", ["--model", "examples/custom_net.yaml"], "cannot change the model"),
    ("data", ["--data", "{tmp}"], "cannot change 'data'"),
    ("seed", ["--seed", "7"], "cannot change 'seed'"),
    ("augmentation", ["--augment", "rotate=5"], "cannot change 'augment'"),
    ("schedule", ["--schedule.name", "cosine"], "cannot change 'schedule.name'"),
    ("fewer epochs", ["--epochs", "0"], "epochs"),
]

CASES = [
    Case("runfolder/out is a foreign folder", train_args(), "not a cnnlab run", setup=foreign_folder,
         check=foreign_untouched),
    Case("runfolder/out is a foreign folder with overwrite", train_args("--overwrite"), "not a cnnlab run",
         setup=foreign_folder, check=foreign_untouched),
    Case("runfolder/out is a file", train_args(), "is a file, not a folder", setup=out_is_a_file),
    Case("runfolder/out is a file with overwrite", train_args("--overwrite"), "is a file, not a folder",
         setup=out_is_a_file),
    Case("runfolder/out below a file", train_args()[:-2] + ["--out", "{tmp}/out/inner"], "out",
         setup=out_is_a_file),
    Case("runfolder/resume a locked run", ["train", "--resume", "{run}"], "is writing this run", needs_run=True,
         setup=snapshot(locked), check=run_untouched()),
    Case("runfolder/overwrite a locked run", ["train", "--model", "lenet5_modern", "--data", "{mnist}",
         "--train-samples", "200", "--epochs", "1", "--quiet", "--out", "{run}", "--overwrite"],
         "is writing this run", needs_run=True, setup=snapshot(locked), check=run_untouched()),
    Case("runfolder/resume a folder that is not a run", ["train", "--resume", "{tmp}"], "no config.yaml"),
    Case("runfolder/resume a missing folder", ["train", "--resume", "{tmp}/nothing"], "no config.yaml"),
    Case("runfolder/resume without run.json", ["train", "--resume", "{run}"], "run.json", needs_run=True,
         setup=no_run_json),
] + [
    Case(f"runfolder/resume changes {what}", ["train", "--resume", "{run}", *flags], phrase, needs_run=True,
         setup=snapshot(), check=run_untouched())
    for what, flags, phrase in RESUME_CHANGES
]  # fmt: skip
