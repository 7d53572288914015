"""A layer-by-layer table of a network: output shapes, parameters, MACs, receptive field, memory.

One forward pass on a dummy input (on the meta device it costs no memory and no compute) records,
for every leaf module in execution order:

* **Parameters**, trainable and frozen (`requires_grad=False`), each `nn.Parameter` counted once even
  when modules share it, on the row of the first module that uses it.
* **MACs** (multiply-accumulates) from `torch.utils.flop_counter.FlopCounterMode`, which counts
  matmul-like ops only (convolution, linear, matmul, attention): convolution = output elements x
  (in_channels / groups) x kernel size, linear = in x out per sample, bias, pooling, activations and
  normalisation 0. This is the convention of torchvision's "GFLOPS" and fvcore, and the one papers use
  when they say "FLOPs" (ResNet-50: 4.09 G). FLOPs = 2 x MACs.
* **Receptive field** (RF, in input pixels) and **jump** (effective stride, input pixels between two
  neighbouring outputs) at the layer's output. Each tensor carries its own RF, computed when the op that
  makes it runs: convolution and pooling grow it (k_eff = d(k - 1) + 1, rf += (k_eff - 1) x jump,
  jump *= stride); ops that keep the spatial layout pass it through; ops that combine tensors (a residual
  add, a concat) take the largest RF among their inputs, so a ResNet block's output follows its conv path
  and not the 1x1 downsample shortcut; global pooling, flatten and linear layers see the whole input, so
  their RF is reported as the input size and marked global. A transposed convolution divides the jump
  by its stride and grows the RF by the ceil(k_eff / stride) inputs each output reads; resizing and padding
  pass the RF through unchanged (approximations).
* **Activation memory**: bytes of the layer's output at float32 for the whole batch.

A text model (`input_dtype = torch.long`, e.g. `kim_cnn`) gets token ids: an input shape (L,) of zeros (the PAD
id), and its receptive fields are counted in tokens.
"""

from __future__ import annotations

import copy
import math
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.errors import ConfigError

Shape = tuple[int, ...]
FLOAT32_BYTES = 4
TOKEN_ID_BYTES = 8  # int64 ids

__all__ = ["LayerRow", "Summary", "parse_input_shape", "summarize", "summarize_builder", "format_count", "takes_tokens"]


# --------------------------------------------------------------------------------------------- data


@dataclass
class LayerRow:
    """One leaf module call (or, with `called=False`, a module that owns parameters but never ran)."""

    name: str
    type: str
    depth: int
    output_shape: Shape | None = None
    params_trainable: int = 0
    params_frozen: int = 0
    macs: int = 0
    receptive_field: Shape | None = None
    jump: tuple[float, ...] | None = None
    rf_global: bool = False
    activation_bytes: int = 0
    called: bool = True

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_frozen


@dataclass
class Summary:
    """The table as data: `rows` in execution order plus totals; `format_table()` renders it."""

    name: str
    input_shape: Shape
    batch_size: int
    rows: list[LayerRow]
    params_trainable: int
    params_frozen: int
    macs: int
    param_bytes: int
    activation_bytes: int
    input_bytes: int
    containers: dict[str, str] = field(default_factory=dict)  # qualified name -> type, for the tree
    tokens: bool = False  # the input is L token ids, not a float tensor

    @property
    def input_text(self) -> str:
        """`3x224x224`, or `56 tokens` for a text model."""
        shape = "x".join(map(str, self.input_shape))
        return f"{shape} tokens" if self.tokens else shape

    @property
    def params(self) -> int:
        return self.params_trainable + self.params_frozen

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def to_dict(self) -> dict:
        """Plain JSON-ready data (tuples become lists, jumps become ints where whole)."""
        rows = []
        for row in self.rows:
            data = asdict(row)
            data["params"] = row.params
            for key in ("output_shape", "receptive_field"):
                data[key] = None if data[key] is None else list(data[key])
            data["jump"] = None if row.jump is None else [_plain_number(j) for j in row.jump]
            rows.append(data)
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "input_dtype": "int64" if self.tokens else "float32",
            "batch_size": self.batch_size,
            "rows": rows,
            "totals": {
                "params": self.params,
                "params_trainable": self.params_trainable,
                "params_frozen": self.params_frozen,
                "macs": self.macs,
                "flops": self.flops,
                "param_bytes": self.param_bytes,
                "activation_bytes": self.activation_bytes,
                "input_bytes": self.input_bytes,
            },
        }

    def format_table(self) -> str:
        """A torchinfo/Keras-style text table with the totals underneath."""
        return _format_table(self)

    def __str__(self) -> str:
        return self.format_table()


