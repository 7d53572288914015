"""`predict` carries on past bad files: good files get predictions, each bad one an error line, exit 1 if any failed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset
from cnnlab.errors import ConfigError
from cnnlab.evaluate.predict import predict_files, read_image
from cnnlab.runs import load_run
from tests.badinput.cases import MNIST
from tests.data.test_bad_data import png_bomb

pytestmark = [
    pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shipped MNIST"),
    pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    argv = ["train", "--model", "lenet5_modern", "--data", str(MNIST), "--train-samples", "200", "--epochs", "1"]
    assert main([*argv, "--no-progress", "--out", str(out), "--seed", "0"]) == 0
    return out


@pytest.fixture
def images(tmp_path) -> Path:
    """Three good 28x28 digits-like images, one corrupt PNG, one empty file, one text file in a folder."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):  # a bright stroke on a dark ground, as MNIST digits are (a constant image gets a hint)
        digit = np.zeros((28, 28), np.uint8)
        digit[6:22, 10 + 3 * i : 14 + 3 * i] = 120 + 60 * i
        Image.fromarray(digit).save(folder / f"good{i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    (folder / "empty.jpg").write_bytes(b"")
    return folder


def _run(argv: list[str], capsys) -> tuple[int, str, list[str]]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.strip()]


def test_good_files_are_predicted_past_bad_ones(run_dir, images, capsys):
    argv = ["predict", str(run_dir), str(images / "good0.png"), str(images / "broken.png"), str(images / "good1.png")]
    code, out, err = _run(
        [*argv, str(images / "gone.png"), str(images / "empty.jpg"), str(images / "good2.png")], capsys
    )
    assert code == 1
    predicted = [line.split()[0] for line in out.splitlines()]
    assert predicted == [str(images / f"good{i}.png") for i in range(3)]
    assert len(err) == 3
    assert err[0].startswith(f"cnnlab: error: {images / 'broken.png'}: cannot decode image (")
    assert err[1] == f"cnnlab: error: {images / 'gone.png'}: no such file or folder"
    assert err[2].startswith(f"cnnlab: error: {images / 'empty.jpg'}: image file is empty")


def test_all_good_exits_0_and_prints_nothing_on_stderr(run_dir, images, capsys):
    code, out, err = _run(["predict", str(run_dir), str(images / "good0.png"), str(images / "good1.png")], capsys)
    assert (code, err) == (0, [])
    assert len(out.splitlines()) == 2 and len(out.splitlines()[0].split()) == 1 + 2 * 3  # path + top-3 pairs


def test_a_folder_input_with_bad_and_other_files(run_dir, images, capsys):
    (images / "notes.txt").write_text("not an image")
    (images / ".hidden.png").write_bytes(b"not even a png")
    code, out, err = _run(["predict", str(run_dir), str(images), "--json"], capsys)
    assert code == 1
    assert [entry["path"] for entry in json.loads(out)] == [str(images / f"good{i}.png") for i in range(3)]
    assert err[0] == f"cnnlab: note: 1 file without an image extension skipped ({images / 'notes.txt'})"
    assert [line.split(": ")[2] for line in err[1:]] == [str(images / "broken.png"), str(images / "empty.jpg")]


def test_a_bomb_among_good_files_is_refused_alone(run_dir, images, capsys):
    bomb = png_bomb(images.parent / "bomb.png")
    code, out, err = _run(["predict", str(run_dir), str(bomb), str(images / "good0.png"), "--csv"], capsys)
    assert code == 1
    assert out.splitlines()[0] == "path,rank,label,probability,hints" and len(out.splitlines()) == 1 + 3
    assert len(err) == 1 and "bomb.png: image is 20000x20000" in err[0]


def test_only_bad_files_print_no_table(run_dir, images, capsys):
    code, out, err = _run(["predict", str(run_dir), str(images / "broken.png"), str(images / "nothing")], capsys)
    assert (code, out) == (1, "")
    assert len(err) == 2


def test_top_k_is_validated_and_clamped_with_a_note(run_dir, images, capsys):
    code, out, err = _run(["predict", str(run_dir), str(images / "good0.png"), "--top-k", "0"], capsys)
    assert (code, out) == (1, "")
    assert err == ["cnnlab: error: --top-k must be >= 1 (labels per image), got 0"]
    code, out, err = _run(["predict", str(run_dir), str(images / "good0.png"), "--top-k", "25"], capsys)
    assert code == 0
    assert err == ["cnnlab: note: --top-k 25 is more than the run's 10 classes; showing 10"]
    assert len(out.split()) == 1 + 2 * 10


def test_predict_files_keeps_input_order_and_marks_failures(run_dir, images):
    run = load_run(run_dir, "best", device=torch.device("cpu"))
    inputs = [str(images / "good0.png"), str(images / "broken.png"), str(images / "good1.png")]
    predictions = predict_files(run, inputs, top_k=2, batch_size=2)
    assert [p.path for p in predictions] == inputs
    assert [p.error is None for p in predictions] == [True, False, True]
    assert predictions[1].labels == [] and "cannot decode image" in predictions[1].error
    assert all(len(p.labels) == 2 and sum(p.probabilities) <= 1 + 1e-6 for p in predictions if p.error is None)
    alone = predict_files(run, [inputs[2]], top_k=2)[0]
    assert alone.labels == predictions[2].labels and alone.probabilities == pytest.approx(predictions[2].probabilities)
    with pytest.raises(ConfigError, match="top_k must be a whole number >= 1, got 0"):
        predict_files(run, inputs, top_k=0)


def test_predict_decodes_a_16_bit_png_as_training_does(tmp_path):
    """The same file gives the same tensor in training and in predict (a 16-bit PNG once differed by 254 levels)."""
    deep = (np.arange(28 * 28, dtype=np.uint16).reshape(28, 28) * 83).astype(np.uint16)
    for name in ("a", "b"):
        (tmp_path / "set" / name).mkdir(parents=True)
        Image.fromarray(deep).save(tmp_path / "set" / name / "deep.png")
    trained = load_dataset(tmp_path / "set", val_split=0).train.images[0]
    predicted = read_image(tmp_path / "set" / "a" / "deep.png", 1, (28, 28))
    assert torch.equal(trained, predicted)
    assert int(predicted.max()) == int(deep.max()) >> 8 and int(predicted.max()) > 200
