"""Bad data the readers must refuse or report, never silently turn into a different data set.

Labels outside the declared classes, two spellings of one CSV label, links out of a data folder and loops,
files without an image extension, hidden files, and decompression bombs refused before decoding.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.data import decode, load_dataset
from cnnlab.data.decode import DEFAULT_MAX_IMAGE_PIXELS, header_size, max_image_pixels, probe, read_bytes
from cnnlab.errors import ConfigError, DataError

from .conftest import write_class_folder, write_image
from .test_readers import write_cifar10, write_idx

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def png_bomb(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 1-bit PNG of zeros: 400 million pixels in about 50 kB (0.5 s to write)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def write_manifest(folder: Path, rows: list[str], header: str = "path,label") -> Path:
    path = folder / "m.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# ---------------------------------------------------------------- labels outside the declared classes


def test_idx_label_200_is_an_error_not_a_201_class_model(tmp_path):
    write_idx(tmp_path / "digits", np.zeros((4, 2, 2), np.uint8), np.array([0, 9, 200, 1], np.uint8))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte: label 200 \(item 2\).*10 classes.*classes\.txt"):
        load_dataset(tmp_path / "digits")


def test_idx_classes_txt_declares_more_classes_and_bounds_them(tmp_path):
    folder = tmp_path / "letters"
    write_idx(folder, np.zeros((3, 2, 2), np.uint8), np.array([0, 11, 1], np.uint8))
    (folder / "classes.txt").write_text("\n".join(f"c{i}" for i in range(12)) + "\n")
    assert load_dataset(folder, val_split=0).num_classes == 12
    (folder / "classes.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"label 11.*2 classes declared in .*classes\.txt"):
        load_dataset(folder)
    (folder / "classes.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match=r"classes\.txt: class name 'a' appears twice \(classes 0 and 2\)"):
        load_dataset(folder)
    (folder / "classes.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"classes\.txt: declares no class names"):
        load_dataset(folder)


def test_idx_ignores_macos_appledouble_files(tmp_path):
    write_idx(tmp_path, np.zeros((2, 2, 2), np.uint8), np.array([0, 1], np.uint8))
    (tmp_path / "._train-images-idx3-ubyte").write_bytes(b"\x00\x05\x16\x07 Mac OS X metadata")
    assert len(load_dataset(tmp_path, val_split=0).train) == 2


def test_idx_gzip_longer_than_its_header_is_refused_without_reading_it_all(tmp_path):
    import gzip

    header = struct.pack(">IIII", 0x803, 2, 2, 2)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + bytes(8 + 50_000_000)))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 2) + b"\x00\x01")
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte.gz: holds more than the 24 bytes its header \(2 x 2 x 2\) declares"
    ):
        load_dataset(tmp_path)


def test_idx_header_claiming_terabytes_is_not_read(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 2**31, 2**16, 2**16))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 2) + b"\x00\x01")
    with pytest.raises(DataError, match=r"holds 16 bytes but its header.*truncated"):
        load_dataset(tmp_path)


def test_idx_without_images_is_an_error(tmp_path):
    write_idx(tmp_path, np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: holds 0 images"):
        load_dataset(tmp_path)


def _write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def test_cifar10_without_meta_has_10_classes_and_bounds_labels(tmp_path):
    write_cifar10(tmp_path / "c")
    (tmp_path / "c" / "batches.meta").unlink()
    assert load_dataset(tmp_path / "c", val_split=0).num_classes == 10
    data = np.zeros((2, 3072), np.uint8)
    _write_pickle(tmp_path / "c" / "data_batch_2", {b"data": data, b"labels": [3, 10]})
    with pytest.raises(DataError, match=r"data_batch_2: label 10 \(item 1\) is outside the 10 classes of CIFAR-10"):
        load_dataset(tmp_path / "c")


def test_cifar_label_outside_meta_names_the_batch(tmp_path):
    write_cifar10(tmp_path / "c")
    _write_pickle(tmp_path / "c" / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 200]})
    with pytest.raises(DataError, match=r"test_batch: label 200 .*named in .*batches\.meta"):
        load_dataset(tmp_path / "c")


def test_cifar_fractional_or_text_labels_are_errors_not_truncated(tmp_path):
    write_cifar10(tmp_path / "c")
    _write_pickle(tmp_path / "c" / "data_batch_2", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0.0, 1.5]})
    with pytest.raises(DataError, match=r"data_batch_2 \[labels\]: labels are float64 values"):
        load_dataset(tmp_path / "c")
    _write_pickle(tmp_path / "c" / "data_batch_2", {b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]})
    with pytest.raises(DataError, match=r"data_batch_2 \[labels\]: labels are <U1 values"):
        load_dataset(tmp_path / "c")


def test_cifar_stray_batch_copy_is_not_read_twice(tmp_path):
    write_cifar10(tmp_path / "c", batches=2, per_batch=5)
    (tmp_path / "c" / "data_batch_1.bak").write_bytes((tmp_path / "c" / "data_batch_1").read_bytes())
    assert len(load_dataset(tmp_path / "c", val_split=0).train) == 10


def test_npz_gap_in_labels_without_a_class_list_is_an_error(tmp_path):
    labels = np.array([0, 1, 2, 200, 1])
    np.savez(tmp_path / "set.npz", train_images=np.zeros((5, 4, 4), np.uint8), train_labels=labels)
    with pytest.raises(DataError, match=r"set.npz \[train_labels\]: label 200 \(item 3\).*no image has label 3"):
        load_dataset(tmp_path / "set.npz")
    classes = np.array([f"c{i}" for i in range(201)])
    np.savez(tmp_path / "set.npz", train_images=np.zeros((5, 4, 4), np.uint8), train_labels=labels, classes=classes)
    assert load_dataset(tmp_path / "set.npz", val_split=0).num_classes == 201


def test_npz_huge_label_is_an_error_not_a_huge_class_list(tmp_path):
    labels = np.array([0, 1, 2**40])
    np.savez(tmp_path / "set.npz", train_images=np.zeros((3, 4, 4), np.uint8), train_labels=labels)
    with pytest.raises(DataError, match=r"label 1099511627776"):
        load_dataset(tmp_path / "set.npz")


def test_npz_whole_float_and_bool_labels_are_fine_fractions_and_nan_are_not(tmp_path):
    images = np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "f.npz", train_images=images, train_labels=np.array([0.0, 1.0, 1.0]))
    assert load_dataset(tmp_path / "f.npz", val_split=0).train.labels.tolist() == [0, 1, 1]
    np.savez(tmp_path / "b.npz", train_images=images, train_labels=np.array([True, False, True]))
    assert load_dataset(tmp_path / "b.npz", val_split=0).train.labels.tolist() == [1, 0, 1]
    for bad in ([0.0, 1.5, 1.0], [0.0, np.nan, 1.0]):
        np.savez(tmp_path / "x.npz", train_images=images, train_labels=np.array(bad))
        with pytest.raises(DataError, match=r"x.npz \[train_labels\]: labels are float64 values"):
            load_dataset(tmp_path / "x.npz")


def test_npz_nan_pixels_empty_images_and_duplicate_class_names(tmp_path):
    images = np.zeros((3, 4, 4), np.float32)
    images[1, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", train_images=images, train_labels=np.array([0, 1, 1]))
    with pytest.raises(DataError, match=r"nan.npz \[train_images\]: image 1 holds NaN"):
        load_dataset(tmp_path / "nan.npz")
    np.savez(tmp_path / "empty.npz", train_images=np.zeros((0, 4, 4), np.uint8), train_labels=np.zeros(0, np.int64))
    with pytest.raises(DataError, match=r"empty.npz \[train_images\]: images have shape \(0, 1, 4, 4\)"):
        load_dataset(tmp_path / "empty.npz")
    np.savez(
        tmp_path / "dup.npz",
        train_images=np.zeros((2, 4, 4), np.uint8),
        train_labels=np.array([0, 1]),
        classes=np.array(["cat", "cat"]),
    )
    with pytest.raises(DataError, match=r"dup.npz \[classes\]: class name 'cat' appears twice"):
        load_dataset(tmp_path / "dup.npz")


# ---------------------------------------------------------------- CSV labels


def test_csv_one_number_spelled_two_ways_is_refused_naming_both(tmp_path):
    for i in range(3):
        write_image(tmp_path / f"{i}.png", np.zeros((2, 2), np.uint8))
    manifest = write_manifest(tmp_path, ["0.png,1", "1.png,2", "2.png,01"])
    with pytest.raises(DataError, match=r"m.csv: labels '1' \(line 2\) and '01' \(line 4\) spell the same number"):
        load_dataset(manifest)
    with pytest.raises(DataError, match=r"'1' \(line 2\) and '1.0' \(line 3\)"):
        load_dataset(write_manifest(tmp_path, ["0.png,1", "1.png,1.0"]))
    splits = load_dataset(write_manifest(tmp_path, ["0.png,01", "1.png,02", "2.png,10"]), val_split=0)
    assert splits.classes == ["01", "02", "10"]  # one spelling each: names kept as written, sorted as numbers


def test_csv_file_listed_twice_with_another_label_or_split(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"m.csv, line 3: .*a.png is listed again \(line 2: 'cat' in train"):
        load_dataset(write_manifest(tmp_path, ["a.png,cat", "a.png,dog"]))
    with pytest.raises(DataError, match=r"line 3: .*'cat' in test\); a file has one label and one split"):
        load_dataset(write_manifest(tmp_path, ["a.png,cat,train", "a.png,cat,test"], "path,label,split"))
    assert len(load_dataset(write_manifest(tmp_path, ["a.png,cat", "a.png,cat"]), val_split=0).train) == 2


def test_csv_path_that_is_a_folder(tmp_path):
    (tmp_path / "img").mkdir()
    with pytest.raises(DataError, match=r"m.csv, line 2: image file .*img is a folder, not an image file"):
        load_dataset(write_manifest(tmp_path, ["img,cat"]))


# ---------------------------------------------------------------- folders: links, hidden files, other files


def test_link_outside_the_data_folder_is_not_followed_and_is_reported(tmp_path, capsys):
    write_class_folder(tmp_path / "set", {"a": 2, "b": 2})
    write_class_folder(tmp_path / "elsewhere", {"c": 3})
    os.symlink(tmp_path / "elsewhere" / "c", tmp_path / "set" / "a" / "more")
    os.symlink(tmp_path / "elsewhere" / "c" / "000.png", tmp_path / "set" / "b" / "x.png")
    os.symlink(tmp_path / "elsewhere" / "c", tmp_path / "set" / "c")
    splits = load_dataset(tmp_path / "set", val_split=0)
    assert splits.classes == ["a", "b"] and splits.class_counts() == {"train": [2, 2]}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnlab: warning: 3 symbolic links not followed: ")
    assert "outside" in err[0] and "set/a/more -> " in err[0]


def test_link_inside_the_data_folder_is_followed(tmp_path, capsys):
    write_class_folder(tmp_path / "set", {"a": 2, "b": 2})
    write_class_folder(tmp_path / "set" / "extra", {"a2": 3})  # a class "extra" with images below
    os.symlink(tmp_path / "set" / "extra" / "a2", tmp_path / "set" / "a" / "more")
    assert load_dataset(tmp_path / "set", val_split=0).class_counts() == {"train": [5, 2, 3]}
    assert capsys.readouterr().err == ""


def test_symlink_loops_end_with_a_warning_not_a_hang(tmp_path, capsys):
    write_class_folder(tmp_path / "set", {"a": 2, "b": 2})
    os.symlink(tmp_path / "set" / "a", tmp_path / "set" / "a" / "self")
    os.symlink(tmp_path / "set", tmp_path / "set" / "b" / "root")
    os.symlink(tmp_path / "set" / "b" / "loop2", tmp_path / "set" / "b" / "loop1")
    os.symlink(tmp_path / "set" / "b" / "loop1", tmp_path / "set" / "b" / "loop2")
    start = time.perf_counter()
    splits = load_dataset(tmp_path / "set", val_split=0)
    assert time.perf_counter() - start < 10
    assert splits.class_counts() == {"train": [2, 2]}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnlab: warning: 4 symbolic links not followed")
    assert "loops back" in err[0]


def test_files_without_an_image_extension_are_counted_hidden_files_are_not(tmp_path, capsys):
    root = tmp_path / "set"
    write_class_folder(root, {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("x")
    (root / "b" / "labels.json").write_text("{}")
    (root / "b" / "README").write_text("not an image")
    (root / "a" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    write_image(root / "a" / ".ipynb_checkpoints" / "000-checkpoint.png", np.zeros((8, 6, 3), np.uint8))
    write_image(root / ".hidden_class" / "0.png", np.zeros((8, 6, 3), np.uint8))
    write_image(root / "__MACOSX" / "a" / "0.png", np.zeros((8, 6, 3), np.uint8))
    (root / "b" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    splits = load_dataset(root, val_split=0)
    assert splits.classes == ["a", "b"] and splits.class_counts() == {"train": [2, 2]}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"cnnlab: note: 3 files without an image extension skipped ({root}/a/notes.txt, "
        f"{root}/b/README, {root}/b/labels.json)"
    ]


def test_file_without_extension_is_sniffed(tmp_path, capsys):
    root = tmp_path / "faces"
    write_class_folder(root, {"ann": 2, "bob": 2})
    (root / "ann" / "photo_3").write_bytes((root / "ann" / "000.png").read_bytes())
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 6, 3), 9, np.uint8)).save(buffer, "JPEG")
    (root / "bob" / "photo_4").write_bytes(buffer.getvalue())
    splits = load_dataset(root, val_split=0)
    assert splits.class_counts() == {"train": [3, 3]}
    assert capsys.readouterr().err == ""


def test_class_folder_with_only_other_files_names_them(tmp_path):
    write_class_folder(tmp_path / "set", {"a": 2})
    (tmp_path / "set" / "b").mkdir()
    (tmp_path / "set" / "b" / "x.txt").write_text("x")
    with pytest.raises(DataError, match=r"set/b: class folder holds no images; .*it holds only .*b/x\.txt"):
        load_dataset(tmp_path / "set")


def test_two_folders_for_one_split_is_an_error(tmp_path):
    write_class_folder(tmp_path / "set" / "train", {"a": 2, "b": 2})
    write_class_folder(tmp_path / "set" / "val", {"a": 1, "b": 1})
    write_class_folder(tmp_path / "set" / "validation", {"a": 1, "b": 1})
    with pytest.raises(DataError, match=r"set: folders val/ and validation/ both hold the val split"):
        load_dataset(tmp_path / "set")


def test_class_folders_1_and_01_are_refused(tmp_path):
    write_class_folder(tmp_path / "set", {"1": 1, "01": 1, "2": 1})
    with pytest.raises(DataError, match=r"labels '01' \(folder 01/\) and '1' \(folder 1/\) spell the same number"):
        load_dataset(tmp_path / "set")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads unreadable folders")
def test_unreadable_sub_folder_is_an_error_not_a_silent_skip(tmp_path):
    write_class_folder(tmp_path / "set", {"a": 2, "b": 2})
    (tmp_path / "set" / "a" / "deeper").mkdir()
    (tmp_path / "set" / "a" / "deeper").chmod(0)
    try:
        with pytest.raises(DataError, match=r"deeper: cannot list folder"):
            load_dataset(tmp_path / "set")
    finally:
        (tmp_path / "set" / "a" / "deeper").chmod(0o755)


# ---------------------------------------------------------------- decompression bombs and the pixel limit


def test_png_bomb_is_refused_from_its_header_before_decoding(tmp_path):
    bomb = png_bomb(tmp_path / "set" / "a" / "bomb.png")
    write_class_folder(tmp_path / "set", {"b": 1})
    assert bomb.stat().st_size < 100_000
    start = time.perf_counter()
    with pytest.raises(
        DataError,
        match=r"bomb.png: image is 20000x20000 \(400,000,000 pixels\), over the limit of "
        r"89,478,485 pixels .*CNNLAB_MAX_PIXELS=400000000",
    ):
        load_dataset(tmp_path / "set")
    with pytest.raises(DataError, match=r"bomb.png: image is 20000x20000"):
        read_bytes(str(bomb))
    assert time.perf_counter() - start < 5


def _encoded(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_header_sizes_match_pillow(fmt):
    for shape in ((7, 300, 3), (300, 7, 3), (1, 1, 3)):
        data = _encoded(np.zeros(shape, np.uint8), fmt)
        assert header_size(bytearray(data))[1] == (shape[1], shape[0])


def test_jpeg_size_comes_from_the_frame_not_an_exif_thumbnail():
    exif = Image.Exif()
    exif[0x010E] = "x" * 3000  # a long description: the frame header sits after a 3 kB APP1 segment
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(buffer, "JPEG", exif=exif)
    assert header_size(bytearray(buffer.getvalue())) == ("jpeg", (70, 40))


def test_the_limit_can_be_raised_and_lowered(tmp_path, monkeypatch):
    write_class_folder(tmp_path / "set", {"a": 2, "b": 2}, size=(100, 100))
    assert max_image_pixels() == DEFAULT_MAX_IMAGE_PIXELS == 89_478_485
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "9_999")
    with pytest.raises(DataError, match=r"000.png: image is 100x100 \(10,000 pixels\), over the limit of 9,999"):
        load_dataset(tmp_path / "set")
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "10000")
    assert load_dataset(tmp_path / "set", val_split=0).image_size == (100, 100)
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", 9_999)  # set from code: wins over the variable
    with pytest.raises(DataError, match=r"over the limit of 9,999"):
        load_dataset(tmp_path / "set")
    monkeypatch.setattr(decode, "MAX_IMAGE_PIXELS", None)
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match=r"CNNLAB_MAX_PIXELS='lots': expected a whole number of pixels >= 1"):
        load_dataset(tmp_path / "set")


@pytest.mark.parametrize("ext", ["tif", "ppm"])
def test_pillow_only_formats_obey_the_limit_not_pillows(tmp_path, monkeypatch, recwarn, ext):
    write_class_folder(tmp_path / "set", {"a": 2, "b": 2}, size=(100, 100), ext=ext)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow alone would warn at 1000, refuse at 2000
    splits = load_dataset(tmp_path / "set", val_split=0)
    assert splits.image_size == (100, 100)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setenv("CNNLAB_MAX_PIXELS", "5000")
    with pytest.raises(DataError, match=rf"000.{ext}: image is 100x100 \(10,000 pixels\), over the limit of 5,000"):
        load_dataset(tmp_path / "set")


def test_probe_of_a_bomb_is_a_data_error(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png", 15000, 15000)
    with pytest.raises(DataError, match=r"bomb.png: image is 15000x15000"):
        probe(str(bomb))


def test_grey_images_through_pillow_decode_without_warnings(tmp_path, recwarn):
    write_image(tmp_path / "set" / "a" / "0.bmp", np.full((5, 4), 77, np.uint8))
    write_image(tmp_path / "set" / "b" / "0.bmp", np.full((5, 4), 78, np.uint8))
    splits = load_dataset(tmp_path / "set", val_split=0)
    assert splits.train.images[:, 0, 0, 0].tolist() == [77, 78]
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_cmyk_jpeg_decodes_alike_one_by_one_and_in_batches(tmp_path):
    cmyk = Image.new("CMYK", (6, 4), (0, 255, 255, 0))  # pure red
    cmyk.save(tmp_path / "red.jpg")
    from cnnlab.data.decode import decode_one

    one = decode_one(read_bytes(str(tmp_path / "red.jpg")), str(tmp_path / "red.jpg"))
    pixel = one[:, 2, 3].tolist()
    assert pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60
    write_class_folder(tmp_path / "set", {"b": 1}, size=(4, 6), ext="jpg")
    (tmp_path / "set" / "a").mkdir()
    (tmp_path / "set" / "a" / "red.jpg").write_bytes((tmp_path / "red.jpg").read_bytes())
    batch = load_dataset(tmp_path / "set", val_split=0).train.images[0]
    assert torch.equal(batch, one)


def test_animated_gif_decodes_its_first_frame_only(tmp_path):
    """torchvision would decode every frame (a bomb the header hides); Pillow reads the first."""
    frames = [Image.fromarray(np.full((30, 40), i % 250, np.uint8)) for i in range(300)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    from cnnlab.data.decode import decode_one

    image = decode_one(read_bytes(str(tmp_path / "anim.gif")), str(tmp_path / "anim.gif"))
    assert image.shape[-2:] == (30, 40) and int(image.max()) == 0
