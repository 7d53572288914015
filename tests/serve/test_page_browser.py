"""The served page (GET /) in headless Chromium: upload an image or type a sentence through it, read the result.

The real app (`create_app` around `load_adapter`) runs under uvicorn on 127.0.0.1 in a thread; Playwright drives
Debian's chromium (`executable_path`, no browser download). Every answer the page shows is checked against what
`cnnlab predict` / `cnnlab text predict` / the task's adapter gives for the same input, and each page must load
and work with no console error and no request leaving the server.

Skipped where Chromium or Playwright is missing, except on CI (CI=true), which installs both: there a missing
one fails instead of skipping unseen. Screenshots go to $CNNLAB_ARTIFACTS when set, else to pytest's tmp folder.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.viz.chromium import browser_decision, find_chromium, on_ci

MISSING_BROWSER = "chromium is not installed (apt-get install chromium, or set CNNLAB_CHROMIUM to a Chrome binary)"
MISSING_DRIVER = "playwright is not installed (pip install playwright; the system chromium is used, no download)"
FLAGS = ["--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]  # only loopback


def _skip_or_fail(reason: str) -> None:
    if on_ci():
        pytest.fail(f"{reason}; CI=true, so the browser tests must run, not skip")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module. Listed first in each test, so a skip comes before any training."""
    if browser_decision() != "run":
        _skip_or_fail(MISSING_BROWSER)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail(MISSING_DRIVER)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=find_chromium(), args=FLAGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def serving(run_dir: Path, **options) -> Iterator[str]:
    """The real app on a free loopback port in a uvicorn thread; its URL while inside."""
    import uvicorn

    from cnnlab.serve.adapters import load_adapter
    from cnnlab.serve.app import create_app
    from cnnlab.serve.settings import ServeSettings

    app = create_app(load_adapter(run_dir, "torch", **options), ServeSettings())
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


@dataclass
class PageLog:
    """What the page did that it must not: console errors, uncaught exceptions, requests off the server."""

    origin: str
    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def request(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("blob", "data") and f"{parts.scheme}://{parts.netloc}" != self.origin:
            self.foreign.append(url)

    def assert_clean(self) -> None:
        assert self.errors == [], "the page logged errors"
        assert self.foreign == [], "the page fetched something off the server: it must be self-contained"


@contextlib.contextmanager
def opened(browser, url: str) -> Iterator[tuple[object, PageLog]]:
    """The page loaded in a fresh browser context, its metadata shown (body[data-ready])."""
    context = browser.new_context(viewport={"width": 900, "height": 900})
    log = PageLog(url)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and log.errors.append(message.text))
    page.on("pageerror", lambda error: log.errors.append(f"uncaught: {error}"))
    page.on("request", lambda request: log.request(request.url))
    try:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=true]", state="attached", timeout=10_000)
        yield page, log
    finally:
        context.close()


def result_of(page, status: str = "done") -> dict[str, str]:
    """The #result element's data attributes once the page has rendered an answer (or an error)."""
    page.wait_for_selector(f"#result[data-status={status}]", state="attached", timeout=15_000)
    return page.eval_on_selector("#result", "node => Object.assign({}, node.dataset)")


def screenshot(page, name: str, tmp_path: Path) -> Path:
    path = Path(os.environ.get("CNNLAB_ARTIFACTS") or tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def classification_server(browser, classification_run) -> Iterator[str]:
    with serving(classification_run) as url:
        yield url


def test_classification_upload_shows_cnnlab_predicts_answer(
    browser, classification_server, classification_run, sample_image_bytes, tmp_path
):
    from cnnlab.evaluate.predict import predict_files
    from cnnlab.runs import load_run

    image = tmp_path / "digit.png"
    image.write_bytes(sample_image_bytes(classification_run))
    expected = predict_files(load_run(classification_run), [str(image)], top_k=5)[0]
    with opened(browser, classification_server) as (page, log):
        assert "task classification" in page.text_content("#meta")
        assert "10 classes" in page.text_content("#meta")
        page.set_input_files("#file", str(image))
        shown = result_of(page)
        assert shown["topLabel"] == expected.labels[0]
        assert float(shown["topProbability"]) == pytest.approx(expected.probabilities[0], abs=1e-4)
        labels = page.locator("#result .bars .label").all_text_contents()
        assert labels == expected.labels
        assert page.locator("#result .hints li").all_text_contents() == expected.hints  # colour for a grey model...
        assert page.is_hidden("#error")
        assert page.is_visible("#preview")
        print(f"screenshot: {screenshot(page, 'serve_page_classification.png', tmp_path)}")
        log.assert_clean()


def test_dropped_file_is_predicted_too(browser, classification_server, classification_run, sample_image_bytes):
    """Drag and drop: a File dropped on the zone goes the same way as one chosen in the file input."""
    from cnnlab.serve.adapters import load_adapter

    data = sample_image_bytes(classification_run, index=1)
    adapter = load_adapter(classification_run, "torch")
    expected = adapter.predict([adapter.prepare(data, "drop.png")])[0]["top"][0]["label"]
    with opened(browser, classification_server) as (page, log):
        page.evaluate(
            """(b64) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const transfer = new DataTransfer();
                transfer.items.add(new File([bytes], "drop.png", { type: "image/png" }));
                document.getElementById("drop").dispatchEvent(
                    new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
            }""",
            base64.b64encode(data).decode(),
        )
        assert result_of(page)["topLabel"] == expected
        log.assert_clean()


def test_a_bad_upload_shows_the_servers_json_error_and_the_page_still_works(
    browser, classification_server, classification_run, sample_image_bytes, tmp_path
):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"these are notes, not a picture")
    good = tmp_path / "digit.png"
    good.write_bytes(sample_image_bytes(classification_run))
    with opened(browser, classification_server) as (page, log):
        page.set_input_files("#file", str(bad))
        shown = result_of(page, "error")
        message = page.text_content("#error")
        assert page.is_visible("#error")
        assert "notes.png" in message and "HTTP 400" in message, message
        assert shown["errorCode"] == "bad_input"
        page.set_input_files("#file", str(good))
        assert result_of(page)["topLabel"]
        assert page.is_hidden("#error")
        # The failed POST itself is logged by Chromium as a resource error: the one console line expected.
        assert all("400" in line for line in log.errors), log.errors
        assert log.foreign == []


