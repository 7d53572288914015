"""`cnnlab summary` and `cnnlab models` through the real entry point."""

from __future__ import annotations

import json
import re
import time

import pytest

from cnnlab.cli import main


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_summary_resnet50(capsys):
    code, out, _ = run_cli(capsys, "summary", "resnet50", "--input", "3x224x224")
    assert code == 0
    assert "25,557,032" in out
    gmacs = float(re.search(r"Total MACs:\s+([\d.]+) G", out).group(1))
    assert gmacs == pytest.approx(4.09, abs=0.01)
    assert "He et al. 2015" in out  # the paper line
    assert "layer4 (Sequential)" in out and "fc (Linear)" in out


def test_summary_lenet5_has_the_papers_60000_parameters(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5", "--input", "1x32x32")
    assert code == 0
    assert "60,000" in out
    assert re.search(r"c5 \(Conv2d\).*\b32\s+4\b", out)  # C5 sees all 32x32 pixels, jump 4


def test_summary_defaults_to_the_registry_input(capsys):
    code, out, _ = run_cli(capsys, "summary", "resnet20")
    assert code == 0
    assert "input 3x32x32" in out and "269,722" in out


def test_summary_options_change_the_model(capsys):
    code, out, _ = run_cli(capsys, "summary", "resnet18", "--input", "1x64x64", "--num-classes", "7", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [1, 64, 64]
    assert data["rows"][0]["output_shape"] == [1, 64, 32, 32]
    assert data["rows"][-1]["output_shape"] == [1, 7]


@pytest.mark.parametrize("bad", ["3x224", "3xax224", "0x224x224"])
def test_bad_input_is_a_one_line_error(capsys, bad):
    code, out, err = run_cli(capsys, "summary", "resnet50", "--input", bad)
    assert code == 1
    assert out == ""
    assert err.startswith("cnnlab: error: input shape") and err.count("\n") == 1


def test_unknown_model_is_a_one_line_error(capsys):
    code, _, err = run_cli(capsys, "summary", "resnet5000")
    assert code == 1 and "unknown model 'resnet5000'" in err and err.count("\n") == 1


def test_summary_json(capsys):
    code, out, _ = run_cli(capsys, "summary", "lenet5_modern", "--batch-size", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["batch_size"] == 2
    assert data["totals"]["params"] == 61_706
    assert data["totals"]["macs"] == 2 * 416_520
    assert data["rows"][0]["receptive_field"] == [5, 5]


def test_summary_of_a_layer_list(capsys, tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "input: 1x28x28\n"
        "layers:\n"
        "  - conv: {out: 4, kernel: 3}\n"
        "  - act: relu\n"
        "  - pool: {type: max, size: 2}\n"
        "  - flatten\n"
        "  - fc: classes\n"
    )
    code, out, _ = run_cli(capsys, "summary", str(path), "--num-classes", "5", "--json")
    assert code == 0
    data = json.loads(out)
    conv_params, fc_params = 4 * 9 + 4, 4 * 13 * 13 * 5 + 5
    assert data["totals"]["params"] == conv_params + fc_params
    assert data["totals"]["macs"] == 4 * 26 * 26 * 9 + 4 * 13 * 13 * 5
    assert data["rows"][-1]["output_shape"] == [1, 5]


def test_missing_layer_file_is_a_one_line_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, "summary", str(tmp_path / "nope.yaml"))
    assert code == 1 and "nope.yaml" in err and err.count("\n") == 1


def test_models_lists_the_zoo_quickly(capsys):
    from cnnlab.models import list_models

    start = time.perf_counter()
    code, out, _ = run_cli(capsys, "models", "--json")
    elapsed = time.perf_counter() - start
    assert code == 0
    records = {record["name"]: record for record in json.loads(out)}
    assert sorted(records) == sorted(list_models())
    assert records["resnet50"]["params"] == 25_557_032
    assert records["resnet50"]["macs"] == pytest.approx(4.09e9, rel=0.005)
    assert records["lenet5"]["default_input"] == [1, 32, 32]
    assert all(record["paper"] for record in records.values())
    assert elapsed < 15


def test_models_table(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("vgg16 "))
    assert "138,357,544" in line and "15.47 G" in line and "3x224x224" in line and "Simonyan" in line


def test_summary_kim_cnn_multichannel_shows_trainable_and_frozen(capsys):
    code, out, _ = run_cli(
        capsys, "summary", "kim_cnn", "--model-options", "variant=multichannel,vocab_size=1000,embedding_dim=50"
    )
    assert code == 0
    assert "input 56 tokens" in out and "Kim 2014" in out
    convs = sum(h * 100 * 100 + 100 for h in (3, 4, 5))
    assert f"Trainable params: {1000 * 50 + convs + 300 * 2 + 2:,}" in out
    assert f"Frozen params:    {1000 * 50:,}" in out
    assert "int64 token ids" in out and "Frozen" in out.splitlines()[3]


def test_summary_kim_cnn_token_input_and_receptive_field(capsys):
    code, out, _ = run_cli(capsys, "summary", "kim_cnn", "--input", "20", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [20] and data["input_dtype"] == "int64"
    conv5 = next(row for row in data["rows"] if row["name"] == "convs.2")
    assert conv5["output_shape"] == [1, 100, 24] and conv5["receptive_field"] == [5]


def test_summary_kim_layer_list_example(capsys):
    from pathlib import Path

    import cnnlab

    path = Path(cnnlab.__file__).parent / "examples" / "kim_cnn_layers.yaml"
    code, out, _ = run_cli(capsys, "summary", str(path))
    assert code == 0
    assert "input 56 tokens" in out and "Total params:       6,360,902" in out
    code, out, _ = run_cli(capsys, "summary", str(path), "--model-options", "vocab_size=100")
    assert code == 0 and f"Total params:       {100 * 300 + 360_902:,}" in out


def test_summary_model_options_cannot_set_num_classes(capsys):
    code, _, err = run_cli(capsys, "summary", "kim_cnn", "--model-options", "num_classes=3")
    assert code == 1 and "--num-classes" in err


def test_models_table_shows_text_inputs_as_tokens(capsys):
    code, out, _ = run_cli(capsys, "models")
    assert code == 0
    line = next(line for line in out.splitlines() if line.startswith("kim_cnn "))
    assert "56 tokens" in line and "6,360,902" in line
