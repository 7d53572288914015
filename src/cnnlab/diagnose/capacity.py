"""Model capacity against the task: what a zoo model accepts, how many parameters it has, which smaller one fits."""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

# Models whose registered default input is at most this many pixels a side were designed for small images
# (LeNet-5 for 32x32 digits, the CIFAR ResNets for 32x32 photos); these are the ones worth proposing as smaller
# replacements. The ImageNet families (AlexNet, VGG, ResNet-18...) are what a user swaps away from.
SMALL_INPUT_SIDE = 64
# Paper-faithful reproductions (LeNet-5's fixed RBF output and scaled tanh, AlexNet's LRN) are baselines to
# compare with, not what to train on a new problem: they are never proposed as replacements.
HISTORICAL_MODELS = frozenset({"lenet5", "alexnet_paper"})


def builder_options(model_name: str | None) -> set[str]:
    """Keyword options a zoo builder takes (`dropout`, `batch_norm`, ...); empty for unknown or layer-list models."""
    if not model_name:
        return set()
    from cnnlab.errors import ConfigError
    from cnnlab.models import get_entry

    try:
        builder = get_entry(model_name).builder
    except ConfigError:
        return set()
    return set(inspect.signature(builder).parameters) - {"num_classes", "in_channels"}


def builder_default(model_name: str | None, option: str):
    """The default of one builder option (VGG's dropout is 0.5 unless the config says otherwise); None if absent."""
    if option not in builder_options(model_name):
        return None
    from cnnlab.models import get_entry

    default = inspect.signature(get_entry(model_name).builder).parameters[option].default
    return None if default is inspect.Parameter.empty else default


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@functools.lru_cache(maxsize=64)
def zoo_parameters(model_name: str, input_shape: tuple[int, int, int], num_classes: int) -> int | None:
    """Trainable parameters of a zoo model built for this input and class count; None if it cannot take the input.

    The model is built and run once on a zero image, so "fits" means it really accepts the shape (LeNet-5 pads
    28x28 to 32x32; VGG's five poolings need at least 32x32).
    """
    from cnnlab.models import create

    try:
        model = create(model_name, num_classes=num_classes, in_channels=input_shape[0]).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape))
    except Exception:  # any failure means "does not fit this input"
        return None
    if tuple(out.shape) != (2, num_classes):
        return None
    return count_parameters(model)


def small_zoo_models(spatial_dims: int = 2) -> list[str]:
    """Small-input zoo models for images (2) or volumes (3): a 2-D run is never offered a 3-D net, nor back."""
    from cnnlab.models import get_entry, list_models

    return [
        name
        for name in list_models()
        if get_entry(name).spatial_dims == spatial_dims
        and max(get_entry(name).default_input[1:]) <= SMALL_INPUT_SIDE
        and name not in HISTORICAL_MODELS
    ]


def smaller_models(input_shape: tuple[int, int, int], num_classes: int, below: int) -> list[tuple[str, int]]:
    """(name, parameters) of small-input zoo models that accept `input_shape` and have fewer than `below` params,
    largest first."""
    found = []
    for name in small_zoo_models(len(input_shape) - 1):
        params = zoo_parameters(name, tuple(input_shape), num_classes)
        if params is not None and params < below:
            found.append((name, params))
    return sorted(found, key=lambda item: -item[1])


def larger_models(input_shape: tuple[int, int, int], num_classes: int, above: int) -> list[tuple[str, int]]:
    """(name, parameters) of small-input zoo models that accept `input_shape` with more than `above` params,
    smallest first (the next step up in capacity)."""
    found = []
    for name in small_zoo_models(len(input_shape) - 1):
        params = zoo_parameters(name, tuple(input_shape), num_classes)
        if params is not None and params > above:
            found.append((name, params))
    return sorted(found, key=lambda item: item[1])


def model_regularizers(model: nn.Module) -> tuple[float, bool]:
    """(largest dropout probability among the model's dropout layers, whether it has batch-norm layers)."""
    dropout = max((m.p for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)), default=0.0)
    batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return float(dropout), batch_norm
