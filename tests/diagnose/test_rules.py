"""Each finding triggers on its constructed case and stays silent on a healthy run."""

from __future__ import annotations

import math

import pytest
from torch import nn

from cnnlab.diagnose import FINDING_IDS, diagnose, verdict
from tests.diagnose import cases


def ids(findings) -> set[str]:
    return {f.id for f in findings}


def test_finding_ids_are_stable():
    assert FINDING_IDS == (
        "divergence",
        "learning_rate",
        "underfitting",
        "high_variance",
        "trained_too_long",
        "complex_architecture",
        "inadequate_regularization",
        "limited_data",
        "class_imbalance",
    )


def test_healthy_run_gets_no_finding():
    findings = diagnose(*cases.healthy())
    assert findings == []
    assert verdict(findings) == "healthy"


def test_healthy_run_without_any_regularizer_is_still_healthy():
    rows, cfg, meta = cases.healthy()
    cfg = cases.config(augment={}, dropout=None, optimizer={"weight_decay": 0.0}, early_stopping={"patience": None})
    assert diagnose(rows, cfg, meta) == []


def test_overfitting_run_is_diagnosed_with_evidence():
    findings = diagnose(*cases.overfitting())
    assert {
        "high_variance",
        "trained_too_long",
        "limited_data",
        "complex_architecture",
        "inadequate_regularization",
    } <= ids(findings)
    assert "underfitting" not in ids(findings)
    assert verdict(findings) == "overfitting"
    variance = next(f for f in findings if f.id == "high_variance")
    assert variance.severity == "critical"  # 14-point gap and a rising validation loss
    assert variance.evidence["accuracy_gap_end"] == pytest.approx(1.0 - 0.858)
    assert variance.evidence["best_epoch"] == 6
    assert variance.evidence["gap_opened_epoch"] == 2
    assert variance.evidence["val_loss_min_epoch"] == 7
    assert "14.2 points" in variance.summary and "epoch 7" in variance.summary
    assert findings[0].id == "high_variance"  # most severe first


def test_gap_within_validation_noise_is_not_an_alarm():
    rows, cfg, meta = cases.healthy()
    for row in rows:
        row["val_accuracy"] -= 0.06  # 6 points below train, but measured on only 50 images (2 SE = 6.8 points)
    meta["data"]["sizes"]["val"] = 50
    assert "high_variance" not in ids(diagnose(rows, cfg, meta))
    meta["data"]["sizes"]["val"] = 6000
    assert "high_variance" in ids(diagnose(rows, cfg, meta))


def test_trained_too_long_needs_decline_and_no_early_stopping():
    rows, cfg, meta = cases.overfitting()
    finding = next(f for f in diagnose(rows, cfg, meta) if f.id == "trained_too_long")
    assert finding.evidence["epochs_past_best"] == 24
    assert finding.changes == {"early_stopping.patience": 5}
    assert "--early-stopping.patience 5" in finding.advice
    cfg["early_stopping"] = {"patience": 3}
    assert "trained_too_long" not in ids(diagnose(rows, cfg, meta))


def test_limited_data_and_complex_architecture_suggest_a_smaller_zoo_model():
    findings = {f.id: f for f in diagnose(*cases.overfitting())}
    limited = findings["limited_data"]
    assert limited.evidence["min_samples_per_class"] == 100
    assert limited.evidence["parameters_per_sample"] == pytest.approx(11_175.37, rel=1e-4)
    complex_ = findings["complex_architecture"]
    assert complex_.changes["model"] == "lenet5_modern"  # the largest small-input model under 100 params/image
    assert complex_.evidence["suggested_parameters"] == 61_706
    assert complex_.changes["dropout"] == 0.5


def test_inadequate_regularization_lists_what_was_unused_from_the_model_itself():
    finding = next(f for f in diagnose(*cases.overfitting()) if f.id == "inadequate_regularization")
    # resnet18 has batch norm layers (read from the rebuilt model) but no dropout option
    assert finding.evidence["unused"] == ["augmentation", "dropout", "weight_decay", "early_stopping"]
    assert finding.evidence["not_offered_by_model"] == ["dropout"]
    assert finding.changes == {
        "augment.rotate": 10,
        "augment.scale": 0.1,
        "augment.translate": 0.1,
        "optimizer.name": "adamw",
        "optimizer.weight_decay": 0.05,
        "early_stopping.patience": 5,
    }
    assert finding.severity == "warning"


