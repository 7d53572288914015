"""The report page of a binary or multi-label (medical) classification run.

A binary run is judged at its operating point: the threshold chosen on validation (results.json's
"calibration"; 0.5 when there is none) and applied unchanged to the split shown. The page shows the ROC and
precision–recall curves with that point marked, the reliability diagram, the confusion matrix at the point, the
surest mistakes at the point, and Grad-CAM for the positive class (class index 1) grouped into true positives,
false negatives, false positives and true negatives. A multi-label run (one sigmoid per label) shows per-label
ROC curves and AUCs; its pictures explain each image's highest-scoring label. The other sections (diagnosis,
curves, filters, feature maps, configuration) are the classification page's.

Scores are computed here from the logits (binary: softmax[:, 1]; multi-label: sigmoid), and every number from
`cnnlab.tasks.medical.metrics`, the functions `cnnlab evaluate` uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnlab.device import resolve_device
from cnnlab.errors import ConfigError, DataError
from cnnlab.evaluate.metrics import collect_logits
from cnnlab.evaluate.runs import load_run_split
from cnnlab.io import atomic_write_bytes
from cnnlab.runs import LoadedRun, check_output_file, load_run, read_results, writing
from cnnlab.tasks.medical import metrics as M
from cnnlab.viz import report_html as H
from cnnlab.viz.gradcam import gradcam_panel
from cnnlab.viz.images import png_bytes
from cnnlab.viz.plots import confusion_matrix_figure, figure_png, plt
from cnnlab.viz.report import (
    NO_EVALUATION,
    SLICE_VIEW,
    SectionMissing,
    _evaluate_first_available,
    _thumbnail,
    config_section,
    curves_section,
    diagnosis_section,
    explained_cam,
    features_section,
    filters_section,
    label_mode,
    mistakes_section,
    overview_section,
    true_names,
)

POSITIVE = 1  # the positive class of a binary run is class index 1 (MedMNIST's and scikit-learn's convention)
DEFAULT_THRESHOLD = 0.5
GROUPS = (  # (name, called positive, truly positive, surest first: highest score first?)
    ("true positives", True, True, True),
    ("false negatives", False, True, False),
    ("false positives", True, False, True),
    ("true negatives", False, False, False),
)
SHORT = {"true positives": "TP", "false negatives": "FN", "false positives": "FP", "true negatives": "TN"}


@dataclass
class MedicalPredictions:
    """A split of a binary or multi-label run, scored: what every section of the page reads.

    `predicted` and `confidence` are at the operating point, so `mistakes_section` ranks the errors the run
    really makes (a binary run's call is ``score >= threshold``, not the argmax).
    """

    split: str
    imageset: Any
    logits: torch.Tensor
    labels: torch.Tensor  # (N,) class indices (binary) or (N, L) 0/1 floats (multi-label)
    mode: str
    threshold: float | torch.Tensor = DEFAULT_THRESHOLD  # multi-label: one per label (L,)
    threshold_source: str = "default 0.5 (results.json has no threshold chosen on validation)"

    @property
    def scores(self) -> torch.Tensor:
        """Binary: the positive class's probability (N,); multi-label: each label's sigmoid (N, L)."""
        if self.mode == "multilabel":
            return torch.sigmoid(self.logits)
        return torch.softmax(self.logits, dim=1)[:, POSITIVE]

    @property
    def predicted(self) -> torch.Tensor:
        return (self.scores >= self.threshold).long()

    @property
    def confidence(self) -> torch.Tensor:
        """Binary: the probability of the class called. Multi-label: the largest error over the labels."""
        scores = self.scores
        if self.mode == "multilabel":
            return (scores - self.labels.float()).abs().amax(1)
        return torch.where(self.predicted == 1, scores, 1 - scores)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def operating_threshold(run_dir: Path, classes: list[str] | None = None) -> tuple[float | torch.Tensor, str]:
    """results.json's threshold chosen on validation ("calibration": {"threshold": t}), and where it came from;
    with `classes` (a multi-label run) one per label from "thresholds": {label: t}. 0.5 where there is none."""
    calibration = (read_results(run_dir) or {}).get("calibration") or {}
    calibration = calibration if isinstance(calibration, dict) else {}
    rule = calibration.get("rule")
    source = f"chosen on validation by the {rule} rule" if rule else "chosen on validation"
    if classes is not None:
        chosen = calibration.get("thresholds")
        chosen = chosen if isinstance(chosen, dict) else {}
        values = [chosen.get(name) for name in classes]
        if not any(_number(v) for v in values):
            return DEFAULT_THRESHOLD, MedicalPredictions.threshold_source
        thresholds = torch.tensor([float(v) if _number(v) else DEFAULT_THRESHOLD for v in values])
        return thresholds, source + ("" if all(_number(v) for v in values) else "; 0.5 for labels without one")
    threshold = calibration.get("threshold")
    if _number(threshold):
        return float(threshold), source
    return DEFAULT_THRESHOLD, MedicalPredictions.threshold_source


def evaluate_medical_split(
    run: LoadedRun, split: str = "test", data: str | None = None, batch_size: int = 256
) -> MedicalPredictions:
    """The run's own `split` (or `data`'s) scored, with the run's operating point."""
    from cnnlab.data import make_batches

    imageset = load_run_split(run, data, split)
    device = next(run.model.parameters()).device
    batches = make_batches(imageset, batch_size, shuffle=False)
    logits, labels = collect_logits(run.model, batches, run.preprocess, device)
    mode = label_mode(run)
    if mode == "multilabel" and labels.ndim != 2:
        raise DataError(f"the {split} split has one label per image, but run.json says label_mode multilabel")
    if mode == "binary" and (labels.ndim != 1 or logits.shape[1] != 2):
        raise DataError(f"a binary run needs one 0/1 label per image and 2 outputs, got {tuple(logits.shape)}")
    threshold, source = operating_threshold(run.run_dir, list(run.classes) if mode == "multilabel" else None)
    return MedicalPredictions(split, imageset, logits, labels, mode, threshold, source)


