"""HAADFViewer in a real browser: image transfer format and render time.

Checks the claim "the image travels as a binary float32 buffer, never a JSON
list, and a 1024x1024 image renders in under 200 ms" end to end. The script
writes a small notebook into a temporary directory that shows one
``plasmonwidgets.widgets.HAADFViewer`` per size (256², 1024², 2048² float32
HAADF-like images by default), each with two ipywidgets Buttons, serves it with
``python -m voila NB --no-browser --port P --Voila.ip=127.0.0.1`` and opens it in
headless Debian Chromium (Playwright, no browser download).

What is timed, per size, over ``--reps`` (>= 20) repetitions after ``--warmup``:

render_ms
    The viewer's own ``render_ms`` (mirrored on its root element as
    ``data-render-ms``): ``performance.now()`` around reading the float32 buffer,
    colouring H*W pixels through the 256-entry LUT into ImageData, putImageData
    and drawing the scaled view onto the on-screen canvas. Reported for the
    redraws caused by a new image.
e2e new image
    In the page: ``performance.now()`` just before ``button.click()`` on the
    "new image" button until the viewer's ``data-render-ms`` attribute is written
    again (a MutationObserver; the attribute is set right after the canvas is
    redrawn). The click goes to the kernel as a widget message; the kernel calls
    ``viewer.set_image()`` with the other of two precomputed images (robust
    range = percentiles over all H*W values, float32 bytes), the update with
    the image buffer comes back over the websocket, the browser recolours and
    redraws. This is the real "Python replaces the image" path a user sees.
e2e cmap
    Same, for the "cmap" button: the kernel sets ``viewer.cmap`` (grey <->
    viridis), which sends the 1 KiB LUT; the browser recolours all H*W pixels.
    Isolates the round trip + recolour without the image transfer.

``next frame`` (JSON only) is the click until the first requestAnimationFrame
after the redraw, i.e. roughly until the new canvas content is on screen.
``kernel set_image`` (JSON only) is the kernel-side time of ``set_image``.

Wire check: every websocket frame the page receives is captured
(``page.on("websocket")`` -> ``ws.on("framereceived")``) and decoded (Jupyter's
legacy binary format or the v1 kernel websocket protocol). For each size the
image update messages must arrive as binary frames carrying one buffer of
exactly 4*H*W bytes at buffer path ``image``, and no text (JSON) frame may hold
image data. The kernel's last ``render_ms`` is compared with the page's, to
show the trait round trip.

Run:  .venv/bin/python benchmarks/bench_viewer_render.py [--reps 20] [--warmup 3]
          [--sizes 256 1024 2048] [--json out.json] [--keep-dir]

Exit status 1 if the 1024² p95 render_ms exceeds 200 ms or the wire check fails.
Needs /usr/bin/chromium (or $PLASMONWIDGETS_CHROMIUM) and the playwright package.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from plasmonwidgets.app.voila_process import CHROMIUM, CHROMIUM_ARGS, VoilaProcess, free_port

TARGET_SIZE = 1024
TARGET_P95_RENDER_MS = 200.0
REPO = Path(__file__).resolve().parents[1]

# --- the notebook ------------------------------------------------------------------

SETUP_CELL = """\
import json, time
import numpy as np
import ipywidgets as w
from IPython.display import display
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer

SIZES = {sizes!r}

def haadf(n, seed):
    # atom-column lattice (period 8 px) with noise, float32, HAADF-like contrast
    rng = np.random.default_rng(seed)
    y = np.arange(n, dtype=np.float32)[:, None]
    x = np.arange(n, dtype=np.float32)[None, :]
    lattice = (np.cos(np.pi * (x + seed) / 8) ** 2) * (np.cos(np.pi * y / 8) ** 2)
    img = 100 + 400 * lattice + rng.normal(0, 20, size=(n, n))
    return img.astype(np.float32)

viewers, kernel_ms = {{}}, {{n: [] for n in SIZES}}
"""

SIZE_CELL = """\
n = {n}
images = [haadf(n, 0), haadf(n, 1)]
viewer = HAADFViewer(image=images[0], title="bench {n}", size=320)
state = {{"i": 0, "c": 0}}

