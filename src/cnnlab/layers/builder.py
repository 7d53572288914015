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

A text net starts with `embedding` on an input of L token ids (`input: 56`), and may run branches side by side
with `parallel` (Kim 2014's filter widths; see examples/kim_cnn_layers.yaml):
```yaml
input: 56
layers:
  - embedding: {dim: 300, mode: learned, vocab: vocab}   # vocab: the vocabulary size the text task passes
  - parallel:
      - [{conv1d: {out: 100, kernel: 3, padding: 2}}, relu, max_over_time]
      - [{conv1d: {out: 100, kernel: 4, padding: 3}}, relu, max_over_time]
  - dropout: 0.5
  - fc: {out: classes, max_norm: 3}
```
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
from cnnlab.layers.text import EMBEDDING_MODES, MaxNormLinear, MaxOverTime, Parallel, TokenEmbedding

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

    @property
    def embedding(self) -> TokenEmbedding | None:
        """The token embedding a text net starts with (for `load_vectors`), else None."""
        first = self.features[0] if len(self.features) else self.head[0]
        return first if isinstance(first, TokenEmbedding) else None

    @property
    def input_dtype(self) -> torch.dtype:
        """torch.long for a net of token ids, else float."""
        return torch.long if self.embedding is not None else torch.get_default_dtype()

    @property
    def text_model(self) -> bool:
        return self.embedding is not None

    def get_classifier(self) -> nn.Module:
        linears = [m for m in self.head if isinstance(m, nn.Linear)]
        if not linears:
            raise TypeError("this layer list has no fully connected classifier")
        return linears[-1]


class _Layer:
    """One entry of the list being built: its index and type name, for error messages."""

    def __init__(self, index: int | str, kind: str, options: dict[str, Any]) -> None:
        self.index, self.kind, self.options = index, kind, options
        self.vocab_size: int | None = None  # the text task's vocabulary size, for `embedding`
        self.first = False  # embedding is allowed as the net's first layer only

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
    bias = bool(layer.take("bias", True))
    max_norm = layer.take("max_norm")
    if max_norm is None:
        return nn.Linear(shape[0], out, bias=bias)
    if not isinstance(max_norm, (int, float)) or isinstance(max_norm, bool) or max_norm <= 0:
        raise layer.error(f"field 'max_norm' must be a positive number, got {max_norm!r}")
    return MaxNormLinear(shape[0], out, bias=bias, max_norm=float(max_norm))


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


def _embedding(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    if not layer.first:
        raise layer.error("must be the first layer (its input is token ids)")
    if len(shape) != 1:
        raise layer.error(f"needs an input of L token ids (e.g. `input: 56`), got {_fmt(shape)}")
    vocab = layer.take("vocab", "vocab")
    if vocab == "vocab":
        if layer.vocab_size is None:
            raise layer.error("`vocab: vocab` needs the vocabulary size (the text task passes it; else give a number)")
        vocab = layer.vocab_size
    if not isinstance(vocab, int) or isinstance(vocab, bool) or vocab < 2:
        raise layer.error(f"field 'vocab' must be 'vocab' or an integer >= 2, got {vocab!r}")
    mode = layer.take("mode", "learned")
    if mode not in EMBEDDING_MODES:
        raise layer.error(f"field 'mode' must be one of {', '.join(EMBEDDING_MODES)}, got {mode!r}")
    dim = layer.positive_int("dim", vocab if mode == "onehot" else None, required=mode != "onehot")
    try:
        return TokenEmbedding(vocab, dim, mode=mode)
    except ConfigError as error:
        raise layer.error(str(error)) from error


def _max_over_time(layer: _Layer, shape: Shape, _: int) -> nn.Module:
    if len(shape) != 2:
        raise layer.error(f"needs a C×L input (channels × time), got {_fmt(shape)}")
    return MaxOverTime()


def _parallel(layer: _Layer, shape: Shape, num_classes: int) -> nn.Module:
    branches = layer.take("branches", required=True)
    if not isinstance(branches, list) or not branches or not all(isinstance(b, list) and b for b in branches):
        raise layer.error("expected a list of branches, each a non-empty list of layers")
    built, shapes = [], []
    for number, entries in enumerate(branches):
        pairs = list(_built_layers(entries, shape, num_classes, layer.vocab_size, f"{layer.index} branch {number}"))
        built.append(nn.Sequential(*(module for module, _ in pairs)))
        shapes.append(pairs[-1][1])
    for number, out_shape in enumerate(shapes[1:], start=1):
        if len(out_shape) != len(shapes[0]) or out_shape[1:] != shapes[0][1:]:
            raise layer.error(
                f"branch {number} outputs {_fmt(out_shape)} but branch 0 outputs {_fmt(shapes[0])}; "
                "branches are concatenated on channels, so every other size must agree"
            )
    return Parallel(*built)


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
    "embedding": (_embedding, "dim"),
    "parallel": (_parallel, "branches"),
    "max_over_time": (_max_over_time, None),
}
KNOWN_FIELDS = {
    "conv": ("out", "kernel", "stride", "padding", "dilation", "groups", "bias", "dim"),
    "pool": ("type", "size", "stride", "padding", "dim"),
    "global_pool": ("type",),
    "fc": ("out", "bias", "max_norm"),
    "dropout": ("p",),
    "bn": ("momentum", "eps"),
    "embedding": ("dim", "mode", "vocab"),
    "parallel": ("branches",),
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
    "max_pool_over_time": "max_over_time",
    "embed": "embedding",
}


def _parse_entry(index: int | str, entry: Any) -> _Layer:
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
            out = module(torch.zeros(1, *shape, dtype=getattr(module, "input_dtype", None)))
    except RuntimeError as error:
        reason = str(error).splitlines()[0]
        raise layer.error(f"does not fit its input {_fmt(shape)} ({reason})") from error
    finally:
        module.train(was_training)
    if out.numel() == 0:
        raise layer.error(f"input {_fmt(shape)} is too small: the output would be empty")
    return tuple(out.shape[1:])


def build_network(
    layers: list[Any], input_shape: Shape, num_classes: int = 10, vocab_size: int | None = None
) -> LayerListNet:
    """Build a LayerListNet from a layer list; `classes` in an `fc`/`conv` `out` becomes num_classes.

    `vocab_size` is what `embedding: {vocab: vocab}` becomes (the text task passes its vocabulary's size).
    """
    if not isinstance(layers, list) or not layers:
        raise ConfigError("the layer list must be a non-empty list of layers")
    features: list[nn.Module] = []
    head: list[nn.Module] = []
    for module, shape in _built_layers(layers, tuple(int(s) for s in input_shape), num_classes, vocab_size, None):
        (head if head or len(shape) == 1 else features).append(module)
    return LayerListNet(nn.Sequential(*features), nn.Sequential(*head), tuple(int(s) for s in input_shape))


def _built_layers(layers: list[Any], shape: Shape, num_classes: int, vocab_size: int | None, prefix: str | None):
    """Yield (module, its output shape) for each entry; `prefix` names the parallel branch being built."""
    for index, entry in enumerate(layers):
        layer = _parse_entry(index if prefix is None else f"{prefix} layer {index}", entry)
        layer.vocab_size, layer.first = vocab_size, prefix is None and index == 0
        builder = LAYER_TYPES[layer.kind][0]
        given = tuple(layer.options)
        module = builder(layer, shape, num_classes)
        layer.finish(tuple(f for f in KNOWN_FIELDS.get(layer.kind, ()) if f not in given or f in layer.options))
        shape = _output_shape(layer, module, shape)
        yield module, shape


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
    path: str | Path, num_classes: int | None = None, input_shape: Shape | None = None, vocab_size: int | None = None
) -> tuple[LayerListNet, Shape]:
    """Read a YAML layer-list file (`input:` and `layers:`) and build it; errors name the file.

    A text net's file may give `vocab_size:` (used when the caller passes none, e.g. by `cnnlab summary`).
    """
    spec = read_yaml(path)
    try:
        if "layers" not in spec:
            raise ConfigError("missing the `layers:` list")
        shape = input_shape or parse_shape(spec.get("input") or _missing_input())
        classes = num_classes or int(spec.get("num_classes", 10))
        vocab = vocab_size or spec.get("vocab_size")
        return build_network(spec["layers"], shape, classes, vocab_size=vocab), shape
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from error


def _missing_input() -> Shape:
    raise ConfigError("missing `input:` (the shape of one sample, e.g. 1x28x28)")
