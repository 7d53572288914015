"""The learned first-layer filters as an image grid.

First-layer filters look at pixels directly, so they are the one layer whose weights read as pictures
(edge, colour-blob and Gabor-like detectors in a trained net; noise in an untrained one, Krizhevsky et al. 2012,
Fig. 3). Each filter is min-max scaled on its own, as its overall scale and sign carry no visual meaning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.viz.images import display_image, enlarge, normalise, save_png, tile_grid
from cnnlab.viz.trace import is_conv, trace_features


def first_conv_kernel(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The whole kernel (out×in×kh×kw, or out×in×kd×kh×kw for Conv3d) of the first conv that `forward_features`
    runs on a zero input of this shape (C×H×W or C×D×H×W)."""
    device = next(model.parameters()).device
    traced = trace_features(model, torch.zeros(1, *input_shape, device=device))
    for item in traced:
        if not is_conv(item.module):
            continue
        dense = getattr(item.module, "dense_weight", None)  # partial connections (LeNet-5's C3) store a subset
        weight = dense() if callable(dense) else getattr(item.module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.ndim in (4, 5):
            return weight.detach().float().cpu()
    raise ConfigError(f"{type(model).__name__}: no 2-D conv layer found to show filters of (nor a 3-D one)")


def first_conv_weight(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """The first conv's out×in×kh×kw kernel as pictures: a Conv3d kernel's middle depth slice (a 3×3×3 kernel
    is read slice by slice; the middle one is the one centred on the voxel)."""
    weight = first_conv_kernel(model, input_shape)
    return weight[:, :, weight.shape[2] // 2] if weight.ndim == 5 else weight


def filter_tiles(weight: torch.Tensor, min_side: int = 64) -> tuple[list[np.ndarray], int]:
    """Tiles and a column count: one RGB tile per filter for 3 input channels, else one grey tile per
    (filter, input channel), a row per filter when there are several input channels."""
    weight = weight.detach().float().cpu()
    out_channels, in_channels = weight.shape[:2]
    scaled = [normalise(w.numpy()) for w in weight]  # per filter, across its input channels
    if in_channels in (1, 3):
        tiles = [enlarge(display_image(w), min_side) for w in scaled]
        return tiles, out_channels if out_channels <= 16 else min(16, int(np.ceil(np.sqrt(out_channels * 2))))
    tiles = [enlarge(display_image(channel[None]), min_side) for w in scaled for channel in w]
    return tiles, in_channels


def filter_grid(weight: torch.Tensor, min_side: int = 64) -> np.ndarray:
    """The filters of an out×in×kh×kw kernel as one H×W×3 image in [0, 1].

    Tiles are separated by dark blue, a colour no grey or natural-colour filter is likely to be mistaken for.
    """
    tiles, columns = filter_tiles(weight, min_side)
    return tile_grid(tiles, columns, pad=3, background=(0.12, 0.2, 0.4))


def save_filters(model: nn.Module, input_shape: tuple[int, ...], path: str | Path) -> Path:
    return save_png(filter_grid(first_conv_weight(model, input_shape)), path)
