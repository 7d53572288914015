"""The text task end to end through the CLI: train, predict, evaluate, report, cross-validation, word vectors,
and the n-gram explanation, on a generated corpus (chance 1/3) and, where ../shared is present, on TREC."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.runs import load_run
from cnnlab.tasks.text.explain import explain_sentence
from tests.tasks.text.corpus import CUES, write_class_files, write_lines

SHARED_TEXT = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "text"
FAST = ["--embedding-dim", "32", "--epochs", "6", "--monitor", "val_loss", "--quiet", "--seed", "0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("text")
    data = write_lines(tmp / "sentences.txt", 450)
    assert main(["text", "train", "--data", str(data), "--out", str(tmp / "run"), *FAST]) == 0
    return tmp / "run"


def test_training_clears_a_floor_and_records_the_run(trained: Path, capsys) -> None:
    results = json.loads((trained / "results.json").read_text())
    assert results["test"]["accuracy"] >= 0.9  # chance is 1/3
    meta = json.loads((trained / "run.json").read_text())
    assert meta["task"]["name"] == "text" and meta["classes"] == sorted(CUES)
    assert meta["text"]["tokenizer"] == {"rules": "kim", "lower": True}
    assert "goal" in meta["text"]["vocabulary"]["tokens"]
    assert meta["input_shape"] == [meta["text"]["max_length"]]


def test_predict_prints_label_and_probability(trained: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["text", "predict", str(trained), "the striker scored a goal", "a spicy pasta recipe"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("sport ") and lines[1].startswith("food ")
    assert float(lines[0].split()[1]) > 0.5
    assert main(["text", "predict", str(trained), "--json", "--top", "3", "my laptop battery"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer[0]["label"] == "tech" and len(answer[0]["top"]) == 3
    assert abs(sum(p["probability"] for p in answer[0]["top"]) - 1) < 1e-4


def test_predict_answers_as_the_model_does_on_the_test_split(trained: Path) -> None:
    """`cnnlab text predict` goes through the run's saved encoder: its probabilities are the model's own on
    the ids training used (one sentence alone, or in a batch)."""
    from cnnlab.evaluate.text import _own_split, predict_sentences

    run = load_run(trained)
    texts, _ = _own_split(run, "test")
    predicted = predict_sentences(trained, texts[:20], top_k=3)
    with torch.no_grad():
        direct = torch.softmax(run.model(run.preprocess.encode(texts[:20])), 1)
    for item, row in zip(predicted, direct):
        assert item["probability"] == pytest.approx(float(row.max()), abs=1e-5)
    alone = predict_sentences(trained, texts[:1])[0]
    assert alone["probability"] == pytest.approx(predicted[0]["probability"], abs=1e-5)


def test_evaluate_reproduces_the_training_test_score(trained: Path, capsys) -> None:
    results = json.loads((trained / "results.json").read_text())
    capsys.readouterr()
    assert main(["text", "evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"test accuracy: {results['test']['accuracy']:.4f}"
    report = json.loads((trained / "text_test.json").read_text())
    assert sum(map(sum, report["confusion_matrix"])) == results["test"]["samples"]


def test_explanation_decomposes_the_logit_exactly(trained: Path) -> None:
    """The evidence of every pooled window sums, with the bias, to the predicted class's logit."""
    run = load_run(trained)
    model, encoder = run.model.eval(), run.preprocess
    sentence = "it was a very good day and the referee stopped the match"
    explanation = explain_sentence(model, encoder, sentence, top=1000)
    ids = encoder.encode([sentence])
    with torch.no_grad():
        logit = model(ids)[0, explanation.label]
        pooled = model.forward_features(ids)[0]
        weights = model.get_classifier().weight[explanation.label].detach()
        bias = model.get_classifier().bias[explanation.label].detach()
    assert float((pooled * weights).sum() + bias) == pytest.approx(float(logit), abs=1e-4)
    assert run.classes[explanation.label] == "sport"
    best = explanation.ngrams[0]
    assert {"referee", "match"} & set(best.words)  # the cue word decided, not the filler
    assert best.words == explanation.tokens[best.start : best.start + best.width]


