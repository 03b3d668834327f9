"""Spectrum comparison in the dashboard, in headless Chromium against a real Voila server.

Ctrl+click pins two positions on the HAADF: two more curves appear in the probe spectrum,
in the pin colours, and two markers on the HAADF; the key p pins the probe; a dragged box adds
a region curve and its outline; the "map" toggle shows the energy-window map with its window in
the colour bar, and a drag on the spectrum plot picks another window; unpin and clear all.
Screenshots land in test-artifacts/ (``spectra-*.png``).
"""

from __future__ import annotations

import json

import pytest

from plasmonwidgets.widgets.spectrum_compare import PIN_COLORS

pytestmark = pytest.mark.browser

VIEWER = ".pw-dashboard-viewer"
CANVAS = f"{VIEWER} canvas.pw-haadf-canvas"
PROBE_PATHS = ".pw-probe-spectrum path.line"
COMPARE = ".pw-spectrum-compare"
# the dashboard's alerts and failed cells (see test_voila_dashboard.py)
ERRORS_JS = """() => Array.from(document.querySelectorAll('[role=alert], .pw-error-box, '
    + '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="application/vnd.jupyter.error"]'))
    .map(e => e.textContent.trim()).filter(t => t.length > 0)"""
# stroke colour of every drawn spectrum curve, as the browser computes it
STROKES_JS = """sel => Array.from(document.querySelectorAll(sel))
    .filter(e => (e.getAttribute('d') || '').length > 0).map(e => getComputedStyle(e).stroke)"""


def _rgb(hex_color: str) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _boxes(page) -> dict:
    return json.loads(page.eval_on_selector(f"{VIEWER} .pw-haadf", "e => e.dataset.boxes || '{}'"))


def test_pin_two_positions_region_and_window_map(open_dashboard, screenshot):
    page = open_dashboard()
    try:
        canvas = page.locator(CANVAS)
        page.locator(COMPARE).wait_for(state="visible")
        page.wait_for_function("sel => document.querySelectorAll(sel).length > 1", arg=PROBE_PATHS)
        live = len(page.evaluate(STROKES_JS, PROBE_PATHS))  # measured + predictions
        box = canvas.bounding_box()
        for fx, fy in ((0.3, 0.3), (0.7, 0.6)):
            canvas.click(position={"x": box["width"] * fx, "y": box["height"] * fy},
                         modifiers=["Control"])
        page.wait_for_function(
            "([v, n]) => JSON.parse(document.querySelector(v).dataset.boxes || '{}').pins === n",
            arg=[f"{VIEWER} .pw-haadf", 2],
        )  # fmt: skip
        page.wait_for_function("([s, n]) => Array.from(document.querySelectorAll(s))"
                               ".filter(e => (e.getAttribute('d') || '').length).length === n",
                               arg=[PROBE_PATHS, live + 2])
        strokes = page.evaluate(STROKES_JS, PROBE_PATHS)
        assert _rgb(PIN_COLORS[0]) in strokes and _rgb(PIN_COLORS[1]) in strokes, strokes
        legend = page.locator(f"{COMPARE} .pw-compare-entry")
        # the legend is its own widget: its update can reach the page after the curves
        page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n",
                               arg=[f"{COMPARE} .pw-compare-entry", 2], timeout=15_000)
        assert legend.count() == 2
        assert "P1: x" in legend.nth(0).inner_text() and " nm" in legend.nth(0).inner_text()
        screenshot(page, "spectra-pins.png")
        canvas.focus()
        page.keyboard.press("p")  # the key pins the probe's own pixel
        page.wait_for_function(
            "([v, n]) => JSON.parse(document.querySelector(v).dataset.boxes || '{}').pins === n",
            arg=[f"{VIEWER} .pw-haadf", 3],
        )  # fmt: skip

        # a region: "draw box", then drag over part of the image
        page.locator(f"{VIEWER} .pw-haadf-mode").click()
        page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.55, steps=5)
        page.mouse.up()
        page.wait_for_function(
            "([v, n]) => JSON.parse(document.querySelector(v).dataset.boxes || '{}').regions === n",
            arg=[f"{VIEWER} .pw-haadf", 1],
        )  # fmt: skip
        page.wait_for_function("s => Array.from(document.querySelectorAll(s))"
                               ".some(e => getComputedStyle(e).strokeDasharray !== 'none')",
                               arg=PROBE_PATHS)
        assert "mean of" in legend.nth(3).inner_text()
        screenshot(page, "spectra-region.png")

        # the energy-window map over the HAADF, its window stated in the colour bar
        page.locator(f"{COMPARE} button", has_text="map").click()
        bar = page.locator(f"{VIEWER} .pw-haadf-colorbar")
        bar.wait_for(state="visible")
        assert " eV (" in bar.inner_text() and "summed" in bar.inner_text()
        assert page.locator(f"{VIEWER} .pw-haadf-intensity").is_visible()
        assert page.eval_on_selector(f"{VIEWER} .pw-haadf", "e => e.dataset.scalebar").endswith(" nm")
        screenshot(page, "spectra-window-map.png")
        # a drag on the spectrum plot picks another window: the map and its label follow
        before = bar.text_content()
        fig = page.locator(".pw-probe-spectrum svg.svg-figure").first.bounding_box()
        page.mouse.move(fig["x"] + fig["width"] * 0.3, fig["y"] + fig["height"] * 0.5)
        page.mouse.down()
        page.mouse.move(fig["x"] + fig["width"] * 0.4, fig["y"] + fig["height"] * 0.5, steps=5)
        page.mouse.up()
        page.wait_for_function("([s, t]) => document.querySelector(s).textContent !== t",
                               arg=[f"{VIEWER} .pw-haadf-colorbar", before])
        assert " eV (" in bar.inner_text()
        screenshot(page, "spectra-window-brush.png")

        # unpin one, then clear all
        page.locator(f"{COMPARE} button", has_text="unpin").first.click()
        page.wait_for_function(
            "v => JSON.parse(document.querySelector(v).dataset.boxes || '{}').pins === 2",
            arg=f"{VIEWER} .pw-haadf",
        )  # fmt: skip
        page.locator(f"{COMPARE} button", has_text="clear all").click()
        page.wait_for_function(
            "v => { const b = JSON.parse(document.querySelector(v).dataset.boxes || '{}');"
            " return b.pins === 0 && b.regions === 0; }",
            arg=f"{VIEWER} .pw-haadf",
        )  # fmt: skip
        assert not page.evaluate(ERRORS_JS), page.evaluate(ERRORS_JS)
    finally:
        page.close()