def test_text_run_sentence_gives_cnnlab_text_predicts_label(browser, text_run, sample_text, tmp_path):
    from cnnlab.evaluate.text import predict_sentences

    sentence = sample_text(0)
    expected = predict_sentences(text_run, [sentence], top_k=3)[0]
    with serving(text_run) as url, opened(browser, url) as (page, log):
        assert page.is_visible("#text") and page.is_hidden("#file")
        page.fill("#text", sentence)
        page.click("#send")
        shown = result_of(page)
        assert shown["topLabel"] == expected["label"]
        assert float(shown["topProbability"]) == pytest.approx(expected["probability"], abs=1e-4)
        screenshot(page, "serve_page_text.png", tmp_path)
        log.assert_clean()


def test_detection_draws_the_boxes_on_the_image(browser, detection_run, sample_image_bytes, tmp_path):
    from cnnlab.serve.adapters import load_adapter

    data = sample_image_bytes(detection_run)
    image = tmp_path / "scene.png"
    image.write_bytes(data)
    adapter = load_adapter(detection_run, "torch")
    expected = adapter.predict([adapter.prepare(data, "scene.png")])[0]
    with serving(detection_run) as url, opened(browser, url) as (page, log):
        page.set_input_files("#file", str(image))
        shown = result_of(page)
        assert int(shown["count"]) == len(expected["detections"])
        if expected["detections"]:
            assert shown["topLabel"] == expected["detections"][0]["label"]
        assert page.locator("#result li").count() == len(expected["detections"])
        # The picture is drawn on the canvas (scaled to its displayed width): not a blank canvas.
        colours = page.eval_on_selector(
            "#result canvas",
            """canvas => {
                const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
                const seen = new Set();
                for (let i = 0; i < data.length; i += 4 * 7) seen.add(data[i] + "," + data[i + 1] + "," + data[i + 2]);
                return seen.size;
            }""",
        )
        assert colours > 20
        screenshot(page, "serve_page_detection.png", tmp_path)
        log.assert_clean()


def test_faces_with_a_gallery_lists_the_best_matches(browser, faces_run, faces_gallery, sample_image_bytes, tmp_path):
    from cnnlab.serve.adapters import load_adapter

    data = sample_image_bytes(faces_run)
    image = tmp_path / "face.png"
    image.write_bytes(data)
    adapter = load_adapter(faces_run, "torch", gallery=faces_gallery)
    expected = adapter.predict([adapter.prepare(data, "face.png")])[0]
    with serving(faces_run, gallery=faces_gallery) as url, opened(browser, url) as (page, log):
        assert "gallery of" in page.text_content("#meta")
        page.set_input_files("#file", str(image))
        shown = result_of(page)
        assert shown["topLabel"] == expected["matches"][0]["name"]
        assert shown["identity"] == (expected["identity"] or "")
        assert page.locator("#result ol li").count() == len(expected["matches"])
        log.assert_clean()


def test_faces_without_a_gallery_says_so(browser, faces_run, sample_image_bytes, tmp_path):
    image = tmp_path / "face.png"
    image.write_bytes(sample_image_bytes(faces_run))
    with serving(faces_run) as url, opened(browser, url) as (page, log):
        assert "no gallery" in page.text_content("#meta")
        page.set_input_files("#file", str(image))
        assert result_of(page)["identity"] == ""
        assert "--gallery" in page.text_content("#result")
        log.assert_clean()
