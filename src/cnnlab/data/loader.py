"""`make_batches`: (uint8 images, labels) batches from an ImageSet, shuffled and augmented.

In-memory sets are batched by indexing the one uint8 tensor with a permutation (no per-image
Python work), and augmented by the vectorised batch Augmenter. Streaming sets go through a torch
DataLoader whose workers decode files and apply the same AugmentSpec as per-image torchvision v2
transforms; mixup/cutmix (whole-batch operations) then run in the main process.

Batches are the set's dtype (uint8 (B, C, H, W) for images; float in [0, 1] only if a custom `augment`
callable returns float); labels are int64 (B,), or float (B, num_classes) soft labels when mixup/cutmix is on;
other targets come as the set holds them (float tensors indexed, per-sample lists as lists).
Treat yielded tensors as read-only: unshuffled in-memory batches are views of the data set.

Distributed training (`shard=(rank, world)`): every rank draws the same permutation from the same seeded
generator, builds the same global batch, augments it with the same draws, and keeps its own contiguous part.
The union of the ranks' parts is exactly the one-process batch, so N processes with the same global batch
size follow the one-process run (and a resume may change the process count). Augmentation of the global
batch is repeated on every rank: cheap for the vectorised augmenter next to a training step.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

import torch
from torch.utils.data import DataLoader, Dataset

from cnnlab.data.augment import Augmenter
from cnnlab.data.imageset import ImageSet, _take

Batch = tuple[torch.Tensor, torch.Tensor]
AugmentFn = Callable[..., Batch]
Shard = tuple[int, int]  # (rank, world size)


def shard_bounds(count: int, shard: Shard) -> tuple[int, int]:
    """[start, stop) of rank's contiguous part of `count` items (parts differ in size by at most one)."""
    rank, world = shard
    return count * rank // world, count * (rank + 1) // world


def _shard_of(x: torch.Tensor, y, shard: Shard | None) -> Batch:
    if shard is None:
        return x, y
    start, stop = shard_bounds(len(x), shard)
    return x[start:stop], y[start:stop]


