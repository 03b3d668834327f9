"""Benchmark of the quasi-static scene simulator (the built-in dataset): speed, convergence, phenomenology.

Usage::

    .venv/bin/python benchmarks/bench_quasistatic_scene.py              # 64x64 and 96x96, the default physics
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes 64   # one size
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes 96 --once --phenomenology  # from nothing
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes --convergence
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes --learnability 40
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes 64 --phenomenology --set omega_p_sd=0.15
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes 64 --phenomenology \
        --set depletion=0.0 --set near_field=False --set lattice_materials=False  # homogeneous film
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes 48 --once --phenomenology \
        --set lattice_materials=dense                           # exact per-cube reference: minutes
    .venv/bin/python benchmarks/bench_quasistatic_scene.py --sizes --band   # film band vs disorder

``--phenomenology`` adds the learnability proxies (baselines on the halves split, noise floor)
to the peak-spread, NMF-localisation and 0.9 eV metrics; ``--set NAME=VALUE`` overrides a
``QuasistaticSceneConfig`` field (``geometry.NAME`` for the layout).

Times "from nothing" use an empty cache folder (cube modes and the coupling table are
computed); "cached" repeats the call with the mode cache and table in memory. Numbers go
into docs/physics.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time

import numpy as np
from scipy.ndimage import gaussian_filter1d


def _peaks(clean: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Energy of the strongest peak of each lightly smoothed spectrum (σ = 2 channels)."""
    flat = gaussian_filter1d(clean.reshape(-1, clean.shape[-1]).astype(np.float64), 2.0, axis=1)
    return energy[np.argmax(flat, axis=1)]


def cube_distance(result) -> np.ndarray:
    """(h, w) distance (nm) from each pixel centre to the nearest cube's outline (0 inside a cube)."""
    lay, size = result.layout, result.spectra.shape[0]
    c = (np.arange(size) + 0.5) * result.pixel_size
    yy, xx = np.meshgrid(c, c, indexing="ij")
    best = np.full(yy.shape, np.inf)
    for (cy, cx), a, th in zip(lay.centers, lay.sides, lay.rotations):
        dy, dx = yy - cy, xx - cx
        u = np.abs(dx * np.cos(th) + dy * np.sin(th)) - a / 2
        v = np.abs(-dx * np.sin(th) + dy * np.cos(th)) - a / 2
        best = np.minimum(best, np.hypot(np.maximum(u, 0), np.maximum(v, 0)))
    return best


#: distance bins outside a cube (nm) for the NMF abundance profiles; 0 means on a cube
_BINS = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


def phenomenology(result, *, learn: bool = False) -> dict:
    """The issue's phenomenology metrics on one scene (noise-free spectra unless stated).

    * dominant peak (σ = 2 channels smoothing): 5 / 50 / 95 % and the 5–95 % spread;
    * 4-component NMF: for each component the mean abundance in distance bins outside the
      nearest cube, relative to its mean on cubes, the distance where it first falls below
      half of that, and its abundance in the hole / beyond the edge relative to the interior;
    * the ~0.9 eV feature: S(0.9)/S(peak) on cubes against > 4 nm from any cube;
    * with ``learn``: halves split, window 16, noisy spectra: the 3-parameter intensity ×
      mean-spectrum baseline, the intensity oracle and kNN (mean test NMSE), and the noise
      floor (NMSE of the noisy test spectra against their noise-free truth).
    """
    from plasmonwidgets.analysis import nmf

    e, clean = result.energy, np.asarray(result.clean, dtype=np.float64)
    names, regions = result.region_names, result.regions
    out = {}
    pk = _peaks(clean, e)
    out["peak 5/50/95 % (eV)"] = np.percentile(pk, [5, 50, 95]).round(3).tolist()
    out["peak spread 5-95 % (eV)"] = round(float(np.percentile(pk, 95) - np.percentile(pk, 5)), 3)
    pk_map = pk.reshape(regions.shape)
    out["region peaks (median eV)"] = ", ".join(
        f"{n} {np.median(pk_map[regions == k]):.3f}" for k, n in enumerate(names) if (regions == k).any())
    dist = cube_distance(result)
    on = dist <= 0.0
    i9 = int(np.argmin(abs(e - 0.9)))
    ratio = clean[..., i9] / np.maximum(clean.max(axis=-1), 1e-30)
    r_on, r_off = ratio[on].mean(), ratio[dist > 4].mean()
    out["S(0.9)/S(peak) on cubes / > 4 nm off"] = f"{r_on:.3f} / {r_off:.3f} = {r_on / r_off:.1f}x"
    si = result.to_spectrum_image().replace(spectra=clean.astype(np.float32))
    res = nmf(si, n_components=4)
    maps = np.asarray(res.maps, dtype=np.float64)
    for c in range(4):
        a = maps[c]
        ref = a[on].mean()
        prof = []
        for lo, hi in itertools.pairwise(_BINS):
            m = (dist > lo) & (dist <= hi) if lo > 0 else (dist > 0) & (dist <= hi)
            prof.append(a[m].mean() / ref if m.any() else np.nan)
        half = next((hi for hi, v in zip(_BINS[1:], prof) if v < 0.5), None)
        inner = a[regions == names.index("interior")].mean()
        extent = ", ".join(f"{n} {a[regions == names.index(n)].mean() / inner:.2f}"
                           for n in ("hole", "support") if (regions == names.index(n)).any())
        out[f"nmf {c} (peak {e[np.argmax(res.spectra[c])]:.3f} eV)"] = (
            "outside/on cube " + " ".join(f"{v:.2f}" for v in prof)
            + f" (bins {'-'.join(str(int(b)) for b in _BINS[1:])} nm); half at "
            + (f"<= {half:g} nm" if half else "> 64 nm") + f"; vs interior: {extent}")
    if learn:
        out.update(learnability_proxies(result))
    return out


