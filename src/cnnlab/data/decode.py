"""Image files -> uint8 CHW tensors, fast enough for folders of tens of thousands of files.

Why this module exists: per-file PIL decoding of 50,000 small JPEGs takes tens of seconds. Here files
are read in chunks on a thread pool and each chunk of JPEGs is decoded by one batched libjpeg-turbo
call (`torchvision.io.decode_jpeg` on a list); both release the GIL, so threads scale. PNG and WebP go
through `torchvision.io.decode_image`; GIF, BMP, TIFF and PGM/PPM through Pillow (GIF because torchvision
decodes every frame of an animation, and only the first is used: 10,000 frames would be a bomb the header hides).

Channel policy (documented for users): alpha is dropped, 16-bit images keep their top 8 bits, and
every image is converted to one channel count: the requested `channels`, else the majority among
up to 64 files spread over the data set (read from headers only; ties go to RGB). Grey -> RGB
repeats the channel; RGB -> grey uses Pillow's luma weights.

Pixel limit: a file whose header declares more than `max_image_pixels()` pixels (default 89,478,485, Pillow's
own, 256 MiB as RGB) is refused before any pixel is decoded, because a 20000x20000 PNG of one colour is a few
hundred kB on disk and gigabytes in memory (a "decompression bomb"). Raise it with the environment variable
CNNLAB_MAX_PIXELS, or from code (a flag, a config field) by setting `cnnlab.data.decode.MAX_IMAGE_PIXELS`, which
wins over the variable; Pillow's own limit is raised with it, so Pillow never refuses what cnnlab allowed.
PNG, JPEG, GIF, WebP and BMP sizes are read by the small parsers here (microseconds a file); other formats'
through Pillow's header reader.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from cnnlab.errors import CnnlabError, ConfigError, DataError

try:  # Deprecated in torchvision 0.29 in favour of TorchCodec; Pillow takes over if it goes.
    from torchvision.io import ImageReadMode, decode_image, decode_jpeg
except ImportError:  # pragma: no cover - depends on the installed torchvision
    decode_image = decode_jpeg = None  # type: ignore[assignment]

IMAGE_EXTENSIONS = (
    ".png",
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".bmp",
    ".gif",
    ".webp",
    ".tif",
    ".tiff",
    ".pgm",
    ".ppm",
    ".pbm",
    ".pnm",
)
_JPEG_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
_TORCHVISION_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".webp")
_GREY_PIL_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")
CHUNK = 256
DEFAULT_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default: 256 MiB as 8-bit RGB
MAX_IMAGE_PIXELS: int | None = None  # set from code (a flag, a config field): wins over $CNNLAB_MAX_PIXELS
_PILLOW_OPEN = threading.Lock()  # Pillow's limit is a module global: swapped only while holding this


def is_image_file(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def max_image_pixels() -> int:
    """The pixel limit in force: MAX_IMAGE_PIXELS when code set it, else $CNNLAB_MAX_PIXELS (digits, `_` or `,`
    allowed), else DEFAULT_MAX_IMAGE_PIXELS."""
    if MAX_IMAGE_PIXELS is not None:
        if isinstance(MAX_IMAGE_PIXELS, bool) or not isinstance(MAX_IMAGE_PIXELS, int) or MAX_IMAGE_PIXELS < 1:
            raise ConfigError(f"max image pixels must be a whole number >= 1, got {MAX_IMAGE_PIXELS!r}")
        return MAX_IMAGE_PIXELS
    raw = os.environ.get("CNNLAB_MAX_PIXELS")
    text = raw.strip().replace("_", "").replace(",", "") if raw else ""
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(
            f"CNNLAB_MAX_PIXELS={raw!r}: expected a whole number of pixels >= 1 (default {DEFAULT_MAX_IMAGE_PIXELS:,})"
        )
    return int(text)


def check_pixels(width: int, height: int, path: str) -> None:
    """Refuse an image whose header declares more pixels than the limit, before its pixels are decoded."""
    limit = max_image_pixels()
    if width * height > limit:
        raise DataError(
            f"{path}: image is {width}x{height} ({width * height:,} pixels), over the limit of {limit:,} pixels "
            f"that guards against decompression bombs; if the image is genuine, raise it with "
            f"CNNLAB_MAX_PIXELS={width * height}"
        )


def sniff_format(head: bytes) -> str | None:
    """The image format from a file's first bytes ("png", "jpeg", ...), or None: files without an extension."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:2] == b"BM" and len(head) >= 26:
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n":
        return "pnm"
    return None


