"""The HTTP layer with a stand-in adapter: every bad request is a 4xx JSON error and the server keeps serving;
batching, deadlines, back-pressure, metrics. The real adapters are tested in test_adapters.py and through a real
socket in test_socket.py."""

from __future__ import annotations

import base64
import io
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cnnlab.errors import DataError
from cnnlab.serve.adapters import InputTooLarge
from cnnlab.serve.app import create_app
from cnnlab.serve.settings import ServeSettings


def png(size=(8, 8), value=200, mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, value).save(buffer, format="PNG")
    return buffer.getvalue()


class StandIn:
    """Answers "light" or "dark" by the mean pixel; records each model call's batch size."""

    task, input_kind = "classification", "image"

    def __init__(self, delay: float = 0.0, max_pixels: int = 10_000) -> None:
        self.delay, self.max_pixels, self.batches = delay, max_pixels, []
        self.lock = threading.Lock()

    def metadata(self) -> dict:
        return {
            "task": self.task,
            "model": "stand_in",
            "backend": "torch",
            "classes": ["dark", "light"],
            "input": {"kind": "image", "channels": 1, "size": [8, 8]},
        }

    def prepare(self, data: bytes, name: str = "upload") -> float:
        try:
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > self.max_pixels:
                raise InputTooLarge(f"{name}: {image.width}x{image.height} pixels is over the limit")
            image.load()
        except (OSError, SyntaxError) as error:
            raise DataError(f"{name}: cannot decode image ({error})") from None
        return float(np.asarray(image.convert("L")).mean())

    def predict(self, items: list[float], top_k: int | None = None) -> list[dict]:
        with self.lock:
            self.batches.append(len(items))
        time.sleep(self.delay)
        answers = []
        for mean in items:
            light = mean / 255
            top = [{"label": "light", "probability": light}, {"label": "dark", "probability": 1 - light}]
            top.sort(key=lambda t: -t["probability"])
            answers.append({"task": self.task, "top": top[: top_k or 2]})
        return answers


class TextStandIn(StandIn):
    input_kind, task = "text", "text"

    def prepare(self, data: str, name: str = "text") -> float:
        if not data.strip():
            raise DataError(f"{name}: the text is empty")
        return 255.0 if "good" in data else 0.0


@pytest.fixture()
def client():
    with TestClient(create_app(StandIn(), ServeSettings(max_upload_bytes=4096, max_batch_items=4))) as client:
        yield client


def check_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["status"] == status and error["code"] == code and error["message"]
    return error


def test_predict_multipart_and_base64_give_the_same_answer(client):
    upload = client.post("/predict", files={"file": ("x.png", png(value=230), "image/png")})
    assert upload.status_code == 200
    assert upload.json()["top"][0]["label"] == "light"
    encoded = base64.b64encode(png(value=230)).decode()
    for image in (encoded, "data:image/png;base64," + encoded):
        assert client.post("/predict", json={"image": image}).json() == upload.json()
    assert (
        client.post("/predict", content=png(value=230), headers={"content-type": "image/png"}).json() == upload.json()
    )
    assert len(client.post("/predict?top_k=1", json={"image": encoded}).json()["top"]) == 1


