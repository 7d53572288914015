"""`cnnlab detect train|evaluate|predict`: the detection task with the same shape as classification's commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError, DataError

TRAIN_EPILOG = (
    "examples:\n"
    "  cnnlab detect train --data digits --epochs 12 --out runs/digits            # generated MNIST scenes\n"
    "  cnnlab detect train --data VOC_FOLDER --model yolo_grid --backbone resnet18 --image-size 320 --out runs/X\n"
    "  cnnlab detect train --data coco.json --model yolo_v1 --skip-invalid --out runs/v1"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnlab.cli import CommandParser

    commands = parser.add_subparsers(dest="detect_command", metavar="COMMAND", parser_class=CommandParser)
    train = commands.add_parser(
        "train",
        help="train a grid detector (yolo_grid or yolo_v1) on VOC XML, COCO JSON, YOLO txt or `digits`",
        description="train a grid detector; every `cnnlab train` flag applies",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_train_arguments(train)
    evaluate = commands.add_parser("evaluate", help="mAP, per-class AP and PR curves of a detection run")
    evaluate.add_argument("run", help="run folder written by `cnnlab detect train`")
    evaluate.add_argument("--data", metavar="PATH", help="evaluate on this data instead of the run's own")
    evaluate.add_argument("--data-format", choices=["voc", "coco", "yolo"], help="force the annotation format")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--json", action="store_true", help="print the metrics as JSON")
    predict = commands.add_parser("predict", help="boxes, classes and scores for images (optionally drawn)")
    predict.add_argument("run", help="run folder written by `cnnlab detect train`")
    predict.add_argument("images", nargs="+", metavar="IMG|DIR", help="image files or folders of images")
    predict.add_argument("--json", action="store_true", help="print the detections as JSON")
    predict.add_argument("--save-dir", metavar="D", help="write each image with its boxes drawn into this folder")
    predict.add_argument("--conf", type=float, help="score threshold (default: the run's, 0.25)")
    predict.add_argument("--iou", type=float, help="NMS IoU threshold (default: the run's, 0.5)")
    predict.add_argument("--checkpoint", default="best", choices=["best", "last"])
    parser.set_defaults(detect_parsers=commands.choices)


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    from cnnlab.cli import train_cmd

    train_cmd.add_arguments(parser)
    group = parser.add_argument_group("detection")
    group.add_argument("--backbone", help="zoo model (resnet18, lenet5_modern, ...) or a layer-list YAML file")
    group.add_argument("--backbone-weights", metavar="FILE", help="state dict for the backbone (torchvision .pth)")
    group.add_argument("--image-size", metavar="S", help="square input side (default 320; digits: 128)")
    group.add_argument("--test-split", metavar="F", help="test fraction when the data has no split (default 0.2)")
    group.add_argument(
        "--skip-invalid", action="store_true", help="skip bad boxes and images (listed in skipped.txt) instead"
    )
    group.add_argument("--anchors", metavar="K", help="yolo_grid: anchors fitted by k-means (default 5)")


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "detect_command", None)
    if command is None:
        from cnnlab.cli import UsageError

        raise UsageError("detect needs a command: train, evaluate or predict")
    return {"train": _train, "evaluate": _evaluate, "predict": _predict}[command](args)


# -- train --------------------------------------------------------------------------------------------------------
def _number(text: str | None, flag: str, kind: type) -> Any:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{flag} must be {what}, got {text!r}") from None


def detection_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The detection flags as TrainConfig overrides: task, model options (backbone) and task options."""
    extra: dict[str, Any] = {"task": "detection"}
    model_options = {
        key: value
        for key, value in (("backbone", args.backbone), ("backbone_weights", args.backbone_weights))
        if value is not None
    }
    task_options = {
        key: value
        for key, value in (
            ("image_size", _number(args.image_size, "--image-size", int)),
            ("test_split", _number(args.test_split, "--test-split", float)),
            ("anchors", _number(args.anchors, "--anchors", int)),
            ("skip_invalid", True if args.skip_invalid else None),
        )
        if value is not None
    }
    if model_options:
        extra["model_options"] = model_options
    if task_options:
        extra["task_options"] = task_options
    if not args.resume and getattr(args, "model", None) is None and not _config_names_model(args.config):
        extra["model"] = "yolo_grid"
    return extra


def _config_names_model(config: str | None) -> bool:
    if not config:
        return False
    from cnnlab.config import read_yaml
    from cnnlab.examples import find_config

    return "model" in read_yaml(find_config(config))


