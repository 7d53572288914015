"""Pictures of medical classification runs: 16-bit display, 3-D Grad-CAM and its slice view, the binary ROC's
operating point, and the report of binary, multi-label and 3-D runs trained for real on small synthetic data."""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.cli import main
from cnnlab.errors import ConfigError
from cnnlab.layers import build_network
from cnnlab.tasks.medical.metrics import at_threshold, calibration, roc_auc
from cnnlab.viz.filters import first_conv_kernel, first_conv_weight
from cnnlab.viz.gradcam import cam_peak, find_target_layer, grad_cam, gradcam_panel, volume_gradcam_panel
from cnnlab.viz.images import display_image, display_volume
from cnnlab.viz.medical_plots import OPERATING_POINT, precision_recall_curve, reliability_figure, roc_figure
from cnnlab.viz.report import label_mode

IMG_SRC = re.compile(r'<img src="data:image/png;base64,([^"]*)"')


# -- display ------------------------------------------------------------------------------------------------------
def test_sixteen_bit_and_float_images_use_their_own_range():
    ct = torch.tensor([[[1000, 1100], [1150, 1200]]], dtype=torch.int16)  # a narrow band of 16-bit counts
    shown = display_image(ct)[..., 0]
    np.testing.assert_allclose(shown, [[0.0, 0.5], [0.75, 1.0]], atol=1e-6)
    hounsfield = torch.tensor([[[-1000.0, 0.0], [400.0, 1000.0]]])  # float outside [0, 1]: min-max too
    np.testing.assert_allclose(display_image(hounsfield)[..., 0], [[0.0, 0.5], [0.7, 1.0]], atol=1e-6)
    unit = torch.tensor([[[0.2, 0.4], [0.6, 0.8]]])  # already a [0, 1] picture: kept as it is
    np.testing.assert_allclose(display_image(unit)[..., 0], unit[0].numpy(), atol=1e-6)
    assert display_image(torch.full((1, 2, 2), 51, dtype=torch.uint8)).max() == pytest.approx(0.2)
    wide = np.array([[[0, 65535], [30000, 60000]]], dtype=np.uint16)
    assert display_image(wide).max() == 1.0 and display_image(wide).min() == 0.0


def test_a_volume_shows_its_middle_slice_scaled_with_the_whole_volume():
    volume = torch.arange(4 * 3 * 2, dtype=torch.int16).reshape(1, 4, 3, 2) * 10
    rgb = display_volume(volume)
    assert rgb.shape == (4, 3, 2, 3)
    assert rgb.min() == 0.0 and rgb.max() == 1.0
    np.testing.assert_allclose(display_image(volume), rgb[2])  # slice 2 of 4, not re-scaled on its own
    assert display_image(volume).min() > 0.0


def test_sixteen_bit_panel_is_not_black():
    image = (torch.rand(1, 28, 28) * 300 + 1000).to(torch.int16)
    panel = gradcam_panel(image, torch.zeros(28, 28), min_side=28)
    left = panel[4:32, 4:32]
    assert left.min() == pytest.approx(0.0, abs=1e-6) and left.max() == pytest.approx(1.0, abs=1e-6)


