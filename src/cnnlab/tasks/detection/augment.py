"""Box-aware training augmentation for detection: the image and its boxes move together.

    augment = build_detection_augment({"flip": True, "scale": 0.2, "translate": 0.1, "mosaic": 0.5})  # None if off
    images, targets = augment(images, targets, generator)    # uint8 (B, C, S, S) + [{"boxes", "labels", ...}]

Order: mosaic (YOLOv4: four images of the batch at half size around a random centre), SSD IoU crop resized back
(torchvision v2 RandomIoUCrop + Resize, per image), horizontal / vertical flip, scale + translate, colour jitter;
then boxes are clipped to the image and those that became smaller than `min_box_size` pixels, or kept less than
VISIBLE_FRACTION of their area, are dropped with their labels (v2.SanitizeBoundingBoxes). Other keys of a target
("file", "orig_size") pass through.

Speed: torchvision's v2 transforms draw one parameter set per call, so calling them once per image costs ~3 ms per
128x128 image on one core. Flip, scale/translate and jitter therefore run as whole-batch tensor ops with a parameter
per image (cnnlab.data.functional), and the boxes of the whole batch go through v2's box kernels and
SanitizeBoundingBoxes as one tv_tensors.BoundingBoxes; only the IoU crop (a rejection sampler that needs each
image's boxes) runs per image. Boxes are carried unclipped (clamping_mode=None) until the end, so the visible
fraction of a box that was pushed half off the image is measured exactly.

Randomness: one seed is drawn from the caller's generator and everything runs on a forked, reseeded global RNG, so
the same generator state gives the same batch and the caller's global random state is left untouched.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torchvision import tv_tensors
from torchvision.transforms import v2

from cnnlab.config import parse_mapping
from cnnlab.data import functional as AF
from cnnlab.errors import ConfigError

VISIBLE_FRACTION = 0.25  # a box with less of its area left inside the image is dropped
# (low, high, high included) for each number; flip/vflip are booleans.
RANGES: dict[str, tuple[float, float, bool]] = {
    "scale": (0.0, 1.0, False),  # zoom 1 - scale must stay > 0
    "translate": (0.0, 1.0, True),
    "jitter": (0.0, 1.0, True),
    "crop": (0.0, 1.0, True),
    "mosaic": (0.0, 1.0, True),
}
FLAG_DEFAULTS = {"scale": 0.2, "translate": 0.1, "jitter": 0.4, "crop": 0.5, "mosaic": 0.5}
SWITCHES = ("flip", "vflip")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class DetectionAugmentSpec:
    """Detection augmentations by name; 0 / False means off.

    Attributes:
        flip / vflip: horizontal / vertical mirror with p = 0.5.
        scale: zoom factor uniform in [1 - scale, 1 + scale] about the image centre.
        translate: shift uniform in +-translate of the width / height.
        jitter: brightness and contrast factors in [1 - jitter, 1 + jitter] (and saturation for 3 channels).
        crop: probability of an SSD IoU crop (one that keeps boxes), resized back to the image size.
        mosaic: probability that an image is replaced by a 2x2 mosaic of it and three others of its batch.
    """

    flip: bool = False
    vflip: bool = False
    scale: float = 0.0
    translate: float = 0.0
    jitter: float = 0.0
    crop: float = 0.0
    mosaic: float = 0.0

    def __post_init__(self) -> None:
        for key in SWITCHES:
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"config field 'augment.{key}' must be true or false, got {getattr(self, key)!r}")
        for key, (low, high, included) in RANGES.items():
            value = getattr(self, key)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not ok or value < low or value > high or (value == high and not included):
                bound = "]" if included else ")"
                raise ConfigError(
                    f"config field 'augment.{key}' must be a number in [{low:g}, {high:g}{bound}, got {value!r}"
                )

    @classmethod
    def known_keys(cls) -> list[str]:
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | str | None) -> DetectionAugmentSpec:
        """From a config mapping (or a `flip,scale=0.2` string); a flag-only key takes FLAG_DEFAULTS."""
        if values is None:
            return cls()
        if isinstance(values, str):
            values = parse_mapping(values)
        if not isinstance(values, Mapping):
            raise ConfigError(f"augment must be a mapping like {{flip: true, scale: 0.2}}, got {values!r}")
        known = cls.known_keys()
        fields: dict[str, Any] = {}
        for raw_key, value in values.items():
            key = str(raw_key).strip().replace("-", "_")
            if key not in known:
                raise ConfigError(f"augment.{key} is not supported for detection (supported: {', '.join(known)})")
            fields[key] = _switch(key, value) if key in SWITCHES else _number(key, value)
        return cls(**fields)

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, key) for key in self.known_keys())

    def to_dict(self) -> dict[str, Any]:
        """The keys that differ from the defaults (what a run config records)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}


