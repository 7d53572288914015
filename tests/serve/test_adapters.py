"""The task adapters: the answer to an upload equals the CLI's for the same file, the onnx backend equals the torch
one, a batch is one forward pass, and every bad input is a one-line DataError (InputTooLarge over the limits)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.errors import ConfigError, DataError, RunError
from cnnlab.serve.adapters import InputTooLarge, load_adapter
from tests.serve.samples import png, sample_image_bytes, sample_text

IMAGE_RUNS = ["classification_run", "medical_run", "multilabel_run", "detection_run", "faces_run"]
ALL_RUNS = [*IMAGE_RUNS, "text_run"]


def _files(run: Path, folder: Path, count: int = 3) -> list[Path]:
    paths = []
    for index in range(count):
        path = folder / f"sample{index}.png"
        path.write_bytes(sample_image_bytes(run, index))
        paths.append(path)
    return paths


def _cli_json(capsys, argv: list[str]):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _close_lists(mine, theirs, tolerance: float) -> None:
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        assert a == pytest.approx(b, abs=tolerance)


# -- same answers as the CLI ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["classification_run", "medical_run", "multilabel_run"])
def test_classification_answers_equal_cnnlab_predict(fixture, request, tmp_path, capsys):
    run = request.getfixturevalue(fixture)
    files = _files(run, tmp_path)
    expected = _cli_json(capsys, ["predict", str(run), *map(str, files), "--top-k", "3", "--json"])
    adapter = load_adapter(run, top_k=3)
    answers = adapter.predict([adapter.prepare(path.read_bytes(), path.name) for path in files])
    assert len(answers) == len(expected) == 3
    for answer, cli in zip(answers, expected):
        assert answer["task"] == "classification" and answer["hints"] == cli["hints"]
        assert [t["label"] for t in answer["top"]] == [t["label"] for t in cli["top"]]
        _close_lists([t["probability"] for t in answer["top"]], [t["probability"] for t in cli["top"]], 1e-6)


def test_detection_answers_equal_cnnlab_detect_predict(detection_run, tmp_path, capsys):
    files = _files(detection_run, tmp_path)
    expected = _cli_json(capsys, ["detect", "predict", str(detection_run), *map(str, files), "--json"])["images"]
    adapter = load_adapter(detection_run)
    answers = adapter.predict([adapter.prepare(path.read_bytes(), "upload") for path in files])
    assert sum(len(a["detections"]) for a in answers) > 0  # conf 0.01: there is something to compare
    for answer, cli in zip(answers, expected):
        assert answer["image"] == {"width": cli["width"], "height": cli["height"]} == {"width": 80, "height": 72}
        assert [d["label"] for d in answer["detections"]] == [d["class"] for d in cli["detections"]]
        _close_lists([d["score"] for d in answer["detections"]], [d["score"] for d in cli["detections"]], 1e-4)
        for mine, theirs in zip(answer["detections"], cli["detections"]):
            _close_lists(mine["box"], theirs["box"], 0.1)


def test_faces_answers_equal_cnnlab_faces_identify(faces_run, faces_gallery, tmp_path, capsys):
    files = _files(faces_run, tmp_path, count=8)  # 7 enrolled people and one stranger
    argv = ["faces", "identify", "--run", str(faces_run), "--gallery", str(faces_gallery), "--top", "3", "--json"]
    expected = _cli_json(capsys, [*argv, *map(str, files)])
    adapter = load_adapter(faces_run, gallery=faces_gallery, top_k=3)
    answers = adapter.predict([adapter.prepare(path.read_bytes()) for path in files])
    for answer, cli in zip(answers, expected):
        assert answer["face"] == {"box": None}  # a crop run: the whole image is the face
        assert [m["name"] for m in answer["matches"]] == [m["name"] for m in cli["matches"]]
        _close_lists([m["score"] for m in answer["matches"]], [m["score"] for m in cli["matches"]], 1e-4)
        assert answer["identity"] == (None if cli["identity"] == "unknown" else cli["identity"])
        assert answer["threshold"] == cli["threshold"]
    assert answers[0]["identity"] == "person00" and answers[7]["identity"] != "person07"


def test_text_answers_equal_cnnlab_text_predict(text_run, capsys):
    sentences = [sample_text(i) for i in range(5)]  # different lengths: the batch is cut to its longest
    expected = _cli_json(capsys, ["text", "predict", str(text_run), *sentences, "--top", "3", "--json"])
    adapter = load_adapter(text_run, top_k=3)
    answers = adapter.predict([adapter.prepare(sentence) for sentence in sentences])
    for answer, cli in zip(answers, expected):
        assert answer["label"] == cli["label"]
        assert [t["label"] for t in answer["top"]] == [t["label"] for t in cli["top"]]
        _close_lists([t["probability"] for t in answer["top"]], [t["probability"] for t in cli["top"]], 1e-6)


def test_faces_without_a_gallery_answer_the_embedding_enroll_stores(faces_run):
    from cnnlab.evaluate.faces import load_face_run

    path = faces_run.parent / "people" / "person01" / "img0.png"
    adapter = load_adapter(faces_run)
    (answer,) = adapter.predict([adapter.prepare(path.read_bytes())])
    expected, _, _ = load_face_run(faces_run).embed_files([str(path)])
    assert set(answer) == {"task", "face", "embedding"}
    _close_lists(answer["embedding"], expected[0].tolist(), 1e-5)
    assert adapter.metadata()["gallery"] is None and adapter.metadata()["embedding_dim"] == 16


def test_faces_detect_first_and_report_the_face(faces_run, monkeypatch):
    """A run that detects faces crops the upload as `crop_files` does (same detector, margin, resize)."""
    from cnnlab.tasks.faces.data import CropSettings, crop_files
    from cnnlab.tasks.faces.detect import FaceBox

    class Stub:
        def detect(self, image):
            return [FaceBox(4, 6, 20, 22), FaceBox(10, 10, 38, 36)]  # the largest is taken

    class Blank:
        def detect(self, image):
            return []

    adapter = load_adapter(faces_run)
    data = sample_image_bytes(faces_run, 2)
    adapter.detector = Stub()
    item = adapter.prepare(data, "photo.png")
    assert item.box == [10.0, 10.0, 38.0, 36.0]
    monkeypatch.setattr(CropSettings, "detector", lambda self: Stub())
    path = faces_run.parent / "cropped.png"
    path.write_bytes(data)
    settings = CropSettings(adapter.crop.size, adapter.crop.channels, True, adapter.crop.margin)
    crops, _, _ = crop_files([str(path)], settings)
    assert torch.equal(item.image, crops[0])
    assert adapter.predict([item])[0]["face"] == {"box": [10.0, 10.0, 38.0, 36.0]}
    adapter.detector = Blank()
    with pytest.raises(DataError, match="photo.png: no face found"):
        adapter.prepare(data, "photo.png")


# -- backends and batching -----------------------------------------------------------------------------------------


def _inputs(adapter, run: Path) -> list:
    if adapter.input_kind == "text":
        return [adapter.prepare(sample_text(i)) for i in range(5)]
    return [adapter.prepare(sample_image_bytes(run, i)) for i in range(3)]


def _numbers(answer: dict) -> list[float]:
    if "top" in answer:
        return [t["probability"] for t in answer["top"]]
    if "detections" in answer:
        return [v for d in answer["detections"] for v in (d["score"], *d["box"])]
    return answer.get("embedding") or [m["score"] for m in answer["matches"]]


def _labels(answer: dict) -> list[str]:
    if "top" in answer:
        return [t["label"] for t in answer["top"]]
    if "detections" in answer:
        return [d["label"] for d in answer["detections"]]
    return [m["name"] for m in answer.get("matches", [])]


@pytest.mark.parametrize("fixture", ["classification_run", "detection_run", "faces_run", "text_run"])
def test_onnx_backend_answers_as_the_torch_backend(fixture, request, faces_gallery):
    run = request.getfixturevalue(fixture)
    gallery = faces_gallery if fixture == "faces_run" else None
    torch_adapter = load_adapter(run, "torch", gallery=gallery)
    onnx_adapter = load_adapter(run, "onnx", gallery=gallery)
    assert onnx_adapter.metadata()["backend"] == "onnx"
    assert onnx_adapter.metadata()["outputs"] == torch_adapter.metadata()["outputs"]
    items = _inputs(torch_adapter, run)
    for mine, theirs in zip(onnx_adapter.predict(items), torch_adapter.predict(items)):
        assert _labels(mine) == _labels(theirs)
        # 1e-4, plus the answers' own rounding unit (detection boxes are rounded to 0.1 pixel, as the CLI rounds)
        _close_lists(_numbers(mine), _numbers(theirs), 0.1 if "detections" in mine else 2e-4)
    assert list((run / "serve_cache").glob("*.onnx"))  # the export is cached in the run folder
    again = load_adapter(run, "onnx", gallery=gallery)  # and reused
    assert again.backend.path == onnx_adapter.backend.path


@pytest.mark.parametrize("fixture", ALL_RUNS)
def test_a_batch_is_one_forward_pass_with_the_answers_of_single_items(fixture, request):
    run = request.getfixturevalue(fixture)
    adapter = load_adapter(run)
    items = _inputs(adapter, run)
    items = (items * 22)[:64]
    singles = [adapter.predict([item])[0] for item in items[: len(items) // 16]]
    calls = []
    forward = adapter.backend.__call__
    adapter.backend = type("Counting", (), {"__call__": lambda self, x: calls.append(x.shape) or forward(x)})()
    batched = adapter.predict(items)
    assert len(calls) == 1 and calls[0][0] == 64 and len(batched) == 64
    for single, answer in zip(singles, batched):
        assert _labels(single) == _labels(answer)
        # A batch of 64 runs other kernels than a batch of one: float32 sums in another order, ~1e-6 apart.
        _close_lists(_numbers(single), _numbers(answer), 1e-4 if "detections" in answer else 1e-5)


def test_top_k_is_per_request_and_capped_at_the_classes(classification_run):
    adapter = load_adapter(classification_run, top_k=2)
    item = adapter.prepare(sample_image_bytes(classification_run))
    assert len(adapter.predict([item])[0]["top"]) == 2
    assert len(adapter.predict([item], top_k=50)[0]["top"]) == 10
    with pytest.raises(ConfigError, match="top_k"):
        adapter.predict([item], top_k=0)


def test_metadata_describes_each_task(classification_run, detection_run, text_run, faces_run, faces_gallery):
    meta = load_adapter(classification_run).metadata()
    assert meta["task"] == "classification" and meta["model"] == "lenet5" and meta["backend"] == "torch"
    assert meta["classes"] == [str(d) for d in range(10)] and meta["outputs"] == ["logits"]
    assert meta["input"]["kind"] == "image" and meta["input"]["channels"] == 1 and meta["input"]["size"] == [28, 28]
    detect = load_adapter(detection_run).metadata()
    assert detect["outputs"] == ["boxes", "scores"] and detect["selection"]["conf_threshold"] == 0.01
    text = load_adapter(text_run).metadata()
    assert text["input"]["kind"] == "text" and text["input"]["max_chars"] == 100_000 and text["classes"]
    faces = load_adapter(faces_run, gallery=faces_gallery).metadata()
    assert faces["gallery"]["people"] == 7 and faces["gallery"]["embeddings"] == 21
    assert faces["gallery"]["rule"] == "eer" and -1 <= faces["gallery"]["threshold"] <= 1


# -- bad input -------------------------------------------------------------------------------------------------------


def _png_header(width: int, height: int) -> bytes:
    """A PNG that is all header: IHDR claims width x height (a decompression bomb's opening)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def _jpeg(size=(40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


GOOD = png(torch.full((30, 30), 128, dtype=torch.uint8).numpy())
NOISY = torch.randint(0, 256, (64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).numpy()
NOISY_JPEG = io.BytesIO()
Image.fromarray(NOISY).save(NOISY_JPEG, format="JPEG")
BAD_IMAGES = {
    "empty": (b"", "empty"),
    "not an image": (b"hello, this is text", "not a known image format"),
    "truncated png": (GOOD[: len(GOOD) // 2], "truncated"),
    "png header only": (GOOD[:40], "truncated"),
    "jpeg header only": (_jpeg()[:200], "truncated"),
    "truncated jpeg": (NOISY_JPEG.getvalue()[: len(NOISY_JPEG.getvalue()) * 2 // 3], "truncated"),
    "text instead": ("a sentence", "takes an image, not text"),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_bad_images_are_one_line_data_errors(classification_run, case):
    data, message = BAD_IMAGES[case]
    adapter = load_adapter(classification_run)
    with pytest.raises(DataError, match=message) as caught:
        adapter.prepare(data, "upload.png")
    assert "\n" not in str(caught.value) and str(caught.value).startswith("upload.png: ")
    assert not isinstance(caught.value, InputTooLarge)


@pytest.mark.parametrize("fixture", ["classification_run", "detection_run", "faces_run"])
def test_too_many_pixels_are_refused_from_the_header_before_decoding(fixture, request):
    run = request.getfixturevalue(fixture)
    adapter = load_adapter(run, max_pixels=1000)
    with pytest.raises(InputTooLarge, match=r"upload: image is 100000x100000 \(10,000,000,000 pixels\), over"):
        adapter.prepare(_png_header(100_000, 100_000), "upload")  # no pixel data at all: never decoded
    with pytest.raises(InputTooLarge, match="40x40"):
        adapter.prepare(_jpeg(), "upload")
    adapter.prepare(_jpeg((20, 20)), "upload")  # 400 pixels: under the limit
    assert adapter.metadata()["input"]["max_pixels"] == 1000


def test_a_jpeg_upload_is_decoded_as_a_jpeg_file(classification_run, tmp_path):
    from cnnlab.data.preprocess import read_images

    data = _jpeg((50, 37))
    (tmp_path / "x.jpg").write_bytes(data)
    item = load_adapter(classification_run).prepare(data, "no-extension")
    assert torch.equal(item.image, read_images([tmp_path / "x.jpg"], 1, (28, 28))[0])
    assert (item.width, item.height) == (50, 37)
    assert item.hints[0].startswith("colour image? the file is in colour") and item.hints[1].startswith("blank image?")


def _encoded(mode: str, image_format: str) -> bytes:
    """A 23x31 gradient image in `mode`, encoded as `image_format`."""
    ramp = torch.arange(23 * 31 * 3, dtype=torch.int64).reshape(23, 31, 3) % 251
    image = Image.fromarray(ramp.to(torch.uint8).numpy(), "RGB")
    if mode == "I;16":
        image = Image.fromarray((ramp[..., 0] * 257).to(torch.int32).numpy().astype("uint16"))
    elif mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


FORMATS = [("L", "PNG"), ("LA", "PNG"), ("RGBA", "PNG"), ("P", "PNG"), ("I;16", "PNG"), ("RGB", "JPEG"),
           ("L", "JPEG"), ("P", "GIF"), ("RGB", "BMP"), ("RGB", "TIFF"), ("RGB", "WEBP"), ("L", "PPM")]  # fmt: skip


@pytest.mark.parametrize(("mode", "image_format"), FORMATS)
def test_every_format_decodes_as_the_same_file_does_for_predict(classification_run, tmp_path, mode, image_format):
    from cnnlab.data.preprocess import read_images

    data = _encoded(mode, image_format)
    path = tmp_path / f"image.{image_format.lower()}"
    path.write_bytes(data)
    adapter = load_adapter(classification_run)
    for name in ("upload", path.name):  # with or without the extension
        item = adapter.prepare(data, name)
        assert torch.equal(item.image, read_images([path], 1, (28, 28))[0]), name
        assert (item.width, item.height) == (31, 23)


def test_formats_without_a_header_parser_are_checked_by_pillow_before_decoding(classification_run):
    adapter = load_adapter(classification_run, max_pixels=500)
    with pytest.raises(InputTooLarge, match="31x23"):
        adapter.prepare(_encoded("RGB", "TIFF"), "scan.tif")


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [("", DataError, "text is empty"), ("  \n\t ", DataError, "text is empty"), ("x" * 100_001, InputTooLarge,
     "100,001 characters, over the limit of 100,000"), (b"\xff\xfe bad", DataError, "not UTF-8 text")],
)  # fmt: skip
def test_bad_text_is_a_one_line_data_error(text_run, data, error, message):
    adapter = load_adapter(text_run)
    with pytest.raises(error, match=message):
        adapter.prepare(data, "text")
    assert adapter.predict([adapter.prepare(b"good match")])[0]["task"] == "text"


def test_runs_that_cannot_be_served_are_one_line_errors(classification_run, faces_run, text_run, tmp_path):
    with pytest.raises(ConfigError, match="--backend must be one of torch, onnx"):
        load_adapter(classification_run, "tensorrt")
    with pytest.raises(ConfigError, match="--gallery is for faces runs"):
        load_adapter(text_run, gallery=tmp_path / "g.db")
    with pytest.raises(RunError, match="no face gallery at"):
        load_adapter(faces_run, gallery=tmp_path / "missing.db")
    with pytest.raises(RunError, match="run folder not found"):
        load_adapter(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="top_k"):
        load_adapter(classification_run, top_k=0)


def test_an_empty_gallery_is_refused(faces_run, tmp_path):
    from cnnlab.evaluate.faces import load_face_run
    from cnnlab.tasks.faces.gallery import Gallery

    face_run = load_face_run(faces_run)
    Gallery(tmp_path / "empty.db", model_id=face_run.fingerprint, dim=face_run.dim).close()
    with pytest.raises(ConfigError, match="the gallery is empty"):
        load_adapter(faces_run, gallery=tmp_path / "empty.db")


# -- no training code ------------------------------------------------------------------------------------------------

IMPORT_CHECK = """
import sys
from cnnlab.serve.adapters import load_adapter
runs = sys.argv[1:]
for run in runs:
    adapter = load_adapter(run)
    if adapter.input_kind == "text":
        item = adapter.prepare("a good match")
    else:
        item = adapter.prepare(open(run + "/sample.png", "rb").read())
    assert adapter.predict([item])[0]["task"] == adapter.task
loaded = sorted(name for name in sys.modules if name.startswith("cnnlab.train"))
assert not loaded, loaded
print("ok")
"""


def test_serving_imports_no_training_code(classification_run, detection_run, faces_run, text_run):
    for run in (classification_run, detection_run, faces_run):
        (run / "sample.png").write_bytes(sample_image_bytes(run))
    runs = [str(run) for run in (classification_run, detection_run, faces_run, text_run)]
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK, *runs], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ok"
