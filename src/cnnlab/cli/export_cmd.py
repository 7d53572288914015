"""`cnnlab export RUN --format onnx|torchscript [--opset N] [--dynamic-batch] [--out PATH]`."""

from __future__ import annotations

import argparse

from cnnlab.export import export_run
from cnnlab.export.exporters import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train` (any task)")
    parser.add_argument("--format", default="onnx", choices=["onnx", "torchscript"])
    parser.add_argument("--out", help="output file (default RUN/model.onnx or RUN/model.pt)")
    # Read as text and checked by export_run, so a wrong value is a one-line cnnlab error naming the range.
    parser.add_argument(
        "--opset",
        default=str(DEFAULT_OPSET),
        help=f"ONNX opset version ({MIN_OPSET}-{MAX_OPSET}; 18+ use the dynamo exporter; default {DEFAULT_OPSET})",
    )
    parser.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="a symbolic batch axis (default: batches of one); kim_cnn's sentence length is symbolic either way",
    )


def _shape(shape: list) -> str:
    return "×".join(str(dim) for dim in shape)


def run(args: argparse.Namespace) -> int:
    result = export_run(args.run, args.format, args.out, args.opset, dynamic_batch=args.dynamic_batch)
    print(f"exported {result.format} ({result.exporter}): {result.path}")
    inputs = ", ".join(f"{spec['name']} {spec['dtype']} {_shape(spec['shape'])}" for spec in result.inputs)
    outputs = ", ".join(f"{spec['name']} {_shape(spec['shape'])}" for spec in result.outputs)
    print(f"inputs: {inputs}; outputs: {outputs}")
    print(
        f"verified against eager PyTorch on a batch of {result.check_batch}: "
        f"max |difference| = {result.max_abs_difference:.2e}"
    )
    print(f"metadata: {result.metadata_path}")
    return 0
