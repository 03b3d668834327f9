"""The dashboard in headless Chromium against a real Voila server.

Run: ``pytest -m browser tests/e2e`` (skips loudly without /usr/bin/chromium).
Screenshots, the server log and the measured figures land in test-artifacts/:
``browser_latency.json`` (slider -> redrawn spectrum path, p50/p95 over >= 50
moves) and ``launch_timing.json`` (process start -> HAADF canvas interactive).
"""

from __future__ import annotations

import json
import os
import re
import time

import numpy as np
import pytest

pytestmark = pytest.mark.browser

INTERACTIVE_BUDGET_S = 20.0
LATENCY_GOAL_P95_MS = 50.0
N_SLIDER_MOVES = 60
TAB_TIMEOUT_MS = 60_000

VIEWER_CANVAS = ".pw-dashboard-viewer canvas.pw-haadf-canvas"
PROBE_PATHS = ".pw-probe-spectrum path.line"
LATENT_PATHS = ".pw-latent-spectrum path.line"

# every non-empty element marked as an alert: the dashboard's error box and the
# widgets' error messages (empty alert containers are placeholders)
VISIBLE_ALERTS_JS = """() => Array.from(document.querySelectorAll('[role=alert], .pw-error-box'))
    .map(e => e.textContent.trim()).filter(t => t.length > 0)"""
# Voila's own error outputs (a failed cell); tracebacks would show up here
CELL_ERRORS_JS = """() => Array.from(document.querySelectorAll(
    '[data-mime-type="application/vnd.jupyter.stderr"], [data-mime-type="application/vnd.jupyter.error"]'
)).map(e => e.textContent.trim()).filter(t => t.length > 0)"""


def _paths(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('d') || '')")


def _wait_paths_change(page, selector: str, before: list[str], timeout_ms: int = 15_000) -> list[str]:
    page.wait_for_function(
        """([sel, before]) => {
            const now = Array.from(document.querySelectorAll(sel)).map(e => e.getAttribute('d') || '');
            return now.some(d => d.length > 0) && JSON.stringify(now) !== JSON.stringify(before);
        }""",
        arg=[selector, before], timeout=timeout_ms,
    )  # fmt: skip
    return _paths(page, selector)


def _open_tab(page, name: str) -> None:
    page.locator(".pw-dashboard-tabs .lm-TabBar-tab", has_text=name).first.click()


def _assert_no_errors(page, where: str) -> None:
    alerts = page.evaluate(VISIBLE_ALERTS_JS)
    assert not alerts, f"{where}: the page shows errors: {alerts}"
    cells = page.evaluate(CELL_ERRORS_JS)
    assert not cells, f"{where}: Voila shows a failed cell: {cells}"


def write_json(path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def _percentile(values, q):
    return float(np.percentile(np.asarray(values, dtype=float), q))


def test_interactive_within_budget(fresh_voila_server, open_dashboard_on, artifacts):
    """Process start -> HAADF canvas visible and a click answered by a new spectrum, on a server
    launched by this test."""
    server = fresh_voila_server
    page = open_dashboard_on(server)
    server.canvas_s = time.perf_counter() - server.t_launch
    try:
        canvas = page.locator(VIEWER_CANVAS)
        page.wait_for_function(
            "sel => document.querySelectorAll(sel).length > 0 && "
            "Array.from(document.querySelectorAll(sel)).some(e => (e.getAttribute('d') || '').length)",
            arg=PROBE_PATHS,
        )
        before = _paths(page, PROBE_PATHS)
        box = canvas.bounding_box()
        canvas.click(position={"x": box["width"] * 0.2, "y": box["height"] * 0.3})
        _wait_paths_change(page, PROBE_PATHS, before)
        interactive_s = time.perf_counter() - server.t_launch
        timing = {
            "server_listening_s": round(server.listen_s, 2),
            "canvas_visible_s": round(server.canvas_s, 2),
            "first_click_answered_s": round(interactive_s, 2),
            "budget_s": INTERACTIVE_BUDGET_S,
            "cpu_count": os.cpu_count(),
        }
        write_json(artifacts / "launch_timing.json", timing)
        print(f"\nlaunch timing: {timing}")
        page.screenshot(path=str(artifacts / "dashboard_data.png"), full_page=True)
    finally:
        page.close()
    assert interactive_s <= INTERACTIVE_BUDGET_S, (
        f"the first click was answered {interactive_s:.1f} s after launch (canvas at "
        f"{server.canvas_s:.1f} s; budget {INTERACTIVE_BUDGET_S} s)"
    )


def test_click_moves_probe_and_updates_spectrum(dashboard_page, artifacts):
    page = dashboard_page
    canvas = page.locator(VIEWER_CANVAS)
    readout = page.locator(".pw-dashboard-viewer .pw-haadf-readout")
    box = canvas.bounding_box()
    page.wait_for_function("sel => document.querySelectorAll(sel).length > 1", arg=PROBE_PATHS)
    for fx, fy in ((0.75, 0.7), (0.3, 0.55)):
        before_paths = _paths(page, PROBE_PATHS)
        before_pixels = canvas.evaluate("c => c.toDataURL()")
        before_text = readout.inner_text()
        canvas.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
        after_paths = _wait_paths_change(page, PROBE_PATHS, before_paths)
        assert after_paths != before_paths
        page.wait_for_function("([c, t]) => document.querySelector(c).textContent !== t",
                               arg=[".pw-dashboard-viewer .pw-haadf-readout", before_text])
        assert canvas.evaluate("c => c.toDataURL()") != before_pixels, "crosshair did not move"
    # measured + both im2spec predictions are drawn (the models load after the first image)
    page.wait_for_function("sel => Array.from(document.querySelectorAll(sel))"
                           ".filter(e => (e.getAttribute('d') || '').length > 0).length >= 3",
                           arg=PROBE_PATHS, timeout=TAB_TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "dashboard_after_click.png"), full_page=True)
    _assert_no_errors(page, "after clicks on the HAADF")