def medical_makers(
    run: LoadedRun, split: str | None, data: str | None, mistakes: int = 12, explained: int = 8, channels: int = 16
) -> list[tuple[str, str, Callable[[], str]]]:
    """The sections of a binary or multi-label run's page, on `split` (default test, else val)."""
    splits = [split] if split else ["test", "val"]
    predictions, problem = _evaluate_first_available(run, splits, data, evaluate_medical_split)
    evaluated = predictions.split if predictions else split or "test"
    binary = label_mode(run) == "binary"
    return [
        ("overview", "Overview", lambda: medical_overview_section(run, predictions)),
        ("diagnosis", "Diagnosis", lambda: diagnosis_section(run.run_dir)),
        ("curves", "Learning curves", lambda: curves_section(run.run_dir)),
        (
            "evaluation",
            f"Evaluation ({evaluated} split)",
            lambda: (binary_evaluation_section if binary else multilabel_evaluation_section)(run, predictions, problem),
        ),
        (
            "mistakes",
            "Most confident mistakes" + (" at the operating point" if binary else ""),
            lambda: _mistakes(run, predictions, mistakes),
        ),
        ("filters", "First-layer filters", lambda: filters_section(run)),
        ("features", "Feature maps", lambda: features_section(run, predictions, channels)),
        (
            "gradcam",
            "Grad-CAM",
            lambda: (binary_gradcam_section if binary else multilabel_gradcam_section)(run, predictions, explained),
        ),
        ("config", "Configuration", lambda: config_section(run)),
    ]


def _require(predictions: MedicalPredictions | None, problem: str = NO_EVALUATION) -> MedicalPredictions:
    if predictions is None:
        raise SectionMissing(problem)
    if len(predictions.labels) == 0:
        raise SectionMissing(f"the {predictions.split} split is empty")
    return predictions


def medical_overview_section(run: LoadedRun, predictions: MedicalPredictions | None) -> str:
    """The classification overview, plus the label mode, the positive class and the operating point."""
    mode = label_mode(run)
    pairs: list[tuple[str, Any]] = [("label mode", mode)]
    if mode == "binary":
        pairs.append(("positive class", run.classes[POSITIVE] if len(run.classes) > POSITIVE else None))
        if predictions is not None:
            pairs.append(("operating point", f"score ≥ {predictions.threshold:.4g}, {predictions.threshold_source}"))
    if predictions is not None:
        try:
            auc = _auc(predictions)
        except DataError:
            auc = None
        pairs.append((f"{predictions.split} AUC" + (" (mean over labels)" if mode == "multilabel" else ""), auc))
    return overview_section(run, None) + H.key_values(pairs)


def _auc(predictions: MedicalPredictions) -> float:
    if predictions.mode == "multilabel":
        return M.multilabel_auc(predictions.scores, predictions.labels).mean
    return M.roc_auc(predictions.scores, predictions.labels)


# -- binary -------------------------------------------------------------------------------------------------------
@dataclass
class BinaryFigures:
    """Everything the binary evaluation draws, so tests can check the numbers behind the pictures."""

    auc: float
    ap: float
    point: M.OperatingPoint
    calibration: M.Calibration
    auc_ci: M.Interval | None


