"""How fast the dashboard opens: first HAADF image, and each tab's first build.

Browser part (headless Chromium against ``plasmonwidgets demo``, as a user gets it):

first image
    From ``page.goto`` of the dashboard until the Data tab's HAADF viewer has drawn its
    image (the viewer writes ``data-render-ms`` on its element right after drawing).
    Each page view starts its own kernel, which runs ``notebooks/dashboard.ipynb``, so
    this includes the kernel start, the imports, loading the data, building the Data tab
    and sending it to the page. The page loads the pre-trained models (and imports
    torch) only after that image is drawn (``Dashboard(defer_models=...)``), unless
    ``$PLASMONWIDGETS_DEFER_MODELS=0``. The first page after the server started is
    reported apart ("cold": files not yet in the OS cache).
predictions
    From ``page.goto`` until the probe's spectrum shows a model's prediction beside the
    measured spectrum (the models are loaded and in use).
tab
    From the click on a tab's title until an element of its content is visible. The
    page builds the other tabs in the background once the first image is drawn; the
    clicks start ``--look`` seconds after it (a user looking at the Data tab), so a
    tab is either ready or still being built.

Kernel part (``--profile``): the same steps in a plain Python process, without a
browser: import, ``Dashboard()`` construction and each tab's build, timed, plus the
functions of plasmonwidgets that take the most time in each (cProfile, cumulative).

``--compare`` runs two servers side by side, one loading the models before the first
image (``PLASMONWIDGETS_DEFER_MODELS=0``, as before deferral) and one after it, and
opens their pages in turn, so both see the same machine load.

Goals (issue 17): first image <= 5 s, each tab <= 1 s.

Run:  .venv/bin/python benchmarks/bench_dashboard_load.py [--pages 3] [--look 5] [--profile]
          [--compare] [--json out.json]

Needs /usr/bin/chromium (or $PLASMONWIDGETS_CHROMIUM) and the playwright package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from plasmonwidgets.app.voila_process import CHROMIUM, CHROMIUM_ARGS, VoilaProcess, free_port

GOAL_FIRST_IMAGE_S = 5.0
GOAL_TAB_S = 1.0
IMAGE_DRAWN = ".pw-dashboard-viewer [data-render-ms]"
# measured spectrum and at least one prediction drawn at the probe (each line also has a
# short legend path)
PREDICTIONS_DRAWN = """() => Array.from(document.querySelectorAll('.pw-probe-spectrum path.line'))
    .filter(e => (e.getAttribute('d') || '').length > 100).length >= 2"""
TAB_READY = {  # what shows that a tab was built: one element of its content
    "NMF": ".pw-dashboard-tabs canvas.pw-haadf-canvas",
    "Train": ".pw-training-progress",
    "Errors": ".pw-dashboard-tabs .pw-haadf-colorbar",
    "Latent": ".pw-latent-explorer .widget-slider .noUi-handle",
    "Inverse design": ".pw-dashboard-tabs button:has-text('Find structures')",
}
TIMEOUT_MS = 120_000

# run in a fresh interpreter by --profile: the kernel side of opening the page
KERNEL_SCRIPT = r"""
import cProfile, json, pstats, sys, time
t0 = time.perf_counter()
from plasmonwidgets.app.dashboard import Dashboard
from plasmonwidgets.app.dashboard.settings import TABS, defer_models_setting
steps = {"import": time.perf_counter() - t0}
top = {}

