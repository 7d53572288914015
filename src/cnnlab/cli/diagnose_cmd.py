"""`cnnlab diagnose RUN [--json] [--write-config fixed.yaml] [--only IDS] [--data-fractions 0.1,0.25,0.5,1.0]`."""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

from cnnlab.diagnose import Diagnosis, Finding, diagnose_run, merge_changes, render_flags, write_fixed_config
from cnnlab.diagnose.findings import FINDING_IDS
from cnnlab.errors import ConfigError
from cnnlab.runs import check_output_file, check_output_folder, read_run_meta, writing

WIDTH = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    parser.add_argument("--write-config", metavar="PATH", help="write the run's config with the prescriptions applied")
    parser.add_argument("--out", help="run folder the written config trains into (default: RUN_fixed)")
    parser.add_argument("--only", metavar="IDS", help="apply only these findings' prescriptions, e.g. high_variance")
    parser.add_argument(
        "--data-fractions",
        metavar="F,...",
        help="also measure a learning curve with the run's config, e.g. 0.1,0.25,0.5,1.0",
    )
    parser.add_argument("--epochs", type=int, help="learning curve: epochs for the full data (default: the run's)")


def _only(text: str | None) -> list[str] | None:
    if not text:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [i for i in ids if i not in FINDING_IDS]
    if unknown:
        raise ConfigError(f"--only: unknown finding id {unknown[0]!r}; known: {', '.join(FINDING_IDS)}")
    return ids


def _measure_curve(args: argparse.Namespace) -> dict | None:
    if not args.data_fractions:
        return None
    from cnnlab.config import build_dataclass
    from cnnlab.diagnose.learning_curve import learning_curve, parse_fractions
    from cnnlab.diagnose.run import read_run_config
    from cnnlab.train.config import TrainConfig

    config = build_dataclass(TrainConfig, read_run_config(args.run))  # checked: names config.yaml if damaged
    out = check_output_folder(Path(args.run) / "learning_curve")
    log = None if args.json else print
    curve = learning_curve(config, parse_fractions(args.data_fractions), out, args.epochs, log=log)
    if not args.json:
        print(f"learning curve: {curve.message} (written to {out})\n")
    return curve.to_dict()


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False)


def format_finding(finding: Finding) -> str:
    lines = [f"[{finding.severity}] {finding.id}: {finding.title}", _wrap(finding.summary, "    ")]
    if finding.advice:
        lines.append(_wrap("fix: " + finding.advice, "    "))
    return "\n".join(lines)


def format_diagnosis(diagnosis: Diagnosis) -> str:
    """The plain-text report of `cnnlab diagnose`: a verdict line, the run's key numbers, then each finding."""
    facts = diagnosis.facts
    counts = {s: sum(f.severity == s for f in diagnosis.findings) for s in ("critical", "warning", "info")}
    tally = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    params = f"{facts['parameters']:,}" if facts.get("parameters") else "?"
    header = [
        f"{diagnosis.run_dir}: {diagnosis.verdict.upper()} ({tally})",
        f"  {facts.get('model')} ({params} parameters), {facts.get('train_samples') or 0:,} training "
        f"{'sentences' if facts.get('task') == 'text' else 'images'}, "
        f"{facts.get('num_classes')} {'training people' if facts.get('task') == 'faces' else 'classes'}, "
        f"{facts.get('epochs_run')} of {facts.get('epochs_planned')} epochs, "
        f"best {facts.get('monitor')} at epoch {facts.get('best_epoch')}",
    ]
    body = [format_finding(f) for f in diagnosis.findings]
    changes = merge_changes(diagnosis.findings)
    if changes:
        flags = render_flags(changes, diagnosis.config)
        body.append(
            _wrap(
                f"all together: cnnlab train --config {Path(diagnosis.run_dir) / 'config.yaml'} "
                f"--out {diagnosis.run_dir.rstrip('/')}_fixed {flags}",
                "",
            )
        )
        body.append(f"or: cnnlab diagnose {diagnosis.run_dir} --write-config fixed.yaml")
    return "\n".join(header) + "\n\n" + "\n\n".join(body)


def run(args: argparse.Namespace) -> int:
    only = _only(args.only)
    if args.write_config:
        check_output_file(args.write_config)  # refused now, not after a learning curve
    read_run_meta(args.run)  # a missing or damaged run folder is named before any training
    curve = _measure_curve(args)
    diagnosis = diagnose_run(args.run, learning_curve=curve)
    if args.json:
        print(json.dumps([f.to_dict() for f in diagnosis.findings], indent=2))
    else:
        print(format_diagnosis(diagnosis))
    if args.write_config:
        with writing(args.write_config):
            config = write_fixed_config(diagnosis, args.write_config, args.out, only)
        # With --json, stdout holds only the JSON list.
        print(
            f"written: {args.write_config} (trains into {config.out}); run: cnnlab train --config {args.write_config}",
            file=sys.stderr if args.json else sys.stdout,
        )
    return 0
