"""`cnnlab train --config f.yaml [--epochs N] [--optimizer.lr 0.05] ...`, `--resume RUN` and `--nproc N`."""

from __future__ import annotations

import argparse
import json
import os
import sys

from cnnlab.cli import train_flags
from cnnlab.config import add_dataclass_arguments, deep_merge, load_config, overrides_from_args
from cnnlab.errors import ConfigError
from cnnlab.examples import find_config
from cnnlab.train import FitResult, TrainConfig, fit, resume_config
from cnnlab.train.callbacks.progress import ResumeHint


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with TrainConfig fields; flags override it")
    sections = add_dataclass_arguments(parser, TrainConfig, sections=train_flags.SECTIONS, help_texts=train_flags.HELP)
    run_section, device_section = sections[train_flags.RUN], sections[train_flags.DEVICE]
    run_section.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last.pt")
    run_section.add_argument("--overwrite", action="store_true", help="reuse --out even if it holds a run")
    device_section.add_argument(
        "--nproc",
        metavar="N",
        help="train on N processes of this machine (torchrun + DistributedDataParallel; same global batch)",
    )


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
    return run_training(args)


def run_training(args: argparse.Namespace, extra: dict | None = None) -> int:
    """Train as the flags say; `extra` are overrides a command adds (`cnnlab detect train` sets the task)."""
    nproc = _process_count(args.nproc)
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        from cnnlab.train.distributed import launch

        try:
            return launch(nproc, _without_nproc(getattr(args, "argv", [])))
        except KeyboardInterrupt:  # Ctrl-C reached the workers too: rank 0 alone prints how to resume
            return 130
    overrides = deep_merge(_parsed_mappings(overrides_from_args(args, TrainConfig), extra or {}), extra or {})
    if args.resume:
        config = resume_config(args.resume, overrides)
    else:
        config = load_config(TrainConfig, find_config(args.config), overrides)
    hint = ResumeHint()
    try:
        result = fit(config, resume=args.resume, overwrite=args.overwrite, callbacks=[hint])
    except KeyboardInterrupt:
        if _is_main_process() and hint.message() is None:
            raise  # before training started: the CLI's own `cnnlab: interrupted`
        if _is_main_process():  # one line, from rank 0 alone: every rank got the signal
            print(f"cnnlab: {hint.message()}", file=sys.stderr)
        return 130
    if not _is_main_process():
        return 0  # rank 0 alone reports
    _print_results(result)
    return 0


MERGED_MAPPINGS = ("task_options", "model_options")


def _parsed_mappings(overrides: dict, extra: dict) -> dict:
    """`--task-options a=1` and `--model-options` add to (or change) the config's options, and to those a command
    sets itself (`cnnlab faces train --image-size 64`), instead of replacing them whole: parsed here, they merge."""
    from cnnlab.config import parse_mapping

    return {
        key: parse_mapping(value)
        if isinstance(value, str) and (key in MERGED_MAPPINGS or isinstance(extra.get(key), dict))
        else value
        for key, value in overrides.items()
    }


def _is_main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _print_results(result: FitResult) -> None:
    split = result.results["evaluated_split"]
    scores = result.results[split]
    print(f"run folder: {result.run_dir}")
    print(
        f"best epoch: {result.results['best_epoch']} of {result.results['epochs_run']}  "
        f"train time: {result.results['train_seconds']:.1f}s"
    )
    if "verification" in scores:  # faces: the report, then the EER last
        from cnnlab.tasks.faces.evaluation import format_face_report

        print(format_face_report(scores))
        print(f"{split} verification EER: {scores['verification']['eer']:.4f}")
        return
    if "map50" in scores:  # detection: the headline last, as `cnnlab train` prints accuracy last
        print(f"{split} mAP@0.5:0.95: {scores['map50_95']:.4f}")
        print(f"{split} mAP@0.5: {scores['map50']:.4f}")
        return
    if "threshold_rule" in scores or "per_label" in scores:  # binary and multi-label: AUC, operating point
        from cnnlab.tasks.classification.clinical import format_clinical

        classes = json.loads((result.run_dir / "run.json").read_text()).get("classes", [])
        print("\n".join(format_clinical(scores, split, classes)))
        return
    headline = "accuracy" if "accuracy" in scores else next(k for k, v in scores.items() if isinstance(v, float))
    print(f"{split} {headline}: {scores[headline]:.4f}")