def _jpeg_size(data: bytes | bytearray) -> tuple[int, int] | None:
    """(width, height) from the first start-of-frame marker, skipping the segments before it."""
    start_of_frame = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        elif marker in start_of_frame:
            return (data[i + 7] << 8) | data[i + 8], (data[i + 5] << 8) | data[i + 6]
        else:
            i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    if chunk == b"VP8 " and len(data) >= 30:
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None


def header_size(data: bytes | bytearray) -> tuple[str, tuple[int, int] | None] | None:
    """(format, (width, height)) read from the header bytes alone; size None where only Pillow can tell."""
    head = bytes(data[:32])
    kind = sniff_format(head)
    if kind == "png" and head[12:16] == b"IHDR" and len(head) >= 24:
        return kind, (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
    if kind == "jpeg":
        return kind, _jpeg_size(data)
    if kind == "gif" and len(head) >= 10:
        return kind, (int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little"))
    if kind == "webp":
        return kind, _webp_size(head)
    if kind == "bmp":
        if int.from_bytes(head[14:18], "little") == 12:  # OS/2 core header: 16-bit sizes
            return kind, (int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little"))
        width, height = (int.from_bytes(head[at : at + 4], "little", signed=True) for at in (18, 22))
        return kind, (abs(width), abs(height))  # a negative height means rows stored top-down
    return (kind, None) if kind else None


def _open_with_limit(source: torch.Tensor | str, path: str) -> Image.Image:
    """Image.open (header only) of bytes or a file, with cnnlab's pixel limit in place of Pillow's own check,
    which would warn (a second stderr line) or refuse first."""
    limit = max_image_pixels()
    opened = source if isinstance(source, str) else io.BytesIO(source.numpy().tobytes())
    with _PILLOW_OPEN:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            image = Image.open(opened)
        finally:  # raised to ours, never lowered: Pillow re-checks GIF frames and TIFF tiles while loading
            Image.MAX_IMAGE_PIXELS = None if saved is None else max(saved, limit)
    try:
        check_pixels(*image.size, path)
    except DataError:
        image.close()
        raise
    return image


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
    """The file's bytes as a writable uint8 tensor (no copy: read straight into its buffer).

    The pixel limit is checked here, on the header, so no decoder ever sees a file over it (formats whose size
    only Pillow can read are checked when Pillow opens them).
    """
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
    header = header_size(buffer)  # ~3 us a file: up to ~20% on 32x32 JPEGs, less on larger
    if header is not None and header[1] is not None:
        check_pixels(*header[1], path)
    return torch.frombuffer(buffer, dtype=torch.uint8)


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    if image.mode.startswith("I"):
        array = (np.asarray(image).astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8)
    else:
        array = np.asarray(image.convert("L" if image.mode in _GREY_PIL_MODES else "RGB"))
    array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
    return torch.from_numpy(np.array(array, order="C"))  # a copy: Pillow's arrays are read-only


def _decode_pil(data: torch.Tensor, path: str) -> torch.Tensor:
    with _open_with_limit(data, path) as image:
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


def _decode_torchvision(data: torch.Tensor, path: str) -> torch.Tensor:
    image = decode_image(data, mode=ImageReadMode.UNCHANGED)
    if image.shape[-3] == 4 and path.lower().endswith(_JPEG_EXTENSIONS):  # CMYK: the 4th channel is no alpha
        image = decode_image(data, mode=ImageReadMode.RGB)
    return image


def _reason(error: Exception) -> str:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    if reason.startswith("cannot identify image file"):
        reason = "not a known image format"  # Pillow's message names its in-memory buffer, not the file
    return reason


def decode_one(data: torch.Tensor, path: str) -> torch.Tensor:
    """Bytes from `read_bytes` (which checked the pixel limit) -> uint8 (1 or 3, H, W); a DataError naming `path`
    when the file is not a readable image."""
    try:
        if decode_image is not None and path.lower().endswith(_TORCHVISION_EXTENSIONS):
            try:
                return _tidy(_decode_torchvision(data, path))
            except RuntimeError:
                pass  # A misnamed file (e.g. a PNG called .jpg): let Pillow sniff the real format.
        return _tidy(_decode_pil(data, path))
    except CnnlabError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(
            f"{path}: cannot decode image ({_reason(error)}); the file is truncated, corrupt or not an image"
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
    """(channels, (H, W)) from the file header only, without decoding the pixels (the pixel limit applies)."""
    try:
        if os.stat(path).st_size == 0:
            raise DataError(f"{path}: image file is empty; expected an image")
        with _open_with_limit(path, path) as image:
            width, height = image.size
            grey = image.mode in _GREY_PIL_MODES
    except CnnlabError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(
            f"{path}: cannot decode image ({_reason(error)}); the file is truncated, corrupt or not an image"
        ) from None
    return (1 if grey else 3), (height, width)


# -- bytes in memory (an upload to the server) ---------------------------------------------------------------------
_DECODER_SUFFIX = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}


def image_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) of encoded image bytes from their header alone (the small parsers, else Pillow's header
    reader): what a server checks against its pixel limit before a single pixel is decoded.

    Raises:
        DataError: empty bytes, or bytes no image header reader understands (one line naming `name`).
    """
    if not data:
        raise DataError(f"{name}: the image is empty; expected an image")
    header = header_size(data)
    if header is not None and header[1] is not None:
        return header[1]
    try:
        with _PILLOW_OPEN:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                image = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with image:
            return image.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(
            f"{name}: cannot decode image ({_reason(error)}); the upload is truncated, corrupt or not an image"
        ) from None


def decode_upload(data: bytes, name: str, max_pixels: int | None = None) -> torch.Tensor:
    """Encoded image bytes -> uint8 (1 or 3, H, W) at their own size, by `decode_one`, the decoder of files.

    The decoder is picked as for a file named by its real format (`name` may be any upload name, or none): a
    PNG upload is decoded exactly as `cnnlab predict` decodes `x.png`. The pixel limit (`max_pixels`, default
    `max_image_pixels()`) is checked on the header first, as `read_bytes` does for files.

    Raises:
        DataError: empty, not an image, truncated or corrupt, or over the pixel limit (naming `name`).
    """
    width, height = image_size(data, name)
    limit = max_pixels or max_image_pixels()
    if width * height > limit:
        raise DataError(
            f"{name}: image is {width}x{height} ({width * height:,} pixels), over the limit of {limit:,} pixels "
            "that guards against decompression bombs"
        )
    kind = sniff_format(bytes(data[:32]))
    path = name if is_image_file(name) or kind not in _DECODER_SUFFIX else f"{name}{_DECODER_SUFFIX[kind]}"
    try:
        return decode_one(torch.frombuffer(bytearray(data), dtype=torch.uint8), path)
    except DataError as error:
        message = str(error)
        raise DataError(name + message[len(path) :] if message.startswith(path) else message) from None


def decode_bytes(
    data: bytes, name: str, channels: int, size: tuple[int, int], max_pixels: int | None = None
) -> torch.Tensor:
    """Encoded image bytes -> uint8 (channels, H, W) = `size`, decoded, resized and converted in the order and by
    the functions `decode_files` applies to a file (antialiased resize first, then the channel conversion)."""
    image = decode_upload(data, name, max_pixels)
    return convert_channels(resize_images(image, tuple(size)), channels)