def _probe_of(page) -> tuple[int, int]:
    """The probe (row, col) the viewer's footer shows."""
    text = page.locator(".pw-dashboard-viewer .pw-haadf-readout").inner_text()
    match = re.search(r"probe \((\d+), (\d+)\)", text)
    assert match, f"no probe in the viewer readout {text!r}"
    return int(match[1]), int(match[2])


def test_viewer_keys_drag_and_zoom(dashboard_page, artifacts):
    """Arrow keys step the probe, a drag moves it, +/r zoom and reset; the kernel follows."""
    page = dashboard_page
    canvas = page.locator(VIEWER_CANVAS)
    box = canvas.bounding_box()
    page.wait_for_function("sel => document.querySelectorAll(sel).length > 1", arg=PROBE_PATHS)
    before = _paths(page, PROBE_PATHS)
    canvas.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
    before = _wait_paths_change(page, PROBE_PATHS, before)
    r, c = _probe_of(page)
    for key in ("ArrowRight", "ArrowRight", "ArrowDown"):
        page.keyboard.press(key)
    assert _probe_of(page) == (r + 1, c + 2)
    before = _wait_paths_change(page, PROBE_PATHS, before)  # the kernel got the new position

    # drag from the centre to the upper left: the probe follows the pointer
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    for f in np.linspace(0.5, 0.2, 8):
        page.mouse.move(box["x"] + box["width"] * f, box["y"] + box["height"] * f)
    page.mouse.up()
    r2, c2 = _probe_of(page)
    assert r2 < r and c2 < c, f"drag to the upper left left the probe at {(r2, c2)}"
    _wait_paths_change(page, PROBE_PATHS, before)

    reset = page.locator(".pw-dashboard-viewer .pw-haadf-reset")
    assert reset.evaluate("b => getComputedStyle(b).visibility") == "hidden"
    page.keyboard.press("+")
    assert reset.evaluate("b => getComputedStyle(b).visibility") == "visible"
    page.screenshot(path=str(artifacts / "dashboard_viewer_zoomed.png"), full_page=True)
    page.keyboard.press("r")
    assert reset.evaluate("b => getComputedStyle(b).visibility") == "hidden"
    _assert_no_errors(page, "after keys, drag and zoom on the HAADF viewer")


