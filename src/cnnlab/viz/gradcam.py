"""Grad-CAM (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization"): where in the image the evidence for a class lies.

For a target conv layer with activations A_k (k = channel), the class score y_c is differentiated with respect to
A_k; the channel weights are the spatially averaged gradients alpha_k = mean_ij dy_c/dA_k(i, j), and the map is
ReLU(sum_k alpha_k A_k): only features with a positive influence on the class. The map has the layer's resolution
and is upsampled (bilinear) to the input. The last conv layer (its rectified output) is the default, as in the
paper: the deepest layer that still has a spatial layout. Works on any model with the zoo interface, 2-D (N×C×H×W)
or 3-D (N×C×D×H×W, Conv3d: the gradients are averaged over depth too and the map is upsampled trilinearly).
A model that pads inside `forward_features` (LeNet-5 pads 28×28 digits to 32×32) gets its map stretched over the
unpadded input, i.e. shifted by at most the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.viz.images import colorize, display_image, display_volume, enlarge, tile_grid
from cnnlab.viz.trace import evaluating, find_module, is_activation, is_conv, is_norm, trace_features


@dataclass
class GradCamResult:
    """Grad-CAM maps for a batch.

    Attributes:
        cam: N×h×w (N×d×h×w for volumes) raw maps at the target layer's resolution (ReLU applied, not normalised).
        heatmap: N×H×W (N×D×H×W) maps upsampled to the input and scaled to [0, 1] per image (all 0 when there is
            no evidence).
        class_index: N explained classes.
        probabilities: N×classes softmax of the model's output.
        layer: the target layer's name.
    """

    cam: torch.Tensor
    heatmap: torch.Tensor
    class_index: torch.Tensor
    probabilities: torch.Tensor
    layer: str

    @property
    def predicted(self) -> torch.Tensor:
        return self.probabilities.argmax(1)


def find_target_layer(model: nn.Module, x: torch.Tensor) -> str:
    """The output of the last conv layer of `forward_features` that still has more than one position.

    Where that conv is followed by its activation (through a norm layer, as conv → BN → ReLU), the activation is
    the target: the paper's A_k are the rectified feature maps, and a ResNet block's final ReLU (after the skip
    addition) is its output, even where the shortcut's 1×1 conv is the last conv to run. A 1×1 output (LeNet-5's
    C5) has no spatial layout left to explain, so the conv before it is taken.
    """
    traced = trace_features(model, x)
    dims = x.ndim - 2  # 2 for images, 3 for volumes
    convs = [i for i, t in enumerate(traced) if is_conv(t.module) and len(t.spatial) == dims and np.prod(t.spatial) > 1]
    if not convs:
        raise ConfigError(f"{type(model).__name__}: no {dims}-D conv layer with a spatial output to explain")
    conv = traced[convs[-1]]
    # Leaves only: a container finishing in between (a block's `downsample` Sequential, whose conv is the last to
    # run in a one-block-per-stage ResNet) is not a layer, and the block's ReLU after the addition is the target.
    for follower in (t for t in traced[convs[-1] + 1 :] if not any(True for _ in t.module.children())):
        if follower.output_shape != conv.output_shape:
            break
        if is_activation(follower.module):
            return follower.name
        if not is_norm(follower.module):
            break
    return conv.name


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    class_index: int | Sequence[int] | torch.Tensor | None = None,
    layer: str | None = None,
) -> GradCamResult:
    """Grad-CAM of `x` (a preprocessed N×C×H×W or N×C×D×H×W batch) for `class_index` (default: each image's prediction).

    The score differentiated is the model's output (logits; log-probabilities for a net ending in a softmax head,
    which the paper also allows). The model runs in eval mode (restored afterwards), so batch norm does not mix
    the images of the batch and each image's gradient involves only its own score.

    Raises:
        ConfigError: `layer` is not a module of the model, or the model has no spatial conv layer.
    """
    layer = layer or find_target_layer(model, x)
    target = find_module(model, layer)
    captured: list[torch.Tensor] = []

    def capture(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor | None:
        if not isinstance(output, torch.Tensor) or output.ndim != x.ndim:
            return None
        # The rest of the net gets a copy: an in-place op after the target (ReLU(inplace=True)) would otherwise
        # overwrite the captured activation, and the conv's output would silently become the ReLU's.
        captured.append(output)
        return output.clone()

    handle = target.register_forward_hook(capture)
    try:
        with torch.inference_mode(False), torch.enable_grad(), evaluating(model):
            inputs = x.detach().clone().requires_grad_(True)  # gradients flow even through frozen weights
            logits = model(inputs).float()
            if not captured:
                shape = "N×C×H×W" if x.ndim == 4 else "N×C×D×H×W"
                raise ConfigError(f"layer {layer!r} gave no {shape} feature map in the forward pass")
            classes = _class_tensor(class_index, logits)
            activation = captured[-1]
            score = logits.gather(1, classes[:, None]).sum()
            gradient = torch.autograd.grad(score, activation)[0]
    finally:
        handle.remove()
    positions = tuple(range(2, activation.ndim))
    alpha = gradient.mean(dim=positions, keepdim=True)  # eq. 1: global-average-pooled gradients
    cam = F.relu((alpha * activation).sum(1)).detach()  # eq. 2
    mode = "bilinear" if cam.ndim == 3 else "trilinear"
    heatmap = F.interpolate(cam[:, None], size=x.shape[2:], mode=mode, align_corners=False)[:, 0]
    peak = heatmap.flatten(1).amax(1).clamp(min=1e-12).view(-1, *[1] * (heatmap.ndim - 1))
    heatmap = (heatmap / peak).clamp(0, 1)
    probabilities = torch.softmax(logits.detach(), dim=1)
    return GradCamResult(cam, heatmap, classes, probabilities, layer)


def _class_tensor(class_index: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor) -> torch.Tensor:
    count, num_classes = logits.shape
    if class_index is None:
        return logits.detach().argmax(1)
    classes = torch.as_tensor(class_index, dtype=torch.long).reshape(-1).expand(count).to(logits.device)
    if bool(((classes < 0) | (classes >= num_classes)).any()):
        raise ConfigError(f"class index {class_index} out of range for a model with {num_classes} classes")
    return classes


def blend(base: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """An H×W×3 picture in [0, 1] with an H×W heat map in [0, 1] blended on top in the jet colour map."""
    return (1 - alpha) * base + alpha * colorize(np.asarray(heatmap), "jet")


def _numpy(values: torch.Tensor | np.ndarray) -> np.ndarray:
    return values.detach().cpu().float().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def overlay(image: torch.Tensor | np.ndarray, heatmap: torch.Tensor | np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The image (C×H×W) with the heat map (H×W in [0, 1]) blended on top in the jet colour map."""
    return blend(display_image(image), _numpy(heatmap), alpha)