def binary_figures(scores: np.ndarray, labels: np.ndarray, threshold: float, n_boot: int = 1000) -> BinaryFigures:
    """AUC, average precision, the operating point at `threshold`, reliability bins and a 95 % bootstrap AUC
    interval (same seed as `binary_report`)."""

    def auc(s: np.ndarray, y: np.ndarray) -> float:
        return M.roc_auc(s, y)

    interval = M.bootstrap_ci(auc, scores, labels, n_boot) if n_boot else None
    return BinaryFigures(
        M.roc_auc(scores, labels),
        M.pr_auc(scores, labels),
        M.at_threshold(scores, labels, threshold),
        M.calibration(scores, labels),
        interval,
    )


def binary_evaluation_section(run: LoadedRun, predictions: MedicalPredictions | None, problem: str) -> str:
    from cnnlab.viz.medical_plots import pr_figure, reliability_figure, roc_figure

    predictions = _require(predictions, problem or NO_EVALUATION)
    scores, labels = predictions.scores.numpy(), predictions.labels.numpy()
    try:
        shown = binary_figures(scores, labels, predictions.threshold)
    except DataError as error:
        raise SectionMissing(f"the {predictions.split} split: {error}") from error
    point = shown.point
    ci = f" [{shown.auc_ci.lo:.3f}, {shown.auc_ci.hi:.3f}]" if shown.auc_ci else ""
    numbers = [
        ("AUC", f"{shown.auc:.4f}{ci}"),
        ("PR-AUC", f"{shown.ap:.4f}"),
        ("accuracy", f"{point.accuracy:.4f}"),
        ("sensitivity", f"{point.sensitivity:.4f}"),
        ("specificity", f"{point.specificity:.4f}"),
        ("PPV", _rate(point.ppv)),
        ("NPV", _rate(point.npv)),
        ("ECE", f"{shown.calibration.ece:.4f}"),
    ]
    summary = "".join(f"<span>{H.escape(k)} <b>{H.escape(v)}</b></span>" for k, v in numbers)
    positive = run.classes[POSITIVE]
    intro = H.paragraph(
        f"Positive class {positive!r}; a case is called positive when its probability is ≥ {point.threshold:.4g} "
        f"({predictions.threshold_source}). {int(labels.sum()):,} positives and {int((1 - labels).sum()):,} "
        f"negatives; the AUC interval is a 95 % bootstrap over cases."
    )
    matrix = confusion_matrix_figure(point.confusion, list(run.classes[:2]))
    matrix.axes[0].set_title(f"confusion matrix at threshold {point.threshold:.3g}")
    figures = [
        H.figure(figure_png(roc_figure(scores, labels, point, shown.auc)), "ROC; red: the operating point", "plot"),
        H.figure(figure_png(pr_figure(scores, labels, point, shown.ap)), "precision–recall; red: the point", "plot"),
        H.figure(
            figure_png(reliability_figure(shown.calibration)),
            "bars at the diagonal: the probabilities can be read as risks",
            "plot",
        ),
        H.figure(figure_png(matrix), "rows: true class, columns: called at the operating point", "plot"),
    ]
    return f'<p class="metrics">{summary}</p>{intro}{H.gallery(figures)}'


def _rate(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.4f}"


def outcome_groups(predictions: MedicalPredictions, per_group: int) -> dict[str, list[int]]:
    """Up to `per_group` indices of each outcome at the operating point, the surest first: true positives and
    false positives by highest score, false negatives and true negatives by lowest."""
    scores, labels, called = predictions.scores, predictions.labels.bool(), predictions.predicted.bool()
    groups: dict[str, list[int]] = {}
    for name, is_called, is_true, highest in GROUPS:
        members = ((called == is_called) & (labels == is_true)).nonzero().flatten()
        order = scores[members].argsort(descending=highest, stable=True)
        groups[name] = members[order][:per_group].tolist()
    return groups


def _group_totals(predictions: MedicalPredictions) -> dict[str, int]:
    labels, called = predictions.labels.bool(), predictions.predicted.bool()
    return {name: int(((called == c) & (labels == t)).sum()) for name, c, t, _ in GROUPS}


def _positive_cams(run: LoadedRun, predictions: MedicalPredictions, indices: list[int]):
    """The images and their Grad-CAM for the positive class, the maps on one colour scale (the largest map's
    peak is 1): Grad-CAM's own per-image scaling would paint a true negative's faint trace as red as a true
    positive's evidence, and the groups are there to be compared."""
    images = predictions.imageset.load(indices)
    device = next(run.model.parameters()).device
    result = explained_cam(run.model, run.preprocess(images.to(device)), class_index=POSITIVE)
    peaks = result.cam.flatten(1).amax(1)
    scale = (peaks / peaks.max().clamp(min=1e-12)).view(-1, *[1] * (result.heatmap.ndim - 1))
    result.heatmap = result.heatmap * scale
    return images, result


