"""Peers: the same LeNet-5 training in cnnlab, Keras 3 (torch / TensorFlow / JAX backends) and PyTorch Lightning.

    pip install .[bench]                 # keras, lightning (bench-only extras); tensorflow-cpu, jax optional
    python bench/peers.py                # full MNIST (60,000), 4 epochs
    python bench/peers.py --quick        # 12,000 images, 4 epochs

Every contender runs in its own subprocess (a fresh interpreter: no framework shares a thread pool or an import
with another) with the same thread count (torch.set_num_threads, OMP/MKL variables, TensorFlow's intra-op pool;
TensorFlow's inter-op pool is 1 so it uses no more cores than the others). All train the modern LeNet-5
(conv6 5x5 pad 2, ReLU, max-pool; conv16 5x5, ReLU, max-pool; fc120, fc84, fc10) with batch 256, Adam lr 1e-3,
cross-entropy, the same epochs, on the same images (one .npz written for all), normalised with the training
mean/std, and are tested on the 10,000 MNIST test images.

Each framework is used as its documentation shows: Keras `model.fit` on arrays normalised to float32 beforehand
(its native image layout per backend: NHWC for TensorFlow/JAX, NCHW for torch); Lightning with a
TensorDataset + DataLoader; cnnlab `fit` on the .npz with its defaults (progress bar and per-epoch checkpoints
on). Progress output of the peers is off (in cnnlab's disfavour). The epoch time of each is its training
epoch without validation (epoch hooks / fit's history).

Drift: the machine is shared, so runs at different times see different loads. Every subprocess therefore also
runs a fixed yardstick, the bare PyTorch loop (benchlib.HandLoop, cnnlab's lenet5_modern, NCHW) for one epoch
beside each of the contender's epochs (from the framework's epoch hooks, outside its timer; before the epoch
on odd epochs, after it on even ones). Each contender's speed is the median over its epochs 2.. of (yardstick
epoch time / its epoch time), and ratios between contenders are ratios of those speeds: the load of the
moment cancels in each pair.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    MNIST,
    REPO,
    append_results,
    choose_threads,
    load_average,
    markdown_table,
    median,
    quiet,
    spread,
)

BATCH, LR = 256, 1e-3
CNNLAB = "cnnlab (defaults)"
CONTENDERS_BEST = "cnnlab, channels_last (best fp32 CPU settings)"
CONTENDERS = {
    CNNLAB: "cnnlab",
    CONTENDERS_BEST: "cnnlab_best",
    "cnnlab, channels_last + bf16 autocast (AMX/AVX512-BF16 CPUs)": "cnnlab_bf16",
    "bare PyTorch loop, channels_last": "loop_cl",
    "PyTorch Lightning": "lightning",
    "Keras 3, torch backend": "keras_torch",
    "Keras 3, TensorFlow backend": "keras_tensorflow",
    "Keras 3, JAX backend": "keras_jax",
}
NEEDS = {"lightning": "lightning", "keras_torch": "keras", "keras_tensorflow": "tensorflow", "keras_jax": "jax"}


# -- data ------------------------------------------------------------------------------------------------------


def write_data(path: Path, train: int | None) -> Path:
    """MNIST (the first `train` training images; all test images) as one .npz every contender reads."""
    import numpy as np

    from cnnlab.data import load_dataset

    splits = load_dataset(MNIST, val_split=0.0)
    count = train or len(splits.train)
    np.savez(
        path,
        train_images=splits.train.images[:count, 0].numpy(),
        train_labels=splits.train.labels[:count].numpy(),
        test_images=splits.test.images[:, 0].numpy(),
        test_labels=splits.test.labels.numpy(),
    )
    return path


def read_normalised(path: Path, layout: str):
    """float32 arrays normalised with the training mean/std, (N, 1, 28, 28) for NCHW or (N, 28, 28, 1)."""
    import numpy as np

    with np.load(path) as data:
        x_train, y_train = data["train_images"], data["train_labels"]
        x_test, y_test = data["test_images"], data["test_labels"]
    mean, std = x_train.mean() / 255.0, x_train.std() / 255.0
    axis = 1 if layout == "nchw" else -1

    def prep(x):
        return np.expand_dims(((x.astype(np.float32) / 255.0) - mean) / std, axis).astype(np.float32)

    return prep(x_train), y_train.astype(np.int64), prep(x_test), y_test.astype(np.int64)


# -- contenders (each runs in its own subprocess) -----------------------------------------------------------------


def yardstick(data: Path, threads: int):
    """The bare-loop PairedEpochs every contender's process runs beside its epochs (see the module docstring)."""
    import torch
    from benchlib import HandLoop, PairedEpochs

    from cnnlab.data import Normalizer, load_dataset
    from cnnlab.models import create

    torch.set_num_threads(threads)
    train = load_dataset(data, val_split=0.0).train
    normalizer = Normalizer.from_imageset(train)
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(1)
    model = create("lenet5_modern")
    torch.random.set_rng_state(generator_state)  # the contender's own seeding is left as it was
    return PairedEpochs(HandLoop(model, train.images, train.labels, normalizer.mean, normalizer.std, BATCH, LR))