def on_image(_, n=n, viewer=viewer, images=images, state=state):
    state["i"] ^= 1
    t0 = time.perf_counter()
    viewer.set_image(images[state["i"]])
    kernel_ms[n].append((time.perf_counter() - t0) * 1e3)

def on_cmap(_, viewer=viewer, state=state):
    state["c"] ^= 1
    viewer.cmap = ("grey", "viridis")[state["c"]]

b_image = w.Button(description="new image {n}")
b_image.add_class("bench-image-{n}")
b_image.on_click(on_image)
b_cmap = w.Button(description="cmap {n}")
b_cmap.add_class("bench-cmap-{n}")
b_cmap.on_click(on_cmap)
box = w.VBox([w.HBox([b_image, b_cmap]), viewer])
box.add_class("bench-{n}")
viewers[n] = viewer
display(box)
"""

REPORT_CELL = """\
report = w.Textarea(value="")
report.add_class("bench-report")

def on_report(_):
    report.value = json.dumps({
        "kernel_set_image_ms": {str(k): v for k, v in kernel_ms.items()},
        "kernel_render_ms": {str(k): v.render_ms for k, v in viewers.items()},
    })

b_report = w.Button(description="report")
b_report.add_class("bench-report-button")
b_report.on_click(on_report)
display(w.VBox([b_report, report]))
"""


def write_notebook(directory: Path, sizes: list[int]) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cells = [SETUP_CELL.format(sizes=list(sizes))]
    cells += [SIZE_CELL.format(n=n) for n in sizes]
    cells.append(REPORT_CELL)
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    path = directory / "bench_viewer.ipynb"
    nbformat.write(nb, path)
    return path


# --- the server ----------------------------------------------------------------------


def start_voila(notebook: Path, log_path: Path) -> VoilaProcess:
    """Plain ``python -m voila NB`` on a free 127.0.0.1 port, in its own process group."""
    port = free_port()
    cmd = [sys.executable, "-m", "voila", str(notebook), "--no-browser",
           f"--port={port}", "--Voila.ip=127.0.0.1"]  # fmt: skip
    return VoilaProcess(cmd, port, log_path, cwd=notebook.parent,
                        env=dict(os.environ, PYTHONUNBUFFERED="1"))


# --- websocket frames -------------------------------------------------------------


def decode_frame(payload: bytes) -> dict | None:
    """A binary Jupyter websocket frame as {protocol, msg_type, data, buffers}, or None.

    Two formats exist: the legacy one (uint32 BE count, uint32 BE offsets, the JSON
    message, then the buffers) and v1.kernel.websocket.jupyter.org (uint64 LE count,
    uint64 LE offsets, channel, header, parent_header, metadata, content, buffers).
    """
    n = len(payload)
    if n >= 16:
        count = int.from_bytes(payload[:8], "little")
        if 3 <= count < 1000 and n >= 8 * (count + 1):
            offsets = [int.from_bytes(payload[8 * (i + 1): 8 * (i + 2)], "little") for i in range(count)]
            if offsets[0] == 8 * (count + 1) and offsets == sorted(offsets) and offsets[-1] == n:
                parts = [payload[offsets[i]: offsets[i + 1]] for i in range(1, count - 1)]
                header, content = json.loads(parts[0]), json.loads(parts[3])
                return {"protocol": "v1", "msg_type": header.get("msg_type"),
                        "data": content.get("data", {}), "buffers": [len(b) for b in parts[4:]]}
    if n >= 8:
        nbufs = struct.unpack("!I", payload[:4])[0]
        if 1 <= nbufs < 1000 and n >= 4 * (nbufs + 1):
            offsets = list(struct.unpack("!" + "I" * nbufs, payload[4: 4 * (nbufs + 1)]))
            if offsets[0] == 4 * (nbufs + 1) and offsets == sorted(offsets) and offsets[-1] <= n:
                ends = [*offsets[1:], n]
                msg = json.loads(payload[offsets[0]: ends[0]])
                return {"protocol": "legacy", "msg_type": msg.get("header", {}).get("msg_type"),
                        "data": msg.get("content", {}).get("data", {}),
                        "buffers": [e - s for s, e in zip(offsets[1:], ends[1:])]}
    return None


class FrameLog:
    """Every frame received on the page's websockets, kept small (sizes, not payloads)."""

    def __init__(self):
        self.image_updates: list[dict] = []  # binary update messages carrying `image`
        self.binary_frames = 0
        self.text_frames = 0
        self.max_text_frame = 0
        self.text_with_image: list[int] = []  # sizes of JSON frames whose state has `image`
        self.protocols: set[str] = set()
        self.undecoded = 0

    def attach(self, ws) -> None:
        ws.on("framereceived", self.on_frame)

    def on_frame(self, payload) -> None:
        if isinstance(payload, str):
            self.text_frames += 1
            self.max_text_frame = max(self.max_text_frame, len(payload))
            if '"image"' in payload:
                try:
                    msg = json.loads(payload)
                    state = msg.get("content", {}).get("data", {}).get("state", {})
                    if "image" in state:
                        self.text_with_image.append(len(payload))
                except ValueError:
                    pass
            return
        self.binary_frames += 1
        try:
            msg = decode_frame(bytes(payload))
        except (ValueError, UnicodeDecodeError):
            msg = None
        if msg is None:
            self.undecoded += 1
            return
        self.protocols.add(msg["protocol"])
        data = msg["data"] if isinstance(msg["data"], dict) else {}
        paths = data.get("buffer_paths") or []
        if data.get("method") == "update" and ["image"] in paths:
            state = data.get("state", {})
            self.image_updates.append({
                "t": time.perf_counter(), "frame_bytes": len(payload),
                "image_buffer_bytes": msg["buffers"][paths.index(["image"])],
                "image_in_json_state": "image" in state,
                "image_shape": state.get("image_shape"),
            })  # fmt: skip


