"""Bad-input cases: data sets in every format (idx, cifar, npz, folder, csv) and images given to `predict`.

Missing, empty, truncated and corrupt files, wrong shapes and dtypes, mixed sizes, labels outside the declared
classes (an idx label 200 must not make a 201-class model), one CSV label spelled two ways, decompression bombs
(refused from the header, before decoding), and `predict` on files it cannot read. Each fails before training
with one line naming the file. Several-file `predict` behaviour (good files still predicted) is in
tests/evaluate/test_predict.py: here each case has a single bad input, so one error line.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.badinput.cases import Case

Setup = Callable[[Path], None]


def _train(data: str, *extra: str) -> list[str]:
    """A cheap training command on the data under test: it must fail while loading, before any training."""
    base = ["train", "--model", "lenet5_modern", "--data", data, "--epochs", "1", "--quiet", "--out", "{tmp}/out"]
    return base + list(extra)


def predict(*images: str) -> list[str]:
    return ["predict", "{run}", *images]


# ---------------------------------------------------------------- writers


def png(size: tuple[int, int] = (8, 8), value: int = 0, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of zeros: 400 million pixels in about 50 kB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header is patched to claim `width` x `height`."""
    data = bytearray(png((8, 8), 0, "JPEG"))
    at = data.index(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def bmp_claiming(width: int, height: int) -> bytes:
    data = bytearray(png((8, 8), 0, "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def files(**contents: bytes | str | Callable[[], bytes]) -> Setup:
    """Write files (name -> bytes, text, or a function making the bytes when the case runs; `__` in a name is a
    folder separator) into the case's folder."""

    def setup(tmp: Path) -> None:
        for name, content in contents.items():
            path = tmp / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            content = content() if callable(content) else content
            if isinstance(content, str):
                path.write_text(content)
            else:
                path.write_bytes(content)

    return setup


def both(*setups: Setup) -> Setup:
    def setup(tmp: Path) -> None:
        for step in setups:
            step(tmp)

    return setup


def idx(array: np.ndarray) -> bytes:
    return struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def idx_set(labels: list[int], count: int | None = None, prefix: str = "train", gz: bool = True, **extra) -> Setup:
    """{tmp}/idx/<prefix>-images/-labels of `count` (default: one per label) 4x4 images."""
    count = len(labels) if count is None else count
    images, label_array = np.zeros((count, 4, 4), np.uint8), np.array(labels, np.uint8)
    suffix = ".gz" if gz else ""
    pack = gzip.compress if gz else bytes
    written = {
        f"idx__{prefix}-images-idx3-ubyte{suffix}": pack(idx(images)),
        f"idx__{prefix}-labels-idx1-ubyte{suffix}": pack(idx(label_array)),
    }
    return files(**{**written, **extra})


def cifar_batch(data: object = None, labels: object = None, **keys) -> bytes:
    batch = {b"data": np.zeros((2, 3072), np.uint8) if data is None else data, b"labels": labels or [0, 1], **keys}
    return pickle.dumps(batch, protocol=2)


def cifar_set(**batches: bytes) -> Setup:
    """{tmp}/cifar with data_batch_1 and batches.meta (10 names), then the given files over them."""
    meta = pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}, protocol=2)
    return files(**{"cifar__data_batch_1": cifar_batch(), "cifar__batches.meta": meta, **batches})


class _Exploit:
    def __reduce__(self):
        return (print, ("a CIFAR batch that runs code",))


def npz(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npz_set(images: np.ndarray | None = None, labels: np.ndarray | None = None, **arrays: np.ndarray) -> Setup:
    images = np.zeros((3, 4, 4), np.uint8) if images is None else images
    labels = np.array([0, 1, 1]) if labels is None else labels
    return files(**{"set.npz": npz(train_images=images, train_labels=labels, **arrays)})


def class_folders(**extra: bytes | str | Callable[[], bytes]) -> Setup:
    """{tmp}/set/a and set/b with two 8x8 PNGs each, then `extra` files under set/."""
    good = {f"set__{c}__{i}.png": png((8, 8), 40 * i) for c in "ab" for i in range(2)}
    return files(**{**good, **{f"set__{name}": content for name, content in extra.items()}})


def manifest(*rows: str, header: str = "path,label") -> Setup:
    """{tmp}/m.csv and images a.png, b.png, c.png (8x8) beside it."""
    text = "\n".join([header, *rows]) + "\n"
    return files(**{"m.csv": text, "a.png": png(), "b.png": png(value=50), "c.png": png(value=99)})


CORRUPT_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
TRUNCATED_PNG = png((64, 64), 7)[:120]
BOMB = "decompression bombs"
IDX = "{tmp}/idx"

# ---------------------------------------------------------------- idx

IDX_CASES = [
    Case("data/idx missing folder", _train("{tmp}/nowhere"), "nowhere: data path does not exist"),
    Case("data/idx empty folder", _train("{tmp}/idx"), "cannot tell the data format", setup=files(idx__keep=b"")),
    Case(
        "data/idx images without labels",
        _train(IDX),
        "found without its labels file",
        setup=files(**{"idx__train-images-idx3-ubyte": idx(np.zeros((2, 4, 4), np.uint8))}),
    ),
    Case(
        "data/idx labels without images",
        _train(IDX, "--data-format", "idx"),
        "found without its images file",
        setup=files(**{"idx__train-labels-idx1-ubyte": idx(np.zeros(2, np.uint8))}),
    ),
    Case(
        "data/idx truncated gzip",
        _train(IDX),
        "train-images-idx3-ubyte.gz: cannot read",
        setup=idx_set(
            [0, 1], **{"idx__train-images-idx3-ubyte.gz": gzip.compress(idx(np.ones((2, 4, 4), np.uint8)))[:-12]}
        ),
    ),
    Case(
        "data/idx gzip magic then garbage",
        _train(IDX),
        "the file is truncated or not gzip data",
        setup=both(idx_set([0, 1]), files(**{"idx__train-labels-idx1-ubyte.gz": b"\x1f\x8b" + b"garbage" * 9})),
    ),
    Case(
        "data/idx truncated raw file",
        _train(IDX),
        "but its header (3 x 4 x 4) needs 64; the file is truncated",
        setup=files(
            **{
                "idx__train-images-idx3-ubyte": idx(np.zeros((3, 4, 4), np.uint8))[:-5],
                "idx__train-labels-idx1-ubyte": idx(np.zeros(3, np.uint8)),
            }
        ),
    ),
    Case(
        "data/idx bad magic number",
        _train(IDX),
        "IDX magic number is 0x00000d03",
        setup=idx_set([0, 1], gz=False, **{"idx__train-images-idx3-ubyte": b"\x00\x00\x0d\x03" + bytes(40)}),
    ),
    Case(
        "data/idx header cut short",
        _train(IDX),
        "too short for an IDX header",
        setup=idx_set([0, 1], gz=False, **{"idx__train-labels-idx1-ubyte": b"\x00\x00\x08"}),
    ),
    Case(
        "data/idx images and labels disagree in count",
        _train(IDX),
        "3 images but",
        setup=idx_set([0, 1], count=3),
    ),
    Case(
        "data/idx label 200 in an MNIST-style set",
        _train(IDX),
        "label 200 (item 2) is outside the 10 classes of an MNIST-style idx set",
        setup=idx_set([0, 9, 200, 1]),
    ),
    Case(
        "data/idx label 10 just past the digits",
        _train(IDX),
        "train-labels-idx1-ubyte.gz: label 10 (item 0)",
        setup=idx_set([10, 0]),
    ),
    Case(
        "data/idx test label outside the classes",
        _train(IDX),
        "t10k-labels-idx1-ubyte.gz: label 42",
        setup=both(idx_set([0, 1]), idx_set([42, 0], prefix="t10k")),
    ),
    Case(
        "data/idx label beyond classes.txt",
        _train(IDX),
        "label 3 (item 1) is outside the 3 classes declared in",
        setup=both(idx_set([0, 3]), files(**{"idx__classes.txt": "a\nb\nc\n"})),
    ),
    Case(
        "data/idx classes.txt naming a class twice",
        _train(IDX),
        "class name 'cat' appears twice (classes 0 and 2)",
        setup=both(idx_set([0, 1]), files(**{"idx__classes.txt": "cat\ndog\ncat\n"})),
    ),
    Case(
        "data/idx zero images",
        _train(IDX),
        "holds 0 images",
        setup=idx_set([], count=0),
    ),
    Case(
        "data/idx gzip longer than its header",
        _train(IDX),
        "train-labels-idx1-ubyte.gz: holds more than the 10 bytes its header (2) declares",
        setup=idx_set(
            [0, 1],
            **{"idx__train-labels-idx1-ubyte.gz": gzip.compress(struct.pack(">II", 0x801, 2) + bytes(5_000_000))},
        ),
    ),
    Case(
        "data/idx header claiming terabytes",
        _train(IDX),
        "holds 16 bytes but its header (2147483648 x 65536 x 65536) needs",
        setup=idx_set(
            [0, 1], gz=False, **{"idx__train-images-idx3-ubyte": struct.pack(">IIII", 0x803, 2**31, 2**16, 2**16)}
        ),
    ),
]

# ---------------------------------------------------------------- cifar

CIFAR = "{tmp}/cifar"
CIFAR_CASES = [
    Case(
        "data/cifar pickle that would run code",
        _train(CIFAR),
        "data_batch_1: cannot read CIFAR pickle (refusing to load __builtin__.print)",
        setup=cifar_set(cifar__data_batch_1=pickle.dumps(_Exploit(), protocol=2)),
        stdout_ok=False,
    ),
    Case(
        "data/cifar truncated pickle",
        _train(CIFAR),
        "data_batch_1: cannot read CIFAR pickle",
        setup=cifar_set(cifar__data_batch_1=cifar_batch()[:300]),
    ),
    Case(
        "data/cifar pickle of a list",
        _train(CIFAR),
        "expected a pickled dict with 'data' and 'labels', got list",
        setup=cifar_set(cifar__data_batch_1=pickle.dumps([1, 2, 3])),
    ),
    Case(
        "data/cifar batch without labels",
        _train(CIFAR),
        "data_batch_1: missing key 'labels'",
        setup=cifar_set(cifar__data_batch_1=pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)})),
    ),
    Case(
        "data/cifar rows of the wrong length",
        _train(CIFAR),
        "'data' is uint8 (2, 1024) with 2 labels; expected uint8 (N, 3072)",
        setup=cifar_set(cifar__data_batch_1=cifar_batch(np.zeros((2, 1024), np.uint8))),
    ),
    Case(
        "data/cifar float pixels",
        _train(CIFAR),
        "'data' is float64 (2, 3072)",
        setup=cifar_set(cifar__data_batch_1=cifar_batch(np.zeros((2, 3072)))),
    ),
    Case(
        "data/cifar more labels than rows",
        _train(CIFAR),
        "(2, 3072) with 3 labels",
        setup=cifar_set(cifar__data_batch_1=cifar_batch(labels=[0, 1, 2])),
    ),
    Case(
        "data/cifar label 10 without batches.meta",
        _train(CIFAR),
        "label 10 (item 1) is outside the 10 classes of CIFAR-10 (batches.meta is absent)",
        setup=files(cifar__data_batch_1=cifar_batch(labels=[0, 10])),
    ),
    Case(
        "data/cifar test label outside the meta names",
        _train(CIFAR),
        "test_batch: label 200 (item 0) is outside the 10 classes named in",
        setup=cifar_set(cifar__test_batch=cifar_batch(labels=[200, 1])),
    ),
    Case(
        "data/cifar fractional labels",
        _train(CIFAR),
        "data_batch_1 [labels]: labels are float64 values; expected integer class indices",
        setup=cifar_set(cifar__data_batch_1=cifar_batch(labels=[0.5, 1.0])),
    ),
    Case(
        "data/cifar text labels",
        _train(CIFAR),
        "labels are <U3 values",
        setup=cifar_set(cifar__data_batch_1=cifar_batch(labels=["cat", "dog"])),
    ),
    Case(
        "data/cifar empty batch",
        _train(CIFAR),
        "data_batch_1: the batch holds no images",
        setup=cifar_set(cifar__data_batch_1=pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []})),
    ),
    Case(
        "data/cifar meta without label names",
        _train(CIFAR),
        "batches.meta: missing key 'label_names'",
        setup=cifar_set(**{"cifar__batches.meta": pickle.dumps({b"num_vis": 3072})}),
    ),
    Case(
        "data/cifar meta naming a class twice",
        _train(CIFAR),
        "class name 'cat' appears twice",
        setup=cifar_set(**{"cifar__batches.meta": pickle.dumps({b"label_names": [b"cat", b"dog", b"cat"]})}),
    ),
    Case(
        "data/cifar-100 train without fine labels",
        _train(CIFAR),
        "train: missing key 'fine_labels'",
        setup=files(cifar__train=cifar_batch(), cifar__meta=pickle.dumps({b"fine_label_names": [b"a", b"b"]})),
    ),
]