class Batches:
    """A re-iterable sequence of batches with a length (so progress bars know the epoch size).

    Each `iter()` is one epoch: a fresh permutation and fresh augmentation draws from `generator`.
    """

    def __init__(
        self,
        imageset: ImageSet,
        batch_size: int,
        shuffle: bool,
        generator: torch.Generator | None,
        drop_last: bool,
        num_workers: int,
        augment: AugmentFn | None,
        pin_memory: bool,
        shard: Shard | None = None,
        batch_sampler: BatchSampler | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.imageset = imageset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.num_workers = num_workers
        self.augment = augment
        self.pin_memory = pin_memory
        self.shard = shard if shard is not None and shard[1] > 1 else None
        self.batch_sampler = batch_sampler

    def _stop(self) -> int:
        """Where the last global batch ends: a final batch too small to give every rank a sample is dropped."""
        count = len(self.imageset)
        remainder = count % self.batch_size
        if self.drop_last or (self.shard is not None and 0 < remainder < self.shard[1]):
            return count - remainder
        return count

    def __len__(self) -> int:
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        return -(-self._stop() // self.batch_size)

    def _global_indices(self) -> Iterator[torch.Tensor | None]:
        """Each global batch's indices (None: the next slice in data order, a view without a copy)."""
        if self.batch_sampler is not None:
            yield from self.batch_sampler.batches(self.generator)
            return
        order = None
        if self.shuffle:
            device = self.generator.device if self.generator is not None else None
            order = torch.randperm(len(self.imageset), generator=self.generator, device=device)
        for start in range(0, self._stop(), self.batch_size):
            yield None if order is None else order[start : start + self.batch_size]

    def __iter__(self) -> Iterator[Batch]:
        if self.imageset.in_memory:
            batches = self._memory_batches()
            return _prefetched(batches, self.num_workers) if self.num_workers > 0 else batches
        return self._stream_batches()

    def _augment(
        self, x: torch.Tensor, y: torch.Tensor, step: AugmentFn | None, generator: torch.Generator | None
    ) -> Batch:
        if step is None:
            return x, y
        if isinstance(step, Augmenter):
            return step(x, y, generator, num_classes=self.imageset.num_classes)
        return step(x, y, generator)

    def _memory_batches(self) -> Iterator[Batch]:
        images, labels = self.imageset.images, self.imageset.labels
        assert images is not None
        start = 0
        for index in self._global_indices():
            if index is None:
                x, y = images[start : start + self.batch_size], labels[start : start + self.batch_size]
                start += self.batch_size
            else:
                index = index.to(images.device)
                x, y = images.index_select(0, index), _take(labels, index)
            if self.pin_memory and x.device.type == "cpu" and torch.cuda.is_available():
                x = x.pin_memory()
                y = y.pin_memory() if isinstance(y, torch.Tensor) else y
            yield _shard_of(*self._augment(x, y, self.augment, self.generator), self.shard)

    def _stream_batches(self) -> Iterator[Batch]:
        per_sample, batch_step = None, self.augment
        if isinstance(self.augment, Augmenter):
            per_sample = self.augment.spec.per_sample_transform(self.imageset.image_size)
            mix = functools.partial(self.augment.mix, num_classes=self.imageset.num_classes)
            batch_step = mix if self.augment.spec.has_mix else None
        # Three seeds drawn up front: the DataLoader draws from its generator at times that depend
        # on the worker count, so it and the batch step get private generators of their own.
        device = self.generator.device if self.generator is not None else None
        seeds = torch.randint(0, 2**62, (3,), generator=self.generator, device=device).tolist()
        if self.batch_sampler is not None:
            sampled = _SampledBatches(self.batch_sampler, torch.Generator().manual_seed(seeds[1]), self.shard)
        else:
            sampled = _GlobalBatchSampler(
                len(self.imageset), self.batch_size, self._stop(), self.shuffle, seeds[1], self.shard
            )
        loader = DataLoader(
            _SampleTransform(self.imageset, per_sample, seeds[0]),
            batch_sampler=sampled,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
            collate_fn=_collate,
        )
        batch_generator = torch.Generator().manual_seed(seeds[2])
        for x, y in loader:
            yield self._augment(x, y, batch_step, batch_generator)


class _SampleTransform(Dataset):
    """Decode + per-image transform, seeded per (epoch seed, index): results do not depend on
    how many workers there are or which worker got the sample."""

    def __init__(self, imageset: ImageSet, transform: Callable | None, seed: int) -> None:
        self.imageset, self.transform, self.seed = imageset, transform, seed

    def __len__(self) -> int:
        return len(self.imageset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.imageset[index]
        if self.transform is None:
            return image, label
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed((self.seed + index * 1_000_003) % 2**63)
            return self.transform(image), label


class _GlobalBatchSampler:
    """The global batches of one seeded permutation (or of the data order); with a shard, this rank's part."""

    def __init__(self, count: int, batch_size: int, stop: int, shuffle: bool, seed: int, shard: Shard | None) -> None:
        self.count, self.batch_size, self.stop, self.shuffle = count, batch_size, stop, shuffle
        self.seed, self.shard = seed, shard

    def __len__(self) -> int:
        return -(-self.stop // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        if self.shuffle:
            order = torch.randperm(self.count, generator=torch.Generator().manual_seed(self.seed))
        else:
            order = torch.arange(self.count)
        for start in range(0, self.stop, self.batch_size):
            index = order[start : min(start + self.batch_size, self.stop)]
            if self.shard is not None:
                lo, hi = shard_bounds(len(index), self.shard)
                index = index[lo:hi]
            yield index.tolist()


class BatchSampler(Protocol):
    """Chooses the samples of each global batch (e.g. P identities x K images each for a triplet loss)."""

    def __len__(self) -> int: ...

    def batches(self, generator: torch.Generator | None) -> Iterator[torch.Tensor]: ...


class _SampledBatches:
    """A BatchSampler as a DataLoader batch sampler: a fresh draw per epoch, this rank's part of each batch."""

    def __init__(self, sampler: BatchSampler, generator: torch.Generator, shard: Shard | None) -> None:
        self.sampler, self.generator, self.shard = sampler, generator, shard

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[int]]:
        for index in self.sampler.batches(self.generator):
            if self.shard is not None:
                lo, hi = shard_bounds(len(index), self.shard)
                index = index[lo:hi]
            yield index.tolist()


def _collate(samples: list[tuple[torch.Tensor, object]]) -> Batch:
    images, labels = zip(*samples)
    if all(isinstance(label, int) for label in labels):
        return torch.stack(images), torch.tensor(labels, dtype=torch.int64)
    if all(isinstance(label, torch.Tensor) for label in labels) and len({label.shape for label in labels}) == 1:
        return torch.stack(images), torch.stack(labels)
    return torch.stack(images), list(labels)


def _prefetched(batches: Iterator[Batch], depth: int) -> Iterator[Batch]:
    """Run `batches` on one background thread, `depth` batches ahead (tensor ops release the GIL,
    so indexing and augmentation overlap the training step). Errors re-raise in the caller."""
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
            put(done)
        except BaseException as error:  # handed to the consumer
            put(error)

    thread = threading.Thread(target=work, name="cnnlab-batches", daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()


def make_batches(
    imageset: ImageSet,
    batch_size: int = 256,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
    augment: AugmentFn | None = None,
    pin_memory: bool = False,
    shard: Shard | None = None,
    batch_sampler: BatchSampler | None = None,
) -> Batches:
    """Batches of `imageset` as (uint8 (B, C, H, W), labels); iterate once per epoch.

    In-memory sets moved to a GPU (`ImageSet.to("cuda")`) batch and augment there; batches then
    come out on that device.

    Args:
        shuffle: a new permutation per epoch, drawn from `generator` (a torch.Generator; the same
            seed replays the same epochs, augmentation included).
        augment: an Augmenter (or any `fn(x, y, generator) -> (x, y)`); pass it for TRAIN only.
            With mixup/cutmix the labels become float (B, num_classes).
        num_workers: streaming sets: DataLoader worker processes. In-memory sets: batches are
            prepared that many ahead on one background thread (0 = inline, fully deterministic
            even if `generator` is shared; with a thread, do not use `generator` elsewhere meanwhile).
        pin_memory: page-lock batches for faster asynchronous copies to a GPU.
        shard: (rank, world size) in distributed training: this rank's part of each global batch.
        batch_sampler: chooses each global batch's samples instead of a permutation (see `samplers`).
    """
    return Batches(
        imageset, batch_size, shuffle, generator, drop_last, num_workers, augment, pin_memory, shard, batch_sampler
    )
