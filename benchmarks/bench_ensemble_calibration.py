"""Deep-ensemble calibration: interval coverage, calibration curves and uncertainty maps.

Protocol (as ``bench_protocol.py``; nothing is chosen on a test set):

* ``--members`` im2spec members (latent 10, the default architecture via
  ``bench_protocol.build``, ``pw.train`` defaults, ``--epochs`` epochs, CPU) trained with
  ``Ensemble.fit`` on the training half of scene 0 (``nanocube_array(seed=0)``,
  ``make_tiles(window=16)``, ``split("halves")``), once per ensemble seed;
* ``std_scale`` fitted with ``Ensemble.calibrate`` on the whole validation scene (seed 1)
  against its noisy measured spectra, the only data a user has;
* evaluated on the test half of scene 0 and on whole held-out scenes (``--scenes``, default
  2 and 3), each against the noisy measured spectra and the noiseless truth
  (``nanocube_array(seed=..., noise=False)``, the same scene without shot noise): 90 %
  coverage before and after scaling, the calibration curve after scaling (levels 0.1-0.9),
  the Spearman / Pearson correlation of the uncertainty map (summed std, (h, w)) with the
  error map (per-pixel NMSE against the noiseless truth), and the ensemble-mean NMSE beside
  the members' own NMSE. Reported as mean ± sd over ensemble seeds.

Run:  python benchmarks/bench_ensemble_calibration.py [--seeds 3] [--members 5] [--epochs 30]
      [--size 96] [--scenes 2 3] [--threads 1] [--out benchmarks/results/ensemble_calibration.json]
Quick check:  python benchmarks/bench_ensemble_calibration.py --seeds 2 --members 2 --epochs 2 --size 48
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import plasmonwidgets as pw
from plasmonwidgets.analysis.calibration import (
    LEVELS,
    calibration_curve,
    coverage,
    prediction_error_map,
    uncertainty_error_correlation,
    uncertainty_map,
)
from plasmonwidgets.metrics import nmse_percent

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_protocol import build, write_report  # the protocol's model and report writer

#: nominal level of the interval the issue asks about, and its acceptance band
LEVEL = 0.9
BAND = (0.85, 0.95)
TRUTHS = ("measured", "noiseless")


# ------------------------------------------------------------------------------ data
def tiles(seed: int, size: int, noise: bool = True):
    return pw.make_tiles(pw.datasets.nanocube_array(seed=seed, size=size, noise=noise), window=16)


def scenes(size: int, held_out: list[int]) -> tuple[object, object, dict[str, dict]]:
    """(training half, validation scene, {set name: {"measured": pairs, "noiseless": pairs}}).

    The noiseless pairs are the same tiles (same positions and HAADF) with shot-noise-free
    spectra, so both truths score one prediction.
    """
    train, test = tiles(0, size).split("halves")
    _, test_clean = tiles(0, size, noise=False).split("halves")
    sets = {"test half (scene 0)": {"measured": test, "noiseless": test_clean}}
    for seed in held_out:
        sets[f"scene {seed}"] = {"measured": tiles(seed, size),
                                 "noiseless": tiles(seed, size, noise=False)}
    for name, pair in sets.items():
        if not np.array_equal(pair["measured"].positions, pair["noiseless"].positions):
            raise RuntimeError(f"{name}: noisy and noiseless tiles differ in positions")
    return train, tiles(1, size), sets


def to_grid(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Per-tile values (N, ...) onto the bounding box of their scan positions: (h, w, ...).

    Pixels without a tile are NaN (none for a whole scene or a halves split).

    Examples
    --------
    >>> to_grid(np.arange(4.0), np.array([[2, 3], [2, 4], [3, 3], [3, 4]]))
    array([[0., 1.],
           [2., 3.]])
    """
    rc = positions - positions.min(axis=0)
    h, w = rc.max(axis=0) + 1
    grid = np.full((h, w, *values.shape[1:]), np.nan)
    grid[rc[:, 0], rc[:, 1]] = values
    return grid