# --- measurements in the page ------------------------------------------------------

CLICK_AND_WAIT_JS = """async ([n, kind, timeoutMs]) => {
  const root = document.querySelector(`.bench-${n} .pw-haadf`);
  const btn = document.querySelector(`.bench-${kind}-${n}`);
  if (!root || !btn) throw new Error(`no viewer/button for ${kind} ${n}`);
  return await new Promise((resolve, reject) => {
    let t0 = 0;
    const obs = new MutationObserver(() => {
      const t1 = performance.now();
      obs.disconnect();
      clearTimeout(timer);
      const render = parseFloat(root.dataset.renderMs);
      requestAnimationFrame(() => resolve({e2e: t1 - t0, frame: performance.now() - t0, render}));
    });
    const timer = setTimeout(() => { obs.disconnect(); reject(new Error(`timeout ${kind} ${n}`)); },
                             timeoutMs);
    obs.observe(root, {attributes: true, attributeFilter: ["data-render-ms"]});
    t0 = performance.now();
    btn.click();
  });
}"""

# counts every data-render-ms write per viewer, to check one redraw per click
COUNTERS_JS = """(sizes) => {
  window.__benchRedraws = {};
  for (const n of sizes) {
    const root = document.querySelector(`.bench-${n} .pw-haadf`);
    window.__benchRedraws[n] = 0;
    new MutationObserver((records) => { window.__benchRedraws[n] += records.length; })
      .observe(root, {attributes: true, attributeFilter: ["data-render-ms"]});
  }
}"""

# a cheap fingerprint of what the on-screen canvas shows
CANVAS_SUM_JS = """(n) => {
  const c = document.querySelector(`.bench-${n} canvas.pw-haadf-canvas`);
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let s = 0;
  for (let i = 0; i < d.length; i += 7) s = (s * 31 + d[i]) % 1000000007;
  return [c.width, c.height, s];
}"""