def run_cnnlab(data: Path, epochs: int, threads: int, pairs, channels_last: bool, precision: str) -> dict:
    from cnnlab.config import build_dataclass
    from cnnlab.train import TrainConfig, fit
    from cnnlab.train.callbacks import Callback

    class Paired(Callback):
        def on_epoch_start(self, trainer, epoch: int) -> None:
            pairs.before(epoch)

        def on_epoch_end(self, trainer, epoch: int, metrics: dict) -> None:
            pairs.after(epoch)

    with tempfile.TemporaryDirectory() as out:
        values = dict(model="lenet5_modern", data=str(data), val_split=0.0, epochs=epochs, batch_size=BATCH)
        values.update(optimizer=dict(name="adam", lr=LR), threads=threads, out=out)
        values.update(channels_last=channels_last, precision=precision)
        with quiet():
            result = fit(build_dataclass(TrainConfig, values), callbacks=[Paired()])
    seconds = [row["epoch_seconds"] for row in result.history]
    return {"epoch_seconds": seconds, "accuracy": result.results["test"]["accuracy"]}


def run_loop(data: Path, epochs: int, threads: int, pairs, channels_last: bool) -> dict:
    import torch
    from benchlib import HandLoop, accuracy

    from cnnlab.data import Normalizer, load_dataset
    from cnnlab.models import create

    torch.set_num_threads(threads)
    splits = load_dataset(data, val_split=0.0)
    normalizer = Normalizer.from_imageset(splits.train)
    torch.manual_seed(0)
    model = create("lenet5_modern")
    mean, std = normalizer.mean, normalizer.std
    loop = HandLoop(model, splits.train.images, splits.train.labels, mean, std, BATCH, LR, channels_last=channels_last)
    seconds = []
    for epoch in range(1, epochs + 1):
        pairs.before(epoch)
        seconds.append(loop.epoch())
        pairs.after(epoch)
    model = model.to(memory_format=torch.contiguous_format)
    return {"epoch_seconds": seconds, "accuracy": accuracy(model, splits.test.images, splits.test.labels, mean, std)}


def torch_lenet():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


def run_lightning(data: Path, epochs: int, threads: int, pairs) -> dict:
    import lightning as L
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = (torch.from_numpy(a) for a in read_normalised(data, "nchw"))
    seconds: list[float] = []

    class LeNet(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch_lenet()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LR)

        def on_train_epoch_start(self) -> None:
            pairs.before(self.current_epoch + 1)
            self._start = time.perf_counter()

        def on_train_epoch_end(self) -> None:
            seconds.append(time.perf_counter() - self._start)
            pairs.after(self.current_epoch + 1)

    model = LeNet()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with quiet():
        trainer.fit(model, DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH, shuffle=True))
    model.eval()
    with torch.inference_mode():
        correct = (model.net(x_test).argmax(1) == y_test).sum().item()
    return {"epoch_seconds": seconds, "accuracy": correct / len(y_test)}


