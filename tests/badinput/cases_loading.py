"""Bad-input cases: checkpoints in a run folder that are booby-trapped, damaged, empty, truncated or foreign.

Every command that reads best.pt or last.pt (evaluate, predict, export, report, filters, explain, train
--resume) must refuse them in one line naming the file, and a trapped pickle must never run: its marker file
stays absent. `diagnose` reads no checkpoint (tests/train/test_safe_loading.py shows it runs nothing either).
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tests.badinput.cases import Case

REFUSED = "refuses to load: the file holds Python objects other than tensors (possibly unsafe)"
MARKER = "PWNED"

EVALUATE = ["evaluate", "{run}"]
PREDICT = ["predict", "{run}", "{tmp}/digit.png"]
PREDICT_LAST = ["predict", "{run}", "{tmp}/digit.png", "--checkpoint", "last"]
EXPORT = ["export", "{run}", "--format", "torchscript", "--out", "{tmp}/model.pt"]
REPORT = ["report", "{run}", "--out", "{tmp}/report.html"]
FILTERS = ["filters", "{run}", "--out", "{tmp}/filters.png"]
EXPLAIN = ["explain", "{run}", "{tmp}/digit.png", "--out", "{tmp}/explain"]
RESUME = ["train", "--resume", "{run}", "--epochs", "2", "--quiet"]


class _Trap:
    """Pickles as the call `open(marker, "w")`: a full unpickler creates the marker file while loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _trapped(kind: str = "zip", names: tuple[str, ...] = ("best.pt", "last.pt")) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        _keep_run_files(tmp)
        state = {"model": {}, "epoch": 1, "payload": _Trap(tmp / MARKER)}
        for name in names:
            path = tmp / "run" / name
            if kind == "pickle":
                path.write_bytes(pickle.dumps(state))
            else:
                torch.save(state, path, _use_new_zipfile_serialization=kind == "zip")

    return setup


def _nothing_ran(tmp: Path) -> None:
    assert not (tmp / MARKER).exists(), "the trapped pickle ran"


def _keep_run_files(tmp: Path) -> None:
    for name in ("config.yaml", "run.json"):
        (tmp / f"{name}.before").write_bytes((tmp / "run" / name).read_bytes())


def _run_files_unchanged(tmp: Path) -> None:
    _nothing_ran(tmp)
    for name in ("config.yaml", "run.json"):
        assert (tmp / "run" / name).read_bytes() == (tmp / f"{name}.before").read_bytes(), f"{name} changed"


def _rewrite(name: str, write: Callable[[Path, bytes], None]) -> Callable[[Path], None]:
    """Replace run/NAME by what `write(path, original_bytes)` makes of it."""

    def setup(tmp: Path) -> None:
        _keep_run_files(tmp)
        path = tmp / "run" / name
        original = path.read_bytes()
        path.unlink()
        write(path, original)

    return setup


