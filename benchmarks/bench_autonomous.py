"""Autonomous experiment: whole-scan error versus the fraction of spectra measured (CPU).

Scenes: ``SimulatedMicroscope`` (``datasets.nanocube_array``: seed 0 is the built-in quasi-static
scan, seeds 2, 3, ... held-out scenes; ``--physics toy`` for the point-dipole toy), ``--size`` x
``--size`` pixels, ``--n-energy`` channels. The loop
measures the noisy spectra; errors are taken against the noiseless scene (the same seed
with ``noise=False``: same geometry, expected counts), so a perfect predictor scores ~0.

For every strategy (random, raster, uncertainty, scalarizer = expected improvement of the
peak energy) and seed, one loop runs to the largest fraction of the pixels; when it reaches
each fraction (1, 2, 5, 10, 20 % by default) the whole-scan NMSE (%) of its predicted SI
(the ensemble mean at every pixel, measured or not) is recorded: the mean over pixels of
the per-spectrum NMSE, and its 99th percentile and maximum over pixels. A strategy may name a
batch selection: ``uncertainty:distance``. Reference: the same ensemble trained on every
pixel of the noisy scan (``--reference-epochs``), i.e. a full SI.

Where a gap comes from: ``--polish-updates`` retrains a fresh ensemble that long on the
loop's own spectra at ``--polish-fractions`` (is the loop short of training or of data?);
``--ceiling-updates`` does the same on fixed grid and random sets at ``--ceiling-fractions``.

After the uncertainty runs: 90 % interval coverage against the noisy and the noiseless
scene, with the raw ensemble spread and with the post-hoc scale fitted on 200 unmeasured
pixels (a validation set that would cost 200 extra spectra), and the Spearman/Pearson
correlation of the uncertainty map with the error map.

Step time: ``--time-size`` (96) scan, loop steps from 5 % measured, batch 1 % of the pixels.

Summary: the spectra each strategy's mean curve needs (log-log interpolation) to reach the
reference's error, and to reach random sampling's error at each fraction.

Run:  python benchmarks/bench_autonomous.py [--size 96] [--scene-seeds 0,2] [--seeds 2]
      [--fractions 1,2,5,10,20] [--physics quasistatic|toy] [--members 3] [--updates 100]
      [--time-size 96] [--out benchmarks/results/autonomous.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

import plasmonwidgets as pw
from plasmonwidgets import autonomous
from plasmonwidgets.analysis import calibration as cal
from plasmonwidgets.autonomous import default_model_factory as factory
from plasmonwidgets.autonomous import whole_scan_nmse
from plasmonwidgets.datasets import nanocube_array


def curve(args, name: str, seed: int, scene: dict, truth: np.ndarray) -> dict:
    """One loop to the largest fraction. ``name`` is a strategy, optionally ``strategy:selection``
    (e.g. ``uncertainty:distance``) to override ``--batch-selection``."""
    strategy, _, selection = name.partition(":")
    scope = pw.SimulatedMicroscope(size=args.size, n_energy=args.n_energy, **scene)
    n_px = args.size * args.size
    targets = [max(2, round(f / 100 * n_px)) for f in args.fractions]
    energy = scope.energy
    options = dict(n_members=args.members, epochs=args.epochs, min_distance=args.min_distance,
                   updates=args.updates, score=args.score, seed_design=args.seed_design,
                   batch_selection=selection or args.batch_selection, lr=args.lr)
    if strategy == "scalarizer":
        options.update(scalarizer=lambda s: energy[np.argmax(s, axis=-1)], scalarizer_vectorized=True)
    loop = autonomous.Loop(scope, factory(args.n_energy, args.window), budget=targets[0],
                           batch=max(1, round(args.batch / 100 * n_px)), n_seed=targets[0],
                           strategy=strategy, seed=seed, **options)
    out = {"n_measured": [], "nmse": [], "nmse_p99": [], "nmse_max": [], "wall_s": 0.0}
    t0 = time.perf_counter()
    for fraction, target in zip(args.fractions, targets):
        loop.budget = target  # raise the budget fraction by fraction: the loop resumes
        loop.run()
        out["n_measured"].append(loop.n_measured)
        out["nmse"].append(whole_scan_nmse(loop.mean, truth))
        # the paper quotes maxima: the worst pixels, not only the mean
        per_pixel = cal.prediction_error_map(loop.mean, truth)
        out["nmse_p99"].append(float(np.nanpercentile(per_pixel, 99)))
        out["nmse_max"].append(float(np.nanmax(per_pixel)))
        if args.polish_updates and fraction in args.polish_fractions:
            out.setdefault("polished", {})[loop.n_measured] = polished(args, loop, truth)
    out["wall_s"] = time.perf_counter() - t0
    out["steps"] = len(loop.steps)
    if strategy == "uncertainty":
        out["calibration"] = calibration(loop, scope, truth, seed)
    return out


def polished(args, loop, truth: np.ndarray) -> float:
    """Whole-scan NMSE of a fresh ensemble trained to convergence on the loop's spectra so far:
    what the chosen positions are worth once training is not the limit (the loop stays as is)."""
    pairs = loop._training_pairs()
    ens = pw.Ensemble(factory(args.n_energy, args.window), n_members=args.members, seed=loop.seed)
    epochs = max(1, -(-args.polish_updates // -(-len(pairs.spectra) // 64)))
    ens.fit(pairs, epochs=epochs, lr=args.lr, precision="float32")
    h, w = loop.scan_shape
    mean, _ = ens.predict(loop._tiles.reshape(h * w, args.window, args.window))
    return whole_scan_nmse(mean.reshape(truth.shape), truth)


def calibration(loop, scope, truth: np.ndarray, seed: int) -> dict:
    h, w = loop.scan_shape
    free = np.flatnonzero(~loop.measured.ravel())
    rng = np.random.default_rng(seed + 1000)
    val = rng.choice(free, size=min(200, free.size // 2), replace=False)
    test = np.setdiff1d(free, val)
    mean, std = loop.mean.reshape(h * w, -1), loop.std.reshape(h * w, -1)
    noisy = np.asarray(scope.si.spectra, dtype=np.float64).reshape(h * w, -1)
    clean = truth.reshape(h * w, -1)
    scale = cal.fit_std_scale(mean[val], std[val], noisy[val])
    res = {"std_scale": scale}
    for name, true in (("noisy", noisy), ("clean", clean)):
        res[f"coverage90_raw_{name}"] = cal.coverage(mean[test], std[test], true[test])
        res[f"coverage90_scaled_{name}"] = cal.coverage(mean[test], scale * std[test], true[test])
    res["curve_scaled_noisy"] = cal.calibration_curve(mean[test], scale * std[test],
                                                      noisy[test]).observed.round(3).tolist()
    umap = cal.uncertainty_map(loop.std)
    emap = cal.prediction_error_map(loop.mean, truth)
    unmeasured = ~loop.measured
    res["corr_uncertainty_error"] = cal.uncertainty_error_correlation(umap[unmeasured], emap[unmeasured])
    return res


def reference(args, scene: dict, truth: np.ndarray, seed: int) -> float:
    si = nanocube_array(size=args.size, n_energy=args.n_energy, **scene)
    pairs = pw.make_tiles(si, window=args.window, pad="reflect")
    ens = pw.Ensemble(factory(args.n_energy, args.window), n_members=args.members, seed=seed)
    ens.fit(pairs, epochs=args.reference_epochs, lr=args.lr, precision="float32")
    mean, _ = ens.predict(pairs)
    return whole_scan_nmse(mean.reshape(truth.shape), truth)


def ceiling(args, scene: dict, truth: np.ndarray) -> dict:
    """What the ensemble learns from a fixed set of spectra when trained to convergence.

    For each of ``--ceiling-fractions``: fresh ensembles trained ``--ceiling-updates`` updates on an even grid
    and on random pixels (no loop, no warm start): whether the loop's curve is limited by
    which spectra it chose or by what this model can learn from that many spectra.
    """
    si = nanocube_array(size=args.size, n_energy=args.n_energy, **scene)
    h = w = args.size
    tiles = autonomous.scan_tiles(si.haadf, (h, w), args.window)
    spectra = np.asarray(si.spectra, dtype=np.float32)
    out = {}
    for fraction in args.ceiling_fractions:
        k = max(2, round(fraction / 100 * h * w))
        rng = np.random.default_rng(0)
        designs = {"grid": autonomous.grid_positions((h, w), k),
                   "random": np.stack(np.divmod(rng.choice(h * w, k, replace=False), w), axis=1)}
        for design, pos in designs.items():
            pairs = pw.TilePairs(np.ascontiguousarray(tiles[pos[:, 0], pos[:, 1]], dtype=np.float32),
                                 spectra[pos[:, 0], pos[:, 1]], pos, si.energy, (h, w))
            ens = pw.Ensemble(factory(args.n_energy, args.window), n_members=args.members, seed=0)
            epochs = max(1, -(-args.ceiling_updates // -(-k // 64)))
            ens.fit(pairs, epochs=epochs, lr=args.lr, precision="float32")
            mean, _ = ens.predict(tiles.reshape(h * w, args.window, args.window))
            value = whole_scan_nmse(mean.reshape(truth.shape), truth)
            out[f"{design} {fraction:g}%"] = value
            print(f"ceiling: {design:6s} {fraction:5g} % ({k} spectra), {args.ceiling_updates} updates: "
                  f"whole-scan NMSE {value:.2f} %", flush=True)
    return out


def step_time(args, scene: dict) -> dict:
    size = args.time_size
    scope = pw.SimulatedMicroscope(size=size, n_energy=args.n_energy, **scene)
    n_px = size * size
    loop = autonomous.Loop(scope, factory(args.n_energy, args.window), budget=n_px // 20 + 3 * n_px // 100,
                           batch=n_px // 100, n_seed=n_px // 20, strategy="uncertainty",
                           n_members=args.members, epochs=args.epochs, updates=args.updates, lr=args.lr)
    records = []
    while not loop.done:
        r = loop.step()
        records.append({k: round(getattr(r, k), 3) for k in
                        ("wall_s", "select_s", "acquire_s", "train_s", "predict_s")}
                       | {"n_measured": r.n_measured})
    return {"size": size, "steps": records}


def spectra_to_reach(n_measured: np.ndarray, nmse: np.ndarray, level: float) -> float:
    """Spectra a curve needs to reach ``level`` (log-log interpolation); inf if it never does."""
    n, e = np.asarray(n_measured, float), np.minimum.accumulate(np.asarray(nmse, float))
    hit = np.flatnonzero(e <= level)
    if hit.size == 0:
        return float("inf")
    j = int(hit[0])
    if j == 0:
        return float(n[0])
    t = (np.log(e[j - 1]) - np.log(level)) / (np.log(e[j - 1]) - np.log(e[j]))
    return float(np.exp(np.log(n[j - 1]) + t * (np.log(n[j]) - np.log(n[j - 1]))))


def run_scene(args, scene_seed: int, physics: str) -> dict:
    """Reference and every strategy's curves on one scene; prints a table as it goes."""
    scene = {"seed": scene_seed, "physics": physics}
    truth = np.asarray(nanocube_array(size=args.size, n_energy=args.n_energy, noise=False,
                                      **scene).spectra, dtype=np.float64)
    noisy = nanocube_array(size=args.size, n_energy=args.n_energy, **scene).spectra
    report = {"scene_seed": scene_seed, "noise_floor_nmse": whole_scan_nmse(noisy, truth),
              "curves": {}}
    print(f"\nscene seed {scene_seed} ({physics}) {args.size}x{args.size}, E={args.n_energy}; noise "
          f"floor (measured vs noiseless) NMSE {report['noise_floor_nmse']:.2f} %; load avg "
          f"{os.getloadavg()[0]:.1f}")
    t = time.perf_counter()
    refs = [reference(args, scene, truth, s) for s in range(args.reference_seeds)]
    report["reference_nmse"] = refs
    print(f"reference (ensemble trained {args.reference_epochs} epochs on the full noisy SI): NMSE "
          + " / ".join(f"{v:.2f}" for v in refs) + f" % ({time.perf_counter() - t:.0f} s)")
    print("strategy     seed " + " ".join(f"{f:>6g}%" for f in args.fractions) + "   wall s"
          "  (whole-scan NMSE %; then, over seeds, its mean, 99th percentile and max over pixels)")
    for strategy in [s for s in args.strategies.split(",") if s]:
        runs = []
        for seed in range(args.seeds):
            r = curve(args, strategy, seed, scene, truth)
            runs.append(r)
            print(f"{strategy:<12} {seed:>4} " + " ".join(f"{v:7.2f}" for v in r["nmse"])
                  + f"  {r['wall_s']:7.1f}", flush=True)
            for n, v in r.get("polished", {}).items():
                print(f"    retrained {args.polish_updates} updates on its {n} spectra: {v:.2f} %")
            if "calibration" in r:
                c = r["calibration"]
                print("    calibration: scale {std_scale:.2f}; 90% coverage raw noisy "
                      "{coverage90_raw_noisy:.3f} clean {coverage90_raw_clean:.3f}; scaled noisy "
                      "{coverage90_scaled_noisy:.3f} clean "
                      "{coverage90_scaled_clean:.3f}".format(**c)
                      + "; spearman(unc, err) {spearman:.2f} pearson {pearson:.2f}".format(
                          **c["corr_uncertainty_error"]))
                print("    curve (scaled, noisy) at 0.1..0.9:", c["curve_scaled_noisy"])
        for key, label in (("nmse", "mean"), ("nmse_p99", "p99"), ("nmse_max", "max")):
            nm = np.array([r[key] for r in runs])
            print(f"{strategy:<12} {label:>4} " + " ".join(f"{v:7.2f}" for v in nm.mean(0))
                  + "   +/- " + " ".join(f"{v:.2f}" for v in nm.std(0)), flush=True)
        report["curves"][strategy] = runs
    if args.ceiling_updates:
        report["ceiling"] = ceiling(args, scene, truth)
    report["spectra_to_reach"] = reach = needed(report, float(np.mean(refs)))
    for level, row in reach.items():
        print(f"spectra to reach {level}: " + "; ".join(f"{k} {v}" for k, v in row.items()))
    return report


