"""The faces task through the engine: ArcFace and triplet training, the threshold chosen on validation people."""

from __future__ import annotations

import json

import pytest
import torch

from cnnlab.errors import ConfigError
from cnnlab.tasks import create
from cnnlab.tasks.faces.task import FacesOptions, model_fingerprint
from cnnlab.train import TrainConfig, fit
from cnnlab.train.config import ScheduleConfig

TINY_BACKBONE = {
    "layers": [
        {"conv": {"out": 16, "kernel": 3, "padding": 1}}, "bn", "relu", {"pool": {"type": "max", "size": 2}},
        {"conv": {"out": 32, "kernel": 3, "padding": 1}}, "bn", "relu",
    ]
}  # fmt: skip


def _config(tmp_path, people_folder, **values) -> TrainConfig:
    fields = dict(
        task="faces",
        model="face_embedder",
        model_options={"backbone": TINY_BACKBONE, "embedding_dim": 16},
        task_options={"image_size": 32, "detect": False, "test_people": 2, "val_people": 2},
        data=str(people_folder),
        epochs=6,
        batch_size=8,
        threads=2,
        quiet=True,
        out=str(tmp_path / "run"),
    )
    return TrainConfig(**{**fields, **values})


@pytest.mark.parametrize("loss", ["arcface", "triplet"])
def test_training_separates_unseen_people(tmp_path, people_folder, loss):
    config = _config(tmp_path, people_folder)
    config = _config(tmp_path, people_folder, task_options={**config.task_options, "loss": loss})
    result = fit(config)
    test, calibration = result.results["test"], result.results["calibration"]
    # Generated people are distinct patterns: unseen ones separate well after a few epochs (chance: AUC 0.5).
    assert test["verification"]["auc"] > 0.85, test["verification"]
    assert test["people"] == 2 and test["images"] == 12
    assert -1.0 <= calibration["threshold"] <= 1.0 and calibration["rule"] == "eer"
    assert test["verification_at_threshold"]["threshold"] == pytest.approx(calibration["threshold"], abs=1e-6)
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train_loss", "val_auc", "val_eer", "val_tar"} <= set(header)
    assert ("train_accuracy" in header) == (loss == "arcface")
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["monitor"] == "val_auc"
    assert set(meta["data"]["people"]["train"]).isdisjoint(meta["data"]["people"]["test"])
    embeddings = result.model.eval()(torch.zeros(3, 3, 32, 32))
    assert embeddings.shape == (3, 16) and torch.allclose(embeddings.norm(dim=1), torch.ones(3), atol=1e-5)


def test_arcface_weights_are_saved_with_the_checkpoint_and_resume(tmp_path, people_folder):
    fit(_config(tmp_path, people_folder, epochs=2, schedule=ScheduleConfig(name="constant")))
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert list(state["modules"]) == ["arcface.weight"] and state["modules"]["arcface.weight"].shape == (4, 16)
    assert not any(key.startswith("arcface") for key in state["model"])  # the embedder alone is the model
    resumed = fit(
        _config(tmp_path, people_folder, epochs=3, schedule=ScheduleConfig(name="constant")), resume=tmp_path / "run"
    )
    assert resumed.results["epochs_run"] == 3


def test_options_are_checked():
    with pytest.raises(ConfigError, match="task_options.loss must be one of arcface, triplet"):
        FacesOptions(loss="softmax")
    with pytest.raises(ConfigError, match="images_per_person must be >= 2"):
        FacesOptions(images_per_person=1)
    with pytest.raises(ConfigError, match="task 'faces': unknown config field 'task_options.margin'; did you mean"):
        create("faces", {"margin": 0.3})


def test_fingerprint_follows_the_weights():
    from cnnlab.models import create as create_model

    model = create_model("face_embedder", backbone=TINY_BACKBONE, in_channels=3, image_size=32)
    before = model_fingerprint(model)
    assert model_fingerprint(model) == before and len(before) == 16
    with torch.no_grad():
        model.head[2].weight[0, 0] += 1.0
    assert model_fingerprint(model) != before