def _truncate(path: Path, original: bytes) -> None:
    path.write_bytes(original[: len(original) // 2])


def _foreign_zip(path: Path, original: bytes) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "holiday photos")


def _torchscript(path: Path, original: bytes) -> None:
    torch.jit.script(nn.Linear(2, 2)).save(str(path))


def _damaged_zip_header(path: Path, original: bytes) -> None:
    data = bytearray(original)
    data[40:60] = b"\xff" * 20
    path.write_bytes(bytes(data))


def _old_cnnlab_last(path: Path, original: bytes) -> None:
    """last.pt as cnnlab wrote it before safe loading: numpy's RNG state keeps a uint32 array."""
    path.write_bytes(original)
    state = torch.load(path, weights_only=True)
    state["rng"]["numpy"] = np.random.get_state()
    torch.save(state, path)


def _numpy_metrics(path: Path, original: bytes) -> None:
    path.write_bytes(original)
    state = torch.load(path, weights_only=True)
    state["metrics"] = {"val_accuracy": np.float64(0.5)}
    torch.save(state, path)


def _best_over_last(tmp: Path) -> None:
    _keep_run_files(tmp)
    (tmp / "run" / "last.pt").write_bytes((tmp / "run" / "best.pt").read_bytes())


def _other_model(path: Path, original: bytes) -> None:
    path.write_bytes(original)
    state = torch.load(path, weights_only=True)
    first = next(iter(state["model"]))
    state["model"][first] = torch.zeros(3, 3)
    torch.save(state, path)


def _folder_last_without_best(tmp: Path) -> None:
    (tmp / "run" / "best.pt").unlink()
    (tmp / "run" / "last.pt").unlink()
    (tmp / "run" / "last.pt").mkdir()


def _no_checkpoints(tmp: Path) -> None:
    (tmp / "run" / "best.pt").unlink()
    (tmp / "run" / "last.pt").unlink()


def _text(path: Path, original: bytes) -> None:
    path.write_text("model weights: see the shared drive\n")


def _write(data: bytes) -> Callable[[Path, bytes], None]:
    return lambda path, original: path.write_bytes(data)


def _save(obj: object) -> Callable[[Path, bytes], None]:
    return lambda path, original: torch.save(obj, path)


def _case(name: str, argv: list[str], phrase: str, setup: Callable[[Path], None], check=None) -> Case:
    return Case(f"loading/{name}", argv, phrase, setup=setup, check=check, needs_run=True)


TRAPPED = [
    _case("trapped checkpoint on evaluate", EVALUATE, REFUSED, _trapped(), _nothing_ran),
    _case("trapped checkpoint on predict", PREDICT, REFUSED, _trapped(), _nothing_ran),
    _case("trapped last.pt on predict --checkpoint last", PREDICT_LAST, REFUSED, _trapped(), _nothing_ran),
    _case("trapped checkpoint on export", EXPORT, REFUSED, _trapped(), _nothing_ran),
    _case("trapped checkpoint on report", REPORT, REFUSED, _trapped(), _nothing_ran),
    _case("trapped checkpoint on filters", FILTERS, REFUSED, _trapped(), _nothing_ran),
    _case("trapped checkpoint on explain", EXPLAIN, REFUSED, _trapped(), _nothing_ran),
    _case("trapped last.pt on resume", RESUME, REFUSED, _trapped(), _run_files_unchanged),
    _case("trapped legacy-format best.pt on evaluate", EVALUATE, REFUSED, _trapped("legacy"), _nothing_ran),
    _case("trapped legacy-format last.pt on resume", RESUME, REFUSED, _trapped("legacy"), _run_files_unchanged),
    _case("trapped plain pickle on predict", PREDICT, REFUSED, _trapped("pickle"), _nothing_ran),
    _case("trapped plain pickle on filters", FILTERS, REFUSED, _trapped("pickle"), _nothing_ran),
    _case("trapped best.pt only on explain", EXPLAIN, REFUSED, _trapped(names=("best.pt",)), _nothing_ran),
]

OLD = [
    _case("old cnnlab last.pt with numpy rng on resume", RESUME, "found numpy.", _rewrite("last.pt", _old_cnnlab_last)),
    _case("best.pt with numpy metrics on evaluate", EVALUATE, REFUSED, _rewrite("best.pt", _numpy_metrics)),
]

DAMAGED = [
    _case("empty best.pt on evaluate", EVALUATE, "best.pt: empty file (0 bytes)", _rewrite("best.pt", _write(b""))),
    _case("empty best.pt on export", EXPORT, "best.pt: empty file (0 bytes)", _rewrite("best.pt", _write(b""))),
    _case(
        "empty last.pt on resume", RESUME, "last.pt: empty file", _rewrite("last.pt", _write(b"")), _run_files_unchanged
    ),
    _case("text best.pt on predict", PREDICT, "best.pt: not a PyTorch checkpoint", _rewrite("best.pt", _text)),
    _case("text best.pt on report", REPORT, "best.pt: not a PyTorch checkpoint", _rewrite("best.pt", _text)),
    _case("truncated best.pt on evaluate", EVALUATE, "best.pt: damaged or truncated", _rewrite("best.pt", _truncate)),
    _case("truncated best.pt on filters", FILTERS, "best.pt: damaged or truncated", _rewrite("best.pt", _truncate)),
    _case("truncated best.pt on explain", EXPLAIN, "best.pt: damaged or truncated", _rewrite("best.pt", _truncate)),
    _case(
        "truncated last.pt on resume",
        RESUME,
        "last.pt: damaged or truncated",
        _rewrite("last.pt", _truncate),
        _run_files_unchanged,
    ),
    _case(
        "damaged zip header on predict",
        PREDICT,
        "best.pt: damaged or truncated",
        _rewrite("best.pt", _damaged_zip_header),
    ),
    _case(
        "pickle garbage best.pt on evaluate",
        EVALUATE,
        "damaged or truncated",
        _rewrite("best.pt", _write(b"\x80\x04\xff" * 9)),
    ),
]

FOREIGN = [
    _case(
        "zip that is not torch on export",
        EXPORT,
        "best.pt: a zip archive but not a PyTorch",
        _rewrite("best.pt", _foreign_zip),
    ),
    _case(
        "zip that is not torch on resume", RESUME, "last.pt: a zip archive but not", _rewrite("last.pt", _foreign_zip)
    ),
    _case(
        "folder named last.pt on resume", RESUME, "last.pt: is a folder", _rewrite("last.pt", lambda p, o: p.mkdir())
    ),
    _case(
        "folder named last.pt and no best.pt on evaluate", EVALUATE, "last.pt: is a folder", _folder_last_without_best
    ),
    _case("no checkpoint at all on evaluate", EVALUATE, "last.pt: checkpoint not found", _no_checkpoints),
    _case(
        "torchscript as best.pt on predict", PREDICT, "best.pt: a TorchScript model", _rewrite("best.pt", _torchscript)
    ),
    _case(
        "bare state_dict as best.pt on evaluate",
        EVALUATE,
        "best.pt: not a cnnlab checkpoint",
        _rewrite("best.pt", _save(nn.Linear(2, 2).state_dict())),
    ),
    _case("tensor as best.pt on export", EXPORT, "found a Tensor", _rewrite("best.pt", _save(torch.zeros(3)))),
    _case("model of lists on filters", FILTERS, "not tensors", _rewrite("best.pt", _save({"model": {"w": [1.0]}}))),
    _case(
        "best.pt copied over last.pt on resume",
        RESUME,
        "last.pt: not a resumable checkpoint",
        _best_over_last,
        _run_files_unchanged,
    ),
    _case(
        "weights of another model on evaluate",
        EVALUATE,
        "best.pt: the weights do not fit the model",
        _rewrite("best.pt", _other_model),
    ),
]

CASES = TRAPPED + OLD + DAMAGED + FOREIGN