def learnability_proxies(result, window: int = 16) -> dict:
    """Baselines on the halves split of the noisy scan (mean test NMSE, %), and the noise floor."""
    import plasmonwidgets as pw
    from plasmonwidgets.analysis.baselines import KNN, IntensityOracle, IntensityTimesMeanSpectrum
    from plasmonwidgets.analysis.evaluation import evaluate

    si = result.to_spectrum_image()
    train, test = pw.make_tiles(si, window=window).split("halves")
    out = {}
    for b in (IntensityTimesMeanSpectrum("im2spec"), IntensityOracle("im2spec"), KNN("im2spec")):
        table = evaluate(b.fit(train), test)
        row = table["all"]
        worst = max((k for k in table.rows if k.startswith("region")), key=lambda k: table[k].mean)
        out[f"{b.name} (test NMSE %)"] = (f"mean {row.mean:.2f}, median {row.median:.2f}, p99 {row.p99:.1f}; "
                                          f"worst {worst} mean {table[worst].mean:.1f}")
    clean = np.asarray(result.clean, dtype=np.float64)
    pos = np.asarray(test.positions)
    truth = clean[pos[:, 0], pos[:, 1]]
    noisy = np.asarray(test.spectra, dtype=np.float64)
    floor = 100 * ((noisy - truth) ** 2).sum(1) / (noisy**2).sum(1)
    out["noise floor (mean test NMSE % of noisy vs noise-free)"] = round(float(floor.mean()), 2)
    return out


def band_versus_disorder(depletions=(0.0, 1.0, 1.5, 2.0)) -> dict:
    """The film's collective in-plane band against per-cube disorder (perfect square lattice).

    Loss peak of 1/χ(E) = λ for λ = V̄·G̃(k) (lattice sum over 400 shells with a smooth
    cut-off) on the longitudinal (L, driven by the beam's radial field) and transverse (T)
    branches; the on-site disorder is the change of Re 1/χ at the film mode's energy per sd
    of ωp; W/B = 2σ / (λ(k = 1/218 nm) − λ(zone edge)).
    """
    from plasmonwidgets.simulate.dielectric import Drude
    from plasmonwidgets.simulate.quasistatic.nearfield import pair_factors
    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig, dipole_modes

    cfg = QuasistaticSceneConfig()
    gp = cfg.geometry
    e = np.linspace(0.15, 1.0, 8501)
    inv_chi = {wp: 1.0 / dipole_modes(cfg, Drude(4.0, wp, 0.093)).susceptibility(e)
               for wp in (1.79 - 0.15, 1.79 - 0.08, 1.79, 1.79 + 0.08, 1.79 + 0.15)}

    def peak(lam):
        return e[np.argmax(np.imag(1.0 / (inv_chi[1.79] - lam)))]

    reach = 400
    i = np.arange(-reach, reach + 1)
    ii, jj = np.meshgrid(i, i, indexing="ij")
    rho = np.hypot(ii, jj)
    m = (rho > 0) & (rho <= reach)
    x, y, r = gp.pitch * ii[m], gp.pitch * jj[m], gp.pitch * rho[m]
    taper = np.exp(-(rho[m] / (0.8 * reach)) ** 4)
    out = {}
    for t in depletions:
        side = gp.side_mean - 2.0 * t
        vol = side**3 + 3.0 * side * gp.side_sd**2
        for nf in (False, True):
            kl, kt = pair_factors(r / side, np.arctan2(x, y)) if nf else (1.0, 1.0)
            nx2 = (x / r) ** 2

            def sums(k, kl=kl, kt=kt, nx2=nx2, vol=vol):
                c = np.cos(k * x) * taper / r**3
                return (vol * np.sum(c * (2 * kl * nx2 - kt * (1 - nx2))),
                        vol * np.sum(c * (2 * kl * (1 - nx2) - kt * nx2)))

            edge = np.pi / gp.pitch
            lam = {k: sums(k) for k in (1 / 490, 1 / 218, 1 / 50, edge)}
            e_film = peak(lam[1 / 218][0])
            j = np.argmin(abs(e - e_film))
            band = lam[1 / 218][0] - lam[edge][0]
            wb = [abs((inv_chi[1.79 + s][j] - inv_chi[1.79 - s][j]).real) / band for s in (0.08, 0.15)]
            long_ = ", ".join(f"{peak(lam[k][0]):.3f}" for k in list(lam)[:3])
            out[f"depletion {t} nm, {'near-field' if nf else 'plain dipoles'}"] = (
                f"L at k = 1/490, 1/218, 1/50 nm^-1: {long_} eV; zone edge {peak(lam[edge][0]):.3f} eV; "
                f"T {peak(lam[1 / 218][1]):.3f} eV; L band {band:.2f} (1/chi units); "
                f"W/B for omega_p sd 0.08 / 0.15 eV: {wb[0]:.3f} / {wb[1]:.3f}")
    out["isolated cube"] = f"{peak(0.0):.3f} eV"
    return out


