"""`cnnlab predict RUN IMG|DIR ... [--top-k 3] [--json | --csv]`.

Predictions go to stdout; a file that cannot be read gets one `cnnlab: error:` line on stderr, the others are
still predicted, and the exit code is 1 when any failed. `--top-k` above the run's classes shows them all (with
a note on stderr). An image far from the training images in an obvious way (inverted polarity, colour for a
grey model, a big resize, blank) gets hints: `  hint: ...` lines under its row, a "hints" list in --json, a
"hints" column in --csv (joined by "; "); the prediction itself is unchanged.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys

from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError
from cnnlab.evaluate.predict import Prediction, predict_files
from cnnlab.runs import load_run, require_classification


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--top-k", type=int, default=3, help="labels per image (>= 1)")
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="one JSON list")
    output.add_argument("--csv", action="store_true", help="CSV: path,rank,label,probability,hints")


def run(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1 (labels per image), got {args.top_k}")
    loaded = load_run(args.run, args.checkpoint, device=resolve_device("auto"))
    require_classification(loaded, "predict")
    if args.top_k > len(loaded.classes):
        count = len(loaded.classes)
        print(
            f"cnnlab: note: --top-k {args.top_k} is more than the run's {count} classes; showing {count}",
            file=sys.stderr,
        )
    predictions = predict_files(loaded, args.images, args.top_k)
    good = [p for p in predictions if p.error is None]
    if args.json:
        print(json.dumps([_as_json(p) for p in good], indent=2))
    elif args.csv:
        _write_csv(good)
    else:
        _print_table(good)
    for failed in predictions:
        if failed.error is not None:
            print(f"cnnlab: error: {failed.error}", file=sys.stderr)
    return 1 if len(good) < len(predictions) else 0


def _as_json(prediction: Prediction) -> dict:
    tops = [{"label": label, "probability": prob} for label, prob in zip(prediction.labels, prediction.probabilities)]
    return {"path": prediction.path, "top": tops, "hints": prediction.hints}


def _write_csv(predictions: list[Prediction]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(["path", "rank", "label", "probability", "hints"])
    for p in predictions:
        hints = "; ".join(p.hints)  # on every row of the image, so that any one row read alone carries them
        for rank, (label, prob) in enumerate(zip(p.labels, p.probabilities), start=1):
            writer.writerow([p.path, rank, label, f"{prob:.6f}", hints])


def _print_table(predictions: list[Prediction]) -> None:
    width = max((len(p.path) for p in predictions), default=0)
    for p in predictions:
        tops = "  ".join(f"{label} {prob:.3f}" for label, prob in zip(p.labels, p.probabilities))
        print(f"{p.path:<{width}}  {tops}")
        for hint in p.hints:
            print(f"  hint: {hint}")