def test_the_models_own_layers_decide_dropout_and_batch_norm():
    rows, cfg, meta = cases.overfitting()
    cfg["model"], meta["model"] = "vgg11", {"name": "vgg11", "options": {}}
    # A stand-in for VGG-11's layers (building the real 129M-parameter model takes seconds): dropout 0.5 in the
    # classifier by default, no batch norm unless asked for.
    layers = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.LazyLinear(10))
    finding = next(f for f in diagnose(rows, cfg, meta, model=layers) if f.id == "inadequate_regularization")
    assert "dropout" not in finding.evidence["unused"]
    assert finding.evidence["dropout"] == 0.5
    assert finding.changes["batch_norm"] is True  # vgg11 takes batch_norm=True


def test_underfitting_small_model_one_epoch():
    rows = cases.history([2.2], [0.25], [2.05], [0.41], lr=1e-3)
    cfg = cases.config(epochs=1)
    findings = diagnose(rows, cfg, cases.meta())
    assert "underfitting" in ids(findings) and "high_variance" not in ids(findings)
    assert verdict(findings) == "underfitting"
    finding = next(f for f in findings if f.id == "underfitting")
    assert finding.severity == "critical"
    assert finding.changes == {"epochs": 10}


def test_underfitting_plateau_prescribes_a_bigger_model():
    losses = [1.2, 0.9, 0.8, 0.78, 0.775, 0.774]
    rows = cases.history(
        losses,
        [0.6, 0.7, 0.72, 0.73, 0.73, 0.73],
        [0.8, 0.78, 0.77, 0.77, 0.77, 0.77],
        [0.71, 0.72, 0.72, 0.73, 0.73, 0.73],
    )
    finding = next(f for f in diagnose(rows, cases.config(epochs=6), cases.meta()) if f.id == "underfitting")
    assert finding.evidence["still_improving"] is False
    assert finding.changes["model"] == "resnet20"  # the next small-input model up from lenet5_modern


def test_divergence_on_nan_loss():
    rows = cases.history([0.9, 0.7], [0.7, 0.8], [0.8, 0.6], [0.75, 0.8], lr=1.0) + [cases.nan_row(3)]
    cfg = cases.config(precision="fp16", optimizer={"lr": 1.0})
    findings = diagnose(rows, cfg, cases.meta())
    assert findings[0].id == "divergence" and findings[0].severity == "critical"
    assert findings[0].evidence["epoch"] == 3 and findings[0].evidence["last_finite_train_loss"] == 0.7
    assert findings[0].changes == {
        "optimizer.lr": 0.1,
        "grad_clip": 1.0,
        "schedule.warmup_epochs": 1,
        "precision": "bf16",
    }
    assert verdict(findings) == "diverged"
    assert "learning_rate" not in ids(findings)


def test_learning_rate_too_high_from_loss_spikes():
    rows = cases.history(
        [0.9, 0.6, 1.3, 0.7, 0.65, 1.2],
        [0.7, 0.8, 0.6, 0.8, 0.8, 0.65],
        [0.7, 0.6, 1.1, 0.6, 0.6, 1.0],
        [0.75, 0.8, 0.6, 0.8, 0.8, 0.7],
        lr=0.5,
    )
    finding = next(
        f for f in diagnose(rows, cases.config(optimizer={"lr": 0.5}), cases.meta()) if f.id == "learning_rate"
    )
    assert finding.evidence["direction"] == "high" and finding.evidence["spikes"] == 2
    assert finding.changes == {"optimizer.lr": 0.05}


