"""Image files -> uint8 CHW tensors, fast enough for folders of tens of thousands of files.

Why this module exists: per-file PIL decoding of 50,000 small JPEGs takes tens of seconds. Here files
are read in chunks on a thread pool and each chunk of JPEGs is decoded by one batched libjpeg-turbo
call (`torchvision.io.decode_jpeg` on a list); both release the GIL, so threads scale. PNG, GIF and
WebP go through `torchvision.io.decode_image`; BMP, TIFF and PGM/PPM through Pillow.

Channel policy (documented for users): alpha is dropped, 16-bit images keep their top 8 bits, and
every image is converted to one channel count: the requested `channels`, else the majority among
up to 64 files spread over the data set (read from headers only; ties go to RGB). Grey -> RGB
repeats the channel; RGB -> grey uses Pillow's luma weights.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cnnlab.errors import ConfigError, DataError

try:  # Deprecated in torchvision 0.29 in favour of TorchCodec; Pillow takes over if it goes.
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
except ImportError:  # pragma: no cover - depends on the installed torchvision
    decode_image = decode_jpeg = None  # type: ignore[assignment]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm")
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
_TORCHVISION_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp")
_GREY_PIL_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")
CHUNK = 256


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def default_threads() -> int:
    """Twice the cores: half the time goes to file reads, which wait on the disk, not the CPU."""
    return max(2, min(32, 2 * (os.cpu_count() or 1)))


def parse_size(resize: int | Sequence[int] | None) -> tuple[int, int] | None:
    """`resize` as (H, W): an int means a square, because every image of a set must share one size."""
    if resize is None:
        return None
    if isinstance(resize, int):
        size = (resize, resize)
    else:
        size = tuple(int(v) for v in resize)
        if len(size) == 1:
            size = (size[0], size[0])
    if len(size) != 2 or min(size) < 1:
        raise ConfigError(f"resize must be an int or (height, width) of positive ints, got {resize!r}")
    return size  # type: ignore[return-value]


def check_channels(channels: int | None) -> int | None:
    if channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    return channels


def convert_channels(images: torch.Tensor, target: int) -> torch.Tensor:
    """(..., C, H, W) uint8 -> `target` channels, dropping alpha first."""
    count = images.shape[-3]
    if count in (2, 4):
        images, count = images[..., : count - 1, :, :], count - 1
    if count == target:
        return images
    if count == 1 and target == 3:
        return images.expand(*images.shape[:-3], 3, *images.shape[-2:]).contiguous()
    if count == 3 and target == 1:
        rgb = images.to(torch.int32)
        luma = rgb[..., 0:1, :, :] * 19595 + rgb[..., 1:2, :, :] * 38470 + rgb[..., 2:3, :, :] * 7471
        return ((luma + 32768) >> 16).to(torch.uint8)
    raise DataError(f"cannot convert {count}-channel images to {target} channels")


def resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of a uint8 (N,C,H,W) or (C,H,W) tensor; a no-op at the right size."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return TF.resize(images, list(size), antialias=True)


def read_bytes(path: str) -> torch.Tensor:
    """The file's bytes as a writable uint8 tensor (no copy: read straight into its buffer)."""
    try:
        with open(path, "rb", buffering=0) as handle:
            buffer = bytearray(os.fstat(handle.fileno()).st_size)
            count = handle.readinto(buffer)
    except OSError as error:
        raise DataError(f"{path}: cannot read image file ({error.strerror or error})") from error
    if count != len(buffer):
        buffer = buffer[:count]
    if not buffer:
        raise DataError(f"{path}: image file is empty; expected an image")
    return torch.frombuffer(buffer, dtype=torch.uint8)


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    if image.mode.startswith("I"):
        array = (np.asarray(image).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8)
    else:
        array = np.asarray(image.convert("L" if image.mode in _GREY_PIL_MODES else "RGB"))
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def _decode_pil(data: torch.Tensor) -> torch.Tensor:
    with Image.open(io.BytesIO(data.numpy().tobytes())) as image:
        image.load()
        return _pil_to_tensor(image)


def _tidy(image: torch.Tensor) -> torch.Tensor:
    """First frame, 8 bits, no alpha."""
    if image.ndim == 4:
        image = image[0]
    if image.dtype != torch.uint8:
        image = (image.to(torch.int32) >> 8).to(torch.uint8)
    if image.shape[0] in (2, 4):
        image = image[: image.shape[0] - 1]
    return image


