"""Run folders that never lose data: chosen safely, locked while a training writes them, cleared only when ours.

- `--out` naming an existing folder that is not a cnnlab run is refused (with or without `--overwrite`): cnnlab
  writes only into folders it made. An existing run is kept and a numbered sibling used, unless `--overwrite`,
  which clears that run's own files first (no stale `best.pt` from the old run) and leaves anything else.
- While a training writes a folder it holds `RUN/.lock` (pid, host, start time); a second `train`/`--resume`
  on it is refused in one line. A lock whose process is gone (same host) is stale and taken over.
- Temp files left by a killed atomic write are removed when a run starts.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from cnnlab.errors import RunError
from cnnlab.io import remove_stale_temp_files

LOCK_NAME = ".lock"
MARKER_NAME = "run.json"  # every run writes it first; a folder with it is a cnnlab run
# Everything a run and the commands on it write; `--overwrite` removes these and nothing else.
RUN_FILES = (
    "config.yaml", "run.json", "metrics.csv", "metrics.jsonl", "last.pt", "best.pt", "results.json", "report.html",
    "filters.png", "learning_curve.json", "learning_curve.png", "model.onnx", "model.onnx.json", "model.pt",
    "model.pt.json", "evaluation_*.json", "confusion_matrix_*.png",
)  # fmt: skip
RUN_FOLDERS = ("explain", "tensorboard")


def is_run_folder(path: Path) -> bool:
    return (path / MARKER_NAME).is_file()


def _is_empty_folder(path: Path) -> bool:
    return path.is_dir() and not any(path.iterdir())


def _check_usable(path: Path) -> None:
    """A new run may go into a missing folder, an empty one, or an existing cnnlab run (never anything else)."""
    if path.exists() and not path.is_dir():
        raise RunError(f"{path}: exists and is a file, not a folder; choose another --out")
    if path.is_dir() and not _is_empty_folder(path) and not is_run_folder(path):
        raise RunError(
            f"{path}: an existing folder that is not a cnnlab run; cnnlab will not write into it "
            "(with or without --overwrite); choose another --out"
        )


def choose_run_dir(base: Path, overwrite: bool) -> Path:
    """The folder a new run writes: `base`, or with an existing trained run there, `base-2`, `base-3`, ...

    A run folder without `last.pt` (it never finished an epoch) is reused; `overwrite` reuses a trained one.
    """
    _check_usable(base)
    if overwrite or not (base / "last.pt").exists():
        return base
    for number in range(2, 10_000):
        candidate = base.with_name(f"{base.name}-{number}")
        if candidate.exists() and not _is_empty_folder(candidate) and not is_run_folder(candidate):
            continue  # someone else's folder: never ours to write
        if not (candidate / "last.pt").exists():
            return candidate
    raise RunError(f"{base}: too many runs with this name")


def clear_run_files(path: Path) -> list[Path]:
    """Remove what an earlier run (and the commands on it) wrote into `path`; other files stay."""
    removed = []
    for pattern in RUN_FILES:
        for item in path.glob(pattern):
            if item.is_file():
                item.unlink()
                removed.append(item)
    for name in RUN_FOLDERS:
        if (path / name).is_dir():
            shutil.rmtree(path / name)
            removed.append(path / name)
    return removed


class RunLock:
    """`RUN/.lock`, created exclusively; held while a training writes the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / LOCK_NAME
        self.held = False

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, handle)
            self.held = True
            return self
        raise RunError(f"{self.folder}: cannot lock the run folder ({self.path} keeps reappearing)")

    def _take_over_if_stale(self) -> None:
        owner = self._owner()
        if owner is not None and owner.get("host") == socket.gethostname() and not _alive(owner.get("pid")):
            self.path.unlink(missing_ok=True)  # its process is gone: a stale lock
            return
        if owner is None:
            age = time.time() - self.path.stat().st_mtime if self.path.exists() else 0.0
            if age > 60:  # unreadable and old: a lock whose writer died mid-write
                self.path.unlink(missing_ok=True)
                return
            raise RunError(f"{self.folder}: is being written by another cnnlab process (lock {self.path})")
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("started", 0)))
        raise RunError(
            f"{self.folder}: a training (pid {owner.get('pid')} on {owner.get('host')}, since {started}) is writing "
            f"this run; wait for it, or if that process is gone for sure, delete {self.path}"
        )

    def _owner(self) -> dict | None:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner is None or owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_dir_for(base: Path, overwrite: bool, resume: bool) -> Path:
    """The folder a run will write (nothing is created yet): the resumed run, or one chosen for a new run."""
    if resume:
        if not is_run_folder(base):
            raise RunError(f"{base}: not a cnnlab run folder (no {MARKER_NAME}); nothing to resume")
        return base
    return choose_run_dir(base, overwrite)


def lock_run_dir(run_dir: Path, clear: bool) -> RunLock:
    """Lock the folder (creating it); with `clear`, remove an earlier run's files; drop stale temp files."""
    lock = RunLock(run_dir).acquire()
    try:
        if clear and is_run_folder(run_dir):
            clear_run_files(run_dir)
        elif not clear:
            # A resumed run's old results describe weights it is about to change; the new ones replace them.
            (run_dir / "results.json").unlink(missing_ok=True)
        remove_stale_temp_files(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock
