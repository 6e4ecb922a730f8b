"""A real browser for the console's tests: Debian's Chromium, headless, driven by selenium
through Debian's chromedriver (no browser is ever downloaded).

Outside CI a machine without them skips the browser tests and says why; in CI (.ci/run
installs both) their absence fails. Each test's last page is saved as a screenshot under
SCREENSHOT_DIR (build/screenshots by default), from which the README's pictures are chosen.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", "build/screenshots"))


def _first(paths: tuple[str, ...], name: str) -> str | None:
    found = next((p for p in paths if Path(p).exists()), None)
    return found or shutil.which(name)


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if _first(CHROMIUM, "chromium") is None:
        return "no Chromium (apt-get install chromium chromium-driver)"
    if _first(CHROMEDRIVER, "chromedriver") is None:
        return "no chromedriver (apt-get install chromium-driver)"
    return None


def require_browser() -> None:
    why = missing()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI requires the browser tests: {why}")
    pytest.skip(f"browser tests skipped: {why}")


def start(width: int = 1280, height: int = 1000) -> Any:
    """A headless Chromium session; the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _first(CHROMIUM, "chromium") or ""
    profile = tempfile.mkdtemp(prefix="console-browser-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions",
                 f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = Service(executable_path=_first(CHROMEDRIVER, "chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(0)
    return driver


def screenshot(driver: Any, name: str) -> Path:
    """Saves the whole page (as tall as its content) as SCREENSHOTS/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    width, height = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollHeight]")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": int(width), "height": min(max(int(height), 400), 4000),
        "deviceScaleFactor": 1, "mobile": False})
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return path


def until(driver: Any, check: Callable[[Any], Any], timeout: float = 30,
          what: str = "the page") -> Any:
    """Waits for `check(driver)` to be truthy, reloading nothing: the page's own refresh, or
    the caller's navigation, brings the change. An element the live refresh replaced while
    `check` read it, or not there yet, is one more try, not a failure."""
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(
        driver, timeout, poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(check, message=f"timed out waiting for {what}")


def act(driver: Any, steps: Callable[[Any], None], what: str = "the action") -> None:
    """Runs `steps(driver)` (find, fill, click) from the start again when the live refresh
    replaced an element under it; `steps` must find what it uses afresh each time."""
    def done(d: Any) -> bool:
        steps(d)
        return True

    until(driver, done, timeout=15, what=what)