def needed(report: dict, reference_nmse: float) -> dict:
    """Spectra each strategy needs (mean curve) for the reference's error and for random's
    error at each fraction: the issue's two comparisons."""
    curves = {k: (np.mean([r["n_measured"] for r in v], axis=0), np.mean([r["nmse"] for r in v], axis=0))
              for k, v in report["curves"].items()}
    levels = {f"the full-SI reference ({reference_nmse:.2f} %)": reference_nmse}
    if "random" in curves:
        n_rand, e_rand = curves["random"]
        for n, e in zip(n_rand, e_rand):
            levels[f"random's error at {int(n)} spectra ({e:.2f} %)"] = float(e)
    return {name: {k: round(spectra_to_reach(n, e, level), 1) for k, (n, e) in curves.items()}
            for name, level in levels.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--n-energy", type=int, default=100)
    p.add_argument("--window", type=int, default=16)
    p.add_argument("--scene-seeds", default="0",
                   help="scenes, comma-separated: 0 is the built-in scan, 2, 3, ... held out")
    p.add_argument("--physics", default="quasistatic", choices=("quasistatic", "toy"))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--fractions", default="1,2,5,10,20")
    p.add_argument("--batch", type=float, default=1.0, help="spectra per step, %% of the pixels")
    p.add_argument("--strategies", default=",".join(autonomous.STRATEGIES))
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--epochs", type=int, default=2, help="epochs per step (warm start)")
    p.add_argument("--updates", type=int, default=100, help="at least this many updates per step")
    p.add_argument("--score", default="relative", choices=autonomous.SCORES)
    p.add_argument("--seed-design", default="grid", choices=autonomous.SEED_DESIGNS)
    p.add_argument("--batch-selection", default="coverage", choices=autonomous.BATCH_SELECTIONS)
    p.add_argument("--min-distance", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=1e-2, help="loop and reference (Loop's default)")
    p.add_argument("--reference-epochs", type=int, default=30)
    p.add_argument("--reference-seeds", type=int, default=1)
    p.add_argument("--polish-updates", type=int, default=0,
                   help="at --polish-fractions, also train a fresh ensemble this long on the loop's "
                        "spectra (0: skip)")
    p.add_argument("--polish-fractions", default="10")
    p.add_argument("--ceiling-fractions", default="10")
    p.add_argument("--ceiling-updates", type=int, default=0,
                   help="also train fresh ensembles this long on fixed grid/random sets (0: skip)")
    p.add_argument("--time-size", type=int, default=96, help="0 skips the step-time run")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (one beat two on a loaded 2-core machine)")
    p.add_argument("--only-step-time", action="store_true", help="skip the strategy curves")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.polish_fractions = [float(f) for f in args.polish_fractions.split(",")]
    args.ceiling_fractions = [float(f) for f in args.ceiling_fractions.split(",")]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.only_step_time:
        for r in step_time(args, {"physics": args.physics})["steps"]:
            print(f"{args.time_size}x{args.time_size} step ({torch.get_num_threads()} torch threads, "
                  f"load avg {os.getloadavg()[0]:.1f}): {r}")
        return
    machine = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "load_avg": os.getloadavg(), "python": platform.python_version()}
    report = {"args": vars(args), "machine": machine, "scenes": []}
    for scene_seed in (int(v) for v in args.scene_seeds.split(",")):
        report["scenes"].append(run_scene(args, scene_seed, args.physics))
        if args.out:  # a long run keeps what it has measured
            with open(args.out, "w") as fh:
                json.dump(report, fh, indent=1, default=float)
    if args.time_size:
        report["step_time"] = step_time(args, {"physics": args.physics})
        for r in report["step_time"]["steps"]:
            print(f"{args.time_size}x{args.time_size} step: {r}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(report, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
