"""`make_batches`: (uint8 images, labels) batches from an ImageSet, shuffled and augmented.

In-memory sets are batched by indexing the one uint8 tensor with a permutation (no per-image
Python work), and augmented by the vectorised batch Augmenter. Streaming sets go through a torch
DataLoader whose workers decode files and apply the same AugmentSpec as per-image torchvision v2
transforms; mixup/cutmix (whole-batch operations) then run in the main process.

Batches are uint8 (B, C, H, W) (float in [0, 1] only if a custom `augment` callable returns
float); labels are int64 (B,), or float (B, num_classes) soft labels when mixup/cutmix is on.
Treat yielded tensors as read-only: unshuffled in-memory batches are views of the data set.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from cnnlab.data.augment import Augmenter
from cnnlab.data.imageset import ImageSet

Batch = tuple[torch.Tensor, torch.Tensor]
AugmentFn = Callable[..., Batch]


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

    def __len__(self) -> int:
        count = len(self.imageset)
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)

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
        count = len(labels)
        order = None
        if self.shuffle:
            device = self.generator.device if self.generator is not None else None
            order = torch.randperm(count, generator=self.generator, device=device).to(images.device)
        stop = count - count % self.batch_size if self.drop_last else count
        for start in range(0, stop, self.batch_size):
            if order is None:
                x, y = images[start : start + self.batch_size], labels[start : start + self.batch_size]
            else:
                index = order[start : start + self.batch_size]
                x, y = images.index_select(0, index), labels.index_select(0, index.to(labels.device))
            if self.pin_memory and x.device.type == "cpu" and torch.cuda.is_available():
                x, y = x.pin_memory(), y.pin_memory()
            yield self._augment(x, y, self.augment, self.generator)

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
        loader = DataLoader(
            _SampleTransform(self.imageset, per_sample, seeds[0]),
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            generator=torch.Generator().manual_seed(seeds[1]),
            drop_last=self.drop_last,
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


def _collate(samples: list[tuple[torch.Tensor, int]]) -> Batch:
    images, labels = zip(*samples)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


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
    """
    return Batches(imageset, batch_size, shuffle, generator, drop_last, num_workers, augment, pin_memory)
