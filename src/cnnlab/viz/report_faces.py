"""The report page of a faces run: the ROC on unseen people, identification figures, and queries with their
best matches (what a user of `cnnlab faces identify` would see), beside the diagnosis and learning curves."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cnnlab.errors import CnnlabError
from cnnlab.runs import LoadedRun, read_results
from cnnlab.viz import report_html as H
from cnnlab.viz.report import (
    SectionMissing,
    _checkpoint_name,
    _model_name,
    _series,
    config_section,
    diagnosis_section,
    task_curves_section,
)

QUERIES_SHOWN, MATCHES_SHOWN = 8, 4


def faces_makers(run: LoadedRun, split: str | None, data: str | None) -> list[tuple[str, str, Callable[[], str]]]:
    """The sections of a faces run's page, on `split`'s people (default test) or on the people of `data`."""
    evaluated = split or "test"
    cache: dict[str, Any] = {}

    def scored():
        if "value" not in cache:
            from cnnlab.evaluate.faces import embed_people, load_face_run

            try:
                cache["value"] = embed_people(load_face_run(run.run_dir), data, evaluated)
            except CnnlabError as error:
                cache["value"] = SectionMissing(f"the {evaluated} people could not be evaluated: {error}")
        if isinstance(cache["value"], SectionMissing):
            raise cache["value"]
        return cache["value"]

    return [
        ("overview", "Overview", lambda: overview_section(run)),
        ("diagnosis", "Diagnosis", lambda: diagnosis_section(run.run_dir)),
        ("curves", "Learning curves", lambda: curves_section(run.run_dir)),
        ("evaluation", f"Verification and identification ({evaluated} people)", lambda: evaluation_section(scored())),
        ("matches", "Queries and their best matches", lambda: matches_section(scored())),
        ("config", "Configuration", lambda: config_section(run)),
    ]


def overview_section(run: LoadedRun) -> str:
    meta, results = run.meta, read_results(run.run_dir) or {}
    data = meta.get("data", {})
    people = data.get("people", {})
    test = results.get("test") or {}
    verification = test.get("verification") or {}
    first = ((test.get("identification") or {}).get("k1")) or {}
    calibration = results.get("calibration") or {}
    options = (meta.get("task") or {}).get("options", {})
    pairs: list[tuple[str, Any]] = [
        ("task", "faces"),
        ("model", _model_name(meta)),
        ("trainable parameters", meta.get("parameters")),
        ("input (C×H×W)", "×".join(map(str, run.input_shape))),
        ("loss", options.get("loss")),
        ("face detection", "Haar cascade" if options.get("detect") else "none (images are crops)"),
        ("people (train / val / test)", " / ".join(str(len(people.get(k, []))) for k in ("train", "val", "test"))),
        ("images", ", ".join(f"{k} {v:,}" for k, v in data.get("sizes", {}).items()) or None),
        ("epochs run", results.get("epochs_run")),
        ("best epoch", results.get("best_epoch")),
        ("weights shown", _checkpoint_name(run)),
        ("training time", H.seconds(results.get("train_seconds"))),
        ("same-person threshold (chosen on val people)", calibration.get("threshold")),
        ("test verification EER", verification.get("eer")),
        ("test verification AUC", verification.get("auc")),
        ("test top-1, one enrolled image per person", first.get("top1")),
    ]
    return H.key_values(pairs)


def curves_figure(history: list[dict[str, Any]]):
    from cnnlab.viz.plots import plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    _series(axes[0], history, [("train_loss", "train", "-o")], "training loss")
    _series(
        axes[1],
        history,
        [("val_auc", "val AUC", "-o"), ("val_tar", "val TAR@FAR=1%", "-s"), ("val_eer", "val EER", "-^")],
        "validation people (verification)",
    )
    axes[1].set_ylim(0, 1)
    _series(axes[2], history, [("lr", "lr", "-o")], "learning rate (epoch start)")
    fig.tight_layout()
    return fig


def curves_section(run_dir: Path) -> str:
    caption = (
        "training loss, and verification on the validation people (never trained on) per epoch: the best epoch "
        "is the one with the highest val AUC"
    )
    return task_curves_section(run_dir, curves_figure, caption)


def evaluation_section(scored) -> str:
    from cnnlab.tasks.faces.evaluation import format_face_report
    from cnnlab.viz.faces import roc_png

    report = scored.report
    caption = (
        f"verification ROC over every pair of the {report['people']} people's {report['images']} images "
        f"(AUC {report['verification']['auc']:.4f}, EER {report['verification']['eer']:.4f})"
    )
    return H.figure(roc_png(scored.evaluation.verification), caption, "plot") + H.preformatted(
        format_face_report(report)
    )


def matches_section(scored) -> str:
    """Each person's first image enrolled; a few other images as queries, with their best matches."""
    from cnnlab.viz.faces import matches_grid_png

    labels = scored.labels
    enrolled = [int((labels == person).nonzero()[0]) for person in range(len(scored.people))]
    others = [i for i in range(len(labels)) if i not in set(enrolled)]
    if len(enrolled) < 2 or not others:
        raise SectionMissing("needs at least two people, one with two images")
    step = max(1, len(others) // QUERIES_SHOWN)
    queries = others[::step][:QUERIES_SHOWN]
    gallery = scored.embeddings[enrolled]
    scores = scored.embeddings[queries] @ gallery.T
    top = scores.topk(min(MATCHES_SHOWN, len(enrolled)), dim=1)
    match_images, names, values = [], [], []
    for row in range(len(queries)):
        people = top.indices[row].tolist()
        match_images.append([scored.crops[enrolled[p]] for p in people])
        names.append([scored.people[p] for p in people])
        values.append(top.values[row].tolist())
    truth = [scored.people[int(labels[q])] for q in queries]
    png = matches_grid_png(torch.stack([scored.crops[q] for q in queries]), match_images, names, values, truth)
    caption = (
        "each person enrolled with one image; a query (left) and its best matches by cosine similarity, "
        "green when it is the same person"
    )
    return H.figure(png, caption, "plot")
