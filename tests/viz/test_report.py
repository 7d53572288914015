"""`cnnlab report`: one self-contained page with every section, the evaluate numbers, and a diagnosis or a note."""

from __future__ import annotations

import base64
import io
import re
import sys
import time
import types
from dataclasses import dataclass

import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import DataError
from cnnlab.viz import report as report_module
from cnnlab.viz import report_html as H

SECTIONS = ["overview", "diagnosis", "curves", "evaluation", "mistakes", "filters", "features", "gradcam", "config"]
IMG_SRC = re.compile(r'<img src="([^"]*)"')


@pytest.fixture(scope="module")
def report(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    started = time.perf_counter()
    assert main(["report", str(tiny_run), "--out", str(out)]) == 0
    return out, out.read_text(encoding="utf-8"), time.perf_counter() - started


def test_has_every_section_and_is_fast(report):
    _, html, seconds = report
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in html
        assert f'href="#{anchor}"' in html
    diagnosis = html.split('<section id="diagnosis">')[1].split("</section>")[0]
    assert "The diagnosis failed" not in diagnosis, f"cnnlab.diagnose raised on a real run: {diagnosis}"
    assert seconds < 30, f"report took {seconds:.1f} s"  # ~2 s here; a guard against pathological slowness


def test_is_self_contained(report):
    _, html, _ = report
    assert "http://" not in html and "https://" not in html
    assert not re.search(r'(src|href)="(?!data:|#)', html), "every reference is a data URI or an in-page anchor"
    assert "<script" not in html and '<link rel="stylesheet"' not in html


def test_every_image_is_an_embedded_png(report):
    _, html, _ = report
    sources = IMG_SRC.findall(html)
    # curves, confusion matrix, 12 mistakes, filters, 1 example + 2 feature stages, 6 Grad-CAM panels
    assert len(sources) == 1 + 1 + 12 + 1 + 3 + 6
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
            assert image.format == "PNG" and min(image.size) > 0


def test_metrics_are_those_of_cnnlab_evaluate(report, tiny_run):
    from cnnlab.evaluate.runs import evaluate_run

    _, html, _ = report
    result = evaluate_run(tiny_run)  # an Evaluation (its .report) since issue 14; a (report, paths) pair before
    evaluation = result.report if hasattr(result, "report") else result[0]
    assert f"accuracy <b>{evaluation.accuracy:.4f}</b>" in html
    assert f"macro F1 <b>{evaluation.macro_f1:.4f}</b>" in html
    for i, name in enumerate(evaluation.classes):
        recall = evaluation.per_class["recall"][i]
        assert (
            f'<td>{name}</td><td class="num">{evaluation.per_class["precision"][i]:.4f}</td>'
            f'<td class="num">{recall:.4f}</td>' in html
        )


@dataclass
class FakeFinding:
    id: str
    severity: str
    title: str
    evidence: dict
    prescription: dict


def test_diagnosis_findings_are_rendered_and_escaped(tiny_run, monkeypatch):
    finding = FakeFinding(
        "high_variance",
        "high",
        "<script>alert(1)</script> gap",
        {"train_val_gap": 0.31, "from_epoch": 4},
        {"dropout": 0.5, "augment": "rotate=10"},
    )
    fake = types.ModuleType("cnnlab.diagnose")
    fake.diagnose_run = lambda run_dir: types.SimpleNamespace(findings=[finding])
    monkeypatch.setitem(sys.modules, "cnnlab.diagnose", fake)
    html = report_module.diagnosis_section(tiny_run)
    assert '<div class="finding high">' in html and "<code>high_variance</code>" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; gap" in html and "<script>" not in html
    assert '<th>train_val_gap</th><td class="num">0.31</td>' in html
    assert "<th>augment</th><td>rotate=10</td>" in html


def test_cnnlab_diagnose_findings_are_rendered(tiny_run, monkeypatch):
    """The real Finding/Diagnosis types: verdict, summary and advice as sentences, values and changes as tables."""
    findings = pytest.importorskip("cnnlab.diagnose.findings")
    finding = findings.Finding(
        "high_variance",
        "warning",
        "validation loss rises while training loss falls",
        {"gap": 0.2, "from_epoch": 3},
        "The gap opened at epoch 3.",
        {"optimizer.weight_decay": 5e-05},
        "Add weight decay (--optimizer.weight_decay).",
    )
    diagnosis = findings.Diagnosis(str(tiny_run), [finding], "overfitting")
    monkeypatch.setitem(sys.modules, "cnnlab.diagnose", types.SimpleNamespace(diagnose_run=lambda run_dir: diagnosis))
    html = report_module.diagnosis_section(tiny_run)
    assert "<p>Verdict: <b>overfitting</b></p>" in html and '<div class="finding warning">' in html
    assert "<p>The gap opened at epoch 3.</p>" in html and "<p>Add weight decay (--optimizer.weight_decay).</p>" in html
    assert '<th>from_epoch</th><td class="num">3</td>' in html
    assert '<th>optimizer.weight_decay</th><td class="num">5e-05</td>' in html


def test_diagnosis_missing_or_failing_becomes_a_note(tiny_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "cnnlab.diagnose", None)  # import fails as when the package is absent
    with pytest.raises(report_module.SectionMissing, match="not available in this version"):
        report_module.diagnosis_section(tiny_run)

    def broken(run_dir):
        raise KeyError("val_loss")

    monkeypatch.setitem(sys.modules, "cnnlab.diagnose", types.SimpleNamespace(diagnose_run=broken))
    with pytest.raises(report_module.SectionMissing, match="the diagnosis failed: KeyError"):
        report_module.diagnosis_section(tiny_run)

    monkeypatch.setitem(sys.modules, "cnnlab.diagnose", types.SimpleNamespace(diagnose_run=lambda run_dir: []))
    assert "No findings" in report_module.diagnosis_section(tiny_run)


def test_unavailable_data_still_gives_a_report(tiny_run, tmp_path, monkeypatch):
    def no_data(run, data, split):
        raise DataError("data/gone.npz: no such file or folder")

    monkeypatch.setattr(report_module, "load_run_split", no_data)
    html = report_module.build_report(tiny_run, tmp_path / "r.html").read_text()
    assert "no split could be evaluated (test and val: data/gone.npz: no such file or folder)" in html
    assert len(IMG_SRC.findall(html)) == 2  # learning curves and filters need no data


def test_html_helpers_escape_everything():
    assert H.table(["<th>"], [["<b>x</b>", 3, 0.5]]) == (
        "<table><thead><tr><th>&lt;th&gt;</th></tr></thead><tbody><tr><td>&lt;b&gt;x&lt;/b&gt;</td>"
        '<td class="num">3</td><td class="num">0.5000</td></tr></tbody></table>'
    )
    assert (
        H.value(["a&b", {"k<": "v>"}])
        == "<ul><li>a&amp;b</li><li><table><tbody><tr><th>k&lt;</th><td>v&gt;</td></tr></tbody></table></li></ul>"
    )
    assert 'alt="&quot;x&quot;"' in H.image(b"png", '"x"')


def test_without_a_test_split_the_val_split_is_shown(tiny_run, tmp_path, monkeypatch):
    real = report_module.load_run_split

    def val_only(run, data, split):
        if split == "test":
            raise DataError("mnist_small.npz: has no 'test' split")
        return real(run, data, split)

    monkeypatch.setattr(report_module, "load_run_split", val_only)
    html = report_module.build_report(tiny_run, tmp_path / "r.html").read_text()
    assert "<h2>Evaluation (val split)</h2>" in html and "val accuracy" in html
