"""The browser tests' skip-or-fail decision: a missing Chromium skips locally but fails on CI."""

from __future__ import annotations

import shutil

import pytest

from tests.viz import chromium


@pytest.fixture
def no_browser(monkeypatch):
    monkeypatch.delenv("CNNLAB_CHROMIUM", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)


def test_missing_browser_fails_on_ci(no_browser, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert chromium.find_chromium() is None
    assert chromium.browser_decision() == "fail"


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_missing_browser_skips_off_ci(no_browser, monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert chromium.browser_decision() == "skip"


def test_a_browser_runs_on_ci_and_off(monkeypatch):
    monkeypatch.delenv("CNNLAB_CHROMIUM", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/chromium" if name == "chromium" else None)
    for value in ("true", "false"):
        monkeypatch.setenv("CI", value)
        assert chromium.browser_decision() == "run"