# ------------------------------------------------------------------------------------ input shape


def parse_input_shape(text: str | Sequence[int], ndim: int | None = 3) -> Shape:
    """`"3x224x224"` (also `3,224,224`, `3×224×224`) -> (3, 224, 224); `ndim` is the rank required (4 for volumes)."""
    parts = list(text) if isinstance(text, (list, tuple)) else re.split(r"\s*[x×X,]\s*", str(text).strip())
    if ndim == 1:  # a text model: a sequence of token ids
        expected = "L tokens, e.g. 56"
    elif ndim in (None, 3):
        expected = "CxHxW, e.g. 3x224x224"
    elif ndim == 4:  # a volume model
        expected = "CxDxHxW, e.g. 1x28x28x28"
    else:
        expected = f"{ndim} sizes like " + "x".join(["8"] * ndim)
    try:
        shape = tuple(int(part) for part in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"input shape {text!r} is not a list of sizes; write it as {expected}") from None
    if not shape or any(size < 1 for size in shape):
        raise ConfigError(f"input shape {text!r} needs positive sizes; write it as {expected}")
    if ndim is not None and len(shape) != ndim:
        raise ConfigError(f"input shape {text!r} has {len(shape)} sizes, the model needs {ndim}: {expected}")
    return shape


# ------------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class _Field:
    size: tuple[float, ...]
    jump: tuple[float, ...]
    is_global: bool = False


class _FieldTracker(TorchDispatchMode):
    """Gives every tensor made during the forward pass the receptive field of its values."""

    def __init__(self, input_spatial: Shape) -> None:
        super().__init__()
        self.input_spatial = input_spatial
        self.rank = len(input_spatial)
        self._fields: dict[int, tuple[weakref.ref, _Field]] = {}

    def get(self, tensor: object) -> _Field | None:
        entry = self._fields.get(id(tensor))
        # A dead tensor's id can be reused by a new one; the weak reference tells them apart.
        return entry[1] if entry is not None and entry[0]() is tensor else None

    def set(self, tensor: torch.Tensor, value: _Field) -> None:
        self._fields[id(tensor)] = (weakref.ref(tensor), value)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        try:
            self._propagate(func, args, kwargs, out)
        except Exception:  # an op the rules do not understand must not break the summary; its RF stays unknown
            pass
        return out

    def _propagate(self, func, args, kwargs, out) -> None:
        outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        known = [(t, f) for t in tree_flatten((args, kwargs))[0] if (f := self.get(t)) is not None]
        if not outputs or not known:
            return
        source, base = max(known, key=lambda item: (item[1].is_global, math.prod(item[1].size), item[1].jump))
        result = self._apply(func._overloadpacket.__name__, args, kwargs, source, base, outputs[0])
        for tensor in outputs:
            self.set(tensor, result)

    def _apply(self, op: str, args, kwargs, source: torch.Tensor, base: _Field, out: torch.Tensor) -> _Field:
        if base.is_global:
            return base
        if op == "convolution":
            return _conv_field(base, args, kwargs)
        if "pool" in op:
            pooled = _pool_field(op, base, args, kwargs, source, out)
            if pooled is not None and _is_spatial(out, self.rank):
                global_pool = "adaptive" in op and all(size == 1 for size in out.shape[-self.rank :])
                return self._global(pooled) if global_pool else pooled
        if op == "slice":
            return _slice_field(base, args, kwargs, source)
        return self._layout_field(base, source, out)

    def _layout_field(self, base: _Field, source: torch.Tensor, out: torch.Tensor) -> _Field:
        rank = self.rank
        same_grid = out.dim() > rank and tuple(out.shape[-rank:]) == tuple(source.shape[-rank:])
        if same_grid:
            return base  # elementwise, normalisation, channel ops, concat: same spatial layout
        if not _is_spatial(out, rank) or all(size == 1 for size in out.shape[-rank:]):
            return self._global(base)  # flatten, linear, spatial mean: every output sees every pixel
        return base  # resize, pad, crop: approximated as pass-through

    def _global(self, base: _Field) -> _Field:
        return _Field(tuple(float(size) for size in self.input_spatial), base.jump, is_global=True)


