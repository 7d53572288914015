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


@pytest.fixture
def keep_threads():
    """The runs below set torch's thread count (threads=1); the other tests get theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_profile_fit_takes_the_trainer_fit_would_train_from_build_run(tmp_path, keep_threads):
    import profile_fit

    data = benchlib.write_cifar_like_npz(tmp_path / "tiny.npz", train=64, test=16)
    run = profile_fit.fit_run("lenet5_modern", str(data), 16, 1, tmp_path / "run")
    trainer = run.trainer
    assert trainer.history == [] and not (run.run_dir / "last.pt").exists()  # built, not trained
    batches = profile_fit.batches_of(trainer, 3)
    assert len(batches) == 3 and batches[0][0].dtype == torch.uint8
    # The hand-written contenders normalise exactly as fit's Preprocess does.
    scale, shift = benchlib.affine_from(run.meta["normalization"]["mean"], run.meta["normalization"]["std"])
    x = batches[0][0]
    assert torch.allclose(torch.addcmul(shift, x.float(), scale), trainer.context.prepare(x), atol=1e-5)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    contender = profile_fit.fit_step(trainer)
    with benchlib.quiet():
        for images, labels in batches:
            contender.step(images, labels)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))
    assert trainer.running_metrics()["accuracy"] >= 0.0


def test_time_to_accuracy_stops_fit_after_the_batch_that_reached_the_target(tmp_path, keep_threads):
    from time_to_accuracy import TargetWatch

    from cnnlab.config import build_dataclass
    from cnnlab.train import TrainConfig, fit
    from cnnlab.train.callbacks import Callback

    data = benchlib.write_cifar_like_npz(tmp_path / "tiny.npz", train=64, test=16)

    class Steps(Callback):
        count = 0

        def on_batch_end(self, trainer, step, batch_size):
            self.count += 1

    steps = Steps()
    watch = TargetWatch(load_dataset(data, val_split=0.0).test, 0.0, 0.5, 0.5, lambda t: t.context.prepare)
    values = dict(model="lenet5_modern", data=str(data), val_split=0.0, epochs=3, batch_size=16, threads=1)
    values.update(optimizer={"name": "adam", "lr": 1e-3}, out=str(tmp_path / "run"), progress=False)
    with benchlib.quiet():
        result = fit(build_dataclass(TrainConfig, values), callbacks=[steps, watch])
    assert watch.hit is not None and watch.hit[0] == 0.5 and watch.stopped_at is not None
    assert steps.count == 2  # 4 batches an epoch: stopped after the 2nd, no exception out of fit
    assert [row["epoch"] for row in result.history] == [1] and len(watch.curve) == 1
