"""The standard remedies as config changes (dotted TrainConfig keys), with the values the literature uses.

Each function returns only the changes the run does not already have, so prescriptions never repeat settings.
"""

from __future__ import annotations

from typing import Any

from cnnlab.diagnose.facts import RunFacts

# LeCun et al. 1998 trained on digits distorted by small rotations, scalings and shifts (0.95% -> 0.8% test
# error); for grey-scale images whose orientation carries meaning (digits, X-rays) these keep the label intact.
GREYSCALE_AUGMENT = {"rotate": 10, "scale": 0.1, "translate": 0.1}
# He et al. 2016's CIFAR recipe: pad 4 pixels and crop back at random, mirror left-right. For colour photos.
COLOUR_AUGMENT = {"crop": 4, "flip": True}
# Detection (box-aware, cnnlab.tasks.detection.augment): zoom and shift, as YOLO trains (Redmon et al. 2016:
# scaling and translation of up to 20% of the image); photos also get a mirror and colour jitter. Grey-scale
# images keep their orientation (a mirrored digit is another glyph). Once those are on, mosaic (YOLOv4) adds
# context and scale variety.
DETECTION_AUGMENT = {"scale": 0.2, "translate": 0.1}
DETECTION_COLOUR_AUGMENT = {"flip": True, "scale": 0.2, "translate": 0.1, "jitter": 0.4}
DETECTION_EXTRA_AUGMENT = {"mosaic": 0.5}
# Once the geometric augmentations are on, random erasing (Zhong et al. 2017) adds occlusion robustness.
EXTRA_AUGMENT = {"erase": 0.25}
# Srivastava et al. 2014: p = 0.5 for fully connected hidden units is close to optimal across tasks.
DROPOUT_RATE = 0.5
# SGD: 5e-4, He et al. 2016's CIFAR value (and examples/lenet5_mnist.yaml). Adam's coupled L2 penalty is
# largely undone by its per-weight step scaling (Loshchilov & Hutter 2019), so Adam runs move to AdamW with
# decoupled decay 0.05 (the DeiT / ConvNeXt value).
SGD_WEIGHT_DECAY = 5e-4
ADAMW_WEIGHT_DECAY = 0.05
# Early-stopping patience: about a sixth of the planned epochs, so a noisy validation curve (small validation
# sets, batch norm on small batches) does not stop a run that is still improving; at least 3, at most 10.
PATIENCE_FRACTION = 1 / 6
MIN_PATIENCE, MAX_PATIENCE = 3, 10
# Typical starting learning rates: SGD with momentum 0.1 (He et al. 2016), Adam/AdamW 1e-3 (Kingma & Ba 2015).
TYPICAL_LR = {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3, "adadelta": 1.0}  # adadelta: Zeiler 2012, Kim 2014


def allowed(facts: RunFacts, changes: dict[str, Any]) -> dict[str, Any]:
    """Drop the augmentations the run's task forbids (e.g. flips where laterality matters)."""
    return {k: v for k, v in changes.items() if k.removeprefix("augment.") not in facts.forbidden_augmentations}


def augmentation(facts: RunFacts) -> dict[str, Any]:
    return allowed(facts, _augmentation(facts))


def _augmentation(facts: RunFacts) -> dict[str, Any]:
    """The geometric augmentations that suit the images' kind, as `augment.*` changes (none if some are on)."""
    if facts.regularization.augment:
        return {}
    colour = facts.input_shape is not None and facts.input_shape[0] == 3
    if facts.task == "detection":
        return {f"augment.{k}": v for k, v in (DETECTION_COLOUR_AUGMENT if colour else DETECTION_AUGMENT).items()}
    if colour:
        side = min(facts.input_shape[1:])
        return {"augment.crop": max(4, side // 8), "augment.flip": True}
    return {f"augment.{key}": value for key, value in GREYSCALE_AUGMENT.items()}


def stronger_augmentation(facts: RunFacts) -> dict[str, Any]:
    """Augmentation if there is none, else random erasing on top of what is there."""
    if not facts.regularization.augment:
        return augmentation(facts)
    more = DETECTION_EXTRA_AUGMENT if facts.task == "detection" else EXTRA_AUGMENT
    extra = {f"augment.{k}": v for k, v in more.items() if k not in facts.regularization.augment}
    return allowed(facts, extra)


def dropout(facts: RunFacts) -> dict[str, Any]:
    """Dropout 0.5, if the model takes a `dropout` option and uses less."""
    if "dropout" in facts.model_options and facts.regularization.dropout < DROPOUT_RATE:
        return {"dropout": DROPOUT_RATE}
    return {}


def batch_norm(facts: RunFacts) -> dict[str, Any]:
    if "batch_norm" in facts.model_options and not facts.regularization.batch_norm:
        return {"batch_norm": True}
    return {}


def weight_decay(facts: RunFacts) -> dict[str, Any]:
    """Weight decay at the recommended value for the optimizer, if the run has none or less."""
    if facts.regularization.l1 or facts.regularization.l2:
        return {}  # an explicit L1/L2 penalty is already doing this job
    current = facts.regularization.weight_decay
    if facts.optimizer_name == "adadelta":
        # Its per-weight step scaling undoes a coupled L2 penalty, as Adam's does (Loshchilov & Hutter 2019), and it
        # has no decoupled form; Kim 2014 regularises it with dropout, max-norm and the best dev epoch instead.
        return {}
    if facts.optimizer_name == "sgd":
        return {"optimizer.weight_decay": SGD_WEIGHT_DECAY} if current < SGD_WEIGHT_DECAY else {}
    changes: dict[str, Any] = {}
    if facts.optimizer_name == "adam":
        changes["optimizer.name"] = "adamw"
    if current < ADAMW_WEIGHT_DECAY or changes:
        changes["optimizer.weight_decay"] = ADAMW_WEIGHT_DECAY
    return changes


def patience_for(facts: RunFacts) -> int:
    return min(max(round(facts.epochs_planned * PATIENCE_FRACTION), MIN_PATIENCE), MAX_PATIENCE)


def early_stopping(facts: RunFacts) -> dict[str, Any]:
    patience = facts.regularization.early_stopping_patience
    if patience is None or patience > patience_for(facts):
        return {"early_stopping.patience": patience_for(facts)}
    return {}


def regularize(facts: RunFacts, stronger: bool = False) -> dict[str, Any]:
    """Every regularizer the run lacks (with `stronger`, also more augmentation where some is on)."""
    changes = stronger_augmentation(facts) if stronger else augmentation(facts)
    for remedy in (dropout, batch_norm, weight_decay, early_stopping):
        changes.update(remedy(facts))
    return changes


def typical_lr(facts: RunFacts) -> float:
    return TYPICAL_LR.get(facts.optimizer_name, TYPICAL_LR["sgd"])
