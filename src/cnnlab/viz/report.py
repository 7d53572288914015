"""`cnnlab report RUN`: one self-contained HTML page with everything worth seeing about a trained run.

Config, learning curves, test metrics with the confusion matrix, the most confident mistakes, first-layer filters,
feature maps, Grad-CAM and the diagnosis. Metrics come from `cnnlab.evaluate` (the numbers `cnnlab evaluate` prints);
a section that cannot be made (no test split, data moved, diagnosis not installed) says why in its place, and
`write_report` lists it, so that `cnnlab report` says so on the terminal too; a damaged file of the run folder
(run.json, config.yaml, results.json, metrics.jsonl) is an error naming it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import cnnlab
from cnnlab.config import read_yaml
from cnnlab.device import resolve_device
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.metrics import ClassificationReport, classification_report, collect_logits
from cnnlab.evaluate.runs import load_run_split, run_config
from cnnlab.io import atomic_write_text
from cnnlab.runs import LoadedRun, check_output_file, load_run, read_metrics, read_results, writing
from cnnlab.viz import report_html as H
from cnnlab.viz.features import feature_maps, stage_grid
from cnnlab.viz.filters import filter_grid, first_conv_kernel
from cnnlab.viz.gradcam import grad_cam, gradcam_panel
from cnnlab.viz.images import display_image, enlarge, png_bytes
from cnnlab.viz.plots import confusion_matrix_figure, figure_png, learning_curves_figure


class SectionMissing(Exception):
    """A section that cannot be made; its message says why (shown in the section's place and on the terminal)."""


@dataclass
class WrittenReport:
    """The page written, and the sections it lacks: (title, why) each, in page order."""

    path: Path
    missing: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class SplitPredictions:
    """A split's metrics plus what the picture sections need: images on demand, labels, probabilities."""

    split: str
    imageset: Any
    report: ClassificationReport
    labels: torch.Tensor
    probabilities: torch.Tensor

    @property
    def predicted(self) -> torch.Tensor:
        return self.probabilities.argmax(1)

    @property
    def confidence(self) -> torch.Tensor:
        return self.probabilities.max(1).values


def evaluate_split(
    run: LoadedRun, split: str = "test", batch_size: int = 512, data: str | None = None
) -> SplitPredictions:
    """The run's own `split` (or `data`'s) re-read and scored with `cnnlab.evaluate` (the same numbers
    `cnnlab evaluate` prints)."""
    from cnnlab.data import make_batches

    imageset = load_run_split(run, data, split)
    device = next(run.model.parameters()).device
    logits, labels = collect_logits(
        run.model, make_batches(imageset, batch_size, shuffle=False), run.preprocess, device
    )
    report = classification_report(logits, labels, run.classes)
    return SplitPredictions(split, imageset, report, labels, torch.softmax(logits, dim=1))


def most_confident_mistakes(predictions: SplitPredictions, count: int) -> list[int]:
    """Indices of wrong predictions, most confident first: the errors the model is surest about."""
    wrong = (predictions.predicted != predictions.labels).nonzero().flatten()
    order = predictions.confidence[wrong].argsort(descending=True)
    return wrong[order][:count].tolist()


def build_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    split: str | None = None,
    mistakes: int = 12,
    explained: int = 6,
    channels: int = 16,
    data: str | None = None,
) -> Path:
    """Write the report (default `<run>/report.html`) and return its path (`write_report` also says which sections
    could not be made).

    Args:
        run_dir: a folder written by `cnnlab train`.
        out: the HTML file to write.
        split: the data split evaluated and drawn from ("test", "val" or "train"); default: test, else val
            (as `cnnlab train` reports).
        mistakes: how many of the most confident mistakes to show.
        explained: how many images get a Grad-CAM (half mistakes, half correct).
        channels: feature maps shown per stage.
        data: evaluate this data instead of the run's own (e.g. where the run's data has moved to).

    Raises:
        RunError: `run_dir` is not a run folder, one of its files is damaged, or `out` cannot be written.
    """
    return write_report(run_dir, out, split, mistakes, explained, channels, data).path


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    split: str | None = None,
    mistakes: int = 12,
    explained: int = 6,
    channels: int = 16,
    data: str | None = None,
) -> WrittenReport:
    """`build_report`, returning the sections that could not be made with the path."""
    started = time.perf_counter()
    run = load_run(run_dir, device=resolve_device("auto"))
    path = check_output_file(Path(out) if out else run.run_dir / "report.html")
    check_run_files(run)
    if run.task is not None and run.task.name == "detection":
        makers = detection_makers(run, split, data, examples=mistakes)
        return _write_page(run, path, makers, started)
    if run.task is not None and run.task.name == "faces":
        from cnnlab.viz.report_faces import faces_makers

        return _write_page(run, path, faces_makers(run, split, data), started)
    if run.task is not None and run.task.name == "text":
        from cnnlab.viz.report_text import text_makers

        return _write_page(run, path, text_makers(run, split, data), started)
    if label_mode(run) in ("binary", "multilabel"):
        from cnnlab.viz.report_medical import medical_makers

        return _write_page(run, path, medical_makers(run, split, data, mistakes, explained, channels), started)
    predictions, data_problem = _evaluate_first_available(run, [split] if split else ["test", "val"], data)
    evaluated = predictions.split if predictions else split or "test"
    makers: list[tuple[str, str, Callable[[], str]]] = [
        ("overview", "Overview", lambda: overview_section(run, predictions)),
        ("diagnosis", "Diagnosis", lambda: diagnosis_section(run.run_dir)),
        ("curves", "Learning curves", lambda: curves_section(run.run_dir)),
        ("evaluation", f"Evaluation ({evaluated} split)", lambda: evaluation_section(predictions, data_problem)),
        ("mistakes", "Most confident mistakes", lambda: mistakes_section(run, predictions, mistakes)),
        ("filters", "First-layer filters", lambda: filters_section(run)),
        ("features", "Feature maps", lambda: features_section(run, predictions, channels)),
        ("gradcam", "Grad-CAM", lambda: gradcam_section(run, predictions, explained)),
        ("config", "Configuration", lambda: config_section(run)),
    ]
    return _write_page(run, path, makers, started)


