"""Headless Chromium as a test driver, with no driver library: load a page, collect what went wrong, screenshot.

A script injected into a copy of the page records uncaught errors, failed loads, console.error calls, every
image's natural size and every resource fetched; on `load` it writes them as JSON into a <pre>, which
`--dump-dom` prints. Chromium's own console log (`--enable-logging=stderr`) is checked as a second witness.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # any request to a host fails: the page must need none
]

CHECK_SCRIPT = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (event) {
    var target = event.target;
    errors.push(target && target.tagName ? "failed to load <" + target.tagName.toLowerCase() + "> "
                + String(target.src || target.href).slice(0, 60) : String(event.message));
  }, true);
  window.addEventListener("unhandledrejection", function (event) { errors.push("unhandled: " + event.reason); });
  var consoleError = console.error;
  console.error = function () {
    errors.push("console.error: " + Array.prototype.join.call(arguments, " "));
    consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var images = Array.prototype.map.call(document.images, function (img) {
      return {alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight};
    });
    var resources = performance.getEntriesByType("resource").map(function (entry) { return entry.name; });
    var out = document.createElement("pre");
    out.id = "cnnlab-check";
    out.textContent = JSON.stringify({errors: errors, images: images, resources: resources});
    document.body.appendChild(out);
  });
})();
</script>"""


@dataclass
class PageCheck:
    errors: list[str]
    images: list[dict]
    resources: list[str]
    console: list[str]  # Chromium's console log lines for the page


def find_chromium() -> str | None:
    for name in (os.environ.get("CNNLAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def on_ci(environ: dict[str, str] | None = None) -> bool:
    """CI=true (GitHub Actions, GitLab and .ci/run set it): missing tools are failures there, not skips."""
    return (os.environ if environ is None else environ).get("CI", "").strip().lower() in ("true", "1")


def browser_decision() -> str:
    """What the browser tests do: "run" with a Chromium, else "fail" on CI (it installs one), else "skip"."""
    if find_chromium() is not None:
        return "run"
    return "fail" if on_ci() else "skip"


def run_chromium(binary: str, args: list[str], workdir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=workdir)  # fresh: no state between runs
    command = [binary, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def check_page(binary: str, page: Path, workdir: Path) -> PageCheck:
    copy = workdir / f"checked_{page.name}"
    copy.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>" + CHECK_SCRIPT, 1), encoding="utf-8")
    args = ["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", copy.as_uri()]
    result = run_chromium(binary, args, workdir)
    match = re.search(r'<pre id="cnnlab-check">(.*?)</pre>', result.stdout, re.S)
    if match is None:
        raise AssertionError(f"chromium gave no check result (exit {result.returncode}): {result.stderr[-2000:]}")
    data = json.loads(html.unescape(match.group(1)))
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return PageCheck(data["errors"], data["images"], data["resources"], console)


def screenshot(binary: str, page: Path, png: Path, workdir: Path, size: tuple[int, int] = (1280, 6000)) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    args = [f"--window-size={size[0]},{size[1]}", f"--screenshot={png}", "--virtual-time-budget=10000", page.as_uri()]
    result = run_chromium(binary, args, workdir)
    if not png.is_file():
        raise AssertionError(f"chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-2000:]}")
    return png
