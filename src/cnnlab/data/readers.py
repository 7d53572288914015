"""Readers for array formats: MNIST-style IDX files, CIFAR python pickles and NumPy .npz archives.

Each reader returns `(splits, classes)`: a dict split name ("train", "val", "test") -> ImageSet
and the class names. Headers and sizes are checked before the bytes are trusted, so a truncated
or corrupt file is a DataError naming that file rather than a reshape error deep in numpy.
"""

from __future__ import annotations

import gzip
import pickle
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.decode import convert_channels, resize_images
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import DataError

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


def finish_images(images: torch.Tensor, channels: int | None, size: tuple[int, int] | None) -> torch.Tensor:
    """Apply the requested channel count and size to a whole uint8 (N, C, H, W) array, in chunks."""
    if channels is not None:
        images = convert_channels(images, channels)
    if size is not None and tuple(images.shape[-2:]) != size:
        images = torch.cat([resize_images(images[i : i + 4096], size) for i in range(0, len(images), 4096)])
    return images


def check_labels(labels: np.ndarray, num_classes: int, source: str) -> None:
    """Labels must index the class list: a DataError naming the file shows the first bad one."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DataError(
            f"{source}: label {int(labels[bad[0]])} (item {int(bad[0])}) is outside the {num_classes} classes; "
            f"expected labels 0..{num_classes - 1}"
        )


def read_class_file(folder: Path) -> list[str] | None:
    """Optional `classes.txt` (one name per line) next to the data: names for numeric labels."""
    path = folder / "classes.txt"
    if not path.is_file():
        return None
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def default_classes(max_label: int) -> list[str]:
    return [str(i) for i in range(max_label + 1)]


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)


def find_idx_file(folder: Path, prefixes: Sequence[str], kind: str) -> Path | None:
    """`train-images-idx3-ubyte[.gz]`, also the dotted `train-images.idx3-ubyte` naming."""
    rank = "3" if kind == "images" else "1"
    pattern = re.compile(rf"^(.*[-_])?({'|'.join(prefixes)})-{kind}[-.]idx{rank}-ubyte(\.gz)?$", re.IGNORECASE)
    matches = sorted(p for p in folder.iterdir() if p.is_file() and pattern.match(p.name))
    return matches[0] if matches else None


def _read_raw(path: Path) -> bytes:
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot read ({error}); the file is truncated or not gzip data") from None


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An unsigned-byte IDX array of `ndim` dimensions (magic 0x0000080N), checked against its header."""
    raw = _read_raw(path)
    header = 4 + 4 * ndim
    expected_magic = 0x800 + ndim
    if len(raw) < header:
        raise DataError(f"{path}: {len(raw)} bytes is too short for an IDX header; the file is truncated")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: IDX magic number is 0x{magic:08x}; expected 0x{expected_magic:08x} "
            f"(unsigned bytes, {ndim} dimensions) — not an MNIST-style {'image' if ndim == 3 else 'label'} file"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    needed = header + int(np.prod(dims))
    if len(raw) != needed:
        raise DataError(
            f"{path}: holds {len(raw)} bytes but its header ({' x '.join(map(str, dims))}) needs {needed}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


IDX_MIN_CLASSES = 10  # an IDX folder is MNIST-style: the 10 digits, or Fashion-MNIST's 10 garments


def idx_classes(folder: Path, max_label: int) -> list[str]:
    """Class names of an IDX folder: `classes.txt` when present, Fashion-MNIST's names in a folder called *fashion*,
    else "0", "1", ... for max(10, max_label + 1) classes: a subset holding only some digits (labels 0 and 1, say)
    still has MNIST's 10 classes, so its models and reports line up with the full set's."""
    named = read_class_file(folder)
    if named is not None:
        return named
    if any("fashion" in part.lower() for part in folder.resolve().parts[-2:]):
        return list(FASHION_CLASSES)
    return default_classes(max(max_label + 1, IDX_MIN_CLASSES) - 1)


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
        if len(images) != len(labels):
            raise DataError(f"{images_path}: {len(images)} images but {labels_path} has {len(labels)} labels")
        arrays[split] = (images, labels, images_path, labels_path)
    if not arrays:
        raise DataError(f"{folder}: no train-images-idx3-ubyte[.gz] with train-labels-idx1-ubyte[.gz] found")
    classes = idx_classes(folder, max(int(arr[1].max(initial=0)) for arr in arrays.values()))
    splits = {}
    for split, (images, labels, images_path, labels_path) in arrays.items():
        check_labels(labels, len(classes), str(labels_path))
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
    labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise DataError(
            f"{path}: 'data' is {data.dtype} {data.shape} with {len(labels)} labels; expected uint8 (N, 3072) "
            "rows of 32x32 RGB planes, one per label"
        )
    return data.reshape(-1, 3, 32, 32), labels


def resolve_cifar_folder(path: Path) -> Path:
    for name in ("cifar-10-batches-py", "cifar-100-python"):
        if (path / name).is_dir():
            return path / name
    return path


def is_cifar_folder(path: Path) -> bool:
    path = resolve_cifar_folder(path)
    return (path / "data_batch_1").is_file() or ((path / "train").is_file() and (path / "meta").is_file())


def read_cifar_folder(
    folder: Path, channels: int | None = None, size: tuple[int, int] | None = None
) -> tuple[Splits, list[str]]:
    """CIFAR-10 (data_batch_1..5, test_batch, batches.meta) or CIFAR-100 (train, test, meta; fine labels)."""
    folder = resolve_cifar_folder(folder)
    if (folder / "data_batch_1").is_file():
        train_files = sorted(folder.glob("data_batch_*"), key=lambda p: int(re.sub(r"\D", "", p.name) or 0))
        test_file, meta_file, label_key, names_key = (
            folder / "test_batch",
            folder / "batches.meta",
            "labels",
            "label_names",
        )
    elif (folder / "train").is_file():
        train_files = [folder / "train"]
        test_file, meta_file, label_key, names_key = folder / "test", folder / "meta", "fine_labels", "fine_label_names"
    else:
        raise DataError(f"{folder}: no CIFAR batches; expected data_batch_1..5 + test_batch or train + test + meta")
    parts = {"train": [_cifar_batch(p, label_key) for p in train_files]}
    if test_file.is_file():
        parts["test"] = [_cifar_batch(test_file, label_key)]
    classes = _cifar_classes(meta_file, names_key, max(int(lbl.max(initial=0)) for b in parts.values() for _, lbl in b))
    splits = {}
    for split, batches in parts.items():
        labels = np.concatenate([labels for _, labels in batches])
        source = str(train_files[0] if split == "train" else test_file)
        check_labels(labels, len(classes), source)
        images = finish_images(torch.from_numpy(np.concatenate([data for data, _ in batches])), channels, size)
        splits[split] = ImageSet(images, labels, classes, source)
    return splits, classes


def _cifar_classes(meta_file: Path, key: str, max_label: int) -> list[str]:
    if not meta_file.is_file():
        return default_classes(max_label)
    meta = load_pickle(meta_file)
    if key not in meta:
        raise DataError(f"{meta_file}: missing key {key!r}; the file has keys {sorted(meta)}")
    return [_text(name) for name in meta[key]]  # type: ignore[union-attr]


# ---------------------------------------------------------------- NumPy .npz (MedMNIST layout)

_NPZ_KEYS = {
    "train": (("train_images", "train_labels"), ("x_train", "y_train"), ("images", "labels")),
    "val": (("val_images", "val_labels"), ("x_val", "y_val")),
    "test": (("test_images", "test_labels"), ("x_test", "y_test")),
}


def _npz_images(array: np.ndarray, source: str) -> torch.Tensor:
    """(N,H,W), (N,H,W,C) or (N,C,H,W) of uint8, bool, or floats in [0,1] / [0,255] -> uint8 (N,C,H,W)."""
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4):
        array = array.transpose(0, 3, 1, 2)
    elif not (array.ndim == 4 and array.shape[1] in (1, 3, 4)):
        raise DataError(f"{source}: images have shape {array.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W)")
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise DataError(f"{source}: pixel values span {low}..{high}; expected uint8 0..255 or floats in 0..1")
        scale = 255.0 if np.issubdtype(array.dtype, np.floating) and high <= 1.0 else 1.0
        array = np.rint(array.astype(np.float64) * scale).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(array))


