"""Widget latency: a latent slider change -> new arrays on the bqplot marks (Python side).

Times what the kernel does between a ``FloatSlider.value`` change arriving and
the decoded output being set on the marks that the browser draws: decoding,
back-projection (k nearest observed tiles), the neighbour strip, the HAADF
highlight and the SpectrumView/TileView updates. Browser rendering and the
websocket are not included.

Cases, for im2spec (target: p95 <= 10 ms over >= 500 changes) and spec2im (reported):
  decode  ``model.decode`` of one latent vector alone, for reference: the rest of
          a slider case's time is the widget overhead
  sync    decode inside the slider callback (LatentExplorer(mode="sync"))
  thread  the worker thread decodes; timed until the decoded view is updated
          (``explorer.wait(all_views=False)`` returns), so the hand-off is included;
          the nearest-tile views and the highlight are throttled to 5 Hz in this mode
          and run in the same call when due

On a loaded machine the tails follow the decode's own tail; compare with the
decode row measured in the same run. Exit status 1 if an im2spec case misses
the target.

Run: python benchmarks/bench_widget_latency.py [--changes 500] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch

import plasmonwidgets as pw
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.latent_explorer import LatentExplorer

TARGET_P95_MS = 10.0


def _scan(size: int, n_energy: int, rng: np.random.Generator) -> pw.SpectrumImage:
    """A random SpectrumImage of size x size pixels (latency does not depend on content)."""
    haadf = rng.gamma(2.0, 50.0, size=(size, size)).astype(np.float32)
    spectra = rng.gamma(2.0, 1.0, size=(size, size, n_energy)).astype(np.float32)
    return pw.SpectrumImage(spectra, np.linspace(0.2, 1.2, n_energy), haadf)


def _model(direction: str, pairs, latent_dim: int):
    if direction == "im2spec":
        model = pw.Im2Spec(window=pairs.window, n_energy=pairs.n_energy, latent_dim=latent_dim,
                           preset="paper", device="cpu")
        model.fit_normalization(pairs.images, pairs.spectra)
    else:
        model = pw.Spec2Im(n_energy=pairs.n_energy, window=pairs.window, latent_dim=latent_dim,
                           preset="paper", device="cpu")
        model.fit_normalization(pairs.spectra, pairs.images)
    return model


def _time_changes(explorer: LatentExplorer, changes: int, wait: bool) -> np.ndarray:
    """Latency (ms) of each slider change until the decoded output is on the marks."""
    slider = explorer.sliders[0]
    values = np.linspace(slider.min, slider.max, changes + 50)
    out = np.empty(changes)
    for i, v in enumerate(values):
        count = explorer.decode_count
        t0 = time.perf_counter()
        slider.value = float(v)
        if wait:  # the decoded view; the neighbour views follow at most every 0.2 s
            explorer.wait(5, all_views=False)
        dt = time.perf_counter() - t0
        if explorer.decode_count != count + 1:
            raise RuntimeError("a slider change did not produce exactly one decode")
        if i >= 50:  # the first 50 warm up torch and the serialisers
            out[i - 50] = dt
    z = explorer.z.astype(np.float32)
    expected = explorer.model.decode(z)
    if not np.allclose(explorer.last_output, expected, rtol=1e-5, atol=1e-5):
        raise RuntimeError("the marks do not show the decoded output of the last value")
    return out * 1e3


def _time_decode(model, changes: int) -> np.ndarray:
    z = np.zeros(model.latent_dim, dtype=np.float32)
    out = np.empty(changes + 50)
    for i in range(changes + 50):
        z[0] = i * 1e-3
        t0 = time.perf_counter()
        model.decode(z)
        out[i] = time.perf_counter() - t0
    return out[50:] * 1e3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=500, help="timed changes (>= 500)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--size", type=int, default=64, help="scan side in pixels")
    parser.add_argument("--n-energy", type=int, default=100)
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    changes = max(int(args.changes), 500)
    rng = np.random.default_rng(0)
    si = _scan(args.size, args.n_energy, rng)
    pairs = pw.make_tiles(si, window=16, pad="reflect")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {len(pairs)} tiles, "
          f"E={args.n_energy}, d={args.latent_dim}, {changes} changes")
    print(f"{'case':44s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} {'target':>8s}")
    results, ok = [], True
    for direction in ("im2spec", "spec2im"):
        model = _model(direction, pairs, args.latent_dim)
        target = TARGET_P95_MS if direction == "im2spec" else None
        for mode in ("decode", "sync", "thread"):
            if mode == "decode":
                t = _time_decode(model, changes)
                name, case_target = f"{direction} model.decode alone", None
            else:
                explorer = LatentExplorer(model, pairs, viewer=HAADFViewer(si), mode=mode, k=5)
                explorer.wait(10)
                t = _time_changes(explorer, changes, wait=mode == "thread")
                explorer.close()
                name, case_target = f"{direction} slider -> marks ({mode})", target
            p50, p95 = np.percentile(t, [50, 95])
            verdict = "" if case_target is None else ("ok" if p95 <= case_target else "SLOW")
            ok &= verdict != "SLOW"
            print(f"{name:44s} {p50:8.3f} {p95:8.3f} {t.max():8.2f} "
                  f"{'' if case_target is None else f'{case_target:.0f}':>8s} {verdict}")
            results.append(dict(case=name, p50_ms=p50, p95_ms=p95, max_ms=float(t.max()),
                                target_ms=case_target, changes=changes))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(torch=torch.__version__, threads=torch.get_num_threads(),
                           results=results), fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
