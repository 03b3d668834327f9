"""The dashboard's Autonomous tab in headless Chromium against a real Voila server.

Open the tab (nothing runs by itself), press Step: one batch of beam positions appears as
markers on the HAADF and the status line counts them; Start then Stop: the loop pauses
after whole steps. The page shows no error and the console logs none. Screenshot:
``test-artifacts/autonomous_tab.png`` (copied to ``$PLASMONWIDGETS_SHOTS_DIR`` when set).
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.browser

STEP_TIMEOUT_MS = 180_000  # the first step trains an ensemble on the 96x96 scan's server
PANEL = ".pw-autonomous"
HAADF = f"{PANEL} .pw-haadf"
# the dashboard's alerts and failed cells (see test_voila_dashboard.py)
ERRORS_JS = """() => Array.from(document.querySelectorAll('[role=alert], .pw-error-box, '
    + '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="application/vnd.jupyter.error"]'))
    .map(e => e.textContent.trim()).filter(t => t.length > 0)"""
# markers drawn on the panel's HAADF (every box group counted)
MARKERS_JS = """sel => Object.values(JSON.parse(document.querySelector(sel).dataset.boxes || '{}'))
    .reduce((a, b) => a + b, 0)"""


def _input_value(page, label: str) -> int:
    field = page.locator(f"{PANEL} .widget-text", has_text=label).locator("input").first
    return int(field.input_value())


def _status(page) -> str:
    return page.locator(f"{PANEL} .pw-autonomous-status").first.inner_text()


def _markers(page) -> int:
    return int(page.evaluate(MARKERS_JS, HAADF))


def test_step_and_start_stop_show_measured_positions(open_dashboard, screenshot):
    page = open_dashboard()
    console_errors = page.console_errors
    try:
        page.locator(".pw-dashboard-tabs .lm-TabBar-tab", has_text="Autonomous").first.click()
        page.locator(f"{PANEL} canvas.pw-haadf-canvas").first.wait_for(state="visible",
                                                                       timeout=90_000)
        budget, batch = _input_value(page, "budget"), _input_value(page, "batch")
        assert "idle" in _status(page) and f"0 / {budget} spectra measured" in _status(page)
        assert _markers(page) == 0  # opening the tab starts nothing

        page.locator(f"{PANEL} button", has_text="Step").click()
        page.wait_for_function(f"sel => ({MARKERS_JS})(sel) === {batch}", arg=HAADF,
                               timeout=STEP_TIMEOUT_MS)
        page.get_by_text(f"{batch} / {budget} spectra measured").wait_for(timeout=30_000)
        page.locator(f"{PANEL} .pw-autonomous-status", has_text="paused").wait_for(timeout=30_000)
        boxes = json.loads(page.eval_on_selector(HAADF, "e => e.dataset.boxes || '{}'"))
        assert boxes.get("latest") == batch, boxes
        # the error curve got its first point (the recorded scan is the truth)
        assert page.locator(f"{PANEL} .pw-autonomous-error").count() == 1

        page.locator(f"{PANEL} button", has_text="Start").click()
        page.wait_for_function(f"sel => ({MARKERS_JS})(sel) > {batch}", arg=HAADF,
                               timeout=STEP_TIMEOUT_MS)
        page.locator(f"{PANEL} button", has_text="Stop").click()
        page.locator(f"{PANEL} .pw-autonomous-status", has_text="paused").wait_for(
            timeout=STEP_TIMEOUT_MS)
        measured = int(re.search(r"(\d+) / \d+ spectra measured", _status(page))[1])
        assert measured % batch == 0 and batch < measured < budget, _status(page)
        assert _markers(page) == measured
        page.wait_for_timeout(1_500)  # every redraw of the last step has arrived
        screenshot(page, "autonomous_tab.png")
        alerts = page.evaluate(ERRORS_JS)
        assert not alerts, f"the page shows errors: {alerts}"
    finally:
        page.close()
    assert not console_errors, (
        f"{len(console_errors)} console error(s); the first ones: {console_errors[:8]}")