def decode_one(data: torch.Tensor, path: str) -> torch.Tensor:
    """Bytes -> uint8 (1 or 3, H, W); a DataError naming `path` when the file is not a readable image."""
    try:
        if decode_image is not None and path.lower().endswith(_TORCHVISION_EXTENSIONS):
            try:
                return _tidy(decode_image(data, mode=ImageReadMode.UNCHANGED))
            except RuntimeError:
                pass  # A misnamed file (e.g. a PNG called .jpg): let Pillow sniff the real format.
        return _tidy(_decode_pil(data))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if reason.startswith("cannot identify image file"):
            reason = "not a known image format"  # Pillow's message names its in-memory buffer, not the file
        raise DataError(
            f"{path}: cannot decode image ({reason}); the file is truncated, corrupt or not an image"
        ) from None


def _decode_chunk_images(paths: Sequence[str]) -> list[torch.Tensor]:
    datas = [read_bytes(p) for p in paths]
    if decode_jpeg is not None and all(p.lower().endswith(_JPEG_EXTENSIONS) for p in paths):
        try:
            images = decode_jpeg(datas, mode=ImageReadMode.UNCHANGED)
            # CMYK JPEGs come back with 4 channels; only the RGB mode converts them properly.
            return [
                img if img.shape[0] != 4 else decode_jpeg(d, mode=ImageReadMode.RGB) for img, d in zip(images, datas)
            ]
        except RuntimeError:
            pass  # One bad file fails the batch; decoding one by one names it.
    return [decode_one(d, p) for d, p in zip(datas, paths)]


@dataclass(frozen=True)
class SizePolicy:
    """Either resize everything to `resize`, or insist every file has the size of `reference_file`."""

    size: tuple[int, int]
    resize: bool
    reference_file: str

    def apply(self, images: list[torch.Tensor], paths: Sequence[str]) -> list[torch.Tensor]:
        if self.resize:
            return [resize_images(img, self.size) for img in images]
        for img, path in zip(images, paths):
            if tuple(img.shape[-2:]) != self.size:
                raise DataError(
                    f"{path}: image is {img.shape[-2]}x{img.shape[-1]} (HxW) but {self.reference_file} is "
                    f"{self.size[0]}x{self.size[1]}; images of one data set must share a size: pass --resize H,W "
                    "(resize=(H, W)) to resize them all"
                )
        return images


def decode_files(paths: Sequence[str], policy: SizePolicy, channels: int, threads: int | None = None) -> torch.Tensor:
    """Decode many files into one uint8 (N, channels, H, W) tensor, in `paths` order.

    Chunks are decoded on a thread pool, each writing straight into its slice of the output
    (no final concatenation: a copy of the whole data set costs as much as decoding it).
    """
    out = torch.empty(len(paths), channels, *policy.size, dtype=torch.uint8)

    def work(start: int) -> None:
        chunk = paths[start : start + CHUNK]
        images = _decode_chunk_images(chunk)
        target = out[start : start + len(chunk)]
        if policy.resize and len({img.shape for img in images}) == 1:
            # One batched resize instead of one call per image (same result, several times faster).
            target.copy_(convert_channels(resize_images(torch.stack(images), policy.size), channels))
        else:
            torch.stack([convert_channels(img, channels) for img in policy.apply(images, chunk)], out=target)

    starts = range(0, len(paths), CHUNK)
    if len(starts) <= 1:
        for start in starts:
            work(start)
    else:
        with ThreadPoolExecutor(min(threads or default_threads(), len(starts))) as pool:
            list(pool.map(work, starts))
    return out


def decode_file(path: str, policy: SizePolicy, channels: int) -> torch.Tensor:
    """One file -> uint8 (channels, H, W) at the policy's size (streaming data sets decode this way)."""
    image = policy.apply([decode_one(read_bytes(path), path)], [path])[0]
    return convert_channels(image, channels)


def probe(path: str) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) from the file header only, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            grey = image.mode in _GREY_PIL_MODES
    except (OSError, ValueError, SyntaxError) as error:
        raise DataError(f"{path}: cannot read image header ({error}); the file is corrupt or not an image") from None
    return (1 if grey else 3), (height, width)