def convergence(base, size: int = 24) -> dict:
    """NMSE between spectra when the explicit buffer, the film radius or the block size change."""
    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig, simulate_quasistatic_scene

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


def learnability(epochs: int, size: int = 96, seeds: int = 2) -> dict:
    """Halves split of the default scene: im2spec (10 and 2 latents, packaged architecture, over
    ``seeds`` training seeds) against the baselines, and what bounds them.

    Two controls say what no image-based predictor can learn: the noise floor (noisy against
    noise-free test spectra) and the same scene with one material for every cube (identical
    geometry and HAADF: the NMSE between the two scenes' noise-free spectra is the part of each
    spectrum set by doping, which the HAADF does not show). A PCA of the noise-free spectra says
    how many dimensions the spectra need beyond the noise (what more latents could add).
    """
    from dataclasses import replace

    import plasmonwidgets as pw
    from plasmonwidgets.analysis.baselines import KNN, IntensityOracle, IntensityTimesMeanSpectrum
    from plasmonwidgets.analysis.evaluation import evaluate
    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig, simulate_quasistatic_scene

    def row_text(row):
        return f"mean {row.mean:.2f} %, median {row.median:.2f} %, p99 {row.p99:.1f} %, max {row.max:.1f} %"

    out = {}
    scenes = {"default": QuasistaticSceneConfig()}
    scenes["one material (control)"] = replace(scenes["default"], omega_p_sd=0.0, damping_range=(0.1, 0.1),
                                               lattice_materials=False)
    clean = {}
    for label, cfg in scenes.items():
        r = simulate_quasistatic_scene(seed=0, size=size, config=cfg)
        clean[label] = np.asarray(r.clean, dtype=np.float64).reshape(-1, r.clean.shape[-1])
        train, test = pw.make_tiles(r.to_spectrum_image(), window=16).split("halves")
        pos = np.asarray(test.positions)
        truth = np.asarray(r.clean, dtype=np.float64)[pos[:, 0], pos[:, 1]]
        noisy = np.asarray(test.spectra, dtype=np.float64)
        floor = 100 * ((noisy - truth) ** 2).sum(1) / (noisy**2).sum(1)
        out[f"{label}: noise floor"] = f"mean {floor.mean():.2f} %"
        for b in (IntensityTimesMeanSpectrum("im2spec"), IntensityOracle("im2spec"), KNN("im2spec")):
            out[f"{label}: {b.name}"] = row_text(evaluate(b.fit(train), test)["all"])
        for latent in (10, 2):
            rows = []
            for seed in range(seeds):
                kw = pw.pretrained.architecture("im2spec", latent, len(r.energy))
                model = pw.Im2Spec(**kw, device="cpu", seed=seed)
                pw.train(model, train, None, epochs=epochs, seed=seed, progress=False)
                rows.append(evaluate(model, test)["all"])
            mean = np.array([x.mean for x in rows])
            p99 = np.array([x.p99 for x in rows])
            out[f"{label}: im2spec {latent} latents ({epochs} epochs, {seeds} seeds)"] = (
                f"mean {mean.mean():.2f} ± {mean.std(ddof=1) if seeds > 1 else 0:.2f} %, "
                f"p99 {p99.mean():.1f} %, max {np.mean([x.max for x in rows]):.1f} %")
    a, b = clean["default"], clean["one material (control)"]
    scale = (a * b).sum(1) / (b * b).sum(1)
    doping = 100 * ((a - scale[:, None] * b) ** 2).sum(1) / (a**2).sum(1)
    out["doping's share of the spectra (NMSE default vs control, best intensity)"] = (
        f"mean {doping.mean():.2f} %, median {np.median(doping):.2f} %, "
        f"p99 {np.percentile(doping, 99):.1f} %")
    mu = a.mean(0)
    _, _, vt = np.linalg.svd(a - mu, full_matrices=False)
    for k in (1, 2, 3, 5, 10):
        rec = mu + (a - mu) @ vt[:k].T @ vt[:k]
        e = 100 * ((rec - a) ** 2).sum(1) / (a**2).sum(1)
        out[f"noise-free spectra from {k} principal components"] = (
            f"mean {e.mean():.2f} %, p99 {np.percentile(e, 99):.2f} %")
    return out