# ---------------------------------------------------------------- npz

NPZ = "{tmp}/set.npz"
NPZ_CASES = [
    Case("data/npz missing file", _train(NPZ), "set.npz: data path does not exist"),
    Case("data/npz empty file", _train(NPZ), "set.npz: cannot read .npz archive", setup=files(**{"set.npz": b""})),
    Case(
        "data/npz truncated archive",
        _train(NPZ),
        "set.npz: cannot read .npz archive",
        setup=files(**{"set.npz": npz(train_images=np.zeros((50, 8, 8), np.uint8), train_labels=np.zeros(50))[:900]}),
    ),
    Case(
        "data/npz text file named .npz",
        _train(NPZ),
        "the file is truncated or corrupt",
        setup=files(**{"set.npz": "train_images,train_labels\n"}),
    ),
    Case(
        "data/npz without training arrays",
        _train(NPZ),
        "no training arrays; expected keys train_images + train_labels",
        setup=files(**{"set.npz": npz(pixels=np.zeros((2, 4, 4), np.uint8))}),
    ),
    Case(
        "data/npz images of two dimensions",
        _train(NPZ),
        "[train_images]: images have shape (3, 16)",
        setup=npz_set(np.zeros((3, 16), np.uint8)),
    ),
    Case(
        "data/npz fewer labels than images",
        _train(NPZ),
        "[train_labels]: labels have shape (2,) for 3 images",
        setup=npz_set(labels=np.array([0, 1])),
    ),
    Case(
        "data/npz label outside its classes array",
        _train(NPZ),
        "[train_labels]: label 2 (item 2) is outside the 2 classes named in its 'classes' array",
        setup=npz_set(labels=np.array([0, 1, 2]), classes=np.array(["cat", "dog"])),
    ),
    Case(
        "data/npz label 200 among 0..2",
        _train(NPZ),
        "label 200 (item 2) is used but no image has label 2",
        setup=npz_set(np.zeros((4, 4, 4), np.uint8), np.array([0, 1, 200, 1])),
    ),
    Case(
        "data/npz negative label",
        _train(NPZ),
        "[train_labels]: label -1 (item 0) is negative",
        setup=npz_set(labels=np.array([-1, 0, 1])),
    ),
    Case(
        "data/npz fractional labels",
        _train(NPZ),
        "labels are float64 values; expected integer class indices",
        setup=npz_set(labels=np.array([0.0, 0.5, 1.0])),
    ),
    Case(
        "data/npz NaN pixels",
        _train(NPZ),
        "[train_images]: image 0 holds NaN or infinite pixel values",
        setup=npz_set(np.full((3, 4, 4), np.nan, np.float32)),
    ),
    Case(
        "data/npz zero images",
        _train(NPZ),
        "images have shape (0, 1, 4, 4); expected at least one image",
        setup=npz_set(np.zeros((0, 4, 4), np.uint8), np.zeros(0, np.int64)),
    ),
    Case(
        "data/npz text pixels",
        _train(NPZ),
        "images are <U1 values",
        setup=npz_set(np.full((3, 4, 4), "x")),
    ),
    Case(
        "data/npz complex pixels",
        _train(NPZ),
        "images are complex128 values",
        setup=npz_set(np.zeros((3, 4, 4), np.complex128)),
    ),
    Case(
        "data/npz object arrays (pickles)",
        _train(NPZ),
        "cannot read .npz archive (Object arrays cannot be loaded",
        setup=npz_set(labels=np.array([0, 1, None], dtype=object)),
    ),
    Case(
        "data/npz classes array naming one twice",
        _train(NPZ),
        "[classes]: class name 'cat' appears twice",
        setup=npz_set(classes=np.array(["cat", "dog", "cat"])),
    ),
]

