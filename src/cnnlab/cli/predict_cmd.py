"""`cnnlab predict RUN IMG|DIR ... [--top-k 3] [--json | --csv]`."""

from __future__ import annotations

import argparse
import csv
import json
import sys

from cnnlab.device import resolve_device
from cnnlab.evaluate.predict import predict_files
from cnnlab.runs import load_run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON list")
    output.add_argument("--csv", action="store_true", help="CSV: path,rank,label,probability")


def run(args: argparse.Namespace) -> int:
    loaded = load_run(args.run, args.checkpoint, device=resolve_device("auto"))
    predictions = predict_files(loaded, args.images, args.top_k)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "path": p.path,
                        "top": [
                            {"label": label, "probability": prob} for label, prob in zip(p.labels, p.probabilities)
                        ],
                    }
                    for p in predictions
                ],
                indent=2,
            )
        )
    elif args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", "rank", "label", "probability"])
        for p in predictions:
            for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), start=1):
                writer.writerow([p.path, rank, label, f"{prob:.6f}"])
    else:
        width = max(len(p.path) for p in predictions)
        for p in predictions:
            tops = "  ".join(f"{label} {prob:.3f}" for label, prob in zip(p.labels, p.probabilities))
            print(f"{p.path:<{width}}  {tops}")
    return 0
