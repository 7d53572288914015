"""`cnnlab serve` for real: a subprocess listening on 127.0.0.1, asked over a socket by concurrent clients; the
answers equal `cnnlab predict`'s, bad requests are 4xx JSON, and it keeps serving."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from cnnlab.evaluate.predict import predict_files
from cnnlab.runs import load_run


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run: Path, *flags: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "cnnlab", "serve", str(run), "--port", str(port), *flags]
    server = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited {server.returncode}: {server.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return server, url
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise AssertionError("server did not answer /health within 60 s")


def stop(server: subprocess.Popen) -> tuple[str, str]:
    server.terminate()
    try:
        out, err = server.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        out, err = server.communicate()
    return out, err


def digit_pngs(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        pixels = (rng.random((28, 28)) < 0.3).astype(np.uint8) * 255
        path = folder / f"digit{index}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def server(classification_run):
    process, url = start_server(classification_run, "--max-batch", "16", "--max-wait-ms", "10")
    yield url
    out, err = stop(process)
    assert "Traceback" not in err, err
    assert out.startswith(f"serving {classification_run} (classification, lenet5, torch) on {url}"), out


def test_concurrent_answers_equal_cnnlab_predict(server, classification_run, tmp_path):
    paths = digit_pngs(tmp_path, 24)
    expected = predict_files(load_run(classification_run), [str(p) for p in paths], top_k=3)

    def ask(path: Path) -> dict:
        with path.open("rb") as handle:
            return httpx.post(f"{server}/predict?top_k=3", files={"file": (path.name, handle, "image/png")}).json()

    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(ask, paths))
    for answer, want in zip(answers, expected):
        assert [t["label"] for t in answer["top"]] == want.labels
        np.testing.assert_allclose(
            [t["probability"] for t in answer["top"]], want.probabilities, atol=1e-5
        )  # batch size moves float32 sums by ~1e-6
    metrics = httpx.get(f"{server}/metrics").text
    assert 'cnnlab_requests_total{route="/predict",status="200"} 24.0' in metrics


def test_bad_requests_over_the_socket_then_it_still_serves(server, tmp_path):
    good = io.BytesIO()
    Image.new("L", (28, 28), 0).save(good, format="PNG")
    cases = [
        ({"files": {"file": ("x.png", b"this is not an image", "image/png")}}, 400),
        ({"files": {"file": ("x.png", good.getvalue()[:30], "image/png")}}, 400),
        ({"files": {"wrong": ("x.png", good.getvalue(), "image/png")}}, 400),
        ({"content": b"", "headers": {"content-type": "image/png"}}, 400),
        ({"content": b"abc", "headers": {"content-type": "application/xml"}}, 415),
        ({"content": b"\0" * (11 << 20), "headers": {"content-type": "image/png"}}, 413),
    ]
    for kwargs, status in cases:
        response = httpx.post(f"{server}/predict", timeout=30, **kwargs)
        assert response.status_code == status, response.text
        assert response.json()["error"]["status"] == status
    bomb = io.BytesIO()
    Image.new("L", (8000, 6000), 0).save(bomb, format="PNG")  # 48 MP, a few kB compressed
    response = httpx.post(f"{server}/predict", files={"file": ("bomb.png", bomb.getvalue(), "image/png")})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_pixels"
    response = httpx.post(f"{server}/predict", files={"file": ("x.png", good.getvalue(), "image/png")})
    assert response.status_code == 200 and len(response.json()["top"]) == 5


def test_metadata_over_the_socket(server):
    meta = httpx.get(f"{server}/metadata").json()
    assert meta["task"] == "classification" and meta["model"] == "lenet5"
    assert meta["input"]["kind"] == "image" and meta["batching"]["max_batch"] == 16
    assert httpx.get(server).text.lstrip().lower().startswith("<!doctype html>")


def test_two_worker_processes_serve_the_same_answers(classification_run, tmp_path):
    process, url = start_server(classification_run, "--workers", "2")
    try:
        paths = digit_pngs(tmp_path, 6)
        expected = predict_files(load_run(classification_run), [str(p) for p in paths], top_k=2)
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda p: httpx.post(f"{url}/predict?top_k=2", files={"file": p.read_bytes()}), paths)
            )
        assert [[t["label"] for t in a.json()["top"]] for a in answers] == [e.labels for e in expected]
    finally:
        out, err = stop(process)
    assert "2 workers" in out and "Traceback" not in err, err