# ---------------------------------------------------------------- class folders

SET = "{tmp}/set"
FOLDER_CASES = [
    Case(
        "data/folder loose images without class folders",
        _train(SET),
        "set: cannot tell the data format",
        setup=files(set__a=png(), **{"set__b.png": png()}),
    ),
    Case(
        "data/folder forced format without class folders",
        _train(SET, "--data-format", "folder"),
        "found no sub-folders",
        setup=files(**{"set__a.png": png()}),
    ),
    Case(
        "data/folder empty class folder",
        _train(SET),
        "set/c: class folder holds no images",
        setup=both(class_folders(), lambda tmp: (tmp / "set" / "c").mkdir()),
    ),
    Case(
        "data/folder class folder of text files",
        _train(SET),
        "class folder holds no images; expected files ending in .png",
        setup=class_folders(**{"c__notes.txt": "x", "c__readme.md": "y"}),
    ),
    Case(
        "data/folder corrupt image",
        _train(SET),
        "set/b/bad.png: cannot decode image",
        setup=class_folders(**{"b__bad.png": CORRUPT_PNG}),
    ),
    Case(
        "data/folder truncated image",
        _train(SET, "--resize", "8,8"),
        "set/a/cut.png: cannot decode image",
        setup=class_folders(**{"a__cut.png": TRUNCATED_PNG}),
    ),
    Case(
        "data/folder empty image file",
        _train(SET),
        "set/a/zero.jpg: image file is empty",
        setup=class_folders(**{"a__zero.jpg": b""}),
    ),
    Case(
        "data/folder text file named .jpg",
        _train(SET),
        "set/b/fake.jpg: cannot decode image (not a known image format)",
        setup=class_folders(**{"b__fake.jpg": "this is not a jpeg"}),
    ),
    Case(
        "data/folder images of two sizes",
        _train(SET),
        "images of one data set must share a size: pass --resize H,W",
        setup=class_folders(**{"b__big.png": png((12, 10))}),
    ),
    Case(
        "data/folder 20000x20000 PNG bomb",
        _train(SET),
        BOMB,
        setup=class_folders(**{"b__bomb.png": png_bomb}),
    ),
    Case(
        "data/folder bomb in the first file (header probe)",
        _train(SET),
        "set/a/0.png: image is 20000x20000 (400,000,000 pixels)",
        setup=class_folders(**{"a__0.png": png_bomb}),
    ),
    Case(
        "data/folder JPEG header claiming 30000x30000",
        _train(SET),
        "set/b/huge.jpg: image is 30000x30000 (900,000,000 pixels)",
        setup=class_folders(**{"b__huge.jpg": jpeg_claiming(30000, 30000)}),
    ),
    Case(
        "data/folder BMP header claiming 50000x50000",
        _train(SET),
        "set/b/huge.bmp: image is 50000x50000",
        setup=class_folders(**{"b__huge.bmp": bmp_claiming(50000, -50000)}),
    ),
    Case(
        "data/folder PGM header claiming 20000x20000 (read by Pillow)",
        _train(SET),
        "set/b/huge.pgm: image is 20000x20000",
        setup=class_folders(**{"b__huge.pgm": b"P5\n20000 20000\n255\n" + bytes(64)}),
    ),
    Case(
        "data/folder test class the training lacks",
        _train(SET),
        "test has class folder 'zebra' that the training data lacks",
        setup=files(
            **{f"set__train__{c}__0.png": png() for c in "ab"},
            **{"set__test__a__0.png": png(), "set__test__zebra__0.png": png()},
        ),
    ),
    Case(
        "data/folder val and validation folders",
        _train(SET),
        "folders val/ and validation/ both hold the val split",
        setup=files(**{f"set__{s}__{c}__0.png": png() for s in ("train", "val", "validation") for c in "ab"}),
    ),
    Case(
        "data/folder class folders 1 and 01",
        _train(SET),
        "labels '01' (folder 01/) and '1' (folder 1/) spell the same number",
        setup=files(**{f"set__{c}__0.png": png() for c in ("1", "01", "2")}),
    ),
    Case(
        "data/folder an archive instead of a folder",
        _train("{tmp}/set.zip"),
        "set.zip: an archive; extract it and pass the extracted folder",
        setup=files(**{"set.zip": b"PK\x03\x04"}),
    ),
    Case(
        "data/folder a text file as the data",
        _train("{tmp}/notes.txt"),
        "notes.txt: unknown data file",
        setup=files(**{"notes.txt": "hello"}),
    ),
    Case(
        "data/folder unknown format name",
        _train(SET, "--data-format", "parquet"),
        "'parquet'",
        setup=class_folders(),
    ),
    Case(
        "data/folder idx format forced on class folders",
        _train(SET, "--data-format", "idx"),
        "no train-images-idx3-ubyte[.gz] with train-labels-idx1-ubyte[.gz] found",
        setup=class_folders(),
    ),
]