def label_mode(run: LoadedRun) -> str:
    """run.json's "label_mode" ("multiclass", "binary" or "multilabel"); runs from before it existed are binary
    when they have two classes (class index 1 is the positive one), multi-class otherwise."""
    mode = run.meta.get("label_mode")
    if mode in ("multiclass", "binary", "multilabel"):
        return mode
    return "binary" if len(run.classes) == 2 else "multiclass"


def input_shape_label(shape: tuple[int, ...] | list[int]) -> tuple[str, str]:
    """("input (C×H×W)", "1×28×28"), or C×D×H×W for a volume."""
    axes = "C×D×H×W" if len(shape) == 4 else "C×H×W"
    return f"input ({axes})", "×".join(map(str, shape))


def _write_page(
    run: LoadedRun, path: Path, makers: list[tuple[str, str, Callable[[], str]]], started: float
) -> WrittenReport:
    sections, missing = _make_sections(makers)
    seconds = time.perf_counter() - started
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"{run.run_dir} · generated {stamp} in {seconds:.1f} s by cnnlab {cnnlab.__version__}"
    html = H.page(f"cnnlab report: {run.run_dir.name}", subtitle, sections, [(a, t) for a, t, _ in missing])
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, html)
    return WrittenReport(path, [(title, why) for _, title, why in missing])


Section = tuple[str, str, str]  # (anchor, title, body HTML) or, for one not made, (anchor, title, why)


