"""The command-line contract: train -> evaluate -> predict -> export on a tiny real MNIST run."""

import json

import numpy as np
import pytest
from PIL import Image

from cnnlab.cli import main
from cnnlab.data import load_dataset


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(
        [
            "train",
            "--model",
            "lenet5_modern",
            "--data",
            "data/mnist",
            "--train-samples",
            "2000",
            "--epochs",
            "2",
            "--batch-size",
            "64",
            "--optimizer.name",
            "adam",
            "--optimizer.lr",
            "0.003",
            "--schedule.name",
            "none",  # the old default, pinned: the resume test extends the run, which one-cycle refuses
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    return out


def test_train_prints_test_accuracy_last_and_writes_results(run_dir, capsys):
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results) >= {"test", "best_epoch", "epochs_run", "train_seconds"}
    assert results["epochs_run"] == 2 and results["test"]["accuracy"] > 0.85


def test_train_stdout_contract(tmp_path, capsys):
    out = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--model",
                "lenet5_modern",
                "--data",
                "data/mnist",
                "--train-samples",
                "300",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test accuracy: ") and 0 <= float(last.split(": ")[1]) <= 1
    # a second run into the same folder does not overwrite it
    assert (
        main(
            [
                "train",
                "--model",
                "lenet5_modern",
                "--data",
                "data/mnist",
                "--train-samples",
                "300",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "r-2" / "results.json").is_file()


def test_evaluate_writes_json_and_png_matching_results(run_dir, capsys):
    assert main(["evaluate", str(run_dir)]) == 0
    out = capsys.readouterr().out
    evaluation = json.loads((run_dir / "evaluation_test.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    assert evaluation["accuracy"] == pytest.approx(results["test"]["accuracy"])
    assert out.strip().splitlines()[-1] == f"test accuracy: {evaluation['accuracy']:.4f}"
    assert (run_dir / "confusion_matrix_test.png").stat().st_size > 5000
    assert sum(map(sum, evaluation["confusion_matrix"])) == 10000


def test_predict_table_json_csv(run_dir, tmp_path, capsys):
    test = load_dataset("data/mnist").test
    folder = tmp_path / "digits"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(test.images[i, 0].numpy()).save(folder / f"{i}_label{int(test.labels[i])}.png")
    assert main(["predict", str(run_dir), str(folder), "--json", "--top-k", "2"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == 6 and all(len(p["top"]) == 2 for p in predictions)
    assert all(abs(sum(t["probability"] for t in p["top"])) <= 1.0 + 1e-6 for p in predictions)
    correct = sum(p["top"][0]["label"] == p["path"].split("label")[1][0] for p in predictions)
    assert correct >= 5
    assert main(["predict", str(run_dir), str(folder / "0_label7.png"), "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "path,rank,label,probability,hints" and len(lines) == 4


def test_predict_bad_image_is_one_line_error(run_dir, tmp_path, capsys):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert main(["predict", str(run_dir), str(bad)]) == 1
    err = capsys.readouterr().err.strip()
    assert "broken.png" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_is_verified(run_dir, fmt, capsys):
    assert main(["export", str(run_dir), "--format", fmt]) == 0
    meta = json.loads((run_dir / f"model.{'onnx' if fmt == 'onnx' else 'pt'}.json").read_text())
    assert meta["max_abs_difference"] < 1e-4
    assert meta["classes"] == [str(i) for i in range(10)]


def test_onnx_model_agrees_with_eager_on_real_digits(run_dir):
    import onnxruntime
    import torch

    from cnnlab.runs import load_run

    main(["export", str(run_dir), "--format", "onnx", "--dynamic-batch"])
    run = load_run(run_dir)
    images = load_dataset("data/mnist").test.images[:64]
    with torch.inference_mode():
        eager = run.model(run.preprocess(images)).numpy()
    session = onnxruntime.InferenceSession(str(run_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(["logits"], {"images": images.numpy()})[0]
    np.testing.assert_allclose(exported, eager, atol=1e-4)


def test_resume_continues_a_run(run_dir, capsys):
    assert main(["train", "--resume", str(run_dir), "--epochs", "3", "--no-progress"]) == 0
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--model", "lenet5", "--data", "no/such/folder"], "no/such/folder"),
        (["train", "--model", "lenet6", "--data", "data/mnist"], "unknown model 'lenet6'"),
        (["train", "--data", "data/mnist", "--epochs", "x"], "config field 'epochs'"),
        (["evaluate", "no/such/run"], "no/such/run: run folder not found"),
        (["train", "--resume", "no/such/run"], "no/such/run"),
    ],
)
def test_bad_input_is_one_line_error(argv, message, capsys):
    assert main(argv) != 0
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
