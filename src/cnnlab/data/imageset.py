"""ImageSet (one split: images + targets + class names) and DataSplits (train/val/test).

Images are any integer or float dtype (uint8 photos, 16-bit scans kept at full range, float volumes), 2-D
(N, C, H, W) or 3-D (N, C, D, H, W). Targets are whatever the task needs: int64 class labels (N,), float
multi-hot vectors or regression values (N, ...), or a list of per-sample objects (boxes with labels, token
ids of varying length). Optional `groups` (an identity or patient per sample) make splits group-disjoint.

Two storage kinds behind one interface, so the trainer need not care which it got:
in memory (`images` is one uint8 (N, C, H, W) tensor, batches are index operations) and streaming
(`paths` of files decoded on demand, for folders too large for RAM). Both index as
`imageset[i] -> (uint8 (C, H, W), int label)`, so either can feed a torch DataLoader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from cnnlab.data.decode import SizePolicy, decode_file, decode_files
from cnnlab.errors import DataError

IMAGE_DTYPES = (
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.uint16,
    torch.int32,
    torch.float16,
    torch.float32,
    torch.float64,
)
Targets = torch.Tensor | list


def _as_labels(labels: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
    """Indices (or integer labels) as int64 (N,)."""
    if isinstance(labels, torch.Tensor):
        return labels.to(torch.int64).reshape(-1)
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)


def _as_targets(targets: torch.Tensor | np.ndarray | Sequence) -> Targets:
    """Integer labels -> int64 (N,); float/bool arrays keep their dtype and shape; ragged items stay a list."""
    if isinstance(targets, list) and targets and not isinstance(targets[0], (int, np.integer)):
        return targets
    tensor = targets if isinstance(targets, torch.Tensor) else torch.as_tensor(np.asarray(targets))
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        return tensor
    return tensor.to(torch.int64).reshape(-1) if tensor.ndim <= 1 else tensor.to(torch.int64)


def _take(targets: Targets, index: torch.Tensor) -> Targets:
    if isinstance(targets, list):
        return [targets[i] for i in index.tolist()]
    return targets.index_select(0, index.to(targets.device))


class ImageSet(Dataset):
    """One split of a data set.

    Attributes:
        images: uint8 (N, C, H, W) tensor for in-memory sets, None for streaming sets.
        labels: int64 (N,) class indices into `classes`.
        classes: class names, shared by every split of a data set.
        source: the file or folder this split came from (for messages).
        paths: the image file of each item (streaming sets, and in-memory sets read from files,
            so that e.g. misclassified images can be named); None for array formats.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor | np.ndarray | Sequence,
        classes: Sequence[str],
        source: str = "",
        paths: Sequence[str] | np.ndarray | None = None,
        groups: Sequence | np.ndarray | None = None,
    ) -> None:
        self.labels = _as_targets(labels)
        if images.dtype not in IMAGE_DTYPES or images.ndim not in (4, 5):
            raise DataError(
                f"{source}: images must be an (N, C, H, W) or (N, C, D, H, W) tensor of an integer or float dtype, "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        if len(images) != len(self.labels):
            raise DataError(f"{source}: {len(images)} images but {len(self.labels)} labels")
        self.images: torch.Tensor | None = images
        self.classes = list(classes)
        self.source = source
        # A numpy string array, not a list: forked DataLoader workers touching a list of str
        # objects copy its pages (reference counts), a known memory blow-up with big folders.
        self._paths: np.ndarray | None = None if paths is None else np.asarray(paths, dtype=str)
        if self._paths is not None and len(self._paths) != len(self.labels):
            raise DataError(f"{source}: {len(self._paths)} paths but {len(self.labels)} labels")
        self._policy: SizePolicy | None = None
        self._channels = images.shape[1]
        self.groups = self._check_groups(groups, source)

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str],
        labels: torch.Tensor | np.ndarray | Sequence[int],
        classes: Sequence[str],
        policy: SizePolicy,
        channels: int,
        source: str = "",
        groups: Sequence | np.ndarray | None = None,
    ) -> ImageSet:
        """A streaming set: files decoded on access, to `channels` and the policy's size."""
        self = cls.__new__(cls)
        self.labels = _as_targets(labels)
        if len(paths) != len(self.labels):
            raise DataError(f"{source}: {len(paths)} files but {len(self.labels)} labels")
        self.images = None
        self.classes = list(classes)
        self.source = source
        self._paths = np.asarray(paths, dtype=str)
        self._policy = policy
        self._channels = channels
        self.groups = self._check_groups(groups, source)
        return self

    def _check_groups(self, groups: Sequence | np.ndarray | None, source: str) -> np.ndarray | None:
        if groups is None:
            return None
        groups = np.asarray(groups)
        if len(groups) != len(self.labels):
            raise DataError(f"{source}: {len(groups)} group ids but {len(self.labels)} samples")
        return groups

    @property
    def has_class_labels(self) -> bool:
        """True when targets are one integer class per sample (what stratified splits and bincounts need)."""
        return isinstance(self.labels, torch.Tensor) and self.labels.dtype == torch.int64 and self.labels.ndim == 1

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    @property
    def paths(self) -> list[str] | None:
        """The image file of each item, when the set was read from image files."""
        return None if self._paths is None else self._paths.tolist()

    @property
    def channels(self) -> int:
        return self._channels

    @property
    def image_size(self) -> tuple[int, ...]:
        """(H, W) of every image, (D, H, W) of every volume."""
        if self.images is not None:
            return tuple(self.images.shape[2:])  # type: ignore[return-value]
        assert self._policy is not None
        return self._policy.size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, object]:
        label = int(self.labels[index]) if self.has_class_labels else self.labels[index]
        if self.images is not None:
            return self.images[index], label
        assert self._paths is not None and self._policy is not None
        return decode_file(str(self._paths[index]), self._policy, self._channels), label

    def __repr__(self) -> str:
        kind = "in memory" if self.in_memory else "streaming"
        shape = "x".join(str(v) for v in (self.channels, *self.image_size))
        return f"ImageSet({len(self)} images {shape}, {self.num_classes} classes, {kind})"

    def subset(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> ImageSet:
        """The same kind of set holding only `indices` (an in-memory subset copies its images)."""
        index = _as_labels(indices).cpu()
        targets = _take(self.labels, index)
        groups = None if self.groups is None else self.groups[index.numpy()]
        if self.images is not None:
            paths = None if self._paths is None else self._paths[index.numpy()]
            return ImageSet(self.images[index], targets, self.classes, self.source, paths, groups)
        assert self._paths is not None and self._policy is not None
        return ImageSet.from_files(
            self._paths[index.numpy()], targets, self.classes, self._policy, self._channels, self.source, groups
        )

    def load(self, indices: torch.Tensor | np.ndarray | Sequence[int] | None = None) -> torch.Tensor:
        """uint8 images of `indices` (all when None) as one tensor; streaming sets decode on a thread pool."""
        if self.images is not None:
            return self.images if indices is None else self.images[_as_labels(indices)]
        assert self._paths is not None and self._policy is not None
        paths = self._paths if indices is None else self._paths[_as_labels(indices).numpy()]
        return decode_files(paths.tolist(), self._policy, self._channels)

    def to(self, device: torch.device | str) -> ImageSet:
        """The set with images and labels on `device` (decoded first if streaming). A small data
        set kept on the GPU makes batching and augmentation GPU operations with no transfers."""
        memory = self.materialize()
        assert memory.images is not None
        labels = memory.labels if isinstance(memory.labels, list) else memory.labels.to(device)
        return ImageSet(memory.images.to(device), labels, self.classes, self.source, memory._paths, self.groups)

    def materialize(self) -> ImageSet:
        """An in-memory copy (e.g. to keep a small streaming test set decoded between epochs)."""
        if self.images is not None:
            return self
        return ImageSet(self.load(), self.labels, self.classes, self.source, self._paths, self.groups)

    def class_counts(self) -> list[int]:
        """Samples per class: bincount of class labels, column sums of multi-hot targets, else empty."""
        if self.has_class_labels:
            return torch.bincount(self.labels, minlength=self.num_classes).tolist()
        if isinstance(self.labels, torch.Tensor) and self.labels.ndim == 2 and self.labels.shape[1] == self.num_classes:
            return self.labels.sum(0).round().long().tolist()
        return []


@dataclass
class DataSplits:
    """What `load_dataset` returns: the splits plus what a model needs to know about the data."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None
    classes: list[str]
    format: str
    source: str

    @property
    def in_channels(self) -> int:
        return self.train.channels

    @property
    def image_size(self) -> tuple[int, ...]:
        return self.train.image_size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def splits(self) -> dict[str, ImageSet]:
        """The splits that exist, by name."""
        named = {"train": self.train, "val": self.val, "test": self.test}
        return {name: split for name, split in named.items() if split is not None}

    def class_counts(self) -> dict[str, list[int]]:
        """Images per class for each split that exists."""
        return {name: split.class_counts() for name, split in self.splits().items()}

    def info(self) -> dict[str, object]:
        """What a run should record about its data (plain types, YAML/JSON-ready)."""
        return {
            "format": self.format,
            "source": self.source,
            "classes": list(self.classes),
            "in_channels": self.in_channels,
            "image_size": list(self.image_size),
            "sizes": {name: len(split) for name, split in self.splits().items()},
            "class_counts": self.class_counts(),
        }

    def summary(self) -> str:
        """One line for logs: format, source, sizes and shape."""
        shape = "x".join(str(v) for v in (self.in_channels, *self.image_size))
        sizes = ", ".join(f"{name} {len(split)}" for name, split in self.splits().items())
        kind = "in memory" if self.train.in_memory else "streaming"
        return f"{self.format} data from {self.source}: {sizes}; {self.num_classes} classes; images {shape} ({kind})"
