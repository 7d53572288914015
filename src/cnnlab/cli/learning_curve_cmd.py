"""`cnnlab learning-curve --config F.yaml | --model M --data P [--fractions 0.1,0.25,0.5,1.0] [--epochs N]`."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.config import add_dataclass_arguments, load_config, overrides_from_args
from cnnlab.diagnose.learning_curve import LearningCurve, learning_curve, parse_fractions
from cnnlab.runs import check_output_folder
from cnnlab.train.config import TrainConfig

DEFAULT_FRACTIONS = "0.1,0.25,0.5,1.0"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    parser.add_argument(
        "--fractions",
        default=DEFAULT_FRACTIONS,
        help=f"fractions of the training data to train on (default {DEFAULT_FRACTIONS})",
    )
    add_dataclass_arguments(parser, TrainConfig)
    parser.epilog = (
        "--out is the folder for the curve (default: <run folder>_learning_curve); --epochs is for "
        "the full data, smaller fractions train proportionally longer (same number of steps)."
    )


def output_folder(config: TrainConfig, overrides: dict) -> Path:
    if "out" in overrides:
        return Path(config.out)
    base = config.out or str(Path("runs") / Path(config.model).stem)
    return Path(f"{base.rstrip('/')}_learning_curve")


def format_table(curve: LearningCurve) -> str:
    lines = ["fraction  images  val_accuracy  val_loss  train_accuracy  best_epoch  epochs  seconds"]
    for p in curve.points:
        lines.append(
            f"{p.fraction:>8g}  {p.train_size:>6}  {p.val_accuracy:>12.4f}  {p.val_loss:>8.4f}  "
            f"{p.train_accuracy:>14.4f}  {p.best_epoch:>10}  {p.epochs_run:>6}  {p.seconds:>7.1f}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args, TrainConfig)
    config = load_config(TrainConfig, args.config, overrides)
    folder = check_output_folder(output_folder(config, overrides))
    curve = learning_curve(config, parse_fractions(args.fractions), folder, log=print)
    print()
    print(format_table(curve))
    print()
    print(curve.message)
    print(f"written: {folder / 'learning_curve.json'}, {folder / 'learning_curve.png'}")
    return 0
