"""Overfitting found, explained and treated on real data, in one command:

    python examples/overfitting_demo.py [--out runs/overfitting_demo]

1. Trains ResNet-18 (11.2M parameters) on 500 MNIST training images (50 per class; another 1,000 held out for
   validation) with no regularization at all: no augmentation, dropout, weight decay or early stopping.
2. Diagnoses the run: it must report high_variance, limited_data and inadequate_regularization.
3. Writes the prescribed config (`cnnlab diagnose RUN --write-config`) and trains it.
4. Prints both runs' train/val gap and validation accuracy, and asserts that the prescription shrank the gap and
   raised validation accuracy.
5. Trains a small model far too briefly (LeNet-5 modern, one epoch, tiny learning rate) and checks that it is
   diagnosed as underfitting, not overfitting.

Runs on CPU in a few minutes (2 idle cores); on a machine shared with other jobs pass `--threads 1` (two threads
that keep waiting for each other there are many times slower than one).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without installing

from cnnlab.cli.diagnose_cmd import format_diagnosis  # noqa: E402
from cnnlab.data import mnist_path  # noqa: E402
from cnnlab.diagnose import diagnose_run, write_fixed_config  # noqa: E402
from cnnlab.train import OptimizerConfig, ScheduleConfig, TrainConfig, fit  # noqa: E402

# 1,500 stratified MNIST training images, two thirds held out for validation: 500 to train on (50 per class).
# (With 1,000 training images ResNet-18 already reaches ~95% on MNIST: too little room to show a difference
# beyond the noise of a 1,000-image validation set.)
SUBSET = 1500
VAL_SPLIT = 2 / 3
EXPECTED = {"high_variance", "limited_data", "inadequate_regularization"}


def overfitting_config(out: Path, epochs: int, threads: int | None) -> TrainConfig:
    """A big network, a small data set, and none of the defences against overfitting."""
    return TrainConfig(
        model="resnet18",
        data=str(mnist_path()),
        train_samples=SUBSET,
        val_split=VAL_SPLIT,
        epochs=epochs,
        batch_size=32,
        optimizer=OptimizerConfig(name="adam", lr=1e-3),
        schedule=ScheduleConfig(name="none"),  # a constant rate, as measured (the default is one-cycle)
        out=str(out / "resnet18_500"),
        progress=False,
        threads=threads,
    )


def underfitting_config(out: Path, threads: int | None) -> TrainConfig:
    """A small network stopped long before it could fit: one epoch at a hundredth of the usual SGD rate."""
    return TrainConfig(
        model="lenet5_modern",
        data=str(mnist_path()),
        train_samples=SUBSET,
        val_split=VAL_SPLIT,
        epochs=1,
        batch_size=32,
        optimizer=OptimizerConfig(name="sgd", lr=1e-3),
        schedule=ScheduleConfig(name="none"),
        out=str(out / "lenet5_1epoch"),
        progress=False,
        threads=threads,
    )


def best_numbers(result) -> dict[str, float]:
    """Train/val accuracy at the epoch whose weights the run keeps, and at the last epoch."""
    history = result.history
    best_epoch = result.results["best_epoch"] or len(history)
    best = next(row for row in history if row["epoch"] == best_epoch)
    return {
        "best_epoch": best_epoch,
        "epochs": len(history),
        "train_accuracy": best["train_accuracy"],
        "val_accuracy": best["val_accuracy"],
        "gap": best["train_accuracy"] - best["val_accuracy"],
        "gap_end": history[-1]["train_accuracy"] - history[-1]["val_accuracy"],
        "test_accuracy": result.results[result.results["evaluated_split"]]["accuracy"],
    }


def train(config: TrainConfig, label: str) -> tuple[object, float]:
    start = time.perf_counter()
    result = fit(config, overwrite=True)
    seconds = time.perf_counter() - start
    print(f"{label}: {result.run_dir} ({seconds:.0f} s)")
    return result, seconds


def report(label: str, numbers: dict[str, float], seconds: float) -> str:
    return (
        f"{label:<28} best epoch {numbers['best_epoch']:>2}/{numbers['epochs']:<2}  "
        f"train {numbers['train_accuracy']:.4f}  val {numbers['val_accuracy']:.4f}  "
        f"gap {100 * numbers['gap']:+5.1f} pts (end {100 * numbers['gap_end']:+5.1f})  "
        f"test {numbers['test_accuracy']:.4f}  {seconds:4.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/overfitting_demo", help="folder for the runs")
    parser.add_argument("--epochs", type=int, default=60, help="epochs of the overfitting run")
    parser.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: torch's, one per core); on a machine "
        "shared with other jobs, 1 avoids threads waiting on each other",
    )
    args = parser.parse_args(argv)
    out, start = Path(args.out), time.perf_counter()

    before, before_seconds = train(overfitting_config(out, args.epochs, args.threads), "overfitting run")
    diagnosis = diagnose_run(before.run_dir)
    print("\n" + format_diagnosis(diagnosis) + "\n")
    missing = EXPECTED - set(diagnosis.ids)
    assert not missing, f"diagnosis missed {sorted(missing)}"

    fixed = write_fixed_config(diagnosis, out / "fixed.yaml", out=str(out / "prescribed"))
    print(f"prescribed config: {out / 'fixed.yaml'} (model {fixed.model}, augment {dict(fixed.augment)})")
    after, after_seconds = train(fixed, "prescribed run")

    brief, _ = train(underfitting_config(out, args.threads), "short run")
    brief_diagnosis = diagnose_run(brief.run_dir)

    b, a = best_numbers(before), best_numbers(after)
    print()
    print(report("before (resnet18, no reg.)", b, before_seconds))
    print(report(f"after ({fixed.model}, prescribed)", a, after_seconds))
    print(f"short run (lenet5_modern, 1 epoch): verdict {brief_diagnosis.verdict}, findings {brief_diagnosis.ids}")
    print(f"total: {time.perf_counter() - start:.0f} s")
    assert a["gap"] < b["gap"], "the prescription did not shrink the train/val gap"
    assert a["val_accuracy"] > b["val_accuracy"], "the prescription did not raise validation accuracy"
    assert brief_diagnosis.verdict == "underfitting" and "high_variance" not in brief_diagnosis.ids
    print("OK: diagnosed, prescribed, and the prescription generalises better")
    return 0


if __name__ == "__main__":
    sys.exit(main())
