"""Hints for `predict`: an input that is far from the training images in an obvious way is named, not refused.

A model answers confidently on anything; a black digit on white given to an MNIST model gets a label with a high
probability and no sign that it is nonsense. These checks catch the obvious cases cheaply and without any model
(no out-of-distribution score): the file's own channel count and size come from its header
(`cnnlab.data.decode.probe`), the pixel statistics from the image as the one decode path
(`cnnlab.data.preprocess.read_images`) gives it to the model, and the training side from the run's stored
normalisation (run.json). A hint never changes a prediction.

Each threshold fires only on a clear case, so that a hint means something: on MNIST's 10,000 test digits none
fires, and every one of them inverted gets the polarity hint (tests/evaluate/test_hints.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cnnlab.data.decode import probe
from cnnlab.errors import DataError

# A training mean this far from mid-grey says the training images are mostly dark (MNIST: 0.13) or mostly light;
# photos (CIFAR-10: 0.47) are neither, and get no polarity hint.
POLARITY_SIDE = 0.15
# ... and an image mean on the other side of mid-grey, this far from the training mean, is the other polarity.
POLARITY_DISTANCE = 0.35
# Pixel std below this (in [0, 1] units, ~5 grey levels) is a blank image: a photo of a white wall, an empty scan.
BLANK_STD = 0.02
# A resize by more than this factor (either way, on either axis) loses the details or invents a blur. It is measured
# against the model's input size: run.json does not record the size of the files a run resized for training.
RESIZE_FACTOR = 4.0
# Mean spread between a pixel's channels (max - min, [0, 1]): above ~10 levels the file is in colour ...
COLOUR_SPREAD = 0.04
# ... and below ~1 level it is grey stored as RGB (a grey digit saved as an RGB JPEG, quality 95: 0.0 levels).
GREY_SPREAD = 0.004


@dataclass(frozen=True)
class TrainingProfile:
    """What predict knows of the training images: the model's input and the run's normalisation."""

    channels: int
    size: tuple[int, int]
    mean: float | None = None  # over channels, in [0, 1] units; None where the run stores no usable one
    std: float | None = None

    @classmethod
    def of(cls, input_shape: Sequence[int], normalization: dict[str, Any] | None) -> TrainingProfile:
        """From run.json's `input_shape` (C, H, W) and `normalization` (the training pixels' mean and std per
        channel, in [0, 1] units for 8-bit images)."""
        channels, height, width = input_shape
        mean = std = None
        if isinstance(normalization, dict) and normalization.get("mean") and normalization.get("std"):
            mean = sum(normalization["mean"]) / len(normalization["mean"])
            std = sum(normalization["std"]) / len(normalization["std"])
            if not (0.0 <= mean <= 1.0 and 0.0 < std <= 1.0):  # 16-bit or float data: not in [0, 1] units
                mean = std = None
        return cls(channels, (height, width), mean, std)


@dataclass(frozen=True)
class ImageStats:
    """One input as the hints see it: its file header and its pixels."""

    mean: float  # [0, 1], over the pixels the model gets (its channel count and size), before normalisation
    std: float
    channel_spread: float | None  # mean max - min over a pixel's channels, [0, 1]; None for a grey decode
    file_channels: int | None = None  # from the header (1 grey, 3 colour); None where it could not be read
    file_size: tuple[int, int] | None = None  # (H, W) from the header


def read_header(path: str) -> tuple[int, tuple[int, int]] | None:
    """(channels, (H, W)) of the file from its header, or None: a file the header reader cannot open is still
    decoded (and, if bad, reported) by the decode path, which alone decides whether it is an error."""
    try:
        return probe(path)
    except DataError:
        return None


def measure(
    decoded: torch.Tensor, model_input: torch.Tensor, headers: list[tuple[int, tuple[int, int]] | None]
) -> list[ImageStats]:
    """Statistics of a batch: `decoded` is uint8 (N, C, H, W) at the decode's channel count (3 when a file is in
    colour), `model_input` the same images at the model's channel count, `headers` from `read_header`.

    One pass over the whole batch: per image, the many small tensor operations cost more than the probe.
    """
    pixels = model_input.flatten(1).float().div_(255.0)
    std, mean = torch.std_mean(pixels, dim=1, correction=0)
    spreads: list[float | None] = [None] * len(decoded)
    if decoded.shape[1] == 3:
        spread = decoded.amax(1).float().sub_(decoded.amin(1).float()).flatten(1).mean(1).div_(255.0)
        spreads = spread.tolist()
    return [
        ImageStats(m, s, spread, *(header if header is not None else (None, None)))
        for m, s, spread, header in zip(mean.tolist(), std.tolist(), spreads, headers)
    ]


def colour_hint(image: ImageStats, training: TrainingProfile) -> str | None:
    """A colour photo for a grey model, or a grey image for a colour model."""
    if training.channels == 1 and image.channel_spread is not None and image.channel_spread >= COLOUR_SPREAD:
        return "colour image? the file is in colour, the model takes grey images (it was converted to grey)"
    grey_file = image.file_channels == 1 or (image.channel_spread is not None and image.channel_spread < GREY_SPREAD)
    if training.channels == 3 and grey_file:
        return "grey image? the file has no colour, the model was trained on colour images"
    return None


def resize_hint(image: ImageStats, training: TrainingProfile) -> str | None:
    """An image resized by a big factor to the model's input size: details lost, or a blur invented."""
    if image.file_size is None:
        return None
    (height, width), (train_height, train_width) = image.file_size, training.size
    scales = (train_height / height, train_width / width)
    factor = max(max(scale, 1 / scale) for scale in scales)
    if factor <= RESIZE_FACTOR:
        return None
    shown, model = f"{height}x{width}", f"{train_height}x{train_width}"
    if min(scales) < 1:
        return f"large image? this image is {shown}, shrunk {factor:.3g}x to the model's {model}"
    return f"small image? this image is {shown}, enlarged {factor:.3g}x to the model's {model}"


def blank_hint(image: ImageStats, training: TrainingProfile) -> str | None:
    """A near-constant image: there is nothing in it to classify."""
    if image.std >= BLANK_STD:
        return None
    reference = f", the training images' is {training.std:.2f}" if training.std is not None else ""
    return f"blank image? its pixels are nearly all one value (std {image.std:.3f}{reference})"


def _tone(mean: float) -> str:
    return "light" if mean > 0.5 else "dark"


def polarity_hint(image: ImageStats, training: TrainingProfile) -> str | None:
    """Inverted polarity: a light image for a model trained on dark ones (a black digit on white), or the reverse."""
    if training.mean is None or abs(training.mean - 0.5) < POLARITY_SIDE:
        return None
    if _tone(image.mean) == _tone(training.mean) or abs(image.mean - training.mean) < POLARITY_DISTANCE:
        return None
    return (
        f"inverted polarity? this image is mostly {_tone(image.mean)} (mean {image.mean:.2f}), "
        f"the training images are mostly {_tone(training.mean)} (mean {training.mean:.2f})"
    )


def hints_for(image: ImageStats, training: TrainingProfile) -> list[str]:
    """The hints for one image, most basic first; a blank image gets no polarity hint (it has no foreground)."""
    blank = blank_hint(image, training)
    found = [colour_hint(image, training), resize_hint(image, training), blank]
    if blank is None:
        found.append(polarity_hint(image, training))
    return [hint for hint in found if hint is not None]
