"""Time the built-in dataset's simulator: from nothing, with the cube's modes cached, and repeats.

Run: ``python benchmarks/bench_simulate.py`` (uses a throw-away cache directory, so the first
scene computes the cube's boundary-element modes and beam-coupling table too).

Targets (the built-in dataset issue): the default 96 × 96 scan ≤ 60 s from nothing on a 2-core
machine, 64 × 64 ≤ 20 s, a second call instant. The point-dipole toy is timed for reference.
Wall and CPU time are both printed: on a shared machine the wall time measures the other jobs
too.
"""

from __future__ import annotations

import os
import tempfile
import time


def _timed(fn):
    t, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - cpu


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PLASMONWIDGETS_CACHE"] = tmp
        from plasmonwidgets import datasets

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"CPU cores: {os.cpu_count()}, load average (1 min): {load:.2f}")
        print(f"{'case':<46}{'wall s':>9}{'CPU s':>9}{'cubes':>7}")
        cases = [("96x96x100 (default), from nothing", dict(size=96)),
                 ("64x64x100, cube modes cached", dict(size=64)),
                 ("32x32x100, cube modes cached", dict(size=32)),
                 ("96x96x100, cube modes cached", dict(size=96)),
                 ("96x96x100, point-dipole toy", dict(size=96, physics="toy"))]
        for label, kw in cases:
            si, wall, cpu = _timed(lambda kw=kw: datasets.nanocube_array(seed=0, cache=False, **kw))
            n = si.metadata["simulation"]["n_particles"]
            print(f"{label:<46}{wall:>9.2f}{cpu:>9.2f}{n:>7d}", flush=True)
        datasets.nanocube_array(seed=0)  # fills both caches
        _, wall, _ = _timed(lambda: datasets.nanocube_array(seed=0))
        print(f"{'96x96, memory cache':<46}{wall:>9.4f}")
        datasets.clear_cache()  # as in a new process: only the disk cache is left
        _, wall, _ = _timed(lambda: datasets.nanocube_array(seed=0))
        print(f"{'96x96, disk cache':<46}{wall:>9.4f}")


if __name__ == "__main__":
    main()
