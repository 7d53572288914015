"""Top-k predictions for image files through the one preprocessing path training uses (decode, size, normalise).

A file that cannot be read does not stop the others: it comes back as a `Prediction` whose `error` says why
(the CLI prints one `cnnlab: error:` line for each and exits 1), and every other file is still predicted.

Each prediction also carries `hints`: one short line for each obvious way the image differs from the training
images (inverted polarity, colour for a grey model, a big resize, a blank image; see `cnnlab.evaluate.hints`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab.data.decode import IMAGE_EXTENSIONS, convert_channels
from cnnlab.data.files import FolderScan, images_under
from cnnlab.data.preprocess import read_images
from cnnlab.errors import ConfigError, DataError
from cnnlab.evaluate.hints import TrainingProfile, hints_for, measure, read_header
from cnnlab.runs import LoadedRun


@dataclass
class Prediction:
    path: str
    labels: list[str] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    error: str | None = None  # why this file has no prediction (a one-line message naming it)
    hints: list[str] = field(default_factory=list)  # how the image differs from the training images, if it does


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


def _decode_channels(headers: list[tuple[int, tuple[int, int]] | None], channels: int) -> int:
    """3 when a grey model meets a file in colour, so the hints can see the colour; the model still gets grey.

    Decoding at 3 channels and converting to grey gives the very bytes a grey decode gives (both resize first,
    then take Pillow's luma, and grey repeated to 3 channels comes back unchanged), so no prediction changes.
    """
    return 3 if channels == 1 and any(header and header[0] == 3 for header in headers) else channels


def _predict_chunk(run: LoadedRun, chunk: list[Prediction], k: int, training: TrainingProfile) -> None:
    """Labels, probabilities and hints for a chunk of entries; the entries that cannot be read get their error."""
    headers = {entry.path: read_header(entry.path) for entry in chunk}
    decode_channels = _decode_channels(list(headers.values()), training.channels)
    good, decoded = _decode(chunk, decode_channels, training.size)
    if not good:
        return
    batch = convert_channels(decoded, training.channels)
    indices, values = run.task.predict(run.model, run.preprocess, batch.to(next(run.model.parameters()).device), k)
    stats = measure(decoded, batch, [headers[entry.path] for entry in good])
    for entry, image, top_values, top_indices in zip(good, stats, values, indices):
        entry.labels = [run.classes[i] for i in top_indices]
        entry.probabilities = list(top_values)
        entry.hints = hints_for(image, training)


@torch.inference_mode()
def predict_files(run: LoadedRun, inputs: list[str], top_k: int = 5, batch_size: int = 256) -> list[Prediction]:
    """Top-k labels and probabilities for each image file (and the images in each folder) of `inputs`, with hints
    where an image is far from the training images in an obvious way.

    Args:
        top_k: labels per image, >= 1; more than the run's classes gives all of them.

    Returns:
        One Prediction per image in input order; those that could not be read have `error` set and no labels.

    Raises:
        ConfigError: top_k below 1.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ConfigError(f"top_k must be a whole number >= 1, got {top_k!r}")
    training = TrainingProfile.of(run.input_shape, run.meta.get("normalization"))
    k = min(top_k, len(run.classes))
    entries = _entries(inputs)
    todo = [entry for entry in entries if entry.error is None]
    for start in range(0, len(todo), batch_size):
        _predict_chunk(run, todo[start : start + batch_size], k, training)
    return entries
