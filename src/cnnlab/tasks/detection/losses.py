"""The detectors' losses, each returning (total, {"box": ..., "objectness": ..., "class": ...}).

`yolo_v1_loss` is the paper's sum-squared error (Redmon et al. 2016, eq. 3); `grid_loss` the modern one
(CIoU box loss, BCE objectness with the IoU as target, BCE classes, YOLOv5's neighbour-cell assignment).
Targets are the task's per-image dicts: "boxes" (n, 4) xyxy in input pixels and "labels" (n,).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from cnnlab.tasks.detection.boxes import wh_iou

Targets = Sequence[dict]


def flatten_targets(targets: Targets, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image index (n,), label (n,), box xyxy (n, 4)) of every object in the batch, on `device`."""
    index = [torch.full((len(t["labels"]),), i, dtype=torch.int64) for i, t in enumerate(targets)]
    labels = [t["labels"].to(torch.int64).reshape(-1) for t in targets]
    boxes = [t["boxes"].to(torch.float32).reshape(-1, 4) for t in targets]
    return torch.cat(index).to(device), torch.cat(labels).to(device), torch.cat(boxes).to(device)


def elementwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matching boxes (..., 4) xyxy, broadcast (torchvision's box_iou is all pairs)."""
    lt = torch.max(a[..., :2], b[..., :2])
    rb = torch.min(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    return inter / (area_a + area_b - inter).clamp(min=1e-9)


# -- YOLOv1 -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class YoloV1Loss:
    """The paper's weights: lambda_coord 5 on box terms, lambda_noobj 0.5 on confidences of boxes without objects."""

    grid: int = 7
    boxes: int = 2
    num_classes: int = 20
    image_size: int = 448
    lambda_coord: float = 5.0
    lambda_noobj: float = 0.5

    def cell_targets(self, targets: Targets, device: torch.device) -> dict[str, torch.Tensor]:
        """Per cell: object mask, the object's (x, y) offset in the cell, sqrt(w), sqrt(h) (fractions of the image),
        its box in pixels and its one-hot class. A cell holds one object (the paper's limit): the largest wins."""
        s, n = self.grid, len(targets)
        image, label, box = flatten_targets(targets, device)
        cxcywh = box_convert(box, "xyxy", "cxcywh") / self.image_size
        order = cxcywh[:, 2:].prod(1).argsort()  # ascending area: a larger object written later overwrites
        image, label, box, cxcywh = image[order], label[order], box[order], cxcywh[order]
        col = (cxcywh[:, 0] * s).floor().clamp(0, s - 1).long()
        row = (cxcywh[:, 1] * s).floor().clamp(0, s - 1).long()
        out = {
            "object": torch.zeros(n, s, s, dtype=torch.bool, device=device),
            "xy": torch.zeros(n, s, s, 2, device=device),
            "sqrt_wh": torch.zeros(n, s, s, 2, device=device),
            "box": torch.zeros(n, s, s, 4, device=device),
            "class": torch.zeros(n, s, s, self.num_classes, device=device),
        }
        out["object"][image, row, col] = True
        out["xy"][image, row, col] = torch.stack([cxcywh[:, 0] * s - col, cxcywh[:, 1] * s - row], 1)
        out["sqrt_wh"][image, row, col] = cxcywh[:, 2:].clamp(min=0).sqrt()
        out["box"][image, row, col] = box
        one_hot = F.one_hot(label, self.num_classes).float()
        out["class"][image, row, col] = one_hot
        return out

    def predicted_boxes(self, out: torch.Tensor) -> torch.Tensor:
        """(N, S, S, B, 4) xyxy pixels from the raw output (w = (predicted sqrt w)^2, as the loss reads it)."""
        s, b = self.grid, self.boxes
        raw = out[..., : b * 5].reshape(*out.shape[:3], b, 5)
        cols = torch.arange(s, device=out.device).view(1, 1, s, 1)
        rows = torch.arange(s, device=out.device).view(1, s, 1, 1)
        cx = (cols + raw[..., 0]) / s
        cy = (rows + raw[..., 1]) / s
        w, h = raw[..., 2].clamp(min=0) ** 2, raw[..., 3].clamp(min=0) ** 2
        return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * self.image_size

    def __call__(self, out: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = out.float()
        n, b = out.shape[0], self.boxes
        t = self.cell_targets(targets, out.device)
        raw = out[..., : b * 5].reshape(*out.shape[:3], b, 5)
        with torch.no_grad():  # the responsible predictor: the one whose box has the highest IoU with the object
            iou = elementwise_iou(self.predicted_boxes(out), t["box"].unsqueeze(3))
            responsible = F.one_hot(iou.argmax(-1), b).bool() & t["object"].unsqueeze(-1)
        r = responsible.float()
        xy = ((raw[..., 0:2] - t["xy"].unsqueeze(3)) ** 2).sum(-1)
        wh = ((raw[..., 2:4] - t["sqrt_wh"].unsqueeze(3)) ** 2).sum(-1)
        box = self.lambda_coord * (r * (xy + wh)).sum()
        confidence = raw[..., 4]
        objectness = (r * (confidence - iou) ** 2).sum() + self.lambda_noobj * ((1 - r) * confidence**2).sum()
        classes = (t["object"].unsqueeze(-1) * (out[..., b * 5 :] - t["class"]) ** 2).sum()
        parts = {"box": box / n, "objectness": objectness / n, "class": classes / n}
        return parts["box"] + parts["objectness"] + parts["class"], parts


BOX_LOSSES = {"ciou": complete_box_iou_loss, "diou": distance_box_iou_loss, "giou": generalized_box_iou_loss}


# -- the modern grid detector -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GridLoss:
    """CIoU + BCE with YOLOv5's assignment: a box goes to every anchor whose shape is within `anchor_ratio` of its
    own (the best anchor when none is), in its own cell and the two neighbouring cells nearest its centre -- three
    times the positives of one-cell assignment, which small data sets need.

    Gains are YOLOv5's (box 0.05, objectness 1.0 scaled by (image_size/640)^2, classes 0.5 scaled by classes/80,
    each times 3 for one output scale).
    """

    anchors: torch.Tensor  # (A, 2) w, h in input pixels
    num_classes: int
    image_size: int
    anchor_ratio: float = 4.0
    box_gain: float = 0.05 * 3
    neighbours: bool = True
    box_loss: str = "ciou"  # or "diou", "giou" (Rezatofighi et al. 2019): the ablation in bench/detect_ablation.py

    @property
    def obj_gain(self) -> float:
        return 3.0 * (self.image_size / 640) ** 2

    @property
    def cls_gain(self) -> float:
        return 3.0 * 0.5 * self.num_classes / 80

    def assign(self, targets: Targets, shape: torch.Size, device: torch.device):
        """Positives: (image, anchor, row, col, label, target box in grid units cxcywh relative to the cell)."""
        _, a, h, w, _ = shape
        stride = torch.tensor([self.image_size / w, self.image_size / h], device=device)
        image, label, box = flatten_targets(targets, device)
        gt = box_convert(box, "xyxy", "cxcywh")
        anchors = self.anchors.to(device)
        ratio = gt[:, None, 2:] / anchors[None]  # (n, A, 2)
        match = torch.max(ratio, 1 / ratio).max(-1).values < self.anchor_ratio
        best = wh_iou(gt[:, 2:], anchors).argmax(1) if len(gt) else torch.zeros(0, dtype=torch.long, device=device)
        match[torch.arange(len(gt), device=device), best] = True  # no box is left without an anchor
        obj, anc = match.nonzero(as_tuple=True)
        centre = gt[obj, :2] / stride  # grid units
        size = torch.tensor([w, h], device=device, dtype=centre.dtype)
        # YOLOv5: the own cell, plus the horizontal and the vertical neighbour nearest the centre.
        near_low = ((centre % 1) < 0.5) & (centre > 1)
        near_high = (((size - centre) % 1) < 0.5) & ((size - centre) > 1)
        keep = torch.ones_like(near_low[:, 0])
        if self.neighbours:
            masks = torch.stack([keep, near_low[:, 0], near_low[:, 1], near_high[:, 0], near_high[:, 1]])
        else:
            masks = keep[None]
        offsets = torch.tensor([[0, 0], [0.5, 0], [0, 0.5], [-0.5, 0], [0, -0.5]], device=device)[: len(masks)]
        which, pick = masks.nonzero(as_tuple=True)
        obj, anc, centre = obj[pick], anc[pick], centre[pick]
        cell = (centre - offsets[which]).floor()
        cell = torch.min(cell.clamp(min=0), size - 1)
        txy = centre - cell
        twh = gt[obj, 2:] / stride
        return image[obj], anc, cell[:, 1].long(), cell[:, 0].long(), label[obj], torch.cat([txy, twh], 1), stride

    def __call__(self, out: torch.Tensor, targets: Targets) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = out.float()
        image, anc, row, col, label, tbox, stride = self.assign(targets, out.shape, out.device)
        target_obj = torch.zeros(out.shape[:4], device=out.device)
        box_loss = out.new_zeros(())
        cls_loss = out.new_zeros(())
        if len(image):
            p = out[image, anc, row, col]
            pxy = p[:, :2].sigmoid() * 2 - 0.5
            # A saturated sigmoid gives an exactly zero side, and CIoU's aspect term atan(w / h) is then 0 / 0.
            pwh = ((p[:, 2:4].sigmoid() * 2) ** 2 * (self.anchors.to(out.device)[anc] / stride)).clamp(min=1e-4)
            pred = box_convert(torch.cat([pxy, pwh], 1), "cxcywh", "xyxy")
            true = box_convert(tbox, "cxcywh", "xyxy")
            box_loss = BOX_LOSSES[self.box_loss](pred, true, reduction="mean")
            with torch.no_grad():
                iou = elementwise_iou(pred, true).clamp(min=0)
                order = iou.argsort()  # several positives on one cell: the best IoU is written last and kept
            target_obj[image[order], anc[order], row[order], col[order]] = iou[order]
            one_hot = F.one_hot(label, self.num_classes).float()
            cls_loss = F.binary_cross_entropy_with_logits(p[:, 5:], one_hot)
        obj_loss = F.binary_cross_entropy_with_logits(out[..., 4], target_obj)
        parts = {
            "box": self.box_gain * box_loss,
            "objectness": self.obj_gain * obj_loss,
            "class": self.cls_gain * cls_loss,
        }
        return parts["box"] + parts["objectness"] + parts["class"], parts
