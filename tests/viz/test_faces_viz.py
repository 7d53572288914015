"""The ROC and the query -> matches grid are valid PNGs of the expected size, framed right/wrong, and leak no figure."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.tasks.faces.metrics import verification_from_scores
from cnnlab.viz.faces import matches_grid_png, roc_png
from cnnlab.viz.plots import plt


def png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()
    return image.convert("RGB")


def scored_report(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    genuine = rng.random(count) < 0.2
    return verification_from_scores(rng.normal(size=count) + 2.0 * genuine, genuine)


@pytest.mark.parametrize("log_far", [True, False])
@pytest.mark.parametrize("count", [300, 30_000])  # 30 000 distinct scores: the thinned path
def test_roc_png_is_a_figure_sized_png(log_far, count):
    before = plt.get_fignums()
    image = png(roc_png(scored_report(count), log_far=log_far))
    assert image.size == (704, 528)  # 6.4 x 4.8 in at 110 dpi
    assert len(np.unique(np.asarray(image).reshape(-1, 3), axis=0)) > 20  # something is drawn
    assert plt.get_fignums() == before


def faces(count: int, value: int, channels: int = 1, size: int = 40) -> list[torch.Tensor]:
    return [torch.full((channels, size, size), value + 10 * i, dtype=torch.uint8) for i in range(count)]


def pure(image: Image.Image, colour: tuple[int, int, int]) -> int:
    """How many pixels are (nearly) the given colour."""
    pixels = np.asarray(image).astype(int)
    return int((np.abs(pixels - np.array(colour)).sum(axis=2) < 40).sum())


def test_matches_grid_rows_and_frames():
    queries = torch.stack(faces(3, 60))
    matches = [faces(3, 90, channels=3), faces(3, 90), faces(1, 90, size=56)]  # rows of different lengths and sizes
    names = [["ann", "bob", "cy"], ["bob", "ann", "cy"], ["dee"]]
    scores = [[0.91, 0.52, 0.1], [0.88, 0.4, 0.2], [0.3]]
    before = plt.get_fignums()
    image = png(matches_grid_png(queries, matches, names, scores, ["ann", "bob", "eve"]))
    assert image.size == (round(1.7 * 4 * 110), round((1.9 * 3 + 0.3) * 110))  # 4 columns, 3 rows
    assert pure(image, (0, 200, 0)) > 100 and pure(image, (220, 0, 0)) > 100
    assert plt.get_fignums() == before
    # every match right: no red anywhere (frames and captions are the only red)
    right = png(matches_grid_png(queries[:1], matches[:1], [["ann"] * 3], scores[:1], ["ann"]))
    assert pure(right, (220, 0, 0)) == 0 and pure(right, (0, 200, 0)) > 100


def test_matches_grid_refuses_bad_input_without_leaking_a_figure():
    before = plt.get_fignums()
    with pytest.raises(ValueError, match="uint8"):
        matches_grid_png(torch.zeros(1, 3, 8, 8), [[]], [[]], [[]], ["ann"])
    with pytest.raises(ValueError, match="2 queries but 1 match lists"):
        matches_grid_png(torch.zeros(2, 1, 8, 8, dtype=torch.uint8), [[]], [[]], [[]], ["a", "b"])
    assert plt.get_fignums() == before
    assert png(matches_grid_png([], [], [], [], [])).size[0] > 0  # no queries: still a picture
