"""`cnnlab evaluate RUN [--data PATH] [--split test]`: metrics, per-class table, confusion matrix PNG."""

from __future__ import annotations

import argparse
import json

from cnnlab.evaluate.runs import evaluate_run, parse_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder written by `cnnlab train`")
    parser.add_argument(
        "--data", metavar="PATH", help="evaluate on this data instead of the run's own (e.g. where its data moved to)"
    )
    parser.add_argument("--data-format", help="force the data format (idx, cifar, npz, folder, csv)")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--metrics",
        metavar="LIST",
        help="also auc,sensitivity,specificity for a multi-class run (binary and multi-label runs always get them)",
    )
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def run(args: argparse.Namespace) -> int:
    evaluation = evaluate_run(
        args.run, args.data, args.split, args.batch_size, args.data_format, parse_metrics(args.metrics)
    )
    report, paths, figures = evaluation.report, evaluation.paths, evaluation.clinical
    if args.json:
        print(
            json.dumps({**(report.to_dict() if report else {}), **({"clinical": figures} if figures else {})}, indent=2)
        )
        return 0
    if report is None:  # multi-label: per-label AUC and operating points
        from cnnlab.tasks.classification.clinical import format_clinical

        print(f"written: {', '.join(str(p) for p in paths)}")
        print("\n".join(format_clinical(figures, args.split, evaluation.classes)))
        return 0
    width = max(len(c) for c in report.classes + ["class"])
    print(f"{'class':<{width}}  precision  recall     f1  support")
    for i, name in enumerate(report.classes):
        p, r, f = (report.per_class[k][i] for k in ("precision", "recall", "f1"))
        print(f"{name:<{width}}  {p:9.4f}  {r:6.4f}  {f:6.4f}  {report.per_class['support'][i]:7d}")
    if figures is not None and evaluation.label_mode == "multiclass":
        print(f"{'class':<{width}}  AUC (one-vs-rest)  sensitivity  specificity")
        for name, row in figures["per_class"].items():
            auc, sensitivity, specificity = (_num(row[key]) for key in ("auc", "sensitivity", "specificity"))
            print(f"{name:<{width}}  {auc:>17}  {sensitivity:>11}  {specificity:>11}")
        print(f"{args.split} macro AUC: {_num(figures['auc'])}  ECE: {_num(figures['ece'])}")
    print(f"written: {', '.join(str(p) for p in paths)}")
    if figures is not None and evaluation.label_mode == "binary":
        from cnnlab.tasks.classification.clinical import format_clinical

        print(f"{args.split} loss: {report.loss:.4f}  macro F1: {report.macro_f1:.4f}")
        print("\n".join(format_clinical(figures, args.split, evaluation.classes)))
        return 0
    top5 = f"  top-5 accuracy: {report.top5_accuracy:.4f}" if report.top5_accuracy is not None else ""
    print(f"{args.split} loss: {report.loss:.4f}  macro F1: {report.macro_f1:.4f}{top5}")
    print(f"{args.split} accuracy: {report.accuracy:.4f}")
    return 0


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
