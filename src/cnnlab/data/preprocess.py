"""The one preprocessing path: files are decoded by the training decoder, batches normalised by `Preprocess`.

Training, `evaluate`, `predict`, export and the server all go through these two, so an image gives the same
tensor everywhere (a second decoder once made a 16-bit PNG differ from training by up to 254 grey levels).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.data.decode import SizePolicy, decode_files


class Preprocess(nn.Module):
    """Raw batch -> normalised float32, one fused multiply-add per element.

    uint8 batches are divided by 255 (mean/std are then in [0, 1] units, as `Normalizer` computes them for
    uint8 data); any other dtype (16-bit, float) is normalised in its own units, so no range is lost.
    Works on (N, C, H, W) and volumes (N, C, D, H, W).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], channels_last: bool = False) -> None:
        super().__init__()
        std_t = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / std_t)
        self.register_buffer("shift", -mean_t / std_t)
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale / 255.0 if x.dtype == torch.uint8 else self.scale
        shift = self.shift
        if x.ndim == 5:  # volumes: one more spatial axis
            scale, shift = scale.unsqueeze(-1), shift.unsqueeze(-1)
        x = torch.addcmul(shift, x.float(), scale)
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def to_meta(self) -> dict[str, Any]:
        """The mean/std this applies, as run.json keeps them (plain floats, per channel)."""
        std = (1.0 / self.scale).flatten()
        return {"normalization": {"mean": (-self.shift.flatten() * std).tolist(), "std": std.tolist()}}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], channels_last: bool = False) -> Preprocess:
        """The inverse of `to_meta`: what evaluate, predict, export and serve rebuild from run.json."""
        norm = meta["normalization"]
        return cls(norm["mean"], norm["std"], channels_last)


def read_images(paths: Sequence[str | Path], channels: int, size: tuple[int, int]) -> torch.Tensor:
    """Image files -> uint8 (N, channels, H, W) exactly as a training folder of them is decoded and resized."""
    names = [str(p) for p in paths]
    policy = SizePolicy(size=tuple(size), resize=True, reference_file=names[0] if names else "")
    return decode_files(names, policy, channels)
