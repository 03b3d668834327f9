"""The real AtomAI ImSpec beside the toolkit's default im2spec, on the same tiles and split.

Optional: needs AtomAI 0.8.1 in its own environment (its pins clash with ours), built by
``benchmarks/make_atomai_venv.sh`` into ``.venv-atomai``; without it the script says how to
build it and exits with status 0 (nothing measured).

Data: the built-in scan ``datasets.nanocube_array(seed=0)``, ``make_tiles(window=16)``, the
"halves" split. Side by side, interleaved per training seed, both with the same torch thread
count:

* ``ours``: ``pretrained.ARCH`` with the ``Trainer`` defaults (what the dashboard and the CLI
  train), through ``bench_training.run``;
* ``atomai``: ``atomai.models.ImSpec`` with its defaults for the latent size (batch 64, Adam
  1e-3, MSE, every mini-batch once per epoch as in AtomAI's own examples), inputs and targets
  scaled globally as its users do (``atomai_worker.py``, in the AtomAI environment).

After every epoch each network predicts the test half off the clock; the clock is the sum of
training-epoch times. Reported: final per-sample test NMSE (mean, median, p95, max, from
``plasmonwidgets.analysis.evaluate``), the level both reach (the worse of the two best
per-epoch means) and each one's training time to reach it, and their ratio.
Goal (issue "evaluation protocol"): ours reaches the common level in ≤ ½ of AtomAI's time, and its
final maximum error is lower.

Run:  python benchmarks/bench_atomai.py [--epochs 30] [--atomai-epochs 60] [--seeds 3] [--latents 10]
      [--atomai-python .venv-atomai/bin/python] [--threads 2] [--out benchmarks/results/atomai.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

import plasmonwidgets as pw
from plasmonwidgets.analysis import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the same per-epoch measurement as the training benchmark
from bench_training import run, time_to

ROOT = Path(__file__).resolve().parents[1]


def run_atomai(python: Path, train, test, *, latent: int, seed: int, epochs: int, max_seconds: float,
               threads: int) -> dict:
    """AtomAI's ImSpec trained in its own environment; per-epoch test predictions come back."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, x_train=train.images, y_train=train.spectra, x_test=test.images,
                 y_test=test.spectra, latent=latent, seed=seed, epochs=epochs,
                 max_seconds=max_seconds, threads=threads)
        subprocess.run([str(python), str(ROOT / "benchmarks" / "atomai_worker.py"), str(src), str(dst)],
                       check=True)
        out = np.load(dst)
        predictions, clock = out["predictions"], out["train_s"]
        n_params = int(out["n_params"])
    curve = []
    for epoch, (pred, t) in enumerate(zip(predictions, clock)):
        table = evaluate(pred, (test.images, test.spectra), direction="im2spec")
        curve.append({"epoch": epoch, "train_s": float(t), "nmse_mean": table["all"].mean,
                      "nmse_median": table["all"].median})
    final = evaluate(predictions[-1], test, direction="im2spec", name="AtomAI ImSpec")
    return {"config": "atomai", "latent_dim": latent, "seed": seed, "curve": curve,
            "train_s": float(clock[-1]), "epochs_run": len(clock), "n_params": n_params,
            "final": asdict(final["all"])}


def run_ours(train, test, energy, *, latent: int, seed: int, epochs: int, max_seconds: float) -> dict:
    """The toolkit's default im2spec, measured exactly as in bench_training.py."""
    torch.manual_seed(seed)
    r = run("im2spec", latent, False, train, test, energy, epochs, max_seconds, keep_model=True)
    final = evaluate(r["model"], test)
    return {"config": "ours", "latent_dim": latent, "seed": seed, "curve": r["curve"],
            "train_s": r["train_s"], "epochs_run": r["epochs_run"], "final": asdict(final["all"])}


