"""`cnnlab lr-find --model M --data P [--optimizer.name adam] [--steps 100]`: the learning-rate range test."""

from __future__ import annotations

import argparse
from pathlib import Path

from cnnlab.config import add_dataclass_arguments, load_config, overrides_from_args
from cnnlab.errors import ConfigError
from cnnlab.runs import check_output_folder
from cnnlab.train.config import TrainConfig
from cnnlab.train.lr_find import END_LR, START_LR, STEPS, LrFindResult, find_learning_rate, write_lr_find

STOPPED = {
    "steps": "after its last step",
    "diverged": "when the smoothed loss passed 4x its minimum",
    "not finite": "when the loss stopped being finite",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    parser.add_argument("--steps", default=str(STEPS), help=f"at most this many training steps (default {STEPS})")
    parser.add_argument("--start-lr", default=str(START_LR), help=f"first learning rate (default {START_LR:g})")
    parser.add_argument("--end-lr", default=str(END_LR), help=f"last learning rate (default {END_LR:g})")
    add_dataclass_arguments(parser, TrainConfig)
    parser.epilog = (
        "Trains the configured model with the learning rate growing exponentially, then restores its weights; "
        "--out is the folder for lr_find.png and lr_find.json (default: runs/<model>_lr_find). "
        "`cnnlab train --optimizer.lr auto` runs the same test and trains with its suggestion."
    )


def _number(flag: str, text: str, whole: bool = False) -> float:
    try:
        value = int(text) if whole else float(text)
    except ValueError:
        raise ConfigError(f"{flag} must be a {'whole ' if whole else ''}number, got {text!r}") from None
    return value


def output_folder(config: TrainConfig, overrides: dict) -> Path:
    if "out" in overrides:
        return Path(config.out)
    return Path("runs") / f"{Path(config.model).stem}_lr_find"


def describe(result: LrFindResult) -> list[str]:
    return [
        f"swept {len(result.lrs)} steps, learning rate {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}; "
        f"stopped {STOPPED.get(result.stopped, result.stopped)}",
        f"suggested learning rate: {result.suggestion:.3g} ({result.rule} rule; "
        f"steepest descent at {result.steepest:.3g}, minimum/10 at {result.minimum_over_10:.3g})",
    ]


def run(args: argparse.Namespace) -> int:
    steps = int(_number("--steps", args.steps, whole=True))
    start_lr, end_lr = _number("--start-lr", args.start_lr), _number("--end-lr", args.end_lr)
    overrides = overrides_from_args(args, TrainConfig)
    config = load_config(TrainConfig, args.config, overrides)
    folder = check_output_folder(output_folder(config, overrides))
    result = find_learning_rate(config, steps=steps, start_lr=start_lr, end_lr=end_lr)
    json_path, png_path = write_lr_find(result, folder)
    for line in describe(result):
        print(line)
    print(f"written: {png_path}, {json_path}")
    print(f"train with it: --optimizer.lr {result.suggestion:.3g} (or --optimizer.lr auto)")
    return 0
