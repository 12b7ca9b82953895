"""The reports as people see them: headless Chromium renders each page without console errors, and not blank.

Debian's ``chromium`` is installed by the Makefile's ``browser`` step; where it could not be installed the test is
skipped with a message saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

CONSOLE_ERROR = re.compile(r":CONSOLE[:(]|Uncaught|Failed to load resource|net::ERR_")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("chromium is not installed (`make test` installs Debian's chromium when it can): "
                "the HTML reports were not rendered in a browser")


def _render(browser: str, page, tmp_path, size=(1200, 2400)) -> tuple[np.ndarray, str, str]:
    """Screenshot and DOM of ``page``, and Chromium's log (console messages included)."""
    shot = tmp_path / f"{page.stem}.png"
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
              f"--window-size={size[0]},{size[1]}"]
    run = subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    return pixels, dom.stdout, run.stderr + dom.stderr


def _assert_rendered(pixels: np.ndarray, log: str) -> None:
    errors = [line for line in log.splitlines() if CONSOLE_ERROR.search(line)]
    assert not errors, "console errors:\n" + "\n".join(errors)
    grey = pixels.mean(axis=2)
    assert grey.std() > 20.0, "the screenshot is (nearly) uniform"
    assert (grey < 200).mean() > 0.05, "the screenshot is almost all white"
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 60
    assert colourful.mean() > 0.005, "no coloured pixels: the figures did not render"


def test_case_report_renders_in_chromium(predicted_with_report, report_case, tmp_path):
    browser = _chromium()
    page = predicted_with_report / f"{report_case.name}.html"
    pixels, dom, log = _render(browser, page, tmp_path)
    _assert_rendered(pixels, log)
    assert report_case.name in dom and "not a diagnosis" in dom
    assert dom.count("<img") == 4


def test_cohort_report_renders_in_chromium(evaluated_with_report, tmp_path):
    browser = _chromium()
    pixels, dom, log = _render(browser, evaluated_with_report["eval"] / "report.html", tmp_path)
    _assert_rendered(pixels, log)
    assert "Cohort evaluation" in dom and dom.count("<img") == 5  # Dice, means with CIs, ROC, calibration, confusion