def test_report_shows_curves_confusion_and_ngrams(trained: Path) -> None:
    assert main(["report", str(trained)]) == 0
    html = (trained / "report.html").read_text()
    for needle in ("Learning curves", "rows: true class", "The n-grams that decided", "<mark"):
        assert needle in html
    assert "Not made" not in html


def test_cross_validation_reports_the_mean_over_folds(tmp_path, capsys) -> None:
    data = write_class_files(tmp_path / "data", 150)
    capsys.readouterr()
    code = main(["text", "train", "--data", str(data), "--cv", "3", "--out", str(tmp_path / "cv"), *FAST])
    assert code == 0
    out = capsys.readouterr().out.strip().splitlines()
    results = json.loads((tmp_path / "cv" / "results.json").read_text())
    per_fold = results["cv"]["accuracy"]["per_fold"]
    assert len(per_fold) == 3 and results["cv"]["folds"] == 3
    assert results["test"]["accuracy"] == pytest.approx(np.mean(per_fold))
    assert results["cv"]["accuracy"]["std"] == pytest.approx(np.std(per_fold, ddof=1))
    assert out[-1] == f"test accuracy: {np.mean(per_fold):.4f}" and np.mean(per_fold) > 0.85
    folds = [json.loads((tmp_path / "cv" / f"fold-0{k}" / "run.json").read_text())["data"] for k in (1, 2, 3)]
    assert [f["fold"] for f in folds] == [{"fold": k, "folds": 3} for k in (1, 2, 3)]
    assert all(f["sizes"]["test"] == 150 for f in folds)


def _glove_file(path: Path, dim: int = 8) -> Path:
    rng = np.random.default_rng(0)
    words = [w for cue in CUES.values() for w in cue] + ["the", "a", "of", "and"]
    path.write_text("".join(f"{w} {' '.join(f'{v:.5f}' for v in rng.normal(size=dim))}\n" for w in words))
    return path


@pytest.mark.parametrize("variant", ["static", "non-static", "multichannel"])
def test_vector_variants_start_from_the_file(tmp_path, variant: str) -> None:
    vectors = _glove_file(tmp_path / "vectors.txt")
    data = write_lines(tmp_path / "s.txt", 150)
    argv = ["text", "train", "--data", str(data), "--variant", variant, "--vectors", str(vectors)]
    assert main([*argv, "--epochs", "1", "--quiet", "--out", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["embedding_dim"] == 8 and meta["data"]["vectors"]["dim"] == 8
    run = load_run(tmp_path / "run")
    tables = run.model.embedding.tables
    index = run.preprocess.vocabulary.index("goal")
    expected = torch.tensor([float(v) for v in vectors.read_text().splitlines()[0].split()[1:]])
    static = tables[0].weight[index]
    if variant in ("static", "multichannel"):  # the frozen table still holds the file's vector after training
        torch.testing.assert_close(static, expected, atol=1e-5, rtol=0)
        assert not tables[0].weight.requires_grad
    else:
        assert not torch.allclose(static, expected, atol=1e-5)  # tuned away from the file
        assert (static - expected).abs().max() < 1.0  # but it started there


@pytest.mark.skipif(not (SHARED_TEXT / "trec").is_dir(), reason="needs ../shared/data/text")
def test_a_short_trec_run_clears_a_floor(tmp_path, capsys) -> None:
    argv = ["text", "train", "--data", str(SHARED_TEXT / "trec"), "--coarse-labels", "--encoding", "latin-1"]
    capsys.readouterr()
    assert main([*argv, "--epochs", "3", "--quiet", "--out", str(tmp_path / "trec")]) == 0
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1].split()[-1])
    assert accuracy >= 0.80  # six classes, the largest 22.6% of the test set; Kim's 25 epochs reach 91.2
