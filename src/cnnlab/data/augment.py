"""Training-time augmentation: a spec (what the config says) and one batch callable (what runs).

The callable interface, for the trainer and for `make_batches`::

    augmenter = build_augmenter(AugmentSpec.from_config({"rotate": 15, "flip": True}))  # None if empty
    x, y = augmenter(x, y, generator)            # x: (B, C, H, W) uint8, or float in [0, 1]
    x, y = augmenter(volumes, y, generator)      # volumes: (B, C, D, H, W), e.g. CT or MedMNIST 3-D

* dtype is preserved: uint8 in -> uint8 out (rounded), float in [0, 1] -> float32 in [0, 1], other
  integer types (16-bit) -> the same type (rounded, in their own units). So batches can stay raw
  until the trainer's Normalizer, and the augmenter can also run on the GPU after the transfer (all
  ops are tensor ops on `x.device`). Colour jitter clamps to [0, 1], or to a sample's own range
  where its values reach beyond (16-bit, Hounsfield units), so no range is crushed.
* Every sample draws its own parameters (angle, shift, flip, ...), vectorised over the batch.
* All randomness comes from `generator` (a CPU torch.Generator, or None for the global RNG):
  the same generator state gives the same output.
* With `mixup` or `cutmix`, labels come back as float (B, num_classes) soft labels (rows sum to
  1), made by torchvision.transforms.v2.MixUp / CutMix (one mixing weight per batch, partner =
  the batch rolled by one; with both set, each batch picks one at random). Pass `num_classes`
  to `build_augmenter` or to the call (make_batches passes it). Otherwise labels pass through.

Order: crop (pad + random shift), flip, vflip, (dflip), affine (rotate/scale/translate/shear), colour
jitter, random erasing, then mixup/cutmix. Flag-only keys (`rotate,flip` from the CLI) take the
defaults in FLAG_DEFAULTS.

Volumes (B, C, D, H, W) take the same keys with the same meaning on each slice (H, W), plus depth:
crop shifts along D too, `dflip` mirrors D, `rotate` and `shear` act in the slice plane (rotation about
the depth axis), `scale` zooms all three axes alike, `translate` shifts along D by the same fraction;
`jitter` is brightness (an intensity scale) and contrast (about the volume's mean). `saturation` and
`erase` are refused (volumes have no colour; erasing is defined on 2-D boxes); mixup mixes whole
volumes and cutmix pastes a box that spans the full depth (its label weight is still its volume share).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torchvision.transforms import v2

from cnnlab.config import parse_mapping
from cnnlab.data import functional as AF
from cnnlab.errors import ConfigError

FLAG_DEFAULTS = {
    "rotate": 15.0,
    "scale": 0.1,
    "translate": 0.1,
    "shear": 10.0,
    "crop": 4,
    "jitter": 0.4,
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.4,
    "erase": 0.5,
    "mixup": 0.2,
    "cutmix": 1.0,
}
# What each value may be: (lowest, highest or None, highest included). Every value must be finite. scale stays
# below 1 (a zoom factor of 1 - scale must be > 0: at 0 the affine matrix is singular and the image NaN); shear
# below 90 degrees (tan 90 is infinite); erase is a probability; the rest are strengths or Beta parameters.
RANGES: dict[str, tuple[float, float | None, bool]] = {
    "rotate": (0, 180, True),
    "scale": (0, 1, False),
    "translate": (0, 1, True),
    "shear": (0, 89, True),
    "crop": (0, None, True),
    "jitter": (0, None, True),
    "brightness": (0, None, True),
    "contrast": (0, None, True),
    "saturation": (0, None, True),
    "erase": (0, 1, True),
    "mixup": (0, None, True),
    "cutmix": (0, None, True),
}
TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
SWITCHES = ("flip", "vflip", "dflip")
# Mirrors: the key and the axis it flips (counted from the end, so the same for images and volumes).
FLIP_AXES = (("flip", -1), ("vflip", -2), ("dflip", -3))
# What volumes cannot take, and why (a one-line ConfigError names the key).
NOT_FOR_VOLUMES = {
    "saturation": "volumes have no colour to saturate; use brightness / contrast",
    "erase": "random erasing is defined on 2-D boxes",
}


@dataclass(frozen=True)
class AugmentSpec:
    """Augmentations by name; 0 / False means off.

    Attributes:
        rotate: max rotation in degrees (uniform in [-rotate, rotate]).
        scale: zoom range, 0.1 -> factor in [0.9, 1.1].
        translate: max shift as a fraction of width / height.
        shear: max x-shear in degrees.
        flip / vflip: random horizontal / vertical mirror (p = 0.5).
        dflip: random mirror of the depth axis of volumes (p = 0.5); an error on 2-D images.
        crop: padding in pixels for random crop with zero padding (CIFAR-style).
        jitter: colour jitter strength for brightness, contrast and saturation alike;
            brightness / contrast / saturation override it one by one.
        erase: probability of random erasing (a zeroed rectangle of 2-33% of the image).
        mixup / cutmix: Beta(alpha, alpha) parameter; soft labels (see module docstring).
    """

    rotate: float = 0.0
    scale: float = 0.0
    translate: float = 0.0
    shear: float = 0.0
    flip: bool = False
    vflip: bool = False
    crop: int = 0
    jitter: float = 0.0
    brightness: float | None = None
    contrast: float | None = None
    saturation: float | None = None
    erase: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    dflip: bool = False  # last: the known-keys list keeps its order

    def __post_init__(self) -> None:
        for key in SWITCHES:
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"config field 'augment.{key}' must be true or false, got {getattr(self, key)!r}")
        for key, bounds in RANGES.items():
            value = getattr(self, key)
            if value is not None and not _in_range(value, *bounds, whole=key == "crop"):
                raise ConfigError(f"config field 'augment.{key}' must be {_describe(*bounds, key)}, got {value!r}")

    @classmethod
    def known_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_config(cls, config: AugmentSpec | Mapping[str, Any] | str | None) -> AugmentSpec:
        """From a config mapping or a `rotate=15,flip` string; unknown keys are ConfigErrors."""
        if isinstance(config, AugmentSpec):
            return config
        if config is None:
            return cls()
        if isinstance(config, str):
            config = parse_mapping(config)
        if not isinstance(config, Mapping):
            raise ConfigError(f"augment must be a mapping like {{rotate: 15, flip: true}}, got {config!r}")
        values: dict[str, Any] = {}
        for raw_key, value in config.items():
            key = str(raw_key).strip().replace("-", "_")
            if key == "jitter" and isinstance(value, Mapping):
                values.update(cls.from_config(value).color_dict())
                continue
            values[key] = _field_value(key, value)
        return cls(**values)

    def color_dict(self) -> dict[str, float]:
        return {k: v for k, v in zip(("brightness", "contrast", "saturation"), self.color_factors()) if v}

    def color_factors(self) -> tuple[float, float, float]:
        """(brightness, contrast, saturation) strengths, each falling back to `jitter`."""
        brightness, contrast, saturation = (
            self.jitter if v is None else v for v in (self.brightness, self.contrast, self.saturation)
        )
        return brightness, contrast, saturation

    def check_spatial_dims(self, spatial_dims: int) -> None:
        """Refuse, before training, the keys the data cannot take: dflip on images, NOT_FOR_VOLUMES on volumes.

        Raises:
            ConfigError: one line naming the key.
        """
        if spatial_dims == 2 and self.dflip:
            raise ConfigError("augment.dflip mirrors the depth of volumes (B, C, D, H, W); these images are 2-D")
        if spatial_dims == 3:
            for key, reason in NOT_FOR_VOLUMES.items():
                if getattr(self, key):
                    raise ConfigError(f"augment.{key} does not apply to volumes (B, C, D, H, W): {reason}")

    @property
    def has_affine(self) -> bool:
        return bool(self.rotate or self.scale or self.translate or self.shear)

    @property
    def has_mix(self) -> bool:
        return bool(self.mixup or self.cutmix)

    @property
    def is_empty(self) -> bool:
        return not any(self.to_dict().values())

    def to_dict(self) -> dict[str, Any]:
        """The keys that differ from the defaults (what a run config should record)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def per_sample_transform(self, image_size: tuple[int, int]) -> v2.Compose | None:
        """The same augmentations (except mixup/cutmix) as torchvision v2 per-image transforms, for
        streaming sets whose images are augmented one by one in DataLoader workers."""
        self.check_spatial_dims(2)
        steps: list[Any] = []
        if self.crop:
            steps.append(v2.RandomCrop(list(image_size), padding=self.crop))
        if self.flip:
            steps.append(v2.RandomHorizontalFlip())
        if self.vflip:
            steps.append(v2.RandomVerticalFlip())
        if self.has_affine:
            steps.append(
                v2.RandomAffine(
                    degrees=self.rotate,
                    translate=(self.translate, self.translate) if self.translate else None,
                    scale=(1 - self.scale, 1 + self.scale) if self.scale else None,
                    shear=self.shear or None,
                    interpolation=v2.InterpolationMode.BILINEAR,
                )
            )
        brightness, contrast, saturation = self.color_factors()
        if brightness or contrast or saturation:
            steps.append(v2.ColorJitter(brightness=brightness, contrast=contrast, saturation=saturation))
        if self.erase:
            steps.append(v2.RandomErasing(p=self.erase, value=0))
        return v2.Compose(steps) if steps else None


