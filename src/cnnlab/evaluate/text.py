"""Text runs evaluated and used: the run's own split or a user's file scored, sentences predicted.

Every sentence goes through the run's saved encoder (tokenizer, vocabulary, padded length from run.json), the
same code training used, so `cnnlab text predict` answers as the trained model does on its test split.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from cnnlab.errors import DataError, RunError
from cnnlab.io import atomic_write_json
from cnnlab.runs import LoadedRun, load_run, read_run_config


def load_text_run(run_dir: str | Path) -> LoadedRun:
    """A text run for inference; a cross-validation folder or another task's run is a one-line error."""
    run_dir = Path(run_dir)
    if (run_dir / "cv.json").is_file():
        raise RunError(f"{run_dir}: a cross-validation folder; use one fold's run, e.g. {run_dir / 'fold-01'}")
    run = load_run(run_dir)
    if run.task is None or run.task.name != "text":
        name = run.task.name if run.task is not None else "classification"
        raise RunError(f"{run_dir}: a {name} run, not a text run (cnnlab text train writes those)")
    return run


def read_sentence_file(path: str | Path) -> list[str]:
    """One sentence per line of a UTF-8 file (blank lines skipped); errors name the file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error.strerror or error})") from error
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}: not UTF-8 text (byte 0x{raw[error.start]:02x})") from None
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def predict_sentences(run_dir: str | Path, sentences: list[str], top_k: int = 1) -> list[dict[str, Any]]:
    run = load_text_run(run_dir)
    indices, probabilities = run.task.predict(run.model, run.preprocess, sentences, top_k)
    return [
        {
            "sentence": sentence,
            "label": run.classes[index[0]],
            "probability": round(float(prob[0]), 6),
            "top": [{"label": run.classes[i], "probability": round(float(p), 6)} for i, p in zip(index, prob)],
        }
        for sentence, index, prob in zip(sentences, indices, probabilities)
    ]


def _own_split(run: LoadedRun, split: str) -> tuple[list[str], list[str]]:
    """The run's own val or test sentences, split again exactly as training split them."""
    from cnnlab.tasks.text.data import load_text_data

    values = read_run_config(run.run_dir)
    config = SimpleNamespace(
        data=values["data"],
        test_data=values.get("test_data"),
        seed=int(values.get("seed", 0)),
        val_split=float(values.get("val_split", 0.1)),
    )
    data = load_text_data(config, run.task.options)
    chosen = getattr(data, split)
    if chosen is None:
        raise RunError(f"{run.run_dir}: the run has no {split} split")
    return chosen.texts, [data.classes[i] for i in chosen.labels.tolist()]


def _file_split(run: LoadedRun, path: str) -> tuple[list[str], list[str]]:
    from cnnlab.tasks.text.readers import read_text_data

    options = run.task.options
    corpus = read_text_data(
        path,
        encoding=options.encoding,
        text_column=options.text_column,
        label_column=options.label_column,
        coarse_labels=options.coarse_labels,
    )
    split = corpus.splits.get("test") or corpus.splits.get("all") or next(iter(corpus.splits.values()))
    unknown = sorted(set(split.labels) - set(run.classes))
    if unknown:
        raise DataError(f"{path}: label {unknown[0]!r} is not one of the run's classes ({', '.join(run.classes)})")
    return list(split.texts), list(split.labels)


@torch.inference_mode()
def score_sentences(run: LoadedRun, texts: list[str], labels: list[str], batch: int = 512) -> dict[str, Any]:
    from cnnlab.tasks.classification.metrics import classification_report

    run.model.eval()
    ids = run.preprocess.encode(texts)
    logits = torch.cat([run.model(ids[i : i + batch]).float() for i in range(0, len(ids), batch)])
    index = {name: i for i, name in enumerate(run.classes)}
    targets = torch.tensor([index[label] for label in labels], dtype=torch.long)
    report = classification_report(logits, targets, list(run.classes)).to_dict()
    report.pop("top5_accuracy", None)
    return {**report, "samples": len(texts)}


def evaluate_text_run(run_dir: str | Path, data: str | None = None, split: str = "test") -> tuple[dict, Path]:
    """Score the run on its own split (or on `data`) and write `text_<split>.json` into the run folder."""
    run = load_text_run(run_dir)
    texts, labels = _file_split(run, data) if data else _own_split(run, split)
    name = "file" if data else split
    report = {"split": name, **score_sentences(run, texts, labels)}
    path = atomic_write_json(Path(run.run_dir) / f"text_{name}.json", report)
    return report, path


def format_text_report(report: dict[str, Any]) -> list[str]:
    """Per-class precision/recall/F1 and the confusion matrix as aligned text lines."""
    classes = report["classes"]
    width = max(8, *(len(c) for c in classes))
    lines = [f"{'class':<{width}}  precision  recall  f1      support"]
    for name in classes:
        scores = report["per_class"][name]
        lines.append(
            f"{name:<{width}}  {scores['precision']:.4f}     {scores['recall']:.4f}  {scores['f1']:.4f}  "
            f"{int(scores['support'])}"
        )
    lines.append(f"macro-F1: {report['macro_f1']:.4f}  ({report['samples']} sentences)")
    lines.append("confusion matrix (rows: true, columns: predicted):")
    lines.append(" " * (width + 2) + " ".join(f"{c[:7]:>7}" for c in classes))
    for name, row in zip(classes, report["confusion_matrix"]):
        lines.append(f"{name:<{width}}  " + " ".join(f"{n:>7}" for n in row))
    return lines
