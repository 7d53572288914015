"""Batch image operations with a different parameter per sample, as whole-tensor ops (no Python loop per image).

torchvision's v2 transforms draw one parameter set per call, so on a batched tensor every image
gets the same rotation. These functions take per-sample parameter tensors instead; the random
draws live in `augment.py`. All work on any device; `x` is (B, C, H, W).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _per_sample(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


def flip(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mirror the samples where `mask` (B,) is true along `dim` (-1 horizontal, -2 vertical); exact."""
    return torch.where(_per_sample(mask.to(x.device)), x.flip(dim), x)


def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """out[b, :, r, c] = x[b, :, r + dy[b], c + dx[b]], zero outside: pad-then-random-crop, exact.

    One `gather` on the flattened padded images: 5x faster than 4-D advanced indexing.
    """
    batch, channels, height, width = x.shape
    device = x.device
    dy, dx = dy.to(device).long(), dx.to(device).long()
    pad_y, pad_x = int(dy.abs().max()), int(dx.abs().max())
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y))
    padded_w = width + 2 * pad_x
    rows = torch.arange(height, device=device).view(1, height, 1) + (dy + pad_y).view(-1, 1, 1)
    cols = torch.arange(width, device=device).view(1, 1, width) + (dx + pad_x).view(-1, 1, 1)
    index = (rows * padded_w + cols).view(batch, 1, height * width).expand(batch, channels, height * width)
    flat = padded.reshape(batch, channels, -1)
    return flat.gather(2, index).view(batch, channels, height, width)


def affine_matrices(
    angle: torch.Tensor, scale: torch.Tensor, shear: torch.Tensor, translate: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """(B, 2, 3) `affine_grid` matrices for per-sample rotation (degrees, counter-clockwise), scale,
    x-shear (degrees) and translation (pixels, (B, 2) as dx, dy), about the image centre.

    Built in pixel units and then mapped to normalised coordinates, so rotations stay rigid on
    non-square images. Same warp as `torchvision...functional.affine(angle=-angle, translate,
    scale, shear)` (its angle turns clockwise, `rotate`'s and ours counter-clockwise).
    """
    height, width = size
    a = torch.deg2rad(angle.double())
    s = -torch.tan(torch.deg2rad(shear.double()))  # sign as in torchvision's x-shear
    cos, sin = torch.cos(a), torch.sin(a)
    # Forward map (pixels, y down): A = scale * R(angle) @ [[1, s], [0, 1]]; R turns counter-clockwise on screen.
    a00, a01 = cos, cos * s + sin
    a10, a11 = -sin, -sin * s + cos
    k = scale.double()
    a00, a01, a10, a11 = a00 * k, a01 * k, a10 * k, a11 * k
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    tx, ty = translate[:, 0].double(), translate[:, 1].double()
    half_w, half_h = width / 2.0, height / 2.0
    # theta = D^-1 A^-1 D for D = diag(W/2, H/2); the translation is undone before A^-1.
    theta = torch.stack(
        [
            torch.stack([i00, i01 * half_h / half_w, -(i00 * tx + i01 * ty) / half_w], dim=1),
            torch.stack([i10 * half_w / half_h, i11, -(i10 * tx + i11 * ty) / half_h], dim=1),
        ],
        dim=1,
    )
    return theta.float()


def affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp float images with per-sample matrices from `affine_matrices` (bilinear, zero fill)."""
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) with torchvision's weights."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.2989, 0.587, 0.114], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _blend_(x: torch.Tensor, factor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """In place: x * factor + other * (1 - factor), clamped to [0, 1]."""
    factor = _per_sample(factor.to(x))
    return x.mul_(factor).add_(other * (1 - factor)).clamp_(0, 1)


def color_jitter(
    x: torch.Tensor, brightness: torch.Tensor | None, contrast: torch.Tensor | None, saturation: torch.Tensor | None
) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation factors (B,) on float images in [0, 1].

    Works in place on `x` (callers pass a temporary) to keep an 8-op pipeline to few passes.
    """
    if brightness is not None:
        x.mul_(_per_sample(brightness.to(x))).clamp_(0, 1)
    if contrast is not None:
        channel_means = x.mean(dim=(2, 3), keepdim=True)
        _blend_(x, contrast, grey(channel_means))
    if saturation is not None and x.shape[1] == 3:
        _blend_(x, saturation, grey(x))
    return x


def erase(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, height: torch.Tensor, width: torch.Tensor
) -> torch.Tensor:
    """Zero a per-sample rectangle (cutout / random erasing); samples with height 0 are untouched."""
    device = x.device
    rows = torch.arange(x.shape[-2], device=device).view(1, -1, 1)
    cols = torch.arange(x.shape[-1], device=device).view(1, 1, -1)
    top, left = top.to(device).view(-1, 1, 1), left.to(device).view(-1, 1, 1)
    height, width = height.to(device).view(-1, 1, 1), width.to(device).view(-1, 1, 1)
    mask = (rows >= top) & (rows < top + height) & (cols >= left) & (cols < left + width)
    return x.masked_fill(mask.unsqueeze(1), 0)


def erase_boxes(
    uniform: torch.Tensor, size: tuple[int, int], area: tuple[float, float] = (0.02, 0.33), ratio=(0.3, 3.3)
) -> tuple[torch.Tensor, ...]:
    """(top, left, height, width) of random-erasing boxes from a (B, 4) tensor of U(0,1) draws."""
    img_h, img_w = size
    target = img_h * img_w * (area[0] + (area[1] - area[0]) * uniform[:, 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * uniform[:, 1])
    height = torch.sqrt(target * aspect).round().clamp(1, img_h).long()
    width = torch.sqrt(target / aspect).round().clamp(1, img_w).long()
    top = (uniform[:, 2] * (img_h - height + 1)).long().clamp(max=img_h - 1)
    left = (uniform[:, 3] * (img_w - width + 1)).long().clamp(max=img_w - 1)
    return top, left, height, width
