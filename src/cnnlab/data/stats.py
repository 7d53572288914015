"""Per-channel normalisation statistics from the training split, saved with a run and reused at inference.

Statistics are exact: per-channel histograms of the uint8 values (256 bins) give the mean and
standard deviation without float round-off, in one integer pass over the data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.errors import DataError

_CHUNK = 4096
_VALUES_PER_CHUNK = 2**24  # float64 working copy of at most 128 MiB


def channel_histograms(images: torch.Tensor) -> torch.Tensor:
    """(C, 256) int64 counts of each uint8 value per channel of a (N, C, H, W) tensor."""
    channels = images.shape[1]
    counts = torch.zeros(channels, 256, dtype=torch.int64)
    for start in range(0, len(images), _CHUNK):
        chunk = images[start : start + _CHUNK].cpu()
        for channel in range(channels):
            counts[channel] += torch.bincount(chunk[:, channel].reshape(-1), minlength=256)
    return counts


class Normalizer:
    """`(x / 255 - mean) / std` per channel, with mean and std in [0, 1] units.

    Call on a uint8 batch (values 0..255) or a float batch already in [0, 1]; returns float32 on
    the input's device. Works on (B, C, H, W) and (C, H, W); volumes (B, C, D, H, W) batches too.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std) or not mean:
            raise DataError(f"normalizer needs one mean and one std per channel, got mean={mean} std={std}")
        self.mean = [float(m) for m in mean]
        # A constant channel has std 0; dividing by 1 instead keeps it finite (it carries no signal).
        self.std = [float(s) if s > 0 else 1.0 for s in std]
        self._cache: dict[tuple[torch.device, bool], tuple[torch.Tensor, torch.Tensor]] = {}

    @classmethod
    def from_imageset(cls, imageset: ImageSet, max_samples: int | None = None, seed: int = 0) -> Normalizer:
        """Statistics of `imageset` (pass the TRAIN split). Streaming sets default to a seeded
        sample of 10,000 images (decoding a whole big folder just for statistics costs an epoch)."""
        if max_samples is None and not imageset.in_memory:
            max_samples = 10_000
        indices = None
        if max_samples is not None and len(imageset) > max_samples:
            indices = torch.randperm(len(imageset), generator=torch.Generator().manual_seed(seed))[:max_samples]
        images = imageset.load(indices)
        if len(images) == 0:
            raise DataError(f"{imageset.source}: no images to compute normalisation statistics from")
        if images.dtype != torch.uint8:
            return cls.from_values(images)
        return cls.from_histograms(channel_histograms(images))

    @classmethod
    def from_values(cls, images: torch.Tensor) -> Normalizer:
        """Statistics of 16-bit or float data in its own units (no truncation to 8 bits), in float64 chunks."""
        channels = images.shape[1]
        total = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        count = 0
        step = max(1, _VALUES_PER_CHUNK // max(1, images[0].numel()))  # volumes: a few at a time, not 4096
        for start in range(0, len(images), step):
            chunk = images[start : start + step].cpu().double().transpose(0, 1).reshape(channels, -1)
            total += chunk.sum(1)
            squares += chunk.pow(2).sum(1)
            count += chunk.shape[1]
        mean = total / count
        return cls(mean.tolist(), (squares / count - mean**2).clamp(min=0).sqrt().tolist())

    @classmethod
    def from_histograms(cls, counts: torch.Tensor) -> Normalizer:
        values = torch.arange(256, dtype=torch.float64) / 255.0
        counts = counts.double()
        total = counts.sum(dim=1)
        mean = (counts * values).sum(dim=1) / total
        var = (counts * values**2).sum(dim=1) / total - mean**2
        return cls(mean.tolist(), var.clamp(min=0).sqrt().tolist())

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[float]]) -> Normalizer:
        try:
            return cls(data["mean"], data["std"])
        except (KeyError, TypeError) as error:
            raise DataError(f"normalizer statistics need 'mean' and 'std' lists, got {dict(data)!r}") from error

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @property
    def channels(self) -> int:
        return len(self.mean)

    def __repr__(self) -> str:
        return f"Normalizer(mean={[round(m, 4) for m in self.mean]}, std={[round(s, 4) for s in self.std]})"

    def _affine(self, device: torch.device, from_uint8: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) so that normalised = x * scale + shift, cached per device."""
        key = (device, from_uint8)
        if key not in self._cache:
            mean = torch.tensor(self.mean, dtype=torch.float64).view(-1, 1, 1)
            std = torch.tensor(self.std, dtype=torch.float64).view(-1, 1, 1)
            scale = 1.0 / (std * 255.0) if from_uint8 else 1.0 / std
            self._cache[key] = (scale.float().to(device), (-mean / std).float().to(device))
        return self._cache[key]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        axis = 1 if x.ndim == 5 else -3  # (B, C, D, H, W) volumes, else (..., C, H, W)
        if x.shape[axis] != self.channels:
            raise DataError(
                f"normalizer has {self.channels} channels but the batch has {x.shape[axis]} (shape {tuple(x.shape)})"
            )
        scale, shift = self._affine(x.device, x.dtype == torch.uint8)
        if x.ndim == 5:
            scale, shift = scale.unsqueeze(-1), shift.unsqueeze(-1)
        return torch.addcmul(shift, x.to(torch.float32), scale)

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to float in [0, 1] (for showing images)."""
        scale, shift = self._affine(x.device, False)
        return ((x - shift) / scale).clamp(0, 1)
