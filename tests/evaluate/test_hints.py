"""`predict` names inputs far from the training images (polarity, colour, size, blank) without changing predictions."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.evaluate.hints import ImageStats, TrainingProfile, hints_for, measure
from cnnlab.evaluate.predict import predict_files, read_image
from cnnlab.runs import load_run
from tests.badinput.cases import MNIST

pytestmark = [
    pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shipped MNIST"),
    pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning"),
]

MNIST_LIKE = TrainingProfile(1, (28, 28), mean=0.13, std=0.31)
PHOTOS = TrainingProfile(3, (32, 32), mean=0.47, std=0.25)  # CIFAR-10-like: neither mostly dark nor mostly light


def _train(data: Path, out: Path, *extra: str) -> Path:
    argv = ["train", "--model", "lenet5_modern", "--data", str(data), "--epochs", "1", *extra]
    assert main([*argv, "--no-progress", "--out", str(out), "--seed", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def mnist_test() -> torch.Tensor:
    return load_dataset(MNIST).test.images


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory) -> Path:
    return _train(MNIST, tmp_path_factory.mktemp("hints") / "run", "--train-samples", "200")


@pytest.fixture(scope="module")
def colour_run(tmp_path_factory) -> Path:
    """A 3-channel run on 40 small colour images (red- or blue-tinted noise)."""
    root = tmp_path_factory.mktemp("colour")
    rng = np.random.default_rng(0)
    for channel, name in ((0, "red"), (2, "blue")):
        (root / "data" / name).mkdir(parents=True)
        for i in range(20):
            pixels = rng.integers(0, 100, (28, 28, 3), dtype=np.uint8)
            pixels[..., channel] += 150
            Image.fromarray(pixels).save(root / "data" / name / f"{i}.png")
    return _train(root / "data", root / "run")


@pytest.fixture(scope="module")
def images(tmp_path_factory, mnist_test) -> dict[str, Path]:
    """A real test digit, the same digit inverted, shrunk and enlarged, a colour photo-like image, a blank one."""
    folder = tmp_path_factory.mktemp("inputs")
    digit = mnist_test[0, 0].numpy()
    y, x = np.mgrid[0:40, 0:40]
    gradient = np.stack([x * 6, y * 6, (x + y) * 3], axis=-1).astype(np.uint8)  # every pixel in colour
    arrays = {
        "digit.png": digit,
        "inverted.png": 255 - digit,
        "photo.jpg": gradient,
        "blank.png": np.full((28, 28), 250, np.uint8),
        "big.png": np.asarray(Image.fromarray(digit).resize((224, 224))),
        "tiny.png": np.asarray(Image.fromarray(digit).resize((6, 6))),
        "grey_as_rgb.jpg": np.stack([digit] * 3, axis=-1),
    }
    paths = {}
    for name, array in arrays.items():
        paths[name] = folder / name
        Image.fromarray(array).save(paths[name], **({"quality": 95} if name.endswith(".jpg") else {}))
    return paths


def _training_mean(run_dir: Path) -> float:
    return json.loads((run_dir / "run.json").read_text())["normalization"]["mean"][0]


def _predict(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["predict", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- the command line: table, --json, --csv ------------------------------------------------------------------


def test_table_shows_one_hint_line_under_each_odd_image_and_none_for_a_digit(grey_run, images, capsys):
    names = ["digit.png", "inverted.png", "photo.jpg", "blank.png"]
    code, out, err = _predict([str(grey_run), *(str(images[n]) for n in names), "--top-k", "1"], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines if not line.startswith(" ")] == [str(images[n]) for n in names]
    inverted_mean = float((255 - np.asarray(Image.open(images["digit.png"]), np.float64)).mean() / 255)
    assert lines[1].startswith(str(images["inverted.png"]))  # the digit's row has no hint line under it
    assert lines[2] == (
        f"  hint: inverted polarity? this image is mostly light (mean {inverted_mean:.2f}), "
        f"the training images are mostly dark (mean {_training_mean(grey_run):.2f})"
    )
    assert (
        lines[4]
        == "  hint: colour image? the file is in colour, the model takes grey images (it was converted to grey)"
    )
    assert (
        lines[6] == "  hint: blank image? its pixels are nearly all one value (std 0.000, the training images' is 0.31)"
    )
    assert len(lines) == 7


def test_json_carries_a_hints_list_for_every_image(grey_run, images, capsys):
    names = ["digit.png", "inverted.png", "photo.jpg", "blank.png", "big.png", "tiny.png", "grey_as_rgb.jpg"]
    code, out, _ = _predict([str(grey_run), *(str(images[n]) for n in names), "--json"], capsys)
    assert code == 0
    hints = {Path(entry["path"]).name: entry["hints"] for entry in json.loads(out)}
    assert hints["digit.png"] == [] and hints["grey_as_rgb.jpg"] == []  # grey stored as RGB is still grey
    assert [h.split("?")[0] for h in hints["inverted.png"]] == ["inverted polarity"]
    assert [h.split("?")[0] for h in hints["photo.jpg"]] == ["colour image"]
    assert hints["blank.png"] == [  # a blank image has no foreground: no polarity hint besides
        "blank image? its pixels are nearly all one value (std 0.000, the training images' is 0.31)"
    ]
    assert hints["big.png"] == ["large image? this image is 224x224, shrunk 8x to the model's 28x28"]
    assert hints["tiny.png"] == ["small image? this image is 6x6, enlarged 4.67x to the model's 28x28"]


def test_csv_has_a_hints_column_on_every_row_of_the_image(grey_run, images, capsys):
    code, out, _ = _predict([str(grey_run), str(images["digit.png"]), str(images["inverted.png"]), "--csv"], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0]) == ["path", "rank", "label", "probability", "hints"]
    assert [row["hints"] for row in rows[:3]] == ["", "", ""]
    assert len(rows) == 6 and all(row["hints"].startswith("inverted polarity? ") for row in rows[3:])


def test_a_grey_image_for_a_colour_model(colour_run, images, capsys):
    code, out, _ = _predict(
        [str(colour_run), str(images["digit.png"]), str(images["grey_as_rgb.jpg"]), "--json"], capsys
    )
    assert code == 0
    grey = "grey image? the file has no colour, the model was trained on colour images"
    assert [entry["hints"] for entry in json.loads(out)] == [[grey], [grey]]
    code, out, _ = _predict([str(colour_run), str(images["photo.jpg"]), "--json"], capsys)
    assert json.loads(out)[0]["hints"] == []


def test_hints_go_with_bad_files_error_lines(grey_run, images, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    code, out, err = _predict([str(grey_run), str(broken), str(images["inverted.png"])], capsys)
    assert code == 1
    assert err.splitlines() == [f"cnnlab: error: {broken}: cannot decode image ({err.split('(', 1)[1].strip()}"]
    assert out.splitlines()[0].startswith(str(images["inverted.png"]))
    assert out.splitlines()[1].startswith("  hint: inverted polarity? ")


# -- predictions unchanged -----------------------------------------------------------------------------------


def test_a_colour_file_is_predicted_exactly_as_the_grey_decode_gives_it(grey_run, images):
    """The colour check decodes at 3 channels and converts to grey: the model must see the same bytes as ever."""
    run = load_run(grey_run, "best", device=torch.device("cpu"))
    inputs = [str(images[name]) for name in ("photo.jpg", "digit.png", "big.png")]
    together = predict_files(run, inputs, top_k=3)
    for path, prediction in zip(inputs, together):
        indices, values = run.task.predict(run.model, run.preprocess, read_image(Path(path), 1, (28, 28))[None], 3)
        assert prediction.labels == [run.classes[i] for i in indices[0]]
        # The same bytes reach the model; a batch of 3 against a batch of 1 may pick another conv kernel,
        # whose float sums differ in the 8th digit (measured 7e-9), so the probabilities agree to 1e-6.
        assert prediction.probabilities == pytest.approx(list(values[0]), abs=1e-6)
        alone = predict_files(run, [path], top_k=3)[0]
        assert alone.labels == prediction.labels
        assert alone.probabilities == pytest.approx(prediction.probabilities, abs=1e-6)


def test_no_hint_on_any_mnist_test_digit(mnist_test, grey_run):
    training = TrainingProfile.of([1, 28, 28], json.loads((grey_run / "run.json").read_text())["normalization"])
    stats = measure(mnist_test, mnist_test, [(1, (28, 28))] * len(mnist_test))
    assert sum(bool(hints_for(image, training)) for image in stats) == 0
    inverted = 255 - mnist_test
    flagged = sum(bool(hints_for(image, training)) for image in measure(inverted, inverted, [None] * len(inverted)))
    assert flagged == len(mnist_test) == 10_000


# -- the rules, on statistics ---------------------------------------------------------------------------------


def _stats(mean: float = 0.2, std: float = 0.3, spread: float | None = None, channels=1, size=(28, 28)) -> ImageStats:
    return ImageStats(mean, std, spread, channels, size)


def test_polarity_needs_a_mostly_dark_or_light_training_set():
    light_trained = TrainingProfile(1, (28, 28), mean=0.85, std=0.2)
    assert hints_for(_stats(mean=0.15), light_trained) == [
        "inverted polarity? this image is mostly dark (mean 0.15), the training images are mostly light (mean 0.85)"
    ]
    assert hints_for(_stats(mean=0.95, channels=3, spread=0.2), PHOTOS) == []  # photos have either polarity
    assert hints_for(_stats(mean=0.49), MNIST_LIKE) == []  # past mid-grey only
    assert hints_for(_stats(mean=0.55), MNIST_LIKE)[0].startswith("inverted polarity? ")


def test_resize_by_more_than_4x_on_either_axis():
    assert hints_for(_stats(size=(112, 112)), MNIST_LIKE) == []  # 4x exactly is fine
    assert hints_for(_stats(size=(28, 150)), MNIST_LIKE) == [
        "large image? this image is 28x150, shrunk 5.36x to the model's 28x28"
    ]


def test_colour_and_grey_thresholds():
    assert hints_for(_stats(channels=3, spread=0.03), MNIST_LIKE) == []  # faint tint of a scan: not a colour photo
    assert hints_for(_stats(channels=3, spread=0.2), MNIST_LIKE)[0].startswith("colour image? ")
    assert hints_for(_stats(channels=3, spread=0.05), PHOTOS) == []  # a dull photo is still in colour
    assert hints_for(_stats(channels=3, spread=0.001), PHOTOS)[0].startswith("grey image? ")
    assert hints_for(_stats(channels=None, size=None), MNIST_LIKE) == []  # header unreadable: pixel hints only


def test_normalisation_outside_unit_range_gives_no_polarity_hint():
    sixteen_bit = TrainingProfile.of([1, 28, 28], {"mean": [8000.0], "std": [3000.0]})
    assert (sixteen_bit.mean, sixteen_bit.std) == (None, None)
    assert hints_for(_stats(mean=0.9), sixteen_bit) == []
    assert hints_for(_stats(std=0.001), sixteen_bit) == ["blank image? its pixels are nearly all one value (std 0.001)"]
    assert TrainingProfile.of([3, 32, 32], {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.2, 0.2]}).mean == pytest.approx(0.5)
