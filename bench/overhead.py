"""Trainer overhead: cnnlab's `fit` against a minimal hand-written PyTorch loop, images/s side by side.

    python bench/overhead.py            # LeNet-5 (modern and paper) on MNIST, ResNet-20 on CIFAR-shaped data
    python bench/overhead.py --quick    # shorter; under 2 minutes; last line `overhead ratio: X`

What is equal in both contenders: the model (same builder, same seed), the uint8 training tensor (the one `fit`
loads, subset included), the normalisation (the training split's mean/std, one addcmul), batch size, Adam and
its learning rate, the thread count. Neither validates during the timed epochs: `fit` runs with val_split 0
(its test evaluation comes after training, outside `epoch_seconds`), the hand loop has no validation. `fit`
runs with its defaults otherwise: progress bar on (into a buffer), metrics accumulated per step, LR scheduler
stepped per batch, checkpoints between epochs (not inside `epoch_seconds`; reported apart as fixed cost).

Timing: `fit`'s own `epoch_seconds` from its history; perf_counter around the hand loop's batches. The first
epoch of each run is a warm-up and is dropped. Rounds alternate the order (cnnlab first, then the loop first)
so that drift in the machine's load cancels; the ratio is the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import (
    MNIST,
    append_results,
    choose_threads,
    hand_loop,
    load_average,
    markdown_table,
    median,
    quiet,
    spread,
    write_cifar_like_npz,
)

import torch
from cnnlab.config import build_dataclass
from cnnlab.data import Normalizer
from cnnlab.models import create
from cnnlab.train.config import TrainConfig
from cnnlab.train.fit import fit, load_data


@dataclass
class Workload:
    label: str
    model: str
    data: str
    train_samples: int | None
    epochs: int  # measured epochs; one warm-up epoch is added
    rounds: int
    batch_size: int = 256


@dataclass
class Round:
    cnnlab: float  # images/s, median over measured epochs
    loop: float
    fixed_seconds: float  # fit's wall time outside its training epochs (setup, checkpoints, test evaluation)

    @property
    def ratio(self) -> float:
        return self.cnnlab / self.loop


def workloads(quick: bool, tmp: Path) -> list[Workload]:
    if quick:
        cifar = write_cifar_like_npz(tmp / "cifar_like.npz", train=768, test=64)
        return [
            Workload("LeNet-5 modern, MNIST", "lenet5_modern", str(MNIST), 10_000, 2, 3),
            Workload("LeNet-5 paper, MNIST", "lenet5", str(MNIST), 6_000, 1, 2),
            Workload("ResNet-20, CIFAR-shaped", "resnet20", str(cifar), None, 1, 2, batch_size=128),
        ]
    cifar = write_cifar_like_npz(tmp / "cifar_like.npz", train=4096, test=256)
    return [
        Workload("LeNet-5 modern, MNIST", "lenet5_modern", str(MNIST), None, 3, 5),
        Workload("LeNet-5 paper, MNIST", "lenet5", str(MNIST), 20_000, 2, 3),
        Workload("ResNet-20, CIFAR-shaped", "resnet20", str(cifar), None, 2, 3, batch_size=128),
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


def run_cnnlab(config: TrainConfig) -> tuple[float, float]:
    """(images/s over the measured epochs, seconds of fit outside its training epochs)."""
    start = time.perf_counter()
    with quiet():
        result = fit(config, overwrite=True)
    wall = time.perf_counter() - start
    rates = [row["images_per_second"] for row in result.history[1:]]
    return median(rates), wall - sum(row["epoch_seconds"] for row in result.history)


def run_loop(config: TrainConfig, work: Workload) -> float:
    splits = load_data(config)
    normalizer = Normalizer.from_imageset(splits.train)
    torch.manual_seed(config.seed)
    model = create(work.model, num_classes=len(splits.classes), in_channels=splits.in_channels)
    seconds = hand_loop(
        model,
        splits.train.images,
        splits.train.labels,
        normalizer.mean,
        normalizer.std,
        work.batch_size,
        1 + work.epochs,
        lr=1e-3,
        seed=config.seed,
    )
    return median([len(splits.train) / s for s in seconds[1:]])


def measure(work: Workload, threads: int, tmp: Path) -> list[Round]:
    torch.set_num_threads(threads)
    config = config_for(work, threads, tmp / f"run_{work.model}")
    rounds = []
    for number in range(work.rounds):
        if number % 2 == 0:
            cnnlab, fixed = run_cnnlab(config)
            loop = run_loop(config, work)
        else:
            loop = run_loop(config, work)
            cnnlab, fixed = run_cnnlab(config)
        rounds.append(Round(cnnlab, loop, fixed))
        print(f"  {work.label}: round {number + 1}: cnnlab {cnnlab:,.0f} img/s, loop {loop:,.0f} img/s", flush=True)
    return rounds


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
            rounds = measure(work, threads, Path(tmp))
            ratio = median([r.ratio for r in rounds])
            headline = ratio if work.model == "lenet5_modern" else headline
            rows.append(
                [
                    work.label,
                    work.batch_size,
                    median([r.cnnlab for r in rounds]),
                    median([r.loop for r in rounds]),
                    ratio,
                    spread([r.ratio for r in rounds]),
                    len(rounds),
                    f"{median([r.fixed_seconds for r in rounds]):.1f}",
                ]
            )
    header = ["workload", "batch", "cnnlab img/s", "hand loop img/s", "ratio", "ratio range", "rounds", "fit fixed s"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        append_results(
            "Trainer overhead" + (" (quick)" if args.quick else ""),
            threads,
            table,
            [
                "ratio = cnnlab fit images/s / hand-written loop images/s, per round, median over rounds; "
                "warm-up epoch dropped; order alternates per round.",
                "fit fixed s = fit's wall time outside its training epochs (data load, run files, checkpoints, "
                "test evaluation) for the whole run: a per-run cost the epochs ratio does not include.",
            ],
            load_before,
        )
    print(f"overhead ratio: {headline:.3f}")


if __name__ == "__main__":
    main()
