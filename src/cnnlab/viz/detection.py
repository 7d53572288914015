"""Pictures of detections: boxes drawn on images, PR curves per class, and a grid of validation images.

Ground truth is drawn in green without labels (a reader compares outlines), predictions in a colour of their
class with ``"name 0.87"`` labels, through ``torchvision.utils.draw_bounding_boxes``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.utils import draw_bounding_boxes

from cnnlab.io import atomic_write_bytes
from cnnlab.viz.plots import figure_png, plt

if TYPE_CHECKING:
    from cnnlab.tasks.detection.metrics import DetectionReport

GROUND_TRUTH_COLOUR = (0, 255, 0)
# Distinct colours for predicted classes, none of them green (that is the ground truth's).
CLASS_COLOURS = [
    (230, 25, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (240, 50, 230),
    (255, 225, 25), (0, 128, 128), (170, 110, 40), (128, 0, 0), (0, 0, 128),
    (250, 190, 212), (70, 240, 240), (128, 128, 128), (220, 190, 255), (255, 215, 180),
]  # fmt: skip


def class_colour(label: int) -> tuple[int, int, int]:
    return CLASS_COLOURS[label % len(CLASS_COLOURS)]


def line_width(height: int, width: int) -> int:
    """1 px on small images (MNIST canvases), thicker on photos so a box stays visible when shown smaller."""
    return max(1, round(min(height, width) / 200))


def _drawable(boxes: Tensor, height: int, width: int) -> Tensor:
    """xyxy ordered (draw_bounding_boxes refuses x1 > x2) and clipped to the image, as float."""
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4).detach().cpu()
    low, high = torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])
    boxes = torch.cat([low, high], dim=1)
    limits = torch.tensor([width - 1, height - 1, width - 1, height - 1], dtype=torch.float32)
    return boxes.clamp(min=torch.zeros(4), max=limits)


def _name(label: int, class_names: Sequence[str]) -> str:
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def draw_boxes(image: Tensor, prediction: dict | None, target: dict | None, class_names: Sequence[str]) -> Tensor:
    """uint8 (3, H, W) copy of ``image`` (uint8 (1|3, H, W)) with the target's boxes in green and the prediction's
    in its class colour, labelled ``"name score"``. Predictions are drawn last so they stay readable on top."""
    if image.dim() != 3 or image.shape[0] not in (1, 3) or image.dtype != torch.uint8:
        raise ValueError(f"draw_boxes needs a uint8 (1|3, H, W) image, got {image.dtype} {tuple(image.shape)}")
    canvas = image.detach().cpu()
    if canvas.shape[0] == 1:
        canvas = canvas.expand(3, -1, -1)
    canvas = canvas.contiguous()
    height, width = canvas.shape[1:]
    thickness = line_width(height, width)
    if target is not None and len(target["boxes"]):
        canvas = draw_bounding_boxes(
            canvas, _drawable(target["boxes"], height, width), colors=GROUND_TRUTH_COLOUR, width=thickness
        )
    if prediction is not None and len(prediction["boxes"]):
        labels = torch.as_tensor(prediction["labels"]).reshape(-1).tolist()
        scores = torch.as_tensor(prediction["scores"]).reshape(-1).tolist()
        canvas = draw_bounding_boxes(
            canvas,
            _drawable(prediction["boxes"], height, width),
            labels=[f"{_name(lab, class_names)} {score:.2f}" for lab, score in zip(labels, scores)],
            colors=[class_colour(lab) for lab in labels],
            width=thickness,
        )
    return canvas


def save_image(image: Tensor, path: str | Path) -> Path:
    """Write a uint8 (1|3, H, W) image atomically, the format from the suffix (.png, .jpg/.jpeg, or any PIL knows)."""
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise ValueError(f"{path}: unknown image suffix {path.suffix!r} (expected .png or .jpg)")
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    options = {"quality": 95} if image_format == "JPEG" else {}
    picture.save(buffer, format=image_format, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())


def pr_curve_png(report: DetectionReport) -> bytes:
    """Precision against recall at IoU 0.5 (COCO's 101 points), one curve per class with its AP in the legend."""
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    curves = report.pr_curves
    for name, (recall, precision) in curves.items():
        ap = report.per_class.get(name, {}).get("ap50", math.nan)
        ax.plot(recall, precision, lw=1.2, label=f"{name} {ap:.3f}")
    if not curves:
        ax.text(0.5, 0.5, "no ground truth", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"precision-recall at IoU 0.5: mAP@0.5 {report.map50:.3f}, mAP@0.5:0.95 {report.map50_95:.3f}")
    ax.title.set_fontsize(9)
    if curves:
        if len(curves) <= 12:
            ax.legend(loc="lower left", fontsize=7, title="AP@0.5", title_fontsize=7)
        else:  # many classes: the legend beside the plot, in columns
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=6, ncol=math.ceil(len(curves) / 30))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return figure_png(fig)


def detection_grid_png(
    images: Tensor | Sequence[Tensor],
    predictions: Sequence[dict | None] | None,
    targets: Sequence[dict | None] | None,
    class_names: Sequence[str],
    columns: int = 4,
) -> bytes:
    """Validation images with predicted (class colours) and true (green) boxes, for the HTML report."""
    count = len(images)
    predictions = predictions if predictions is not None else [None] * count
    targets = targets if targets is not None else [None] * count
    columns = max(1, min(columns, count))
    rows = max(1, math.ceil(count / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, prediction, target in zip(axes.flat, images, predictions, targets):
        drawn = draw_boxes(image, prediction, target, class_names)
        ax.imshow(np.ascontiguousarray(drawn.permute(1, 2, 0).numpy()))
        found = 0 if prediction is None else len(prediction["boxes"])
        true = 0 if target is None else len(target["boxes"])
        ax.set_title(f"{found} predicted / {true} true", fontsize=8)
    if count == 0:
        axes.flat[0].text(0.5, 0.5, "no images", ha="center", va="center")
    fig.suptitle("predictions (class colours) vs ground truth (green)", fontsize=9)
    fig.tight_layout()
    return figure_png(fig)
