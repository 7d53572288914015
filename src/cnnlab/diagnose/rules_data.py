"""Data and capacity: limited_data, complex_architecture, inadequate_regularization and class_imbalance."""

from __future__ import annotations

from typing import Any

from cnnlab.diagnose import capacity, remedies
from cnnlab.diagnose.facts import RunFacts
from cnnlab.diagnose.findings import Finding
from cnnlab.diagnose.prescribe import make_finding
from cnnlab.diagnose.rules_fit import variance

# Below ~1,000 training images per class, published learning curves are still steep (Hestness et al. 2017:
# error falls as a power law of the data size); the zoo's architectures were shown to train from scratch at
# MNIST's ~6,000, CIFAR-10's 5,000 and ImageNet's ~1,300 images per class.
LIMITED_SAMPLES_PER_CLASS = 1000
# More trainable parameters than 100 per training image: the network can memorise its training set outright
# (Zhang et al. 2017 fit random labels with such ratios); LeNet-5 on MNIST has ~1, ResNet-20 on CIFAR-10 ~6.
PARAMS_PER_SAMPLE_HIGH = 100
# A proposed replacement must have at most a tenth of the parameters, or it changes too little to matter.
SMALLER_FACTOR = 10
# Buda, Maki & Mazurowski 2018 ("A systematic study of the class imbalance problem in CNNs"): the harm grows
# with the majority/minority ratio; from ~2:1 accuracy starts to hide the minority classes, and by 20:1 a
# model can ignore them outright.
IMBALANCE_INFO = 2.0
IMBALANCE_WARNING = 5.0
IMBALANCE_CRITICAL = 20.0
# Three or more of the five classic regularizers missing from an overfitting run is a warning; fewer is info.
MANY_MISSING = 3


def _learning_curve_says_more(facts: RunFacts) -> bool:
    return bool((facts.learning_curve or {}).get("more_data_helps"))


def limited_data(facts: RunFacts) -> Finding | None:
    """Few images per class for the model to learn from (reported when the run shows it matters)."""
    per_class = facts.samples_per_class
    if per_class is None or per_class >= LIMITED_SAMPLES_PER_CLASS:
        return None
    shows_variance = facts.has_validation and variance(facts).shows
    ratio = facts.params_per_sample
    big = ratio is not None and ratio >= PARAMS_PER_SAMPLE_HIGH
    if not (shows_variance or big or _learning_curve_says_more(facts)):
        return None
    evidence = {
        "train_samples": facts.train_size,
        "num_classes": facts.num_classes,
        "min_samples_per_class": per_class,
        "parameters": facts.parameters,
        "parameters_per_sample": ratio,
        "more_data_helps": (facts.learning_curve or {}).get("more_data_helps"),
    }
    summary = (
        f"{facts.train_size or 0:,} training images for {facts.num_classes} classes "
        f"(fewest in one class: {per_class:.0f}, against ~{LIMITED_SAMPLES_PER_CLASS} a CNN usually needs from scratch)"
        + (f"; {ratio:,.0f} parameters per training image." if ratio is not None else ".")
    )
    # Augmentation is a regularizer: prescribed only where the run shows variance, never to a model that underfits.
    changes = remedies.augmentation(facts) if shows_variance else {}
    words = (
        "Collect more labelled images if at all possible (`cnnlab learning-curve` measures whether it pays); "
        "meanwhile augmentation multiplies the data you have, and starting from pretrained weights "
        "(`cnnlab.models.load_torchvision_weights`) needs far fewer images."
    )
    severity = "warning" if shows_variance or _learning_curve_says_more(facts) else "info"
    return make_finding(
        facts.config,
        "limited_data",
        severity,
        "Limited data: few training images per class",
        evidence,
        summary,
        changes,
        words,
    )


