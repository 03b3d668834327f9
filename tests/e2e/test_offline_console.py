"""The dashboard works on an offline machine and logs no errors in the browser console.

One Chromium session against ``plasmonwidgets demo``: load the dashboard, train the
im2spec 2-latent model for two epochs (Start, Stop), open every tab and drag a latent
slider. Every request the page makes is recorded; those leaving the local server are
refused, as on a microscope PC without network. The test fails on any such request and
on any console error (``console.error`` or an uncaught exception in the page), and on
any error the dashboard itself shows.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.browser

TAB_TIMEOUT_MS = 90_000
TRAIN_TIMEOUT_MS = 180_000
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# what shows that a tab was built: one element of its content
# the dashboard's error box and the widgets' error messages, when not empty
VISIBLE_ALERTS_JS = """() => Array.from(document.querySelectorAll('[role=alert], .pw-error-box'))
    .map(e => e.textContent.trim()).filter(t => t.length > 0)"""
TAB_READY = {
    "Data": ".pw-dashboard-viewer canvas.pw-haadf-canvas",
    "NMF": ".pw-dashboard-tabs canvas.pw-haadf-canvas",
    "Train": ".pw-training-progress",
    "Errors": ".pw-dashboard-tabs .pw-haadf-colorbar",
    "Latent": ".pw-latent-explorer .widget-slider .noUi-handle",
    "Inverse design": ".pw-dashboard-tabs button:has-text('Find structures')",
    "Autonomous": ".pw-autonomous canvas.pw-haadf-canvas",
}


def is_local(url: str) -> bool:
    """True for a URL served by this machine: http(s)/ws(s) on a loopback host, a
    ``data:`` URL, or a ``blob:`` URL created by a local page."""
    parts = urlsplit(url)
    if parts.scheme in ("data", "about"):
        return True
    if parts.scheme == "blob":
        return is_local(url[len("blob:"):])
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


class PageRecorder:
    """Records a page's requests (refusing non-local ones) and its console errors."""

    def __init__(self, page):
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.errors: list[str] = []
        page.route("**/*", self._route)
        page.on("request", lambda req: self.requests.append(req.url))
        page.on("websocket", lambda ws: self._check(ws.url))
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _check(self, url: str) -> bool:
        if is_local(url):
            return True
        self.refused.append(url)
        return False

    def _route(self, route):
        if self._check(route.request.url):
            route.continue_()
        else:  # an offline machine: the request cannot leave it
            route.abort("internetdisconnected")

    def _console(self, msg):
        if msg.type == "error":
            where = msg.location.get("url", "") if msg.location else ""
            self.errors.append(f"{msg.text} [{where}]")


def _open_tab(page, name: str) -> None:
    page.locator(".pw-dashboard-tabs .lm-TabBar-tab", has_text=name).first.click()
    page.locator(TAB_READY[name]).locator("visible=true").first.wait_for(timeout=TAB_TIMEOUT_MS)


def _train_two_epochs(page) -> None:
    _open_tab(page, "Train")
    panel = page.locator(".pw-training-progress").first
    panel.locator("button", has_text="Start").click()
    # "epoch 3/N · batch b/B": two epochs are done
    page.wait_for_function(
        """el => { const m = el.textContent.match(/epoch (\\d+)\\/\\d+ · batch/);
                   return m !== null && Number(m[1]) >= 3; }""",
        arg=panel.element_handle(), timeout=TRAIN_TIMEOUT_MS,
    )  # fmt: skip
    panel.locator("button", has_text="Stop").click()
    resume = panel.locator("button", has_text="Resume")
    page.wait_for_function("el => !el.disabled", arg=resume.element_handle(), timeout=60_000)
    assert re.search(r"stopped after \d+/\d+ epochs", panel.inner_text()), panel.inner_text()
    time.sleep(2.0)  # the end-of-run redraws of the loss plot


def _drag_latent_slider(page) -> None:
    _open_tab(page, "Latent")
    handle = page.locator(".pw-latent-explorer .widget-slider .noUi-handle").first
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for dx in (*range(0, 120, 8), *range(120, -60, -8)):
        page.mouse.move(x + dx, y)
        page.wait_for_timeout(30)
    page.mouse.up()
    page.wait_for_timeout(1_000)


def test_session_stays_offline_without_console_errors(browser, voila_server, artifacts):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    recorder = PageRecorder(page)
    try:
        page.goto(voila_server.url, wait_until="domcontentloaded")
        page.locator(TAB_READY["Data"]).wait_for(state="visible", timeout=TAB_TIMEOUT_MS)
        page.wait_for_timeout(1_000)
        _train_two_epochs(page)
        for name in TAB_READY:
            _open_tab(page, name)
            page.wait_for_timeout(500)
        _drag_latent_slider(page)
        _open_tab(page, "Data")
        page.wait_for_timeout(500)
        page.screenshot(path=str(artifacts / "offline_console_session.png"), full_page=True)
        alerts = page.evaluate(VISIBLE_ALERTS_JS)
    finally:
        page.close()
    assert recorder.requests, "no request was recorded: the recorder did not run"
    assert not recorder.refused, (
        f"the page asked for {len(recorder.refused)} resource(s) outside the local server "
        f"(they fail offline): {sorted(set(recorder.refused))}")
    assert not alerts, f"the dashboard shows errors: {alerts}"
    assert not recorder.errors, (
        f"{len(recorder.errors)} console error(s); the first ones: {recorder.errors[:8]}")
