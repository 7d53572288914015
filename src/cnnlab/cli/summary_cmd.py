"""`cnnlab summary MODEL|layers.yaml`: the layer table with shapes, parameters, MACs and receptive field."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL|LAYERS.yaml", help="a zoo model name or a YAML layer-list file")
    parser.add_argument(
        "--input", metavar="CxHxW", help="one sample's shape, CxDxHxW for a volume model (default: the model's own)"
    )
    parser.add_argument("--num-classes", type=int, metavar="N", help="output classes (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=1, metavar="B", help="scales shapes, MACs and memory")
    parser.add_argument("--json", action="store_true", help="print the table as JSON")


def run(args: argparse.Namespace) -> int:
    from cnnlab.summary import parse_input_shape

    if args.num_classes is not None and args.num_classes < 1:
        raise ConfigError(f"--num-classes must be at least 1, got {args.num_classes}")
    if _is_layer_file(args.model):
        shape = parse_input_shape(args.input, ndim=None) if args.input else None
        summary, header = _summarize_layer_file(Path(args.model), shape, args), f"layer list {args.model}"
    else:
        summary, header = _summarize_zoo_model(args.model, args)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(header)
        print(summary.format_table())
    return 0


def _is_layer_file(text: str) -> bool:
    return text.endswith((".yaml", ".yml")) or Path(text).is_file()


def _summarize_zoo_model(name: str, args: argparse.Namespace):
    from cnnlab.models import create, get_entry
    from cnnlab.summary import parse_input_shape, summarize_builder

    entry = get_entry(name)
    shape = parse_input_shape(args.input, ndim=len(entry.default_input)) if args.input else entry.default_input
    options = {"num_classes": args.num_classes or entry.default_classes, "in_channels": shape[0]}
    summary = summarize_builder(lambda: create(name, **options), shape, args.batch_size, name=name)
    return summary, f"{name}: {entry.paper}"


def _summarize_layer_file(path: Path, shape: tuple[int, ...] | None, args: argparse.Namespace):
    from cnnlab.layers.builder import load_network
    from cnnlab.summary import summarize

    if not path.is_file():
        raise ConfigError(f"no layer-list file {str(path)!r}")
    model, input_shape = load_network(path, num_classes=args.num_classes, input_shape=shape)
    # The freshly built net is ours: moving it to the meta device makes the pass free of memory and compute.
    try:
        return summarize(model.to("meta"), input_shape, args.batch_size, name=path.stem)
    except (ConfigError, RuntimeError):
        model, input_shape = load_network(path, num_classes=args.num_classes, input_shape=shape)
        return summarize(model, input_shape, args.batch_size, name=path.stem)
