"""A short training on Olivetti clears a floor on people it never saw (the README recipe reaches far more)."""

from __future__ import annotations

import pytest

from cnnlab.train import TrainConfig, fit

pytestmark = pytest.mark.slow


def test_short_training_recognises_unseen_people(tmp_path, olivetti):
    config = TrainConfig(
        task="faces",
        model="face_embedder",
        model_options={"backbone": "resnet20", "embedding_dim": 64},
        task_options={"image_size": 48, "detect": False, "test_people": 10, "val_people": 5},
        data=str(olivetti),
        epochs=12,
        batch_size=32,
        augment={"flip": True, "rotate": 8, "scale": 0.1, "translate": 0.05},
        threads=2,
        quiet=True,
        out=str(tmp_path / "run"),
    )
    result = fit(config)
    test = result.results["test"]
    # 10 unseen people: chance is AUC 0.5 and top-1 0.1 (measured here: see the assertion message on failure)
    assert test["verification"]["auc"] > 0.85, test["verification"]
    assert test["identification"]["k1"]["top1"] > 0.6, test["identification"]
    assert test["people"] == 10 and test["images"] == 100