def binary_gradcam_section(run: LoadedRun, predictions: MedicalPredictions | None, count: int) -> str:
    predictions = _require(predictions)
    if count <= 0:
        raise SectionMissing(f"{count} images asked for (--gradcam)")
    groups = outcome_groups(predictions, max(1, -(-count // 4)))
    indices = [i for members in groups.values() for i in members]
    images, result = _positive_cams(run, predictions, indices)
    totals, positive = _group_totals(predictions), run.classes[POSITIVE]
    parts = [
        H.paragraph(
            f"Where the evidence for {positive!r} lies (Selvaraju et al. 2017), at layer {result.layer}, for "
            f"the surest cases of each outcome at threshold {predictions.threshold:.3g}, all on one colour "
            "scale: red is the strongest evidence shown, blue none. A false negative with no red had nothing "
            "the model counts as evidence; a false positive's red shows what misled it."
            + (" " + SLICE_VIEW if images.ndim == 5 else "")
        )
    ]
    row = 0
    for name, members in groups.items():
        items = []
        for index in members:
            score = float(predictions.scores[index])
            empty = "; no evidence anywhere" if float(result.cam[row].max()) <= 0 else ""
            caption = f"#{index}: p({positive}) = {score:.3f}{empty}"
            items.append(H.figure(png_bytes(gradcam_panel(images[row], result.heatmap[row])), caption))
            row += 1
        parts.append(H.heading(f"{name.capitalize()} ({len(members)} of {totals[name]:,} shown)", 4))
        parts.append(H.gallery(items) if items else H.paragraph(f"No {name} on the {predictions.split} split."))
    return "".join(parts)


def medical_gradcam_png(
    run_dir: str | Path, out_path: str | Path, n: int = 8, split: str = "test", data: str | None = None
) -> Path:
    """One PNG of Grad-CAM for the positive class of a binary run: `n // 4` of the surest true positives, false
    negatives, false positives and true negatives (a column each) at the run's operating point, each as the
    image beside its overlay (volumes: the slice view), titled with its outcome and score. Made for a README.

    Raises:
        ConfigError: the run is not binary. RunError / DataError: the run or its data cannot be read.
    """
    run = load_run(run_dir, device=resolve_device("auto"))
    if label_mode(run) != "binary":
        raise ConfigError(f"{run.run_dir}: a {label_mode(run)} run; medical_gradcam_png draws binary runs")
    target = check_output_file(out_path)
    predictions = evaluate_medical_split(run, split, data)
    per_group = max(1, n // 4)
    groups = outcome_groups(predictions, per_group)
    indices = [i for members in groups.values() for i in members]
    if not indices:
        raise DataError(f"the {split} split is empty")
    try:
        images, result = _positive_cams(run, predictions, indices)
    except SectionMissing as why:  # the model has no spatial conv layer to explain
        raise ConfigError(f"{run.run_dir}: {why}") from why
    panels = [gradcam_panel(image, heat) for image, heat in zip(images, result.heatmap)]
    aspect = panels[0].shape[0] / panels[0].shape[1]
    fig, axes = plt.subplots(per_group, 4, figsize=(10, per_group * (2.5 * aspect + 0.35) + 0.4), squeeze=False)
    row = 0
    for column, (name, members) in enumerate(groups.items()):
        for slot in range(per_group):
            ax = axes[slot, column]
            ax.axis("off")
            if slot < len(members):
                ax.imshow(panels[row], interpolation="nearest")
                ax.set_title(f"{SHORT[name]} · p = {float(predictions.scores[members[slot]]):.2f}", fontsize=9)
                row += 1
            elif slot == 0:
                ax.text(0.5, 0.5, f"no {name}", ha="center", va="center", fontsize=9)
    fig.suptitle(
        f"Grad-CAM for {run.classes[POSITIVE]!r} ({split} split, threshold {predictions.threshold:.2f}): "
        "TP, FN, FP, TN; one colour scale",
        fontsize=9,
    )
    fig.tight_layout()
    png = figure_png(fig)
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, png)
    return target


# -- multi-label ----------------------------------------------------------------------------------------------------
def multilabel_evaluation_section(run: LoadedRun, predictions: MedicalPredictions | None, problem: str) -> str:
    from cnnlab.viz.medical_plots import per_label_auc_figure, per_label_roc_figure

    predictions = _require(predictions, problem or NO_EVALUATION)
    scores, targets = predictions.scores.numpy(), predictions.labels.numpy()
    try:
        per_label = M.multilabel_auc(scores, targets)
    except DataError as error:
        raise SectionMissing(f"the {predictions.split} split: {error}") from error
    names = list(run.classes)
    thresholds = label_thresholds(predictions)
    rows = []
    for column, name in enumerate(names):
        positives = int(targets[:, column].sum())
        point = M.at_threshold(scores[:, column], targets[:, column], thresholds[column])
        rows.append((name, per_label.aucs[column], positives, thresholds[column], point.sensitivity, point.specificity))
    rows = [tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row) for row in rows]
    skipped = f"; {per_label.skipped} label(s) with one class only have no AUC" if per_label.skipped else ""
    summary = f'<p class="metrics"><span>mean AUC <b>{per_label.mean:.4f}</b></span></p>'
    intro = H.paragraph(
        f"One sigmoid per label, each its own binary problem: the mean is over labels{skipped}. Sensitivity and "
        f"specificity are at each label's threshold ({predictions.threshold_source}). A multi-label run has no "
        "confusion matrix: an image can be right on some labels and wrong on others."
    )
    figures = [
        H.figure(figure_png(per_label_roc_figure(scores, targets, names, per_label.aucs)), "ROC per label", "plot"),
        H.figure(figure_png(per_label_auc_figure(names, per_label.aucs, per_label.mean)), "AUC per label", "plot"),
    ]
    table = H.table(["label", "AUC", "positives", "threshold", "sensitivity", "specificity"], rows)
    return summary + intro + H.gallery(figures) + table


def label_thresholds(predictions: MedicalPredictions) -> list[float]:
    """A multi-label run's threshold for each label (the same one repeated where there is one for all)."""
    threshold = torch.as_tensor(predictions.threshold, dtype=torch.float64)
    return threshold.expand(predictions.labels.shape[1]).tolist()


def _mistakes(run: LoadedRun, predictions: MedicalPredictions | None, count: int) -> str:
    predictions = _require(predictions)
    if predictions.mode == "binary":
        return mistakes_section(run, predictions, count)
    return multilabel_mistakes_section(run, predictions, count)


def multilabel_mistakes_section(run: LoadedRun, predictions: MedicalPredictions, count: int) -> str:
    """Images with a wrong label at the thresholds, ranked by their largest error |score − target| over the labels."""
    wrong = (predictions.predicted != predictions.labels.long()).any(1).nonzero().flatten()
    if not len(wrong):
        return H.paragraph(f"No wrong label on the {predictions.split} split.")
    indices = wrong[predictions.confidence[wrong].argsort(descending=True)][:count].tolist()
    items = []
    for image, index in zip(predictions.imageset.load(indices), indices):
        called = true_names(run, predictions.predicted[index].float())
        caption = f"#{index}: true {true_names(run, predictions.labels[index])}; called {called}"
        items.append(H.figure(_thumbnail(image), caption))
    intro = H.paragraph(
        "Images with at least one label wrong at the operating thresholds, the largest error "
        "(|probability − truth| on one label) first."
    )
    return intro + H.gallery(items)


def multilabel_gradcam_section(run: LoadedRun, predictions: MedicalPredictions | None, count: int) -> str:
    predictions = _require(predictions)
    if count <= 0:
        raise SectionMissing(f"{count} images asked for (--gradcam)")
    has_label = predictions.labels.sum(1) > 0
    order = torch.cat([has_label.nonzero().flatten(), (~has_label).nonzero().flatten()])
    indices = order[:count].tolist()
    images = predictions.imageset.load(indices)
    device = next(run.model.parameters()).device
    result = explained_cam(run.model, run.preprocess(images.to(device)))  # the argmax logit: the top label
    items = []
    for row, index in enumerate(indices):
        label = int(result.class_index[row])
        score = float(predictions.scores[index, label])
        truth = true_names(run, predictions.labels[index])
        caption = f"#{index}: true {truth}; evidence for {run.classes[label]} (p = {score:.2f})"
        items.append(H.figure(png_bytes(gradcam_panel(images[row], result.heatmap[row])), caption))
    intro = H.paragraph(
        f"Where the evidence for each image's highest-scoring label lies (Selvaraju et al. 2017), at layer "
        f"{result.layer}: red is strong. Images with a true label first."
        + (" " + SLICE_VIEW if images.ndim == 5 else "")
    )
    return intro + H.gallery(items)