@pytest.mark.parametrize(
    "request_kwargs, status, code",
    [
        ({"files": {"file": ("x.png", b"this is no image", "image/png")}}, 400, "bad_input"),
        ({"files": {"file": ("x.png", png()[:40], "image/png")}}, 400, "bad_input"),  # truncated
        ({"files": {"file": ("x.png", b"", "image/png")}}, 400, "empty"),
        ({"files": {"picture": ("x.png", png(), "image/png")}}, 400, "wrong_field"),
        ({"data": {"file": "not a file"}}, 400, "wrong_field"),
        ({"json": {"img": "abc"}}, 400, "wrong_field"),
        ({"json": {"image": 5}}, 400, "wrong_field"),
        ({"json": {"image": "%%% not base64"}}, 400, "bad_base64"),
        ({"json": ["a list"]}, 400, "bad_json"),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "bad_json"),
        ({"content": b"", "headers": {"content-type": "application/json"}}, 400, "empty"),
        ({"content": b"hello", "headers": {"content-type": "text/csv"}}, 415, "unsupported_media_type"),
        ({"content": b"hello"}, 415, "unsupported_media_type"),
        ({"files": {"file": ("x.png", png(size=(200, 200)), "image/png")}}, 413, "too_many_pixels"),
        ({"files": {"file": ("x.bin", b"\0" * 10_000, "image/png")}}, 413, "too_large"),
        (
            {"content": b"--b\r\nbroken", "headers": {"content-type": "multipart/form-data"}},
            400,
            "bad_form",
        ),
    ],
    ids=[
        "not-image",
        "truncated",
        "empty",
        "wrong-field",
        "text-field",
        "wrong-json-key",
        "json-not-string",
        "bad-base64",
        "json-not-object",
        "bad-json",
        "empty-json",
        "wrong-type",
        "no-type",
        "bomb",
        "huge",
        "bad-form",
    ],
)
def test_every_bad_request_is_a_4xx_json_error_and_the_server_keeps_serving(client, request_kwargs, status, code):
    check_error(client.post("/predict", **request_kwargs), status, code)
    assert client.post("/predict", files={"file": ("x.png", png(), "image/png")}).status_code == 200


def test_body_over_the_limit_is_refused_while_streaming(client):
    def chunks():
        for _ in range(10):
            yield b"\0" * 1000

    check_error(client.post("/predict", content=chunks(), headers={"content-type": "image/png"}), 413, "too_large")


def test_unknown_routes_methods_and_parameters(client):
    check_error(client.get("/nope"), 404, "not_found")
    check_error(client.get("/predict"), 405, "method_not_allowed")
    error = check_error(client.post("/predict?top_k=0", json={"image": ""}), 422, "invalid_parameter")
    assert "top_k" in error["message"]
    check_error(client.post("/predict?top_k=abc", json={"image": ""}), 422, "invalid_parameter")


def test_batch_answers_each_item_and_reports_bad_ones_in_place(client):
    files = [
        ("files", ("a.png", png(value=10), "image/png")),
        ("files", ("b.png", b"junk", "image/png")),
        ("files", ("c.png", png(value=250), "image/png")),
    ]
    results = client.post("/predict/batch", files=files).json()["results"]
    assert [r.get("top", [{}])[0].get("label") for r in results] == ["dark", None, "light"]
    assert results[1]["error"]["code"] == "bad_input"
    encoded = [base64.b64encode(png(value=v)).decode() for v in (10, 250)]
    labels = [r["top"][0]["label"] for r in client.post("/predict/batch", json={"images": encoded}).json()["results"]]
    assert labels == ["dark", "light"]
    check_error(client.post("/predict/batch", json={"images": encoded * 3}), 413, "too_many_items")
    check_error(client.post("/predict/batch", json={"images": []}), 400, "empty")
    check_error(client.post("/predict/batch", json={"images": "abc"}), 400, "wrong_field")


def test_health_metadata_page_and_metrics(client):
    assert client.get("/health").json()["status"] == "ok"
    meta = client.get("/metadata").json()
    assert meta["classes"] == ["dark", "light"] and meta["limits"]["max_upload_bytes"] == 4096
    assert meta["batching"] == {"max_batch": 32, "max_wait_ms": 5.0, "dynamic": True}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    client.post("/predict", files={"file": ("x.png", png(), "image/png")})
    client.post("/predict", content=b"x", headers={"content-type": "text/csv"})
    client.get("/random-path-1")
    text = client.get("/metrics").text
    assert 'cnnlab_requests_total{route="/predict",status="200"}' in text
    assert 'cnnlab_requests_total{route="/predict",status="415"}' in text
    assert 'cnnlab_request_errors_total{code="unsupported_media_type",route="/predict"}' in text
    assert 'route="other"' in text and "random-path" not in text  # raw paths never become labels
    assert "cnnlab_request_seconds_bucket" in text and "cnnlab_batch_size_count" in text


