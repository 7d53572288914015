"""Feature maps of each convolutional stage: what the network computes from one image, stage by stage.

A stage is a run of consecutive top-level modules of `forward_features` that keep one spatial resolution and hold
at least one conv (conv → norm → ReLU, or a ResNet `layer2`); its output is the last module's, i.e. the activations
just before the next downsampling. Stages are found by tracing, so any model with the zoo interface works. A 3-D
model's stages are C×D×H×W; their grids show the middle depth slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.viz.images import colorize, enlarge, normalise, save_png, tile_grid
from cnnlab.viz.trace import TracedModule, contains_conv, evaluating, features_of, top_level, trace_features


@dataclass
class FeatureStage:
    """One stage: its name (first–last module), and its output for one image (C×H×W, or C×D×H×W)."""

    name: str
    modules: list[str]
    activation: torch.Tensor

    @property
    def label(self) -> str:
        return f"{self.name} ({'×'.join(map(str, self.activation.shape))})"


def conv_stages(model: nn.Module, x: torch.Tensor) -> list[list[TracedModule]]:
    """Groups of top-level modules, one per resolution, that contain a conv and still have a spatial map."""
    groups: list[list[TracedModule]] = []
    dims = x.ndim - 2
    for traced in top_level(trace_features(model, x)):
        if len(traced.spatial) != dims:
            continue
        if groups and groups[-1][-1].spatial == traced.spatial:
            groups[-1].append(traced)
        else:
            groups.append([traced])
    return [g for g in groups if any(contains_conv(t.module) for t in g) and np.prod(g[-1].spatial) > 1]


def _stage_name(group: list[TracedModule]) -> str:
    """`features.0–3` for modules features.0 … features.3; `layer2` for one module."""
    first, last = group[0].name, group[-1].name
    if first == last:
        return first
    parent = first.rpartition(".")[0]
    if parent and last.startswith(parent + "."):
        last = last[len(parent) + 1 :]
    return f"{first}–{last}"


@torch.no_grad()
def feature_maps(model: nn.Module, x: torch.Tensor) -> list[FeatureStage]:
    """Each conv stage's output for the first image of `x` (a preprocessed N×C×H×W or N×C×D×H×W batch)."""
    groups = conv_stages(model, x)
    outputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        # Cloned at once: a later in-place op (ReLU(inplace=True)) would otherwise change what was captured.
        return lambda module, inputs, output: outputs.__setitem__(name, output[0].detach().float().cpu().clone())

    handles = [g[-1].module.register_forward_hook(keep(g[-1].name)) for g in groups]
    try:
        with evaluating(model):
            features_of(model, x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return [FeatureStage(_stage_name(g), [t.name for t in g], outputs[g[-1].name]) for g in groups]


def stage_grid(stage: FeatureStage, channels: int = 16, columns: int = 8, min_side: int = 48) -> np.ndarray:
    """The first `channels` maps of a stage, each min-max scaled on its own (viridis), as one image; a 3-D
    stage shows each map's middle depth slice."""
    maps = stage.activation[:channels].numpy()
    if maps.ndim == 4:
        maps = maps[:, maps.shape[1] // 2]
    tiles = [enlarge(colorize(normalise(m)), min_side) for m in maps]
    return tile_grid(tiles, columns)


def save_feature_maps(
    stages: list[FeatureStage], out_dir: str | Path, prefix: str = "features", channels: int = 16
) -> list[Path]:
    """One PNG per stage, in order: `<prefix>_stage<index>.png` (the stage labels name them)."""
    return [
        save_png(stage_grid(stage, channels), Path(out_dir) / f"{prefix}_stage{index}.png")
        for index, stage in enumerate(stages, start=1)
    ]
