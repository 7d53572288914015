"""`cnnlab export RUN --format onnx|torchscript [--out PATH]`."""

from __future__ import annotations

import argparse

from cnnlab.export import export_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    parser.add_argument("--out", help="output file (default RUN/model.onnx or RUN/model.pt)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset version")


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run, args.format, args.out, args.opset)
    print(f"exported {result.format}: {result.path} (input: uint8 images N×C×H×W; output: logits)")
    print(f"verified against eager PyTorch: max |difference| = {result.max_abs_difference:.2e}")
    print(f"metadata: {result.metadata_path}")
    return 0