def _pct(values, q) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def run(args) -> dict:
    from playwright.sync_api import sync_playwright

    sizes = list(args.sizes)
    workdir = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    notebook = write_notebook(workdir, sizes)
    server = start_voila(notebook, workdir / "voila.log")
    frames = FrameLog()
    t_launch = time.perf_counter()
    try:
        server.wait_ready()
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS),
                                         headless=True)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 2400})
                page.set_default_timeout(60_000)
                page.on("websocket", frames.attach)
                page.goto(server.url, wait_until="domcontentloaded")
                for n in sizes:
                    page.wait_for_function(
                        "n => { const r = document.querySelector(`.bench-${n} .pw-haadf`);"
                        " return r && r.dataset.renderMs !== undefined; }",
                        arg=n, timeout=120_000,
                    )  # fmt: skip
                server.kernel_processes()  # remembered, so stop() ends them
                t_ready = time.perf_counter() - t_launch
                page.evaluate(COUNTERS_JS, sizes)
                clicks = dict.fromkeys(sizes, 0)
                results = {}
                for n in sizes:
                    row = {"size": n, "reps": args.reps}
                    for kind in ("image", "cmap"):
                        before = page.evaluate(CANVAS_SUM_JS, n)
                        frames_before = len(frames.image_updates)
                        samples = []
                        for i in range(args.warmup + args.reps):
                            r = page.evaluate(CLICK_AND_WAIT_JS, [n, kind, args.timeout_ms])
                            clicks[n] += 1
                            if i >= args.warmup:
                                samples.append(r)
                        after = page.evaluate(CANVAS_SUM_JS, n)
                        e2e = [s["e2e"] for s in samples]
                        render = [s["render"] for s in samples]
                        frame = [s["frame"] for s in samples]
                        row[kind] = {
                            "render_ms": render, "e2e_ms": e2e, "next_frame_ms": frame,
                            "render_p50": _pct(render, 50), "render_p95": _pct(render, 95),
                            "e2e_p50": _pct(e2e, 50), "e2e_p95": _pct(e2e, 95),
                            "next_frame_p50": _pct(frame, 50), "next_frame_p95": _pct(frame, 95),
                            # an even number of toggles ends on the starting picture
                            "canvas_changed_or_even": (before != after) or (
                                (args.warmup + args.reps) % 2 == 0),
                        }  # fmt: skip
                        if kind == "image":
                            new = frames.image_updates[frames_before:]
                            row["image_frames"] = len(new)
                            row["image_buffer_bytes"] = sorted({f["image_buffer_bytes"] for f in new})
                            row["image_frame_bytes_p50"] = _pct([f["frame_bytes"] for f in new], 50)
                            row["image_in_json"] = any(f["image_in_json_state"] for f in new)
                    results[n] = row
                redraws = page.evaluate("() => window.__benchRedraws")
                page.click(".bench-report-button")
                page.wait_for_function(
                    "() => { const t = document.querySelector('.bench-report textarea');"
                    " return t && t.value.length > 0; }", timeout=30_000,
                )  # fmt: skip
                report = json.loads(page.eval_on_selector(".bench-report textarea", "t => t.value"))
                page_render = {str(n): page.evaluate(
                    "n => parseFloat(document.querySelector(`.bench-${n} .pw-haadf`).dataset.renderMs)", n)
                    for n in sizes}  # fmt: skip
                page.close()
            finally:
                browser.close()
    finally:
        server.stop()
        log_tail = server.log_tail()
        if args.keep_dir:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    for n in sizes:
        ks = report["kernel_set_image_ms"].get(str(n), [])[args.warmup:]
        results[n]["kernel_set_image_p50"] = _pct(ks, 50)
        results[n]["kernel_set_image_p95"] = _pct(ks, 95)
        results[n]["redraws_seen"] = int(redraws.get(str(n), redraws.get(n, -1)))
        results[n]["clicks"] = clicks[n]
    return {
        "results": results, "ready_s": t_ready, "kernel_render_ms": report["kernel_render_ms"],
        "page_render_ms": page_render, "frames": {
            "binary": frames.binary_frames, "text": frames.text_frames,
            "max_text_frame_bytes": frames.max_text_frame, "text_with_image": frames.text_with_image,
            "protocols": sorted(frames.protocols), "undecoded_binary": frames.undecoded,
        }, "voila_log_tail": log_tail,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="timed redraws per size and trigger (>= 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed redraws first")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--timeout-ms", type=int, default=20_000, help="per redraw")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--keep-dir", action="store_true", help="keep the notebook and voila log")
    args = parser.parse_args(argv)
    args.reps = max(20, int(args.reps))
    if not CHROMIUM.exists():
        print(f"no Chromium at {CHROMIUM}; set PLASMONWIDGETS_CHROMIUM", file=sys.stderr)
        return 2
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    t0 = time.perf_counter()
    out = run(args)
    wall = time.perf_counter() - t0
    res = out["results"]

    print(f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"Chromium headless (--disable-gpu), {args.reps} timed + {args.warmup} warm-up redraws "
          f"per size and trigger; page ready {out['ready_s']:.1f} s after launch")  # fmt: skip
    print(f"websocket: protocol {'/'.join(out['frames']['protocols']) or '?'}, "
          f"{out['frames']['binary']} binary + {out['frames']['text']} text frames received, "
          f"largest text frame {out['frames']['max_text_frame_bytes']} B")
    head = (f"{'size':>9s} | {'render ms':^15s} | {'e2e new image ms':^17s} | {'e2e cmap ms':^15s} |"
            f" {'render(cmap)':^15s} | {'kernel':>7s} | {'image buffer B':>14s} {'4·H·W':>9s} {'bin':>4s}")
    print(head)
    print(f"{'':>9s} | {'p50':>7s} {'p95':>7s} | {'p50':>8s} {'p95':>8s} | {'p50':>7s} {'p95':>7s} |"
          f" {'p50':>7s} {'p95':>7s} | {'p50 ms':>7s} |")
    ok, wire_ok = True, True
    problems = []
    for n, r in res.items():
        im, cm = r["image"], r["cmap"]
        bufs = r["image_buffer_bytes"]
        expect = 4 * n * n
        binary_ok = (r["image_frames"] >= args.reps and bufs == [expect] and not r["image_in_json"])
        r["binary_ok"] = binary_ok
        r["expected_bytes"] = expect
        print(f"{n:>4d}²{'':>4s} | {im['render_p50']:7.1f} {im['render_p95']:7.1f} | "
              f"{im['e2e_p50']:8.1f} {im['e2e_p95']:8.1f} | {cm['e2e_p50']:7.1f} {cm['e2e_p95']:7.1f} | "
              f"{cm['render_p50']:7.1f} {cm['render_p95']:7.1f} | {r['kernel_set_image_p50']:7.1f} | "
              f"{','.join(map(str, bufs)) or '-':>14s} {expect:>9d} {'yes' if binary_ok else 'NO':>4s}")
        if not binary_ok:
            wire_ok = False
            problems.append(f"{n}²: image update frames {r['image_frames']}, buffers {bufs} B, "
                            f"expected binary {expect} B")  # fmt: skip
        if r["redraws_seen"] != r["clicks"]:
            problems.append(f"{n}²: {r['redraws_seen']} redraws for {r['clicks']} clicks")
        if not (im["canvas_changed_or_even"] and cm["canvas_changed_or_even"]):
            problems.append(f"{n}²: the canvas did not change")
    if out["frames"]["text_with_image"]:
        wire_ok = False
        problems.append(f"image sent in JSON text frames: {out['frames']['text_with_image']}")
    print("image frame total (header+JSON+buffer), p50: "
          + ", ".join(f"{n}²: {r['image_frame_bytes_p50']:.0f} B" for n, r in res.items()))
    print(f"render_ms as the kernel last saw it: {out['kernel_render_ms']} (page: {out['page_render_ms']})")
    if TARGET_SIZE in res:
        p95 = res[TARGET_SIZE]["image"]["render_p95"]
        verdict = "OK" if p95 <= TARGET_P95_RENDER_MS else "MISSED"
        print(f"target: {TARGET_SIZE}² p95 render_ms {p95:.1f} <= {TARGET_P95_RENDER_MS:.0f} ms: {verdict}")
        ok = p95 <= TARGET_P95_RENDER_MS
    for p in problems:
        print(f"PROBLEM: {p}")
    ok = ok and wire_ok
    print(f"total {wall:.1f} s")
    if args.json:
        payload = {"target_p95_render_ms": TARGET_P95_RENDER_MS, "target_size": TARGET_SIZE, "ok": ok,
                   "wire_ok": wire_ok, "problems": problems, "wall_s": wall, "reps": args.reps,
                   "warmup": args.warmup,
                   **{k: v for k, v in out.items() if k != "voila_log_tail"},
                   "results": {str(n): r for n, r in res.items()}}  # fmt: skip
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
