"""Time the nanocube-array simulator: fresh simulations and cached repeats.

Run: ``python benchmarks/bench_simulate.py`` (uses a throw-away cache directory).
"""

from __future__ import annotations

import os
import tempfile
import time


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PLASMONWIDGETS_CACHE"] = tmp
        from plasmonwidgets import datasets

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"CPU cores: {os.cpu_count()}, load average (1 min): {load:.2f}")
        print(f"{'case':<34}{'seconds':>10}{'particles':>11}")
        for size in (32, 64, 96):
            t0 = time.perf_counter()
            si = datasets.nanocube_array(seed=0, size=size, cache=False)
            dt = time.perf_counter() - t0
            n = si.metadata["simulation"]["n_particles"]
            print(f"{f'{size}x{size}x{si.n_energy}, no cache':<34}{dt:>10.2f}{n:>11d}")
        datasets.nanocube_array(seed=0, size=96)  # fills both caches
        t0 = time.perf_counter()
        datasets.nanocube_array(seed=0, size=96)
        print(f"{'96x96, memory cache':<34}{time.perf_counter() - t0:>10.4f}")
        datasets.clear_cache()  # as in a new process: only the disk cache is left
        t0 = time.perf_counter()
        datasets.nanocube_array(seed=0, size=96)
        print(f"{'96x96, disk cache':<34}{time.perf_counter() - t0:>10.4f}")


if __name__ == "__main__":
    main()
