"""Tiny runs of every task for the serve tests, and sample inputs for them (valid PNGs, sentences).

Each `train_*` writes one run folder in seconds on 2 cores; `tests/serve/conftest.py` makes them session
fixtures. `sample_image_bytes(run)` gives a PNG that run's task takes, at another size (and channel count) than
the model's, so the decoding, resizing and channel conversion are all exercised.
"""

from __future__ import annotations

import gzip
import io
import json
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tests.tasks.classification.test_medical_training import _blobs
from tests.tasks.faces.conftest import write_people

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"
SMALL_DETECTOR = {
    "backbone": {
        "layers": [
            {"conv": {"out": 8, "kernel": 3, "stride": 2, "padding": 1}}, "bn", "relu",
            {"conv": {"out": 16, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
            {"conv": {"out": 16, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        ]
    },
    "neck_channels": 16,
    "neck_depth": 1,
}  # fmt: skip
TINY_FACE_BACKBONE = {
    "layers": [
        {"conv": {"out": 8, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 16, "kernel": 3, "padding": 1}}, "bn", "relu",
    ]
}  # fmt: skip
CUES = {"food": ["pasta", "oven", "spicy"], "sport": ["goal", "match", "league"], "tech": ["laptop", "server", "code"]}
FILLER = "the a of and it was this that very really some new old big small good bad day".split()
SENTENCES = [
    "the match was a really good goal",
    "some spicy pasta from the oven",
    "a new laptop and an old server",
    "zzz unknown words only qqq",
    "goal",
]


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def read_idx(path: Path, count: int, header: int, item_shape: tuple[int, ...]) -> np.ndarray:
    size = int(np.prod(item_shape))
    with gzip.open(path) as handle:
        data = handle.read(header + count * size)
    return np.frombuffer(data[header:], dtype=np.uint8).reshape(count, *item_shape)


def _config(**values):
    from cnnlab.train import TrainConfig

    base = dict(epochs=1, batch_size=32, threads=2, device="cpu", quiet=True, progress=False, seed=0)
    return TrainConfig(**{**base, **values})


def train_classification(folder: Path) -> Path:
    """LeNet-5 on 500 MNIST digits, one epoch."""
    from cnnlab.train import OptimizerConfig, fit

    data = folder / "mnist_small.npz"
    np.savez(
        data,
        train_images=read_idx(MNIST / "train-images-idx3-ubyte.gz", 500, 16, (28, 28)),
        train_labels=read_idx(MNIST / "train-labels-idx1-ubyte.gz", 500, 8, ()),
        test_images=read_idx(MNIST / "t10k-images-idx3-ubyte.gz", 100, 16, (28, 28)),
        test_labels=read_idx(MNIST / "t10k-labels-idx1-ubyte.gz", 100, 8, ()),
    )
    optimizer = OptimizerConfig(name="adam", lr=0.003)
    return fit(_config(model="lenet5", data=str(data), optimizer=optimizer, out=str(folder / "lenet5"))).run_dir


def train_medical(folder: Path, multilabel: bool = False) -> Path:
    """A binary (normal/finding) or 3-label run of LeNet-5 on 16x16 blob images, one epoch."""
    from cnnlab.train import fit

    rng = np.random.default_rng(1 if multilabel else 0)
    arrays = {}
    for split, count in (("train", 240), ("val", 80), ("test", 40)):
        labels = (rng.random((count, 3)) < 0.3).astype(np.uint8) if multilabel else rng.integers(0, 2, (count, 1))
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _blobs(rng, labels), labels
    name = "multilabel" if multilabel else "binary"
    if not multilabel:
        arrays["classes"] = np.array(["normal", "finding"])
    np.savez(folder / f"{name}.npz", **arrays)
    return fit(_config(model="lenet5", data=str(folder / f"{name}.npz"), out=str(folder / name))).run_dir


def train_detection(folder: Path) -> Path:
    """yolo_grid with a 3-layer backbone on 96 generated 64x64 digit scenes, one epoch; conf 0.01 so that the
    untrained-ish model still reports boxes to compare."""
    from cnnlab.data import DataSplits, ImageSet
    from cnnlab.data.synthetic import DIGIT_CLASSES, digit_scenes
    from cnnlab.train import fit

    def split(name: str, count: int, seed: int) -> ImageSet:
        images, targets = digit_scenes(count, split=name, canvas=64, digits=(1, 2), scale=(16, 28), seed=seed)
        return ImageSet(images, targets, classes=DIGIT_CLASSES, source=f"digits/{name}")

    data = DataSplits(
        split("train", 96, 0), split("val", 16, 1), split("test", 16, 2), list(DIGIT_CLASSES), "digits", "digit scenes"
    )
    config = _config(
        task="detection",
        model="yolo_grid",
        model_options=SMALL_DETECTOR,
        task_options={"conf_threshold": 0.01},
        data="digits",
        batch_size=16,
        out=str(folder / "detector"),
    )
    return fit(config, data=data).run_dir


def train_faces(folder: Path) -> Path:
    """A face embedder (2 conv layers, 16-d) on 8 generated people of 32x32 crops, two epochs (crops: no
    detection)."""
    from cnnlab.train import fit

    people = folder / "people"
    write_people(people, images=4, size=40)
    config = _config(
        task="faces",
        model="face_embedder",
        model_options={"backbone": TINY_FACE_BACKBONE, "embedding_dim": 16},
        task_options={"image_size": 32, "detect": False, "test_people": 2, "val_people": 2},
        data=str(people),
        epochs=2,
        batch_size=8,
        out=str(folder / "faces"),
    )
    return fit(config).run_dir


def enroll_gallery(run_dir: Path, path: Path) -> Path:
    """A gallery of every generated person but the last, enrolled from their first three images."""
    from cnnlab.evaluate.faces import load_face_run
    from cnnlab.tasks.faces.gallery import Gallery

    face_run = load_face_run(run_dir)
    people = sorted(p for p in (run_dir.parent / "people").iterdir() if p.is_dir())
    with Gallery(path, model_id=face_run.fingerprint, dim=face_run.dim, create=True) as gallery:
        for person in people[:-1]:
            files = [str(person / f"img{i}.png") for i in range(3)]
            embeddings, kept, _ = face_run.embed_files(files)
            gallery.enroll(person.name, embeddings, kept)
    return path


def _sentence(label: str, rng: random.Random) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(3, 10))]
    words.insert(rng.randrange(len(words) + 1), rng.choice(CUES[label]))
    return " ".join(words)


def train_text(folder: Path) -> Path:
    """kim_cnn (16-d embeddings, 8 filters a width) on 240 generated sentences, one epoch of 64-sentence batches."""
    from cnnlab.train import fit

    rng = random.Random(0)
    labels = sorted(CUES)
    lines = [f"{label} {_sentence(label, rng)}" for label in (labels[i % 3] for i in range(240))]
    data = folder / "sentences.txt"
    data.write_text("\n".join(lines) + "\n")
    config = _config(
        task="text",
        model="kim_cnn",
        model_options={"embedding_dim": 16, "filters": 8},
        data=str(data),
        batch_size=64,
        out=str(folder / "text"),
    )
    return fit(config).run_dir


def _task(run_dir: Path) -> tuple[str, dict]:
    meta = json.loads((Path(run_dir) / "run.json").read_text())
    return (meta.get("task") or {}).get("name", "classification"), meta


def sample_image_bytes(run_dir: Path, index: int = 0) -> bytes:
    """A PNG the run takes: an MNIST test digit (classification, 36x36 RGB), a blob image (medical, 20x20),
    a digit scene (detection, 80x72 RGB, tinted), a person's image (faces, 40x40 RGB). `index` picks another one."""
    task, meta = _task(run_dir)
    if task == "detection":
        from cnnlab.data.synthetic import digit_scenes

        images, _ = digit_scenes(index + 1, split="test", canvas=64, digits=(1, 2), scale=(16, 28), seed=5)
        image = torch.nn.functional.interpolate(images[index : index + 1].float(), size=(72, 80), mode="bilinear")
        grey = image[0, 0].round().clamp(0, 255).byte().numpy()
        return png(np.stack([grey, grey, grey // 2], axis=-1))
    if task == "faces":
        people = sorted(p for p in (Path(run_dir).parent / "people").iterdir() if p.is_dir())
        person = people[index % len(people)]
        return (person / f"img{3 - index // len(people) % 4}.png").read_bytes()
    if meta["input_shape"][1:] == [16, 16]:  # the medical blob runs
        labels = np.array([[index % 2, index % 3 == 0, 1]][:1], dtype=np.uint8)
        image = _blobs(np.random.default_rng(index), labels, shape=(20, 20))[0]
        return png(image)
    digit = read_idx(MNIST / "t10k-images-idx3-ubyte.gz", index + 1, 16, (28, 28))[index]
    rgb = np.stack([digit, digit // 2, 255 - digit], axis=-1)
    return png(np.asarray(Image.fromarray(rgb).resize((36, 36))))


def sample_text(index: int = 0) -> str:
    return SENTENCES[index % len(SENTENCES)]