def run_keras(data: Path, epochs: int, threads: int, pairs, backend: str) -> dict:
    os.environ["KERAS_BACKEND"] = backend
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    from keras import layers

    layout = "nchw" if backend == "torch" else "nhwc"
    keras.config.set_image_data_format("channels_first" if layout == "nchw" else "channels_last")
    keras.utils.set_random_seed(0)
    x_train, y_train, x_test, y_test = read_normalised(data, layout)
    seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            pairs.before(epoch + 1)
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            seconds.append(time.perf_counter() - self.start)
            pairs.after(epoch + 1)

    model = keras.Sequential(
        [
            keras.Input(x_train.shape[1:]),
            layers.Conv2D(6, 5, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(10),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LR),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=0, callbacks=[EpochTimer()])
    _, test_accuracy = model.evaluate(x_test, y_test, batch_size=1000, verbose=0)
    return {"epoch_seconds": seconds, "accuracy": float(test_accuracy)}


def worker(name: str, data: Path, epochs: int, threads: int) -> dict:
    if name.startswith("keras_"):
        os.environ["KERAS_BACKEND"] = name.removeprefix("keras_")  # before torch is imported by the yardstick
    pairs = yardstick(data, threads)
    if name.startswith("cnnlab"):
        result = run_cnnlab(data, epochs, threads, pairs, name != "cnnlab", "bf16" if name == "cnnlab_bf16" else "fp32")
    elif name == "loop_cl":
        result = run_loop(data, epochs, threads, pairs, channels_last=True)
    elif name == "lightning":
        result = run_lightning(data, epochs, threads, pairs)
    else:
        result = run_keras(data, epochs, threads, pairs, name.removeprefix("keras_"))
    result["yardstick_seconds"] = [pairs.seconds.get(epoch) for epoch in range(1, epochs + 1)]
    return result


def speeds(result: dict) -> list[float]:
    """Per epoch 2..: yardstick epoch time / contender epoch time (speed relative to the bare loop)."""
    pairs = zip(result["yardstick_seconds"][1:], result["epoch_seconds"][1:])
    return [reference / seconds for reference, seconds in pairs if reference]


# -- the bench ----------------------------------------------------------------------------------------------------


def available(key: str) -> bool:
    module = NEEDS.get(key)
    return module is None or importlib.util.find_spec(module) is not None


def spawn(key: str, data: Path, epochs: int, threads: int) -> dict:
    env = dict(os.environ)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        env[variable] = str(threads)
    env.update(TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    if key == "keras_jax" and threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    command = [sys.executable, __file__, "--worker", key, "--data", str(data), "--epochs", str(epochs)]
    command += ["--threads", str(threads)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return {"error": " / ".join(tail) or f"exit code {done.returncode}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="12,000 training images")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is not timed)")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each contender (order rotated per round)")
    parser.add_argument("--threads", default="auto")
    parser.add_argument("--only", default="", help="comma-separated contender keys: " + ",".join(CONTENDERS.values()))
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, Path(args.data), args.epochs, int(args.threads))
        print("RESULT " + json.dumps(result), flush=True)
        return
    load_before = load_average()
    threads = choose_threads(args.threads)
    images = 12_000 if args.quick else 60_000
    wanted = set(filter(None, args.only.split(","))) or set(CONTENDERS.values())
    keys = {label: key for label, key in CONTENDERS.items() if key in wanted or key == "cnnlab"}
    missing = [label for label, key in keys.items() if not available(key)]
    keys = {label: key for label, key in keys.items() if label not in missing}
    results: dict[str, list[dict]] = {label: [] for label in keys}
    with tempfile.TemporaryDirectory(prefix="cnnlab-peers-") as tmp:
        data = write_data(Path(tmp) / "mnist.npz", images)
        order = list(keys)
        for number in range(args.rounds):
            shift = number % len(order)
            for label in order[shift:] + order[:shift]:
                result = spawn(keys[label], data, args.epochs, threads)
                results[label].append(result)
                shown = result.get("error") or (
                    f"{median(result['epoch_seconds'][1:]):.2f} s/epoch, "
                    f"{median(speeds(result)):.2f}x the bare loop, accuracy {result['accuracy']:.4f}"
                )
                print(f"  round {number + 1}: {label}: {shown}", flush=True)
    rows = table_rows(results)
    header = ["contender", "epoch s", "speed vs bare loop", "range", "epoch time / cnnlab's", "test accuracy"]
    table = markdown_table(header, rows)
    print(table)
    peers = [r for r in rows if not str(r[0]).startswith(("cnnlab", "bare")) and not isinstance(r[4], str)]
    fastest = min(peers, key=lambda r: r[4], default=None)
    notes = [
        f"{args.epochs} epochs of {images:,} MNIST images, batch {BATCH}, Adam lr {LR}, {args.rounds} round(s); "
        "speed vs bare loop = median over epochs 2.. of (bare-loop yardstick epoch time / the contender's epoch "
        "time), both in the contender's process, side by side; epoch time / cnnlab's = cnnlab's speed / its speed.",
        "epoch time / cnnlab's > 1: slower than cnnlab (defaults) by that factor; goal: >= 1.5 for the fastest peer.",
    ]
    if fastest:
        best = next((r for r in rows if r[0] == CONTENDERS_BEST and not isinstance(r[4], str)), None)
        notes.append(f"fastest peer: {fastest[0]}, {fastest[4]:.2f}x cnnlab's epoch time (defaults)")
        if best:
            notes.append(f"fastest peer vs cnnlab best fp32 settings: {fastest[4] / best[4]:.2f}x its epoch time")
    notes += [f"not run (not installed): {label}" for label in missing]
    if not args.no_record:
        title = "Peers: LeNet-5 on MNIST" + (" (quick)" if args.quick else "")
        append_results(title, threads, table, notes, load_before)
    for row in rows:
        ratio = row[4] if isinstance(row[4], str) else f"{row[4]:.2f}"
        print(f"peer epoch-time ratio {row[0]}: {ratio} (test accuracy {row[5]})")
    for note in notes[2:]:
        print(note)


def table_rows(results: dict[str, list[dict]]) -> list[list[object]]:
    cnnlab = median([v for r in results[CNNLAB] if "error" not in r for v in speeds(r)])
    rows = []
    for label, runs in results.items():
        errors = [r["error"] for r in runs if "error" in r]
        values = [v for r in runs if "error" not in r for v in speeds(r)]
        if errors or not values:
            rows.append([label, "-", "-", "-", "-", f"failed: {errors[0] if errors else 'no result'}"[:120]])
            continue
        seconds = median([median(r["epoch_seconds"][1:]) for r in runs])
        speed = median(values)
        accuracy = median([r["accuracy"] for r in runs])
        rows.append([label, seconds, speed, spread(values), cnnlab / speed, f"{accuracy:.4f}"])
    return rows


if __name__ == "__main__":
    main()