def profiled(name, fn):
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    out = fn()
    prof.disable()
    steps[name] = time.perf_counter() - t
    stats = pstats.Stats(prof)
    rows = []
    for (path, line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        if "plasmonwidgets" in path and "/app/dashboard/__init__" not in path:
            rows.append((ct, f"{path.split('plasmonwidgets/')[-1]}:{line} {func}"))
    rows.sort(reverse=True)
    top[name] = [(round(ct, 3), where) for ct, where in rows[:12]]
    return out

# as the Voila page: models deferred unless $PLASMONWIDGETS_DEFER_MODELS=0
d = profiled("Dashboard()", lambda: Dashboard(catch_widget_errors=True,
                                              defer_models=defer_models_setting(True)))
profiled("models (deferred: after the first image)", lambda: d.wait_models(300))
for name in TABS[1:]:
    profiled(f"tab {name}", lambda name=name: d.select_tab(name))
d.wait_metrics(120)
steps["metrics (background thread, all 4 models)"] = time.perf_counter() - t0 - sum(steps.values())
d.close()
print(json.dumps({"steps_s": {k: round(v, 3) for k, v in steps.items()}, "top": top}))
"""


def _percentiles(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "min": round(min(values), 2),
            "max": round(max(values), 2), "n": len(values)}


def measure_pages(servers: dict[str, VoilaProcess], n_pages: int, *,
                  look_s: float) -> dict[str, list[dict[str, float]]]:
    """Open ``n_pages`` dashboards of each server, the servers in turn; time the first
    image, the first predictions and each tab (clicked ``look_s`` seconds after the first
    image). Returns the runs by server name."""
    from playwright.sync_api import sync_playwright

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS))
        try:
            for _ in range(n_pages):
                for name, server in servers.items():
                    runs[name].append(_measure_page(browser, server, look_s=look_s))
        finally:
            browser.close()
    return runs


def _measure_page(browser, server: VoilaProcess, *, look_s: float) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    t0 = time.perf_counter()
    page.goto(server.url, wait_until="commit")
    page.locator(IMAGE_DRAWN).wait_for(state="attached", timeout=TIMEOUT_MS)
    run = {"first image": time.perf_counter() - t0}
    page.wait_for_function(PREDICTIONS_DRAWN, timeout=TIMEOUT_MS, polling=50)
    run["predictions"] = time.perf_counter() - t0
    page.wait_for_timeout(max(0.0, look_s - (run["predictions"] - run["first image"])) * 1000)
    for tab, selector in TAB_READY.items():
        t = time.perf_counter()
        page.locator(".pw-dashboard-tabs .lm-TabBar-tab", has_text=tab).first.click()
        page.locator(selector).locator("visible=true").first.wait_for(timeout=TIMEOUT_MS)
        run[f"tab {tab}"] = time.perf_counter() - t
        page.wait_for_timeout(300)
    page.goto("about:blank")
    page.close()
    time.sleep(2.0)  # let the closed page's kernel shut down
    return run


def _summary(runs: list[dict[str, float]]) -> dict:
    cold, warm = runs[0], runs[1:] or runs
    return {"cold page (first after server start)": {k: round(v, 2) for k, v in cold.items()},
            "warm pages": {k: _percentiles([r[k] for r in warm]) for k in cold}}


def profile_kernel() -> dict:
    """The kernel side of opening the page, in a fresh interpreter (see KERNEL_SCRIPT)."""
    out = subprocess.run([sys.executable, "-c", KERNEL_SCRIPT], capture_output=True, text=True,
                         timeout=600, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=3, help="page views after the cold one")
    parser.add_argument("--profile", action="store_true", help="also time the kernel side")
    parser.add_argument("--look", type=float, default=5.0,
                        help="seconds between the first image and the first tab click (default 5)")
    parser.add_argument("--theme", choices=("light", "dark"), default="light")
    parser.add_argument("--compare", action="store_true",
                        help="also a server loading the models before the first image, pages in turn")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    # name -> $PLASMONWIDGETS_DEFER_MODELS of its server ("" = the page's default)
    variants = {"models after first image": "", "models before first image": "0"}
    if not args.compare:
        variants = {"dashboard": ""}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {}
        try:
            for i, (name, defer) in enumerate(variants.items()):
                port = free_port()
                data = Path(tmp) / f"data{i}"
                data.mkdir()
                cmd = [sys.executable, "-m", "plasmonwidgets.app.cli", "demo", "--port", str(port),
                       "--data-dir", str(data), "--theme", args.theme]
                env = dict(os.environ, PYTHONUNBUFFERED="1")
                env.pop("PLASMONWIDGETS_SMALL", None)  # the dashboard with its normal settings
                env.pop("PLASMONWIDGETS_DEFER_MODELS", None)
                if defer:
                    env["PLASMONWIDGETS_DEFER_MODELS"] = defer
                servers[name] = VoilaProcess(cmd, port, Path(tmp) / f"voila{i}.log", env=env)
            for server in servers.values():
                server.wait_ready()
            runs = measure_pages(servers, 1 + args.pages, look_s=args.look)
        finally:
            for server in servers.values():
                server.stop()
    result = _summary(runs["dashboard"]) if not args.compare else {
        name: _summary(r) for name, r in runs.items()}
    result.update({
        "goals_s": {"first image": GOAL_FIRST_IMAGE_S, "each tab": GOAL_TAB_S},
        "look_s": args.look,
        "machine": {"cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
                    "python": platform.python_version()},
    })
    if args.profile:
        result["kernel"] = profile_kernel()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    for name, r in runs.items():
        warm_med = _summary(r)["warm pages"]
        missed = [k for k, v in warm_med.items() if k != "predictions"
                  and v["median"] > (GOAL_FIRST_IMAGE_S if k == "first image" else GOAL_TAB_S)]
        print(f"{name}: goals missed (warm medians): " + (", ".join(missed) if missed else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
