"""Trainer overhead: cnnlab's `fit` against a minimal hand-written PyTorch loop, images/s side by side.

    python bench/overhead.py            # LeNet-5 (modern and paper) on MNIST, ResNet-20 on CIFAR-shaped data
    python bench/overhead.py --quick    # shorter; under 2 minutes; last line `overhead ratio: X`

What is equal in both contenders: the model (same builder, same seed, so the same initial weights), the uint8
training tensor (the one `fit` loads, subset included), the normalisation (the training split's mean/std, one
addcmul per batch), batch size, Adam and its learning rate, the thread count. Neither validates during the
timed epochs: `fit` runs with val_split 0 (its test evaluation comes after training, outside `epoch_seconds`),
the hand loop has no validation. `fit` otherwise runs with its defaults: progress bar on (into a buffer),
loss and accuracy accumulated on the device every step, LR scheduler stepped per batch, metrics files and
checkpoints written between epochs (not inside `epoch_seconds`: reported apart as fit's fixed cost).

Interleaving, epoch by epoch: the hand loop (its own copy of the model and optimizer) runs one epoch from a
callback of the same `fit` call, before cnnlab's epoch on odd epochs and after it on even ones, outside fit's
timer. Each cnnlab epoch thus has a hand-loop epoch next to it in time, and drift in the machine's load (other
processes on the cores) cancels in the pair. Timing: `fit`'s own `epoch_seconds` from its history;
perf_counter around the hand loop's batches. Epoch 1 of both is a warm-up and is dropped; the ratio is the
median over pairs of (cnnlab images/s / hand-loop images/s), over `rounds` separate `fit` calls.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from benchlib import (
    MNIST,
    HandLoop,
    PairedEpochs,
    append_results,
    choose_threads,
    load_average,
    markdown_table,
    median,
    quiet,
    spread,
    write_cifar_like_npz,
)

from cnnlab.config import build_dataclass
from cnnlab.data import Normalizer
from cnnlab.models import create
from cnnlab.train.callbacks import Callback
from cnnlab.train.config import TrainConfig
from cnnlab.train.fit import fit, load_data


@dataclass
class Workload:
    label: str
    model: str
    data: str
    train_samples: int | None
    epochs: int  # measured epochs; one warm-up epoch is added
    rounds: int = 1
    batch_size: int = 256


class PairedHandLoop(Callback):
    """fit's epoch hooks driving a PairedEpochs: a hand-loop epoch beside each of fit's (outside fit's timer)."""

    def __init__(self, loop: HandLoop) -> None:
        self.pairs = PairedEpochs(loop)
        self.seconds = self.pairs.seconds

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.pairs.before(epoch)

    def on_epoch_end(self, trainer, epoch: int, metrics: dict) -> None:
        self.pairs.after(epoch)


def workloads(quick: bool, tmp: Path) -> list[Workload]:
    if quick:
        cifar = write_cifar_like_npz(tmp / "cifar_like.npz", train=256, test=64)
        return [
            Workload("LeNet-5 modern, MNIST", "lenet5_modern", str(MNIST), 4_000, 20),
            Workload("LeNet-5 paper, MNIST", "lenet5", str(MNIST), 4_000, 4),
            Workload("ResNet-20, CIFAR-shaped", "resnet20", str(cifar), None, 4, batch_size=128),
        ]
    cifar = write_cifar_like_npz(tmp / "cifar_like.npz", train=2048, test=256)
    return [
        Workload("LeNet-5 modern, MNIST", "lenet5_modern", str(MNIST), None, 6, rounds=2),
        Workload("LeNet-5 paper, MNIST", "lenet5", str(MNIST), 20_000, 4, rounds=2),
        Workload("ResNet-20, CIFAR-shaped", "resnet20", str(cifar), None, 4, rounds=2, batch_size=128),
    ]


def config_for(work: Workload, threads: int, out: Path) -> TrainConfig:
    return build_dataclass(
        TrainConfig,
        dict(
            model=work.model,
            data=work.data,
            train_samples=work.train_samples,
            val_split=0.0,
            epochs=1 + work.epochs,
            batch_size=work.batch_size,
            optimizer=dict(name="adam", lr=1e-3),
            threads=threads,
            out=str(out),
            seed=0,
        ),
    )


def hand_loop_for(config: TrainConfig, work: Workload) -> HandLoop:
    splits = load_data(config)  # the very images fit trains on (the same stratified subset)
    normalizer = Normalizer.from_imageset(splits.train)
    torch.manual_seed(config.seed)
    model = create(work.model, num_classes=len(splits.classes), in_channels=splits.in_channels)
    images, labels = splits.train.images, splits.train.labels
    return HandLoop(model, images, labels, normalizer.mean, normalizer.std, work.batch_size, 1e-3, config.seed)


def measure(work: Workload, threads: int, tmp: Path) -> tuple[list[float], list[float], list[float], float]:
    """(cnnlab images/s, hand-loop images/s, per-pair ratios, fit's seconds outside its epochs) over the rounds."""
    torch.set_num_threads(threads)
    config = config_for(work, threads, tmp / f"run_{work.model}")
    cnnlab, loop, ratios, fixed = [], [], [], []
    for _ in range(work.rounds):
        paired = PairedHandLoop(hand_loop_for(config, work))
        start = time.perf_counter()
        with quiet():
            result = fit(config, overwrite=True, callbacks=[paired])
        wall = time.perf_counter() - start
        images = len(load_data(config).train)
        for row in result.history[1:]:
            loop_rate = images / paired.seconds[row["epoch"]]
            cnnlab.append(row["images_per_second"])
            loop.append(loop_rate)
            ratios.append(row["images_per_second"] / loop_rate)
        fixed.append(wall - sum(row["epoch_seconds"] for row in result.history) - sum(paired.seconds.values()))
        print(
            f"  {work.label}: cnnlab {median(cnnlab):,.0f} img/s, hand loop {median(loop):,.0f} img/s, "
            f"pair ratios {', '.join(f'{r:.3f}' for r in ratios[-work.epochs :])}",
            flush=True,
        )
    return cnnlab, loop, ratios, median(fixed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short version (under 2 minutes)")
    parser.add_argument("--threads", default="auto", help="torch threads for both contenders (default: idle cores)")
    parser.add_argument("--no-record", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    load_before = load_average()
    threads = choose_threads(args.threads)
    rows, headline = [], float("nan")
    with tempfile.TemporaryDirectory(prefix="cnnlab-bench-") as tmp:
        for work in workloads(args.quick, Path(tmp)):
            cnnlab, loop, ratios, fixed = measure(work, threads, Path(tmp))
            ratio = median(ratios)
            headline = ratio if work.model == "lenet5_modern" else headline
            rows.append(
                [
                    work.label,
                    work.batch_size,
                    median(cnnlab),
                    median(loop),
                    ratio,
                    spread(ratios),
                    len(ratios),
                    f"{fixed:.1f}",
                ]
            )
    header = ["workload", "batch", "cnnlab img/s", "hand loop img/s", "ratio", "pair range", "pairs", "fit fixed s"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        append_results(
            "Trainer overhead" + (" (quick)" if args.quick else ""),
            threads,
            table,
            [
                "ratio = median over epoch pairs of cnnlab fit images/s / hand-written loop images/s; each pair "
                "is one fit epoch and one hand-loop epoch run next to it (alternately before and after) in the "
                "same process; warm-up epoch dropped.",
                "fit fixed s = fit's wall time outside its training epochs (data load, run files, checkpoints, "
                "test evaluation) for a whole run: a per-run cost that the epoch ratio does not include.",
            ],
            load_before,
        )
    print(f"overhead ratio: {headline:.3f}")


if __name__ == "__main__":
    main()
