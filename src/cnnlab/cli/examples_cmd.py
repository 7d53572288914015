"""`cnnlab examples`: the example configs shipped with cnnlab, each with its description and how to run it."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args: argparse.Namespace) -> int:
    from cnnlab.examples import examples_folder, list_examples

    examples = list_examples()
    if args.json:
        records = [
            {"name": e.name, "path": str(e.path), "description": e.description, "command": e.command} for e in examples
        ]
        print(json.dumps(records, indent=2))
        return 0
    width = max(len(e.name) for e in examples)
    for example in examples:
        print(f"{example.name:<{width}}  {example.description}")
        print(f"{'':<{width}}  run: {example.command}")
    print(f"\nthe files are in {examples_folder()}; flags override a config (--epochs 3)")
    return 0
