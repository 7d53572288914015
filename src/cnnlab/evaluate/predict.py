"""Top-k predictions for image files through the one preprocessing path training uses (decode, size, normalise).

A file that cannot be read does not stop the others: it comes back as a `Prediction` whose `error` says why
(the CLI prints one `cnnlab: error:` line for each and exits 1), and every other file is still predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data.decode import IMAGE_EXTENSIONS
from cnnlab.data.files import FolderScan, images_under
from cnnlab.data.preprocess import read_images
from cnnlab.errors import ConfigError, DataError
from cnnlab.runs import LoadedRun


@dataclass
class Prediction:
    path: str
    labels: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    error: str | None = None  # why this file has no prediction (a one-line message naming it)


def expand_image_paths(inputs: list[str]) -> list[Path]:
    """Files as given, and the images inside any folder, walked as training walks a data folder: sorted and
    recursive, hidden files skipped, links out of the folder not followed, files without an image extension
    counted in one note on stderr.

    Raises:
        DataError: an input that does not exist, or a folder without images.
    """
    paths: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            scan = FolderScan.of(item)
            found = images_under(item, scan)
            if not found:
                others = f"; it holds only {', '.join(scan.not_images[:3])}" if scan.not_images else ""
                raise DataError(
                    f"{item}: folder holds no images (files ending in {', '.join(IMAGE_EXTENSIONS)}){others}"
                )
            scan.report()
            paths += map(Path, found)
        elif item.is_file():
            paths.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    return paths


def read_image(path: Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """uint8 C×H×W at the run's channel count and size, decoded exactly as training decodes image files."""
    return read_images([path], channels, size)[0]


def _entries(inputs: list[str]) -> list[Prediction]:
    """One entry per image to predict, in input order; an input that yields none is an entry with its error."""
    entries: list[Prediction] = []
    for item in inputs:
        try:
            entries += [Prediction(str(path)) for path in expand_image_paths([item])]
        except DataError as error:
            entries.append(Prediction(item, error=str(error)))
    return entries


def _decode(chunk: list[Prediction], channels: int, size: tuple[int, int]) -> tuple[list[Prediction], torch.Tensor]:
    """The chunk's images, decoded together; when one fails, one by one, marking the bad entries."""
    try:
        return chunk, read_images([entry.path for entry in chunk], channels, size)
    except DataError:
        pass
    good, images = [], []
    for entry in chunk:
        try:
            images.append(read_images([entry.path], channels, size)[0])
            good.append(entry)
        except DataError as error:
            entry.error = str(error)
    return good, torch.stack(images) if images else torch.empty(0, channels, *size, dtype=torch.uint8)


@torch.inference_mode()
def predict_files(run: LoadedRun, inputs: list[str], top_k: int = 5, batch_size: int = 256) -> list[Prediction]:
    """Top-k labels and probabilities for each image file (and the images in each folder) of `inputs`.

    Args:
        top_k: labels per image, >= 1; more than the run's classes gives all of them.

    Returns:
        One Prediction per image in input order; those that could not be read have `error` set and no labels.

    Raises:
        ConfigError: top_k below 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a whole number >= 1, got {top_k!r}")
    channels, height, width = run.input_shape
    device = next(run.model.parameters()).device
    k = min(top_k, len(run.classes))
    entries = _entries(inputs)
    todo = [entry for entry in entries if entry.error is None]
    for start in range(0, len(todo), batch_size):
        good, batch = _decode(todo[start : start + batch_size], channels, (height, width))
        if not good:
            continue
        indices, values = run.task.predict(run.model, run.preprocess, batch.to(device), k)
        for entry, top_values, top_indices in zip(good, values, indices):
            entry.labels = [run.classes[i] for i in top_indices]
            entry.probabilities = list(top_values)
    return entries