def summary_row(runs: list[dict]) -> dict:
    """Mean ± spread (half the range) over seeds of the final metrics and times."""
    out = {}
    for key in ("mean", "median", "p95", "max"):
        v = np.array([r["final"][key] for r in runs])
        out[key] = (float(v.mean()), float((v.max() - v.min()) / 2))
    for key in ("time_to_common_s", "train_s"):
        v = np.array([r[key] if r[key] is not None else np.nan for r in runs], dtype=float)
        out[key] = (float(np.nanmean(v)) if np.isfinite(v).any() else None,
                    float((np.nanmax(v) - np.nanmin(v)) / 2) if np.isfinite(v).any() else None)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atomai-python", type=Path, default=ROOT / ".venv-atomai" / "bin" / "python")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--atomai-epochs", type=int, default=None,
                        help="AtomAI's epochs (default 2x --epochs: its slower start gets its chance)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--latents", type=int, nargs="+", default=[10])
    parser.add_argument("--max-seconds", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/atomai.json"))
    args = parser.parse_args(argv)
    if not args.atomai_python.exists():
        print(f"skipped: no AtomAI environment at {args.atomai_python}. Build it with "
              f"`bash benchmarks/make_atomai_venv.sh` (about 2 GB of wheels from PyPI), or pass "
              f"--atomai-python PATH.")
        return 0
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    si = pw.datasets.nanocube_array(seed=0)
    train, test = pw.make_tiles(si, window=16).split("halves")
    print(f"data: {len(train)} train / {len(test)} test tiles; {args.threads} torch threads", flush=True)

    results = []
    for latent in args.latents:
        for seed in range(args.seeds):
            pair = [run_ours(train, test, si.energy, latent=latent, seed=seed, epochs=args.epochs,
                             max_seconds=args.max_seconds),
                    run_atomai(args.atomai_python, train, test, latent=latent, seed=seed,
                               epochs=args.atomai_epochs or 2 * args.epochs,
                               max_seconds=args.max_seconds, threads=args.threads)]
            level = max(min(p["nmse_mean"] for p in r["curve"]) for r in pair)
            for r in pair:
                r["common_level"] = level
                r["time_to_common_s"] = time_to(r["curve"], level)
                print(f"  latent {latent} seed {seed} {r['config']:6s}: "
                      f"final mean {r['final']['mean']:.2f} % "
                      f"max {r['final']['max']:.1f} %, {r['epochs_run']} epochs {r['train_s']:.0f} s, "
                      f"to {level:.2f} %: {r['time_to_common_s']} s", flush=True)
            results.extend(pair)

    lines = ["| latent | model | final NMSE % mean | median | p95 | max | train s | t → common level s |",
             "|---|---|---|---|---|---|---|---|"]
    ratios = {}
    for latent in args.latents:
        rows = {}
        for config in ("ours", "atomai"):
            runs = [r for r in results if r["latent_dim"] == latent and r["config"] == config]
            rows[config] = s = summary_row(runs)
            cell = " | ".join(f"{s[k][0]:.2f} ± {s[k][1]:.2f}" for k in ("mean", "median", "p95", "max"))
            t = s["time_to_common_s"]
            lines.append(f"| {latent} | {config} | {cell} | {s['train_s'][0]:.0f} | "
                         f"{'not reached' if t[0] is None else f'{t[0]:.0f} ± {t[1]:.0f}'} |")
        ours = [r for r in results if r["latent_dim"] == latent and r["config"] == "ours"]
        theirs = [r for r in results if r["latent_dim"] == latent and r["config"] == "atomai"]
        per_seed = [o["time_to_common_s"] / a["time_to_common_s"] for o, a in zip(ours, theirs)
                    if o["time_to_common_s"] is not None and a["time_to_common_s"]]
        ratios[latent] = per_seed
    table = "\n".join(lines)
    print("\n" + table)
    for latent, r in ratios.items():
        print(f"latent {latent}: ours/AtomAI time to the common level per seed: "
              + ", ".join(f"{x:.2f}" for x in r))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": args.threads},
        "settings": vars(args) | {"atomai_python": str(args.atomai_python), "out": str(args.out)},
        "runs": results, "time_ratio_ours_over_atomai": ratios, "markdown": table,
        "wall_s": time.perf_counter() - t0}, indent=1))
    print(f"wrote {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