def _npz_labels(array: np.ndarray, count: int, source: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or len(array) != count:
        raise DataError(
            f"{source}: labels have shape {array.shape} for {count} images; expected one integer per image, "
            "(N,) or (N, 1) (multi-label / one-hot labels are not supported)"
        )
    if not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.number) or not np.all(np.mod(array, 1) == 0):
            raise DataError(f"{source}: labels are {array.dtype} values; expected integer class indices")
    return array.astype(np.int64)


def read_npz(path: Path, channels: int | None = None, size: tuple[int, int] | None = None) -> tuple[Splits, list[str]]:
    """train_/val_/test_ images and labels (MedMNIST), also Keras' x_train/y_train naming."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            contents = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"{path}: cannot read .npz archive ({error}); the file is truncated or corrupt") from None
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, candidates in _NPZ_KEYS.items():
        for images_key, labels_key in candidates:
            if images_key in contents and labels_key in contents:
                source = f"{path} [{images_key}]"
                images = _npz_images(contents[images_key], source)
                arrays[split] = (images, _npz_labels(contents[labels_key], len(images), f"{path} [{labels_key}]"))
                break
    if "train" not in arrays:
        raise DataError(
            f"{path}: no training arrays; expected keys train_images + train_labels (and optionally val_*/test_*), "
            f"the archive has keys {sorted(contents)}"
        )
    classes = _npz_classes(contents, max(int(labels.max(initial=0)) for _, labels in arrays.values()))
    splits = {}
    for split, (images, labels) in arrays.items():
        check_labels(labels, len(classes), f"{path} [{split} labels]")
        splits[split] = ImageSet(finish_images(images, channels, size), labels, classes, str(path))
    return splits, classes


def _npz_classes(contents: dict[str, np.ndarray], max_label: int) -> list[str]:
    for key in ("classes", "label_names", "class_names"):
        if key in contents:
            return [str(name) for name in contents[key].reshape(-1)]
    return default_classes(max_label)