# -- Grad-CAM in 2-D and 3-D ----------------------------------------------------------------------------------------
def detector(dims: int) -> nn.Sequential:
    """A plain Sequential: channel 0 fires on bright 3^d areas, channel 1 on dark ones, then max-pooling (so the
    map is upsampled back), class 0 reads only channel 0 and class 1 only channel 1."""
    conv, pool, average = (
        (nn.Conv2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
        if dims == 2
        else (
            nn.Conv3d,
            nn.MaxPool3d,
            nn.AdaptiveAvgPool3d,
        )
    )
    model = nn.Sequential(conv(1, 2, 3, padding=1), nn.ReLU(), pool(2), average(1), nn.Flatten(), nn.Linear(2, 2))
    box = torch.full((1,) + (3,) * dims, 1 / 3**dims)
    with torch.no_grad():
        model[0].weight.copy_(torch.stack([box, -box]))
        model[0].bias.fill_(-0.5)
        model[5].weight.copy_(torch.eye(2))
        model[5].bias.zero_()
    return model.eval()


def blobs(dims: int, bright: tuple[int, ...], size: int = 16) -> torch.Tensor:
    """A bright cube in the `bright` octant (quadrant in 2-D) and a dark one in the opposite octant."""
    x = torch.zeros((1, 1) + (size,) * dims)
    for corner, value in ((bright, 1.0), (tuple(1 - c for c in bright), -1.0)):
        x[(0, 0, *(slice(2 + 8 * c, 6 + 8 * c) for c in corner))] = value
    return x


def octant_of(index: tuple[int, ...], size: int = 16) -> tuple[int, ...]:
    return tuple(i // (size // 2) for i in index)


@pytest.mark.parametrize(
    ("dims", "bright"), [(2, c) for c in itertools.product((0, 1), repeat=2)] + [(3, (1, 0, 1)), (3, (0, 1, 1))]
)
@pytest.mark.parametrize(("layer", "share"), [(None, 0.99), ("2", 0.9)])
def test_the_cam_peak_lies_in_the_region_that_drives_the_class(dims, bright, layer, share):
    """At the rectified conv (full resolution) and after the max-pool (half: the map is upsampled, bilinearly or
    trilinearly, and bleeds a little over the border)."""
    model, x = detector(dims), blobs(dims, bright)
    assert find_target_layer(model, x) == "1"  # the rectified conv output
    for class_index, region in ((0, bright), (1, tuple(1 - c for c in bright))):
        result = grad_cam(model, x, class_index, layer=layer)
        assert result.cam.shape[1:] == ((16,) if layer is None else (8,)) * dims
        assert result.heatmap.shape == x.shape[:1] + x.shape[2:]
        heat = result.heatmap[0]
        assert octant_of(cam_peak(heat)) == region
        inside = heat[tuple(slice(8 * c, 8 * c + 8) for c in region)].sum()
        assert float(inside / heat.sum()) > share


def test_3d_cam_in_every_octant():
    model = detector(3)
    for bright in itertools.product((0, 1), repeat=3):
        heat = grad_cam(model, blobs(3, bright), 0).heatmap[0]
        assert octant_of(cam_peak(heat)) == bright


def test_3d_layer_list_net_targets_its_last_conv3d():
    layers = [
        {"conv": {"out": 4, "kernel": 3, "padding": 1}},
        {"act": "relu"},
        {"pool": {"size": 2}},
        {"conv": {"out": 8, "kernel": 3, "padding": 1}},
        {"act": "relu"},
        {"global_pool": {}},
        {"fc": "classes"},
    ]
    model = build_network(layers, (1, 8, 16, 16), num_classes=2).eval()
    x = torch.randn(3, 1, 8, 16, 16)
    result = grad_cam(model, x, class_index=1)
    assert result.layer == "features.4"
    assert result.cam.shape == (3, 4, 8, 8) and result.heatmap.shape == (3, 8, 16, 16)
    assert float(result.heatmap.min()) >= 0 and float(result.heatmap.max()) <= 1
    assert first_conv_kernel(model, (1, 8, 16, 16)).shape == (4, 1, 3, 3, 3)
    torch.testing.assert_close(first_conv_weight(model, (1, 8, 16, 16)), model.features[0].weight[:, :, 1].detach())
    with pytest.raises(ConfigError, match="no 3-D conv layer"):
        find_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(8 * 16 * 16, 2)), x)


