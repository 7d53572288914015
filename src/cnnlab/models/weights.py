"""Load torchvision checkpoints (alexnet, vgg*, resnet*) into zoo models.

Our AlexNet, VGG and ImageNet ResNet use torchvision's module names, so a torchvision state dict loads as is. What
this adds over `load_state_dict` is an error a user can act on: a `ConfigError` that names the missing, unexpected
or mis-shaped keys, and says how to fine-tune when only the classifier differs. Pretrained files must be obtained
separately (e.g. torchvision's `weights=...` download cache); nothing is downloaded here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from cnnlab.errors import ConfigError

StateDict = Mapping[str, torch.Tensor]
_SHOWN = 8  # keys listed per problem before "... and N more"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(repr(key) for key in keys[:_SHOWN])
    return shown + (f", ... and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def read_state_dict(source: StateDict | str | os.PathLike) -> StateDict:
    """A state dict from a mapping or a file (weights only: nothing in it can run code), unwrapped."""
    if isinstance(source, Mapping):
        state = source
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"weights file {str(path)!r} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle, zip and weights_only errors have no common base class
            message = f"weights file {str(path)!r} could not be read as a PyTorch checkpoint: {error}"
            raise ConfigError(message) from error
        if not isinstance(state, Mapping):
            raise ConfigError(f"weights file {str(path)!r} holds a {type(state).__name__}, not a state dict")
    # Training checkpoints often wrap the weights; DataParallel prefixes every key with "module.".
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), Mapping):
            state = state[wrapper]
            break
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    return state


def load_torchvision_weights(model: nn.Module, state_dict: StateDict | str | os.PathLike) -> nn.Module:
    """Load a torchvision state dict (or a path to a .pth file holding one) into `model`, strictly.

    Returns the model. Raises `ConfigError` naming the keys when the checkpoint does not fit the architecture.
    """
    state = read_state_dict(state_dict)
    expected = model.state_dict()
    name = type(model).__name__

    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listing(unexpected)}")
        hint = "Is it a torchvision checkpoint of the same architecture (e.g. resnet50 for resnet50)?"
        if any(key.endswith("running_mean") for key in unexpected):
            hint = "The checkpoint has BatchNorm layers the model lacks: use the _bn variant (e.g. vgg16_bn)."
        elif any(key.endswith("running_mean") for key in missing):
            hint = "The model has BatchNorm layers the checkpoint lacks: use the variant without _bn (e.g. vgg16)."
        raise ConfigError(f"checkpoint does not match {name}: {'; '.join(parts)}. {hint}")

    mismatched = [key for key in expected if tuple(state[key].shape) != tuple(expected[key].shape)]
    if mismatched:
        details = "; ".join(
            f"{key!r}: checkpoint {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
            for key in mismatched[:_SHOWN]
        )
        message = f"checkpoint does not match {name}: shape mismatch for {details}"
        classifier = getattr(model, "classifier_name", None)
        classifier_weight = f"{classifier}.weight"
        first_key = next(iter(expected))
        if classifier and classifier_weight in state and all(key.startswith(classifier + ".") for key in mismatched):
            classes = state[classifier_weight].shape[0]
            message += (
                f". Only the classifier differs: the checkpoint has {classes} classes. To fine-tune, create the model"
                f" with num_classes={classes}, load the checkpoint, then call model.reset_classifier(<your classes>)"
            )
        elif mismatched[0] == first_key and state[first_key].dim() == 4:
            message += (
                f". The first conv differs: the checkpoint expects {state[first_key].shape[1]} input channels;"
                " create the model with that in_channels"
            )
        raise ConfigError(message)

    model.load_state_dict(state, strict=True)
    return model