def test_latent_slider_redraws_and_latency(dashboard_page, artifacts):
    """Drag a latent slider with the mouse; time input event -> new `d` on the decoded path."""
    page = dashboard_page
    _open_tab(page, "Latent")
    handle = page.locator(".pw-latent-explorer .widget-slider .noUi-handle").first
    handle.wait_for(state="visible", timeout=TAB_TIMEOUT_MS)
    page.wait_for_function(
        "sel => Array.from(document.querySelectorAll(sel)).some(e => (e.getAttribute('d') || '').length)",
        arg=LATENT_PATHS, timeout=TAB_TIMEOUT_MS,
    )  # fmt: skip
    time.sleep(1.0)  # let the first decode and the pad colouring settle
    page.screenshot(path=str(artifacts / "dashboard_latent.png"), full_page=True)
    page.evaluate(
        """sel => {
            const state = window.__pwLatency = {armed: false, t0: 0, count: 0, mutation: [], frame: []};
            window.addEventListener('pointermove', () => {
                if (state.armed) { state.armed = false; state.t0 = performance.now(); state.waiting = true; }
            }, true);
            const fig = document.querySelector('.pw-latent-spectrum');
            new MutationObserver(() => {
                if (!state.waiting) return;
                state.waiting = false;
                const t0 = state.t0;
                state.mutation.push(performance.now() - t0);
                requestAnimationFrame(() => { state.frame.push(performance.now() - t0); state.count += 1; });
            }).observe(fig, {attributes: true, attributeFilter: ['d'], subtree: true});
        }""",
        LATENT_PATHS,
    )
    track = page.locator(".pw-latent-explorer .widget-slider .noUi-target").first.bounding_box()
    hb = handle.bounding_box()
    x0, y = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
    before = _paths(page, LATENT_PATHS)
    page.mouse.move(x0, y)
    page.mouse.down()
    missed = 0
    span = min(track["width"] * 0.35, 120)
    for i in range(N_SLIDER_MOVES):
        # a zig-zag of distinct positions, 3-4 px apart (several slider steps each)
        x = x0 + span * np.sin(i * 0.37)
        page.evaluate("() => { window.__pwLatency.armed = true; }")
        page.mouse.move(x, y)
        try:
            page.wait_for_function("n => window.__pwLatency.count >= n", arg=i + 1 - missed,
                                   timeout=3_000)
        except Exception:  # a move that produced no redraw (same value after rounding)
            page.evaluate("() => { window.__pwLatency.waiting = false; }")
            missed += 1
    page.mouse.up()
    result = page.evaluate("() => window.__pwLatency")
    after = _paths(page, LATENT_PATHS)
    assert after != before, "decoded spectrum path did not change while dragging"
    mutation, frame = result["mutation"], result["frame"]
    n = min(len(mutation), len(frame))
    assert n >= 50, f"only {n} of {N_SLIDER_MOVES} slider moves redrew the spectrum ({missed} missed)"
    figures = {
        "n_moves": N_SLIDER_MOVES,
        "n_measured": n,
        "n_without_redraw": missed,
        "input_to_path_update_ms": {"p50": round(_percentile(mutation, 50), 1),
                                    "p95": round(_percentile(mutation, 95), 1),
                                    "max": round(max(mutation), 1)},
        "input_to_next_frame_ms": {"p50": round(_percentile(frame, 50), 1),
                                   "p95": round(_percentile(frame, 95), 1),
                                   "max": round(max(frame), 1)},
        "goal_p95_ms": LATENCY_GOAL_P95_MS,
        "goal_met": _percentile(mutation, 95) <= LATENCY_GOAL_P95_MS,
        "what": "mouse drag of the z0 slider of the im2spec 2-latent explorer in headless "
                "Chromium; time from the pointermove event to the decoded spectrum path's "
                "`d` attribute changing (MutationObserver) and to the next animation frame",
        "cpu_count": os.cpu_count(),
    }
    write_json(artifacts / "browser_latency.json", figures)
    print(f"\nbrowser latency: {figures}")
    page.screenshot(path=str(artifacts / "dashboard_latent_dragged.png"), full_page=True)
    _assert_no_errors(page, "after dragging a latent slider")
    # generous bound for a loaded shared CPU; the goal itself is recorded above
    assert figures["input_to_path_update_ms"]["p50"] <= 250


def test_spec2im_tiles_are_decoded_in_the_page(dashboard_page, artifacts):
    """The spec2im explorer draws its decoded tile in the browser while a slider moves."""
    page = dashboard_page
    _open_tab(page, "Latent")
    page.locator(".widget-dropdown select").filter(has_text="spec2im 2 latent").first \
        .select_option(label="spec2im 2 latent")
    title = page.locator(".pw-latent-explorer", has_text="spec2im latent explorer")
    title.filter(has_text="decoded in the browser").wait_for(timeout=TAB_TIMEOUT_MS)
    tiles = page.locator(".pw-latent-tiles").first
    handle = title.locator(".widget-slider .noUi-handle").first
    hb = handle.bounding_box()
    before = tiles.screenshot()
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    for dx in range(0, 90, 6):
        page.mouse.move(hb["x"] + hb["width"] / 2 + dx, hb["y"] + hb["height"] / 2)
    page.mouse.up()
    page.wait_for_timeout(500)
    assert tiles.screenshot() != before, "the decoded tile did not change while dragging"
    # still drawn by the page: a failure in the page's decoder would have removed the note
    assert "decoded in the browser" in title.first.inner_text()
    page.screenshot(path=str(artifacts / "dashboard_latent_spec2im.png"), full_page=True)
    _assert_no_errors(page, "after dragging the spec2im explorer")


