"""Array-format readers: IDX (shipped MNIST + generated), CIFAR pickles, .npz (generated + PneumoniaMNIST)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch

from cnnlab.data import detect_format, load_dataset, mnist_path
from cnnlab.errors import DataError

from .conftest import SHARED_DATA

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray) -> bytes:
    return struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx(folder, images: np.ndarray, labels: np.ndarray, prefix="train", dotted=False, gz=False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sep = "." if dotted else "-"
    for kind, array in (("images", images), ("labels", labels)):
        name = f"{prefix}-{kind}{sep}idx{array.ndim}-ubyte" + (".gz" if gz else "")
        data = idx_bytes(array)
        (folder / name).write_bytes(gzip.compress(data) if gz else data)


def test_shipped_mnist_has_published_sizes_and_class_counts(mnist):
    assert mnist.format == "idx"
    assert (len(mnist.train), len(mnist.test)) == (60000, 10000)
    assert mnist.val is None
    assert mnist.class_counts() == {"train": MNIST_TRAIN_COUNTS, "test": MNIST_TEST_COUNTS}
    assert mnist.classes == [str(i) for i in range(10)]
    assert (mnist.in_channels, mnist.image_size) == (1, (28, 28))
    assert mnist.train.images.dtype == torch.uint8 and mnist.train.labels.dtype == torch.int64


def test_mnist_path_finds_the_shipped_folder():
    assert detect_format(mnist_path()) == "idx"
    assert (mnist_path() / "train-images-idx3-ubyte.gz").is_file()


def test_idx_raw_files_with_dotted_names(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    write_idx(tmp_path, images, np.array([0, 2, 1], dtype=np.uint8), dotted=True)
    splits = load_dataset(tmp_path, val_split=0)
    assert torch.equal(splits.train.images[:, 0], torch.from_numpy(images))
    assert splits.train.labels.tolist() == [0, 2, 1]
    assert splits.test is None


def test_idx_truncated_gzip_names_the_file(tmp_path):
    write_idx(tmp_path, np.zeros((4, 2, 2), np.uint8), np.zeros(4, np.uint8), gz=True)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-12])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_dataset(tmp_path)


def test_idx_size_disagreeing_with_header_names_the_file(tmp_path):
    write_idx(tmp_path, np.zeros((4, 2, 2), np.uint8), np.zeros(4, np.uint8))
    bad = tmp_path / "train-labels-idx1-ubyte"
    bad.write_bytes(bad.read_bytes()[:-1])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*truncated"):
        load_dataset(tmp_path)


def test_idx_bad_magic_names_the_file(tmp_path):
    write_idx(tmp_path, np.zeros((4, 2, 2), np.uint8), np.zeros(4, np.uint8))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x0d\x03" + b"\x00" * 28)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*magic.*0x00000803"):
        load_dataset(tmp_path)


def test_idx_set_with_only_two_labels_still_has_the_ten_mnist_classes(tmp_path):
    """An IDX folder is MNIST-style: a subset holding only 0s and 1s has 10 classes, not 2, named as before."""
    images, labels = np.zeros((4, 2, 2), np.uint8), np.array([0, 1, 1, 0], np.uint8)
    write_idx(tmp_path / "digits", images, labels)
    splits = load_dataset(tmp_path / "digits", val_split=0)
    assert splits.classes == [str(i) for i in range(10)]
    assert splits.num_classes == 10
    assert splits.train.classes == splits.classes

    write_idx(tmp_path / "fashion_mnist", images, labels)  # Fashion-MNIST keeps its garment names
    assert load_dataset(tmp_path / "fashion_mnist", val_split=0).classes[:2] == ["T-shirt/top", "Trouser"]

    write_idx(tmp_path / "wide", images, np.array([0, 11, 1, 0], np.uint8))  # beyond the 10 digits: an error
    with pytest.raises(DataError, match=r"label 11.*classes\.txt"):
        load_dataset(tmp_path / "wide", val_split=0)
    (tmp_path / "wide" / "classes.txt").write_text("\n".join(str(i) for i in range(12)))
    assert load_dataset(tmp_path / "wide", val_split=0).num_classes == 12


def test_idx_label_outside_declared_classes(tmp_path):
    write_idx(tmp_path / "fashion", np.zeros((2, 2, 2), np.uint8), np.array([3, 12], np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.*label 12"):
        load_dataset(tmp_path / "fashion")


def _write_pickle(path, obj) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def write_cifar10(folder, batches=2, per_batch=5, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Batches as the real files hold them: protocol-2 dicts with bytes keys, data (N, 3072) uint8."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    all_data, all_labels = [], []
    for name in [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        _write_pickle(
            folder / name, {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": []}
        )
        all_data.append(data)
        all_labels.append(labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _write_pickle(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072, b"num_cases_per_batch": per_batch})
    return np.concatenate(all_data), np.concatenate(all_labels)


def test_cifar10_pickles_in_the_real_layout(tmp_path):
    data, labels = write_cifar10(tmp_path / "cifar-10-batches-py")
    splits = load_dataset(tmp_path, val_split=0)
    assert splits.format == "cifar"
    assert splits.classes[:3] == ["airplane", "automobile", "bird"]
    assert (len(splits.train), len(splits.test)) == (10, 5)
    assert splits.train.labels.tolist() == labels[:10].tolist()
    # Row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32.
    image = splits.train.images[7]
    assert image[1, 3, 5] == data[7, 1024 + 3 * 32 + 5]
    assert torch.equal(splits.test.images.reshape(5, -1), torch.from_numpy(data[10:]))


def test_cifar100_uses_fine_labels(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 256, (6, 3072), dtype=np.uint8)
    fine = [0, 99, 5, 5, 1, 2]
    for name in ("train", "test"):
        _write_pickle(tmp_path / name, {b"data": data, b"fine_labels": fine, b"coarse_labels": [0] * 6})
    _write_pickle(tmp_path / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    splits = load_dataset(tmp_path, val_split=0)
    assert len(splits.classes) == 100 and splits.classes[99] == "c99"
    assert splits.train.labels.tolist() == fine


def test_cifar_pickle_cannot_run_code(tmp_path):
    write_cifar10(tmp_path / "c")

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    _write_pickle(tmp_path / "c" / "data_batch_2", Exploit())
    with pytest.raises(DataError, match="data_batch_2"):
        load_dataset(tmp_path / "c")


def test_cifar_batch_with_wrong_row_size_names_the_file(tmp_path):
    write_cifar10(tmp_path / "c")
    _write_pickle(tmp_path / "c" / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match="test_batch.*3072"):
        load_dataset(tmp_path / "c")


def write_npz(path, **arrays) -> None:
    np.savez_compressed(path, **arrays)


def test_npz_medmnist_layout_keeps_its_own_val_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 20), ("val", 6), ("test", 4)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (count, 9, 7), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 3, (count, 1), dtype=np.uint8)
    write_npz(tmp_path / "set.npz", classes=np.array(["a", "b", "c"]), **arrays)
    splits = load_dataset(tmp_path / "set.npz", val_split=0.5)
    assert splits.format == "npz" and splits.classes == ["a", "b", "c"]
    assert [len(s) for s in (splits.train, splits.val, splits.test)] == [20, 6, 4]
    assert splits.image_size == (9, 7) and splits.in_channels == 1
    assert torch.equal(splits.val.images[:, 0], torch.from_numpy(arrays["val_images"]))
    assert splits.val.labels.tolist() == arrays["val_labels"][:, 0].tolist()


def test_npz_rgb_channels_last_and_default_class_names(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 3), dtype=np.uint8)
    write_npz(tmp_path / "rgb.npz", train_images=images, train_labels=np.array([0, 1, 2, 3, 1]))
    splits = load_dataset(tmp_path / "rgb.npz", val_split=0)
    assert splits.classes == ["0", "1", "2", "3"]
    assert torch.equal(splits.train.images, torch.from_numpy(images).permute(0, 3, 1, 2))


def test_npz_label_outside_class_list_names_the_file(tmp_path):
    write_npz(
        tmp_path / "bad.npz",
        train_images=np.zeros((3, 2, 2), np.uint8),
        train_labels=np.array([0, 1, 2]),
        classes=np.array(["x", "y"]),
    )
    with pytest.raises(DataError, match=r"bad.npz.*label 2"):
        load_dataset(tmp_path / "bad.npz")


def test_npz_negative_label(tmp_path):
    write_npz(tmp_path / "neg.npz", train_images=np.zeros((2, 2, 2), np.uint8), train_labels=np.array([0, -1]))
    with pytest.raises(DataError, match=r"neg.npz.*label -1"):
        load_dataset(tmp_path / "neg.npz")


def test_npz_without_training_keys_lists_what_it_has(tmp_path):
    write_npz(tmp_path / "odd.npz", pixels=np.zeros((2, 2, 2), np.uint8))
    with pytest.raises(DataError, match=r"odd.npz.*train_images.*pixels"):
        load_dataset(tmp_path / "odd.npz")


def test_truncated_npz_names_the_file(tmp_path):
    write_npz(tmp_path / "cut.npz", train_images=np.zeros((50, 8, 8), np.uint8), train_labels=np.zeros(50, np.int64))
    data = (tmp_path / "cut.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.npz"):
        load_dataset(tmp_path / "cut.npz")


PNEUMONIA = SHARED_DATA / "medical" / "pneumoniamnist.npz"


@pytest.mark.skipif(not PNEUMONIA.is_file(), reason="shared/data/medical/pneumoniamnist.npz not present")
def test_pneumoniamnist_counts_match_sources():
    splits = load_dataset(PNEUMONIA)
    assert splits.class_counts() == {"train": [388, 3494], "val": [135, 389], "test": [234, 390]}
    assert (splits.in_channels, splits.image_size) == (1, (28, 28))


def test_channels_and_resize_apply_to_array_formats(tmp_path):
    write_idx(tmp_path, np.full((2, 4, 4), 200, np.uint8), np.array([0, 1], np.uint8))
    splits = load_dataset(tmp_path, val_split=0, channels=3, resize=8)
    assert splits.train.images.shape == (2, 3, 8, 8)
    assert int(splits.train.images.min()) == 200 == int(splits.train.images.max())
