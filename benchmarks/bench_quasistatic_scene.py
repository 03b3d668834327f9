"""Benchmark of the opt-in quasi-static scene simulator: speed, convergence, phenomenology.

Usage::

    .venv/bin/python benchmarks/bench_quasistatic_scene.py              # 64x64 and 96x96
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes 64   # one size
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes --convergence
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes --learnability 10

Times "from nothing" use an empty cache folder (cube modes and the coupling table are
computed); "cached" repeats the call with the mode cache and table in memory. Numbers go
into docs/physics.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _peaks(clean: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Energy of the strongest peak of each lightly smoothed spectrum (σ = 2 channels)."""
    flat = gaussian_filter1d(clean.reshape(-1, clean.shape[-1]).astype(np.float64), 2.0, axis=1)
    return energy[np.argmax(flat, axis=1)]


def phenomenology(result) -> dict:
    from plasmonwidgets.analysis import nmf

    e, clean = result.energy, np.asarray(result.clean, dtype=np.float64)
    names = result.region_names
    regions = result.regions
    out = {}
    pk = _peaks(clean, e)
    out["peak_5_50_95_eV"] = np.percentile(pk, [5, 50, 95]).round(3).tolist()
    out["peak_spread_eV"] = float(np.percentile(pk, 95) - np.percentile(pk, 5))
    for k, n in enumerate(names):
        m = regions == k
        if m.any():
            s = clean[m].mean(axis=0)
            i9 = np.argmin(abs(e - 0.9))
            out[f"region {n}"] = (f"{int(m.sum())} px, peak {e[np.argmax(s)]:.3f} eV, "
                                  f"S(0.9)/S(peak) {s[i9] / s.max():.3f}")
    si = result.to_spectrum_image()
    si = si.replace(spectra=clean.astype(np.float32))
    res = nmf(si, n_components=4)
    maps = np.asarray(res.maps)
    for c in range(4):
        a = maps[c]
        means = {n: float(a[regions == k].mean()) for k, n in enumerate(names) if (regions == k).any()}
        inner = means.get("interior", np.nan)
        ep = float(e[np.argmax(res.spectra[c])])
        out[f"nmf {c}"] = (f"peak {ep:.3f} eV; abundance relative to interior: "
                           + ", ".join(f"{n} {v / inner:.2f}" for n, v in means.items()))
    return out


def convergence(size: int = 24, near_field: bool = False) -> dict:
    """NMSE between spectra when the explicit buffer, the film radius or the block size change."""
    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig, simulate_quasistatic_scene

    base = QuasistaticSceneConfig(near_field=near_field)
    variants = {"default": {}, "extension 6": {"extension": 6.0}, "extension 12": {"extension": 12.0},
                "film radius 200": {"film_radius": 200.0}, "film radius 50": {"film_radius": 50.0},
                "block ratio 4": {"block_ratio": 4.0}, "no far film": {"film_radius": 0.0}}
    res, out = {}, {}
    for name, kw in variants.items():
        t = time.perf_counter()
        cfg = QuasistaticSceneConfig(**{**base.__dict__, **kw})
        r = simulate_quasistatic_scene(seed=0, size=size, n_energy=60, noise=False, config=cfg)
        res[name] = np.asarray(r.clean, dtype=np.float64).reshape(-1, 60)
        pk = _peaks(res[name], r.energy)
        sim = r.simulation
        out[f"{name}: time"] = (f"{time.perf_counter() - t:.1f} s, {sim['n_far_particles']} buffer cubes, "
                                f"{sim['n_film_blocks']} film blocks, median peak {np.median(pk):.3f} eV")
    for name in variants:
        if name != "default":
            nmse = ((res[name] - res["default"]) ** 2).sum(1) / (res["default"] ** 2).sum(1)
            out[f"NMSE {name} vs default"] = f"median {np.median(nmse):.4f}, max {nmse.max():.4f}"
    return out


def learnability(epochs: int, size: int = 96) -> dict:
    """Halves split of the quasi-static scene: lean im2spec with 10 and 2 latents against baselines."""
    import plasmonwidgets as pw
    from plasmonwidgets.analysis.baselines import KNN, IntensityOracle, IntensityTimesMeanSpectrum
    from plasmonwidgets.analysis.evaluation import evaluate

    si = pw.datasets.nanocube_array(seed=0, size=size, physics="quasistatic", cache=False)
    train, test = pw.make_tiles(si, window=16).split("halves")
    out = {}
    for b in (IntensityTimesMeanSpectrum("im2spec"), IntensityOracle("im2spec"), KNN("im2spec")):
        row = evaluate(b.fit(train), test)["all"]
        out[b.name] = f"mean {row.mean:.2f} %, p99 {row.p99:.2f} %"
    for latent in (10, 2):
        t = time.perf_counter()
        model = pw.Im2Spec(window=16, n_energy=si.n_energy, latent_dim=latent)
        pw.train(model, train, None, epochs=epochs, progress=False)
        row = evaluate(model, test)["all"]
        out[f"im2spec {latent} latents ({epochs} epochs, {time.perf_counter() - t:.0f} s)"] = (
            f"mean {row.mean:.2f} %, p99 {row.p99:.2f} %")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 96])
    ap.add_argument("--convergence", action="store_true")
    ap.add_argument("--no-phenomenology", action="store_true")
    ap.add_argument("--learnability", type=int, default=0, metavar="EPOCHS",
                    help="train im2spec (10 and 2 latents) this many epochs on the halves split")
    ap.add_argument("--near-field", action="store_true",
                    help="couple neighbouring cubes through the BEM-calibrated near-field tensor")
    args = ap.parse_args()
    os.environ["PLASMONWIDGETS_CACHE"] = tempfile.mkdtemp(prefix="pw-bench-")
    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig, simulate_quasistatic_scene

    cfg = QuasistaticSceneConfig(near_field=args.near_field)

    if args.learnability:
        for k, v in learnability(args.learnability).items():
            print(f"{k}: {v}")
    if args.convergence:
        for k, v in convergence(near_field=args.near_field).items():
            print(f"{k}: {v}")
    for size in args.sizes:
        t = time.perf_counter()
        simulate_quasistatic_scene(seed=0, size=size, config=cfg)
        first = time.perf_counter() - t
        t = time.perf_counter()
        r = simulate_quasistatic_scene(seed=0, size=size, config=cfg)
        again = time.perf_counter() - t
        print(f"{size}x{size}: {first:.1f} s with this process's first call, {again:.1f} s cached "
              f"({r.simulation['n_particles']} + {r.simulation['n_far_particles']} cubes)")
        if not args.no_phenomenology:
            for k, v in phenomenology(r).items():
                print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
