"""export_run and `cnnlab export` on one tiny trained run per task: files, metadata, parity, and the errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from cnnlab.cli import main
from cnnlab.errors import CnnlabError, ConfigError
from cnnlab.export import export_run, exporters, onnx_session
from cnnlab.runs import load_run

TASK_RUNS = ["classification", "medical", "medical3d", "detection", "faces", "text"]
OUTPUTS = {"detection": ["boxes", "scores"], "faces": ["embedding"]}
METADATA_KEYS = {
    "format", "task", "model", "opset", "exporter", "inputs", "outputs", "classes", "preprocessing", "task_options",
    "max_abs_difference", "source_run", "checkpoint_epoch", "parity",
}  # fmt: skip


def _inputs(run, batch: int, longer: int = 0) -> tuple[torch.Tensor, ...]:
    graph = exporters.run_graph(run, dynamic_batch=True)
    return graph.sample(batch, longer=longer, seed=7)


def _eager(run, inputs) -> list[np.ndarray]:
    module = run.task.inference_module(run.model, run.preprocess, run.meta)
    with torch.inference_mode():
        out = module(*inputs)
    return [t.numpy() for t in out] if isinstance(out, tuple) else [out.numpy()]


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    """name -> ExportResult of the run's ONNX export with a dynamic batch (made once, read by several tests)."""
    folder = tmp_path_factory.mktemp("exported")

    class Exports(dict):
        def __missing__(self, name: str):
            self[name] = result = export_run(runs[name], "onnx", folder / f"{name}.onnx", dynamic_batch=True)
            return result

    return Exports()


@pytest.mark.parametrize("name", TASK_RUNS)
def test_every_task_exports_to_onnx_with_a_dynamic_batch(runs, exported, name) -> None:
    result = exported[name]
    meta = json.loads(result.metadata_path.read_text())
    assert result.metadata_path == result.path.with_name(f"{name}.onnx.json") and METADATA_KEYS <= set(meta)
    assert meta["exporter"] == "dynamo" and meta["opset"] == 18 and meta["max_abs_difference"] <= 1e-4
    names = OUTPUTS.get(name, ["logits"])
    assert [o["name"] for o in meta["outputs"]] == names and all(o["shape"][0] == "batch" for o in meta["outputs"])
    run = load_run(runs[name])
    assert meta["task"] == run.task.name and meta["classes"] == run.classes
    session = onnx_session(result.path, threads=1)
    assert [o.name for o in session.get_outputs()] == names
    assert [i.name for i in session.get_inputs()] == [spec["name"] for spec in meta["inputs"]]
    longer = 20 if name == "text" else 0  # kim_cnn takes sentences longer than training's padded length
    inputs = _inputs(run, 7, longer)
    actual = exporters.run_onnx(result.path, *inputs, session=session)
    assert exporters.max_difference(actual, _eager(run, inputs)) <= 1e-4


def test_exported_logits_are_what_predict_uses(runs, exported) -> None:
    run = load_run(runs["classification"])
    result = exported["classification"]
    images = _inputs(run, 4)[0]
    with torch.inference_mode():
        logits = run.model(run.preprocess(images)).numpy()
    np.testing.assert_allclose(exporters.run_onnx(result.path, images)[0], logits, atol=1e-4)
    meta = json.loads(result.metadata_path.read_text())
    assert meta["preprocessing"]["normalization"] == run.meta["normalization"]
    assert meta["inputs"] == [{"name": "images", "dtype": "uint8", "shape": ["batch", 1, 28, 28]}]


def test_detection_metadata_carries_the_selection_and_boxes_decode_as_predict(runs, tmp_path) -> None:
    from cnnlab.tasks.detection.postprocess import select

    run = load_run(runs["detection"])
    result = export_run(runs["detection"], "torchscript", tmp_path / "m.pt", dynamic_batch=True)
    options = json.loads(result.metadata_path.read_text())["task_options"]
    assert options["image_size"] == 64 and {"conf_threshold", "nms_iou", "max_detections"} <= set(options)
    images = _inputs(run, 3)[0]
    boxes, scores = (torch.from_numpy(a) for a in exporters.run_torchscript(result.path, images))
    selection = run.task.selection()
    predicted = run.task.predict(run.model, run.preprocess, images)
    for mine, theirs in zip(select(boxes, scores, 64, selection), predicted):
        assert torch.allclose(mine["boxes"], theirs["boxes"], atol=1e-4)
        assert torch.equal(mine["labels"], theirs["labels"])


def test_faces_metadata_carries_the_threshold(runs, tmp_path) -> None:
    result = export_run(runs["faces"], "torchscript", tmp_path / "m.pt")
    meta = json.loads(result.metadata_path.read_text())
    assert "threshold" in meta["task_options"] and meta["task_options"]["image_size"] == 32
    assert meta["outputs"] == [{"name": "embedding", "shape": [1, 16]}]


def test_text_export_writes_the_vocabulary_and_a_symbolic_length(runs, tmp_path) -> None:
    result = export_run(runs["text"], "torchscript", tmp_path / "m.pt", dynamic_batch=True)
    meta = json.loads(result.metadata_path.read_text())
    assert meta["inputs"] == [{"name": "tokens", "dtype": "int64", "shape": ["batch", "length"]}]
    vocabulary = json.loads((tmp_path / meta["preprocessing"]["vocabulary_file"]).read_text())
    run = load_run(runs["text"])
    assert vocabulary["tokens"] == run.preprocess.vocabulary.tokens and meta["preprocessing"]["pad_id"] == 0
    ids = run.preprocess.encode(["a sentence much longer than any of the training ones " * 6])
    long = torch.cat([ids, torch.zeros(1, 40, dtype=torch.long)], dim=1)
    np.testing.assert_allclose(exporters.run_torchscript(result.path, long), _eager(run, (long,))[0], atol=1e-4)


