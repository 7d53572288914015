"""Object detection as a task of the engine: grid detectors (yolo_v1, yolo_grid), their losses, mAP, predict.

A batch is (uint8 images (N, C, S, S), a list of per-image targets {"boxes": xyxy pixels, "labels"}); the engine
trains, validates, checkpoints and stops early on val mAP@0.5 as for any task.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.data.loader import shard_bounds
from cnnlab.errors import ConfigError
from cnnlab.models.registry import create
from cnnlab.models.yolo import DETECTORS, YoloGrid, YoloV1
from cnnlab.tasks import register_task
from cnnlab.tasks.base import NormalizedImageTask, StepContext, StepOutput
from cnnlab.tasks.detection.boxes import kmeans_anchors, mean_best_iou
from cnnlab.tasks.detection.losses import BOX_LOSSES, GridLoss, YoloV1Loss
from cnnlab.tasks.detection.postprocess import Selection, decode_grid, decode_yolo_v1, select

DIGITS = ("digits",)  # the generated data set: 1-4 MNIST digits per canvas (cnnlab.data.synthetic)
DIGITS_CANVAS = 128
LOSS_PARTS = ("box", "objectness", "class")


@dataclass(frozen=True)
class DetectionOptions:
    """The detection task's options (`task_options:` in a config; `cnnlab detect train` flags set them).

    image_size: the square side every image is resized to (default 320; the digits set's own 128).
    test_split: the fraction held out for the test split when the data has no split of its own.
    skip_invalid: skip bad boxes/images (counted, listed in the run's skipped.txt) instead of stopping.
    anchors: anchors k-means fits to the training boxes for yolo_grid.
    neighbours / box_loss: yolo_grid's assignment to the two neighbouring cells too, and its box loss (ciou,
        diou or giou). bench/detect_ablation.py (6 epochs of digit scenes, one seed) measured CIoU ahead of GIoU
        and DIoU, and own-cell-only assignment 0.036 mAP@0.5 ahead of the neighbour cells: a short run, so the
        YOLOv5 default is kept until a longer comparison says otherwise (README).
    conf_threshold / nms_iou / max_detections: what `detect predict` reports (evaluation keeps conf >= 0.001).
    """

    image_size: int | None = None
    test_split: float = 0.2
    skip_invalid: bool = False
    anchors: int = 5
    neighbours: bool = True
    box_loss: str = "ciou"
    conf_threshold: float = 0.25
    nms_iou: float = 0.5
    max_detections: int = 100

    def __post_init__(self) -> None:
        ranges = {  # field: (low, high, whole number)
            "image_size": (16, 4096, True),
            "test_split": (0.0, 0.95, False),
            "anchors": (1, 20, True),
            "conf_threshold": (0.0, 0.999, False),
            "nms_iou": (0.01, 0.99, False),
            "max_detections": (1, 100_000, True),
        }
        for name, (low, high, whole) in ranges.items():
            value = getattr(self, name)
            if name == "image_size" and value is None:
                continue
            kind = int if whole else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
                what = "a whole number" if whole else "a number"
                raise ConfigError(
                    f"config field 'task_options.{name}' must be {what} in [{low}, {high}], got {value!r}"
                )
        for name in ("skip_invalid", "neighbours"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"config field 'task_options.{name}' must be true or false, got {getattr(self, name)!r}"
                )
        if self.box_loss not in BOX_LOSSES:
            raise ConfigError(
                f"config field 'task_options.box_loss' must be one of {', '.join(BOX_LOSSES)}, got {self.box_loss!r}"
            )


EVALUATION = Selection(conf_threshold=0.001, nms_iou=0.6, max_detections=100, multi_label=True)


@register_task
class DetectionTask(NormalizedImageTask):
    """Boxes and class labels for the objects in an image (Pascal VOC XML, COCO JSON, YOLO txt, the digits set)."""

    name = "detection"
    Options = DetectionOptions
    metrics = {
        "loss": "min",
        "box_loss": "min",
        "objectness_loss": "min",
        "class_loss": "min",
        "map50": "max",
        "map50_95": "max",
        "precision": "max",
        "recall": "max",
    }
    default_monitor = "val_map50"
    export_outputs = ("boxes", "scores")
    # Rotations and shears move box corners off the object; erasing and mixing need box-aware versions.
    forbidden_augmentations = frozenset({"rotate", "shear", "erase", "mixup", "cutmix"})
    known_data_names = DIGITS

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.augment_values: dict[str, Any] = {}
        self.model_name = "yolo_grid"
        self.quiet = False

    def configure(self, config: Any) -> None:
        """Checks what can be checked before data is read: the model is a detector, the augmentations box-aware."""
        from cnnlab.tasks.detection.augment import DetectionAugmentSpec

        if config.layers is not None or str(config.model).endswith((".yaml", ".yml")):
            raise ConfigError(
                "model: the detection task trains a detector (yolo_v1 or yolo_grid); put a layer list in "
                "model_options.backbone (--backbone FILE.yaml) instead"
            )
        if config.model not in DETECTORS:
            raise ConfigError(
                f"model: the detection task trains {' or '.join(DETECTORS)}, got {config.model!r}; "
                f"a classifier goes in as the backbone: --model yolo_grid --backbone {config.model}"
            )
        DetectionAugmentSpec.from_mapping(dict(config.augment))
        self.augment_values = dict(config.augment)
        self.model_name = config.model
        self.quiet = config.quiet

    def image_size(self, default: int = 320) -> int:
        return int(self.options.image_size or default)

    # -- data and model -----------------------------------------------------------------------------------------
    def load_data(self, config: Any):
        if config.data in DIGITS:
            from cnnlab.data.synthetic import digit_detection_splits

            data = digit_detection_splits(canvas=DIGITS_CANVAS, seed=config.seed)
            return resize_splits(data, self.image_size(DIGITS_CANVAS))
        from cnnlab.tasks.detection.data import load_detection_data

        data = load_detection_data(
            config.data,
            data_format=config.data_format,
            image_size=self.image_size(),
            channels=config.channels,
            val_split=config.val_split,
            test_split=self.options.test_split,
            seed=config.seed,
            skip_invalid=self.options.skip_invalid,
            test_data=config.test_data,
        )
        skipped = getattr(data, "skipped", [])
        if skipped and not self.quiet:
            print(
                f"cnnlab: skipped {len(skipped)} invalid annotations or images (--skip-invalid); "
                "they are listed in the run folder's skipped.txt",
                file=sys.stderr,
            )
        return data

    def data_meta(self, data) -> dict[str, Any]:
        sizes = {name: len(split) for name, split in data.splits().items()}
        boxes = {name: sum(len(t["labels"]) for t in split.labels) for name, split in data.splits().items()}
        return {
            "source": data.source,
            "format": data.format,
            "sizes": sizes,
            "boxes": boxes,
            "class_counts": {
                name: box_counts(split.labels, len(data.classes)) for name, split in data.splits().items()
            },
            "skipped": len(getattr(data, "skipped", [])),
        }

    def run_files(self, data) -> dict[str, str]:
        """Files the run folder gets beside run.json: the list of what --skip-invalid skipped."""
        skipped = getattr(data, "skipped", [])
        return {"skipped.txt": "".join(line + "\n" for line in skipped)} if skipped else {}

    def model_meta(self, data) -> dict[str, Any]:
        size = int(data.train.images.shape[-1])
        wh = torch.cat([t["boxes"][:, 2:] - t["boxes"][:, :2] for t in data.train.labels] or [torch.zeros(0, 2)])
        meta = {
            "num_classes": len(data.classes),
            "classes": list(data.classes),
            "input_shape": [data.in_channels, size, size],
            "image_size": size,
        }
        if len(wh):
            anchors = kmeans_anchors(wh, self.options.anchors, seed=0)
            meta["anchors"] = [[round(float(v), 2) for v in a] for a in anchors]
            meta["anchor_fit"] = round(mean_best_iou(wh, anchors), 4)
        return meta

    def build_model(self, spec: dict[str, Any], meta: dict[str, Any]) -> nn.Module:
        if "name" not in spec or spec["name"] not in DETECTORS:
            raise ConfigError(f"model: the detection task trains {' or '.join(DETECTORS)}, got {spec}")
        options = dict(spec.get("options", {}))
        options.setdefault("image_size", meta["image_size"])
        if int(options["image_size"]) != int(meta["image_size"]):
            raise ConfigError(
                f"model_options.image_size {options['image_size']} differs from the data's {meta['image_size']}; "
                "set the size once with --image-size"
            )
        if spec["name"] == "yolo_grid" and "anchors" not in options and meta.get("anchors"):
            options["anchors"] = meta["anchors"]
        shape = meta["input_shape"]
        return create(spec["name"], num_classes=meta["num_classes"], in_channels=shape[0], **options)

    # -- batches ------------------------------------------------------------------------------------------------
    def build_augment(self, config: Any):
        from cnnlab.tasks.detection.augment import build_detection_augment

        return build_detection_augment(dict(config.augment))

    def train_batches(self, split, config, generator, augment, shard=None):
        return DetectionBatches(split, config.batch_size, generator=generator, augment=augment, shard=shard)

    def eval_batches(self, split, batch_size: int):
        return DetectionBatches(split, min(batch_size, 64))

    # -- steps --------------------------------------------------------------------------------------------------
    def _forward(self, model: nn.Module, batch, context: StepContext):
        """Raw head output, total loss and its parts for one batch (training and evaluation alike)."""
        images, targets = batch
        x = context.prepare(images.to(context.device, non_blocking=True))
        with context.autocast():
            out = model(x)
        loss, parts = loss_for(model, self.options)(out, targets)
        return out, loss, parts, targets

    def training_step(self, model: nn.Module, batch, context: StepContext) -> StepOutput:
        out, loss, parts, targets = self._forward(model, batch, context)
        n = len(targets)
        sums = {"loss": loss.detach() * n, **{f"{k}_loss": v.detach() * n for k, v in parts.items()}}
        return StepOutput(loss, n, sums, out)

    def evaluation_step(self, model: nn.Module, batch, context: StepContext):
        out, loss, parts, targets = self._forward(model, batch, context)
        n = len(targets)
        losses = torch.stack([loss, *(parts[k] for k in LOSS_PARTS)]).detach().float().cpu().view(1, -1) * n
        predictions = detect(model, out, EVALUATION)
        plain = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
        return {"predictions": predictions, "loss_sums": losses}, plain

    def validation_metrics(self, outputs, targets, meta: dict[str, Any]) -> dict[str, float]:
        from cnnlab.tasks.detection.metrics import evaluate_detections

        report = evaluate_detections(outputs["predictions"], targets, list(meta["classes"]))
        sums = outputs["loss_sums"].sum(0) / max(len(targets), 1)
        losses = dict(zip(["loss", *(f"{k}_loss" for k in LOSS_PARTS)], sums.tolist()))
        return {
            **losses,
            "map50": report.map50,
            "map50_95": report.map50_95,
            "precision": report.precision,
            "recall": report.recall,
        }

    def test_report(self, outputs, targets, meta: dict[str, Any]) -> dict[str, Any]:
        from cnnlab.tasks.detection.metrics import evaluate_detections

        report = evaluate_detections(outputs["predictions"], targets, list(meta["classes"]))
        return {**report.to_dict(), "images": len(targets), "boxes": sum(len(t["labels"]) for t in targets)}

    # -- inference ----------------------------------------------------------------------------------------------
    def selection(self) -> Selection:
        return Selection(self.options.conf_threshold, self.options.nms_iou, self.options.max_detections)

    @torch.inference_mode()
    def predict(
        self, model: nn.Module, preprocess: nn.Module, images: torch.Tensor, selection: Selection | None = None
    ):
        """Detections per image of a raw uint8 batch, in the pixels of that batch's images."""
        return detect(model, model(preprocess(images)), selection or self.selection())

    def inference_module(self, model: nn.Module, preprocess: nn.Module, meta: dict[str, Any]) -> nn.Module:
        """uint8 images -> (boxes (N, A, 4) xyxy input pixels, scores (N, A, C)): the decoded head before the
        threshold and NMS (`select`), which stay outside the graph (data-dependent sizes)."""
        return DetectionInference(preprocess, model).eval()


def detector_of(model: nn.Module) -> YoloV1 | YoloGrid:
    """The YoloV1/YoloGrid inside a DDP or compiled wrapper (their loss and decoder read its settings)."""
    current = model
    for _ in range(4):
        if isinstance(current, (YoloV1, YoloGrid)):
            return current
        current = getattr(current, "module", None) or getattr(current, "_orig_mod", None)
        if current is None:
            break
    raise ConfigError(f"the detection task needs a yolo_v1 or yolo_grid model, got {type(model).__name__}")


def loss_for(model: nn.Module, options: DetectionOptions):
    """The detector's loss, built once from its settings (a plain attribute: no state_dict entry)."""
    detector = detector_of(model)
    cached = getattr(detector, "_cnnlab_loss", None)
    if cached is None:
        if isinstance(detector, YoloV1):
            cached = YoloV1Loss(detector.grid, detector.boxes, detector.num_classes, detector.image_size)
        else:
            anchors = detector.anchors.detach().cpu()
            cached = GridLoss(
                anchors,
                detector.num_classes,
                detector.image_size,
                neighbours=options.neighbours,
                box_loss=options.box_loss,
            )
        object.__setattr__(detector, "_cnnlab_loss", cached)
    return cached


def detect(model: nn.Module, out: torch.Tensor, selection: Selection) -> list[dict]:
    detector = detector_of(model)
    boxes, scores = decode(detector, out)
    return select(boxes, scores, detector.image_size, selection)


def decode(detector: YoloV1 | YoloGrid, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's raw output -> (boxes xyxy pixels, class scores) per anchor slot, for either detector."""
    if isinstance(detector, YoloV1):
        return decode_yolo_v1(out, detector.image_size, detector.boxes)
    return decode_grid(out, detector.anchors, detector.image_size)


class DetectionInference(nn.Module):
    """Preprocess, detector, decode: what `DetectionTask.predict` computes before `select`."""

    def __init__(self, preprocess: nn.Module, model: nn.Module) -> None:
        super().__init__()
        self.preprocess, self.model = preprocess, model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode(detector_of(self.model), self.model(self.preprocess(images)))


def box_counts(targets: list[dict], num_classes: int) -> list[int]:
    labels = torch.cat([t["labels"].reshape(-1) for t in targets] or [torch.zeros(0, dtype=torch.long)])
    return torch.bincount(labels, minlength=num_classes).tolist()


def resize_splits(data, size: int):
    """Every split's images (and boxes) resized to size x size (the digits set at another --image-size)."""
    from cnnlab.data import ImageSet
    from cnnlab.data.decode import resize_images

    current = int(data.train.images.shape[-1])
    if size == current:
        return data
    factor = size / current
    for name, split in data.splits().items():
        images = torch.stack([resize_images(image, (size, size)) for image in split.images])
        targets = [{**t, "boxes": t["boxes"] * factor} for t in split.labels]
        setattr(data, name, ImageSet(images, targets, classes=split.classes, source=split.source))
    return data


class DetectionBatches:
    """Batches of (uint8 images, list of targets): a seeded permutation per epoch, this rank's part of each global
    batch, box-aware augmentation of the training batches."""

    def __init__(self, split, batch_size: int, *, generator=None, augment=None, shard=None) -> None:
        self.split, self.batch_size, self.generator = split, batch_size, generator
        self.augment, self.shard = augment, shard

    def __len__(self) -> int:
        return math.ceil(len(self.split) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[dict]]]:
        count = len(self.split)
        order = torch.randperm(count, generator=self.generator) if self.generator is not None else torch.arange(count)
        images, targets = self.split.images, self.split.labels
        for start in range(0, count, self.batch_size):
            index = order[start : start + self.batch_size]
            if self.shard is not None:
                lo, hi = shard_bounds(len(index), self.shard)
                index = index[lo:hi]
            batch_images = images.index_select(0, index)
            batch_targets = [targets[i] for i in index.tolist()]
            if self.augment is not None:
                batch_images, batch_targets = self.augment(batch_images, batch_targets, self.generator)
            yield batch_images, batch_targets