# ------------------------------------------------------------------------ measurement
def score_set(preds: np.ndarray, scale: float, pairs: dict) -> dict:
    """Coverage, calibration curve, NMSE and map correlation of one evaluation set.

    ``preds`` (M, N, E) are the members' predictions; ``scale`` the fitted std_scale.
    """
    mean = preds.mean(axis=0, dtype=np.float64)
    spread = preds.std(axis=0, ddof=1, dtype=np.float64)
    out = {}
    for truth in TRUTHS:
        true = pairs[truth].spectra
        member_nmse = [float(nmse_percent(p, true).mean()) for p in preds]
        out[truth] = {
            "coverage90_raw": coverage(mean, spread, true, level=LEVEL),
            "coverage90_calibrated": coverage(mean, spread * scale, true, level=LEVEL),
            "curve_raw": calibration_curve(mean, spread, true).observed.tolist(),
            "curve_calibrated": calibration_curve(mean, spread * scale, true).observed.tolist(),
            "nmse_ensemble": float(nmse_percent(mean, true).mean()),
            "nmse_member_mean": float(np.mean(member_nmse)),
            "nmse_member_0": member_nmse[0],
        }
    # maps against the noiseless truth: measured spectra would add shot noise to the error
    pos = pairs["noiseless"].positions
    u_map = uncertainty_map(to_grid(spread * scale, pos))
    e_map = prediction_error_map(to_grid(mean, pos), to_grid(pairs["noiseless"].spectra, pos))
    out["map_shape"] = list(u_map.shape)
    out["map_correlation"] = uncertainty_error_correlation(u_map, e_map)
    return out


def run_seed(seed: int, members: int, epochs: int, train, validation, sets: dict) -> dict:
    """Train one ensemble, calibrate it on the validation scene, score every set."""
    ens = pw.Ensemble(lambda s: build("im2spec", 10, s, train.energy), n_members=members,
                      seed=seed)
    t0 = time.perf_counter()
    ens.fit(train, epochs=epochs)  # Trainer defaults = pw.train defaults, as the protocol
    train_s = time.perf_counter() - t0
    scale = ens.calibrate(validation, level=LEVEL)
    scores = {name: score_set(ens.predict_members(p["measured"]), scale, p)
              for name, p in sets.items()}
    return {"seed": seed, "member_seeds": ens.seeds, "train_s": train_s, "std_scale": scale,
            "sets": scores}


# ---------------------------------------------------------------------------- report
def stat(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}


def aggregate(runs: list[dict]) -> dict:
    """{set: {truth: {quantity: stat}}, "map_correlation": {...}} over ensemble seeds."""
    out = {}
    for name in runs[0]["sets"]:
        rows = [r["sets"][name] for r in runs]
        agg = {}
        for truth in TRUTHS:
            keys = [k for k in rows[0][truth] if not k.startswith("curve")]
            agg[truth] = {k: stat([r[truth][k] for r in rows]) for k in keys}
            for k in ("curve_raw", "curve_calibrated"):
                arr = np.array([r[truth][k] for r in rows])
                agg[truth][k] = {"mean": arr.mean(axis=0).tolist(),
                                 "sd": (arr.std(axis=0, ddof=1) if len(rows) > 1
                                        else np.zeros(arr.shape[1])).tolist()}
        agg["map_correlation"] = {k: stat([r["map_correlation"][k] for r in rows])
                                  for k in ("spearman", "pearson")}
        out[name] = agg
    return out


def pm(a: dict, scale: float = 1.0, digits: int = 3) -> str:
    return f"{a['mean'] * scale:.{digits}g} ± {a['sd'] * scale:.2g}"


def verdict(a: dict) -> str:
    lo, hi = BAND
    if lo <= a["min"] and a["max"] <= hi:
        return "yes"
    if a["max"] < lo or a["min"] > hi:
        return "no"
    return "some seeds"


