"""Fixtures for end-to-end tests: a real Voila server and headless Debian Chromium.

The server is started with the project's own command line (``plasmonwidgets demo
--port N --data-dir D``, i.e. the same Voila flags users get) in its own process
group, and always killed at the end of the session. Tests are skipped with a loud
reason when Chromium or Playwright is missing; they never pass without a browser.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("PLASMONWIDGETS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SERVER_START_TIMEOUT_S = 60.0
DASHBOARD_TIMEOUT_MS = 90_000  # generous: first run may simulate and cache the dataset


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class VoilaServer:
    """A running ``plasmonwidgets demo`` process (its own process group)."""

    def __init__(self, data_dir: Path, log_path: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.data_dir = data_dir
        self.log_path = log_path
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", PYTHONUNBUFFERED="1")
        env.pop(  # the dashboard runs with its normal settings; notebooks tests use small ones
            "PLASMONWIDGETS_SMALL", None
        )
        cmd = [sys.executable, "-m", "plasmonwidgets.cli", "demo", "--port", str(self.port),
               "--data-dir", str(data_dir)]  # fmt: skip
        self._log = open(log_path, "w")  # closed in stop()
        self.t_launch = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def wait_ready(self, timeout: float = SERVER_START_TIMEOUT_S) -> float:
        """Block until the port accepts connections; returns seconds since launch.

        Only the TCP port is probed: an HTTP GET of the page would start a kernel.
        """
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"voila exited with {self.proc.returncode}:\n{self.log_tail()}")
            if _port_open(self.port):
                return time.perf_counter() - self.t_launch
            time.sleep(0.1)
        raise TimeoutError(f"voila did not listen on {self.port} in {timeout} s:\n{self.log_tail()}")

    def kernel_processes(self) -> list:
        """Live ipykernel processes started by this server (Voila has no /api/kernels)."""
        import psutil

        try:
            children = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for child in children:
            try:
                if "ipykernel_launcher" in " ".join(child.cmdline()) and child.is_running():
                    if child.status() != psutil.STATUS_ZOMBIE:
                        out.append(child)
            except psutil.Error:
                continue
        return out

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Terminate the whole process group (CLI, voila, kernels); kill after 10 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # kernels live in the same process group; make sure none survive
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()


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


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


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


@pytest.fixture(scope="session")
def browser(voila_server):
    sync_playwright = _require_browser()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def _open_dashboard(browser, server: VoilaServer, timeout_ms: int = DASHBOARD_TIMEOUT_MS):
    """A new page with the dashboard loaded: the HAADF canvas is visible."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
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