def test_training_progress_advances_and_stops(dashboard_page, artifacts):
    page = dashboard_page
    _open_tab(page, "Train")
    panel = page.locator(".pw-training-progress").first
    panel.wait_for(state="visible", timeout=TAB_TIMEOUT_MS)
    start = panel.locator("button", has_text="Start")
    stop = panel.locator("button", has_text="Stop")
    bar = panel.locator(".progress-bar").first
    start.click()

    def width() -> float:
        style = bar.get_attribute("style") or ""
        for part in style.split(";"):
            if part.strip().startswith("width"):
                return float(part.split(":")[1].strip().rstrip("%") or 0)
        return 0.0

    deadline = time.perf_counter() + 60
    seen = [width()]
    while time.perf_counter() < deadline and len({round(w, 3) for w in seen if w > 0}) < 2:
        time.sleep(0.3)
        seen.append(width())
    advancing = sorted({round(w, 3) for w in seen if w > 0})
    assert len(advancing) >= 2, f"progress bar did not advance: {seen[-5:]}"
    page.screenshot(path=str(artifacts / "dashboard_training.png"), full_page=True)
    stop.click()
    resume = panel.locator("button", has_text="Resume")
    # stopped (after the current batch): Resume becomes enabled, Stop disabled
    page.wait_for_function("el => !el.disabled", arg=resume.element_handle(), timeout=30_000)
    assert stop.is_disabled()
    page.screenshot(path=str(artifacts / "dashboard_training_stopped.png"), full_page=True)
    assert "stopped" in panel.inner_text()
    stopped_at = width()
    time.sleep(1.0)
    assert width() == stopped_at, "training kept running after Stop"
    # the stopped run trains beside the model in use: nothing was replaced
    note = page.locator(".pw-train-note").first.inner_text()
    assert "In use: im2spec 2 latent, pre-trained" in note, note
    assert "all pre-trained" in page.locator(".pw-dashboard-header").first.inner_text()
    _assert_no_errors(page, "after training was started and stopped")


def test_other_tabs_render_without_errors(dashboard_page, artifacts):
    page = dashboard_page
    checks = {
        "NMF": ".pw-dashboard-tabs canvas.pw-haadf-canvas",
        "Errors": ".pw-dashboard-tabs .pw-haadf-colorbar",
        "Inverse design": ".pw-dashboard-tabs button:has-text('Find structures')",
    }
    for tab, selector in checks.items():
        _open_tab(page, tab)
        page.locator(selector).locator("visible=true").first.wait_for(timeout=TAB_TIMEOUT_MS)
        time.sleep(0.5)
        page.screenshot(path=str(artifacts / f"dashboard_{tab.lower().replace(' ', '_')}.png"),
                        full_page=True)
        _assert_no_errors(page, f"on the {tab} tab")
    page.locator("button", has_text="Find structures").click()
    # the result line ("design NMSE 1.85 % ..."), not the table's column header
    page.get_by_text(re.compile(r"design NMSE \d")).wait_for(timeout=TAB_TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "dashboard_inverse_design_result.png"), full_page=True)
    _assert_no_errors(page, "after inverse design")


@pytest.mark.slow
def test_open_close_twenty_times_leaks_no_kernels(open_dashboard, voila_server, dashboard_page):
    """Voila starts one kernel per page; closing the page must not leave it running.

    Voila has no kernel list API, so the server's ipykernel child processes are counted.
    Kernels are released by Voila's shutdown beacon or, failing that, by idle culling of
    disconnected kernels; the test waits up to PLASMONWIDGETS_E2E_CULL_WAIT seconds.
    """
    baseline = len(voila_server.kernel_processes())  # the session page's kernel
    peak = baseline
    for _ in range(20):
        page = open_dashboard()
        peak = max(peak, len(voila_server.kernel_processes()))
        page.goto("about:blank")  # fires beforeunload like closing the tab
        page.close()
    wait_s = float(os.environ.get("PLASMONWIDGETS_E2E_CULL_WAIT", "150"))
    deadline = time.perf_counter() + wait_s
    count = len(voila_server.kernel_processes())
    while count > baseline and time.perf_counter() < deadline:
        time.sleep(2)
        count = len(voila_server.kernel_processes())
    assert count <= baseline, (
        f"{count - baseline} of 20 closed dashboards still have a running kernel after "
        f"{wait_s:.0f} s (peak {peak} kernels). Voila's shutdown beacon is refused "
        "(403 '_xsrf' missing, voila#1458); serve with idle culling of disconnected kernels, "
        "e.g. --MappingKernelManager.cull_idle_timeout=60 --MappingKernelManager.cull_interval=15"
    )
    # the session page (left on another tab by earlier tests) still works
    dashboard_page.bring_to_front()
    _open_tab(dashboard_page, "Data")
    dashboard_page.locator(VIEWER_CANVAS).wait_for(state="visible", timeout=TAB_TIMEOUT_MS)
    _assert_no_errors(dashboard_page, "after 20 other dashboards were opened and closed")
