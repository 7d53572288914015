"""`cnnlab train --config f.yaml [--epochs N] [--optimizer.lr 0.05] ...` and `cnnlab train --resume RUN`."""

from __future__ import annotations

import argparse

from cnnlab.config import add_dataclass_arguments, load_config, overrides_from_args
from cnnlab.train import TrainConfig, fit, resume_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last.pt")
    parser.add_argument("--overwrite", action="store_true", help="reuse --out even if it holds a run")
    add_dataclass_arguments(parser, TrainConfig)


def run(args: argparse.Namespace) -> int:
    overrides = overrides_from_args(args, TrainConfig)
    if args.resume:
        config = resume_config(args.resume, overrides)
    else:
        config = load_config(TrainConfig, args.config, overrides)
    result = fit(config, resume=args.resume, overwrite=args.overwrite)
    split = result.results["evaluated_split"]
    print(f"run folder: {result.run_dir}")
    print(
        f"best epoch: {result.results['best_epoch']} of {result.results['epochs_run']}  "
        f"train time: {result.results['train_seconds']:.1f}s"
    )
    print(f"{split} accuracy: {result.results[split]['accuracy']:.4f}")
    return 0
