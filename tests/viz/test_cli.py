"""`cnnlab explain`, `cnnlab filters`, `cnnlab report`: exit codes, files, and one-line errors."""

from __future__ import annotations

import pytest
from PIL import Image

from cnnlab.cli import main


def test_explain_writes_gradcam_and_feature_maps(tiny_run, digit_png, tmp_path, capsys):
    assert main(["explain", str(tiny_run), str(digit_png), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("prediction: ")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["seven_features_stage1.png", "seven_features_stage2.png", "seven_gradcam.png"]
    for name in names:
        assert str(tmp_path / name) in out
    assert "layer features.4" in out
    with Image.open(tmp_path / "seven_gradcam.png") as panel:
        assert panel.size == (2 * 168 + 12, 168 + 8)  # 28x28 enlarged 6x to reach 160 px, side by side


def test_explain_a_given_class(tiny_run, digit_png, tmp_path, capsys):
    assert main(["explain", str(tiny_run), str(digit_png), "--class", "3", "--out", str(tmp_path)]) == 0
    assert "(class 3, layer" in capsys.readouterr().out


def test_filters(tiny_run, tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["filters", str(tiny_run), "--out", str(out)]) == 0
    assert "6 filters of 1x5x5" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.size == (6 * 68 + 3, 71)  # 5x5 kernels enlarged 13x to reach 64 px, 3 px gaps


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "{missing}", "{digit}"], "run folder not found"),
        (["filters", "{missing}"], "run folder not found"),
        (["report", "{missing}"], "run folder not found"),
        (["explain", "{run}", "{tmp}/nothing.png"], "no such image file"),
        (["explain", "{run}", "{tmp}/text.png"], "cannot decode image (not a known image format)"),
        (["explain", "{run}", "{digit}", "--class", "banana"], "class 'banana' is not one of the run's classes"),
        (["explain", "{run}", "{digit}", "--layer", "features.9"], "layer 'features.9' not found"),
    ],
)
def test_bad_input_is_a_one_line_error(args, message, tiny_run, digit_png, tmp_path, capsys):
    (tmp_path / "text.png").write_text("not a png")
    values = {"missing": str(tmp_path / "no_run"), "run": str(tiny_run), "digit": str(digit_png), "tmp": str(tmp_path)}
    assert main([a.format(**values) for a in args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cnnlab: error: ") and message in err