# ---------------------------------------------------------------- CSV manifests

CSV = "{tmp}/m.csv"
CSV_CASES = [
    Case("data/csv missing manifest", _train(CSV), "m.csv: data path does not exist"),
    Case(
        "data/csv without a path column",
        _train(CSV),
        "missing column 'path'; expected columns path,label[,split], the CSV has columns: file, label",
        setup=manifest("a.png,cat", header="file,label"),
    ),
    Case(
        "data/csv empty file",
        _train(CSV),
        "the CSV has columns: (none)",
        setup=files(**{"m.csv": ""}),
    ),
    Case("data/csv header only", _train(CSV), "CSV manifest has no rows", setup=manifest()),
    Case("data/csv empty label", _train(CSV), "m.csv, line 3: empty label", setup=manifest("a.png,cat", "b.png,")),
    Case(
        "data/csv missing image",
        _train(CSV),
        "m.csv, line 3: image file",
        setup=manifest("a.png,cat", "gone.png,dog"),
    ),
    Case(
        "data/csv path that is a folder",
        _train(CSV),
        "is a folder, not an image file",
        setup=both(manifest("a.png,cat", "sub,dog"), lambda tmp: (tmp / "sub").mkdir()),
    ),
    Case(
        "data/csv unknown split",
        _train(CSV),
        "m.csv, line 2: split 'holdout' is not one of train, val, test",
        setup=manifest("a.png,cat,holdout", header="path,label,split"),
    ),
    Case(
        "data/csv labels 1 and 01",
        _train(CSV),
        "labels '1' (line 2) and '01' (line 4) spell the same number",
        setup=manifest("a.png,1", "b.png,2", "c.png,01"),
    ),
    Case(
        "data/csv labels 1 and 1.0",
        _train(CSV),
        "labels '1' (line 2) and '1.0' (line 3) spell the same number",
        setup=manifest("a.png,1", "b.png,1.0"),
    ),
    Case(
        "data/csv one file with two labels",
        _train(CSV),
        "is listed again (line 2: 'cat' in train, now 'dog' in train)",
        setup=manifest("a.png,cat", "b.png,dog", "a.png,dog"),
    ),
    Case(
        "data/csv one file in train and test",
        _train(CSV),
        "a file has one label and one split",
        setup=manifest("a.png,cat,train", "b.png,dog,train", "a.png,cat,test", header="path,label,split"),
    ),
    Case(
        "data/csv not UTF-8",
        _train(CSV),
        "m.csv: cannot read CSV manifest",
        setup=files(**{"m.csv": b"path,label\n\xff\xfe\xfa.png,cat\n"}),
    ),
    Case(
        "data/csv NUL bytes",
        _train(CSV),
        "m.csv, line 2: holds a NUL byte",
        setup=files(**{"m.csv": b"path,label\na.png,c\x00t\n", "a.png": png()}),
    ),
    Case(
        "data/csv row naming a corrupt image",
        _train(CSV),
        "bad.png: cannot decode image",
        setup=both(manifest("a.png,cat", "bad.png,dog"), files(**{"bad.png": CORRUPT_PNG})),
    ),
    Case(
        "data/csv row naming a bomb",
        _train(CSV),
        BOMB,
        setup=both(manifest("a.png,cat", "bomb.png,dog"), files(**{"bomb.png": png_bomb})),
    ),
    Case(
        "data/csv relative path up to a missing file",
        _train("{tmp}/sub/m.csv"),
        "m.csv, line 2: image file",
        setup=files(**{"sub__m.csv": "path,label\n../a.png,cat\n"}),
    ),
]

