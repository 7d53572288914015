"""1 process against 2 (torchrun + DDP, gloo) on this machine's CPU cores, same global batch, images/s side by side.

    python bench/distributed.py            # LeNet-5 modern on 20,000 MNIST images, 3 epochs per run, A B B A
    python bench/distributed.py --quick    # 8,000 images; last line `2-process speed-up: X`

Contenders, run as `cnnlab train` subprocesses in the order A B C C B A so that load drift cancels: 1 process
with 2 threads, 1 process with 1 thread, 2 processes with 1 thread each (`--nproc 2`). Speed is the median
images/s of the epochs after the first (fit's own `epoch_seconds`), test accuracy is read from results.json
(the runs follow the same trajectory, so it must agree to about 1e-3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import MNIST, append_results, cores, load_average, markdown_table, median

CONTENDERS = {"1 process, 2 threads": (1, 2), "1 process, 1 thread": (1, 1), "2 processes, 1 thread each": (2, 1)}


def run_once(name: str, samples: int, epochs: int, out: Path) -> tuple[float, float]:
    nproc, threads = CONTENDERS[name]
    command = [sys.executable, "-m", "cnnlab", "train", "--model", "lenet5_modern", "--data", str(MNIST)]
    command += ["--train-samples", str(samples), "--epochs", str(epochs), "--batch-size", "256"]
    command += ["--optimizer.name", "adam", "--optimizer.lr", "0.003", "--threads", str(threads)]
    command += ["--no-progress", "--out", str(out), "--overwrite"]
    if nproc > 1:
        command += ["--nproc", str(nproc)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    speed = median([row["images_per_second"] for row in rows[1:]])
    return speed, json.loads((out / "results.json").read_text())["test"]["accuracy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    samples, epochs = (8_000, 3) if args.quick else (20_000, 3)
    load_before = load_average()
    order = list(CONTENDERS) + list(reversed(CONTENDERS))
    speeds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for index, name in enumerate(order):
            speed, accuracy[name] = run_once(name, samples, epochs, Path(tmp) / f"run{index}")
            speeds[name].append(speed)
            print(f"  {name}: {speed:,.0f} img/s, test accuracy {accuracy[name]:.4f}", flush=True)
    base = median(speeds["1 process, 2 threads"])
    rows = [
        [name, f"{median(values):,.0f}", f"{median(values) / base:.2f}", f"{accuracy[name]:.4f}"]
        for name, values in speeds.items()
    ]
    table = markdown_table(["contender", "images/s", "ratio to 1 process × 2 threads", "test accuracy"], rows)
    print(table)
    speedup = median(speeds["2 processes, 1 thread each"]) / base
    notes = [
        f"LeNet-5 modern, {samples:,} MNIST images, batch 256 (the global batch in every contender), {epochs} epochs;"
        f" {cores()} cores. Speed: median over runs of the median epoch (first epoch dropped).",
    ]
    if not args.no_record:
        append_results("Distributed: 1 process vs 2 (quick)" if args.quick else "Distributed: 1 process vs 2", cores(),
                       table, notes, load_before)  # fmt: skip
    print(f"2-process speed-up: {speedup:.2f}")


if __name__ == "__main__":
    main()
