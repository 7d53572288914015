"""The report in a real browser: headless Chromium loads it offline with no errors, and every image renders.

Skipped where Chromium is not installed, except on CI (CI=true), which installs Debian's `chromium`: there a missing
browser fails these tests instead of letting them skip unseen. The screenshot goes to
$CNNLAB_ARTIFACTS when set (CI: the git-ignored artifacts/), else to pytest's temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.viz.report import build_report
from tests.viz.chromium import browser_decision, check_page, find_chromium, screenshot

MISSING = "chromium is not installed (apt-get install chromium, or set CNNLAB_CHROMIUM to a Chrome binary)"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The browser binary; skips without one, fails without one on CI. Listed first, so it runs before the run."""
    decision = browser_decision()
    if decision == "fail":
        pytest.fail(f"{MISSING}; CI=true, so the browser tests must run, not skip")
    if decision == "skip":
        pytest.skip(MISSING)
    return find_chromium()


BROKEN_PAGE = """<!DOCTYPE html><html><head><title>broken</title></head><body>
<img src="data:image/png;base64,AAAA" alt="corrupt"><img src="https://example.com/x.png" alt="remote">
<script>notDefined();</script></body></html>"""


@pytest.fixture(scope="module")
def report_page(chromium, tiny_run, tmp_path_factory) -> Path:
    return build_report(tiny_run, tmp_path_factory.mktemp("browser") / "report.html")


def test_report_loads_without_errors_and_every_image_renders(chromium, report_page, tmp_path):
    check = check_page(chromium, report_page, tmp_path)
    assert check.errors == []
    assert check.console == []
    assert check.resources == [], "the page fetched something: it must be self-contained"
    assert len(check.images) == 24
    empty = [image["alt"] for image in check.images if not (image["complete"] and image["width"] and image["height"])]
    assert empty == []


def test_screenshot_artifact(chromium, report_page, tmp_path):
    folder = Path(os.environ.get("CNNLAB_ARTIFACTS") or tmp_path)
    png = screenshot(chromium, report_page, folder / "report_screenshot.png", tmp_path)
    with Image.open(png) as image:
        assert image.size == (1280, 6000)
        assert np.unique(np.asarray(image.convert("L"))).size > 20  # a rendered page, not a blank one
    print(f"screenshot: {png}")


def test_checker_catches_a_broken_page(chromium, tmp_path):
    """The checks above can fail: a corrupt image, a remote image and a script error are all reported."""
    page = tmp_path / "broken.html"
    page.write_text(BROKEN_PAGE)
    check = check_page(chromium, page, tmp_path)
    assert any("notDefined" in error for error in check.errors)
    assert any("failed to load <img> data:image/png" in error for error in check.errors)
    assert any("example.com" in error for error in check.errors)
    assert [image["width"] for image in check.images] == [0, 0]
    assert any("notDefined" in line for line in check.console)
