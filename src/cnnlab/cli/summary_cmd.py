"""`cnnlab summary MODEL|layers.yaml`: the layer table with shapes, parameters, MACs and receptive field."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cnnlab.errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL|LAYERS.yaml", help="a zoo model name or a YAML layer-list file")
    parser.add_argument(
        "--input",
        metavar="CxHxW",
        help="one sample's shape, CxDxHxW for a volume model, L tokens for a text model (default: the model's own)",
    )
    parser.add_argument("--num-classes", type=int, metavar="N", help="output classes (default: the model's)")
    parser.add_argument(
        "--model-options",
        metavar="K=V,...",
        help="zoo model options, as for `cnnlab train` (e.g. variant=multichannel,vocab_size=18765)",
    )
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
    if len(entry.default_input) == 1:  # a text model: the input is L token ids, no channels
        options["in_channels"] = 1
    options.update(_model_options(args))
    summary = summarize_builder(lambda: create(name, **options), shape, args.batch_size, name=name)
    return summary, f"{name}: {entry.paper}"


def _model_options(args: argparse.Namespace) -> dict:
    from cnnlab.config import parse_mapping

    options = parse_mapping(args.model_options) if getattr(args, "model_options", None) else {}
    clashing = sorted({"num_classes", "in_channels"} & set(options))
    if clashing:
        raise ConfigError(f"--model-options: set {clashing[0]} with its own flag (--num-classes, --input)")
    return options


def _summarize_layer_file(path: Path, shape: tuple[int, ...] | None, args: argparse.Namespace):
    from cnnlab.layers.builder import load_network
    from cnnlab.summary import summarize

    if not path.is_file():
        raise ConfigError(f"no layer-list file {str(path)!r}")
    vocab = _model_options(args).get("vocab_size")  # a text net's `embedding: {vocab: vocab}`
    model, input_shape = load_network(path, num_classes=args.num_classes, input_shape=shape, vocab_size=vocab)
    # The freshly built net is ours: moving it to the meta device makes the pass free of memory and compute.
    try:
        return summarize(model.to("meta"), input_shape, args.batch_size, name=path.stem)
    except (ConfigError, RuntimeError):
        model, input_shape = load_network(path, num_classes=args.num_classes, input_shape=shape, vocab_size=vocab)
        return summarize(model, input_shape, args.batch_size, name=path.stem)
