"""Uploads through the DataFileChooser in headless Chromium against a real Voila server.

A generated notebook shows only a chooser (limit 16 MB) and is served with the same
command line and flags as ``plasmonwidgets demo``, including the Jupyter server's
default 10 MiB websocket message limit. A 12 MiB upload must arrive whole (it would
drop the connection if sent as one message, as ipywidgets.FileUpload does), a 17 MB
file must be refused in the browser, and the page must stay connected throughout.

Run: ``pytest -m browser tests/e2e/test_voila_upload.py`` (skips loudly without Chromium).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest

from plasmonwidgets.app.cli import dashboard_notebook, demo_command
from plasmonwidgets.app.voila_process import VoilaProcess, free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
DM4 = ROOT / ".." / "shared" / "data" / "real" / "EELS_SI.dm4"
LIMIT_MB = 16
UPLOAD_TIMEOUT_MS = 60_000
PAGE_TIMEOUT_MS = 90_000

INPUT = ".pw-upload input.pw-upload-input"
CHOOSER_ERROR = ".pw-message.pw-error"


def _notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.cells.append(nbformat.v4.new_code_cell(
        "from plasmonwidgets.widgets.file_chooser import DataFileChooser\n"
        f"chooser = DataFileChooser(max_upload_mb={LIMIT_MB})  # root: $PLASMONWIDGETS_DATA_DIR\n"
        "chooser"
    ))  # fmt: skip
    path = folder / "upload.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def upload_server(tmp_path_factory, browser):
    if not DM4.is_file():
        pytest.skip(f"real DigitalMicrograph test file not found at {DM4}")
    site = tmp_path_factory.mktemp("upload-site")
    data_dir = tmp_path_factory.mktemp("upload-data")
    notebook = _notebook(site)
    port = free_port()
    # the demo's own command line and flags, serving the generated notebook instead
    cmd, env = demo_command("127.0.0.1", port, data_dir)
    dashboard = str(dashboard_notebook())
    cmd = [str(notebook) if a == dashboard
           else f"--Voila.root_dir={site}" if a.startswith("--Voila.root_dir=") else a
           for a in cmd]  # fmt: skip
    env.update(PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1", PYTHONUNBUFFERED="1")
    env.pop("PLASMONWIDGETS_SMALL", None)
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    server = VoilaProcess(cmd, port, artifacts / "voila_upload_server.log", cwd=ROOT, env=env)
    try:
        server.wait_ready(60.0)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(upload_server, browser):
    """The chooser page in the session's Chromium (conftest.py), kernel websockets watched."""
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    page.set_default_timeout(30_000)
    page.closed_sockets = []  # kernel websockets that closed: a dropped connection
    page.on("websocket", lambda ws: ws.on("close", lambda _ws: page.closed_sockets.append(ws.url)))
    try:
        page.goto(upload_server.url, wait_until="domcontentloaded")
        page.locator(INPUT).wait_for(state="attached", timeout=PAGE_TIMEOUT_MS)
        yield page
    finally:
        page.close()


def _listed(page, text: str) -> None:
    """Wait until the chooser's listing has an uploaded entry containing ``text``."""
    # ipywidgets' Select writes spaces as non-breaking ones; compare with collapsed spaces
    page.wait_for_function(
        """(text) => Array.from(document.querySelectorAll('.widget-select option'))
            .map(o => o.textContent.replace(/\\s+/g, ' '))
            .some(t => t.includes('uploaded') && t.includes(text))""",
        arg=" ".join(text.split()), timeout=UPLOAD_TIMEOUT_MS,
    )  # fmt: skip


def _upload(page, path: Path) -> None:
    page.locator(INPUT).set_input_files(str(path))


def test_small_real_file_is_uploaded_and_listed(page):
    _upload(page, DM4)
    _listed(page, "EELS_SI.dm4  (uploaded, 332.1 kB)")
    page.locator(".pw-upload-ok", has_text="EELS_SI.dm4: uploaded (0.3 MB)").wait_for()
    page.locator(".pw-chooser-info", has_text="Selected EELS_SI.dm4").wait_for()
    assert page.closed_sockets == []


def test_file_over_the_websocket_message_limit_arrives_whole(page, tmp_path):
    import hyperspy.api as hs
    import numpy as np

    # a real HyperSpy file (uploads the loader's header check refuses are not listed),
    # > Tornado's 10 MiB websocket message cap
    big = tmp_path / "big12.hspy"
    signal = hs.signals.Signal1D(np.random.default_rng(0).random((32, 32, 3100), dtype=np.float32))
    signal.axes_manager[-1].units = "eV"
    signal.save(big, compression=None)
    mib = big.stat().st_size / 2**20
    assert mib > 11.5
    _upload(page, big)
    _listed(page, f"big12.hspy  (uploaded, {mib:.1f} MB)")
    page.locator(".pw-upload-ok", has_text=f"big12.hspy: uploaded ({mib:.1f} MB)").wait_for()
    assert page.closed_sockets == []


def test_file_over_the_limit_is_refused_and_the_page_stays_connected(page, tmp_path):
    huge = tmp_path / "huge.hspy"
    with open(huge, "wb") as fh:  # sparse: its bytes are never read by the browser
        fh.truncate(17 * 2**20)
    pair, after = tmp_path / "pair.dm4", tmp_path / "after.dm4"
    for copy in (pair, after):
        shutil.copyfile(DM4, copy)
    # one selection with a file over the limit and an acceptable one
    page.locator(INPUT).set_input_files([str(huge), str(pair)])
    expected = (f"'huge.hspy' is 17.0 MB, over the {LIMIT_MB} MB upload limit; put the file in "
                "the data folder instead")
    page.locator(".pw-upload-error", has_text=expected).wait_for()
    _listed(page, "pair.dm4  (uploaded, 332.1 kB)")
    # the kernel heard of the refusal too: its status line says so next to the selection
    page.locator(CHOOSER_ERROR, has_text=expected).wait_for()
    assert "huge" not in " ".join(page.locator(".widget-select option").all_text_contents())

    # still connected: the next upload goes through and the refusal is gone
    _upload(page, after)
    _listed(page, "after.dm4  (uploaded, 332.1 kB)")
    page.locator(".pw-chooser-info", has_text="Selected after.dm4").wait_for()
    assert page.locator(CHOOSER_ERROR).count() == 0
    assert page.closed_sockets == []
