"""Checkpoints load with weights_only=True: a run folder from anyone runs no code, a damaged file is one line."""

from __future__ import annotations

import pickle
import random
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import RunError
from cnnlab.io import atomic_save, load_checkpoint, plain_values, resave_trusted_checkpoint
from cnnlab.train import fit
from cnnlab.train.checkpoint import TRAINING_STATE_KEYS, capture_rng_state, load_training_state, restore_rng_state
from tests.train.test_fit import small_config

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"
REFUSED = "refuses to load: the file holds Python objects other than tensors (possibly unsafe)"


class Trap:
    """Pickles as the call `open(marker, "w")`: a full unpickler creates the marker file while loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_trap(path: Path, marker: Path, kind: str = "zip") -> None:
    """A checkpoint that looks like cnnlab's but carries the trap; zip, torch's legacy format or plain pickle."""
    state = {"model": {}, "epoch": 1, "payload": Trap(marker)}
    if kind == "pickle":
        path.write_bytes(pickle.dumps(state))
    else:
        torch.save(state, path, _use_new_zipfile_serialization=kind == "zip")


@pytest.mark.parametrize("kind", ["zip", "legacy", "pickle"])
def test_a_booby_trapped_checkpoint_is_refused_and_runs_nothing(tmp_path, kind):
    path, marker = tmp_path / "best.pt", tmp_path / "PWNED"
    write_trap(path, marker, kind)
    if kind != "pickle":  # the control: a full unpickler would have run the trap
        torch.load(path, weights_only=False)
        assert marker.exists()
        marker.unlink()
    with pytest.raises(RunError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {REFUSED}; found ") and "\n" not in message
    assert not marker.exists()


def draws(generator: torch.Generator) -> tuple:
    """One draw from every generator a training step uses, with the Gaussians' cached values."""
    return (
        random.random(),
        random.gauss(0, 1),
        np.random.standard_normal(5).tolist(),
        torch.rand(5).tolist(),
        torch.rand(5, generator=generator).tolist(),
    )


def test_rng_state_survives_a_weights_only_round_trip_exactly(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leaves a cached second Gaussian in both generators
    np.random.standard_normal()
    generator = torch.Generator().manual_seed(5)
    atomic_save({"model": {}, "rng": capture_rng_state(generator)}, tmp_path / "last.pt")
    expected = draws(generator)
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "last.pt")["rng"], generator)
    assert draws(generator) == expected


def old_cnnlab_last_pt(path: Path) -> None:
    """A last.pt as cnnlab wrote it before safe loading: numpy's RNG state with its uint32 array inside."""
    np.random.seed(7)
    torch.save({"model": {"w": torch.ones(2)}, "rng": {"numpy": np.random.get_state()}}, path)


def test_an_old_cnnlab_checkpoint_is_refused_then_converted_when_trusted(tmp_path):
    path = tmp_path / "last.pt"
    old_cnnlab_last_pt(path)
    with pytest.raises(RunError, match=r"refuses to load: .*; found numpy\.") as caught:
        load_checkpoint(path)
    assert "resave_trusted_checkpoint" in str(caught.value)
    expected = np.random.get_state()[1].copy()
    resave_trusted_checkpoint(path)
    name, key, *_ = load_checkpoint(path)["rng"]["numpy"]
    assert name == "MT19937" and isinstance(key, list) and np.array_equal(np.asarray(key, dtype=np.uint32), expected)


def _truncated(path: Path, source: Path) -> None:
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _foreign_zip(path: Path, source: Path) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "not a checkpoint")


def _torchscript(path: Path, source: Path) -> None:
    torch.jit.script(nn.Linear(2, 2)).save(str(path))


def _flipped_header(path: Path, source: Path) -> None:
    data = bytearray(source.read_bytes())
    data[40:60] = b"\xff" * 20  # inside the first local zip header
    path.write_bytes(bytes(data))


def _flipped_weights(path: Path, source: Path) -> None:
    """Bytes flipped inside a tensor's record: torch.load alone would return wrong weights silently."""
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith("data/0"))
    header = info.header_offset  # the local header: 30 bytes, then its own name and extra field lengths
    start = header + 30 + int.from_bytes(data[header + 26 : header + 28], "little")
    start += int.from_bytes(data[header + 28 : header + 30], "little")
    data[start : start + 4] = bytes(255 - b for b in data[start : start + 4])
    path.write_bytes(bytes(data))


