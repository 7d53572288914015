"""Diagnosis of detection runs on constructed histories: losses and val mAP stand in for accuracies, the
remedies are box-aware augmentations the detection task takes, classification-only rules stay silent."""

from __future__ import annotations

from cnnlab.diagnose import diagnose
from cnnlab.diagnose.prescribe import merge_changes, prescribed_config
from cnnlab.tasks.detection.augment import DetectionAugmentSpec
from cnnlab.tasks.detection.task import DetectionTask


def meta(channels: int = 1, counts: list[int] | None = None) -> dict:
    counts = counts or [900, 30, 500]  # box counts: 30:1, which a classifier's class_imbalance would flag
    return {
        "task": {"name": "detection", "options": {}, "metrics": DetectionTask.metrics, "reference_loss": None},
        "model": {"name": "yolo_grid", "options": {}},
        "num_classes": len(counts),
        "classes": [str(i) for i in range(len(counts))],
        "input_shape": [channels, 64, 64],
        "image_size": 64,
        "parameters": 2_000_000,
        "monitor": "val_map50",
        "data": {"sizes": {"train": 200, "val": 50}, "class_counts": {"train": counts}},
    }


def history(train_loss, val_loss, val_map50, lr=0.003):
    return [
        {"epoch": i + 1, "train_loss": t, "val_loss": v, "val_map50": m, "val_map50_95": m / 2, "lr": lr}
        for i, (t, v, m) in enumerate(zip(train_loss, val_loss, val_map50))
    ]


def config(**values):
    """A detection run's config.yaml as `cnnlab detect train` writes it: no augmentation, no early stopping."""
    base = {"task": "detection", "model": "yolo_grid", "data": "digits", "epochs": 10, "augment": {}}
    return {**base, "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.0}, "out": "runs/d", **values}


def ids(findings) -> set[str]:
    return {f.id for f in findings}


def words(findings) -> str:
    return " ".join(f.title + " " + f.summary + " " + f.advice for f in findings).lower()


CLASSIFICATION_WORDS = ("accuracy", "top-5", "more classes", "ln k", "macro f1", "images per class")


def test_a_detector_still_rising_is_told_to_train_longer():
    findings = diagnose(history([0.13, 0.09], [0.10, 0.077], [0.35, 0.57]), config(epochs=2), meta())
    assert ids(findings) == {"underfitting"}
    assert findings[0].changes == {"epochs": 10}
    assert not any(w in words(findings) for w in CLASSIFICATION_WORDS)


def test_a_low_plateau_is_high_bias_without_more_epochs():
    rows = history([0.10, 0.09, 0.089, 0.0888], [0.10, 0.095, 0.094, 0.094], [0.30, 0.33, 0.335, 0.336])
    (finding,) = diagnose(rows, config(epochs=4), meta())
    assert finding.id == "underfitting" and "epochs" not in finding.changes
    assert "backbone" in finding.advice


def test_a_good_detector_is_healthy():
    rows = history([0.10, 0.06, 0.05, 0.048], [0.08, 0.06, 0.055, 0.054], [0.6, 0.85, 0.92, 0.925])
    assert diagnose(rows, config(epochs=4), meta()) == []


def test_val_loss_turning_is_variance_with_box_aware_remedies():
    rows = history(
        [0.10, 0.06, 0.04, 0.025, 0.015, 0.01],
        [0.08, 0.06, 0.065, 0.075, 0.085, 0.095],
        [0.5, 0.7, 0.7, 0.68, 0.66, 0.64],
    )
    for channels, flip in ((1, False), (3, True)):
        findings = diagnose(rows, config(epochs=6), meta(channels))
        assert {"high_variance", "trained_too_long", "inadequate_regularization"} <= ids(findings)
        assert not {"class_imbalance", "limited_data", "complex_architecture"} & ids(findings)
        changes = merge_changes(findings)
        augment = {k.removeprefix("augment."): v for k, v in changes.items() if k.startswith("augment.")}
        assert augment and set(augment) <= set(DetectionAugmentSpec.known_keys())
        assert not set(augment) & DetectionTask.forbidden_augmentations
        assert ("flip" in augment) is flip  # a mirrored digit is another glyph; photos may be mirrored
        DetectionAugmentSpec.from_mapping(augment)
        fixed = prescribed_config(config(epochs=6), changes, "/tmp/never_written")
        assert fixed.task == "detection" and fixed.early_stopping.patience is not None
        assert not any(w in words(findings) for w in CLASSIFICATION_WORDS)


def test_with_augmentation_on_the_stronger_remedy_is_mosaic():
    rows = history(
        [0.10, 0.06, 0.04, 0.025, 0.015, 0.01],
        [0.08, 0.06, 0.065, 0.075, 0.085, 0.095],
        [0.5, 0.7, 0.7, 0.68, 0.66, 0.64],
    )
    findings = diagnose(rows, config(epochs=6, augment={"scale": 0.2}), meta())
    variance = next(f for f in findings if f.id == "high_variance")
    assert variance.changes.get("augment.mosaic") == 0.5 and "augment.erase" not in variance.changes


def test_learning_rate_spikes_are_read_against_the_first_epoch():
    rows = history([0.12, 0.08, 0.15, 0.09, 0.14], [0.1, 0.08, 0.12, 0.09, 0.12], [0.3, 0.5, 0.4, 0.55, 0.5])
    findings = diagnose(rows, config(epochs=5), meta())
    rate = next(f for f in findings if f.id == "learning_rate")
    assert rate.evidence["direction"] == "high" and rate.changes["optimizer.lr"] < 0.003


def test_nan_loss_is_divergence():
    rows = history([0.12, float("nan")], [0.1, float("nan")], [0.3, 0.0])
    assert "divergence" in ids(diagnose(rows, config(epochs=2), meta()))