def test_without_dynamic_batch_the_graph_takes_one_item(runs, tmp_path) -> None:
    result = export_run(runs["medical3d"], "onnx", tmp_path / "m.onnx")
    meta = json.loads(result.metadata_path.read_text())
    assert meta["inputs"][0]["shape"] == [1, 1, 12, 12, 12] and meta["preprocessing"]["kind"] == "volume"
    session = onnx_session(result.path)
    assert session.get_inputs()[0].shape == [1, 1, 12, 12, 12]


def test_binary_metadata_carries_the_operating_point(runs, tmp_path) -> None:
    result = export_run(runs["medical"], "torchscript", tmp_path / "m.pt")
    meta = json.loads(result.metadata_path.read_text())
    assert meta["preprocessing"]["label_mode"] == "binary" and "calibration" in meta["task_options"]


def test_cli_prints_what_it_wrote_the_outputs_and_the_parity(runs, tmp_path, capsys) -> None:
    out = tmp_path / "det.onnx"
    assert main(["export", str(runs["detection"]), "--dynamic-batch", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"exported onnx (dynamo): {out}"
    assert lines[1] == "inputs: images uint8 batch×1×64×64; outputs: boxes batch×320×4, scores batch×320×10"
    assert lines[2].startswith("verified against eager PyTorch on a batch of 5: max |difference| = ")
    assert lines[3] == f"metadata: {out}.json" and out.is_file()


def test_cli_torchscript_and_an_old_opset(runs, tmp_path, capsys) -> None:
    assert main(["export", str(runs["text"]), "--format", "torchscript", "--out", str(tmp_path / "t.pt")]) == 0
    assert capsys.readouterr().out.startswith(f"exported torchscript (torch.jit.trace): {tmp_path / 't.pt'}")
    assert main(["export", str(runs["faces"]), "--opset", "17", "--out", str(tmp_path / "f.onnx")]) == 0
    meta = json.loads((tmp_path / "f.onnx.json").read_text())
    assert meta["exporter"] == "torchscript" and meta["fallback_reason"] == "opset 17 < 18" and meta["opset"] == 17


# -- errors ---------------------------------------------------------------------------------------------------------


class _Eigh(torch.nn.Module):
    """A classifier ending in an eigen-decomposition: an operator ONNX has no conversion for."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.module(images)
        return torch.linalg.eigvalsh(logits[:, :, None] * logits[:, None, :])


@pytest.mark.parametrize(("opset", "operator"), [("18", "aten._linalg_eigh"), ("17", "aten::linalg_eigvalsh")])
def test_an_unexportable_operator_is_one_line_naming_it(runs, tmp_path, monkeypatch, capsys, opset, operator):
    from cnnlab.tasks.classification.task import ClassificationTask

    original = ClassificationTask.inference_module
    monkeypatch.setattr(ClassificationTask, "inference_module", lambda *a: _Eigh(original(*a)))
    out = tmp_path / "m.onnx"
    assert main(["export", str(runs["classification"]), "--opset", opset, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"cnnlab: error: {runs['classification']}: cannot export to ONNX"), err
    assert f"the model uses operator {operator}, which has no ONNX conversion" in err[0], err
    assert captured.out == "" and not out.exists() and not list(tmp_path.iterdir())


def test_a_dynamo_failure_falls_back_and_says_why(runs, tmp_path, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("Unsupported: data-dependent control flow")

    monkeypatch.setattr(exporters, "_export_dynamo", fail)
    result = export_run(runs["faces"], "onnx", tmp_path / "m.onnx", dynamic_batch=True)
    meta = json.loads(result.metadata_path.read_text())
    assert meta["exporter"] == "torchscript" and result.max_abs_difference <= 1e-4
    assert meta["fallback_reason"] == "dynamo exporter failed: RuntimeError: Unsupported: data-dependent control flow"
    with pytest.raises(CnnlabError, match=r": cannot export to ONNX opset 21: RuntimeError: Unsupported: data-depen"):
        export_run(runs["faces"], "onnx", tmp_path / "n.onnx", opset=21)  # no fallback writes opset 21


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"format": "tflite"}, "--format: unknown export format 'tflite'; choose onnx, torchscript"),
        ({"opset": "24"}, "--opset must be a whole number in [7, 23], got '24' (18-23 with the dynamo exporter"),
        ({"opset": "6"}, "--opset must be a whole number in [7, 23], got '6'"),
    ],
)
def test_bad_options_are_config_errors(runs, options, message) -> None:
    with pytest.raises(ConfigError) as error:
        export_run(runs["classification"], **options)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize("package", ["onnx", "onnxruntime", "onnxscript"])
def test_a_missing_export_package_is_the_install_hint(monkeypatch, tmp_path, capsys, package) -> None:
    monkeypatch.setitem(sys.modules, package, None)
    assert main(["export", str(tmp_path / "no-run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"cnnlab: error: export --format onnx needs the {package} package; install it with: "
                   "pip install 'cnnlab[export]'"]  # fmt: skip


def test_onnx_session_without_onnxruntime_is_the_install_hint(monkeypatch, tmp_path) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    hint = r"^running an ONNX model needs the onnxruntime package; .*cnnlab\[export\]'$"
    with pytest.raises(CnnlabError, match=hint):
        onnx_session(tmp_path / "m.onnx")


def test_onnx_session_on_a_broken_file_is_one_line(tmp_path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"not a model")
    with pytest.raises(CnnlabError, match=r"m.onnx: onnxruntime cannot load the model \("):
        onnx_session(tmp_path / "m.onnx")