def markdown(result: dict) -> str:
    agg, n = result["aggregate"], result["settings"]["seeds"]
    scale = stat([r["std_scale"] for r in result["runs"]])
    out = [f"std_scale fitted on scene 1 (validation, measured spectra): {pm(scale)} "
           f"(mean ± sd over {n} ensemble seeds)", "",
           f"**90 % interval coverage** (%, mean ± sd over {n} ensemble seeds; goal "
           f"{BAND[0]:.0%}–{BAND[1]:.0%})", "",
           "| set | truth | raw | calibrated | goal met | max gap of calibrated curve |",
           "|---|---|---|---|---|---|"]
    for name, a in agg.items():
        for truth in TRUTHS:
            t = a[truth]
            gap = np.max(np.abs(np.array(t["curve_calibrated"]["mean"]) - np.array(LEVELS)))
            out.append(f"| {name} | {truth} | {pm(t['coverage90_raw'], 100)} | "
                       f"{pm(t['coverage90_calibrated'], 100)} | "
                       f"{verdict(t['coverage90_calibrated'])} | {100 * gap:.1f} points |")
    out += ["", "**Calibration curve after scaling** (observed coverage %, mean over seeds; "
            "sd in the JSON)", "",
            "| set | truth | " + " | ".join(f"{q:.1f}" for q in LEVELS) + " |",
            "|---|---|" + "---|" * len(LEVELS)]
    for name, a in agg.items():
        for truth in TRUTHS:
            out.append(f"| {name} | {truth} | "
                       + " | ".join(f"{100 * v:.1f}" for v in a[truth]["curve_calibrated"]["mean"])
                       + " |")
    out += ["", "**Uncertainty map vs error map** (error map: per-pixel NMSE against the "
            "noiseless truth) and NMSE % of the ensemble mean beside single members "
            "(mean over members)", "",
            "| set | map (h, w) | Spearman | Pearson | ensemble NMSE, measured | member NMSE, "
            "measured | ensemble NMSE, noiseless | member NMSE, noiseless |",
            "|---|---|---|---|---|---|---|---|"]
    for name, a in agg.items():
        shape = result["runs"][0]["sets"][name]["map_shape"]
        c, m, c0 = a["map_correlation"], a["measured"], a["noiseless"]
        out.append(f"| {name} | {shape[0]} × {shape[1]} | {pm(c['spearman'])} | "
                   f"{pm(c['pearson'])} | {pm(m['nmse_ensemble'])} | {pm(m['nmse_member_mean'])} | "
                   f"{pm(c0['nmse_ensemble'])} | {pm(c0['nmse_member_mean'])} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="ensemble seeds 0..N-1 (default 3)")
    parser.add_argument("--members", type=int, default=5, help="ensemble members M (default 5)")
    parser.add_argument("--epochs", type=int, default=30, help="epochs per member (default 30)")
    parser.add_argument("--size", type=int, default=96, help="scan size of every scene")
    parser.add_argument("--scenes", type=int, nargs="*", default=[2, 3],
                        help="held-out scene seeds (default 2 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path,
                        default=Path("benchmarks/results/ensemble_calibration.json"))
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.members < 2 or args.epochs < 1:
        parser.error("need --seeds >= 1, --members >= 2 and --epochs >= 1")
    if any(s in (0, 1) for s in args.scenes):
        parser.error("--scenes must not include 0 (training) or 1 (validation)")
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    train, validation, sets = scenes(args.size, args.scenes)
    print(f"data: {len(train)} training tiles, validation {len(validation)}; evaluation "
          + ", ".join(f"{k} ({len(v['measured'])})" for k, v in sets.items())
          + f"; torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    runs = []
    for seed in range(args.seeds):
        run = run_seed(seed, args.members, args.epochs, train, validation, sets)
        runs.append(run)
        first = run["sets"][next(iter(sets))]
        print(f"  ensemble seed {seed}: std_scale {run['std_scale']:.3g}, test-half 90 % "
              f"coverage (measured) raw {first['measured']['coverage90_raw']:.3f} -> "
              f"{first['measured']['coverage90_calibrated']:.3f} ({run['train_s']:.0f} s training)",
              flush=True)

    result = {
        "command": "python benchmarks/bench_ensemble_calibration.py "
                   + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "load_average_end": os.getloadavg()},
        "settings": {"seeds": args.seeds, "members": args.members, "epochs": args.epochs,
                     "size": args.size, "held_out_scenes": args.scenes, "level": LEVEL,
                     "band": BAND, "levels": list(LEVELS)},
        "n_tiles": {"train": len(train), "validation": len(validation),
                    **{k: len(v["measured"]) for k, v in sets.items()}},
        "runs": runs,
        "aggregate": aggregate(runs),
    }
    result["wall_s"] = time.perf_counter() - t0
    write_report(args.out, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
