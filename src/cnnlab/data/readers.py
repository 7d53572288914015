"""Readers for array formats: MNIST-style IDX files, CIFAR python pickles and NumPy .npz archives.

Each reader returns `(splits, classes)`: a dict split name ("train", "val", "test") -> ImageSet
and the class names. Headers and sizes are checked before the bytes are trusted, so a truncated
or corrupt file is a DataError naming that file rather than a reshape error deep in numpy.
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from cnnlab.data.decode import convert_channels, resize_images
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import ConfigError, DataError

Splits = dict[str, ImageSet]
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_IDX_SPLITS = {"train": ("train",), "test": ("t10k", "test")}


def parse_resize(resize: int | Sequence[int] | None) -> tuple[int, ...] | None:
    """`resize` as given: one number (a square, or a cube for volumes), (H, W), or (D, H, W); positive ints."""
    if resize is None:
        return None
    size = (resize,) if isinstance(resize, int) else tuple(resize)
    if not 1 <= len(size) <= 3 or not all(isinstance(v, (int, np.integer)) and v >= 1 for v in size):
        raise ConfigError(f"resize must be N, H,W or D,H,W positive ints, got {resize!r}")
    return tuple(int(v) for v in size)


def spatial_size(resize: tuple[int, ...] | None, rank: int, source: str) -> tuple[int, ...] | None:
    """The (H, W) or (D, H, W) that `resize` means for data of `rank` spatial axes (2: images, 3: volumes).

    One number is a square or a cube; two numbers are only for images and three only for volumes, because
    guessing the missing depth (or dropping one) would silently train on another shape than the one asked for.
    """
    if resize is None:
        return None
    if len(resize) == 1:
        return resize * rank
    if len(resize) != rank:
        given = ",".join(map(str, resize))
        wanted = "D,H,W (or one number for a cube)" if rank == 3 else "H,W (or one number for a square)"
        kind = "3-D volumes" if rank == 3 else "2-D images"
        raise ConfigError(f"resize: {source} holds {kind}; expected {wanted}, got {given}")
    return resize


def cast_pixels(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Float results (resized, converted) back to `dtype`: integers rounded and clamped to the dtype's range."""
    if dtype.is_floating_point:
        return values.to(dtype)
    info = torch.iinfo(dtype)
    return values.round_().clamp_(info.min, info.max).to(dtype)


def convert_image_channels(images: torch.Tensor, target: int) -> torch.Tensor:
    """(N, C, ...) of any dtype -> `target` channels: alpha dropped, grey repeated, RGB -> luma (ITU-R BT.601)."""
    if images.dtype == torch.uint8 and images.ndim == 4:
        return convert_channels(images, target)  # the integer luma every uint8 image path shares
    count = images.shape[1]
    if count in (2, 4):
        images, count = images[:, : count - 1], count - 1
    if count == target:
        return images
    if count == 1 and target == 3:
        return images.expand(-1, 3, *images.shape[2:]).contiguous()
    if count == 3 and target == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, *[1] * (images.ndim - 2))
        return cast_pixels((images.to(torch.float32) * weights).sum(1, keepdim=True), images.dtype)
    raise DataError(f"cannot convert {count}-channel images to {target} channels")


_RESIZE_ELEMENTS = 2**26  # elements per interpolation chunk: 256 MiB of float32, whatever the item size


