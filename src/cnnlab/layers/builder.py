"""Build a network from a YAML layer list, inferring every input size from the layer before it.

```yaml
input: 1x28x28
layers:
  - conv: {out: 6, kernel: 5, padding: 2}
  - act: tanh
  - pool: {type: avg, size: 2}
  - flatten
  - fc: 120
  - dropout: 0.5
  - fc: classes        # replaced by num_classes
  - softmax
```
Each entry is `name` or `{name: value}` or `{name: {field: value}}`. Mistakes raise ConfigError naming
the layer index and the field, because a shape error from deep inside torch says neither.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab.config import read_yaml
from cnnlab.errors import ConfigError
from cnnlab.layers.activations import ACTIVATIONS, get_activation

Shape = tuple[int, ...]  # one sample, without the batch dimension


class SoftmaxHead(nn.Module):
    """The softmax prediction head, emitted as log-probabilities.

    log_softmax is idempotent under cross-entropy (CE(log_softmax(z)) == CE(z)), so a net ending in this
    head trains with the usual loss, and `exp()` of its output gives the class probabilities.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(x, dim=1)


class LayerListNet(nn.Module):
    """A user-composed net: `features` up to the first flatten, `head` from there (the zoo interface)."""

    def __init__(self, features: nn.Sequential, head: nn.Sequential, input_shape: Shape) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.input_shape = tuple(input_shape)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not pre_logits:
            return self.head(x)
        last_linear = max((i for i, m in enumerate(self.head) if isinstance(m, nn.Linear)), default=len(self.head))
        return self.head[:last_linear](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def get_classifier(self) -> nn.Module:
        linears = [m for m in self.head if isinstance(m, nn.Linear)]
        if not linears:
            raise TypeError("this layer list has no fully connected classifier")
        return linears[-1]


class _Layer:
    """One entry of the list being built: its index and type name, for error messages."""

    def __init__(self, index: int, kind: str, options: dict[str, Any]) -> None:
        self.index, self.kind, self.options = index, kind, options

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"layer {self.index} ({self.kind}): {message}")

    def take(self, field: str, default: Any = None, *, required: bool = False) -> Any:
        if field in self.options:
            return self.options.pop(field)
        if required:
            raise self.error(f"field {field!r} is required")
        return default

    def positive_int(self, field: str, default: Any = None, *, required: bool = False, minimum: int = 1) -> Any:
        value = self.take(field, default, required=required)
        if value is None:
            return None
        values = value if isinstance(value, (list, tuple)) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values):
            expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.error(f"field {field!r} must be {expected} (or a list of them), got {value!r}")
        return tuple(value) if isinstance(value, (list, tuple)) else value

    def finish(self, known: tuple[str, ...]) -> None:
        for field in self.options:
            close = difflib.get_close_matches(field, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known fields: {', '.join(known) or 'none'}"
            raise self.error(f"unknown field {field!r}{hint}")


def _spatial_dims(layer: _Layer, shape: Shape, forced: int | None) -> int:
    if len(shape) < 2:
        raise layer.error(f"needs a C×H×W or C×L input, but the input is already flat ({shape[0]} features)")
    dims = len(shape) - 1
    if forced is not None and forced != dims:
        raise layer.error(f"is {forced}-D but its input has {dims} spatial dimension(s) ({_fmt(shape)})")
    return dims


def _conv(layer: _Layer, shape: Shape, num_classes: int) -> nn.Module:
    dims = _spatial_dims(layer, shape, layer.take("dim"))
    out = layer.take("out", required=True)
    out = num_classes if out == "classes" else out
    if not isinstance(out, int) or out < 1:
        raise layer.error(f"field 'out' must be a positive integer, got {out!r}")
    kernel = layer.positive_int("kernel", required=True)
    stride = layer.positive_int("stride", 1)
    padding = layer.take("padding", 0)
    if padding != "same" and not (isinstance(padding, int) and padding >= 0):
        raise layer.error(f"field 'padding' must be a non-negative integer or 'same', got {padding!r}")
    dilation = layer.positive_int("dilation", 1)
    groups = layer.positive_int("groups", 1)
    bias = bool(layer.take("bias", True))
    if shape[0] % groups or out % groups:
        raise layer.error(f"groups={groups} must divide input channels {shape[0]} and output channels {out}")
    conv_cls = nn.Conv1d if dims == 1 else nn.Conv2d if dims == 2 else nn.Conv3d
    return conv_cls(shape[0], out, kernel, stride, padding, dilation, groups, bias)


def _pool(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    kind = layer.take("type", "max")
    dims = _spatial_dims(layer, shape, layer.take("dim"))
    size = layer.positive_int("size", 2)
    stride = layer.positive_int("stride", size)
    padding = layer.positive_int("padding", 0, minimum=0)
    if kind not in ("max", "avg"):
        raise layer.error(f"field 'type' must be 'max' or 'avg', got {kind!r}")
    pool_cls = getattr(nn, f"{kind.capitalize()}Pool{dims}d")
    return pool_cls(size, stride, padding)


def _global_pool(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    kind = layer.take("type", "avg")
    dims = _spatial_dims(layer, shape, None)
    if kind not in ("max", "avg"):
        raise layer.error(f"field 'type' must be 'max' or 'avg', got {kind!r}")
    return nn.Sequential(getattr(nn, f"Adaptive{kind.capitalize()}Pool{dims}d")(1), nn.Flatten(1))


def _flatten(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    if len(shape) == 1:
        raise layer.error(f"input is already flat ({shape[0]} features); remove this flatten")
    return nn.Flatten(1)


def _fc(layer: _Layer, shape: Shape, num_classes: int) -> nn.Module:
    if len(shape) != 1:
        raise layer.error(f"input is {_fmt(shape)}; add a `flatten` (or `global_pool`) layer before it")
    out = layer.take("out", required=True)
    out = num_classes if out == "classes" else out
    if not isinstance(out, int) or isinstance(out, bool) or out < 1:
        raise layer.error(f"field 'out' must be a positive integer or 'classes', got {out!r}")
    return nn.Linear(shape[0], out, bias=bool(layer.take("bias", True)))


def _dropout(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    p = layer.take("p", 0.5)
    if not isinstance(p, (int, float)) or not 0 <= p < 1:
        raise layer.error(f"field 'p' must be a probability in [0, 1), got {p!r}")
    return nn.Dropout(p) if len(shape) == 1 else nn.Dropout1d(p) if len(shape) == 2 else nn.Dropout2d(p)


def _batch_norm(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    momentum = layer.take("momentum", 0.1)
    eps = layer.take("eps", 1e-5)
    norm_cls = [nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d][len(shape) - 1]
    return norm_cls(shape[0], eps=eps, momentum=momentum)


def _activation(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    name = layer.take("type", required=True)
    try:
        return get_activation(str(name), **layer.options)
    except ConfigError as error:
        raise layer.error(str(error)) from error
    finally:
        layer.options.clear()


def _softmax(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    if len(shape) != 1:
        raise layer.error(f"the softmax head needs flat class scores, got {_fmt(shape)}")
    return SoftmaxHead()


# type -> (builder, name of the field a scalar value fills)
LAYER_TYPES: dict[str, tuple[Callable[[_Layer, Shape, int], nn.Module], str | None]] = {
    "conv": (_conv, "out"),
    "pool": (_pool, "type"),
    "global_pool": (_global_pool, "type"),
    "flatten": (_flatten, None),
    "fc": (_fc, "out"),
    "dropout": (_dropout, "p"),
    "bn": (_batch_norm, None),
    "act": (_activation, "type"),
    "softmax": (_softmax, None),
}
KNOWN_FIELDS = {
    "conv": ("out", "kernel", "stride", "padding", "dilation", "groups", "bias", "dim"),
    "pool": ("type", "size", "stride", "padding", "dim"),
    "global_pool": ("type",),
    "fc": ("out", "bias"),
    "dropout": ("p",),
    "bn": ("momentum", "eps"),
}
ALIASES = {
    "conv2d": "conv",
    "conv1d": "conv",
    "linear": "fc",
    "dense": "fc",
    "batch_norm": "bn",
    "batchnorm": "bn",
    "activation": "act",
    "maxpool": "pool",
    "avgpool": "pool",
}


def _parse_entry(index: int, entry: Any) -> _Layer:
    if isinstance(entry, str):
        kind, value = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        kind, value = next(iter(entry.items()))
    else:
        raise ConfigError(f"layer {index}: expected `name` or `{{name: options}}` with one key, got {entry!r}")
    kind = str(kind).lower()
    options: dict[str, Any] = {}
    if kind in ACTIVATIONS:  # `- relu` as shorthand for `- act: relu`
        kind, value = "act", kind if value is None else {"type": kind, **value}
    if kind in ("conv1d", "conv2d"):
        options["dim"] = int(kind[4])
    if kind in ("maxpool", "avgpool"):
        options["type"] = kind[:3]
    kind = ALIASES.get(kind, kind)
    if kind not in LAYER_TYPES:
        known = list(LAYER_TYPES) + list(ALIASES) + list(ACTIVATIONS)
        close = difflib.get_close_matches(kind, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known types: {', '.join(LAYER_TYPES)}"
        raise ConfigError(f"layer {index}: unknown layer type {kind!r}{hint}")
    scalar_field = LAYER_TYPES[kind][1]
    if isinstance(value, dict):
        options.update(value)
    elif value is not None:
        if scalar_field is None:
            raise ConfigError(f"layer {index} ({kind}): takes no value, got {value!r}")
        options[scalar_field] = value
    return _Layer(index, kind, options)


def _fmt(shape: Shape) -> str:
    return "×".join(map(str, shape))


def _output_shape(layer: _Layer, module: nn.Module, shape: Shape) -> Shape:
    was_training = module.training
    module.eval()  # batch norm cannot run on a batch of one in training mode
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *shape))
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise layer.error(f"does not fit its input {_fmt(shape)} ({reason})") from error
    finally:
        module.train(was_training)
    if out.numel() == 0:
        raise layer.error(f"input {_fmt(shape)} is too small: the output would be empty")
    return tuple(out.shape[1:])


def build_network(layers: list[Any], input_shape: Shape, num_classes: int = 10) -> LayerListNet:
    """Build a LayerListNet from a layer list; `classes` in an `fc`/`conv` `out` becomes num_classes."""
    if not isinstance(layers, list) or not layers:
        raise ConfigError("the layer list must be a non-empty list of layers")
    shape = tuple(int(s) for s in input_shape)
    features: list[nn.Module] = []
    head: list[nn.Module] = []
    for index, entry in enumerate(layers):
        layer = _parse_entry(index, entry)
        builder = LAYER_TYPES[layer.kind][0]
        given = tuple(layer.options)
        module = builder(layer, shape, num_classes)
        layer.finish(tuple(f for f in KNOWN_FIELDS.get(layer.kind, ()) if f not in given or f in layer.options))
        shape = _output_shape(layer, module, shape)
        (head if head or len(shape) == 1 else features).append(module)
    return LayerListNet(nn.Sequential(*features), nn.Sequential(*head), tuple(int(s) for s in input_shape))


def parse_shape(text: Any, field: str = "input") -> Shape:
    """`1x28x28`, `[1, 28, 28]` or `3×32×32` -> (1, 28, 28)."""
    parts = text if isinstance(text, (list, tuple)) else str(text).replace("×", "x").lower().split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise ConfigError(f"{field}: expected a shape like 3x32x32, got {text!r}")
    return shape


def load_network(
    path: str | Path, num_classes: int | None = None, input_shape: Shape | None = None
) -> tuple[LayerListNet, Shape]:
    """Read a YAML layer-list file (`input:` and `layers:`) and build it; errors name the file."""
    spec = read_yaml(path)
    try:
        if "layers" not in spec:
            raise ConfigError("missing the `layers:` list")
        shape = input_shape or parse_shape(spec.get("input") or _missing_input())
        classes = num_classes or int(spec.get("num_classes", 10))
        return build_network(spec["layers"], shape, classes), shape
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def _missing_input() -> Shape:
    raise ConfigError("missing `input:` (the shape of one sample, e.g. 1x28x28)")
