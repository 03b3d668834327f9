"""Kernels of a served dashboard are bounded: closed tabs free theirs, a cap holds.

A real ``plasmonwidgets demo --max-kernels 2 --cull-after 8`` server; kernels are counted
as the server's ipykernel child processes (Voila has no kernel list API).

- A tab closed while it trains (``page.close()`` without ``beforeunload``: a crashed
  browser or a lost network, the worst case) stops its training: the kernel process is
  gone within the cull window, although it was busy the whole time. While the page is
  open, the same kernel is not culled.
- A tab closed normally sends Voila's shutdown beacon; the server accepts it (the page
  got its ``_xsrf`` cookie), so the kernel ends at once.
- At the cap, a new page view gets a clear "busy" page (HTTP 503), not a hang; once
  the kernels of pages nobody has open are culled, the dashboard opens again.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import psutil
import pytest

pytestmark = pytest.mark.browser

CULL_AFTER_S = 8  # as the bounded_server fixture serves
MAX_KERNELS = 2
# the culling loop runs every max(1, round(cull_after / 4)) s; leave room for a slow CI machine
CULL_DEADLINE_S = CULL_AFTER_S + 2 + 10


def _wait_gone(server, pids: set[int], timeout: float) -> float:
    """Seconds until none of ``pids`` is a live kernel; fails after ``timeout``."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if not pids & {p.pid for p in server.kernel_processes()}:
            return time.perf_counter() - t0
        time.sleep(0.5)
    pytest.fail(f"kernels {sorted(pids)} still alive {timeout:.0f} s later:\n{server.log_tail(20)}")


def _wait_no_kernels(server, timeout: float = 60) -> None:
    pids = {p.pid for p in server.kernel_processes()}
    if pids:
        _wait_gone(server, pids, timeout)


def _start_long_training(page) -> None:
    page.locator(".pw-dashboard-tabs .lm-TabBar-tab", has_text="Train").first.click()
    panel = page.locator(".pw-training-progress").first
    panel.wait_for(state="visible", timeout=60_000)
    epochs = page.locator(".widget-inline-hbox", has_text="epochs").locator("input").first
    epochs.fill("1000")
    epochs.press("Enter")
    panel.locator("button", has_text="Start").click()
    stop = panel.locator("button", has_text="Stop")
    page.wait_for_function("el => !el.disabled", arg=stop.element_handle(), timeout=30_000)


def _cpu_busy(process: psutil.Process, seconds: float = 1.5) -> float:
    """CPU use of ``process`` (all its threads) over ``seconds``, in % of one core."""
    process.cpu_percent(None)
    time.sleep(seconds)
    return process.cpu_percent(None)


def test_closed_tab_stops_training_and_frees_its_kernel(open_dashboard_on, bounded_server,
                                                        artifacts):
    _wait_no_kernels(bounded_server)
    page = open_dashboard_on(bounded_server)
    (kernel,) = bounded_server.kernel_processes()
    _start_long_training(page)
    assert _cpu_busy(kernel) > 50, "training did not start in the kernel"

    # open page, busy kernel: never culled, however long the cull window has passed
    time.sleep(CULL_AFTER_S + 4)
    assert kernel.is_running() and _cpu_busy(kernel) > 50
    page.screenshot(path=str(artifacts / "kernels_training_before_close.png"))

    page.close()  # no beforeunload: no shutdown beacon, as when a browser crashes
    took = _wait_gone(bounded_server, {kernel.pid}, CULL_DEADLINE_S)
    print(f"kernel of a closed, training tab gone after {took:.1f} s "
          f"(cull window {CULL_AFTER_S} s)")


def test_normally_closed_tab_frees_its_kernel_at_once(open_dashboard_on, bounded_server):
    _wait_no_kernels(bounded_server)
    page = open_dashboard_on(bounded_server)
    (kernel,) = bounded_server.kernel_processes()
    # leaving the page fires beforeunload, as closing a tab does: Voila's shutdown beacon
    page.goto("about:blank")
    page.close()
    took = _wait_gone(bounded_server, {kernel.pid}, CULL_AFTER_S - 2)  # before any culling
    print(f"kernel of a normally closed tab gone after {took:.1f} s")


def test_kernel_cap_gives_a_clear_page_then_frees_up(browser, open_dashboard_on, bounded_server,
                                                     artifacts):
    _wait_no_kernels(bounded_server)
    # page views that never connect (plain HTTP requests) hold a kernel each
    for _ in range(MAX_KERNELS):
        with urllib.request.urlopen(bounded_server.url, timeout=120) as reply:
            assert reply.status == 200
            reply.read()
    assert len(bounded_server.kernel_processes()) == MAX_KERNELS

    t0 = time.perf_counter()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(bounded_server.url, timeout=30)
    assert time.perf_counter() - t0 < 5, "the busy page must come at once, not after a hang"
    assert refused.value.code == 503 and refused.value.headers["Retry-After"] == "60"
    assert "The dashboard is busy" in refused.value.read().decode()

    page = browser.new_page()
    try:
        response = page.goto(bounded_server.url)
        assert response.status == 503
        text = page.locator("#pw-capacity").inner_text()
        assert f"{MAX_KERNELS} dashboard sessions are open" in text and "try again" in text
        page.screenshot(path=str(artifacts / "kernels_cap_page.png"))
    finally:
        page.close()
    assert len(bounded_server.kernel_processes()) == MAX_KERNELS  # the refusal started none

    # nobody has those pages open: culled within the window, then the dashboard opens again
    _wait_gone(bounded_server, {p.pid for p in bounded_server.kernel_processes()}, CULL_DEADLINE_S)
    page = open_dashboard_on(bounded_server)
    page.goto("about:blank")
    page.close()
