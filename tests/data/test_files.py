"""Image-file readers: class folders, train/test folder layouts, CSV manifests, and bad files."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from cnnlab.data import load_dataset, make_batches
from cnnlab.errors import DataError

from .conftest import SHARED_DATA, write_class_folder, write_image

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def test_class_folders_load_exact_png_pixels(tmp_path):
    arrays = write_class_folder(tmp_path / "set", {"cat": 3, "ant": 2, "bee": 4})
    splits = load_dataset(tmp_path / "set", val_split=0)
    assert splits.format == "folder"
    assert splits.classes == ["ant", "bee", "cat"]
    assert splits.class_counts() == {"train": [2, 4, 3]}
    assert (splits.in_channels, splits.image_size) == (3, (8, 6))
    first_cat = splits.train.images[6]
    assert torch.equal(first_cat, torch.from_numpy(arrays["cat"][0]).permute(2, 0, 1))


def test_mixed_formats_and_nested_files(tmp_path):
    root = tmp_path / "set"
    write_class_folder(root, {"a": 2}, ext="jpg")
    write_class_folder(root, {"b": 1}, ext="bmp")
    write_image(root / "b" / "deeper" / "x.ppm", np.zeros((8, 6, 3), np.uint8))
    write_image(root / "b" / "y.webp", np.zeros((8, 6, 3), np.uint8))
    (root / "a" / "notes.txt").write_text("not an image")
    splits = load_dataset(root, val_split=0)
    assert splits.class_counts() == {"train": [2, 3]}


def test_train_test_layout_inside_a_wrapper_folder(tmp_path):
    write_class_folder(tmp_path / "wrap" / "CIFAR-like" / "train", {"x": 10, "y": 10})
    write_class_folder(tmp_path / "wrap" / "CIFAR-like" / "test", {"x": 2, "y": 3})
    (tmp_path / "wrap" / "README.md").write_text("hi")
    splits = load_dataset(tmp_path / "wrap", val_split=0.2, seed=1)
    assert splits.class_counts() == {"train": [8, 8], "val": [2, 2], "test": [2, 3]}


def test_grey_and_rgb_mix_follows_majority_or_request(tmp_path):
    root = tmp_path / "mix"
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    for i in range(3):
        write_image(root / "a" / f"{i}.png", rgb)
    write_image(root / "a" / "grey.png", np.full((4, 4), 77, np.uint8))
    splits = load_dataset(root, val_split=0)
    assert splits.in_channels == 3
    assert splits.train.images[3].unique().tolist() == [77]  # grey replicated to R, G and B
    grey = load_dataset(root, val_split=0, channels=1)
    assert grey.in_channels == 1
    assert grey.train.images[0].unique().tolist() == [76]  # Pillow's luma of pure red


def test_different_sizes_need_resize(tmp_path):
    root = tmp_path / "sizes"
    write_image(root / "a" / "0.png", np.zeros((8, 8, 3), np.uint8))
    write_image(root / "a" / "1.png", np.zeros((10, 12, 3), np.uint8))
    with pytest.raises(DataError, match=r"1\.png.*10x12.*0\.png.*8x8.*--resize"):
        load_dataset(root)
    splits = load_dataset(root, val_split=0, resize=(5, 7))
    assert splits.train.images.shape == (2, 3, 5, 7)


def test_corrupt_image_names_the_file(tmp_path):
    root = tmp_path / "bad"
    write_class_folder(root, {"a": 3}, ext="jpg")
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        load_dataset(root)


def test_truncated_image_names_the_file(tmp_path):
    root = tmp_path / "cut"
    write_class_folder(root, {"a": 2, "b": 2}, size=(32, 32), ext="jpg")
    target = root / "b" / "001.jpg"
    target.write_bytes(target.read_bytes()[:200])
    with pytest.raises(DataError, match="001.jpg"):
        load_dataset(root)


def test_empty_class_folder_names_it(tmp_path):
    write_class_folder(tmp_path / "set", {"a": 2})
    (tmp_path / "set" / "empty_class").mkdir()
    with pytest.raises(DataError, match="empty_class.*no images"):
        load_dataset(tmp_path / "set")


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(DataError, match="nowhere"):
        load_dataset(tmp_path / "nowhere")
    write_class_folder(tmp_path / "set", {"a": 2})
    with pytest.raises(DataError, match="unknown data format 'hdf5'"):
        load_dataset(tmp_path / "set", format="hdf5")
    (tmp_path / "data.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="data.bin"):
        load_dataset(tmp_path / "data.bin")


def test_streaming_matches_in_memory(tmp_path):
    write_class_folder(tmp_path / "set", {"a": 5, "b": 6})
    memory = load_dataset(tmp_path / "set", val_split=0.2)
    stream = load_dataset(tmp_path / "set", val_split=0.2, max_in_memory_bytes=0)
    assert memory.train.in_memory and not stream.train.in_memory
    assert stream.train.paths == memory.train.paths and stream.image_size == memory.image_size
    assert torch.equal(stream.val.materialize().images, memory.val.images)
    assert stream.info() == memory.info()
    for split in ("train", "val"):
        (x1, y1), (x2, y2) = (next(iter(make_batches(s.splits()[split], 100))) for s in (memory, stream))
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def write_manifest(tmp_path, rows: list[str], header="path,label,split"):
    (tmp_path / "m.csv").write_text("\n".join([header, *rows]) + "\n")
    return tmp_path / "m.csv"


def test_csv_manifest_with_splits_and_relative_paths(tmp_path):
    for i in range(6):
        write_image(tmp_path / "img" / f"{i}.png", np.full((4, 4), i * 10, np.uint8))
    rows = ["img/0.png,dog,train", "img/1.png,cat,train", "img/2.png,dog,train", "img/3.png,cat,val"]
    rows += ["img/4.png,dog,test", f"{tmp_path / 'img' / '5.png'},cat,test"]
    splits = load_dataset(write_manifest(tmp_path, rows))
    assert splits.format == "csv" and splits.classes == ["cat", "dog"]
    assert splits.class_counts() == {"train": [1, 2], "val": [1, 0], "test": [1, 1]}
    assert splits.test.images[:, 0, 0, 0].tolist() == [40, 50]


def test_csv_numeric_labels_sort_as_numbers(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", np.zeros((2, 2), np.uint8))
    splits = load_dataset(write_manifest(tmp_path, ["0.png,10", "1.png,2", "2.png,1"], "path,label"), val_split=0)
    assert splits.classes == ["1", "2", "10"]
    assert splits.train.labels.tolist() == [2, 1, 0]


def test_csv_missing_column_lists_the_columns(tmp_path):
    csv_path = write_manifest(tmp_path, ["a.png,1"], header="file,label")
    with pytest.raises(DataError, match=r"m.csv.*missing column 'path'.*file, label"):
        load_dataset(csv_path)


def test_csv_missing_image_and_unknown_label(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"m.csv, line 3.*gone.png"):
        load_dataset(write_manifest(tmp_path, ["a.png,x,train", "gone.png,x,train"]))
    with pytest.raises(DataError, match=r"m.csv.*'zebra'.*classes"):
        load_dataset(write_manifest(tmp_path, ["a.png,zebra,train"]), classes=["cat", "dog"])
    with pytest.raises(DataError, match=r"m.csv, line 2.*'holdout'"):
        load_dataset(write_manifest(tmp_path, ["a.png,x,holdout"]))


def test_separate_test_path_reindexes_classes_by_name(tmp_path):
    write_class_folder(tmp_path / "train", {"a": 4, "b": 4, "c": 4})
    write_class_folder(tmp_path / "test", {"c": 2, "b": 1})
    splits = load_dataset(tmp_path / "train", test_path=tmp_path / "test", val_split=0)
    assert splits.test.classes == ["a", "b", "c"]
    assert splits.class_counts()["test"] == [0, 1, 2]
    write_class_folder(tmp_path / "other", {"z": 1})
    with pytest.raises(DataError, match=r"other.*'z'"):
        load_dataset(tmp_path / "train", test_path=tmp_path / "other")


CIFAR_JPG = SHARED_DATA / "cifar10-jpg" / "CIFAR-10-images-jpg.tar.gz"


@pytest.mark.skipif(not CIFAR_JPG.is_file(), reason="shared/data/cifar10-jpg not present")
def test_real_cifar10_jpeg_subset(tmp_path):
    """A slice of the real archive (8 files per class and split) in its own layout."""
    taken: dict[str, int] = {}
    with tarfile.open(CIFAR_JPG) as archive:
        members = []
        for member in archive:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[-1].endswith(".jpg"):
                key = "/".join(parts[1:3])
                if taken.get(key, 0) < 8:
                    taken[key] = taken.get(key, 0) + 1
                    members.append(member)
        archive.extractall(tmp_path, members=members, filter="data")
    splits = load_dataset(tmp_path, val_split=0.25)
    assert splits.classes[:2] == ["airplane", "automobile"] and len(splits.classes) == 10
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 20, 80)
    assert (splits.in_channels, splits.image_size) == (3, (32, 32))
