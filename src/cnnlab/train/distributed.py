"""Training on many processes and machines with PyTorch's own engine: torchrun + DistributedDataParallel.

`torchrun --nproc-per-node N -m cnnlab train ...` (or `cnnlab train --nproc N`, which runs torchrun) starts N
processes; each reads RANK / WORLD_SIZE / LOCAL_RANK from the environment torchrun sets. The backend is gloo
on CPU and nccl on CUDA, one device per local rank. What each process does (see `data.loader` for the data):

- every rank builds the same global batch from the same seeded generator and trains on its own part;
  losses are weighted by each part's share, so the averaged gradient is the global batch's, as on one process;
- the epoch's running sums and the validation outputs are reduced across ranks, so every rank computes the
  same metrics and takes the same early-stopping decision (and rank 0's decision is broadcast besides);
- rank 0 alone chooses the run folder and writes logs, checkpoints and results.

Batch norm statistics stay per rank (PyTorch's default; SyncBatchNorm needs CUDA).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cnnlab.errors import ConfigError


@dataclass
class Distributed:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size

    @classmethod
    def from_environment(cls, device_name: str) -> Distributed | None:
        """Join the process group torchrun describes; None when this is a single-process run."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return None
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size)))
        use_cuda = device_name in ("auto", "cuda") and torch.cuda.is_available() or device_name.startswith("cuda")
        if use_cuda:
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        elif device_name in ("auto", "cpu"):
            device = torch.device("cpu")
        else:
            raise ConfigError(f"device: {device_name!r} is not supported for distributed training (cpu or cuda)")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
        return cls(rank, world_size, local_rank, local_world, device)

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def batch_weight(self, count: int) -> float:
        """count * world / global count: scales this rank's mean loss so DDP's average is the global mean."""
        total = torch.tensor([float(count)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(total)
        return count * self.world_size / float(total)

    def average_gradients(self, modules: nn.Module) -> None:
        """Average the gradients of modules DDP does not wrap (a task's extra trainable modules)."""
        for param in modules.parameters():
            if param.grad is not None:
                dist.all_reduce(param.grad)
                param.grad /= self.world_size

    def sum_metrics(self, sums: dict[str, float], seen: int) -> tuple[dict[str, float], int]:
        """The epoch's running sums and sample count summed over ranks."""
        keys = list(sums)  # every rank's task fills its sums in the same order
        values = torch.tensor([sums[k] for k in keys] + [float(seen)], dtype=torch.float64, device=self._comm_device)
        dist.all_reduce(values)
        totals = values.tolist()
        return dict(zip(keys, totals[:-1])), int(round(totals[-1]))

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, flag: bool) -> bool:
        """Rank 0's decision (e.g. to stop), taken by every rank."""
        return bool(self.broadcast(bool(flag)))

    def barrier(self) -> None:
        dist.barrier()

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    @property
    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def default_threads(local_world_size: int) -> int:
    """Cores shared evenly by the processes of one machine (N processes × all cores each would thrash)."""
    return max(1, (os.cpu_count() or 1) // max(local_world_size, 1))


ERROR_FOLDER = "CNNLAB_ERROR_DIR"  # set by `launch`: workers write their one-line error there, not to stderr


def launch(nproc: int, argv: list[str]) -> int:
    """Run `cnnlab <argv>` on `nproc` local processes through torchrun; returns its exit code.

    torchrun runs in this process, so a failed worker ends as the worker's own one-line error, said once: each
    worker's `cnnlab: error:` line goes to a file (every rank usually fails alike) and is printed here, without
    torchrun's traceback, its failure report or its log lines about stopping the other workers.
    """
    if nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {nproc}")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    args = get_args_parser().parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "cnnlab", *argv])
    with tempfile.TemporaryDirectory(prefix="cnnlab-ranks-") as folder, _environment(nproc, folder), _quiet_elastic():
        try:
            torchrun(args)
        except ChildFailedError as failure:
            messages = worker_errors(Path(folder))
            if not messages:  # a worker died without a cnnlab error (it printed its own traceback, or was killed)
                first = failure.get_first_failure()[1]
                return first.exitcode if isinstance(first.exitcode, int) and first.exitcode > 0 else 1
            for message in messages:
                print(f"cnnlab: error: {message}", file=sys.stderr)
            return 1
    return 0


def worker_errors(folder: Path) -> list[str]:
    """The distinct error lines the ranks wrote, in rank order."""
    lines = []
    for path in sorted(folder.glob("rank-*.txt"), key=lambda p: int(p.stem.split("-")[1])):
        line = path.read_text(encoding="utf-8").strip()
        if line and line not in lines:
            lines.append(line)
    return lines


def report_worker_error(message: str) -> bool:
    """In a worker `launch` started: keep `message` for the launcher to print once; False elsewhere."""
    folder, rank = os.environ.get(ERROR_FOLDER), os.environ.get("RANK")
    if not folder or rank is None or not Path(folder).is_dir():
        return False
    target = Path(folder) / f"rank-{int(rank)}.txt"
    staging = target.with_suffix(".tmp")
    staging.write_text(message, encoding="utf-8")
    os.replace(staging, target)
    return True


@contextmanager
def _environment(nproc: int, folder: str) -> Iterator[None]:
    """What the workers inherit: the error folder, and the cores shared evenly (torchrun would set 1 thread and
    print a banner about it)."""
    saved = {key: os.environ.get(key) for key in ("OMP_NUM_THREADS", ERROR_FOLDER)}
    os.environ.setdefault("OMP_NUM_THREADS", str(default_threads(nproc)))
    os.environ[ERROR_FOLDER] = folder
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _quiet_elastic() -> Iterator[None]:
    """torchrun's agent logs every worker it stops on a failure; the worker's own error is the news."""
    logger = logging.getLogger("torch.distributed.elastic")
    saved = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(saved)
