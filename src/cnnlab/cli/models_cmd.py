"""`cnnlab models`: every zoo model with its parameters, MACs at its default input, and its paper."""

from __future__ import annotations

import argparse
import json
import sys

from cnnlab.errors import CnnlabError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args: argparse.Namespace) -> int:
    from cnnlab.models import list_models

    records, failed = [], False
    for name in list_models():
        try:
            records.append(_describe(name))
        except (CnnlabError, RuntimeError) as error:  # one broken model must not hide the others
            print(f"cnnlab: warning: {name}: {error}", file=sys.stderr)
            failed = True
    print(json.dumps(records, indent=2) if args.json else _table(records))
    return 1 if failed else 0


def _describe(name: str) -> dict:
    from cnnlab.models import create, get_entry
    from cnnlab.summary import summarize_builder

    entry = get_entry(name)
    # Built on the meta device: all models together take well under a second.
    summary = summarize_builder(lambda: create(name), entry.default_input, name=name)
    return {
        "name": name,
        "params": summary.params,
        "macs": summary.macs,
        "default_input": list(entry.default_input),
        "default_classes": entry.default_classes,
        "paper": entry.paper,
    }


def _table(records: list[dict]) -> str:
    from cnnlab.summary import format_count

    header = ["Model", "Params", "MACs", "Input", "Classes", "Paper"]
    rows = [
        [
            r["name"],
            f"{r['params']:,}",
            format_count(r["macs"]),
            "x".join(map(str, r["default_input"])),
            str(r["default_classes"]),
            r["paper"],
        ]
        for r in records
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {1, 2, 4}

    def render(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [render(header), "  ".join("-" * w for w in widths), *(render(row) for row in rows)]
    lines.append("MACs: multiply-accumulates for one sample at the default input (FLOPs = 2 x MACs).")
    return "\n".join(line.rstrip() for line in lines)
