"""Raw detector outputs -> boxes, scores, labels: decode, confidence threshold, class-wise NMS (batched_nms)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import batched_nms, box_convert, clip_boxes_to_image


def decode_yolo_v1(out: torch.Tensor, image_size: int, boxes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S, S, B*5+C) -> boxes (N, S*S*B, 4) xyxy pixels and class scores (N, S*S*B, C).

    The paper's test-time score: Pr(class | object) * confidence (eq. 2), each box with its cell's class scores.
    """
    n, s = out.shape[0], out.shape[1]
    raw = out[..., : boxes * 5].reshape(n, s, s, boxes, 5).float()
    classes = out[..., boxes * 5 :].float().clamp(min=0)  # the paper regresses class probabilities (SSE, linear)
    cols = torch.arange(s, device=out.device).view(1, 1, s, 1)
    rows = torch.arange(s, device=out.device).view(1, s, 1, 1)
    cx, cy = (cols + raw[..., 0]) / s, (rows + raw[..., 1]) / s
    w, h = raw[..., 2].clamp(min=0) ** 2, raw[..., 3].clamp(min=0) ** 2
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * image_size
    scores = raw[..., 4].clamp(min=0).unsqueeze(-1) * classes.unsqueeze(3)  # (n, s, s, B, C)
    return xyxy.reshape(n, -1, 4), scores.reshape(n, s * s * boxes, -1)


def decode_grid(out: torch.Tensor, anchors: torch.Tensor, image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, A, H, W, 5+C) -> boxes (N, A*H*W, 4) xyxy pixels and scores objectness * class (N, A*H*W, C)."""
    n, a, h, w, _ = out.shape
    out = out.float()
    stride_x, stride_y = image_size / w, image_size / h
    cols = torch.arange(w, device=out.device).view(1, 1, 1, w)
    rows = torch.arange(h, device=out.device).view(1, 1, h, 1)
    xy = out[..., :2].sigmoid() * 2 - 0.5
    cx = (xy[..., 0] + cols) * stride_x
    cy = (xy[..., 1] + rows) * stride_y
    wh = (out[..., 2:4].sigmoid() * 2) ** 2 * anchors.to(out.device).view(1, a, 1, 1, 2)
    boxes = box_convert(torch.stack([cx, cy, wh[..., 0], wh[..., 1]], -1), "cxcywh", "xyxy")
    scores = out[..., 4:5].sigmoid() * out[..., 5:].sigmoid()
    return boxes.reshape(n, -1, 4), scores.reshape(n, a * h * w, -1)


@dataclass(frozen=True)
class Selection:
    """What survives decoding. Evaluation keeps nearly everything (conf 0.001: mAP integrates over all scores);
    prediction shows what a user acts on (conf 0.25). `multi_label` keeps every class above the threshold for a
    box (how COCO evaluators score YOLO), else only its best class."""

    conf_threshold: float = 0.25
    nms_iou: float = 0.5
    max_detections: int = 100
    multi_label: bool = False
    pre_nms: int = 3000


def select(boxes: torch.Tensor, scores: torch.Tensor, image_size: int, selection: Selection) -> list[dict]:
    """Per image: threshold, keep the top `pre_nms`, class-wise NMS, keep `max_detections`; boxes clipped."""
    results = []
    for image_boxes, image_scores in zip(boxes, scores):
        if selection.multi_label:
            box_index, label = (image_scores > selection.conf_threshold).nonzero(as_tuple=True)
            score = image_scores[box_index, label]
        else:
            score, label = image_scores.max(1)
            box_index = (score > selection.conf_threshold).nonzero(as_tuple=True)[0]
            score, label = score[box_index], label[box_index]
        if len(score) > selection.pre_nms:
            top = score.topk(selection.pre_nms).indices
            box_index, label, score = box_index[top], label[top], score[top]
        chosen = clip_boxes_to_image(image_boxes[box_index], (image_size, image_size))
        keep = batched_nms(chosen, score, label, selection.nms_iou)[: selection.max_detections]
        results.append({"boxes": chosen[keep].cpu(), "scores": score[keep].cpu(), "labels": label[keep].cpu()})
    return results