def _switch(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ConfigError(f"config field 'augment.{key}' must be true or false, got {value!r}")


def _number(key: str, value: Any) -> float:
    if value is True:
        return FLAG_DEFAULTS[key]
    if value is False or value is None:
        return 0.0
    try:
        return float(value)
    except (TypeError, ValueError):
        low, high, included = RANGES[key]
        raise ConfigError(
            f"config field 'augment.{key}' must be a number in [{low:g}, {high:g}{']' if included else ')'}, "
            f"got {value!r}"
        ) from None


@dataclass
class _Boxes:
    """The boxes of a whole batch, flat: (N, 4) xyxy unclipped, labels (N,), owner (N,) = image index, ascending."""

    boxes: torch.Tensor
    labels: torch.Tensor
    owner: torch.Tensor

    def of(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        keep = self.owner == index
        return self.boxes[keep], self.labels[keep]


def _uniform(count: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(count)


class DetectionAugment:
    """The batch callable built from a DetectionAugmentSpec (see the module docstring)."""

    def __init__(self, spec: DetectionAugmentSpec, min_box_size: float = 2.0) -> None:
        self.spec = spec
        self.min_box_size = float(min_box_size)
        self._sanitize = v2.SanitizeBoundingBoxes(
            min_size=max(1.0, self.min_box_size), labels_getter=lambda sample: (sample["labels"], sample["owner"])
        )

    def __repr__(self) -> str:
        return f"DetectionAugment({self.spec.to_dict()}, min_box_size={self.min_box_size:g})"

    def __call__(
        self, images: torch.Tensor, targets: list[dict], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, list[dict]]:
        """Augment a uint8 (B, C, H, W) batch (or float in [0, 1]) and its targets; same shape and dtype back."""
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        device = generator.device if generator is not None else torch.device("cpu")
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device))
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            return self._apply(images, targets)

    def _apply(self, images: torch.Tensor, targets: list[dict]) -> tuple[torch.Tensor, list[dict]]:
        spec, size = self.spec, (images.shape[-2], images.shape[-1])
        was_uint8 = images.dtype == torch.uint8
        x = images.float().div_(255) if was_uint8 else images.to(torch.float32, copy=True)
        flat = _flatten(targets)
        if spec.mosaic:
            x, flat = self._mosaic(x, flat)
        if spec.crop:
            x, flat = self._iou_crop(x, flat)
        if spec.flip:
            x, flat = _flip(x, flat, horizontal=True)
        if spec.vflip:
            x, flat = _flip(x, flat, horizontal=False)
        if spec.scale or spec.translate:
            x, flat = self._affine(x, flat)
        if spec.jitter:
            low, high = max(0.0, 1 - spec.jitter), 1 + spec.jitter
            batch = x.shape[0]
            saturation = _uniform(batch, low, high) if x.shape[1] == 3 else None
            x = AF.color_jitter(x, _uniform(batch, low, high), _uniform(batch, low, high), saturation)
        flat = self._clean(flat, size)
        out = x.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8) if was_uint8 else x
        return out, _unflatten(flat, targets)

    # ---------------------------------------------------------------- the steps

    def _mosaic(self, x: torch.Tensor, flat: _Boxes) -> tuple[torch.Tensor, _Boxes]:
        """YOLOv4 mosaic at half scale: each chosen image becomes four half-size images of the batch (itself first)
        meeting at a random centre in the middle half of the canvas; the canvas crops what falls outside."""
        batch, _, height, width = x.shape
        chosen = (torch.rand(batch) < self.spec.mosaic).nonzero().flatten().tolist()
        if not chosen:
            return x, flat
        half_h, half_w = max(1, height // 2), max(1, width // 2)
        small = F.interpolate(x, size=(half_h, half_w), mode="bilinear", align_corners=False, antialias=True)
        ratio = torch.tensor([half_w / width, half_h / height] * 2)
        x = x.clone()
        parts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        for index in chosen:
            tiles = [index, *torch.randint(0, batch, (3,)).tolist()]
            cx = int(torch.randint(width // 4, width - width // 4 + 1, (1,)))
            cy = int(torch.randint(height // 4, height - height // 4 + 1, (1,)))
            canvas = torch.zeros_like(x[index])
            boxes, labels = [], []
            for k, tile in enumerate(tiles):
                left = cx - half_w if k in (0, 2) else cx
                top = cy - half_h if k in (0, 1) else cy
                _paste(canvas, small[tile], left, top)
                tile_boxes, tile_labels = flat.of(tile)
                boxes.append(tile_boxes * ratio + torch.tensor([left, top, left, top], dtype=torch.float32))
                labels.append(tile_labels)
            x[index] = canvas
            parts[index] = (torch.cat(boxes), torch.cat(labels))
        return x, _replace(flat, parts, batch)

    def _iou_crop(self, x: torch.Tensor, flat: _Boxes) -> tuple[torch.Tensor, _Boxes]:
        """SSD's crop (v2.RandomIoUCrop's sampler, its trials drawn at once: a crop whose IoU with some box passes a
        random threshold; boxes whose centre falls outside become empty), resized back with v2's box-aware kernels."""
        batch, _, height, width = x.shape
        chosen = (torch.rand(batch) < self.spec.crop).nonzero().flatten().tolist()
        parts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        x = x.clone() if chosen else x
        for index in chosen:
            boxes, labels = flat.of(index)
            params = _iou_crop_params(boxes, height, width) if len(boxes) else None
            if params is None:
                continue
            top, left, crop_h, crop_w, inside = params
            image = v2.functional.crop(tv_tensors.Image(x[index]), top, left, crop_h, crop_w)
            wrapped = tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width), clamping_mode=None)
            cropped = v2.functional.crop(wrapped, top, left, crop_h, crop_w)
            resized = v2.functional.resize(cropped, [height, width])
            x[index] = v2.functional.resize(image, [height, width], antialias=True).as_subclass(torch.Tensor)
            boxes = resized.as_subclass(torch.Tensor).clone()
            boxes[~inside] = 0  # centre outside the crop: emptied, removed in _clean (as RandomIoUCrop marks them)
            parts[index] = (boxes, labels)
        return x, _replace(flat, parts, batch) if parts else flat

    def _affine(self, x: torch.Tensor, flat: _Boxes) -> tuple[torch.Tensor, _Boxes]:
        """Per-image zoom about the centre and shift, images by one grid_sample and boxes by the same map."""
        batch, _, height, width = x.shape
        spec = self.spec
        scale = _uniform(batch, 1 - spec.scale, 1 + spec.scale)
        shift = torch.stack(
            [
                _uniform(batch, -spec.translate, spec.translate) * width,
                _uniform(batch, -spec.translate, spec.translate) * height,
            ],
            dim=1,
        )
        zeros = torch.zeros(batch)
        x = AF.affine(x, AF.affine_matrices(zeros, scale, zeros, shift, (height, width)))
        # Forward map of affine_matrices without rotation/shear: p' = scale * (p - centre) + centre + shift.
        centre = torch.tensor([width / 2, height / 2] * 2)
        box_scale = scale[flat.owner].unsqueeze(1)
        box_shift = shift[flat.owner].repeat(1, 2)
        boxes = (flat.boxes - centre) * box_scale + centre + box_shift
        return x, dataclasses.replace(flat, boxes=boxes)

    def _clean(self, flat: _Boxes, size: tuple[int, int]) -> _Boxes:
        """Clip to the image; drop boxes with < VISIBLE_FRACTION of their area left or a side < min_box_size."""
        height, width = size
        full = _area(flat.boxes)
        clipped = torch.stack(
            [
                flat.boxes[:, 0].clamp(0, width),
                flat.boxes[:, 1].clamp(0, height),
                flat.boxes[:, 2].clamp(0, width),
                flat.boxes[:, 3].clamp(0, height),
            ],
            dim=1,
        )
        visible = (full > 0) & (_area(clipped) >= VISIBLE_FRACTION * full)
        clipped[~visible] = 0  # degenerate: SanitizeBoundingBoxes removes it
        sample = {
            "boxes": tv_tensors.BoundingBoxes(clipped, format="XYXY", canvas_size=size, clamping_mode=None),
            "labels": flat.labels,
            "owner": flat.owner,
        }
        sample = self._sanitize(sample)
        return _Boxes(sample["boxes"].as_subclass(torch.Tensor), sample["labels"], sample["owner"])


IOU_CROP_OPTIONS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)  # v2.RandomIoUCrop's minimum IoUs; 1.0 = leave as is
IOU_CROP_TRIALS = 40


def _iou_crop_params(
    boxes: torch.Tensor, height: int, width: int, min_scale: float = 0.3, aspect: tuple[float, float] = (0.5, 2.0)
) -> tuple[int, int, int, int, torch.Tensor] | None:
    """(top, left, height, width, boxes-inside mask) of an SSD crop, or None to leave the image as it is.

    The sampler of v2.RandomIoUCrop (same options, scales, aspect limits and acceptance test), except that its 40
    trials per option are drawn as one tensor and the first acceptable one is taken: torchvision's loop of box_iou
    calls costs ~15 ms per image on small objects, where high thresholds are rarely met.
    """
    centres = torch.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], dim=1)
    for _ in range(100):  # each round accepts with probability >= 1/7 (the leave-as-is option)
        threshold = IOU_CROP_OPTIONS[int(torch.randint(0, len(IOU_CROP_OPTIONS), (1,)))]
        if threshold >= 1.0:
            return None
        scales = min_scale + (1 - min_scale) * torch.rand(IOU_CROP_TRIALS, 2)
        new_w, new_h = (width * scales[:, 0]).long(), (height * scales[:, 1]).long()
        offsets = torch.rand(IOU_CROP_TRIALS, 2)
        left, top = ((width - new_w) * offsets[:, 0]).long(), ((height - new_h) * offsets[:, 1]).long()
        right, bottom = left + new_w, top + new_h
        ratio = new_w / new_h.clamp(min=1)
        ok = (ratio >= aspect[0]) & (ratio <= aspect[1]) & (new_w > 0) & (new_h > 0)
        inside = (
            (left[:, None] < centres[:, 0])
            & (centres[:, 0] < right[:, None])
            & (top[:, None] < centres[:, 1])
            & (centres[:, 1] < bottom[:, None])
        )  # (trials, boxes)
        crops = torch.stack([left, top, right, bottom], dim=1).to(boxes.dtype)
        iou = torchvision.ops.box_iou(crops, boxes).masked_fill(~inside, -1.0)
        ok &= inside.any(dim=1) & (iou.max(dim=1).values >= threshold)
        if ok.any():
            k = int(ok.nonzero()[0])
            return int(top[k]), int(left[k]), int(new_h[k]), int(new_w[k]), inside[k]
    return None


