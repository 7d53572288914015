"""One tiny trained run per task (seconds each), shared by the export tests of this folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.export.models import SMALL_BACKBONE
from tests.tasks.faces.conftest import write_people
from tests.tasks.text.corpus import write_lines

MNIST = Path(__file__).resolve().parents[2] / "data" / "mnist"
FAST = {"epochs": 1, "threads": 2, "quiet": True, "progress": False, "seed": 0}


def _fit(out: Path, splits=None, **fields) -> Path:
    from cnnlab.train import TrainConfig, fit

    fit(TrainConfig(**{**FAST, **fields, "out": str(out)}), data=splits)
    return out


def _blob_npz(path: Path, shape: tuple[int, ...], count: int = 120) -> Path:
    """Noise with a bright cube or square for the positives: a learnable binary set, 2-D or 3-D."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", count), ("val", 40), ("test", 40)):
        labels = rng.integers(0, 2, n)
        images = rng.integers(0, 60, (n, *shape)).astype(np.uint8)
        bright = (labels == 1, *[slice(2, 6)] * len(shape))
        images[bright] = 220
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **arrays, classes=np.array(["normal", "finding"]))
    return path


@pytest.fixture(scope="session")
def runs(tmp_path_factory) -> dict[str, Path]:
    """name -> run folder: classification (MNIST), medical binary 2-D and 3-D, detection, faces, text."""
    tmp = tmp_path_factory.mktemp("export-runs")
    return _Runs(tmp)


class _Runs(dict):
    """Trains a run the first time a test asks for it."""

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.tmp = tmp

    def __missing__(self, name: str) -> Path:
        self[name] = path = getattr(self, f"_{name}")(self.tmp / name)
        return path

    def _classification(self, out: Path) -> Path:
        return _fit(out, model="lenet5_modern", data=str(MNIST), train_samples=300, batch_size=64)

    def _medical(self, out: Path) -> Path:
        data = _blob_npz(self.tmp / "binary.npz", (16, 16))
        return _fit(out, model="lenet5", data=str(data), batch_size=32)

    def _medical3d(self, out: Path) -> Path:
        data = _blob_npz(self.tmp / "volumes.npz", (12, 12, 12))
        return _fit(out, model="cnn3d_small", data=str(data), batch_size=32)

    def _detection(self, out: Path) -> Path:
        from cnnlab.data import DataSplits, ImageSet
        from cnnlab.data.synthetic import DIGIT_CLASSES, digit_scenes

        def split(name: str, count: int, seed: int) -> ImageSet:
            images, targets = digit_scenes(count, split=name, canvas=64, digits=(1, 2), scale=(16, 28), seed=seed)
            return ImageSet(images, targets, classes=DIGIT_CLASSES, source=f"digits/{name}")

        data = DataSplits(split("train", 64, 0), split("val", 16, 1), split("test", 16, 2), list(DIGIT_CLASSES),
                          "digits", "small digit scenes")  # fmt: skip
        options = {"backbone": SMALL_BACKBONE, "neck_channels": 16, "neck_depth": 1}
        return _fit(out, data, data="digits", task="detection", model="yolo_grid", model_options=options, batch_size=16)

    def _faces(self, out: Path) -> Path:
        people = write_people(self.tmp / "people", people=8, images=4)
        return _fit(
            out,
            task="faces",
            model="face_embedder",
            model_options={"backbone": SMALL_BACKBONE, "embedding_dim": 16, "pool": "avg"},
            task_options={"image_size": 32, "detect": False, "test_people": 2, "val_people": 2},
            data=str(people),
            batch_size=8,
        )

    def _text(self, out: Path) -> Path:
        data = write_lines(self.tmp / "sentences.txt", 150)
        options = {"embedding_dim": 16, "filters": 8}
        return _fit(out, task="text", model="kim_cnn", model_options=options, data=str(data), batch_size=32)