def test_concurrent_requests_are_batched_and_answered_correctly():
    adapter = StandIn(delay=0.02)
    app = create_app(adapter, ServeSettings(max_batch=16, max_wait_ms=50))
    values = [10, 250] * 8
    with TestClient(app) as client:
        answers = [None] * len(values)

        def send(i):
            answers[i] = client.post("/predict", files={"file": ("x.png", png(value=values[i]), "image/png")}).json()

        threads = [threading.Thread(target=send, args=(i,)) for i in range(len(values))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [a["top"][0]["label"] for a in answers] == ["dark", "light"] * 8
    assert max(adapter.batches) > 1 and sum(adapter.batches) == len(values)


def test_no_batching_runs_each_request_alone():
    adapter = StandIn()
    with TestClient(create_app(adapter, ServeSettings(max_batch=1))) as client:
        for _ in range(3):
            client.post("/predict", files={"file": ("x.png", png(), "image/png")})
    assert adapter.batches == [1, 1, 1]


def test_a_slow_model_gives_504_and_a_full_queue_503():
    with TestClient(create_app(StandIn(delay=0.5), ServeSettings(timeout_s=0.1))) as client:
        check_error(client.post("/predict", files={"file": ("x.png", png(), "image/png")}), 504, "timeout")
    with TestClient(create_app(StandIn(), ServeSettings(max_queue=2, max_batch_items=4))) as client:
        encoded = [base64.b64encode(png()).decode()] * 3
        check_error(client.post("/predict/batch", json={"images": encoded}), 503, "overloaded")
        assert client.post("/predict", json={"image": encoded[0]}).status_code == 200


def test_a_failing_model_is_a_500_json_error_and_the_next_request_works():
    adapter = StandIn()
    original, calls = adapter.predict, []

    def flaky(items, top_k=None):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return original(items, top_k)

    adapter.predict = flaky
    with TestClient(create_app(adapter), raise_server_exceptions=False) as client:
        check_error(client.post("/predict", files={"file": ("x.png", png(), "image/png")}), 500, "internal")
        assert client.post("/predict", files={"file": ("x.png", png(), "image/png")}).status_code == 200


def test_text_runs_take_json_text_and_refuse_images():
    with TestClient(create_app(TextStandIn())) as client:
        assert client.post("/predict", json={"text": "a good film"}).json()["top"][0]["label"] == "light"
        assert (
            client.post("/predict", content=b"a good film", headers={"content-type": "text/plain"}).status_code == 200
        )
        results = client.post("/predict/batch", json={"texts": ["good", "bad", " "]}).json()["results"]
        assert [r.get("top", [{}])[0].get("label") for r in results] == ["light", "dark", None]
        check_error(client.post("/predict", json={"text": "   "}), 400, "bad_input")
        check_error(client.post("/predict", json={"image": "abc"}), 400, "wrong_field")
        check_error(client.post("/predict", json={"text": 3}), 400, "wrong_field")
        check_error(client.post("/predict", files={"file": ("x.png", png(), "image/png")}), 400, "wrong_field")


def test_a_lone_request_does_not_wait_for_a_batch_to_fill():
    adapter = StandIn()
    with TestClient(create_app(adapter, ServeSettings(max_batch=32, max_wait_ms=1000))) as client:
        start = time.perf_counter()
        for _ in range(3):
            assert client.post("/predict", files={"file": ("x.png", png(), "image/png")}).status_code == 200
        assert time.perf_counter() - start < 1.5  # three waits of max_wait_ms would take 3 s
    assert adapter.batches == [1, 1, 1]