def test_slice_view_goes_through_the_peak():
    volume = torch.zeros(1, 6, 10, 8, dtype=torch.uint8)
    heat = torch.zeros(6, 10, 8)
    heat[4, 7, 2] = 1.0
    panel = volume_gradcam_panel(volume, heat, min_side=12)  # factor 2 (the shortest axis, D, is 6)
    tile_h, tile_w = 2 * max(10, 6), 2 * max(8, 8, 10)  # axial 10×8, coronal 6×8, sagittal 6×10
    assert panel.shape == (2 * (tile_h + 4) + 4, 3 * (tile_w + 4) + 4, 3)
    top = 2 * (tile_h + 4) - tile_h  # the overlay row
    axial = panel[top : top + 20, 4 : 4 + 16]  # 10×8 voxels, doubled
    red = axial[..., 0] - axial[..., 2]
    peak = np.unravel_index(int(np.argmax(red)), red.shape)
    assert (peak[0] // 2, peak[1] // 2) == (7, 2)  # the hot voxel, in the slice through depth 4
    assert gradcam_panel(volume, heat, min_side=20).shape == volume_gradcam_panel(volume, heat, min_side=64).shape


# -- binary figures -----------------------------------------------------------------------------------------------
def scored_cases(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = (rng.random(300) < 0.3).astype(np.int64)
    scores = 1 / (1 + np.exp(-(rng.normal(size=300) + 1.5 * labels - 0.7)))
    return scores, labels


def test_roc_marks_the_operating_point_at_its_sensitivity_and_specificity():
    scores, labels = scored_cases()
    threshold = 0.41
    point = at_threshold(scores, labels, threshold)
    figure = roc_figure(scores, labels, point, roc_auc(scores, labels))
    [marker] = [line for line in figure.axes[0].get_lines() if line.get_label() == OPERATING_POINT]
    called = scores >= threshold
    sensitivity = called[labels == 1].mean()
    specificity = (~called[labels == 0]).mean()
    assert marker.get_xdata()[0] == pytest.approx(1 - specificity) == pytest.approx(1 - point.specificity)
    assert marker.get_ydata()[0] == pytest.approx(sensitivity) == pytest.approx(point.sensitivity)


def test_precision_recall_curve_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    scores, labels = scored_cases(1)
    recall, precision = precision_recall_curve(scores, labels)
    expected_precision, expected_recall, _ = metrics.precision_recall_curve(labels, scores)
    # scikit-learn lists thresholds ascending and appends (recall 0, precision 1); ours run highest first.
    np.testing.assert_allclose(recall, expected_recall[:-1][::-1])
    np.testing.assert_allclose(precision, expected_precision[:-1][::-1])


def test_reliability_title_has_the_ece():
    scores, labels = scored_cases(2)
    bins = calibration(scores, labels)
    figure = reliability_figure(bins)
    assert f"ECE {bins.ece:.3f}" in figure.axes[0].get_title()


def test_label_mode_falls_back_on_the_class_count():
    assert label_mode(SimpleNamespace(meta={}, classes=["normal", "pneumonia"])) == "binary"
    assert label_mode(SimpleNamespace(meta={}, classes=["a", "b", "c"])) == "multiclass"
    assert label_mode(SimpleNamespace(meta={"label_mode": "multilabel"}, classes=["a", "b"])) == "multilabel"


# -- whole reports on real (tiny) runs ------------------------------------------------------------------------------
LAYERS = [
    {"conv": {"out": 4, "kernel": 3, "padding": 1}},
    {"act": "relu"},
    {"pool": {"size": 2}},
    {"conv": {"out": 8, "kernel": 3, "padding": 1}},
    {"act": "relu"},
    {"global_pool": {}},
    {"fc": "classes"},
]


def synthetic_npz(path: Path, shape: tuple[int, ...], labels: str, seed: int = 0) -> Path:
    """MedMNIST-style .npz: noise, and for each positive label a faint brighter block in its own corner, so a
    few epochs learn it but not perfectly (every outcome of a binary run occurs)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in (("train", 160), ("val", 48), ("test", 64)):
        columns = 3 if labels == "multilabel" else 1
        target = rng.integers(0, 3 if labels == "multiclass" else 2, (count, columns))
        images = rng.integers(0, 100, (count, *shape)).astype(np.float32)
        for i, row in enumerate(target):
            for column, value in enumerate(row):
                if value:  # corner number column + value, in binary: one corner per label (or class)
                    bits = [(int(column + value) >> k) & 1 for k in range(len(shape))]
                    images[i][tuple(slice(b * s // 2, (b + 1) * s // 2) for b, s in zip(bits, shape))] += 45
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images.clip(0, 255).astype(np.uint8), target
    np.savez(path, **arrays)
    return path


def train_run(tmp_path: Path, shape: tuple[int, ...], labels: str) -> Path:
    from cnnlab.train import OptimizerConfig, TrainConfig, fit

    data = synthetic_npz(tmp_path / "data.npz", shape, labels)
    config = TrainConfig(
        model="layers",
        layers=LAYERS,
        data=str(data),
        epochs=4,
        batch_size=32,
        progress=False,
        optimizer=OptimizerConfig(name="adam", lr=0.01),
        out=str(tmp_path / "run"),
    )
    return fit(config).run_dir


def sections(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="([^"]+)">(.*?)</section>', html, re.S))


def pngs(body: str) -> list[Image.Image]:
    images = [Image.open(io.BytesIO(base64.b64decode(src))) for src in IMG_SRC.findall(body)]
    assert all(image.format == "PNG" and min(image.size) > 0 for image in images)
    return images


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    return train_run(tmp_path_factory.mktemp("binary"), (16, 16), "binary")


@pytest.fixture(scope="module")
def binary_report(binary_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "binary.html"
    assert main(["report", str(binary_run), "--out", str(out), "--gradcam", "8"]) == 0
    return sections(out.read_text(encoding="utf-8"))


def test_binary_report_has_every_section_made(binary_report):
    expected = ["overview", "diagnosis", "curves", "evaluation", "mistakes", "filters", "features", "gradcam", "config"]
    assert list(binary_report) == expected
    for anchor in expected:
        if anchor != "diagnosis":
            assert 'class="missing"' not in binary_report[anchor], anchor
    assert len(pngs(binary_report["evaluation"])) == 4  # ROC, PR, reliability, confusion matrix
    assert "label mode</th><td>binary" in binary_report["overview"]


def test_binary_report_numbers_are_results_json_at_the_validation_threshold(binary_run, binary_report):
    results = json.loads((binary_run / "results.json").read_text())
    threshold = results["calibration"]["threshold"]
    evaluation = binary_report["evaluation"]
    assert f"≥ {threshold:.4g}" in evaluation
    for key in ("sensitivity", "specificity", "auc"):
        shown = re.search(rf"{'AUC' if key == 'auc' else key} <b>([0-9.]+)", evaluation).group(1)
        assert float(shown) == pytest.approx(results["test"][key], abs=6e-5), key


def test_binary_gradcam_is_grouped_by_outcome(binary_report):
    body = binary_report["gradcam"]
    headings = re.findall(r"<h4>([A-Z][a-z]+ [a-z]+) \((\d+) of ([\d,]+) shown\)</h4>", body)
    assert [name for name, _, _ in headings] == [
        "True positives",
        "False negatives",
        "False positives",
        "True negatives",
    ]
    shown = sum(int(n) for _, n, _ in headings)
    assert len(pngs(body)) == shown and shown >= 4
    assert sum(int(total.replace(",", "")) for _, _, total in headings) == 64  # every test case in one group


def test_medical_gradcam_png_for_the_readme(binary_run, tmp_path):
    from cnnlab.viz.report_medical import medical_gradcam_png

    path = medical_gradcam_png(binary_run, tmp_path / "docs" / "gradcam.png", n=8)
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] == 1100  # 10 inches at the report's 110 dpi
        aspect = (160 + 8) / (2 * 160 + 12)  # one gradcam_panel of a 16×16 image enlarged to 160
        assert image.size[1] == pytest.approx(110 * (2 * (2.5 * aspect + 0.35) + 0.4), abs=2)


def test_medical_gradcam_png_refuses_a_multiclass_run(tiny_run, tmp_path):
    from cnnlab.viz.report_medical import medical_gradcam_png

    with pytest.raises(ConfigError, match="binary runs"):
        medical_gradcam_png(tiny_run, tmp_path / "x.png")


def test_multilabel_report_replaces_single_label_sections(tmp_path_factory):
    run = train_run(tmp_path_factory.mktemp("multilabel"), (16, 16), "multilabel")
    out = run / "report.html"
    assert main(["report", str(run)]) == 0
    made = sections(out.read_text(encoding="utf-8"))
    for anchor in ("evaluation", "mistakes", "features", "gradcam"):
        assert 'class="missing"' not in made[anchor], anchor
    assert "confusion" not in made["evaluation"].split("</p>", 2)[-1]  # no matrix drawn, only the note says why
    assert len(pngs(made["evaluation"])) == 2  # ROC per label, AUC per label
    results = json.loads((run / "results.json").read_text())
    mean = float(re.search(r"mean AUC <b>([0-9.]+)", made["evaluation"]).group(1))
    assert mean == pytest.approx(results["test"]["auc"], abs=6e-5)
    assert len(pngs(made["gradcam"])) == 6


@pytest.mark.parametrize("labels", ["binary", "multiclass"])
def test_3d_report(tmp_path_factory, labels):
    run = train_run(tmp_path_factory.mktemp(f"volume_{labels}"), (8, 16, 16), labels)
    out = run / "report.html"
    assert main(["report", str(run), "--gradcam", "4"]) == 0
    made = sections(out.read_text(encoding="utf-8"))
    for anchor in ("overview", "curves", "evaluation", "mistakes", "filters", "features", "gradcam", "config"):
        assert 'class="missing"' not in made[anchor], anchor
    assert "input (C×D×H×W)</th><td>1×8×16×16" in made["overview"]
    assert "3-D kernels: the middle depth slice" in made["filters"]
    assert "middle depth slice" in made["features"]
    assert "three orthogonal slices" in made["gradcam"]
    panels = pngs(made["gradcam"])
    assert panels and all(p.size == panels[0].size for p in panels)
    width, height = panels[0].size
    assert width > height  # three slices side by side, two rows


def test_grouped_maps_share_one_colour_scale(binary_run):
    from cnnlab.runs import load_run
    from cnnlab.viz.report_medical import _positive_cams, evaluate_medical_split, outcome_groups

    run = load_run(binary_run)
    predictions = evaluate_medical_split(run, "test")
    groups = outcome_groups(predictions, 2)
    assert all(predictions.scores[groups["true positives"]] >= predictions.threshold)
    assert all(predictions.labels[groups["false negatives"]] == 1)
    scores = predictions.scores[groups["true negatives"]]
    assert scores.tolist() == sorted(scores.tolist())  # the surest (lowest) first
    indices = [i for members in groups.values() for i in members]
    _, result = _positive_cams(run, predictions, indices)
    peaks, raw = result.heatmap.flatten(1).amax(1), result.cam.flatten(1).amax(1)
    assert float(peaks.max()) == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(peaks, raw / raw.max(), rtol=0, atol=2e-2)  # bilinear peaks ≈ the raw ones


class ShortcutLastBlock(nn.Module):
    """A ResNet basic block whose shortcut (a strided 1×1 conv in a Sequential) runs after conv2, as in a
    one-block-per-stage ResNet (resnet10_3d): its last conv to run is the shortcut's, its output the ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 4, 3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv3d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm3d(4)
        self.downsample = nn.Sequential(nn.Conv3d(1, 4, 1, stride=2), nn.BatchNorm3d(4))
        self.head = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(4, 2))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu(self.conv1(x))))
        return self.relu(out + self.downsample(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def test_target_is_the_block_output_when_the_shortcut_conv_runs_last():
    model = ShortcutLastBlock().eval()
    x = torch.randn(1, 1, 8, 8, 8)
    assert find_target_layer(model, x) == "relu"
    assert grad_cam(model, x).cam.shape == (1, 4, 4, 4)