def _is_spatial(tensor: torch.Tensor, rank: int) -> bool:
    # >=: a 1-D pool runs as a 2-D one on an unsqueezed (N, C, 1, L) tensor
    return tensor.dim() >= rank + 2


def _arg(args, kwargs, index: int, name: str, default):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _per_dim(value, rank: int, default: int) -> tuple[int, ...]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return (default,) * rank
    if isinstance(value, int):
        return (value,) * rank
    values = tuple(int(v) for v in value)
    return values * rank if len(values) == 1 else values


def _grow(base: _Field, kernel, stride, dilation, transposed: bool = False) -> _Field:
    """rf_out = rf_in + (k_eff - 1) * jump_in, jump_out = jump_in * stride (per spatial dim)."""
    rank = len(base.size)
    ndim = max(
        (len(v) for v in (kernel, stride, dilation) if isinstance(v, (list, tuple)) and len(v) > 1), default=rank
    )
    if ndim < rank:
        return base  # e.g. a Conv1d over the channels of an image: no spatial meaning to track
    # The op's trailing dims are the input's spatial dims (leading ones come from an unsqueeze, size 1).
    kernel, stride, dilation = (_per_dim(v, ndim, 1)[-rank:] for v in (kernel, stride, dilation))
    sizes, jumps = [], []
    for size, jump, k, s, d in zip(base.size, base.jump, kernel, stride, dilation):
        k_eff = d * (k - 1) + 1
        # A transposed conv's output reads ceil(k_eff / s) neighbouring inputs, and its outputs are s times denser.
        reach = math.ceil(k_eff / s) if transposed else k_eff
        sizes.append(size + (reach - 1) * jump)
        jumps.append(jump / s if transposed else jump * s)
    return _Field(tuple(sizes), tuple(jumps))


def _conv_field(base: _Field, args, kwargs) -> _Field:
    weight = _arg(args, kwargs, 1, "weight", None)
    stride = _arg(args, kwargs, 3, "stride", 1)
    dilation = _arg(args, kwargs, 5, "dilation", 1)
    transposed = bool(_arg(args, kwargs, 6, "transposed", False))
    return _grow(base, tuple(weight.shape[2:]), stride, dilation, transposed)


def _slice_field(base: _Field, args, kwargs, source: torch.Tensor) -> _Field:
    """`x[:, :, ::2, ::2]` (ResNet's option-A shortcut) keeps every step-th position: the jump grows."""
    dim, step = _arg(args, kwargs, 1, "dim", 0), _arg(args, kwargs, 4, "step", 1)
    spatial = dim % source.dim() - (source.dim() - len(base.size))
    if step == 1 or spatial < 0:
        return base
    jump = tuple(j * step if i == spatial else j for i, j in enumerate(base.jump))
    return _Field(base.size, jump)


