"""Plot bench_autonomous.py results: whole-scan NMSE and worst pixels against spectra measured.

One column per scene (every ``--out`` JSON given), mean ± sd over loop seeds for each
strategy, the full-SI reference as a dashed line; bottom row: the maximum per-pixel NMSE.

Run:  python benchmarks/plot_autonomous.py results_s0.json results_s2.json
      --png docs/images/autonomous_curves.png
"""

from __future__ import annotations

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

#: Okabe-Ito colours, one per strategy, as in the dashboard
COLOURS = {"uncertainty": "#D55E00", "uncertainty:distance": "#E69F00", "random": "#0072B2",
           "raster": "#009E73", "scalarizer": "#CC79A7"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="+", help="JSON files written by bench_autonomous.py --out")
    p.add_argument("--png", default="docs/images/autonomous_curves.png")
    args = p.parse_args()
    scenes = [s for path in args.results for s in json.load(open(path))["scenes"]]
    fig, axes = plt.subplots(2, len(scenes), figsize=(5.2 * len(scenes), 7), squeeze=False,
                             sharex=True, constrained_layout=True)
    for col, scene in enumerate(scenes):
        top, bottom = axes[0, col], axes[1, col]
        n_px = None
        for name, runs in scene["curves"].items():
            n = np.mean([r["n_measured"] for r in runs], axis=0)
            n_px = n_px or runs[0]["n_measured"][-1]
            for ax, key in ((top, "nmse"), (bottom, "nmse_max")):
                values = np.array([r[key] for r in runs])
                ax.errorbar(n, values.mean(0), yerr=values.std(0), marker="o", ms=4, capsize=3,
                            color=COLOURS.get(name), label=name)
        ref = float(np.mean(scene["reference_nmse"]))
        top.axhline(ref, color="0.3", ls="--", lw=1, label=f"full-SI reference ({ref:.2f} %)")
        label = "built-in scan" if scene["scene_seed"] == 0 else "held-out scene"
        top.set_title(f"scene {scene['scene_seed']} ({label})")
        top.set_ylabel("whole-scan NMSE (%)")
        bottom.set_ylabel("worst pixel: max NMSE (%)")
        bottom.set_xlabel("spectra measured")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.grid(alpha=0.3, which="both")
        top.legend(fontsize=8)
    fig.suptitle("Autonomous experiment, 96x96 scans: mean ± sd over loop seeds")
    fig.savefig(args.png, dpi=90)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
