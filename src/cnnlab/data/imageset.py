"""ImageSet (one split: images + integer labels + class names) and DataSplits (train/val/test).

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


def _as_labels(labels: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
    if isinstance(labels, torch.Tensor):
        return labels.to(torch.int64).reshape(-1)
    return torch.as_tensor(np.asarray(labels), dtype=torch.int64).reshape(-1)


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
        labels: torch.Tensor | np.ndarray | Sequence[int],
        classes: Sequence[str],
        source: str = "",
        paths: Sequence[str] | np.ndarray | None = None,
    ) -> None:
        self.labels = _as_labels(labels)
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(
                f"{source}: images must be a uint8 (N, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}"
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

    @classmethod
    def from_files(
        cls,
        paths: Sequence[str],
        labels: torch.Tensor | np.ndarray | Sequence[int],
        classes: Sequence[str],
        policy: SizePolicy,
        channels: int,
        source: str = "",
    ) -> ImageSet:
        """A streaming set: files decoded on access, to `channels` and the policy's size."""
        self = cls.__new__(cls)
        self.labels = _as_labels(labels)
        if len(paths) != len(self.labels):
            raise DataError(f"{source}: {len(paths)} files but {len(self.labels)} labels")
        self.images = None
        self.classes = list(classes)
        self.source = source
        self._paths = np.asarray(paths, dtype=str)
        self._policy = policy
        self._channels = channels
        return self

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
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every image."""
        if self.images is not None:
            return tuple(self.images.shape[-2:])  # type: ignore[return-value]
        assert self._policy is not None
        return self._policy.size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        label = int(self.labels[index])
        if self.images is not None:
            return self.images[index], label
        assert self._paths is not None and self._policy is not None
        return decode_file(str(self._paths[index]), self._policy, self._channels), label

    def __repr__(self) -> str:
        kind = "in memory" if self.in_memory else "streaming"
        height, width = self.image_size
        return f"ImageSet({len(self)} images {self.channels}x{height}x{width}, {self.num_classes} classes, {kind})"

    def subset(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> ImageSet:
        """The same kind of set holding only `indices` (an in-memory subset copies its images)."""
        index = _as_labels(indices).cpu()
        if self.images is not None:
            paths = None if self._paths is None else self._paths[index.numpy()]
            return ImageSet(self.images[index], self.labels[index], self.classes, self.source, paths)
        assert self._paths is not None and self._policy is not None
        return ImageSet.from_files(
            self._paths[index.numpy()], self.labels[index], self.classes, self._policy, self._channels, self.source
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
        return ImageSet(memory.images.to(device), memory.labels.to(device), self.classes, self.source, memory._paths)

    def materialize(self) -> ImageSet:
        """An in-memory copy (e.g. to keep a small streaming test set decoded between epochs)."""
        if self.images is not None:
            return self
        return ImageSet(self.load(), self.labels, self.classes, self.source, self._paths)

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_classes).tolist()


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
    def image_size(self) -> tuple[int, int]:
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
        height, width = self.image_size
        sizes = ", ".join(f"{name} {len(split)}" for name, split in self.splits().items())
        kind = "in memory" if self.train.in_memory else "streaming"
        return (
            f"{self.format} data from {self.source}: {sizes}; {self.num_classes} classes; "
            f"images {self.in_channels}x{height}x{width} ({kind})"
        )
