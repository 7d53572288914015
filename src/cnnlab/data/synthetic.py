"""Synthetic detection data: MNIST digits scattered on a canvas, with tight boxes — the detection counterpart of MNIST.

    images, targets = digit_scenes(1000, split="train", seed=0)    # uint8 (1000, 1, 128, 128) + box dicts
    splits = digit_detection_splits()                               # DataSplits, 4000 / 500 / 1000 scenes
    write_detection_dataset("data/digits-voc", images, targets, DIGIT_CLASSES, "voc")   # or "coco", "yolo"

Each scene holds 1-4 digits taken from the MNIST shipped with cnnlab, each scaled to a random side and placed at a
random position where its box overlaps no earlier box by more than IoU 0.1, composited with max() over light
background noise. Boxes are tight around the digit's ink (pixels above INK_LEVEL after scaling), so a detector is
judged on the strokes, not on MNIST's 4-pixel margin. No digit image is used by two splits: "train" draws from the
first 50,000 MNIST training images, "val" from the last 10,000, "test" from the MNIST test images.

Everything is drawn from one seeded torch.Generator, so the same arguments give identical bytes on every machine.
"""

from __future__ import annotations

import functools
import io
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from cnnlab.data.datasets import mnist_path
from cnnlab.data.imageset import DataSplits, ImageSet
from cnnlab.data.readers import read_idx
from cnnlab.errors import ConfigError
from cnnlab.io import atomic_write_bytes, atomic_write_json, atomic_write_text

DIGIT_CLASSES = [str(d) for d in range(10)]
INK_LEVEL = 40  # a scaled digit's pixel brighter than this is ink; boxes are tight around the ink
NOISE_LEVEL = 16  # background noise is uniform in [0, NOISE_LEVEL], well below the ink level
MAX_IOU = 0.1  # a placement overlapping an earlier box by more than this is redrawn
ATTEMPTS = 10  # placements tried per digit before it is left out
VAL_FROM = 50_000  # MNIST training images [0, VAL_FROM) feed "train" scenes, the rest "val" scenes
SPLITS = ("train", "val", "test")
FORMATS = ("voc", "coco", "yolo")