def _pool_field(op: str, base: _Field, args, kwargs, source: torch.Tensor, out: torch.Tensor) -> _Field | None:
    rank = len(base.size)
    if "adaptive" in op:
        in_size, out_size = tuple(source.shape[-rank:]), tuple(out.shape[-rank:])
        if in_size == out_size:
            return base
        # Adaptive pooling is (nearly) a pool with stride in // out and kernel covering the remainder.
        stride = tuple(max(i // o, 1) for i, o in zip(in_size, out_size))
        kernel = tuple(i - (o - 1) * s for i, o, s in zip(in_size, out_size, stride))
        return _grow(base, kernel, stride, 1)
    if ("max_pool" in op or "avg_pool" in op) and "fractional" not in op:
        kernel = _per_dim(_arg(args, kwargs, 1, "kernel_size", 1), rank, 1)
        stride = _per_dim(_arg(args, kwargs, 2, "stride", None), rank, 0)
        stride = tuple(s or k for s, k in zip(stride, kernel))  # an empty stride means stride = kernel
        dilation = _arg(args, kwargs, 4, "dilation", 1) if "max_pool" in op else 1
        return _grow(base, kernel, stride, dilation)
    return None


# ----------------------------------------------------------------------------------- the forward


@dataclass
class _Recorder:
    """Forward hooks that turn each leaf module call into a LayerRow."""

    names: dict[nn.Module, str]
    counter: FlopCounterMode
    tracker: _FieldTracker
    rows: list[LayerRow] = field(default_factory=list)
    seen_params: set[int] = field(default_factory=set)
    _starts: list[int] = field(default_factory=list)

    def before(self, module: nn.Module, inputs) -> None:
        self._starts.append(self.counter.get_total_flops())

    def after(self, module: nn.Module, inputs, output) -> None:
        macs = (self.counter.get_total_flops() - self._starts.pop()) // 2
        row = _new_row(self.names[module], module)
        row.macs = macs
        self.add_params(row, module)
        tensors = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
        if tensors:
            row.output_shape = tuple(tensors[0].shape)
            row.activation_bytes = sum(t.numel() for t in tensors) * FLOAT32_BYTES
            rf = self.tracker.get(tensors[0])
            if rf is not None:
                row.receptive_field = tuple(int(round(s)) for s in rf.size)
                row.jump, row.rf_global = rf.jump, rf.is_global
        self.rows.append(row)

    def add_params(self, row: LayerRow, module: nn.Module) -> None:
        for param in module.parameters(recurse=False):
            if id(param) in self.seen_params:
                continue  # shared: already counted where it was first used
            self.seen_params.add(id(param))
            if param.requires_grad:
                row.params_trainable += param.numel()
            else:
                row.params_frozen += param.numel()


def _new_row(name: str, module: nn.Module) -> LayerRow:
    return LayerRow(name=name, type=type(module).__name__, depth=name.count(".") + 1 if name else 0)


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _model_dtype(model: nn.Module) -> torch.dtype:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def _place(model: nn.Module, device: str | torch.device | None) -> nn.Module:
    """Use the model where it is; a different device gets a copy, so the caller's model is untouched."""
    if device is None or torch.device(device) == _model_device(model):
        return model
    try:
        return copy.deepcopy(model).to(device)
    except (NotImplementedError, RuntimeError) as error:
        raise ConfigError(f"cannot move the model to {device}: {_first_line(error)}") from error


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _run_forward(model: nn.Module, recorder: _Recorder, sample: torch.Tensor) -> None:
    leaves = [m for m in model.modules() if _is_leaf(m)]
    handles = [
        h
        for m in leaves
        for h in (m.register_forward_pre_hook(recorder.before), m.register_forward_hook(recorder.after))
    ]
    modes = {m: m.training for m in model.modules()}
    model.eval()  # batch norm cannot run a batch of one in training mode; dropout is identity
    try:
        with torch.no_grad(), recorder.counter, recorder.tracker:
            rank = recorder.tracker.rank
            if rank:  # a flat input (features, not pixels) has no receptive field
                recorder.tracker.set(sample, _Field((1.0,) * rank, (1.0,) * rank))
            model(sample)
    except (RuntimeError, ValueError, TypeError, IndexError) as error:
        shape = "x".join(map(str, sample.shape[1:]))
        raise ConfigError(f"{type(model).__name__} cannot run on input {shape}: {_first_line(error)}") from error
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training


def _leftover_rows(model: nn.Module, recorder: _Recorder, names: dict[nn.Module, str]) -> list[LayerRow]:
    """Rows for parameters no leaf call used: a container's own parameters, modules never called."""
    rows = []
    for module in model.modules():
        row = _new_row(names[module], module)
        recorder.add_params(row, module)
        if row.params:
            row.called = False
            rows.append(row)
    return rows


def summarize(
    model: nn.Module,
    input_shape: Sequence[int] = (3, 224, 224),
    batch_size: int = 1,
    device: str | torch.device | None = None,
    name: str | None = None,
) -> Summary:
    """Run one dummy batch through `model` and tabulate every leaf layer.

    Args:
        model: any `nn.Module` taking one tensor of shape (batch, *input_shape).
        input_shape: one sample without the batch dimension, e.g. (3, 224, 224).
        batch_size: scales output shapes, MACs and activation memory.
        device: where to run; None uses the model's device. A model built under `torch.device("meta")`
            is summarized without allocating or computing anything.
        name: the title of the table (default: the model's class name).
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    input_shape = parse_input_shape(input_shape, ndim=None)
    model = _place(model, device)
    tokens = takes_tokens(model)
    dtype = torch.long if tokens else _model_dtype(model)
    sample = torch.zeros(batch_size, *input_shape, device=_model_device(model), dtype=dtype)
    names = {module: qualified for qualified, module in model.named_modules(remove_duplicate=False)}
    spatial = tuple(input_shape) if tokens else tuple(input_shape[1:])  # ids (N, L) have no channel dimension
    recorder = _Recorder(names, FlopCounterMode(display=False), _FieldTracker(spatial))
    _run_forward(model, recorder, sample)
    rows = recorder.rows
    total_macs = recorder.counter.get_total_flops() // 2
    outside = total_macs - sum(row.macs for row in rows)
    if outside:
        rows.append(LayerRow(name="(functional ops)", type="ops outside leaf layers", depth=0, macs=outside))
    rows.extend(_leftover_rows(model, recorder, names))
    summary = _totals(model, name or type(model).__name__, tuple(input_shape), batch_size, rows, total_macs, names)
    if tokens:
        summary.tokens, summary.input_bytes = True, math.prod(input_shape) * batch_size * TOKEN_ID_BYTES
    return summary


def takes_tokens(model: nn.Module) -> bool:
    """Whether `model` reads token ids (a text model declares `input_dtype = torch.long`)."""
    return getattr(model, "input_dtype", None) == torch.long


def _totals(model, name, input_shape, batch_size, rows, macs, names) -> Summary:
    params = list(model.parameters())  # deduplicated by nn.Module
    containers = {qualified: type(module).__name__ for module, qualified in names.items() if not _is_leaf(module)}
    return Summary(
        name=name,
        input_shape=input_shape,
        batch_size=batch_size,
        rows=rows,
        params_trainable=sum(p.numel() for p in params if p.requires_grad),
        params_frozen=sum(p.numel() for p in params if not p.requires_grad),
        macs=macs,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        activation_bytes=sum(row.activation_bytes for row in rows),
        input_bytes=math.prod(input_shape) * batch_size * FLOAT32_BYTES,
        containers=containers,
    )


def summarize_builder(
    build: Callable[[], nn.Module], input_shape: Sequence[int], batch_size: int = 1, name: str | None = None
) -> Summary:
    """Build the model on the meta device and summarize it in no time; models meta cannot run use the CPU."""
    try:
        with torch.device("meta"):
            model = build()
        return summarize(model, input_shape, batch_size, name=name)
    except ConfigError as error:
        if not isinstance(error.__cause__, RuntimeError):
            raise
    except RuntimeError:  # includes NotImplementedError: an op or an initialiser meta tensors lack
        pass
    return summarize(build(), input_shape, batch_size, device="cpu", name=name)


# ------------------------------------------------------------------------------------ rendering


_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def format_count(value: float, digits: int = 2) -> str:
    """4_089_184_256 -> "4.09 G" (decimal units, as papers and torchvision quote MACs)."""
    for scale, unit in _UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f} {unit}"
    return f"{value:g}"


def _format_bytes(value: float) -> str:
    return f"{value / 1e6:,.2f} MB" if value >= 1e5 else f"{value / 1e3:,.2f} KB"


def _plain_number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _format_dims(values: Iterable[float]) -> str:
    values = [_plain_number(v) for v in values]
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def _rf_text(row: LayerRow) -> tuple[str, str]:
    if row.receptive_field is None:
        return "", ""
    rf = _format_dims(row.receptive_field)
    if row.rf_global:
        return f"{rf} global", "-"
    return rf, _format_dims(row.jump or ())


def _label(name: str, kind: str, depth: int) -> str:
    short = name.rsplit(".", 1)[-1] if name else "(model)"
    return "  " * max(depth - 1, 0) + f"{short} ({kind})"


def _tree_lines(summary: Summary) -> list[tuple[str, LayerRow | None]]:
    """Labels in execution order with a header line each time a new container starts."""
    lines: list[tuple[str, LayerRow | None]] = []
    open_path: list[str] = []
    for row in summary.rows:
        parts = row.name.split(".")[:-1] if row.called and row.name and not row.name.startswith("(") else []
        prefixes = [".".join(parts[: i + 1]) for i in range(len(parts))]
        common = 0
        while common < min(len(open_path), len(prefixes)) and open_path[common] == prefixes[common]:
            common += 1
        for depth, prefix in enumerate(prefixes[common:], start=common + 1):
            lines.append((_label(prefix, summary.containers.get(prefix, "?"), depth), None))
        open_path = prefixes
        label = _label(row.name, row.type, row.depth if row.called else 1)
        lines.append((label if row.called else f"{row.name or '(model)'} ({row.type}, not called)", row))
    return lines


def _row_cells(row: LayerRow | None, frozen_column: bool) -> list[str]:
    if row is None:
        return [""] * (7 if frozen_column else 6)
    shape = "" if row.output_shape is None else "[" + ", ".join(map(str, row.output_shape)) + "]"
    params = f"{row.params_trainable:,}" if row.params_trainable else "-"
    cells = [shape, params] + ([f"{row.params_frozen:,}" if row.params_frozen else "-"] if frozen_column else [])
    rf, jump = _rf_text(row)
    memory = _format_bytes(row.activation_bytes) if row.activation_bytes else ""
    return cells + [format_count(row.macs) if row.macs else "-", rf, jump, memory]


def _format_table(summary: Summary) -> str:
    frozen_column = summary.params_frozen > 0
    header = ["Layer (type)", "Output shape", "Trainable" if frozen_column else "Params"]
    header += (["Frozen"] if frozen_column else []) + ["MACs", "RF", "Jump", "Act. mem"]
    body = [[label, *_row_cells(row, frozen_column)] for label, row in _tree_lines(summary)]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def render(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule_width = sum(widths) + 2 * (len(widths) - 1)
    thick, thin = "=" * rule_width, "-" * rule_width
    title = f"{summary.name}  input {summary.input_text}, batch {summary.batch_size}"
    lines = [title, thick, render(header), thick, *(render(cells) for cells in body), thick]
    return "\n".join(lines + _footer(summary, thin, thick))


def _footer(summary: Summary, thin: str, thick: str) -> list[str]:
    shape = "x".join(map(str, summary.input_shape))
    total_bytes = summary.input_bytes + summary.activation_bytes + summary.param_bytes
    kind, unit = ("int64 token ids", "tokens") if summary.tokens else ("float32", "pixels")
    return [
        f"Total params:       {summary.params:,}",
        f"  Trainable params: {summary.params_trainable:,}",
        f"  Frozen params:    {summary.params_frozen:,}",
        f"Total MACs:         {format_count(summary.macs)} ({summary.macs:,} multiply-accumulates)",
        f"  FLOPs = 2 x MACs: {format_count(summary.flops)}",
        thin,
        f"Input size:         {_format_bytes(summary.input_bytes)} (batch {summary.batch_size} x {shape}, {kind})",
        f"Activation memory:  {_format_bytes(summary.activation_bytes)} (all layer outputs, float32)",
        f"Parameter memory:   {_format_bytes(summary.param_bytes)}",
        f"Estimated total:    {_format_bytes(total_bytes)}",
        thick,
        f"RF: receptive field in input {unit} at the layer's output; Jump: its effective stride in input {unit}.",
        "MACs count convolutions and matmuls only (bias, pooling, activations, normalisation: 0).",
    ]