def _train(args: argparse.Namespace) -> int:
    from cnnlab.cli import train_cmd

    return train_cmd.run_training(args, detection_overrides(args))


# -- evaluate -----------------------------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    from cnnlab.evaluate.detection import evaluate_detection_run

    report, written = evaluate_detection_run(args.run, args.data, args.split, args.data_format)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    names = list(report.per_class)
    width = max(len(n) for n in [*names, "class"])
    print(f"{'class':<{width}}  AP@0.5  AP@.5:.95  boxes")
    for name, row in report.per_class.items():
        if row.get("ground_truth", 0) == 0:
            print(f"{name:<{width}}       -          -      0")
            continue
        print(f"{name:<{width}}  {row['ap50']:6.4f}  {row['ap50_95']:9.4f}  {row['ground_truth']:5d}")
    print(f"written: {', '.join(str(p) for p in written)}")
    print(f"{args.split} precision: {report.precision:.4f}  recall: {report.recall:.4f} (score >= 0.25, IoU 0.5)")
    print(f"{args.split} mAP@0.5:0.95: {report.map50_95:.4f}")
    print(f"{args.split} mAP@0.5: {report.map50:.4f}")
    return 0


# -- predict ------------------------------------------------------------------------------------------------------
def image_files(items: list[str]) -> list[Path]:
    """The image files named, folders expanded (sorted); a missing path or an empty folder is an error."""
    from cnnlab.data.decode import is_image_file

    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p.name))
            if not found:
                raise DataError(f"{path}: no image files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such image file or folder")
    return files


def _predict(args: argparse.Namespace) -> int:
    import dataclasses

    from cnnlab.data.decode import decode_one, read_bytes
    from cnnlab.data.preprocess import read_images
    from cnnlab.runs import check_output_folder, load_run

    loaded = load_run(args.run, checkpoint=args.checkpoint)
    task = loaded.task
    if task is None or task.name != "detection":
        raise ConfigError(f"{args.run}: not a detection run; use `cnnlab predict {args.run} IMG`")
    selection = task.selection()
    if args.conf is not None:
        if not 0 <= args.conf < 1:
            raise ConfigError(f"--conf must be in [0, 1), got {args.conf}")
        selection = dataclasses.replace(selection, conf_threshold=args.conf)
    if args.iou is not None:
        if not 0 < args.iou < 1:
            raise ConfigError(f"--iou must be in (0, 1), got {args.iou}")
        selection = dataclasses.replace(selection, nms_iou=args.iou)
    save_dir = check_output_folder(args.save_dir) if args.save_dir else None
    files = image_files(args.images)
    channels, size = loaded.meta["input_shape"][0], int(loaded.meta["image_size"])
    names = list(loaded.meta["classes"])
    results = []
    for start in range(0, len(files), 16):
        chunk = files[start : start + 16]
        batch = read_images(chunk, channels, (size, size))
        detections = task.predict(loaded.model, loaded.preprocess, batch, selection)
        for path, found in zip(chunk, detections):
            original = decode_one(read_bytes(str(path)), str(path))
            height, width = original.shape[-2:]
            scale = found["boxes"].new_tensor([width / size, height / size, width / size, height / size])
            boxes = found["boxes"] * scale
            results.append(_image_result(path, width, height, boxes, found, names))
            if save_dir is not None:
                _save_drawn(save_dir, path, original, {**found, "boxes": boxes}, names)
    if args.json:
        print(json.dumps({"run": str(args.run), "images": results}, indent=2))
        return 0
    for item in results:
        print(f"{item['file']}: {len(item['detections'])} objects")
        for det in item["detections"]:
            box = ", ".join(f"{v:.0f}" for v in det["box"])
            print(f"  {det['class']:<12} {det['score']:.3f}  [{box}]")
    if save_dir is not None:
        print(f"drawn: {save_dir}")
    return 0


def _image_result(path: Path, width: int, height: int, boxes, found: dict, names: list[str]) -> dict[str, Any]:
    detections = [
        {"class": names[int(label)], "score": round(float(score), 4), "box": [round(float(v), 1) for v in box]}
        for box, score, label in zip(boxes, found["scores"], found["labels"])
    ]
    return {"file": str(path), "width": int(width), "height": int(height), "detections": detections}


def _save_drawn(folder: Path, path: Path, image, found: dict, names: list[str]) -> None:
    from cnnlab.viz.detection import draw_boxes, save_image

    folder.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower() if path.suffix.lower() in (".png", ".jpg", ".jpeg") else ".png"
    save_image(draw_boxes(image, found, None, names), folder / f"{path.stem}{suffix}")