def test_learning_rate_too_low_from_a_slow_straight_loss():
    losses = [2.28, 2.22, 2.16, 2.10, 2.04, 1.98]
    accuracy = [0.15, 0.22, 0.3, 0.36, 0.41, 0.45]
    rows = cases.history(losses, accuracy, [v - 0.02 for v in losses], [a + 0.02 for a in accuracy], lr=1e-4)
    findings = diagnose(rows, cases.config(epochs=6, optimizer={"lr": 1e-4}), cases.meta())
    finding = next(f for f in findings if f.id == "learning_rate")
    assert finding.evidence["direction"] == "low"
    assert finding.changes == {"optimizer.lr": 0.1}  # SGD's typical rate: 1e-4 is 1000x below it
    assert "underfitting" in ids(findings) and verdict(findings) == "underfitting"


def test_loss_stuck_at_chance_with_a_huge_rate_is_too_high():
    chance = math.log(10)
    rows = cases.history([chance * 1.01, chance, chance * 1.005], [0.1, 0.1, 0.1], [chance] * 3, [0.1] * 3, lr=0.5)
    finding = next(
        f
        for f in diagnose(rows, cases.config(optimizer={"name": "adam", "lr": 0.5}), cases.meta())
        if f.id == "learning_rate"
    )
    assert finding.evidence["direction"] == "high" and finding.severity == "critical"


@pytest.mark.parametrize(
    ("counts", "severity"), [([5000, 2000], "info"), ([5000, 800], "warning"), ([5000, 200], "critical")]
)
def test_class_imbalance_severity_follows_the_ratio(counts, severity):
    rows, cfg, _ = cases.healthy()
    findings = diagnose(rows, cfg, cases.meta(counts=counts))
    finding = next(f for f in findings if f.id == "class_imbalance")
    assert finding.severity == severity
    assert finding.evidence["ratio"] == pytest.approx(counts[0] / counts[1])
    assert finding.changes == {"class_weights": "balanced"} and "macro F1" in finding.advice
    assert "--class-weights balanced" in finding.advice


@pytest.mark.parametrize(
    ("already", "prescribed"),
    [
        ({}, {"class_weights": "balanced"}),
        ({"class_weights": "balanced"}, {"sampler": "balanced"}),
        ({"class_weights": "1,5", "sampler": "balanced"}, {"focal_gamma": 2.0}),
        ({"class_weights": "balanced", "sampler": "balanced", "focal_gamma": 2.0}, {}),
    ],
)
def test_class_imbalance_prescribes_the_next_remedy_as_real_config_keys(already, prescribed):
    from cnnlab.train.config import TrainConfig

    rows, cfg, _ = cases.healthy()
    finding = next(
        f for f in diagnose(rows, {**cfg, **already}, cases.meta(counts=[5000, 200])) if f.id == "class_imbalance"
    )
    assert finding.changes == prescribed
    TrainConfig(**{**already, **finding.changes})  # every prescribed key is a TrainConfig field with a valid value


def test_class_imbalance_quotes_macro_f1_from_results():
    rows, cfg, _ = cases.healthy()
    results = {"evaluated_split": "test", "test": {"accuracy": 0.93, "macro_f1": 0.71}, "best_epoch": 11}
    finding = diagnose(rows, cfg, cases.meta(counts=[5000, 200]), results=results)[0]
    assert finding.evidence["macro_f1"] == 0.71 and "macro F1 0.710" in finding.summary


def test_no_validation_split_skips_variance_rules():
    rows = cases.history([0.3, 0.1, 0.05], [0.9, 0.97, 0.99])
    assert diagnose(rows, cases.config(val_split=0.0), cases.meta()) == []


def test_a_wide_loss_gap_alone_is_high_variance():
    rows, cfg, meta = cases.healthy()
    for index, row in enumerate(rows):
        row["val_loss"] = 0.15 + 0.01 * (len(rows) - 1 - index)  # falling to 0.15: no turn
    for row in rows[-4:]:
        row.update(train_loss=0.005, train_accuracy=0.999, val_accuracy=0.97)
    finding = next(f for f in diagnose(rows, cfg, meta) if f.id == "high_variance")
    assert finding.severity == "warning"  # 2.9-point accuracy gap: only the loss says it
    assert finding.evidence["loss_ratio_end"] == 30.0 and "30x the training loss" in finding.summary
