"""Top-k predictions for image files, with the run's own preprocessing (channels, size, normalisation)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from cnnlab.errors import DataError
from cnnlab.runs import LoadedRun

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".pbm"}


@dataclass
class Prediction:
    path: str
    labels: list[str]
    probabilities: list[float]


def expand_image_paths(inputs: list[str]) -> list[Path]:
    """Files as given, and the images inside any folder (sorted, recursively)."""
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise DataError(f"{item}: folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            paths += found
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    return paths


def read_image(path: Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 C×H×W at the run's channel count and size (PIL reads every common format, PGM included)."""
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB")
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as error:
        raise DataError(f"{path}: cannot read as an image ({error})") from error
    tensor = torch.from_numpy(array.copy())
    tensor = tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1)
    if tuple(tensor.shape[1:]) != tuple(size):
        tensor = F.interpolate(tensor[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
        tensor = tensor[0].round().clamp(0, 255).to(torch.uint8)
    return tensor


@torch.inference_mode()
def predict_files(run: LoadedRun, inputs: list[str], top_k: int = 5, batch_size: int = 256) -> list[Prediction]:
    paths = expand_image_paths(inputs)
    channels, height, width = run.input_shape
    device = next(run.model.parameters()).device
    k = min(top_k, len(run.classes))
    predictions: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = torch.stack([read_image(p, channels, (height, width)) for p in chunk]).to(device)
        probabilities = torch.softmax(run.model(run.preprocess(batch)).float(), dim=1)
        values, indices = probabilities.topk(k, dim=1)
        for path, top_values, top_indices in zip(chunk, values.tolist(), indices.tolist()):
            predictions.append(Prediction(str(path), [run.classes[i] for i in top_indices], top_values))
    return predictions
