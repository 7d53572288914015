"""Session fixtures: one tiny trained run per task (seconds each), a face gallery, sample inputs.

The runs are shared by every serve test (adapters, app, socket, page): `classification_run` (LeNet-5 on MNIST
digits), `medical_run` (binary normal/finding), `multilabel_run` (3 labels), `detection_run` (yolo_grid on digit
scenes), `faces_run` (+ `faces_gallery`, an SQLite gallery of 5 enrolled people), `text_run` (kim_cnn). Each is the
run folder's Path; `sample_image_bytes(run, index=0)` gives a PNG for an image run, `sample_text(index)` a sentence.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serve import samples


@pytest.fixture(scope="session")
def classification_run(tmp_path_factory) -> Path:
    return samples.train_classification(tmp_path_factory.mktemp("classification"))


@pytest.fixture(scope="session")
def medical_run(tmp_path_factory) -> Path:
    return samples.train_medical(tmp_path_factory.mktemp("medical"))


@pytest.fixture(scope="session")
def multilabel_run(tmp_path_factory) -> Path:
    return samples.train_medical(tmp_path_factory.mktemp("multilabel"), multilabel=True)


@pytest.fixture(scope="session")
def detection_run(tmp_path_factory) -> Path:
    return samples.train_detection(tmp_path_factory.mktemp("detection"))


@pytest.fixture(scope="session")
def faces_run(tmp_path_factory) -> Path:
    return samples.train_faces(tmp_path_factory.mktemp("faces"))


@pytest.fixture(scope="session")
def faces_gallery(faces_run: Path) -> Path:
    return samples.enroll_gallery(faces_run, faces_run.parent / "gallery.db")


@pytest.fixture(scope="session")
def text_run(tmp_path_factory) -> Path:
    return samples.train_text(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="session")
def sample_image_bytes():
    """`sample_image_bytes(run, index=0) -> bytes`: a PNG the run's task takes."""
    return samples.sample_image_bytes


@pytest.fixture(scope="session")
def sample_text():
    """`sample_text(index=0) -> str`: a sentence for the text run."""
    return samples.sample_text
