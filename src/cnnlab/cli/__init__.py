"""The `cnnlab` command: thin wrappers that parse flags, build a config and call the library."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# OpenMP threads that spin while waiting collapse when another process holds a core: measured 12-16x slower
# LeNet-5 steps with 2 spinning threads on a shared 2-core machine (bench/RESULTS.md). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from cnnlab.errors import CnnlabError

# Subcommand name -> module in cnnlab.cli with `add_arguments(parser)` and `run(args) -> int`.
COMMANDS = {
    "models": ("models_cmd", "list the model zoo with parameters, MACs and papers"),
    "tasks": ("tasks_cmd", "list the tasks: their metrics (and directions) and default monitor"),
    "summary": ("summary_cmd", "layer-by-layer table: shapes, parameters, MACs, receptive field"),
    "train": ("train_cmd", "train a model (YAML config + flag overrides)"),
    "evaluate": ("evaluate_cmd", "evaluate a run: accuracy, per-class metrics, confusion matrix"),
    "predict": ("predict_cmd", "top-k predictions for images with the run's preprocessing"),
    "diagnose": ("diagnose_cmd", "find overfitting/underfitting in a run and prescribe fixes"),
    "learning-curve": ("learning_curve_cmd", "train on growing data fractions: would more data help?"),
    "explain": ("explain_cmd", "Grad-CAM and feature maps for an image"),
    "filters": ("filters_cmd", "first-layer filters as an image grid"),
    "report": ("report_cmd", "one self-contained HTML report of a run"),
    "export": ("export_cmd", "export a run's model to ONNX or TorchScript"),
}


def _load(module: str):
    return importlib.import_module(f"cnnlab.cli.{module}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen subcommand's module is imported, so `cnnlab models` stays fast.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            try:
                _load(module).add_arguments(command_parser)
            except ModuleNotFoundError as error:
                if error.name != f"cnnlab.cli.{module}":
                    raise
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module_name = COMMANDS[args.command][0]
    try:
        module = _load(module_name)
    except ModuleNotFoundError as error:
        if error.name == f"cnnlab.cli.{module_name}":
            print(f"cnnlab: error: command {args.command!r} is not available in this version", file=sys.stderr)
            return 2
        raise
    args.argv = argv
    try:
        return int(module.run(args) or 0)
    except CnnlabError as error:
        print(f"cnnlab: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
