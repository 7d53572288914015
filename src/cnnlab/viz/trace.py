"""Which modules `forward_features` runs, in order, with their output shapes.

Grad-CAM, feature maps and filters all need to find layers in models they know nothing about (zoo models,
layer-list nets, users' own). Tracing one forward pass with hooks finds them from what actually runs, not from
attribute names, so the same code works whether the convs sit in `features`, in `layer1..4` or elsewhere.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import ConfigError


@dataclass
class TracedModule:
    name: str
    module: nn.Module
    output_shape: tuple[int, ...]  # without the batch dimension
    order: int  # completion order of its last call: leaves complete in execution order

    @property
    def spatial(self) -> tuple[int, ...]:
        """(H, W) of a C×H×W output, (D, H, W) of a C×D×H×W one; () for anything else (flat, sequence)."""
        return self.output_shape[1:] if len(self.output_shape) in (3, 4) else ()


def is_conv(module: nn.Module) -> bool:
    """True for a convolution layer: torch's, or a custom one named like one (e.g. LeNet-5's PartialConv2d).

    A container named like one (a `ConvBlock` holding convs) is not a layer, so it does not count.
    """
    named_like = isinstance(module, nn.modules.conv._ConvNd) or "conv" in type(module).__name__.lower()
    return named_like and not any(is_conv(child) for child in module.children())


def is_activation(module: nn.Module) -> bool:
    """An element-wise non-linearity: torch's (ReLU, GELU, Tanh, ...) or cnnlab's (ScaledTanh)."""
    return type(module).__module__ in ("torch.nn.modules.activation", "cnnlab.layers.activations")


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode for the duration: a look inside must not update batch-norm statistics or drop units."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def features_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's feature map: `forward_features` where the model has the zoo interface, else its full output."""
    forward = getattr(model, "forward_features", None)
    return forward(x) if callable(forward) else model(x)


@torch.no_grad()
def trace_features(model: nn.Module, x: torch.Tensor) -> list[TracedModule]:
    """Every submodule that runs in `forward_features(x)`, ordered by when its (last) call finished."""
    traced: dict[str, TracedModule] = {}
    counter = iter(range(1 << 30))

    def hook_for(name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else ()
            traced[name] = TracedModule(name, module, shape, next(counter))

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in model.named_modules() if n]
    try:
        with evaluating(model):
            features_of(model, x[:1])
    finally:
        for handle in handles:
            handle.remove()
    return sorted(traced.values(), key=lambda t: t.order)


def top_level(traced: list[TracedModule]) -> list[TracedModule]:
    """The shallowest run modules, descending through lone wrappers (e.g. a model whose only stage is `features`)."""
    by_name = {t.name: t for t in traced}

    def parent(name: str) -> str:
        return name.rpartition(".")[0]

    level = [t for t in traced if parent(t.name) not in by_name]
    while len(level) == 1:
        children = [t for t in traced if parent(t.name) == level[0].name]
        if not children:
            break
        level = children
    return level


def contains_conv(module: nn.Module) -> bool:
    return any(is_conv(m) for m in module.modules())


def find_module(model: nn.Module, name: str) -> nn.Module:
    """The submodule called `name` (as in `model.named_modules()`), or a ConfigError suggesting close names."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    convs = [n for n, m in modules.items() if n and is_conv(m)]
    close = difflib.get_close_matches(name, list(modules), n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"conv layers: {', '.join(convs) or 'none'}"
    raise ConfigError(f"layer {name!r} not found in {type(model).__name__}; {hint}")
