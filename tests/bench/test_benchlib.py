"""Smoke test of the bench helpers: the pieces every bench script relies on, on tiny data (a second or two)."""

import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import benchlib  # noqa: E402
import run_all  # noqa: E402

from cnnlab.data import load_dataset  # noqa: E402
from cnnlab.models import create  # noqa: E402


def test_choose_threads_respects_an_explicit_count_and_stays_within_the_cores():
    assert benchlib.choose_threads("3") == 3
    assert 1 <= benchlib.choose_threads("auto") <= benchlib.cores()


def test_markdown_table_formats_numbers_by_size():
    table = benchlib.markdown_table(["a", "b"], [["x", 0.98765], ["y", 12345.6]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x | 0.988 |", "| y | 12,346 |"]


def test_hand_loop_trains_and_times_every_epoch():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (64,), generator=generator)
    torch.manual_seed(0)
    model = create("lenet5_modern")
    before = [p.detach().clone() for p in model.parameters()]
    seconds = benchlib.hand_loop(model, images, labels, [0.5], [0.25], batch_size=32, epochs=2)
    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert 0.0 <= benchlib.accuracy(model, images, labels, [0.5], [0.25]) <= 1.0


def test_cifar_like_npz_is_read_by_load_dataset(tmp_path):
    path = benchlib.write_cifar_like_npz(tmp_path / "c.npz", train=20, test=5)
    splits = load_dataset(path, val_split=0.0)
    assert splits.train.images.shape == (20, 3, 32, 32) and len(splits.test) == 5


def test_affine_matches_mean_std_normalisation():
    scale, shift = benchlib.affine_from([0.5], [0.25])
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2)
    assert torch.addcmul(shift, x.float(), scale).flatten().tolist() == pytest.approx([-2.0, 2.0])


def test_run_all_collects_the_lines_after_the_last_table():
    output = "progress\n| a |\n|---|\n| 1 |\nratio x: 1.0\n\noverhead ratio: 0.99\n"
    assert run_all.summary_lines(output) == ["ratio x: 1.0", "overhead ratio: 0.99"]