def _area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


def _paste(canvas: torch.Tensor, tile: torch.Tensor, left: int, top: int) -> None:
    """Copy `tile` (C, h, w) into `canvas` (C, H, W) with its top-left corner at (left, top), cropped to the canvas."""
    height, width = canvas.shape[-2:]
    tile_h, tile_w = tile.shape[-2:]
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + tile_w, width), min(top + tile_h, height)
    if x2 > x1 and y2 > y1:
        canvas[:, y1:y2, x1:x2] = tile[:, y1 - top : y2 - top, x1 - left : x2 - left]


def _flip(x: torch.Tensor, flat: _Boxes, horizontal: bool) -> tuple[torch.Tensor, _Boxes]:
    """Mirror a random half of the batch; their boxes through v2's box kernel, all in one BoundingBoxes."""
    batch, _, height, width = x.shape
    mask = torch.rand(batch) < 0.5
    x = AF.flip(x, mask, dim=-1 if horizontal else -2)
    rows = mask[flat.owner]
    if not rows.any():
        return x, flat
    chosen = tv_tensors.BoundingBoxes(flat.boxes[rows], format="XYXY", canvas_size=(height, width), clamping_mode=None)
    mirrored = v2.functional.horizontal_flip(chosen) if horizontal else v2.functional.vertical_flip(chosen)
    boxes = flat.boxes.clone()
    boxes[rows] = mirrored.as_subclass(torch.Tensor)
    return x, dataclasses.replace(flat, boxes=boxes)


