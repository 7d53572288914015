"""`cnnlab train --config f.yaml [--epochs N] [--optimizer.lr 0.05] ...`, `--resume RUN` and `--nproc N`."""

from __future__ import annotations

import argparse
import os

from cnnlab.config import add_dataclass_arguments, load_config, overrides_from_args
from cnnlab.errors import ConfigError
from cnnlab.train import TrainConfig, fit, resume_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last.pt")
    parser.add_argument("--overwrite", action="store_true", help="reuse --out even if it holds a run")
    parser.add_argument(
        "--nproc",
        metavar="N",
        help="train on N processes of this machine (torchrun + DistributedDataParallel; same global batch)",
    )
    add_dataclass_arguments(parser, TrainConfig)


def _without_nproc(argv: list[str]) -> list[str]:
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            kept.append(item)
    return kept


def _process_count(text: str | None) -> int:
    """--nproc read as text and checked here, so a wrong value is a one-line error naming the range."""
    if text is None:
        return 1
    if not str(text).strip().isdigit() or int(text) < 1:
        raise ConfigError(f"--nproc must be a whole number >= 1, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    nproc = _process_count(args.nproc)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from cnnlab.train.distributed import launch

        return launch(nproc, _without_nproc(getattr(args, "argv", [])))
    overrides = overrides_from_args(args, TrainConfig)
    if args.resume:
        config = resume_config(args.resume, overrides)
    else:
        config = load_config(TrainConfig, args.config, overrides)
    result = fit(config, resume=args.resume, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") != "0":
        return 0  # rank 0 alone reports
    split = result.results["evaluated_split"]
    scores = result.results[split]
    print(f"run folder: {result.run_dir}")
    print(
        f"best epoch: {result.results['best_epoch']} of {result.results['epochs_run']}  "
        f"train time: {result.results['train_seconds']:.1f}s"
    )
    headline = "accuracy" if "accuracy" in scores else next(k for k, v in scores.items() if isinstance(v, float))
    print(f"{split} {headline}: {scores[headline]:.4f}")
    return 0