def gradcam_panel(
    image: torch.Tensor | np.ndarray, heatmap: torch.Tensor | np.ndarray, min_side: int = 160
) -> np.ndarray:
    """Side by side: the image and the image with its heat map, enlarged so small inputs stay readable; a volume
    (C×D×H×W with a D×H×W map) gets `volume_gradcam_panel`'s slice view."""
    if _numpy(heatmap).ndim == 3:
        return volume_gradcam_panel(image, heatmap, min_side=max(64, min_side * 3 // 5))
    tiles = [enlarge(display_image(image), min_side), enlarge(overlay(image, heatmap), min_side)]
    return tile_grid(tiles, columns=2, pad=4)


def cam_peak(heatmap: torch.Tensor | np.ndarray) -> tuple[int, ...]:
    """The voxel (or pixel) where the map is highest; the centre when it is empty (no evidence anywhere)."""
    heat = _numpy(heatmap)
    if not heat.size or float(heat.max()) <= 0:
        return tuple(size // 2 for size in heat.shape)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(heat)), heat.shape))


def _pad_to(tile: np.ndarray, height: int, width: int, background: float = 1.0) -> np.ndarray:
    padded = np.full((height, width, 3), background, dtype=np.float32)
    padded[: tile.shape[0], : tile.shape[1]] = tile
    return padded


def volume_gradcam_panel(
    volume: torch.Tensor | np.ndarray,
    heatmap: torch.Tensor | np.ndarray,
    center: Sequence[int] | None = None,
    min_side: int = 96,
) -> np.ndarray:
    """The three orthogonal slices of a C×D×H×W volume through `center` (default: the map's peak, `cam_peak`),
    plain on the top row and with the D×H×W map on the bottom: depth slice (H×W, axial for a scan stored head to
    foot), row slice (D×W, coronal) and column slice (D×H, sagittal).

    Slices through the peak rather than the middle, so that the evidence is always in view; every slice is enlarged
    by the same factor, so a voxel has one size in all three and the D axis is not stretched.
    """
    base, heat = display_volume(volume), _numpy(heatmap)
    if heat.ndim != 3 or base.shape[:3] != heat.shape:
        raise ValueError(f"a D×H×W map for a C×D×H×W volume expected, got {heat.shape} for {tuple(base.shape[:3])}")
    depth, row, column = center if center is not None else cam_peak(heat)
    views = [(base[depth], heat[depth]), (base[:, row], heat[:, row]), (base[:, :, column], heat[:, :, column])]
    factor = max(1, -(-min_side // max(1, min(heat.shape))))
    plain = [np.repeat(np.repeat(b, factor, 0), factor, 1) for b, _ in views]
    overlaid = [np.repeat(np.repeat(blend(b, h), factor, 0), factor, 1) for b, h in views]
    height, width = max(t.shape[0] for t in plain), max(t.shape[1] for t in plain)
    tiles = [_pad_to(tile, height, width) for tile in plain + overlaid]
    return tile_grid(tiles, columns=3, pad=4)
