"""The report page of a text run: learning curves, the confusion matrix, and for a few test sentences the
n-grams that Kim's max-over-time pooling picked and that decided the answer (`tasks.text.explain`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnlab.errors import CnnlabError
from cnnlab.runs import LoadedRun, read_results
from cnnlab.viz import report_html as H
from cnnlab.viz.report import (
    SectionMissing,
    _checkpoint_name,
    _model_name,
    config_section,
    curves_section,
    diagnosis_section,
)

SENTENCES_SHOWN = 8


def text_makers(run: LoadedRun, split: str | None, data: str | None) -> list[tuple[str, str, Callable[[], str]]]:
    evaluated = split or "test"
    cache: dict[str, Any] = {}

    def scored():
        if "value" not in cache:
            cache["value"] = _score(run, evaluated, data)
        if isinstance(cache["value"], SectionMissing):
            raise cache["value"]
        return cache["value"]

    return [
        ("overview", "Overview", lambda: overview_section(run)),
        ("diagnosis", "Diagnosis", lambda: diagnosis_section(run.run_dir)),
        ("curves", "Learning curves", lambda: curves_section(run.run_dir)),
        ("evaluation", f"Evaluation ({evaluated} split)", lambda: evaluation_section(scored())),
        ("ngrams", "The n-grams that decided", lambda: ngrams_section(run, scored())),
        ("config", "Configuration", lambda: config_section(run)),
    ]


def _score(run: LoadedRun, split: str, data: str | None):
    from cnnlab.evaluate.text import _file_split, _own_split, score_sentences

    try:
        texts, labels = _file_split(run, data) if data else _own_split(run, split)
        return texts, labels, score_sentences(run, texts, labels)
    except CnnlabError as error:
        return SectionMissing(f"the {split} sentences could not be evaluated: {error}")


def overview_section(run: LoadedRun) -> str:
    meta, results = run.meta, read_results(run.run_dir) or {}
    data = meta.get("data", {})
    test = results.get("test") or {}
    vectors = data.get("vectors") or {}
    options = (meta.get("model") or {}).get("options", {})
    pairs: list[tuple[str, Any]] = [
        ("task", "text"),
        ("model", _model_name(meta)),
        ("variant", options.get("variant")),
        ("trainable parameters", meta.get("parameters")),
        ("classes", ", ".join(run.classes)),
        ("sentences", ", ".join(f"{k} {v:,}" for k, v in data.get("sizes", {}).items()) or None),
        ("vocabulary", data.get("vocabulary_size")),
        ("padded length (tokens)", data.get("max_length")),
        (
            "word vectors",
            f"{vectors['source']} ({vectors['dim']}-d, {vectors['coverage']:.1%} of the words)" if vectors else None,
        ),
        ("cross-validation fold", "{fold} of {folds}".format(**data["fold"]) if data.get("fold") else None),
        ("epochs run", results.get("epochs_run")),
        ("best epoch", results.get("best_epoch")),
        ("weights shown", _checkpoint_name(run)),
        ("training time", H.seconds(results.get("train_seconds"))),
        ("test accuracy", test.get("accuracy")),
        ("test macro F1", test.get("macro_f1")),
    ]
    return H.key_values(pairs)


def evaluation_section(scored) -> str:
    from cnnlab.viz.plots import confusion_matrix_figure, figure_png

    _, _, report = scored
    numbers = [("accuracy", report["accuracy"]), ("loss", report["loss"]), ("macro F1", report["macro_f1"])]
    summary = "".join(f"<span>{H.escape(k)} <b>{v:.4f}</b></span>" for k, v in numbers)
    rows = [
        (
            name,
            *(report["per_class"][name][k] for k in ("precision", "recall", "f1")),
            report["per_class"][name]["support"],
        )
        for name in report["classes"]
    ]
    matrix = H.figure(
        figure_png(confusion_matrix_figure(report["confusion_matrix"], report["classes"])),
        f"rows: true class, columns: predicted; {report['samples']:,} sentences",
        "plot",
    )
    table = H.table(["class", "precision", "recall", "F1", "support"], rows)
    return f'<p class="metrics">{summary}</p><div class="columns">{matrix}{table}</div>'


def _highlighted(tokens: list[str], ngrams: list[Any]) -> str:
    """The sentence with its deciding n-grams marked (the strongest darkest)."""
    strength = [0.0] * len(tokens)
    top = max((g.score for g in ngrams), default=1.0) or 1.0
    for gram in ngrams:
        for i in range(gram.start, gram.start + gram.width):
            strength[i] = max(strength[i], gram.score / top)
    words = []
    for token, level in zip(tokens, strength):
        if level > 0:
            words.append(
                f'<mark style="background: rgba(255, 170, 0, {0.25 + 0.6 * level:.2f})">{H.escape(token)}</mark>'
            )
        else:
            words.append(H.escape(token))
    return " ".join(words)


def ngrams_section(run: LoadedRun, scored) -> str:
    from cnnlab.tasks.text.explain import can_explain, explain_sentence

    if not can_explain(run.model):
        raise SectionMissing("the model is no Kim CNN (a layer list): its pooled windows cannot be traced to n-grams")
    texts, labels, _ = scored
    step = max(1, len(texts) // SENTENCES_SHOWN)
    rows = []
    for index in range(0, len(texts), step)[:SENTENCES_SHOWN]:
        explanation = explain_sentence(run.model, run.preprocess, texts[index], top=3)
        predicted = run.classes[explanation.label]
        verdict = "✓" if predicted == labels[index] else f"✗ (true: {labels[index]})"
        grams = "; ".join(f"“{' '.join(g.words)}” {g.score:+.2f}" for g in explanation.ngrams)
        rows.append(
            f"<tr><td>{H.escape(f'{predicted} {explanation.probability:.2f} {verdict}')}</td>"
            f"<td>{_highlighted(explanation.tokens, explanation.ngrams)}</td><td>{H.escape(grams)}</td></tr>"
        )
    head = "".join(f"<th>{H.escape(h)}</th>" for h in ("prediction", "sentence (deciding n-grams marked)", "evidence"))
    caption = (
        "each filter's max-pooled window times its weight for the predicted class, summed per window: the n-grams "
        "with the most evidence for the answer, marked in the sentence"
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>" + H.paragraph(caption)
