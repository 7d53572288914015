"""`cnnlab export RUN --format onnx|torchscript [--out PATH]`."""

from __future__ import annotations

import argparse

from cnnlab.export import export_run
from cnnlab.export.exporters import MAX_OPSET, MIN_OPSET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    parser.add_argument("--out", help="output file (default RUN/model.onnx or RUN/model.pt)")
    # Read as text and checked by export_run, so a wrong value is a one-line cnnlab error naming the range.
    parser.add_argument("--opset", default="17", help=f"ONNX opset version ({MIN_OPSET}-{MAX_OPSET})")


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run, args.format, args.out, args.opset)
    print(f"exported {result.format}: {result.path} (input: uint8 images N×C×H×W; output: logits)")
    print(f"verified against eager PyTorch: max |difference| = {result.max_abs_difference:.2e}")
    print(f"metadata: {result.metadata_path}")
    return 0
