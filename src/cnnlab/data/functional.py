"""Batch image operations with a different parameter per sample, as whole-tensor ops (no Python loop per image).

torchvision's v2 transforms draw one parameter set per call, so on a batched tensor every image
gets the same rotation. These functions take per-sample parameter tensors instead; the random
draws live in `augment.py`. All work on any device; `x` is (B, C, H, W), or a volume (B, C, D, H, W) for
`flip`, `shift`, `affine` (with `volume_matrices`) and `color_jitter`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _per_sample(values: torch.Tensor, ndim: int = 4) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) broadcasting over a (B, C, H, W) batch, or (B, C, D, H, W) with ndim=5."""
    return values.view(-1, *([1] * (ndim - 1)))


def flip(x: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Mirror the samples where `mask` (B,) is true along `dim` (-1 horizontal, -2 vertical, -3 depth); exact."""
    return torch.where(_per_sample(mask.to(x.device), x.dim()), x.flip(dim), x)


def shift(x: torch.Tensor, *offsets: torch.Tensor) -> torch.Tensor:
    """out[b, :, r, c] = x[b, :, r + dy[b], c + dx[b]], zero outside: pad-then-random-crop, exact.

    `offsets` are (B,) integer tensors, one per spatial axis in order: (dy, dx) for images, (dz, dy, dx) for
    volumes. One `gather` on the flattened padded samples: 5x faster than 4-D advanced indexing.
    """
    batch, channels, *sizes = x.shape
    if len(offsets) != len(sizes):
        raise ValueError(f"shift needs one offset per spatial axis ({len(sizes)}), got {len(offsets)}")
    device = x.device
    offsets = tuple(offset.to(device).long() for offset in offsets)
    pads = [int(offset.abs().max()) for offset in offsets]
    padded = F.pad(x, [p for pad in reversed(pads) for p in (pad, pad)])
    index = torch.zeros((batch, *([1] * len(sizes))), dtype=torch.long, device=device)
    stride = 1
    for axis in reversed(range(len(sizes))):  # the flat index over the padded grid, innermost axis first
        shape = [1] * len(sizes)
        shape[axis] = sizes[axis]
        positions = torch.arange(sizes[axis], device=device).view(1, *shape)
        index = index + (positions + _per_sample(offsets[axis] + pads[axis], len(sizes) + 1)) * stride
        stride *= sizes[axis] + 2 * pads[axis]
    count = math.prod(sizes)
    index = index.reshape(batch, 1, count).expand(batch, channels, count)
    return padded.reshape(batch, channels, -1).gather(2, index).view(batch, channels, *sizes)


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


def volume_matrices(theta: torch.Tensor, scale: torch.Tensor, depth_shift: torch.Tensor, depth: int) -> torch.Tensor:
    """(B, 3, 4) `affine_grid` matrices for volumes from the in-plane (B, 2, 3) ones of `affine_matrices`.

    Every slice gets the in-plane warp (rotation about the depth axis, shear, shift); the depth axis is zoomed by
    the same `scale` (so a zoom is isotropic) and shifted by `depth_shift` voxels. With scale 1 and no depth shift
    each output slice samples exactly one input slice, so trilinear sampling reduces to the 2-D bilinear warp.
    """
    batch = theta.shape[0]
    scale, depth_shift = scale.to(theta), depth_shift.to(theta)
    out = theta.new_zeros(batch, 3, 4)
    out[:, :2, :2] = theta[:, :, :2]  # affine_grid's coordinates are (x, y, z) = (W, H, D)
    out[:, :2, 3] = theta[:, :, 2]
    out[:, 2, 2] = 1 / scale
    out[:, 2, 3] = -depth_shift / (scale * depth / 2.0)
    return out


def affine(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp float images (or volumes, with `volume_matrices`) per sample: bilinear (trilinear), zero fill."""
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def grey(x: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, ...) with torchvision's weights."""
    if x.shape[1] == 1:
        return x
    weights = torch.tensor([0.2989, 0.587, 0.114], dtype=x.dtype, device=x.device)
    return (x * weights.view(1, 3, *([1] * (x.dim() - 2)))).sum(dim=1, keepdim=True)


def _intensity_bounds(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample clamp bounds: [0, 1], widened to the sample's own range where it reaches beyond.

    Images in [0, 1] (uint8 / 255, float) are clamped to [0, 1] as torchvision's ColorJitter does; 16-bit
    values or Hounsfield units keep their range, so jitter never crushes them to [0, 1].
    """
    flat = x.flatten(1)
    low, high = flat.amin(dim=1).clamp_(max=0), flat.amax(dim=1).clamp_(min=1)
    return _per_sample(low, x.dim()), _per_sample(high, x.dim())


def _blend_(x: torch.Tensor, factor: torch.Tensor, other: torch.Tensor, bounds) -> torch.Tensor:
    """In place: x * factor + other * (1 - factor), clamped to `bounds`."""
    factor = _per_sample(factor.to(x), x.dim())
    return x.mul_(factor).add_(other * (1 - factor)).clamp_(*bounds)


def color_jitter(
    x: torch.Tensor, brightness: torch.Tensor | None, contrast: torch.Tensor | None, saturation: torch.Tensor | None
) -> torch.Tensor:
    """Per-sample brightness, contrast and saturation factors (B,) on float images or volumes.

    Brightness scales the intensities, contrast blends them with the sample's mean (per channel, then luma), as in
    torchvision. The results are clamped to [0, 1] or, for values beyond it, to the sample's own range (see
    `_intensity_bounds`). Works in place on `x` (callers pass a temporary) to keep an 8-op pipeline to few passes.
    """
    bounds = _intensity_bounds(x)
    if brightness is not None:
        x.mul_(_per_sample(brightness.to(x), x.dim())).clamp_(*bounds)
    if contrast is not None:
        channel_means = x.mean(dim=tuple(range(2, x.dim())), keepdim=True)
        _blend_(x, contrast, grey(channel_means), bounds)
    if saturation is not None and x.shape[1] == 3:
        _blend_(x, saturation, grey(x), bounds)
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
