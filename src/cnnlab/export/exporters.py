"""ONNX and TorchScript export of a run's model, with its preprocessing baked in.

The exported graph takes the raw image batch (uint8, N×C×H×W, what decoding an image gives) and returns
logits, so a deployment needs no copy of the normalisation constants. Every export is checked: the
exported model must reproduce the eager model's logits (onnxruntime for ONNX).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.runs import LoadedRun, load_run

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}


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


def _example_batch(run: LoadedRun, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (batch, *run.input_shape), dtype=torch.uint8, generator=generator)


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
    traced.save(str(path))


def export_run(
    run_dir: str | Path, format: str = "onnx", out: str | Path | None = None, opset: int = 17, tolerance: float = 1e-4
) -> ExportResult:
    """Export the run's best model; raises if the exported model's logits differ from eager by > tolerance."""
    if format not in FORMATS:
        raise ConfigError(f"--format: unknown export format {format!r}; choose {', '.join(FORMATS)}")
    run = load_run(run_dir)
    module = ImageClassifier(run).eval()
    path = Path(out) if out else run.run_dir / f"model{FORMATS[format]}"
    example = _example_batch(run)
    check = _example_batch(run, batch=5)  # a different batch size proves the batch axis is dynamic
    with torch.inference_mode():
        expected = module(check).numpy()
    if format == "onnx":
        export_onnx(module, example, path, opset)
        actual = run_onnx(path, check)
    else:
        export_torchscript(module, example, path)
        with torch.inference_mode():
            actual = torch.jit.load(str(path))(check).numpy()
    difference = float(np.abs(actual - expected).max())
    if difference > tolerance:
        raise CnnlabError(f"{path}: exported model differs from eager by {difference:.2e} (> {tolerance:.0e})")
    metadata_path = path.with_suffix(path.suffix + ".json")
    metadata_path.write_text(
        json.dumps(
            {
                "format": format,
                "input": {"name": "images", "dtype": "uint8", "shape": ["batch", *run.input_shape]},
                "output": {"name": "logits", "classes": run.classes},
                "max_abs_difference": difference,
                "normalization": run.meta["normalization"],
                "source_run": str(run.run_dir),
            },
            indent=2,
        )
    )
    return ExportResult(path, format, difference, metadata_path)
