"""`cnnlab report RUN [--out report.html] [--data PATH]`: one self-contained HTML page about a run."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("--out", help="HTML file to write (default: RUN/report.html)")
    parser.add_argument(
        "--split", choices=["train", "val", "test"], help="split evaluated and shown (default: test, else val)"
    )
    parser.add_argument("--data", metavar="PATH", help="evaluate this data instead of the run's own (e.g. moved)")
    parser.add_argument("--mistakes", type=int, default=12, help="most confident mistakes shown")
    parser.add_argument("--gradcam", type=int, default=6, help="images explained with Grad-CAM")


def run(args: argparse.Namespace) -> int:
    """Write the page even when sections cannot be made (exit 0), saying on stderr which and why."""
    from cnnlab.viz.report import write_report

    report = write_report(args.run, args.out, args.split, args.mistakes, args.gradcam, data=args.data)
    for title, why in report.missing:
        print(f"cnnlab: note: report section {title!r} not made: {why}", file=sys.stderr)
    if report.missing:
        titles = ", ".join(title for title, _ in report.missing)
        print(f"written: {report.path} (not made: {titles}; see the notes above)")
    else:
        print(f"written: {report.path}")
    return 0
