"""Inference: batch-1 latency and batch-256 throughput, PyTorch eager vs the exported ONNX model on ONNX Runtime.

    python bench/inference.py           # lenet5_modern (1x28x28) and resnet20 (3x32x32)
    python bench/inference.py --quick

Each model is trained for one short epoch with `fit` (the weights do not matter for speed) and exported with
`cnnlab.export.export_run`, which bakes the preprocessing in: both contenders take the raw uint8 batch and
return logits. Eager = the same module (preprocess + model) in eval mode under torch.inference_mode. ONNX
Runtime: CPUExecutionProvider, intra-op threads = torch's threads, inter-op 1, default graph optimisations.
Calls alternate in blocks between the two; medians over blocks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from benchlib import (
    MNIST,
    append_results,
    choose_threads,
    load_average,
    markdown_table,
    median,
    quiet,
    write_cifar_like_npz,
)

from cnnlab.config import build_dataclass
from cnnlab.export import export_run
from cnnlab.export.exporters import ImageClassifier
from cnnlab.runs import load_run
from cnnlab.train import TrainConfig, fit


def trained_run(model: str, data: str, shape, out: Path, threads: int) -> Path:
    values = dict(model=model, data=data, epochs=1, train_samples=512, val_split=0.0, batch_size=128)
    values.update(optimizer={"name": "adam", "lr": 1e-3}, out=str(out), threads=threads)
    with quiet():
        return fit(build_dataclass(TrainConfig, values), overwrite=True).run_dir


def timed(fn, calls: int) -> float:
    """Seconds per call (mean over `calls` back-to-back calls)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(run_dir: Path, threads: int, quick: bool) -> dict[str, float]:
    import onnxruntime

    onnx_path = export_run(run_dir, "onnx").path
    run = load_run(run_dir)
    module = ImageClassifier(run).eval()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    figures: dict[str, float] = {}
    for batch, calls in [(1, 50 if quick else 200), (256, 2 if quick else 4)]:
        images = torch.randint(0, 256, (batch, *run.input_shape), dtype=torch.uint8, generator=generator)
        feed = {"images": images.numpy()}

        def eager(images=images):
            with torch.inference_mode():
                module(images)

        def ort(feed=feed):
            session.run(["logits"], feed)

        eager(), ort()  # warm-up
        eager_times, ort_times = [], []
        for _ in range(5 if quick else 9):
            eager_times.append(timed(eager, calls))
            ort_times.append(timed(ort, calls))
        figures[f"eager {batch}"], figures[f"ort {batch}"] = median(eager_times), median(ort_times)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    load_before = load_average()
    threads = choose_threads(args.threads)
    torch.set_num_threads(threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cnnlab-inference-") as tmp:
        cifar = write_cifar_like_npz(Path(tmp) / "cifar_like.npz", train=512, test=64)
        for model, data, shape in [("lenet5_modern", str(MNIST), (1, 28, 28)), ("resnet20", str(cifar), (3, 32, 32))]:
            run_dir = trained_run(model, data, shape, Path(tmp) / model, threads)
            f = compare(run_dir, threads, args.quick)
            rows.append(
                [model, "batch 1 latency (ms)", f["eager 1"] * 1e3, f["ort 1"] * 1e3, f["eager 1"] / f["ort 1"]]
            )
            rows.append(
                [model, "batch 256 (images/s)", 256 / f["eager 256"], 256 / f["ort 256"], f["eager 256"] / f["ort 256"]]
            )
            print(f"  {model}: batch 1 eager {f['eager 1'] * 1e3:.3f} ms, ort {f['ort 1'] * 1e3:.3f} ms", flush=True)
    header = ["model", "measure", "PyTorch eager", "ONNX Runtime", "ORT speed-up (eager time / ORT time)"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        notes = ["uint8 images in, logits out (preprocessing inside both); median of alternated blocks of calls."]
        append_results(
            "Inference: eager vs ONNX Runtime" + (" (quick)" if args.quick else ""), threads, table, notes, load_before
        )
    for row in rows:
        print(f"onnxruntime speed-up {row[0]} {row[1]}: {row[4]:.2f}")


if __name__ == "__main__":
    main()
