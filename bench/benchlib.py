"""Shared pieces of the bench scripts: machine facts, thread choice, a minimal hand-written loop, RESULTS.md.

Every bench figure is a ratio of two contenders measured side by side in one process (or one session), with
repeats interleaved (A B B A ...) so that drift in the machine's load cancels, and medians over repeats.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.util
import io
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "RESULTS.md"
MNIST = REPO / "data" / "mnist"
CIFAR_ARCHIVE = REPO.parent / "shared" / "data" / "cifar10-jpg" / "CIFAR-10-images-jpg.tar.gz"

if importlib.util.find_spec("cnnlab") is None:  # a plain checkout: run from the source tree
    sys.path.insert(0, str(REPO / "src"))

import torch  # noqa: E402  (after the path fix on purpose: cnnlab imports follow in the scripts)
import torch.nn.functional as F  # noqa: E402

# -- machine ---------------------------------------------------------------------------------------------------


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_average() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def choose_threads(requested: str | int | None) -> int:
    """`auto`: all cores on a quiet machine, fewer when others are busy.

    With other processes on the cores, OpenMP threads that wait for each other at every op's barrier lose
    their core to the scheduler; measured here with a load of 7 on 2 cores, LeNet-5 trained at 6,500 img/s
    on 1 thread and 500-2,200 img/s on 2. One thread per idle core is what a fair comparison can use.
    """
    if requested not in (None, "auto"):
        return max(1, int(requested))
    idle = cores() - load_average()
    return max(1, min(cores(), int(idle + 0.5)))


def machine_lines(threads: int, load_before: float | None = None) -> list[str]:
    load = f"{load_before:.2f} at the start, {load_average():.2f} at the end" if load_before is not None else ""
    return [
        f"- machine: {cpu_model()}, {cores()} cores, {platform.system()} {platform.release()}",
        f"- python {platform.python_version()}, torch {torch.__version__}, threads {threads}"
        + (f", interop {torch.get_num_interop_threads()}" if threads else ""),
        f"- load average (1 min): {load}" if load else f"- load average (1 min): {load_average():.2f}",
    ]


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])


# -- statistics and tables -------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """`min-max` of a list of ratios, for the table (how much the repeats disagree)."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(value: object) -> str:
        if isinstance(value, float):
            return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(title: str, threads: int, table: str, notes: Sequence[str] = (), load_before=None) -> None:
    """A dated section in bench/RESULTS.md: what ran, where, and the table."""
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    section = [f"## {title} — {stamp}", "", f"`{command_line()}`", "", *machine_lines(threads, load_before), ""]
    section += [table, ""]
    section += [f"- {note}" for note in notes]
    if not RESULTS.exists():
        RESULTS.write_text("# cnnlab bench results\n\nAppended by the scripts in bench/; newest last.\n\n")
    with RESULTS.open("a") as handle:
        handle.write("\n".join(section).rstrip() + "\n\n")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence progress bars and warnings of a contender (their cost is still paid: output goes to a buffer)."""
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stderr(io.StringIO()),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        yield


# -- data ------------------------------------------------------------------------------------------------------


def write_cifar_like_npz(path: Path, train: int, test: int, seed: int = 0) -> Path:
    """Random uint8 32x32x3 images with labels, in the MedMNIST layout `fit` reads (speed only, no signal)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    np.savez(
        path,
        train_images=rng.integers(0, 256, (train, 32, 32, 3), dtype=np.uint8),
        train_labels=rng.integers(0, 10, (train, 1)),
        test_images=rng.integers(0, 256, (test, 32, 32, 3), dtype=np.uint8),
        test_labels=rng.integers(0, 10, (test, 1)),
    )
    return path


def cifar_folder(explicit: str | None = None) -> Path | None:
    """The CIFAR-10 JPEG folder (train/ test/ of class folders): the given path, /tmp's copy, or extracted there."""
    for candidate in filter(None, [explicit, "/tmp/cifar10jpg/CIFAR-10-images"]):
        path = Path(candidate)
        if (path / "train").is_dir():
            return path
        if (path / "CIFAR-10-images" / "train").is_dir():
            return path / "CIFAR-10-images"
    if explicit is None and CIFAR_ARCHIVE.is_file():
        import tarfile

        target = Path("/tmp/cifar10jpg")
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(CIFAR_ARCHIVE) as archive:
            archive.extractall(target, filter="data")
        return cifar_folder(str(target))
    return None


# -- the hand-written baseline ---------------------------------------------------------------------------------


def affine_from(mean: Sequence[float], std: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) with x_norm = x_uint8 * scale + shift, the same arithmetic as cnnlab's Preprocess."""
    std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    return 1.0 / std_t / 255.0, -mean_t / std_t


class HandLoop:
    """The minimal PyTorch training loop, one epoch per `epoch()` call (seconds of that epoch).

    Shuffle by permutation + index_select on the uint8 tensor, normalise with one addcmul, Adam, cross-entropy;
    no metrics, no host syncs, no callbacks; perf_counter around the batches only.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        batch_size: int,
        lr: float = 1e-3,
        seed: int = 0,
        channels_last: bool = False,
    ) -> None:
        self.scale, self.shift = affine_from(mean, std)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model = model.to(memory_format=self.memory_format)
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)

    def epoch(self) -> float:
        model, optimizer, batch_size = self.model, self.optimizer, self.batch_size
        model.train()
        start = time.perf_counter()
        order = torch.randperm(len(self.labels), generator=self.generator)
        for first in range(0, len(self.labels), batch_size):
            index = order[first : first + batch_size]
            x = torch.addcmul(self.shift, self.images.index_select(0, index).float(), self.scale)
            x = x.contiguous(memory_format=self.memory_format)
            loss = F.cross_entropy(model(x), self.labels.index_select(0, index))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start


class PairedEpochs:
    """A reference HandLoop epoch next to each epoch of a contender: before it on odd epochs, after on even ones.

    Call `before(epoch)` just before the contender's timer starts and `after(epoch)` just after it stops (any
    framework's epoch hooks). Each contender epoch then has a reference epoch beside it in time, so a ratio
    of the two cancels the drift of the machine's load (other processes on the cores).
    """

    def __init__(self, loop: HandLoop) -> None:
        self.loop = loop
        self.seconds: dict[int, float] = {}

    def before(self, epoch: int) -> None:
        if epoch % 2 == 1:
            self.seconds[epoch] = self.loop.epoch()

    def after(self, epoch: int) -> None:
        if epoch % 2 == 0:
            self.seconds[epoch] = self.loop.epoch()


def hand_loop(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    epochs: int,
    lr: float = 1e-3,
    seed: int = 0,
    channels_last: bool = False,
) -> list[float]:
    """Seconds of each of `epochs` epochs of the HandLoop."""
    loop = HandLoop(model, images, labels, mean, std, batch_size, lr, seed, channels_last)
    return [loop.epoch() for _ in range(epochs)]


@torch.inference_mode()
def accuracy(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std, batch_size: int = 2000
) -> float:
    scale, shift = affine_from(mean, std)
    model.eval()
    correct = 0
    for first in range(0, len(labels), batch_size):
        x = torch.addcmul(shift, images[first : first + batch_size].float(), scale)
        correct += int((model(x).argmax(1) == labels[first : first + batch_size]).sum())
    return correct / len(labels)