def _make_sections(makers: list[tuple[str, str, Callable[[], str]]]) -> tuple[list[Section], list[Section]]:
    """Every section's HTML, with a note in place of each that cannot be made; and those, with why."""
    sections, missing = [], []
    for anchor, title, make in makers:
        try:
            sections.append((anchor, title, make()))
        except SectionMissing as why:
            sections.append((anchor, title, H.missing(str(why))))
            missing.append((anchor, title, str(why)))
    return sections, missing


def check_run_files(run: LoadedRun) -> None:
    """Read every file the sections use, so that a damaged one stops the report with its name and fault
    instead of becoming a quiet note (a missing one is still a note)."""
    if (run.run_dir / "config.yaml").is_file():
        run_config(run)
    read_results(run.run_dir)
    read_metrics(run.run_dir)


def _evaluate_first_available(
    run: LoadedRun, splits: list[str], data: str | None = None, evaluate: Callable[..., Any] | None = None
) -> tuple[Any, str]:
    """The first split that `evaluate` (default `evaluate_split`) can score, or None and why none could (the report
    then says so); splits that failed for one reason (the data has moved) share it."""
    evaluate = evaluate or evaluate_split
    problems: dict[str, list[str]] = {}
    for split in splits:
        try:
            return evaluate(run, split, data=data), ""
        except CnnlabError as error:
            problems.setdefault(str(error), []).append(split)
    reasons = "; ".join(f"{' and '.join(names)}: {why}" for why, names in problems.items())
    return None, f"no split could be evaluated ({reasons})"


NO_EVALUATION = "no split could be evaluated (see Evaluation)"


def _model_name(meta: dict[str, Any]) -> str:
    spec = meta.get("model", {})
    if "name" in spec:
        options = ", ".join(f"{k}={v}" for k, v in spec.get("options", {}).items())
        return f"{spec['name']}({options})" if options else spec["name"]
    return f"layer list ({len(spec.get('layers', []))} layers{', ' + spec['source'] if 'source' in spec else ''})"


def _checkpoint_name(run: LoadedRun) -> str:
    name = "best.pt" if (run.run_dir / "best.pt").is_file() else "last.pt"  # load_run's fallback order
    return f"{name} (epoch {run.checkpoint_epoch})" if run.checkpoint_epoch is not None else name


def overview_section(run: LoadedRun, predictions: SplitPredictions | None) -> str:
    meta, results = run.meta, read_results(run.run_dir) or {}
    data = meta.get("data", {})
    classes = ", ".join(run.classes[:12]) + (f", … ({len(run.classes)} in all)" if len(run.classes) > 12 else "")
    source = (data.get("paths") or {}).get("data") or data.get("source")
    pairs: list[tuple[str, Any]] = [
        ("model", _model_name(meta)),
        ("trainable parameters", meta.get("parameters")),
        input_shape_label(run.input_shape),
        ("classes", classes),
        ("data", f"{H.text(source)} ({H.text(data.get('format'))})"),
        ("split sizes", ", ".join(f"{k} {v:,}" for k, v in data.get("sizes", {}).items()) or None),
        ("epochs run", results.get("epochs_run")),
        ("weights shown", _checkpoint_name(run)),
        ("stopped early", results.get("stopped_early")),
        ("training time", H.seconds(results.get("train_seconds"))),
        ("device", meta.get("device")),
    ]
    if predictions is not None:
        pairs.append((f"{predictions.split} accuracy", predictions.report.accuracy))
    return H.key_values(pairs)


def diagnosis_section(run_dir: Path) -> str:
    """Findings of `cnnlab.diagnose` with evidence and prescriptions, or a note saying why there are none."""
    try:
        from cnnlab.diagnose import diagnose_run
    except ImportError as error:
        raise SectionMissing(f"the diagnosis is not available in this version of cnnlab ({error})") from error
    try:
        diagnosis = diagnose_run(run_dir)
    except CnnlabError as error:
        raise SectionMissing(f"the diagnosis failed: {error}") from error
    except Exception as error:  # a fault in a rule: the rest of the report is still worth having
        raise SectionMissing(f"the diagnosis failed: {type(error).__name__}: {error}") from error
    findings = list(getattr(diagnosis, "findings", diagnosis) or [])
    verdict = getattr(diagnosis, "verdict", None)
    head = f"<p>Verdict: <b>{H.escape(verdict)}</b></p>" if verdict else ""
    if not findings:
        return head + H.paragraph("No findings: nothing in the curves, data or configuration calls for a change.")
    return head + "".join(_finding_html(finding) for finding in findings)