@functools.lru_cache(maxsize=2)
def _mnist(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped MNIST images (N, 28, 28) uint8 and labels (N,) int64 of "train" or "t10k", read once."""
    folder = mnist_path()
    images = read_idx(folder / f"{kind}-images-idx3-ubyte.gz", 3)
    labels = read_idx(folder / f"{kind}-labels-idx1-ubyte.gz", 1)
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def digit_pool(split: str) -> tuple[torch.Tensor, torch.Tensor, str, int]:
    """The digits a split draws from: images (N, 28, 28), labels (N,), the MNIST file kind and the first index."""
    if split not in SPLITS:
        raise ConfigError(f"digit scenes: split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "test":
        images, labels = _mnist("t10k")
        return images, labels, "t10k", 0
    images, labels = _mnist("train")
    if split == "train":
        return images[:VAL_FROM], labels[:VAL_FROM], "train", 0
    return images[VAL_FROM:], labels[VAL_FROM:], "train", VAL_FROM


def _check_args(count: int, canvas: int, digits: tuple[int, int], scale: tuple[int, int]) -> None:
    if count < 0:
        raise ConfigError(f"digit scenes: count must be >= 0, got {count}")
    if not 1 <= digits[0] <= digits[1]:
        raise ConfigError(f"digit scenes: digits must be (low, high) with 1 <= low <= high, got {digits}")
    if not 1 <= scale[0] <= scale[1] <= canvas:
        raise ConfigError(
            f"digit scenes: scale must be (low, high) with 1 <= low <= high <= canvas {canvas}, got {scale}"
        )


def _scaled_digits(digits: torch.Tensor, sides: torch.Tensor) -> tuple[list[np.ndarray], np.ndarray]:
    """Each 28x28 digit resized to its side (one interpolate call per distinct side), and its ink box.

    Returns the patches (uint8 (s, s) arrays) and (n, 4) int64 ink boxes (x1, y1, x2, y2) inside each patch,
    x2/y2 exclusive; a patch without ink gets x2 == x1.
    """
    patches: list[np.ndarray] = [np.empty(0, np.uint8)] * len(digits)
    ink = np.zeros((len(digits), 4), dtype=np.int64)
    for side in torch.unique(sides).tolist():
        index = (sides == side).nonzero().flatten()
        batch = digits[index].unsqueeze(1).float()
        scaled = F.interpolate(batch, size=(side, side), mode="bilinear", align_corners=False, antialias=True)
        scaled = scaled.round_().clamp_(0, 255).to(torch.uint8).squeeze(1)
        mask = scaled > INK_LEVEL
        rows, cols = mask.any(dim=2), mask.any(dim=1)  # (k, side) each
        positions = torch.arange(side)
        big = side + 1
        y1 = torch.where(rows, positions, big).min(dim=1).values
        y2 = torch.where(rows, positions, -1).max(dim=1).values + 1
        x1 = torch.where(cols, positions, big).min(dim=1).values
        x2 = torch.where(cols, positions, -1).max(dim=1).values + 1
        empty = ~rows.any(dim=1)
        boxes = torch.stack([x1, y1, x2, y2], dim=1)
        boxes[empty] = 0
        ink[index.numpy()] = boxes.numpy()
        arrays = scaled.numpy()
        for k, i in enumerate(index.tolist()):
            patches[i] = arrays[k]
    return patches, ink


def _iou(box: tuple[int, int, int, int], others: list[tuple[int, int, int, int]]) -> float:
    """Largest IoU of `box` with any of `others` (xyxy); 0 when there are none. Plain Python: the lists are short."""
    x1, y1, x2, y2 = box
    area = (x2 - x1) * (y2 - y1)
    best = 0.0
    for a1, b1, a2, b2 in others:
        inter = max(0, min(x2, a2) - max(x1, a1)) * max(0, min(y2, b2) - max(y1, b1))
        if inter:
            best = max(best, inter / (area + (a2 - a1) * (b2 - b1) - inter))
    return best


def _noise(size: int, level: int, generator: torch.Generator) -> torch.Tensor:
    """`size` uint8 values in [0, level]: random 64-bit words viewed as bytes (8x fewer draws than randint)."""
    if not level:
        return torch.zeros(size, dtype=torch.uint8)
    words = torch.empty((size + 7) // 8, dtype=torch.int64).random_(generator=generator)
    return words.view(torch.uint8)[:size].remainder_(level + 1)


def _compose(
    count: int, split: str, canvas: int, digits: tuple[int, int], scale: tuple[int, int], seed: int, noise: int
) -> tuple[torch.Tensor, list[dict], list[np.ndarray]]:
    """The scenes, their targets, and for each scene the MNIST indices (in the pool's file) of its digits."""
    _check_args(count, canvas, digits, scale)
    pool, pool_labels, _, offset = digit_pool(split)
    generator = torch.Generator().manual_seed(seed)
    per_scene = torch.randint(digits[0], digits[1] + 1, (count,), generator=generator)
    total = int(per_scene.sum())
    picks = torch.randint(0, len(pool), (total,), generator=generator)
    sides = torch.randint(scale[0], scale[1] + 1, (total,), generator=generator)
    fractions = torch.rand(total, ATTEMPTS, 2, generator=generator, dtype=torch.float64).numpy()
    canvases = _noise(count * canvas * canvas, noise, generator).view(count, canvas, canvas)
    patches, ink = _scaled_digits(pool[picks], sides)
    out = canvases.numpy()
    labels, side_list, pick_list = pool_labels[picks].tolist(), sides.tolist(), picks.tolist()
    ink_list = [tuple(row) for row in ink.tolist()]
    targets, sources = [], []
    start = 0
    for scene, n in enumerate(per_scene.tolist()):
        boxes: list[tuple[int, int, int, int]] = []
        kept: list[int] = []
        for j in range(start, start + n):
            if ink_list[j][2] <= ink_list[j][0]:
                continue
            spot = _best_spot(ink_list[j], side_list[j], fractions[j], canvas, boxes, need=len(boxes) < digits[0])
            if spot is None:
                continue
            x0, y0, box = spot
            side = side_list[j]
            region = out[scene, y0 : y0 + side, x0 : x0 + side]
            np.maximum(region, patches[j], out=region)
            boxes.append(box)
            kept.append(j)
        start += n
        targets.append(
            {
                "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                "labels": torch.tensor([labels[j] for j in kept], dtype=torch.int64),
            }
        )
        sources.append(np.array([pick_list[j] + offset for j in kept], dtype=np.int64))
    return canvases.unsqueeze(1), targets, sources


def _best_spot(
    ink: tuple[int, int, int, int], side: int, fractions: np.ndarray, canvas: int, boxes: list, need: bool
) -> tuple[int, int, tuple[int, int, int, int]] | None:
    """(x0, y0, box) for one digit: the first candidate position whose box overlaps no earlier box by more than
    MAX_IOU; when none qualifies, the least-overlapping one if the scene still needs digits to reach its minimum,
    else None (the digit is left out rather than pile onto another)."""
    room = canvas - side + 1
    best: tuple[float, int, int, tuple[int, int, int, int]] | None = None
    for fx, fy in fractions.tolist():
        x0, y0 = int(fx * room), int(fy * room)
        box = (ink[0] + x0, ink[1] + y0, ink[2] + x0, ink[3] + y0)
        overlap = _iou(box, boxes)
        if overlap <= MAX_IOU:
            return x0, y0, box
        if best is None or overlap < best[0]:
            best = (overlap, x0, y0, box)
    if need and best is not None:
        return best[1], best[2], best[3]
    return None


def digit_scenes(
    count: int,
    *,
    split: str = "train",
    canvas: int = 128,
    digits: tuple[int, int] = (1, 4),
    scale: tuple[int, int] = (20, 48),
    seed: int = 0,
    noise: int = NOISE_LEVEL,
) -> tuple[torch.Tensor, list[dict]]:
    """`count` scenes of `digits` (low, high) MNIST digits each, scaled to a side in `scale`, on a `canvas`^2 image.

    Args:
        split: which MNIST digits to use: "train" (MNIST train 0-49,999), "val" (MNIST train 50,000-59,999) or
            "test" (MNIST test); no digit image is in two splits.
        noise: background noise amplitude (uniform in [0, noise]); 0 for a black background.

    Returns:
        uint8 (count, 1, canvas, canvas) images and one target per image: {"boxes": float32 (n, 4) xyxy pixels
        tight around the ink, x2/y2 exclusive, "labels": int64 (n,) the digit, an index into DIGIT_CLASSES}.
    """
    images, targets, _ = _compose(count, split, canvas, tuple(digits), tuple(scale), seed, noise)
    return images, targets


def digit_detection_splits(
    train: int = 4000, val: int = 500, test: int = 1000, canvas: int = 128, seed: int = 0
) -> DataSplits:
    """Train, val and test scene sets (each from its own MNIST digits and seed) as cnnlab DataSplits.

    Each target also carries "file" (a nominal `digits/<split>/<i>.png`, for reports) and "orig_size".
    """
    sets = {}
    for offset, (split, count) in enumerate((("train", train), ("val", val), ("test", test))):
        images, targets = digit_scenes(count, split=split, canvas=canvas, seed=seed * 3 + offset)
        for i, target in enumerate(targets):
            target["file"] = f"digits/{split}/{i:05d}.png"
            target["orig_size"] = (canvas, canvas)
        sets[split] = ImageSet(images, targets, classes=DIGIT_CLASSES, source=f"digits/{split}") if count else None
    if sets["train"] is None:
        raise ConfigError("digit scenes: the train split needs at least one scene")
    return DataSplits(
        train=sets["train"],
        val=sets["val"],
        test=sets["test"],
        classes=list(DIGIT_CLASSES),
        format="digits",
        source=f"synthetic MNIST digit scenes (seed {seed})",
    )


# ---------------------------------------------------------------- writers: the same scenes as VOC, COCO or YOLO


def _file_names(targets: Sequence[Mapping], count: int) -> list[str]:
    """PNG names from each target's "file" when those are unique, else 00000.png, 00001.png, ..."""
    names = [Path(str(t["file"])).with_suffix(".png").name for t in targets if "file" in t]
    if len(names) == count and len(set(names)) == count:
        return names
    return [f"{i:05d}.png" for i in range(count)]


def _write_png(path: Path, image: torch.Tensor) -> None:
    """A uint8 (1|3, H, W) image as PNG (PIL: torchvision.io's encoders are deprecated since 0.29)."""
    array = image.cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def _voc_xml(name: str, image: torch.Tensor, target: Mapping, classes: Sequence[str]) -> str:
    """A Pascal VOC annotation: 1-based pixel coordinates, xmin = x1 + 1 and xmax = x2 (the last pixel, 1-based)."""
    channels, height, width = image.shape
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = name
    size = ET.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", channels)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "0"
    for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
        item = ET.SubElement(root, "object")
        ET.SubElement(item, "name").text = classes[label]
        ET.SubElement(item, "pose").text = "Unspecified"
        ET.SubElement(item, "truncated").text = "0"
        ET.SubElement(item, "difficult").text = "0"
        bndbox = ET.SubElement(item, "bndbox")
        x1, y1, x2, y2 = (round(v) for v in box)
        for key, value in (("xmin", x1 + 1), ("ymin", y1 + 1), ("xmax", x2), ("ymax", y2)):
            ET.SubElement(bndbox, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _write_voc(folder: Path, names: list[str], images: Sequence[torch.Tensor], targets, classes) -> None:
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    (folder / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for name, image, target in zip(names, images, targets):
        _write_png(folder / "JPEGImages" / name, image)
        atomic_write_text(folder / "Annotations" / f"{Path(name).stem}.xml", _voc_xml(name, image, target, classes))


def _write_coco(folder: Path, names: list[str], images: Sequence[torch.Tensor], targets, classes) -> None:
    """COCO: images/ + annotations.json, bbox [x, y, w, h] in pixels, category ids 1..K (COCO's convention)."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    for image_id, (name, image, target) in enumerate(zip(names, images, targets), start=1):
        _write_png(folder / "images" / name, image)
        entries.append({"id": image_id, "file_name": name, "width": int(image.shape[2]), "height": int(image.shape[1])})
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "none"} for i, name in enumerate(classes)]
    atomic_write_json(
        folder / "annotations.json", {"images": entries, "annotations": annotations, "categories": categories}
    )


def _write_yolo(folder: Path, names: list[str], images: Sequence[torch.Tensor], targets, classes) -> None:
    """YOLO: images/ + labels/<stem>.txt lines `class cx cy w h` (fractions of the image), + data.yaml with names."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    for name, image, target in zip(names, images, targets):
        _write_png(folder / "images" / name, image)
        height, width = image.shape[1:]
        lines = []
        for box, label in zip(target["boxes"].tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            cx, cy, w, h = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        atomic_write_text(folder / "labels" / f"{Path(name).stem}.txt", "".join(lines))
    data = {"train": "images", "val": "images", "nc": len(classes), "names": list(classes)}
    atomic_write_text(folder / "data.yaml", yaml.safe_dump(data, sort_keys=False))


_WRITERS = {"voc": _write_voc, "coco": _write_coco, "yolo": _write_yolo}


def write_detection_dataset(
    folder: str | Path,
    images: torch.Tensor | Sequence[torch.Tensor],
    targets: Sequence[Mapping],
    classes: Sequence[str],
    fmt: str,
) -> Path:
    """Write uint8 (C, H, W) images as PNGs with their boxes in `fmt`; returns the folder.

    Layouts: "voc" Annotations/*.xml + JPEGImages/*.png; "coco" annotations.json + images/; "yolo" images/ +
    labels/*.txt + data.yaml. Image names come from each target's "file" when unique, else 00000.png, ...
    """
    if fmt not in _WRITERS:
        raise ConfigError(f"detection data format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if len(images) != len(targets):
        raise ConfigError(f"write_detection_dataset: {len(images)} images but {len(targets)} targets")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _WRITERS[fmt](folder, _file_names(targets, len(targets)), images, targets, list(classes))
    return folder
