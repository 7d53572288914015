"""`cnnlab models`: every zoo model with its parameters, MACs at its default input, and its paper.

Importing torch and building and measuring all 22 models took 10.7 s on an idle 2-core machine (MAC counting
on the meta device dominates); the table now comes from `models_table.py`, computed once by the same code, in
0.18 s, while the sources it was computed from are unchanged. After any edit to them the rows are computed
live again, and a test says to rewrite the table: `python -m cnnlab.cli.models_cmd`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import textwrap
from pathlib import Path

from cnnlab.errors import CnnlabError

PACKAGE = Path(__file__).resolve().parents[1]
TABLE_PATH = Path(__file__).with_name("models_table.py")
# What the table's figures depend on: the model families, the layers they use, and the MAC counter.
TABLE_SOURCES = ("models/*.py", "layers/**/*.py", "summary.py")
LINE_LENGTH = 120  # ruff's, for the written table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the list as JSON")


def run(args: argparse.Namespace) -> int:
    records, failed = zoo_records()
    print(json.dumps(records, indent=2) if args.json else _table(records))
    return 1 if failed else 0


def zoo_records() -> tuple[list[dict], bool]:
    """The zoo's rows (and whether a model failed): from the shipped table while it is current, else computed."""
    from cnnlab.cli import models_table

    if models_table.SOURCE_HASH == source_hash():
        return [dict(record) for record in models_table.MODELS], False
    return computed_records()


def source_hash() -> str:
    """A digest of TABLE_SOURCES: it changes with any edit that could change a row."""
    files = sorted({path for pattern in TABLE_SOURCES for path in PACKAGE.glob(pattern)})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def computed_records() -> tuple[list[dict], bool]:
    """Every model built (on the meta device) and measured: what the table must equal."""
    from cnnlab.models import list_models

    records, failed = [], False
    for name in list_models():
        try:
            records.append(_describe(name))
        except (CnnlabError, RuntimeError) as error:  # one broken model must not hide the others
            print(f"cnnlab: warning: {name}: {error}", file=sys.stderr)
            failed = True
    return records, failed


def _describe(name: str) -> dict:
    from cnnlab.models import create, get_entry
    from cnnlab.summary import summarize_builder

    entry = get_entry(name)
    summary = summarize_builder(lambda: create(name), entry.default_input, name=name)
    return {
        "name": name,
        "params": summary.params,
        "macs": summary.macs,
        "default_input": list(entry.default_input),
        "default_classes": entry.default_classes,
        "paper": entry.paper,
    }


def write_table(path: Path = TABLE_PATH) -> None:
    """Compute every row and write them, with the sources' digest, as a Python module (packaged like code)."""
    from cnnlab.io import atomic_write_text

    records, failed = computed_records()
    if failed:
        raise CnnlabError("a model failed to build; the table is not written")
    atomic_write_text(path, _table_module(records, source_hash()))


def _table_module(records: list[dict], digest: str) -> str:
    rows = "".join(f"    {_row_text(record)},\n" for record in records)
    return (
        '"""`cnnlab models`\' rows, written by `python -m cnnlab.cli.models_cmd` (do not edit by hand)."""\n\n'
        f'SOURCE_HASH = "{digest}"\n\nMODELS = [\n{rows}]\n'
    )


def _row_text(record: dict) -> str:
    """One row as `ruff format` writes it, so the written module needs no formatting."""
    lines = [f"        {json.dumps(key)}: {json.dumps(value)}," for key, value in record.items() if key != "paper"]
    paper = json.dumps(record["paper"])
    if len(f'        "paper": {paper},') <= LINE_LENGTH:
        lines.append(f'        "paper": {paper},')
    else:
        fits = len(paper) + 12 <= LINE_LENGTH
        parts = [paper] if fits else [json.dumps(p) for p in textwrap.wrap(record["paper"], 100, drop_whitespace=False)]
        lines += ['        "paper": (', *(f"            {part}" for part in parts), "        ),"]
    return "{\n" + "\n".join(lines) + "\n    }"


def _table(records: list[dict]) -> str:
    header = ["Model", "Params", "MACs", "Input", "Classes", "Paper"]
    rows = [
        [
            r["name"],
            f"{r['params']:,}",
            format_count(r["macs"]),
            input_text(r["default_input"]),
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


def input_text(shape: list[int]) -> str:
    """`3x224x224`; a 1-D default input is a text model's L token ids: `56 tokens`."""
    return f"{shape[0]} tokens" if len(shape) == 1 else "x".join(map(str, shape))


_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def format_count(value: float, digits: int = 2) -> str:
    """cnnlab.summary.format_count, here so that printing the table imports no torch."""
    for scale, unit in _UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f} {unit}"
    return f"{value:g}"


if __name__ == "__main__":
    write_table()
    print(f"wrote {TABLE_PATH}")
