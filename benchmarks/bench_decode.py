"""Decode latency on the CPU: what a latent-space widget pays per mouse move.

Targets (p95 over >= 1000 calls): one latent vector -> spectrum <= 2 ms,
-> 16x16 tile <= 3 ms, an 8x8 latent grid (``analysis.latent_grid``, 64
decodes in one batch) <= 50 ms. Also times a back-projection query (nearest
observed tiles, KD-tree) for a single point.

Two model sets are timed: ``pretrained``, the packaged default models the
dashboard loads (``plasmonwidgets.pretrained``, 10 latent dims), and ``paper``,
the constructor defaults (the paper's 64 filters, E=100, 10 latent dims) with a
fitted normalisation.

Run: python benchmarks/bench_decode.py [--calls 1000] [--threads N] [--models pretrained paper]
     [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

import plasmonwidgets as pw
from plasmonwidgets import analysis

TARGETS_MS = {"spectrum": 2.0, "tile": 3.0, "grid": 50.0}


def _timings(fn, calls: int, warmup: int = 50) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1e3  # ms


def _paper_models(rng: np.random.Generator, n_e: int = 100, window: int = 16):
    """Paper-size (``preset="paper"``) models with a non-trivial normalisation, as training would fit."""
    tiles = rng.gamma(2.0, 50.0, size=(256, window, window)).astype(np.float32)
    spectra = rng.gamma(2.0, 1.0, size=(256, n_e)).astype(np.float32)
    im2spec = pw.Im2Spec(window=window, n_energy=n_e, preset="paper", device="cpu")
    spec2im = pw.Spec2Im(n_energy=n_e, window=window, preset="paper", device="cpu")
    im2spec.fit_normalization(tiles, spectra)
    spec2im.fit_normalization(spectra, tiles)
    return im2spec, spec2im


def _pretrained_models():
    from plasmonwidgets import pretrained

    if {("im2spec", 10), ("spec2im", 10)} - set(pretrained.available()):
        return None
    return pretrained.load_default("im2spec", 10), pretrained.load_default("spec2im", 10)


def _index(model, rng: np.random.Generator, n: int = 2000):
    """A back-projection index over n synthetic tiles (the timing does not depend on content)."""
    w, n_e = model.window, model.n_energy
    pairs = pw.TilePairs(
        rng.gamma(2.0, 50.0, size=(n, w, w)).astype(np.float32),
        rng.gamma(2.0, 1.0, size=(n, n_e)).astype(np.float32),
        np.stack(np.unravel_index(np.arange(n), (40, n // 40)), axis=1),
        np.linspace(0.2, 1.2, n_e),
        (40, n // 40),
    )
    return analysis.LatentIndex(model, pairs)


def _bench_set(which: str, im2spec, spec2im, rng: np.random.Generator, calls: int) -> list:
    """Time every case for one (im2spec, spec2im) pair; print and return the rows."""
    z_one = rng.standard_normal(im2spec.latent_dim).astype(np.float32)
    index = _index(im2spec, rng)
    tag = f"{which} (d={im2spec.latent_dim}, E={im2spec.n_energy})"
    cases = [
        ("im2spec decode 1 z -> spectrum", lambda: im2spec.decode(z_one), "spectrum"),
        ("spec2im decode 1 z -> 16x16 tile", lambda: spec2im.decode(z_one), "tile"),
        ("im2spec latent_grid n=8", lambda: index.grid(8), "grid"),
        ("spec2im latent_grid n=8", lambda: analysis.latent_grid(spec2im, n=8, z=index.z), "grid"),
        ("LatentIndex.query 1 point, k=5", lambda: index.query(z_one, k=5), None),
    ]
    rows = []
    for name, fn, kind in cases:
        t = _timings(fn, calls)
        p50, p95 = np.percentile(t, [50, 95])
        target = TARGETS_MS.get(kind)
        verdict = "" if target is None else ("ok" if p95 <= target else "SLOW")
        print(f"{tag + ' ' + name:58s} {p50:8.3f} {p95:8.3f} {t.max():8.2f} "
              f"{'' if target is None else f'{target:.0f}':>7s} {verdict}")
        rows.append(dict(models=which, case=name, p50_ms=p50, p95_ms=p95,
                         max_ms=float(t.max()), target_ms=target, calls=calls))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000, help="timed calls per case (>= 1000)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--models", nargs="+", default=["pretrained", "paper"],
                        choices=["pretrained", "paper"])
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    calls = max(int(args.calls), 1000)
    rng = np.random.default_rng(0)
    # p95 is sensitive to other processes competing for the cores: report the load
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"load {load:.1f}, {calls} calls per case")
    print(f"{'case':58s} {'p50 ms':>8s} {'p95 ms':>8s} {'max ms':>8s} {'target':>7s}")
    results = []
    for which in args.models:
        models = _pretrained_models() if which == "pretrained" else _paper_models(rng)
        if models is None:
            print(f"{which}: no packaged default models found, skipped")
            continue
        results += _bench_set(which, *models, rng, calls)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(torch=torch.__version__, threads=torch.get_num_threads(),
                           load=load, results=results), fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