def resize_pixels(images: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(N, C, H, W) or (N, C, D, H, W) of any dtype to `size`, in chunks; a no-op at the right size.

    uint8 images go through the same antialiased resize as image files; other dtypes are interpolated in
    float32 (bilinear with antialiasing for images, trilinear for volumes, as `torch.nn.functional.interpolate`
    offers it) and cast back, so 16-bit data keeps its range.
    """
    if tuple(images.shape[2:]) == tuple(size):
        return images
    per_item = max(1, math.prod(images.shape[1:]), images.shape[1] * math.prod(size))
    step = max(1, _RESIZE_ELEMENTS // per_item)
    parts = []
    for start in range(0, len(images), step):
        chunk = images[start : start + step]
        if chunk.dtype == torch.uint8 and chunk.ndim == 4:
            parts.append(resize_images(chunk, size))  # type: ignore[arg-type]
            continue
        mode = "bilinear" if chunk.ndim == 4 else "trilinear"
        values = F.interpolate(
            chunk.to(torch.float32), size=tuple(size), mode=mode, align_corners=False, antialias=chunk.ndim == 4
        )
        parts.append(cast_pixels(values, chunk.dtype))
    return torch.cat(parts)


def finish_images(images: torch.Tensor, channels: int | None, size: tuple[int, ...] | None) -> torch.Tensor:
    """Apply the requested channel count and size to a whole (N, C, H, W) or (N, C, D, H, W) array, in chunks.

    `size` is (H, W) for images and (D, H, W) for volumes (see `spatial_size`).
    """
    if channels is not None:
        images = convert_image_channels(images, channels)
    if size is not None:
        images = resize_pixels(images, size)
    return images


def check_labels(labels: np.ndarray, num_classes: int, source: str, origin: str = "") -> None:
    """Labels must index the class list: a DataError naming the file shows the first bad one.

    Args:
        origin: where the class list comes from, for the message ("declared in data/classes.txt").
    """
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        where = f" {origin}" if origin else ""
        raise DataError(
            f"{source}: label {int(labels[bad[0]])} (item {int(bad[0])}) is outside the {num_classes} classes"
            f"{where}; expected labels 0..{num_classes - 1}"
        )


def check_class_names(names: list[str], source: str) -> list[str]:
    """A declared class list: at least one name, none twice (a repeated name would make two classes of one)."""
    if not names:
        raise DataError(f"{source}: declares no class names; expected one name per class")
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise DataError(f"{source}: class {i} has an empty name")
        if name in first:
            raise DataError(f"{source}: class name {name!r} appears twice (classes {first[name]} and {i})")
        first[name] = i
    return names


def read_class_file(folder: Path) -> list[str] | None:
    """Optional `classes.txt` (one name per line, label 0 first) next to the data: names for numeric labels."""
    path = folder / "classes.txt"
    if not path.is_file():
        return None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read class names ({error})") from None
    return check_class_names([line.strip() for line in text.splitlines() if line.strip()], str(path))


def integer_labels(array: np.ndarray, source: str) -> np.ndarray:
    """Class indices as int64; floats only when whole (1.0), never truncated (1.5 is an error, not class 1)."""
    if array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        floating = np.issubdtype(array.dtype, np.floating)
        if not (floating and np.all(np.isfinite(array)) and np.all(np.abs(array) < 2**62) and np.all(array % 1 == 0)):
            raise DataError(f"{source}: labels are {array.dtype} values; expected integer class indices")
    return array.astype(np.int64)


def default_classes(max_label: int) -> list[str]:
    return [str(i) for i in range(max_label + 1)]


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


def find_idx_file(folder: Path, prefixes: Sequence[str], kind: str) -> Path | None:
    """`train-images-idx3-ubyte[.gz]`, also the dotted `train-images.idx3-ubyte` naming (hidden files such as
    macOS's `._train-images-idx3-ubyte.gz` are not candidates)."""
    rank = "3" if kind == "images" else "1"
    pattern = re.compile(rf"^(.*[-_])?({'|'.join(prefixes)})-{kind}[-.]idx{rank}-ubyte(\.gz)?$", re.IGNORECASE)
    found = (p for p in folder.iterdir() if not p.name.startswith(".") and pattern.match(p.name) and p.is_file())
    matches = sorted(found)
    return matches[0] if matches else None


def _open_idx(path: Path) -> BinaryIO:
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _idx_dims(path: Path, head: bytes, ndim: int) -> tuple[int, ...]:
    expected_magic = 0x800 + ndim
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: {len(head)} bytes is too short for an IDX header; the file is truncated")
    magic = int.from_bytes(head[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: IDX magic number is 0x{magic:08x}; expected 0x{expected_magic:08x} "
            f"(unsigned bytes, {ndim} dimensions) — not an MNIST-style {'image' if ndim == 3 else 'label'} file"
        )
    return struct.unpack(f">{ndim}I", head[4:])


def _idx_body(handle: BinaryIO, header: int, needed: int) -> tuple[bytes, int]:
    """The body and its size; a plain file whose size already disagrees with its header is not read."""
    if not isinstance(handle, gzip.GzipFile):
        size = os.fstat(handle.fileno()).st_size - header
        if size != needed:
            return b"", size
    body = handle.read(needed + 1)  # one byte more tells a stream longer than its header says
    return body, len(body)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array of `ndim` dimensions (magic 0x0000080N), checked against its header.

    The body is read up to what the header declares plus one byte, so neither a gzip bomb nor a header that
    claims terabytes is read into memory before the sizes disagree.
    """
    header = 4 + 4 * ndim
    try:
        with _open_idx(path) as handle:
            dims = _idx_dims(path, handle.read(header), ndim)
            needed = math.prod(dims)
            body, size = _idx_body(handle, header, needed)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error}); the file is truncated or not gzip data") from None
    shape = " x ".join(map(str, dims))
    if size < needed:
        raise DataError(
            f"{path}: holds {header + size} bytes but its header ({shape}) needs {header + needed}; "
            "the file is truncated or corrupt"
        )
    if size > needed:
        raise DataError(f"{path}: holds more than the {header + needed} bytes its header ({shape}) declares; corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


IDX_CLASSES = 10  # an IDX folder is MNIST-style: the 10 digits, or Fashion-MNIST's 10 garments
_IDX_ORIGIN = "of an MNIST-style idx set (a classes.txt beside the files, one name a line, declares others)"


def idx_classes(folder: Path) -> tuple[list[str], str]:
    """Class names of an IDX folder and where they come from: `classes.txt` when present, Fashion-MNIST's names in
    a folder called *fashion*, else the 10 digits "0".."9". A subset holding only some digits (labels 0 and 1, say)
    still has MNIST's 10 classes, so its models and reports line up with the full set's; a label beyond the
    classes is an error (a corrupt label 200 must not make a 201-class model)."""
    named = read_class_file(folder)
    if named is not None:
        return named, f"declared in {folder / 'classes.txt'}"
    if any("fashion" in part.lower() for part in folder.resolve().parts[-2:]):
        return list(FASHION_CLASSES), _IDX_ORIGIN.replace("an MNIST-style idx set", "Fashion-MNIST")
    return default_classes(IDX_CLASSES - 1), _IDX_ORIGIN


def _check_idx_images(images: np.ndarray, path: Path) -> None:
    if len(images) == 0 or 0 in images.shape[1:]:
        raise DataError(f"{path}: holds {len(images)} images of {images.shape[1]}x{images.shape[2]}; expected some")


def read_idx_folder(
    folder: Path, channels: int | None = None, size: tuple[int, int] | None = None
) -> tuple[Splits, list[str]]:
    """A folder of MNIST-style IDX files: train-* and (optionally) t10k-*/test-* pairs."""
    arrays: dict[str, tuple[np.ndarray, np.ndarray, Path, Path]] = {}
    for split, prefixes in _IDX_SPLITS.items():
        images_path, labels_path = find_idx_file(folder, prefixes, "images"), find_idx_file(folder, prefixes, "labels")
        if images_path is None and labels_path is None:
            continue
        if images_path is None or labels_path is None:
            present = images_path or labels_path
            raise DataError(
                f"{present}: found without its {'labels' if labels_path is None else 'images'} file in {folder}"
            )
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        _check_idx_images(images, images_path)
        if len(images) != len(labels):
            raise DataError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels")
        arrays[split] = (images, labels, images_path, labels_path)
    if not arrays:
        raise DataError(f"{folder}: no train-images-idx3-ubyte[.gz] with train-labels-idx1-ubyte[.gz] found")
    classes, origin = idx_classes(folder)
    splits = {}
    for split, (images, labels, images_path, labels_path) in arrays.items():
        check_labels(labels, len(classes), str(labels_path), origin)
        tensor = finish_images(torch.from_numpy(images.copy()).unsqueeze(1), channels, size)
        splits[split] = ImageSet(tensor, labels.astype(np.int64), classes, str(images_path))
    return splits, classes


# ---------------------------------------------------------------- CIFAR-10 / CIFAR-100 python pickles


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickle only numpy arrays and plain containers: a data file must not be able to run code."""

    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> type:
        if (module, name) in self._allowed:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _text(value: object) -> str:
    return value.decode("latin1") if isinstance(value, bytes) else str(value)


def load_pickle(path: Path) -> dict[str, object]:
    """A CIFAR pickle (python 2 or 3) as a dict with str keys."""
    try:
        with open(path, "rb") as handle:
            data = _ArrayUnpickler(handle, encoding="latin1").load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"{path}: cannot read CIFAR pickle ({error}); the file is truncated or corrupt") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a pickled dict with 'data' and 'labels', got {type(data).__name__}")
    return {_text(key): value for key, value in data.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = load_pickle(path)
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(f"{path}: missing key {key!r}; the file has keys {sorted(batch)}")
    data = np.asarray(batch["data"])
    try:
        labels = np.asarray(batch[label_key]).reshape(-1)
    except (ValueError, TypeError) as error:
        raise DataError(f"{path}: {label_key!r} is not a list of class indices ({error})") from None
    labels = integer_labels(labels, f"{path} [{label_key}]")
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(
            f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels; expected uint8 (N, 3072) "
            "rows of 32x32 RGB planes, one per label"
        )
    if len(data) == 0:
        raise DataError(f"{path}: the batch holds no images")
    return data.reshape(-1, 3, 32, 32), labels


def resolve_cifar_folder(path: Path) -> Path:
    for name in ("cifar-10-batches-py", "cifar-100-python"):
        if (path / name).is_dir():
            return path / name
    return path


def is_cifar_folder(path: Path) -> bool:
    path = resolve_cifar_folder(path)
    return (path / "data_batch_1").is_file() or ((path / "train").is_file() and (path / "meta").is_file())


@dataclass(frozen=True)
class _CifarLayout:
    train_files: list[Path]
    test_file: Path
    meta_file: Path
    label_key: str
    names_key: str
    num_classes: int  # when the meta file is missing


def _cifar_layout(folder: Path) -> _CifarLayout:
    """CIFAR-10's files (data_batch_<n> only: a stray `data_batch_1.bak` would count twice) or CIFAR-100's."""
    if (folder / "data_batch_1").is_file():
        batches = [p for p in folder.iterdir() if re.fullmatch(r"data_batch_\d+", p.name) and p.is_file()]
        batches.sort(key=lambda p: int(p.name.rsplit("_", 1)[1]))
        return _CifarLayout(batches, folder / "test_batch", folder / "batches.meta", "labels", "label_names", 10)
    if (folder / "train").is_file():
        return _CifarLayout(
            [folder / "train"], folder / "test", folder / "meta", "fine_labels", "fine_label_names", 100
        )
    raise DataError(f"{folder}: no CIFAR batches; expected data_batch_1..5 + test_batch or train + test + meta")


def read_cifar_folder(
    folder: Path, channels: int | None = None, size: tuple[int, int] | None = None
) -> tuple[Splits, list[str]]:
    """CIFAR-10 (data_batch_1..5, test_batch, batches.meta) or CIFAR-100 (train, test, meta; fine labels)."""
    layout = _cifar_layout(resolve_cifar_folder(folder))
    files = {"train": layout.train_files}
    if layout.test_file.is_file():
        files["test"] = [layout.test_file]
    classes, origin = _cifar_classes(layout)
    splits = {}
    for split, paths in files.items():
        batches = [_cifar_batch(p, layout.label_key) for p in paths]
        for path, (_, labels) in zip(paths, batches):
            check_labels(labels, len(classes), str(path), origin)
        labels = np.concatenate([labels for _, labels in batches])
        images = finish_images(torch.from_numpy(np.concatenate([data for data, _ in batches])), channels, size)
        splits[split] = ImageSet(images, labels, classes, str(paths[0]))
    return splits, classes


def _cifar_classes(layout: _CifarLayout) -> tuple[list[str], str]:
    """Names from the meta file, else CIFAR-10's 10 or CIFAR-100's 100 unnamed classes (never max label + 1)."""
    meta_file, key = layout.meta_file, layout.names_key
    if not meta_file.is_file():
        return default_classes(layout.num_classes - 1), f"of CIFAR-{layout.num_classes} ({meta_file.name} is absent)"
    meta = load_pickle(meta_file)
    if key not in meta:
        raise DataError(f"{meta_file}: missing key {key!r}; the file has keys {sorted(meta)}")
    if not isinstance(meta[key], (list, tuple, np.ndarray)):
        raise DataError(f"{meta_file}: {key!r} is a {type(meta[key]).__name__}; expected a list of class names")
    names = [_text(name) for name in meta[key]]  # type: ignore[union-attr]
    return check_class_names(names, f"{meta_file} [{key}]"), f"named in {meta_file}"


# ---------------------------------------------------------------- NumPy .npz (MedMNIST layout)

_NPZ_KEYS = {
    "train": (("train_images", "train_labels"), ("x_train", "y_train"), ("images", "labels")),
    "val": (("val_images", "val_labels"), ("x_val", "y_val")),
    "test": (("test_images", "test_labels"), ("x_test", "y_test")),
}


_CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA: what an image axis of this length is taken to be
_VOLUME_CHANNELS = (1, 3)


def _npz_layout(array: np.ndarray, source: str) -> np.ndarray:
    """Images as (N, C, H, W), volumes as (N, C, D, H, W): see `read_npz` for how the shape decides."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        if array.shape[-1] in _CHANNEL_COUNTS:
            return array.transpose(0, 3, 1, 2)
        return array if array.shape[1] in _CHANNEL_COUNTS else array[:, None]  # (N, D, H, W) volumes
    if array.ndim == 5:
        if array.shape[-1] in _VOLUME_CHANNELS:
            return array.transpose(0, 4, 1, 2, 3)
        if array.shape[1] in _VOLUME_CHANNELS:
            return array
    raise DataError(
        f"{source}: images have shape {array.shape}; expected images (N, H, W), (N, H, W, C) or (N, C, H, W), "
        "or volumes (N, D, H, W), (N, D, H, W, C) or (N, C, D, H, W) with C = 1 or 3"
    )


def _npz_images(array: np.ndarray, source: str) -> np.ndarray:
    """An npz image array in (N, C, H, W) or (N, C, D, H, W) layout, its dtype not yet chosen."""
    array = _npz_layout(array, source)
    if array.size == 0:
        raise DataError(f"{source}: images have shape {array.shape}; expected at least one image of at least 1x1")
    integer, floating = np.issubdtype(array.dtype, np.integer), np.issubdtype(array.dtype, np.floating)
    if not (integer or floating or array.dtype == np.bool_):
        raise DataError(f"{source}: images are {array.dtype} values; expected integer or float pixels")
    if floating and not np.all(np.isfinite(array)):
        bad = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])
        raise DataError(f"{source}: image {bad} holds NaN or infinite pixel values")
    return array


_KEPT_INTEGERS = (np.uint8, np.uint16, np.int16, np.int32)


def _pixel_dtype(arrays: list[np.ndarray], source: str) -> np.dtype:
    """One dtype for every split, the narrowest that keeps the pixels: 16-bit data keeps its full range.

    uint8, uint16 and int16 stay as they are; other integers go to the narrowest of uint8, uint16, int16 and
    int32 that holds their values; bool becomes 0/255; floats all in [0, 1] become uint8 (value x 255, as 8-bit
    images saved as floats are), other finite floats stay float32 in their own units (HU, say). The range is
    that of all splits together, so train and test are never normalised in different units.
    """
    kinds = {array.dtype for array in arrays}
    if len(kinds) == 1 and next(iter(kinds)) in (np.bool_, np.uint8, np.uint16, np.int16):
        return np.dtype(np.uint8) if next(iter(kinds)) == np.bool_ else next(iter(kinds))
    low = min(float(array.min()) for array in arrays)
    high = max(float(array.max()) for array in arrays)
    if any(np.issubdtype(array.dtype, np.floating) for array in arrays):
        return np.dtype(np.uint8 if 0 <= low and high <= 1 and _all_float(arrays) else np.float32)
    for dtype in _KEPT_INTEGERS:
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise DataError(f"{source}: pixel values span {int(low)}..{int(high)}; expected values that fit 32-bit integers")


def _all_float(arrays: list[np.ndarray]) -> bool:
    return all(np.issubdtype(array.dtype, np.floating) for array in arrays)


def _as_pixels(array: np.ndarray, dtype: np.dtype) -> torch.Tensor:
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * (255 if dtype == np.uint8 else 1)
    elif dtype == np.uint8 and np.issubdtype(array.dtype, np.floating):
        array = np.rint(array.astype(np.float64) * 255.0)
    return torch.from_numpy(np.ascontiguousarray(array.astype(dtype, copy=False)))


def _npz_labels(array: np.ndarray, count: int, source: str) -> np.ndarray:
    """int64 class indices (N,) from (N,) or (N, 1); float32 multi-hot targets (N, L) from (N, L > 1) of 0/1."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 2 and array.shape[1] > 1 and len(array) == count:
        return _multi_hot(array, source)
    if array.ndim != 1 or len(array) != count:
        raise DataError(
            f"{source}: labels have shape {array.shape} for {count} images; expected one integer per image, "
            "(N,) or (N, 1), or multi-label 0/1 columns (N, L)"
        )
    return integer_labels(array, source)


def _multi_hot(array: np.ndarray, source: str) -> np.ndarray:
    """(N, L) of 0/1 (bool, integer or whole floats) -> float32; any other value names its item and label."""
    numeric = np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    if not (numeric or array.dtype == np.bool_):
        raise DataError(f"{source}: labels are {array.dtype} values; expected 0/1 per label")
    bad = np.argwhere((array != 0) & (array != 1))
    if len(bad):
        item, label = (int(v) for v in bad[0])
        value = array[item, label]
        shown = int(value) if np.isfinite(value) and float(value).is_integer() else float(value)
        raise DataError(
            f"{source}: labels {tuple(array.shape)} hold value {shown} at item {item} (label {label}); "
            "a multi-label array holds 0 or 1 per label"
        )
    return array.astype(np.float32)


def read_npz(
    path: Path, channels: int | None = None, size: int | Sequence[int] | None = None
) -> tuple[Splits, list[str]]:
    """train_/val_/test_ images and labels (MedMNIST 2-D and 3-D), also Keras' x_train/y_train naming.

    The images' shape says what they are. 3-D arrays are grey images (N, H, W). A 4-D array whose last axis
    (else whose second axis) is 1, 3 or 4 long holds images with channels, (N, H, W, C) or (N, C, H, W);
    any other 4-D array holds volumes (N, D, H, W), as MedMNIST's 3-D sets (N, 28, 28, 28) do. 5-D arrays are
    volumes with 1 or 3 channels, (N, D, H, W, C) or (N, C, D, H, W). The rule is ambiguous for volumes of 1, 3
    or 4 slices ((N, 3, 64, 64) reads as RGB images): save such volumes 5-D, (N, 1, D, H, W).

    The labels' shape says the task: (N,) or (N, 1) integers are one class per image; (N, L) with L > 1 of 0/1
    values are multi-label targets, returned as float32 (N, L) (a label no training image has is allowed).

    Class names come from a `classes` (or `label_names`, `class_names`) array (multi-label: one name per
    column); without one, single-label classes are 0..largest label, and every one of them must be used: a
    gap (labels 0..9 and one 200) is a corrupt label, not 191 empty classes; multi-label columns are "0".."L-1".

    Args:
        size: the `resize` request: one number (a square or a cube), H,W for images, D,H,W for volumes.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: cannot read .npz archive ({error}); the file is truncated or corrupt") from None
    raw: dict[str, tuple[np.ndarray, np.ndarray, str]] = {}
    for split, candidates in _NPZ_KEYS.items():
        for images_key, labels_key in candidates:
            if images_key in contents and labels_key in contents:
                images = _npz_images(contents[images_key], f"{path} [{images_key}]")
                labels_source = f"{path} [{labels_key}]"
                raw[split] = (images, _npz_labels(contents[labels_key], len(images), labels_source), labels_source)
                break
    if "train" not in raw:
        raise DataError(
            f"{path}: no training arrays; expected keys train_images + train_labels (and optionally val_*/test_*), "
            f"the archive has keys {sorted(contents)}"
        )
    _check_same_kind(raw, path)
    dtype = _pixel_dtype([images for images, _, _ in raw.values()], str(path))
    arrays = {split: (_as_pixels(images, dtype), values, source) for split, (images, values, source) in raw.items()}
    labels = {source: values for _, values, source in arrays.values()}
    multi_label = next(iter(labels.values())).ndim == 2
    if multi_label:
        classes, origin = _multi_label_classes(contents, labels, path)
    else:
        classes, origin = _npz_classes(contents, labels, path)
    rank = arrays["train"][0].ndim - 2
    target_size = spatial_size(parse_resize(size), rank, str(path))
    splits = {}
    for split, (images, values, source) in arrays.items():
        if not multi_label:
            check_labels(values, len(classes), source, origin)
        splits[split] = ImageSet(finish_images(images, channels, target_size), values, classes, str(path))
    return splits, classes


def _check_same_kind(arrays: dict[str, tuple[np.ndarray, np.ndarray, str]], path: Path) -> None:
    """Every split holds the training split's kind of images (2-D or 3-D, channels) and of labels."""
    train_images, train_labels, train_source = arrays["train"]
    for split, (images, labels, source) in arrays.items():
        if images.ndim != train_images.ndim or images.shape[1] != train_images.shape[1]:
            raise DataError(
                f"{path}: {split} images are {tuple(images.shape)} but train images are {tuple(train_images.shape)}; "
                "every split must hold the same kind of image"
            )
        if labels.shape[1:] != train_labels.shape[1:]:
            raise DataError(
                f"{source}: labels have shape {labels.shape} but {train_source} has {train_labels.shape}; every "
                "split must have the same kind of labels"
            )


def _multi_label_classes(
    contents: dict[str, np.ndarray], labels: dict[str, np.ndarray], path: Path
) -> tuple[list[str], str]:
    """One name per label column: from the archive's class-name array, else "0".."L-1"."""
    columns = next(iter(labels.values())).shape[1]
    for key in ("classes", "label_names", "class_names"):
        if key in contents:
            names = check_class_names([str(name).strip() for name in contents[key].reshape(-1)], f"{path} [{key}]")
            if len(names) != columns:
                raise DataError(
                    f"{path} [{key}]: names {len(names)} classes but the labels have {columns} columns (multi-label: "
                    "one name per column)"
                )
            return names, f"named in its {key!r} array"
    return default_classes(columns - 1), "of the archive (one per label column)"


def _npz_classes(contents: dict[str, np.ndarray], labels: dict[str, np.ndarray], path: Path) -> tuple[list[str], str]:
    """The archive's class names, else 0..largest label when each of those is used (see `read_npz`)."""
    for key in ("classes", "label_names", "class_names"):
        if key in contents:
            names = [str(name).strip() for name in contents[key].reshape(-1)]
            return check_class_names(names, f"{path} [{key}]"), f"named in its {key!r} array"
    for source, values in labels.items():
        negative = np.flatnonzero(values < 0)
        if len(negative):
            item = int(negative[0])
            raise DataError(f"{source}: label {int(values[item])} (item {item}) is negative; expected 0, 1, ...")
    used = np.unique(np.concatenate(list(labels.values())))
    largest = int(used[-1])
    if largest + 1 != len(used):
        unused = int(np.flatnonzero(used != np.arange(len(used)))[0])
        source, values = next((s, v) for s, v in labels.items() if largest in v)
        raise DataError(
            f"{source}: label {largest} (item {int(np.flatnonzero(values == largest)[0])}) is used but no image has "
            f"label {unused}; without a 'classes' array an npz has the classes 0..largest label, each in use, so "
            "this label looks corrupt; add a 'classes' array naming every class if it is not"
        )
    return default_classes(largest), "of the archive (0..largest label)"