def _config(settings: list[str], homogeneous: bool = False, near_field: bool = False):
    """QuasistaticSceneConfig with ``name=value`` overrides (``geometry.name=value`` for the layout).

    ``homogeneous`` starts from the earlier film the docs' first sections measure (no depleted
    shell, plain dipole coupling, the mean material in the lattice); ``near_field`` switches the
    near-field factors on (they are on in the default).
    """
    import ast
    from dataclasses import replace

    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig

    cfg = QuasistaticSceneConfig()
    if homogeneous:
        cfg = replace(cfg, depletion=0.0, near_field=False, lattice_materials=False)
    if near_field:
        cfg = replace(cfg, near_field=True)
    for item in settings:
        key, _, text = item.partition("=")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare word, e.g. lattice_materials=oscillators
        if key.startswith("geometry."):
            cfg = replace(cfg, geometry=replace(cfg.geometry, **{key.split(".", 1)[1]: value}))
        else:
            cfg = replace(cfg, **{key: value})
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[64, 96])
    ap.add_argument("--convergence", action="store_true")
    ap.add_argument("--band", action="store_true",
                    help="the film's collective band against disorder (no scene)")
    ap.add_argument("--no-phenomenology", action="store_true")
    ap.add_argument("--phenomenology", action="store_true",
                    help="also the learnability proxies (baselines on the halves split, noise floor)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a QuasistaticSceneConfig field (geometry.NAME for the layout), e.g. "
                         "--set omega_p_sd=0.15 --set geometry.jitter=1.0")
    ap.add_argument("--once", action="store_true",
                    help="one scene per size (no cached repeat), e.g. with --set lattice_materials=dense")
    ap.add_argument("--learnability", type=int, default=0, metavar="EPOCHS",
                    help="train im2spec (10 and 2 latents) this many epochs on the halves split")
    ap.add_argument("--homogeneous", action="store_true",
                    help="start from the earlier homogeneous film (no shell, plain dipoles, mean material)")
    ap.add_argument("--near-field", action="store_true",
                    help="switch the near-field factors on (with --homogeneous; on by default otherwise)")
    args = ap.parse_args()
    os.environ["PLASMONWIDGETS_CACHE"] = tempfile.mkdtemp(prefix="pw-bench-")
    from plasmonwidgets.simulate.quasistatic.scene import simulate_quasistatic_scene

    cfg = _config(args.set, homogeneous=args.homogeneous, near_field=args.near_field)

    if args.learnability:
        for k, v in learnability(args.learnability).items():
            print(f"{k}: {v}")
    if args.band:
        for k, v in band_versus_disorder().items():
            print(f"{k}: {v}")
    if args.convergence:
        for k, v in convergence(cfg).items():
            print(f"{k}: {v}")
    for size in args.sizes:
        t, cpu = time.perf_counter(), time.process_time()
        r = simulate_quasistatic_scene(seed=0, size=size, config=cfg)
        first, cpu = time.perf_counter() - t, time.process_time() - cpu
        if args.once:
            print(f"{size}x{size}: {first:.1f} s from nothing (CPU {cpu:.1f} s; "
                  f"{r.simulation['n_particles']} + {r.simulation['n_far_particles']} cubes)")
            if not args.no_phenomenology:
                for k, v in phenomenology(r, learn=args.phenomenology).items():
                    print(f"  {k}: {v}")
            continue
        t, cpu = time.perf_counter(), time.process_time()
        r = simulate_quasistatic_scene(seed=0, size=size, config=cfg)
        again, cpu = time.perf_counter() - t, time.process_time() - cpu
        # CPU time too: on a shared machine the wall time measures the other jobs as well
        print(f"{size}x{size}: {first:.1f} s with this process's first call, {again:.1f} s cached "
              f"(CPU {cpu:.1f} s; {r.simulation['n_particles']} + {r.simulation['n_far_particles']} cubes)")
        if not args.no_phenomenology:
            for k, v in phenomenology(r, learn=args.phenomenology).items():
                print(f"  {k}: {v}")


if __name__ == "__main__":
    main()
