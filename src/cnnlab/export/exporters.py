"""ONNX and TorchScript export of a run's inference module (its task's preprocessing, model and decoding).

The exported graph takes the task's raw input (uint8 images as decoding gives them, or token ids) and returns
the task's outputs (`Task.export_outputs`: logits; boxes and scores; embedding), so a deployment needs no copy
of the normalisation constants. Every export is checked: the exported model must reproduce the eager module's
outputs (ONNX Runtime for ONNX), on a batch of another size when the batch axis is dynamic.

ONNX is written by `torch.onnx.export(..., dynamo=True)` (torch.export + onnxscript), which writes opsets 18-23
and exports every zoo model at any input size (the TorchScript-based exporter refuses adaptive pooling whose
output size does not divide the input's: AlexNet, VGG and YOLOv1 at small inputs). Opsets below 18, and a
model the dynamo exporter fails on, go through the TorchScript-based exporter (dynamo=False, opsets 7-20);
the metadata records which exporter wrote the file and why.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.runs import LoadedRun, load_run, read_results

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
MIN_OPSET = 7  # the TorchScript-based exporter's oldest
MAX_OPSET = 23  # the dynamo exporter's newest (torch.onnx._constants.ONNX_MAX_OPSET in torch 2.14)
DYNAMO_MIN_OPSET = 18  # the dynamo exporter's own operators start here; older opsets go through the other one
LEGACY_MAX_OPSET = 20  # the TorchScript-based exporter's newest
DEFAULT_OPSET = 18
INSTALL_HINT = "pip install 'cnnlab[export]'"
EXPORT_PACKAGES = ("onnx", "onnxruntime", "onnxscript")
CHECK_BATCH, EXAMPLE_BATCH = 5, 2  # export traces one batch size and is checked on another
LONGER_TEXT = 7  # a symbolic length is checked on sentences this many tokens longer than the run's padded length


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_difference: float
    metadata_path: Path
    exporter: str = ""
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    check_batch: int = 0


# -- checks before any work -------------------------------------------------------------------------------------


def check_opset(opset: int | str) -> int:
    """The ONNX opset as an int some exporter writes (a flag's text is accepted): 18-23 the dynamo exporter,
    7-17 the TorchScript-based one."""
    text = str(opset).strip()
    if not text.isdigit() or not MIN_OPSET <= int(text) <= MAX_OPSET:
        raise ConfigError(
            f"--opset must be a whole number in [{MIN_OPSET}, {MAX_OPSET}], got {opset!r} "
            f"({DYNAMO_MIN_OPSET}-{MAX_OPSET} with the dynamo exporter, {MIN_OPSET}-{DYNAMO_MIN_OPSET - 1} with the "
            "TorchScript-based one)"
        )
    return int(text)


def check_finite_weights(run: LoadedRun) -> None:
    """Refuse to export weights holding NaN or inf (a diverged run): the exported model would answer NaN."""
    tensors = {**run.model.state_dict(), **{f"preprocess.{k}": v for k, v in run.preprocess.state_dict().items()}}
    for name, tensor in tensors.items():
        # A sum is NaN/inf when any entry is, at a fraction of the cost of isfinite() over every weight.
        if tensor.is_floating_point() and not torch.isfinite(tensor.sum()):
            epoch = f" (checkpoint of epoch {run.checkpoint_epoch})" if run.checkpoint_epoch is not None else ""
            raise RunError(
                f"{run.run_dir}: cannot export: parameter {name!r} holds NaN or infinite values{epoch}; "
                "the run diverged: retrain it with a lower --optimizer.lr or --grad-clip 1"
            )


def require_export_extra(packages: Sequence[str] = EXPORT_PACKAGES, what: str = "export --format onnx") -> None:
    """onnx, onnxruntime and onnxscript come with the `export` extra, not with cnnlab itself: say so in one line."""
    for package in packages:
        try:
            importlib.import_module(package)
        except ImportError:
            raise CnnlabError(f"{what} needs the {package} package; install it with: {INSTALL_HINT}") from None


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime.InferenceSession on the CPU for an exported file (`threads`: intra-op threads, None = ORT's
    choice); a missing onnxruntime is the one-line install hint."""
    require_export_extra(("onnxruntime",), what="running an ONNX model")
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph/NoSuchFile classes
        raise RunError(f"{path}: onnxruntime cannot load the model ({_first_line(error)})") from error


# -- quiet exporters ----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Recent torch (2.14 here) marks torch.jit deprecated with a FutureWarning on trace, save and load; TorchScript is
    still what a C++ (libtorch) deployment loads, so the warning is noise to a user who asked for it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


@contextlib.contextmanager
def _silenced() -> Iterator[None]:
    """No warnings, log lines or C++ prints from the exporters (the TorchScript-based one prints its whole graph to
    stderr when it fails, whatever `verbose` says); the error they raise is reported in one line instead."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for logger in loggers:
                logger.setLevel(logging.ERROR)
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


# -- ONNX -----------------------------------------------------------------------------------------------------------


@dataclass
class Signature:
    """Input and output names and their symbolic axes ({input: {axis: "batch"}}), as both exporters need them."""

    inputs: list[str]
    outputs: list[str]
    dynamic: dict[str, dict[int, str]] = field(default_factory=dict)


def export_onnx(
    module: nn.Module,
    example: torch.Tensor | tuple[torch.Tensor, ...],
    path: str | Path,
    opset: int = DEFAULT_OPSET,
    signature: Signature | None = None,
    optimize: bool = True,
) -> dict[str, str]:
    """Write `module` as ONNX; returns {"exporter": "dynamo" | "torchscript", "fallback_reason"?: why}.

    The dynamo exporter first (opset >= 18); the TorchScript-based one where it cannot write the opset or the
    dynamo exporter fails. A model neither exports is a one-line CnnlabError naming the operator."""
    example = example if isinstance(example, tuple) else (example,)
    signature = signature or Signature(["images"], ["logits"], {"images": {0: "batch"}})
    dynamo_error: Exception | None = None
    if opset >= DYNAMO_MIN_OPSET:
        try:
            _export_dynamo(module, example, path, opset, signature, optimize)
            return {"exporter": "dynamo"}
        except Exception as error:  # torch.export and onnxscript raise many kinds; all mean "try the other one"
            dynamo_error = error
            if opset > LEGACY_MAX_OPSET:
                raise _export_failure(error, opset) from error
    try:
        _export_legacy(module, example, path, opset, signature)
    except Exception as error:
        raise _export_failure(dynamo_error or error, opset, legacy=error) from error
    if dynamo_error is None:
        return {"exporter": "torchscript", "fallback_reason": f"opset {opset} < {DYNAMO_MIN_OPSET}"}
    return {"exporter": "torchscript", "fallback_reason": f"dynamo exporter failed: {_describe(dynamo_error)}"}


def _export_dynamo(module, example, path, opset: int, signature: Signature, optimize: bool) -> None:
    dims: dict[str, torch.export.Dim] = {}
    shapes = []
    for name in signature.inputs:
        axes = signature.dynamic.get(name, {})
        shapes.append({axis: dims.setdefault(dim, torch.export.Dim(dim, min=1)) for axis, dim in axes.items()} or None)
    with _silenced():
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(signature.inputs),
            output_names=list(signature.outputs),
            dynamic_shapes=tuple(shapes),
            opset_version=opset,
            dynamo=True,
            optimize=optimize,
            verbose=False,
        )


def _export_legacy(module, example, path, opset: int, signature: Signature) -> None:
    axes = dict(signature.dynamic)
    batch = any("batch" in dims.values() for dims in signature.dynamic.values())
    for name in signature.outputs if batch else ():
        axes[name] = {0: "batch"}
    with _silenced():
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(signature.inputs),
            output_names=list(signature.outputs),
            dynamic_axes=axes or None,
            opset_version=opset,
            dynamo=False,
        )


_OPERATOR_PATTERNS = (
    re.compile(r"No ONNX function found for <OpOverload\(op='([\w.]+)'"),  # dynamo: an op without a conversion
    re.compile(r"call_function\[target=torch\.ops\.([\w.]+?)(?:\.default)?\]"),  # dynamo: the node that failed
    re.compile(r"Exporting the operator '([\w:.]+)' to ONNX"),  # TorchScript-based
    re.compile(r"ONNX export of operator ([\w:.]+)"),  # TorchScript-based, an op it supports only in part
    re.compile(r"torch\.ops\.([\w]+\.[\w]+)"),
)


def unsupported_operator(error: BaseException) -> str | None:
    """The operator an exporter's error names (aten.linalg_eigh, aten::histc), searched down the error's causes."""
    seen: set[int] = set()
    current: BaseException | None = error
    texts = []
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(str(current))
        current = current.__cause__ or current.__context__
    for pattern in _OPERATOR_PATTERNS:
        for text in texts:
            match = pattern.search(text)
            if match:
                return match.group(1)
    return None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


def _describe(error: BaseException) -> str:
    operator = unsupported_operator(error)
    return f"operator {operator}" if operator else f"{type(error).__name__}: {_first_line(error)}"


def _export_failure(error: BaseException, opset: int, legacy: BaseException | None = None) -> CnnlabError:
    operator = unsupported_operator(error) or (unsupported_operator(legacy) if legacy is not None else None)
    if operator:
        return CnnlabError(
            f"cannot export to ONNX opset {opset}: the model uses operator {operator}, which has no ONNX conversion "
            "(replace it in the model, or export --format torchscript)"
        )
    return CnnlabError(f"cannot export to ONNX opset {opset}: {type(error).__name__}: {_first_line(error)}")


def run_onnx(path: str | Path, *inputs: torch.Tensor, session=None) -> list[np.ndarray]:
    """Every output of the ONNX model on `inputs` (fed in the graph's input order)."""
    session = session or onnx_session(path, threads=None)
    feeds = {spec.name: tensor.numpy() for spec, tensor in zip(session.get_inputs(), inputs)}
    return list(session.run(None, feeds))


# -- TorchScript ------------------------------------------------------------------------------------------------------


def export_torchscript(module: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...], path: str | Path) -> None:
    """torch.jit.trace of the module (shape-polymorphic for these models: the batch and kim_cnn's length stay free)."""
    example = example if isinstance(example, tuple) else (example,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example, check_trace=False)
    with quiet_torchscript():
        traced.save(str(path))


def run_torchscript(path: str | Path, *inputs: torch.Tensor) -> np.ndarray | list[np.ndarray]:
    """The TorchScript file's output on `inputs`: one array, or a list for a module of several outputs."""
    with quiet_torchscript(), torch.inference_mode():
        out = torch.jit.load(str(path))(*inputs)
    return [t.numpy() for t in out] if isinstance(out, (tuple, list)) else out.numpy()


# -- a run's graph ----------------------------------------------------------------------------------------------------


@dataclass
class RunGraph:
    """What an export of a run writes: its inference module, inputs (symbolic axes by name) and output names."""

    module: nn.Module
    inputs: list[dict[str, Any]]
    outputs: list[str]
    meta: dict[str, Any]

    def signature(self) -> Signature:
        dynamic = {
            spec["name"]: {axis: dim for axis, dim in enumerate(spec["shape"]) if isinstance(dim, str)}
            for spec in self.inputs
        }
        return Signature([spec["name"] for spec in self.inputs], list(self.outputs), dynamic)

    def sample(self, batch: int, longer: int = 0, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs of the declared dtypes and shapes; a symbolic length `longer` tokens past the run's."""
        generator = torch.Generator().manual_seed(seed)
        length = int(self.meta.get("input_shape", [1])[0]) + longer
        tensors = []
        for spec in self.inputs:
            shape = [batch if dim == "batch" else length if isinstance(dim, str) else int(dim) for dim in spec["shape"]]
            tensors.append(_random(spec["dtype"], shape, generator, int(self.meta.get("vocab_size", 2))))
        return tuple(tensors)


def _random(dtype: str, shape: list[int], generator: torch.Generator, vocab_size: int) -> torch.Tensor:
    if dtype == "uint8":
        return torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
    if dtype == "int64":  # token ids, the end of each sentence padded (0), as TextEncoder.encode gives them
        ids = torch.randint(1, max(vocab_size, 2), shape, dtype=torch.int64, generator=generator)
        if ids.ndim == 2 and ids.shape[1] > 2:
            ids[:, -(ids.shape[1] // 3) :] = 0
        return ids
    return torch.rand(shape, generator=generator, dtype=getattr(torch, dtype))


def run_graph(run: LoadedRun, dynamic_batch: bool) -> RunGraph:
    """The run's task's inference module, with a fixed batch of 1 unless the batch axis is to be dynamic."""
    from cnnlab import tasks

    task = run.task or tasks.create("classification")
    module = task.inference_module(run.model, run.preprocess, run.meta).eval()
    inputs = [dict(spec) for spec in task.export_inputs(run.meta)]
    if not dynamic_batch:
        for spec in inputs:
            spec["shape"] = [1 if dim == "batch" else dim for dim in spec["shape"]]
    return RunGraph(module, inputs, list(task.export_outputs), run.meta)


def _as_list(out: Any) -> list[np.ndarray]:
    if isinstance(out, (tuple, list)):
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in out]
    return [out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)]


def max_difference(actual: Sequence[np.ndarray], expected: Sequence[np.ndarray], scaled: bool = False) -> float:
    """The largest |actual - expected| over every output (inf when the outputs' count or shapes differ).

    `scaled`: each output's differences divided by max(1, its largest |expected|): absolute for outputs within
    [-1, 1] (probabilities, unit embeddings, small logits), relative to the output's range beyond (box corners in
    pixels: a corner near 0 is cx - w/2 of two ~100-pixel values, float32 spacing 1e-5 there; large logits)."""
    if len(actual) != len(expected) or any(a.shape != e.shape for a, e in zip(actual, expected)):
        return float("inf")
    gaps = []
    for a, e in zip(actual, expected):
        gap = np.abs(a.astype(np.float64) - e.astype(np.float64))
        scale = max(1.0, float(np.abs(e).max(initial=0.0))) if scaled else 1.0
        gaps.append(gap.max(initial=0.0) / scale)
    return float(max(gaps, default=0.0))


# -- export_run -------------------------------------------------------------------------------------------------------


def export_run(
    run_dir: str | Path,
    format: str = "onnx",
    out: str | Path | None = None,
    opset: int | str = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    dynamic_batch: bool = False,
    checkpoint: str = "best",
) -> ExportResult:
    """Export the run's inference module and the metadata beside it; raises if the exported model's outputs differ
    from eager by > tolerance. Without `dynamic_batch` the graph takes batches of one image (or sentence)."""
    if format not in FORMATS:
        raise ConfigError(f"--format: unknown export format {format!r}; choose {', '.join(FORMATS)}")
    opset = check_opset(opset)
    if format == "onnx":
        require_export_extra()
    run = load_run(run_dir, checkpoint=checkpoint)
    check_finite_weights(run)
    graph = run_graph(run, dynamic_batch)
    path = Path(out) if out else run.run_dir / f"model{FORMATS[format]}"
    example = graph.sample(EXAMPLE_BATCH if dynamic_batch else 1)
    symbolic_length = any(dim not in ("batch",) and isinstance(dim, str) for s in graph.inputs for dim in s["shape"])
    check_batch = CHECK_BATCH if dynamic_batch else 1  # another batch size proves the batch axis is dynamic
    check = graph.sample(check_batch, longer=LONGER_TEXT if symbolic_length else 0, seed=1)
    with torch.inference_mode():
        expected = _as_list(graph.module(*check))
    # Written beside the target and renamed only once verified: a failed or killed export leaves no file.
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if format == "onnx":
            try:
                how = export_onnx(graph.module, example, staging, opset, graph.signature())
            except CnnlabError as error:
                raise CnnlabError(f"{run.run_dir}: {error}") from error
            actual = run_onnx(staging, *check)
        else:
            how = {"exporter": "torch.jit.trace"}
            export_torchscript(graph.module, example, staging)
            actual = _as_list(run_torchscript(staging, *check))
        difference, scaled = max_difference(actual, expected), max_difference(actual, expected, scaled=True)
        if not scaled <= tolerance:
            raise CnnlabError(
                f"{path}: exported model differs from eager by {difference:.2e} ({scaled:.2e} relative to the "
                f"output's range; > {tolerance:.0e})"
            )
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    outputs = [
        {"name": name, "shape": ["batch" if dynamic_batch and axis == 0 else dim for axis, dim in enumerate(e.shape)]}
        for name, e in zip(graph.outputs, expected)
    ]
    if not dynamic_batch:
        outputs = [{"name": o["name"], "shape": [1, *o["shape"][1:]]} for o in outputs]
    metadata = export_metadata(run, graph, format, opset if format == "onnx" else None, how, outputs, difference)
    metadata["parity"] = {
        "batch": check_batch,
        "tolerance": tolerance,
        "max_scaled_difference": scaled,
        "rule": "max |exported - eager| / max(1, max |eager|) <= tolerance, output by output",
    }
    metadata_path = _write_metadata(path, run, metadata)
    return ExportResult(path, format, difference, metadata_path, how["exporter"], graph.inputs, outputs, check_batch)


def export_metadata(
    run: LoadedRun,
    graph: RunGraph,
    format: str,
    opset: int | None,
    how: dict[str, str],
    outputs: list[dict[str, Any]],
    difference: float,
) -> dict[str, Any]:
    """What a user needs beside the model file: inputs, outputs, classes, preprocessing, the task's settings."""
    task = run.task.name if run.task is not None else "classification"
    return {
        "format": format,
        "task": task,
        "model": run.meta.get("model", {}).get("name", "layers"),
        "opset": opset,
        **how,
        "inputs": graph.inputs,
        "outputs": outputs,
        "classes": run.classes,
        "preprocessing": preprocessing(run),
        "task_options": task_options(run),
        "max_abs_difference": difference,
        "source_run": str(run.run_dir),
        "checkpoint_epoch": run.checkpoint_epoch,
    }


def preprocessing(run: LoadedRun) -> dict[str, Any]:
    """Images: the normalisation the graph applies and the size to resize to. Text: the tokenizer and padded
    length (the vocabulary goes to a file beside the metadata)."""
    meta = run.meta
    if "text" in meta:
        text = meta["text"]
        return {
            "kind": "text",
            "tokenizer": text["tokenizer"],
            "max_length": int(text["max_length"]),
            "pad_id": 0,
            "unk_id": 1,
            "in_graph": "nothing: tokenize, map tokens to ids (unknown -> 1), pad with 0",
        }
    shape = list(meta.get("input_shape", []))
    return {
        "kind": "volume" if len(shape) == 4 else "image",
        "channels": shape[0] if shape else None,
        "size": shape[1:],
        "normalization": meta.get("normalization"),
        "label_mode": meta.get("label_mode", "multiclass"),
        "in_graph": "x / 255 (uint8 input), then (x - mean) / std per channel",
    }


def task_options(run: LoadedRun) -> dict[str, Any]:
    """The settings a deployment applies outside the graph (detection's threshold and NMS, the faces threshold)."""
    name = run.task.name if run.task is not None else "classification"
    options = run.task.options if run.task is not None else None
    if name == "detection":
        return {
            "image_size": int(run.meta.get("image_size", run.input_shape[-1])),
            "conf_threshold": options.conf_threshold,
            "nms_iou": options.nms_iou,
            "max_detections": options.max_detections,
            "boxes": "xyxy in input pixels; score = objectness x class probability; NMS not in the graph",
        }
    calibration = (read_results(run.run_dir) or {}).get("calibration") or {}
    if name == "faces":
        return {"image_size": int(run.meta.get("image_size", run.input_shape[-1])), **calibration}
    if name == "classification" and calibration:  # a binary or multi-label run's operating point
        return {"calibration": calibration}
    return {}


def _write_metadata(path: Path, run: LoadedRun, metadata: dict[str, Any]) -> Path:
    if "text" in run.meta:
        vocabulary = path.with_name(path.name + ".vocab.json")
        atomic_write_json(vocabulary, {"tokens": run.meta["text"]["vocabulary"]["tokens"], "pad_id": 0, "unk_id": 1})
        metadata["preprocessing"]["vocabulary_file"] = vocabulary.name
    return atomic_write_json(path.with_suffix(path.suffix + ".json"), metadata)