# ---------------------------------------------------------------- predict

PREDICT_CASES = [
    Case("predict/missing image", predict("{tmp}/gone.png"), "gone.png: no such file or folder", needs_run=True),
    Case(
        "predict/corrupt image",
        predict("{tmp}/bad.png"),
        "bad.png: cannot decode image",
        needs_run=True,
        setup=files(**{"bad.png": CORRUPT_PNG}),
        stdout_ok=False,
    ),
    Case(
        "predict/empty image file",
        predict("{tmp}/zero.png"),
        "zero.png: image file is empty",
        needs_run=True,
        setup=files(**{"zero.png": b""}),
        stdout_ok=False,
    ),
    Case(
        "predict/text file named .png",
        predict("{tmp}/fake.png"),
        "fake.png: cannot decode image (not a known image format)",
        needs_run=True,
        setup=files(**{"fake.png": "not a png"}),
    ),
    Case(
        "predict/truncated image",
        predict("{tmp}/cut.png"),
        "cut.png: cannot decode image",
        needs_run=True,
        setup=files(**{"cut.png": TRUNCATED_PNG}),
    ),
    Case(
        "predict/20000x20000 PNG bomb",
        predict("{tmp}/bomb.png"),
        BOMB,
        needs_run=True,
        setup=files(**{"bomb.png": png_bomb}),
        stdout_ok=False,
    ),
    Case(
        "predict/GIF header claiming 65535x65535",
        predict("{tmp}/huge.gif"),
        "huge.gif: image is 65535x65535",
        needs_run=True,
        setup=files(**{"huge.gif": b"GIF89a\xff\xff\xff\xff" + png((8, 8), 0, "GIF")[10:]}),
    ),
    Case(
        "predict/empty folder",
        predict("{tmp}/nothing"),
        "nothing: folder holds no images",
        needs_run=True,
        setup=lambda tmp: (tmp / "nothing").mkdir(),
    ),
    Case(
        "predict/folder of one corrupt image",
        predict("{tmp}/imgs"),
        "imgs/bad.jpg: cannot decode image",
        needs_run=True,
        setup=files(**{"imgs__bad.jpg": b"\xff\xd8\xff\xe0 broken"}),
    ),
    Case(
        "predict/folder of hidden files only",
        predict("{tmp}/imgs"),
        "imgs: folder holds no images",
        needs_run=True,
        setup=files(**{"imgs__.DS_Store": b"\x00\x00\x00\x01Bud1", "imgs__.ipynb_checkpoints__a.png": png()}),
    ),
    Case(
        "predict/folder of text files only",
        predict("{tmp}/imgs"),
        "imgs: folder holds no images (files ending in .png",
        needs_run=True,
        setup=files(**{"imgs__notes.txt": "x", "imgs__labels.csv": "a,b"}),
    ),
    Case("predict/--top-k 0", [*predict("{tmp}/a.png"), "--top-k", "0"], "--top-k must be >= 1", needs_run=True),
    Case(
        "predict/--top-k negative",
        [*predict("{tmp}/a.png"), "--top-k", "-3"],
        "--top-k must be >= 1 (labels per image), got -3",
        needs_run=True,
    ),
    Case("predict/missing run folder", ["predict", "{tmp}/norun", "{tmp}/a.png"], "norun: run folder not found"),
]

CASES = IDX_CASES + CIFAR_CASES + NPZ_CASES + FOLDER_CASES + CSV_CASES + PREDICT_CASES
