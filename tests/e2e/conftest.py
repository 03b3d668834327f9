"""Fixtures for end-to-end tests: a real Voila server and headless Debian Chromium.

The server is started with the project's own command line (``plasmonwidgets demo
--port N --data-dir D``, i.e. the same Voila flags users get) in its own process
group, and always killed at the end of the session. Tests are skipped with a loud
reason when Chromium or Playwright is missing; they never pass without a browser.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

from plasmonwidgets.app.voila_process import CHROMIUM, CHROMIUM_ARGS, VoilaProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SERVER_START_TIMEOUT_S = 60.0
DASHBOARD_TIMEOUT_MS = 90_000  # generous: first run may simulate and cache the dataset


class VoilaServer(VoilaProcess):
    """A running ``plasmonwidgets demo`` process (its own process group)."""

    def __init__(self, data_dir: Path, log_path: Path, extra_args: tuple[str, ...] = ()):
        port = free_port()
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", PYTHONUNBUFFERED="1")
        env.pop(  # the dashboard runs with its normal settings; notebooks tests use small ones
            "PLASMONWIDGETS_SMALL", None
        )
        cmd = [sys.executable, "-m", "plasmonwidgets.app.cli", "demo", "--port", str(port),
               "--data-dir", str(data_dir), *extra_args]  # fmt: skip
        super().__init__(cmd, port, log_path, cwd=ROOT, env=env)
        self.data_dir = data_dir

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT_S) -> float:
        return super().wait_ready(timeout)


def _require_browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"BROWSER TESTS SKIPPED: no Chromium at {CHROMIUM}. Install Debian's chromium "
            "(apt-get install chromium) or set PLASMONWIDGETS_CHROMIUM to its path.",
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("BROWSER TESTS SKIPPED: the playwright package is not installed "
                    "(pip install playwright; no browser download needed)")
    return sync_playwright


@pytest.fixture(scope="session", autouse=True)
def _builtin_dataset(builtin_dataset_cached) -> None:
    """Every server here serves the built-in scan: simulate it before the first one starts."""


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def screenshot(artifacts):
    """``save(page, filename)``: a full-page screenshot in test-artifacts/, copied to
    ``$PLASMONWIDGETS_SHOTS_DIR`` when that folder exists (where reviewers look)."""

    def save(page, filename: str) -> Path:
        path = artifacts / filename
        page.screenshot(path=str(path), full_page=True)
        extra = os.environ.get("PLASMONWIDGETS_SHOTS_DIR")
        if extra and Path(extra).is_dir():
            shutil.copy(path, Path(extra) / path.name)
        return path

    return save


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory, artifacts):
    _require_browser()
    data_dir = tmp_path_factory.mktemp("data")
    server = VoilaServer(data_dir, artifacts / "voila_server.log")
    try:
        server.listen_s = server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_voila_server(tmp_path_factory, artifacts):
    """A server of its own, launched by the test that uses it: launch timings must not depend
    on which tests ran earlier on the shared ``voila_server``."""
    _require_browser()
    server = VoilaServer(tmp_path_factory.mktemp("data"), artifacts / "voila_launch_server.log")
    try:
        server.listen_s = server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (one Playwright per process)."""
    sync_playwright = _require_browser()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS),
                                      headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _open_dashboard(browser, server: VoilaServer, timeout_ms: int = DASHBOARD_TIMEOUT_MS):
    """A new page with the dashboard loaded: the HAADF canvas is visible. Console errors and
    uncaught exceptions of the page collect in ``page.console_errors``."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.console_errors = errors
    page.goto(server.url, wait_until="domcontentloaded")
    page.locator(".pw-dashboard-viewer canvas.pw-haadf-canvas").wait_for(
        state="visible", timeout=timeout_ms
    )
    return page


@pytest.fixture(scope="session")
def dashboard_page(browser, voila_server, artifacts):
    """The dashboard opened once right after the server launch; records launch timings."""
    page = _open_dashboard(browser, voila_server)
    voila_server.canvas_s = time.perf_counter() - voila_server.t_launch
    try:
        yield page
    finally:
        page.close()


@pytest.fixture
def open_dashboard(browser, voila_server):
    """A function opening one more dashboard page (the caller closes it)."""
    return lambda: _open_dashboard(browser, voila_server)


@pytest.fixture(scope="session")
def open_dashboard_on(browser):
    """A function opening a dashboard page on a given server (the caller closes it)."""
    return lambda server: _open_dashboard(browser, server)


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory, artifacts):
    """``plasmonwidgets demo --max-kernels 2 --cull-after 8``: a short cull window for tests."""
    _require_browser()
    server = VoilaServer(tmp_path_factory.mktemp("data"), artifacts / "voila_kernels_server.log",
                         extra_args=("--max-kernels", "2", "--cull-after", "8"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