def _in_range(value: Any, low: float, high: float | None, high_included: bool, whole: bool = False) -> bool:
    kind = numbers.Integral if whole else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        return False
    return value >= low and (high is None or value < high or (high_included and value == high))


def _describe(low: float, high: float | None, high_included: bool, key: str) -> str:
    kind = "a whole number of pixels" if key == "crop" else "a finite number"
    if high is None:
        return f"{kind} >= {low:g}"
    return f"{kind} in [{low:g}, {high:g}{']' if high_included else ')'}"


def _number(key: str, value: Any) -> float | int:
    """A flag-only key (`True`) takes its default, `False` is off; crop's pixels become an int when whole.

    The range is checked by AugmentSpec itself (`__post_init__`), so a spec built in Python is checked too.
    """
    if value is True:
        return FLAG_DEFAULTS.get(key, 0)
    if value is False or value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"config field 'augment.{key}' must be {_describe(*RANGES[key], key)}, got {value!r}"
        ) from None
    return int(number) if key == "crop" and number.is_integer() else number


def _switch(key: str, value: Any) -> bool:
    """flip / vflip / dflip: a boolean, 0 / 1, or a word YAML reads as one; anything else is refused, not guessed."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigError(f"config field 'augment.{key}' must be true or false, got {value!r}")


def _field_value(key: str, value: Any) -> Any:
    known = AugmentSpec.known_keys()
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown augmentation {key!r}{hint}; known keys: {', '.join(known)}")
    if key in SWITCHES:
        return _switch(key, value)
    return _number(key, value)


def _device(generator: torch.Generator | None) -> torch.device:
    """Random draws happen where the generator lives (CPU unless the caller passes a CUDA one)."""
    return generator.device if generator is not None else torch.device("cpu")


def _uniform(generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=_device(generator))


def _symmetric(generator: torch.Generator | None, batch: int, bound: float) -> torch.Tensor:
    return (_uniform(generator, batch) * 2 - 1) * bound


class Augmenter:
    """The batch callable built from an AugmentSpec; see the module docstring for the contract."""

    def __init__(self, spec: AugmentSpec, num_classes: int | None = None) -> None:
        self.spec = spec
        self.num_classes = num_classes
        self._mixers: dict[int, v2.Transform] = {}

    def __repr__(self) -> str:
        return f"Augmenter({self.spec.to_dict()})"

    def __call__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        num_classes: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.transform_images(x, generator)
        if self.spec.has_mix:
            x, y = self.mix(x, y, generator, num_classes)
        return x, y

    def transform_images(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Everything but mixup/cutmix, per sample; dtype-preserving. `x` is (B, C, H, W) or (B, C, D, H, W)."""
        spec, batch = self.spec, x.shape[0]
        spatial = self._check_rank(x)
        if spec.crop:
            offsets = torch.randint(
                -spec.crop, spec.crop + 1, (spatial, batch), generator=generator, device=_device(generator)
            )
            x = AF.shift(x, *offsets)
        for key, dim in FLIP_AXES:
            if getattr(spec, key):
                x = AF.flip(x, _uniform(generator, batch) < 0.5, dim=dim)
        color = spec.color_factors()
        if spatial == 3:  # `jitter` on volumes: brightness and contrast only
            color = (*color[:2], 0.0)
        if not (spec.has_affine or any(color)):
            return self._erase(x, generator)
        dtype = x.dtype
        # A private float copy: the colour ops below work in place.
        x = x.float().div_(255) if dtype == torch.uint8 else x.to(torch.float32, copy=True)
        if spec.has_affine:
            x = AF.affine(x, self._affine_params(generator, batch, tuple(x.shape[2:])))
        if any(color):
            x = AF.color_jitter(x, *(self._factor(generator, batch, c) for c in color))
        x = self._erase(x, generator)
        return _restore_dtype(x, dtype)

    def _check_rank(self, x: torch.Tensor) -> int:
        spatial = x.dim() - 2
        if spatial not in (2, 3):
            shape = "x".join(map(str, x.shape))
            raise ConfigError(f"augment: batches must be (B, C, H, W) images or (B, C, D, H, W) volumes, got {shape}")
        self.spec.check_spatial_dims(spatial)
        return spatial

    def _affine_params(self, generator: torch.Generator | None, batch: int, size: tuple[int, ...]) -> torch.Tensor:
        """Per-sample `affine_grid` matrices for a spatial `size` of (H, W), or (D, H, W) for volumes."""
        spec = self.spec
        height, width = size[-2:]
        angle = _symmetric(generator, batch, spec.rotate)
        scale = 1 + _symmetric(generator, batch, spec.scale)
        shear = _symmetric(generator, batch, spec.shear)
        translate = torch.stack(
            [
                _symmetric(generator, batch, spec.translate * width),
                _symmetric(generator, batch, spec.translate * height),
            ],
            dim=1,
        )
        theta = AF.affine_matrices(angle.cpu(), scale.cpu(), shear.cpu(), translate.cpu(), (height, width))
        if len(size) == 2:
            return theta
        depth_shift = _symmetric(generator, batch, spec.translate * size[0])  # drawn last: images draw as before
        return AF.volume_matrices(theta, scale.cpu(), depth_shift.cpu(), size[0])

    @staticmethod
    def _factor(generator: torch.Generator | None, batch: int, strength: float) -> torch.Tensor | None:
        if not strength:
            return None
        low = max(0.0, 1 - strength)
        return low + (1 + strength - low) * _uniform(generator, batch)

    def _erase(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if not self.spec.erase:
            return x
        batch = x.shape[0]
        apply = _uniform(generator, batch) < self.spec.erase
        top, left, height, width = AF.erase_boxes(_uniform(generator, batch, 4), tuple(x.shape[-2:]))
        return AF.erase(x, top, left, height * apply, width)

    def mix(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        generator: torch.Generator | None = None,
        num_classes: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MixUp / CutMix (torchvision v2) seeded from `generator`; returns soft labels (B, K)."""
        classes = num_classes or self.num_classes
        if classes is None:
            raise ConfigError("mixup/cutmix need the number of classes: build_augmenter(spec, num_classes=K)")
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=_device(generator)))
        dtype, shape = x.dtype, x.shape
        if dtype == torch.uint8:
            x = x.float().div_(255)
        elif not x.is_floating_point():
            x = x.float()  # 16-bit: mixed in its own units
        if x.dim() == 5:
            # torchvision's mixers take (B, C, H, W): depth joins the channels, so MixUp mixes whole volumes and
            # CutMix pastes a box through the full depth (its area share is its volume share: labels stay right).
            x = x.flatten(1, 2)
        # v2.MixUp/CutMix draw from the global RNG; seeding a forked copy keeps them reproducible
        # without disturbing the caller's global random state.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            x, y = self._mixer(classes)(x, y.long())
        return _restore_dtype(x.view(shape), dtype), y

    def _mixer(self, num_classes: int) -> v2.Transform:
        if num_classes not in self._mixers:
            choices: list[v2.Transform] = []
            if self.spec.mixup:
                choices.append(v2.MixUp(alpha=self.spec.mixup, num_classes=num_classes))
            if self.spec.cutmix:
                choices.append(v2.CutMix(alpha=self.spec.cutmix, num_classes=num_classes))
            self._mixers[num_classes] = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)
        return self._mixers[num_classes]


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Float [0, 1] -> uint8, rounding half up; modifies `x` (always a temporary here)."""
    return x.mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


def _restore_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float32 working copy back to the input's type: uint8 from [0, 1], other integers (16-bit) rounded
    in their own units and clamped to the type's range, floats stay float32; modifies `x` (a temporary)."""
    if dtype == torch.uint8:
        return _to_uint8(x)
    if dtype.is_floating_point or dtype == torch.bool:
        return x
    info = torch.iinfo(dtype)
    return x.round_().clamp_(info.min, info.max).to(dtype)


def build_augmenter(
    spec: AugmentSpec | Mapping[str, Any] | str | None, num_classes: int | None = None
) -> Augmenter | None:
    """The batch augmenter for `spec` (a spec, config mapping or `rotate=15,flip` string); None when empty."""
    if spec is None:
        return None
    spec = AugmentSpec.from_config(spec)
    return None if spec.is_empty else Augmenter(spec, num_classes)
