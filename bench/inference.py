"""Inference per task: batch-1 latency and batch-256 throughput, PyTorch eager vs the ONNX export on ONNX Runtime.

    python bench/inference.py           # every task's model
    python bench/inference.py --quick   # fewer calls and blocks (about 3 minutes on 2 cores)

One model per task, each trained for one short epoch with `fit` on generated or bundled data (the weights do
not matter for speed): classification lenet5_modern (1x28x28 MNIST) and resnet20 (3x32x32), medical 3-D
cnn3d_small (1x28x28x28 volumes), detection yolo_grid as the detect_digits example builds it (128x128, decoded
boxes and scores out), faces face_embedder as the faces_olivetti example (resnet20 backbone, 64x64 crops,
embedding out), text kim_cnn (Kim's 300-d, 3x100 filters; token ids in, logits out).

Both contenders run the task's inference module, `Task.inference_module` (raw uint8 images or token ids in, the
task's outputs out, preprocessing inside): eager = that module in eval mode under torch.inference_mode; ONNX
Runtime = `export_run(..., dynamic_batch=True)` (the dynamo exporter) loaded by `onnx_session`
(CPUExecutionProvider, intra-op threads = torch's threads, inter-op 1, default graph optimisations). Calls
alternate in blocks between the two; medians over blocks.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import yaml
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
from cnnlab.export import export_run, onnx_session
from cnnlab.export.exporters import run_graph
from cnnlab.runs import load_run
from cnnlab.train import TrainConfig, fit

BATCHES = (1, 256)


def example_options(name: str) -> dict:
    """model_options and task_options of a shipped example config."""
    config = yaml.safe_load(resources.files("cnnlab.examples").joinpath(f"{name}.yaml").read_text())
    return {"model_options": config.get("model_options", {}), "task_options": config.get("task_options", {})}


def volumes_npz(path: Path, count: int = 64, side: int = 28) -> Path:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", count), ("val", 16), ("test", 16)):
        labels = rng.integers(0, 2, n)
        volumes = rng.integers(0, 60, (n, side, side, side)).astype(np.uint8)
        volumes[labels == 1, 8:16, 8:16, 8:16] = 220
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = volumes, labels[:, None]
    np.savez(path, **arrays)
    return path


def people_folder(folder: Path, people: int = 10, images: int = 4, size: int = 64) -> Path:
    """Generated "people": a fixed random pattern each, noisy copies as their face crops."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for person in range(people):
        base = rng.random((size // 8, size // 8, 3)).repeat(8, 0).repeat(8, 1)
        (folder / f"p{person:02d}").mkdir(parents=True, exist_ok=True)
        for index in range(images):
            array = np.clip(base + 0.08 * rng.standard_normal(base.shape), 0, 1)
            Image.fromarray((array * 255).astype(np.uint8)).save(folder / f"p{person:02d}" / f"{index}.png")
    return folder


def sentences(path: Path, count: int = 300) -> Path:
    rng = random.Random(0)
    words = [f"w{i}" for i in range(400)]
    cues = {"pos": "great", "neg": "awful", "neu": "plain"}
    lines = []
    for index in range(count):
        label = list(cues)[index % 3]
        body = [rng.choice(words) for _ in range(rng.randint(8, 40))]
        body.insert(rng.randint(0, len(body)), cues[label])
        lines.append(f"{label}\t{' '.join(body)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def contenders(tmp: Path) -> list[tuple[str, str, dict]]:
    """(task label, model, TrainConfig fields) for every measured model."""
    cifar = write_cifar_like_npz(tmp / "cifar_like.npz", train=256, test=64)
    faces = example_options("faces_olivetti")
    return [
        ("classification", "lenet5_modern", {"data": str(MNIST), "train_samples": 512}),
        ("classification", "resnet20", {"data": str(cifar)}),
        ("medical 3-D", "cnn3d_small", {"data": str(volumes_npz(tmp / "volumes.npz"))}),
        ("detection", "yolo_grid", {"task": "detection", "data": "digits", **example_options("detect_digits")}),
        ("faces", "face_embedder", {"task": "faces", "data": str(people_folder(tmp / "people")), **faces}),
        ("text", "kim_cnn", {"task": "text", "data": str(sentences(tmp / "sentences.txt"))}),
    ]


def trained_run(model: str, fields: dict, out: Path, threads: int) -> Path:
    values = dict(model=model, epochs=1, val_split=0.2, batch_size=32, out=str(out), threads=threads, seed=0)
    values.update(optimizer={"name": "adam", "lr": 1e-3}, **fields)
    if values.get("task") == "faces":
        values["task_options"] = {**values["task_options"], "test_people": 2, "val_people": 2}
    data = None
    if values.get("task") == "detection":  # a few of the example's digit scenes: its 4,000 take a minute to draw
        from cnnlab.data import DataSplits, ImageSet
        from cnnlab.data.synthetic import DIGIT_CLASSES, digit_scenes

        parts = [digit_scenes(n, split=s, canvas=128, seed=i) for i, (s, n) in enumerate([("train", 64), ("val", 16),
                                                                                       ("test", 16)])]  # fmt: skip
        sets = [ImageSet(images, targets, classes=DIGIT_CLASSES, source="digits") for images, targets in parts]
        data = DataSplits(*sets, list(DIGIT_CLASSES), "digits", "digit scenes")
    with quiet():
        return fit(build_dataclass(TrainConfig, values), data=data, overwrite=True).run_dir


def timed(fn, calls: int) -> float:
    """Seconds per call (mean over `calls` back-to-back calls)."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def calls_for(seconds_per_call: float, budget: float) -> int:
    return max(1, int(budget / max(seconds_per_call, 1e-6)))


def compare(run_dir: Path, threads: int, quick: bool) -> dict[str, float]:
    onnx_path = export_run(run_dir, "onnx", run_dir / "model.onnx", dynamic_batch=True).path
    session = onnx_session(onnx_path, threads=threads)
    run = load_run(run_dir)
    graph = run_graph(run, dynamic_batch=True)
    module = graph.module
    names = [spec.name for spec in session.get_inputs()]
    figures: dict[str, float] = {}
    for batch in BATCHES:
        inputs = graph.sample(batch, seed=batch)
        feed = {name: tensor.numpy() for name, tensor in zip(names, inputs)}

        def eager(inputs=inputs):
            with torch.inference_mode():
                module(*inputs)

        def ort(feed=feed):
            session.run(None, feed)

        first = timed(eager, 1) + timed(ort, 1)  # warm-up, and a measure of how many calls a block can afford
        calls = calls_for(first / 2, 0.15 if quick else 0.5)
        eager_times, ort_times = [], []
        for _ in range(3 if quick else 7):
            eager_times.append(timed(eager, calls))
            ort_times.append(timed(ort, calls))
        figures[f"eager {batch}"], figures[f"ort {batch}"] = median(eager_times), median(ort_times)
    return figures


def rows_for(task: str, model: str, f: dict[str, float]) -> list[list]:
    unit = "sentences/s" if task == "text" else "volumes/s" if "3-D" in task else "images/s"
    return [
        [task, model, "batch 1 latency (ms)", f["eager 1"] * 1e3, f["ort 1"] * 1e3, f["eager 1"] / f["ort 1"]],
        [task, model, f"batch 256 ({unit})", 256 / f["eager 256"], 256 / f["ort 256"], f["eager 256"] / f["ort 256"]],
    ]


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
        for task, model, fields in contenders(Path(tmp)):
            run_dir = trained_run(model, fields, Path(tmp) / model, threads)
            f = compare(run_dir, threads, args.quick)
            rows += rows_for(task, model, f)
            eager, ort = f["eager 1"] * 1e3, f["ort 1"] * 1e3
            print(f"  {task} {model}: batch 1 eager {eager:.3f} ms, ort {ort:.3f} ms", flush=True)
    header = ["task", "model", "measure", "PyTorch eager", "ONNX Runtime", "ORT speed-up (eager time / ORT time)"]
    table = markdown_table(header, rows)
    print(table)
    if not args.no_record:
        notes = [
            "Task.inference_module on both sides (raw uint8 images / token ids in, preprocessing inside; detection "
            "decoded to boxes and scores, faces L2-normalised embeddings); ONNX by the dynamo exporter, dynamic batch; "
            "median of alternated blocks of calls."
        ]
        title = "Inference per task: eager vs ONNX Runtime" + (" (quick)" if args.quick else "")
        append_results(title, threads, table, notes, load_before)
    for row in rows:
        print(f"onnxruntime speed-up {row[0]} {row[1]} {row[2]}: {row[5]:.2f}")


if __name__ == "__main__":
    main()