def _flatten(targets: list[dict]) -> _Boxes:
    boxes = [torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4).cpu() for t in targets]
    labels = [torch.as_tensor(t["labels"], dtype=torch.int64).reshape(-1).cpu() for t in targets]
    owner = torch.repeat_interleave(
        torch.arange(len(targets)), torch.tensor([len(b) for b in boxes], dtype=torch.int64)
    )
    if not targets:
        return _Boxes(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), owner)
    return _Boxes(torch.cat(boxes), torch.cat(labels), owner)


def _replace(flat: _Boxes, parts: dict[int, tuple[torch.Tensor, torch.Tensor]], batch: int) -> _Boxes:
    """The flat boxes with those of the images in `parts` replaced; owners stay ascending."""
    boxes, labels, owners = [], [], []
    for index in range(batch):
        b, lab = parts[index] if index in parts else flat.of(index)
        boxes.append(b.float())
        labels.append(lab)
        owners.append(torch.full((len(b),), index, dtype=torch.int64))
    return _Boxes(torch.cat(boxes), torch.cat(labels), torch.cat(owners))


def _unflatten(flat: _Boxes, targets: list[dict]) -> list[dict]:
    counts = torch.bincount(flat.owner, minlength=len(targets)).tolist()
    out = []
    for target, boxes, labels in zip(targets, flat.boxes.split(counts), flat.labels.split(counts)):
        device = torch.as_tensor(target["boxes"]).device
        out.append({**target, "boxes": boxes.contiguous().to(device), "labels": labels.contiguous().to(device)})
    return out


def build_detection_augment(
    values: Mapping[str, Any] | str | None, min_box_size: float = 2.0
) -> DetectionAugment | None:
    """The batch augmenter for a config mapping (or spec); None when every augmentation is off."""
    spec = values if isinstance(values, DetectionAugmentSpec) else DetectionAugmentSpec.from_mapping(values)
    return None if spec.is_empty else DetectionAugment(spec, min_box_size)
