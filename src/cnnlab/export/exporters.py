"""ONNX and TorchScript export of a run's model, with its preprocessing baked in.

The exported graph takes the raw image batch (uint8, N×C×H×W, what decoding an image gives) and returns
logits, so a deployment needs no copy of the normalisation constants. Every export is checked: the
exported model must reproduce the eager model's logits (onnxruntime for ONNX).
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.runs import LoadedRun, load_run

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
# The opsets torch.onnx's TorchScript-based exporter (dynamo=False) can write.
MIN_OPSET = getattr(torch.onnx._constants, "ONNX_MIN_OPSET", 7)
MAX_OPSET = getattr(torch.onnx._constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20)


class ImageClassifier(nn.Module):
    """Preprocessing + model: uint8 images in, logits out."""

    def __init__(self, run: LoadedRun) -> None:
        super().__init__()
        self.preprocess = run.preprocess
        self.model = run.model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(images))


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_difference: float
    metadata_path: Path


def check_opset(opset: int | str) -> int:
    """The ONNX opset as an int the exporter supports (a flag's text is accepted)."""
    text = str(opset).strip()
    if not text.isdigit() or not MIN_OPSET <= int(text) <= MAX_OPSET:
        raise ConfigError(f"--opset must be a whole number in [{MIN_OPSET}, {MAX_OPSET}], got {opset!r}")
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


def _example_batch(run: LoadedRun, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, *run.input_shape), dtype=torch.uint8, generator=generator)


def require_export_extra() -> None:
    """onnx and onnxruntime come with the `export` extra, not with cnnlab itself: say so in one line."""
    for package in ("onnx", "onnxruntime"):
        try:
            importlib.import_module(package)
        except ImportError:
            raise CnnlabError(
                f"export --format onnx needs the {package} package; install it with: pip install 'cnnlab[export]'"
            ) from None


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Recent torch (2.14 here) marks torch.jit deprecated with a FutureWarning on trace, save and load; TorchScript is
    still what a C++ (libtorch) deployment loads, so the warning is noise to a user who asked for it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def export_onnx(module: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            input_names=["images"],
            output_names=["logits"],
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )


def run_onnx(path: Path, images: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"images": images.numpy()})[0]


def export_torchscript(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, example)
    with quiet_torchscript():
        traced.save(str(path))


def run_torchscript(path: Path, images: torch.Tensor) -> np.ndarray:
    with quiet_torchscript(), torch.inference_mode():
        return torch.jit.load(str(path))(images).numpy()


def export_run(
    run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, opset: int = 17, tolerance: float = 1e-4
) -> ExportResult:
    """Export the run's best model; raises if the exported model's logits differ from eager by > tolerance."""
    if format not in FORMATS:
        raise ConfigError(f"--format: unknown export format {format!r}; choose {', '.join(FORMATS)}")
    opset = check_opset(opset)
    if format == "onnx":
        require_export_extra()
    run = load_run(run_dir)
    check_finite_weights(run)
    module = ImageClassifier(run).eval()
    path = Path(out) if out else run.run_dir / f"model{FORMATS[format]}"
    example = _example_batch(run)
    check = _example_batch(run, batch=5)  # a different batch size proves the batch axis is dynamic
    with torch.inference_mode():
        expected = module(check).numpy()
    # Written beside the target and renamed only once verified: a failed or killed export leaves no file.
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if format == "onnx":
            export_onnx(module, example, staging, opset)
            actual = run_onnx(staging, check)
        else:
            export_torchscript(module, example, staging)
            actual = run_torchscript(staging, check)
        difference = float(np.abs(actual - expected).max())
        if difference > tolerance:
            raise CnnlabError(f"{path}: exported model differs from eager by {difference:.2e} (> {tolerance:.0e})")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    metadata_path = atomic_write_json(
        path.with_suffix(path.suffix + ".json"),
        {
            "format": format,
            "input": {"name": "images", "dtype": "uint8", "shape": ["batch", *run.input_shape]},
            "output": {"name": "logits", "classes": run.classes},
            "max_abs_difference": difference,
            "normalization": run.meta["normalization"],
            "source_run": str(run.run_dir),
        },
    )
    return ExportResult(path, format, difference, metadata_path)