def _finding_fields(finding: Any) -> dict[str, Any]:
    """The JSON shape of `cnnlab diagnose --json` (id, severity, title, evidence, prescription) where offered."""
    to_dict = getattr(finding, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    return {key: getattr(finding, key, None) for key in ("id", "severity", "title", "evidence", "prescription")}


def _explained(content: Any) -> str:
    """Sentences (`summary`, `advice`) as paragraphs, then the numbers or config changes as a table."""
    if not isinstance(content, dict):
        return H.paragraph(content) if isinstance(content, str) else H.value(content)
    sentences = {k: v for k, v in content.items() if isinstance(v, str) and k in ("summary", "advice", "text")}
    rest = {k: v for k, v in content.items() if k not in sentences and v not in ({}, [], None, "")}
    return "".join(H.paragraph(text) for text in sentences.values() if text) + (H.value(rest) if rest else "")


def _finding_html(finding: Any) -> str:
    fields = _finding_fields(finding)
    severity = str(getattr(fields.get("severity"), "value", fields.get("severity") or "info")).lower()
    css = "".join(c for c in severity if c.isalnum())
    title = fields.get("title") or fields.get("id") or "finding"
    parts = [
        f'<div class="finding {css}"><span class="badge">{H.escape(severity)}</span> <b>{H.escape(title)}</b>',
        f" <code>{H.escape(fields.get('id') or '')}</code>",
    ]
    for label in ("evidence", "prescription"):
        if fields.get(label):
            parts.append(f"{H.heading(label.capitalize(), 4)}{_explained(fields[label])}")
    return "".join(parts) + "</div>"


def curves_section(run_dir: Path) -> str:
    history = read_metrics(run_dir)
    if not history:
        raise SectionMissing("no metrics.jsonl in the run folder: no epoch finished")
    caption = "loss, accuracy and learning rate per epoch; a widening train/val gap is the sign of overfitting"
    return H.figure(figure_png(learning_curves_figure(history)), caption, "plot")


def evaluation_section(predictions: SplitPredictions | None, data_problem: str) -> str:
    if predictions is None:
        raise SectionMissing(data_problem)
    report = predictions.report
    numbers = [
        ("accuracy", report.accuracy),
        ("loss", report.loss),
        ("macro F1", report.macro_f1),
        ("balanced accuracy", report.balanced_accuracy),
    ]
    if report.top5_accuracy is not None:
        numbers.append(("top-5 accuracy", report.top5_accuracy))
    summary = "".join(f"<span>{H.escape(k)} <b>{v:.4f}</b></span>" for k, v in numbers)
    rows = [
        (name, *(report.per_class[k][i] for k in ("precision", "recall", "f1")), report.per_class["support"][i])
        for i, name in enumerate(report.classes)
    ]
    matrix = H.figure(
        figure_png(confusion_matrix_figure(report.confusion, report.classes)),
        f"rows: true class, columns: predicted; {len(predictions.labels):,} images",
        "plot",
    )
    table = H.table(["class", "precision", "recall", "F1", "support"], rows)
    return f'<p class="metrics">{summary}</p><div class="columns">{matrix}{table}</div>'


def _thumbnail(image: torch.Tensor, min_side: int = 84) -> bytes:
    return png_bytes(enlarge(display_image(image), min_side))


def mistakes_section(run: LoadedRun, predictions: SplitPredictions | None, count: int) -> str:
    if predictions is None:
        raise SectionMissing(NO_EVALUATION)
    indices = most_confident_mistakes(predictions, count)
    if not indices:
        return H.paragraph(f"No mistakes on the {predictions.split} split.")
    images = predictions.imageset.load(indices)
    items = []
    for image, index in zip(images, indices):
        true, predicted = run.classes[int(predictions.labels[index])], run.classes[int(predictions.predicted[index])]
        caption = f"#{index}: true {true}, predicted {predicted} ({float(predictions.confidence[index]):.1%})"
        items.append(H.figure(_thumbnail(image), caption))
    intro = H.paragraph("The wrong predictions the model was surest of: label noise or a real blind spot.")
    return intro + H.gallery(items)


def filters_section(run: LoadedRun) -> str:
    try:
        kernel = first_conv_kernel(run.model, run.input_shape)
    except CnnlabError as error:
        raise SectionMissing(str(error)) from error
    out_channels, in_channels, *size = kernel.shape
    caption = f"{out_channels} filters of {in_channels}×{'×'.join(map(str, size))}, each scaled to its own min–max"
    if kernel.ndim == 5:
        kernel = kernel[:, :, kernel.shape[2] // 2]
        caption += "; 3-D kernels: the middle depth slice of each"
    return H.figure(png_bytes(filter_grid(kernel)), caption)


def _example_batch(run: LoadedRun, predictions: SplitPredictions, indices: list[int]) -> tuple[torch.Tensor, ...]:
    images = predictions.imageset.load(indices)
    device = next(run.model.parameters()).device
    return images, run.preprocess(images.to(device))


def features_section(run: LoadedRun, predictions: SplitPredictions | None, channels: int) -> str:
    if predictions is None:
        raise SectionMissing(NO_EVALUATION)
    if len(predictions.labels) == 0:
        raise SectionMissing(f"the {predictions.split} split is empty")
    images, x = _example_batch(run, predictions, [0])
    stages = feature_maps(run.model, x)
    volume = " (middle depth slice; feature maps too)" if images.ndim == 5 else ""
    intro = H.figure(
        _thumbnail(images[0]), f"{predictions.split} image #0{volume}, true {true_names(run, predictions.labels[0])}"
    )
    items = [
        H.figure(
            png_bytes(stage_grid(stage, channels)),
            f"{stage.label}: first {min(channels, stage.activation.shape[0])} channels",
        )
        for stage in stages
    ]
    if not items:
        raise SectionMissing("the model has no conv stage with a spatial output")
    return H.gallery([intro]) + H.gallery(items)


def true_names(run: LoadedRun, label: torch.Tensor) -> str:
    """A class name, or for a multi-hot target the names of its positive labels ("none" when there are none)."""
    if label.ndim == 0:
        return run.classes[int(label)]
    names = [run.classes[i] for i in (label > 0.5).nonzero().flatten().tolist()]
    return ", ".join(names) or "none"


SLICE_VIEW = (
    "Volumes: the three orthogonal slices through the map's peak (depth, row, column; axial, coronal and sagittal "
    "for a scan stored head to foot), plain above and with the map below."
)


def explained_cam(model: torch.nn.Module, x: torch.Tensor, class_index: int | None = None):
    """`grad_cam`, its refusal (a model without a spatial conv layer, e.g. an MLP) the section's note."""
    try:
        return grad_cam(model, x, class_index)
    except CnnlabError as error:
        raise SectionMissing(str(error)) from error


def gradcam_section(run: LoadedRun, predictions: SplitPredictions | None, count: int) -> str:
    if predictions is None:
        raise SectionMissing(NO_EVALUATION)
    if count <= 0:
        raise SectionMissing(f"{count} images asked for (--gradcam)")
    correct = (predictions.predicted == predictions.labels).nonzero().flatten()[: count - count // 2].tolist()
    indices = correct + most_confident_mistakes(predictions, count - len(correct))
    if not indices:
        raise SectionMissing(f"the {predictions.split} split is empty")
    images, x = _example_batch(run, predictions, indices)
    result = explained_cam(run.model, x)
    items = []
    for row, index in enumerate(indices):
        true, predicted = run.classes[int(predictions.labels[index])], run.classes[int(result.predicted[row])]
        confidence = float(result.probabilities[row].max())
        caption = f"#{index}: true {true}, predicted {predicted} ({confidence:.1%}); evidence for {predicted}"
        items.append(H.figure(png_bytes(gradcam_panel(images[row], result.heatmap[row])), caption))
    intro = H.paragraph(
        f"Where the evidence for the predicted class lies (Selvaraju et al. 2017), at layer {result.layer}: "
        "red is strong. Correct predictions first, then the most confident mistakes."
        + (" " + SLICE_VIEW if images.ndim == 5 else "")
    )
    return intro + H.gallery(items)


# Config fields whose values are free mappings (user keys), shown as `k=v, ...` rather than as nested fields.
FREE_MAPPINGS = ("augment", "model_options", "task_options")


def config_rows(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """config.yaml as (dotted field, shown value) rows: nested sections flattened (`optimizer.lr`), yes/no, —."""
    rows: list[tuple[str, str]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key not in FREE_MAPPINGS:
            rows += config_rows(value, f"{name}.")
        elif isinstance(value, dict):
            rows.append((name, ", ".join(f"{k}={H.text(v)}" for k, v in value.items()) or H.text(None)))
        elif isinstance(value, list) and key == "layers":
            rows.append((name, f"{len(value)} layers (in run.json)"))
        elif isinstance(value, list):
            rows.append((name, ", ".join(map(H.text, value)) or H.text(None)))
        else:
            rows.append((name, H.text(value)))
    return rows


def config_section(run: LoadedRun) -> str:
    config_path = run.run_dir / "config.yaml"
    if not config_path.is_file():
        raise SectionMissing("no config.yaml in the run folder")
    regularization = run.meta.get("regularization", {})
    versions = run.meta.get("versions", {})
    raw = H.preformatted(config_path.read_text(encoding="utf-8"))
    parts = [
        H.heading("config.yaml"),
        H.table(["field", "value"], config_rows(read_yaml(config_path))),
        f"<details><summary>as YAML</summary>{raw}</details>",
    ]
    if regularization:
        parts += [H.heading("regularization used"), H.value(regularization)]
    if versions:
        parts += [H.heading("versions"), H.value(versions)]
    return "".join(parts)


# -- detection runs ---------------------------------------------------------------------------------------------
# Pictures show what `cnnlab detect predict` reports: detections at the task's default confidence 0.25 (mAP is
# computed over every detection down to 0.001, which would bury the picture in boxes).
PICTURE_SCORE = 0.25
DETECTION_LOSS_PARTS = ("box_loss", "objectness_loss", "class_loss")


@dataclass
class DetectionSplit:
    """One split of a detection run, predicted and scored (the numbers `cnnlab detect evaluate` prints)."""

    split: str
    imageset: Any
    predictions: list[dict]
    targets: list[dict]
    report: Any


def evaluate_detection_split(run: LoadedRun, split: str, data: str | None = None) -> DetectionSplit:
    from cnnlab.evaluate.detection import load_detection_split, predict_split
    from cnnlab.tasks.detection.metrics import evaluate_detections

    imageset = load_detection_split(run, data, split)
    predictions, targets = predict_split(run, imageset)
    report = evaluate_detections(predictions, targets, list(run.classes))
    return DetectionSplit(split, imageset, predictions, targets, report)


def _lazy_split(run: LoadedRun, split: str, data: str | None) -> Callable[[], DetectionSplit]:
    """The split evaluated on first use (and once): several sections read it; a failure is each one's note."""
    cache: dict[str, Any] = {}

    def get() -> DetectionSplit:
        if "value" not in cache:
            try:
                cache["value"] = evaluate_detection_split(run, split, data)
            except CnnlabError as error:
                cache["error"] = f"the {split} split could not be evaluated: {error}"
                cache["value"] = None
        if cache["value"] is None:
            raise SectionMissing(cache["error"])
        return cache["value"]

    return get


def detection_makers(
    run: LoadedRun, split: str | None, data: str | None, examples: int = 12
) -> list[tuple[str, str, Callable[[], str]]]:
    """The sections of a detection run's page: scores and PR curves on `split` (default test), pictures of the
    validation split, whose images chose the best epoch."""
    evaluated = split or "test"
    scored = _lazy_split(run, evaluated, data)
    pictured = scored if evaluated == "val" else _lazy_split(run, "val", data)
    return [
        ("overview", "Overview", lambda: detection_overview_section(run)),
        ("diagnosis", "Diagnosis", lambda: diagnosis_section(run.run_dir)),
        ("curves", "Learning curves", lambda: detection_curves_section(run.run_dir)),
        ("evaluation", f"Evaluation ({evaluated} split)", lambda: detection_evaluation_section(scored())),
        ("boxes", "Predicted vs. true boxes (val split)", lambda: detection_boxes_section(run, pictured(), examples)),
        ("config", "Configuration", lambda: config_section(run)),
    ]


def detection_overview_section(run: LoadedRun) -> str:
    meta, results = run.meta, read_results(run.run_dir) or {}
    data = meta.get("data", {})
    classes = ", ".join(run.classes[:12]) + (f", … ({len(run.classes)} in all)" if len(run.classes) > 12 else "")
    source = (data.get("paths") or {}).get("data") or data.get("source")
    boxes = data.get("boxes", {})
    test = results.get("test") or {}
    pairs: list[tuple[str, Any]] = [
        ("task", "detection"),
        ("model", _model_name(meta)),
        ("trainable parameters", meta.get("parameters")),
        ("input (C×H×W)", "×".join(map(str, run.input_shape))),
        ("classes", classes),
        ("anchors (w×h px)", ", ".join(f"{w:g}×{h:g}" for w, h in meta.get("anchors", [])) or None),
        ("data", f"{H.text(source)} ({H.text(data.get('format'))})"),
        (
            "split sizes (images, boxes)",
            ", ".join(f"{k} {v:,} ({boxes.get(k, 0):,})" for k, v in data.get("sizes", {}).items()) or None,
        ),
        ("epochs run", results.get("epochs_run")),
        ("best epoch", results.get("best_epoch")),
        ("weights shown", _checkpoint_name(run)),
        ("stopped early", results.get("stopped_early")),
        ("training time", H.seconds(results.get("train_seconds"))),
        ("device", meta.get("device")),
        ("test mAP@0.5", test.get("map50")),
        ("test mAP@0.5:0.95", test.get("map50_95")),
    ]
    return H.key_values(pairs)


def _series(ax: Any, history: list[dict[str, Any]], keys: list[tuple[str, str, str]], title: str) -> None:
    """Plot (key, label, style) columns of `history` that the run logged, per epoch."""
    from matplotlib.ticker import MaxNLocator

    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    for key, label, style in keys:
        if any(row.get(key) is not None for row in history):
            ax.plot(epochs, [row.get(key, float("nan")) for row in history], style, ms=3, label=label)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def detection_curves_figure(history: list[dict[str, Any]]):
    """Train/val loss, its parts (box, objectness, class), val mAP@0.5 and @0.5:0.95, and the learning rate."""
    from cnnlab.viz.plots import plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    _series(axes[0], history, [("train_loss", "train", "-o"), ("val_loss", "val", "-s")], "loss")
    parts = [
        (f"{split}_{part}", f"{split} {part.removesuffix('_loss')}", style)
        for part in DETECTION_LOSS_PARTS
        for split, style in (("train", "-o"), ("val", "--s"))
    ]
    _series(axes[1], history, parts, "loss parts")
    maps = [("val_map50", "val mAP@0.5", "-o"), ("val_map50_95", "val mAP@0.5:0.95", "-s")]
    _series(
        axes[2], history, maps + [("val_precision", "val precision", ":"), ("val_recall", "val recall", ":")], "val mAP"
    )
    axes[2].set_ylim(0, 1)
    _series(axes[3], history, [("lr", "lr", "-o")], "learning rate (epoch start)")
    fig.tight_layout()
    return fig


def task_curves_section(run_dir: Path, make_figure: Callable[[list[dict[str, Any]]], Any], caption: str) -> str:
    """A task's learning-curves figure of the run's metrics, or a note when no epoch finished."""
    history = read_metrics(run_dir)
    if not history:
        raise SectionMissing("no metrics.jsonl in the run folder: no epoch finished")
    return H.figure(figure_png(make_figure(history)), caption, "plot")


def detection_curves_section(run_dir: Path) -> str:
    caption = (
        "loss and its parts, validation mAP per epoch; val loss rising while train loss falls is overfitting, "
        "a val mAP still climbing at the last epoch says train longer"
    )
    return task_curves_section(run_dir, detection_curves_figure, caption)


def detection_evaluation_section(scored: DetectionSplit) -> str:
    from cnnlab.viz.detection import pr_curve_png

    report = scored.report
    numbers = [
        ("mAP@0.5", report.map50),
        ("mAP@0.5:0.95", report.map50_95),
        ("VOC mAP@0.5", report.voc_map50),
        (f"precision @{report.score_threshold:g}", report.precision),
        (f"recall @{report.score_threshold:g}", report.recall),
    ]
    summary = "".join(f"<span>{H.escape(k)} <b>{v:.4f}</b></span>" for k, v in numbers)
    boxes = sum(len(t["labels"]) for t in scored.targets)
    curves = H.figure(
        pr_curve_png(report), f"precision–recall per class at IoU 0.5; {len(scored.targets):,} images", "plot"
    )
    rows = [
        (name, *(_ap(row.get(k)) for k in ("ap50", "ap50_95")), row.get("ground_truth"), row.get("predictions"))
        for name, row in report.per_class.items()
    ]
    table = H.table(["class", "AP@0.5", "AP@0.5:0.95", "true boxes", "detections (conf ≥ 0.001)"], rows)
    intro = H.paragraph(f"{boxes:,} true boxes; mAP counts every detection down to confidence 0.001 (as COCO does).")
    return f'<p class="metrics">{summary}</p>{intro}<div class="columns">{curves}{table}</div>'


def _ap(value: Any) -> Any:
    """An AP for the table: None (shown —) for a class without ground truth (NaN)."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def detection_boxes_section(run: LoadedRun, pictured: DetectionSplit, count: int) -> str:
    from cnnlab.viz.detection import detection_grid_png

    if count <= 0:
        raise SectionMissing(f"{count} images asked for")
    indices = list(range(min(count, len(pictured.targets))))
    if not indices:
        raise SectionMissing(f"the {pictured.split} split is empty")
    images = pictured.imageset.load(indices) if hasattr(pictured.imageset, "load") else pictured.imageset.images
    shown = []
    for index in indices:
        prediction = pictured.predictions[index]
        keep = prediction["scores"] >= PICTURE_SCORE
        shown.append({key: value[keep] for key, value in prediction.items()})
    png = detection_grid_png(
        [images[i] for i in range(len(indices))],
        shown,
        [pictured.targets[i] for i in indices],
        list(run.classes),
        columns=4,
    )
    caption = (
        f"the first {len(indices)} images of the {pictured.split} split: true boxes in green, detections with "
        f"confidence ≥ {PICTURE_SCORE:g} in class colours with class and score"
    )
    return H.figure(png, caption, "plot")