def _replacement(facts: RunFacts) -> tuple[str, int] | None:
    """The largest small-input zoo model with at most PARAMS_PER_SAMPLE_HIGH params per image (else the smallest)."""
    if facts.input_shape is None or facts.parameters is None:
        return None
    smaller = capacity.smaller_models(facts.input_shape, facts.num_classes, facts.parameters // SMALLER_FACTOR)
    if not smaller:
        return None
    budget = PARAMS_PER_SAMPLE_HIGH * (facts.train_size or 0)
    fitting = [(name, params) for name, params in smaller if params <= budget]
    return fitting[0] if fitting else smaller[-1]


def _memorised_epoch(facts: RunFacts) -> int | None:
    """First epoch whose training accuracy reached 99%: the run's own measure of how fast it memorises."""
    for index, row in enumerate(facts.history):
        if float(row.get("train_accuracy") or 0.0) >= 0.99:
            return int(row.get("epoch", index + 1))
    return None


def complex_architecture(facts: RunFacts) -> Finding | None:
    """A model with far more capacity than the data can constrain, in a run that overfits."""
    ratio = facts.params_per_sample
    if ratio is None or ratio < PARAMS_PER_SAMPLE_HIGH or not facts.has_validation or not variance(facts).shows:
        return None
    replacement = _replacement(facts)
    memorised = _memorised_epoch(facts)
    evidence = {
        "model": facts.model_name,
        "parameters": facts.parameters,
        "train_samples": facts.train_size,
        "parameters_per_sample": ratio,
        "memorised_epoch": memorised,
        "best_val_accuracy": facts.best_val_accuracy,
        "suggested_model": replacement[0] if replacement else None,
        "suggested_parameters": replacement[1] if replacement else None,
    }
    summary = (
        f"{facts.model_name or 'the model'} has {facts.parameters:,} parameters for {facts.train_size:,} "
        f"training images ({ratio:,.0f} per image)"
    )
    summary += f"; it fit 99% of its training set by epoch {memorised}." if memorised else "."
    changes: dict[str, Any] = {}
    words = "Use a smaller network (fewer or narrower layers)."
    if replacement:
        name, params = replacement
        changes = {"model": name, "layers": None}
        if "dropout" in capacity.builder_options(name):
            changes["dropout"] = remedies.DROPOUT_RATE
        words = (
            f"Switch to {name} ({params:,} parameters, {params / max(facts.train_size or 1, 1):,.0f} per "
            "image), a zoo model built for inputs this size."
        )
    return make_finding(
        facts.config,
        "complex_architecture",
        "warning",
        "Complex architecture: far more parameters than the data can pin down",
        evidence,
        summary,
        changes,
        words,
    )


_REGULARIZER_WORDS = {
    "augmentation": "data augmentation",
    "dropout": "dropout",
    "batch_norm": "batch normalization",
    "weight_decay": "weight decay / L1 / L2",
    "early_stopping": "early stopping",
}


def _unavailable(facts: RunFacts, unused: list[str]) -> list[str]:
    """Unused regularizers that the model offers no option for (ResNets have no dropout, LeNet-5 no BN)."""
    offered = {"dropout": "dropout" in facts.model_options, "batch_norm": "batch_norm" in facts.model_options}
    return [name for name in unused if name in offered and not offered[name]]


def inadequate_regularization(facts: RunFacts) -> Finding | None:
    """An overfitting run that left some of the standard regularizers unused."""
    if not facts.has_validation or not variance(facts).shows:
        return None
    reg = facts.regularization
    unused = reg.unused()
    if not unused:
        return None
    unavailable = _unavailable(facts, unused)
    evidence = {
        "unused": unused,
        "not_offered_by_model": unavailable,
        "augment": dict(reg.augment),
        "dropout": reg.dropout,
        "batch_norm": reg.batch_norm,
        "weight_decay": reg.weight_decay,
        "l1": reg.l1,
        "l2": reg.l2,
        "early_stopping_patience": reg.early_stopping_patience,
    }
    used = [word for name, word in _REGULARIZER_WORDS.items() if name not in unused]
    summary = f"This overfitting run used no {', no '.join(_REGULARIZER_WORDS[n] for n in unused)}" + (
        f" (it did use {', '.join(used)})." if used else "."
    )
    words = "Add the missing regularizers."
    if unavailable:
        model = facts.model_name or "the model"
        words += f" {model} has no option for {' or '.join(_REGULARIZER_WORDS[n] for n in unavailable)}."
    severity = "warning" if len(unused) >= MANY_MISSING else "info"
    return make_finding(
        facts.config,
        "inadequate_regularization",
        severity,
        "Inadequate regularization: standard defences against overfitting unused",
        evidence,
        summary,
        remedies.regularize(facts),
        words,
    )


def _imbalance_evidence(facts: RunFacts) -> dict[str, Any]:
    counts = facts.class_counts or []
    largest, smallest = max(range(len(counts)), key=counts.__getitem__), min(range(len(counts)), key=counts.__getitem__)
    names = facts.classes if len(facts.classes) == len(counts) else [str(i) for i in range(len(counts))]
    evidence: dict[str, Any] = {
        "ratio": counts[largest] / max(counts[smallest], 1),
        "largest_class": names[largest],
        "largest_count": counts[largest],
        "smallest_class": names[smallest],
        "smallest_count": counts[smallest],
    }
    results = facts.results or {}
    split = results.get("evaluated_split")
    scores = results.get(split) or {} if split else {}
    if scores.get("macro_f1") is not None:
        evidence.update(evaluated_split=split, accuracy=scores.get("accuracy"), macro_f1=scores["macro_f1"])
    for key in ("auc", "sensitivity", "specificity"):
        if isinstance(scores.get(key), (int, float)):
            evidence[key] = scores[key]
    return evidence


def _imbalance_remedy(config: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The next imbalance remedy the run has not used: class weights, then the balanced sampler, then focal loss."""
    judge = (
        "and judge the model by per-class recall and macro F1 (`cnnlab evaluate RUN`) or, for two classes, by the "
        "AUC and the sensitivity/specificity at the threshold chosen on validation, not by accuracy."
    )
    if not config.get("class_weights"):
        return {"class_weights": "balanced"}, (
            "Weight the loss by the inverse class frequency (class_weights: balanced; alternatives: sampler: balanced "
            f"draws every class equally often, focal_gamma: 2 down-weights the easy majority) {judge}"
        )
    if config.get("sampler", "shuffle") != "balanced":
        return {"sampler": "balanced"}, (
            f"The loss is already class-weighted; also draw every class equally often (sampler: balanced) {judge}"
        )
    if config.get("focal_gamma") is None:
        return {"focal_gamma": 2.0}, (
            f"Class weights and balanced sampling are on; focal loss (focal_gamma: 2) focuses on the hard cases {judge}"
        )
    return {}, f"Class weights, balanced sampling and focal loss are all on: collect more of the small classes {judge}"


def class_imbalance(facts: RunFacts) -> Finding | None:
    """The training classes are far from balanced, so accuracy can hide failure on the small ones."""
    counts = facts.class_counts
    if not counts or len(counts) < 2:
        return None
    evidence = _imbalance_evidence(facts)
    ratio = evidence["ratio"]
    if ratio < IMBALANCE_INFO:
        return None
    severity = "critical" if ratio >= IMBALANCE_CRITICAL else "warning" if ratio >= IMBALANCE_WARNING else "info"
    summary = (
        f"The largest training class ({evidence['largest_class']!r}, {evidence['largest_count']} images) has "
        f"{ratio:.1f}x the images of the smallest ({evidence['smallest_class']!r}, "
        f"{evidence['smallest_count']})."
    )
    if "macro_f1" in evidence:
        summary += (
            f" On {evidence['evaluated_split']}: accuracy {evidence['accuracy']:.3f}, "
            f"macro F1 {evidence['macro_f1']:.3f}."
        )
    changes, words = _imbalance_remedy(facts.config)
    return make_finding(
        facts.config,
        "class_imbalance",
        severity,
        "Class imbalance in the training data",
        evidence,
        summary,
        changes,
        words,
    )
