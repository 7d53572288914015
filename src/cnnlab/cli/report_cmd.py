"""`cnnlab report RUN [--out report.html]`: one self-contained HTML page about a run."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("--out", help="HTML file to write (default: RUN/report.html)")
    parser.add_argument(
        "--split", choices=["train", "val", "test"], help="split evaluated and shown (default: test, else val)"
    )
    parser.add_argument("--mistakes", type=int, default=12, help="most confident mistakes shown")
    parser.add_argument("--gradcam", type=int, default=6, help="images explained with Grad-CAM")


def run(args: argparse.Namespace) -> int:
    from cnnlab.viz.report import build_report

    path = build_report(args.run, args.out, args.split, args.mistakes, args.gradcam)
    print(f"written: {path}")
    return 0
