"""The widgets in JupyterLab 4 and Notebook 7 (not only Voila), in headless Chromium.

A generated notebook shows a HAADFViewer linked to a LatentExplorer of the packaged
im2spec model. In each front end the cell is run from the toolbar, then: the HAADF
canvas renders, a click moves the probe, the explorer says it decodes in the browser
(the anywidget's ``initialize`` ran in that front end's widget manager), and dragging a
latent slider redraws the decoded spectrum. Screenshots land in test-artifacts/.

Run: ``pytest -m browser tests/e2e/test_notebook_frontends.py`` (skips loudly without
Chromium, JupyterLab or Notebook 7).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest

from plasmonwidgets.app.voila_process import VoilaProcess, free_port

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CELL = """\
import ipywidgets as ipw
import plasmonwidgets as pw
from plasmonwidgets import pretrained
from plasmonwidgets.widgets import HAADFViewer, LatentExplorer

si = pw.datasets.nanocube_array(**pretrained.DATASET)
viewer = HAADFViewer(si, size=300)
viewer.add_class("pw-frontend-viewer")
explorer = LatentExplorer(pretrained.load_default("im2spec", 2), pw.make_tiles(si, window=16),
                          viewer=viewer, max_points=1000)
explorer.spectrum_view.figure.add_class("pw-frontend-spectrum")
ipw.HBox([viewer, explorer])
"""
FRONTENDS = {  # name: (module that must be importable, server app, URL of the notebook)
    "jupyterlab": ("jupyterlab", "jupyterlab", "lab/tree/widgets.ipynb"),
    "notebook7": ("notebook", "notebook", "notebooks/widgets.ipynb"),
}
CELL_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("frontends")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.cells.append(nbformat.v4.new_code_cell(CELL))
    nbformat.write(nb, folder / "widgets.ipynb")
    return folder


@pytest.mark.parametrize("frontend", list(FRONTENDS))
def test_widgets_work_in_the_frontend(frontend, site, browser, artifacts):
    module, app, path = FRONTENDS[frontend]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"BROWSER TEST SKIPPED: {module} is not installed (pip install {module})")
    port = free_port()
    cmd = [sys.executable, "-m", app, "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={site}",
           "--ServerApp.allow_root=True", "--LabApp.news_url=",
           "--ServerApp.disable_check_xsrf=True"]
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(site / ".jupyter"))  # no user settings
    # (VoilaProcess runs any Jupyter server as a child process group)
    server = VoilaProcess(cmd, port, artifacts / f"{frontend}_server.log", cwd=site, env=env)
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    try:
        server.wait_ready(60)
        page.goto(server.url + path, wait_until="domcontentloaded", timeout=CELL_TIMEOUT_MS)
        editor = page.locator(".jp-Cell .cm-content").first
        editor.wait_for(timeout=CELL_TIMEOUT_MS)
        # the kernel has started and is idle (the toolbar's execution indicator)
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
            state="attached", timeout=CELL_TIMEOUT_MS)
        canvas = page.locator(".pw-frontend-viewer canvas.pw-haadf-canvas")
        run = page.locator(".jp-Toolbar [data-command='notebook:run-cell-and-select-next']")
        for attempt in range(2):  # a click that lands while the page settles can be lost
            editor.click()
            run.first.click()
            try:
                canvas.wait_for(state="visible", timeout=CELL_TIMEOUT_MS // 2)
                break
            except Exception:
                page.screenshot(path=str(artifacts / f"{frontend}_not_run_{attempt}.png"))
                if attempt:
                    raise
        page.get_by_text("decoded in the browser as you drag").wait_for(timeout=CELL_TIMEOUT_MS)
        readout = page.locator(".pw-frontend-viewer .pw-haadf-readout")
        before = readout.inner_text()
        box = canvas.bounding_box()
        canvas.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.6})
        page.wait_for_function("([sel, t]) => document.querySelector(sel).textContent !== t",
                               arg=[".pw-frontend-viewer .pw-haadf-readout", before])

        paths = ".pw-frontend-spectrum path.line"
        page.wait_for_function(
            "sel => Array.from(document.querySelectorAll(sel)).some(e => (e.getAttribute('d') || '').length)",
            arg=paths, timeout=CELL_TIMEOUT_MS)  # fmt: skip
        shown = page.eval_on_selector_all(paths, "els => els.map(e => e.getAttribute('d'))")
        handle = page.locator(".widget-slider .noUi-handle").first
        hb = handle.bounding_box()
        x, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        for dx in range(0, 80, 8):
            page.mouse.move(x + dx, y)
        page.mouse.up()
        page.wait_for_function(
            "([sel, before]) => JSON.stringify(Array.from(document.querySelectorAll(sel))"
            ".map(e => e.getAttribute('d'))) !== JSON.stringify(before)",
            arg=[paths, shown], timeout=10_000)
        page.screenshot(path=str(artifacts / f"{frontend}_widgets.png"), full_page=True)
        errors = page.eval_on_selector_all(
            "[data-mime-type='application/vnd.jupyter.stderr'], "
            "[data-mime-type='application/vnd.jupyter.error']",
            "els => els.map(e => e.textContent.trim()).filter(t => t.length > 0)")
        assert not errors, f"{frontend}: the cell printed errors: {errors}"
    finally:
        page.close()
        server.stop()
