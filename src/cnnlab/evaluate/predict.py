"""Top-k predictions for image files through the one preprocessing path training uses (decode, size, normalise)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.data.preprocess import read_images
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
    """uint8 C×H×W at the run's channel count and size, decoded exactly as training decodes image files."""
    return read_images([path], channels, size)[0]


@torch.inference_mode()
def predict_files(run: LoadedRun, inputs: list[str], top_k: int = 5, batch_size: int = 256) -> list[Prediction]:
    paths = expand_image_paths(inputs)
    channels, height, width = run.input_shape
    device = next(run.model.parameters()).device
    k = min(top_k, len(run.classes))
    predictions: list[Prediction] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        batch = read_images(chunk, channels, (height, width)).to(device)
        indices, values = run.task.predict(run.model, run.preprocess, batch, k)
        for path, top_values, top_indices in zip(chunk, values, indices):
            predictions.append(Prediction(str(path), [run.classes[i] for i in top_indices], top_values))
    return predictions
