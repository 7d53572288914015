"""Every task through the HTTP layer with its real adapter: the answer over HTTP is the adapter's own (which
test_adapters.py checks against each CLI command), for single and batch requests, torch and onnx backends."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from cnnlab.serve.adapters import load_adapter
from cnnlab.serve.app import create_app
from cnnlab.serve.settings import ServeSettings


def served(run, backend="torch", **options):
    adapter = load_adapter(run, backend, **options)
    return adapter, TestClient(create_app(adapter, ServeSettings(max_wait_ms=2)))


@pytest.mark.parametrize("run_name", ["classification_run", "medical_run", "multilabel_run", "detection_run"])
def test_image_tasks_over_http_answer_as_their_adapter(request, run_name, sample_image_bytes):
    run = request.getfixturevalue(run_name)
    adapter, client = served(run)
    images = [sample_image_bytes(run, index) for index in range(3)]
    expected = adapter.predict([adapter.prepare(image, "x.png") for image in images], 2)
    with client:
        single = [client.post("/predict?top_k=2", files={"file": ("x.png", image, "image/png")}) for image in images]
        assert [response.status_code for response in single] == [200, 200, 200]
        encoded = [base64.b64encode(image).decode() for image in images]
        batch = client.post("/predict/batch?top_k=2", json={"images": encoded}).json()["results"]
        meta = client.get("/metadata").json()
    _assert_same(expected, [response.json() for response in single])
    _assert_same(expected, batch)
    assert meta["task"] == adapter.task and meta["input"]["kind"] == "image"


def test_faces_identify_against_the_gallery_over_http(faces_run, faces_gallery, sample_image_bytes):
    adapter, client = served(faces_run, gallery=str(faces_gallery))
    image = sample_image_bytes(faces_run, 0)
    expected = adapter.predict([adapter.prepare(image, "face.png")], 3)[0]
    with client:
        answer = client.post("/predict?top_k=3", files={"file": ("face.png", image, "image/png")}).json()
        meta = client.get("/metadata").json()
    assert answer["matches"] and answer["matches"] == expected["matches"]
    assert answer["identity"] == expected["identity"] and meta["gallery"]["people"] == 7


def test_text_over_http_and_its_limits(text_run, sample_text):
    adapter, client = served(text_run)
    sentences = [sample_text(index) for index in range(3)]
    expected = adapter.predict([adapter.prepare(text, "text") for text in sentences], 2)
    with client:
        single = [client.post("/predict?top_k=2", json={"text": text}).json() for text in sentences]
        batch = client.post("/predict/batch?top_k=2", json={"texts": sentences}).json()["results"]
        too_long = client.post("/predict", json={"text": "word " * 30_000})
        empty = client.post("/predict", json={"text": "  "})
    _assert_same(expected, single)
    _assert_same(expected, batch)
    assert too_long.status_code == 413 and too_long.json()["error"]["code"] == "too_large"
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "bad_input"


def test_the_onnx_backend_over_http_answers_as_torch(classification_run, sample_image_bytes):
    image = sample_image_bytes(classification_run, 1)
    answers = []
    for backend in ("torch", "onnx"):
        _, client = served(classification_run, backend)
        with client:
            answers.append(client.post("/predict", files={"file": ("x.png", image, "image/png")}).json())
            assert client.get("/health").json()["backend"] == backend
    assert [t["label"] for t in answers[0]["top"]] == [t["label"] for t in answers[1]["top"]]
    for mine, theirs in zip(answers[0]["top"], answers[1]["top"]):
        assert mine["probability"] == pytest.approx(theirs["probability"], abs=1e-4)


def _assert_same(expected: list[dict], actual: list[dict]) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert set(want) == set(got)
        for key in want:
            if key in ("top", "detections"):
                assert [_labels(x) for x in want[key]] == [_labels(x) for x in got[key]]
                for a, b in zip(want[key], got[key]):
                    for field in ("probability", "score"):
                        if field in a:
                            assert a[field] == pytest.approx(b[field], abs=1e-5)
                    if "box" in a:
                        assert a["box"] == pytest.approx(b["box"], abs=0.11)
            elif key not in ("probability",):
                assert want[key] == got[key], key


def _labels(entry: dict) -> str:
    return entry.get("label", "")


def test_detection_thresholds_per_request(detection_run, classification_run, sample_image_bytes):
    adapter, client = served(detection_run)
    image = sample_image_bytes(detection_run, 0)
    item = adapter.prepare(image, "x.png")
    with client:
        counts = {}
        for conf in ("0", "0.5", "1"):
            answer = client.post(f"/predict?conf={conf}&iou=0.3", files={"file": ("x.png", image, "image/png")})
            assert answer.status_code == 200
            want = adapter.predict([item], conf=float(conf), iou=0.3)[0]
            assert [d["box"] for d in answer.json()["detections"]] == [d["box"] for d in want["detections"]]
            counts[conf] = len(want["detections"])
        for bad in ("2", "-0.1", "nan", "high"):
            response = client.post(f"/predict?conf={bad}", files={"file": ("x.png", image, "image/png")})
            assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_parameter"
    assert counts["0"] >= counts["0.5"] >= counts["1"] and counts["0"] > counts["1"]
    _, other = served(classification_run)
    with other:
        response = other.post("/predict?conf=0.5", files={"file": ("x.png", image, "image/png")})
    assert response.status_code == 422 and "applies to detection runs" in response.json()["error"]["message"]