DAMAGED = {
    "text": (lambda path, source: path.write_text("hello, I am a checkpoint\n"), "not a PyTorch checkpoint"),
    "empty": (lambda path, source: path.write_bytes(b""), "empty file (0 bytes)"),
    "truncated": (_truncated, "damaged or truncated checkpoint"),
    "foreign zip": (_foreign_zip, "a zip archive but not a PyTorch checkpoint"),
    "folder": (lambda path, source: path.mkdir(), "is a folder, not a checkpoint file"),
    "torchscript": (_torchscript, "a TorchScript model"),
    "bare state_dict": (lambda path, source: torch.save(nn.Linear(2, 2).state_dict(), path), "not a cnnlab checkpoint"),
    "tensor": (lambda path, source: torch.save(torch.zeros(3), path), "found a Tensor"),
    "pickle garbage": (lambda path, source: path.write_bytes(b"\x80\x04\xff\xfe\xfd" * 10), "damaged or truncated"),
    "model not tensors": (lambda path, source: torch.save({"model": {"w": [1.0]}}, path), "hold a list, not tensors"),
    "damaged zip header": (_flipped_header, "damaged or truncated checkpoint"),
    "flipped weight bytes": (_flipped_weights, "Bad CRC-32"),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_a_file_that_is_not_a_checkpoint_is_one_line_naming_it(tmp_path, name):
    source = tmp_path / "good.pt"
    torch.save({"model": nn.Linear(2, 2).state_dict(), "epoch": 1}, source)
    write, phrase = DAMAGED[name]
    path = tmp_path / "best.pt"
    write(path, source)
    with pytest.raises(RunError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and phrase in message and "\n" not in message, message


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(RunError, match="last.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "last.pt")


def test_best_pt_is_not_a_resumable_checkpoint(tmp_path):
    atomic_save({"model": {}, "modules": {}, "epoch": 2, "metrics": {}}, tmp_path / "last.pt")
    with pytest.raises(RunError, match=r"last.pt: not a resumable checkpoint \(no optimizer, scheduler"):
        load_training_state(tmp_path / "last.pt")


def test_plain_values_makes_numpy_loadable_and_keeps_state_dict_metadata(tmp_path):
    weights = nn.BatchNorm1d(2).state_dict()
    state = {"model": weights, "metrics": {"val_auc": np.float64(0.75), "counts": np.arange(3)}, "t": (np.int64(2),)}
    plain = plain_values(state)
    assert plain["model"]._metadata == weights._metadata and plain["model"] is not weights
    assert type(plain["metrics"]["val_auc"]) is float and plain["metrics"]["counts"] == [0, 1, 2]
    assert plain["t"] == (2,) and type(plain["t"][0]) is int
    atomic_save(plain, tmp_path / "best.pt")
    assert load_checkpoint(tmp_path / "best.pt")["metrics"]["val_auc"] == 0.75


@pytest.mark.parametrize(
    "options",
    [
        {"schedule": {"name": "cosine", "warmup_epochs": 1}, "early_stopping": {"patience": 3}},
        {"schedule": {"name": "onecycle"}, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}},
        {"schedule": {"name": "plateau"}, "optimizer": {"name": "adamw", "lr": 0.003}},
    ],
    ids=["lambda", "onecycle", "plateau"],
)
def test_what_training_writes_loads_with_weights_only(tmp_path, options):
    result = fit(small_config(tmp_path, epochs=2, train_samples=200, **options))
    last = load_training_state(result.run_dir / "last.pt")
    assert set(TRAINING_STATE_KEYS) <= set(last) and last["epoch"] == 2 and last["scheduler"] is not None
    assert load_checkpoint(result.run_dir / "best.pt")["epoch"] in (1, 2)


def test_a_grad_scaler_state_loads_with_weights_only(tmp_path):
    scaler = torch.amp.GradScaler("cpu", enabled=True)
    atomic_save({"model": {}, "scaler": scaler.state_dict()}, tmp_path / "last.pt")
    assert load_checkpoint(tmp_path / "last.pt")["scaler"] == scaler.state_dict()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("safe") / "run"
    argv = ["train", "--model", "lenet5_modern", "--data", str(MNIST), "--train-samples", "200", "--epochs", "1"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    return out


COMMANDS = {
    "evaluate": ["evaluate", "{run}"],
    "predict": ["predict", "{run}", "{tmp}/digit.png"],
    "predict last": ["predict", "{run}", "{tmp}/digit.png", "--checkpoint", "last"],
    "export": ["export", "{run}", "--format", "torchscript", "--out", "{tmp}/model.pt"],
    "report": ["report", "{run}", "--out", "{tmp}/report.html"],
    "filters": ["filters", "{run}", "--out", "{tmp}/filters.png"],
    "explain": ["explain", "{run}", "{tmp}/digit.png", "--out", "{tmp}/explain"],
    "resume": ["train", "--resume", "{run}", "--epochs", "2", "--no-progress"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_no_command_runs_code_from_a_trapped_run_folder(tmp_path, trained_run, capsys, command):
    run, marker = tmp_path / "run", tmp_path / "PWNED"
    shutil.copytree(trained_run, run)
    for name in ("best.pt", "last.pt"):
        write_trap(run / name, marker)
    argv = [arg.replace("{run}", str(run)).replace("{tmp}", str(tmp_path)) for arg in COMMANDS[command]]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and lines[0].startswith("cnnlab: error: "), err
    assert REFUSED in lines[0] and not marker.exists()


def test_diagnose_reads_no_checkpoint_of_a_trapped_run_folder(tmp_path, trained_run, capsys):
    run, marker = tmp_path / "run", tmp_path / "PWNED"
    shutil.copytree(trained_run, run)
    for name in ("best.pt", "last.pt"):
        write_trap(run / name, marker)
    assert main(["diagnose", str(run), "--json"]) == 0
    assert not marker.exists()
