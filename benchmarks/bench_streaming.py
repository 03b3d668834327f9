"""Peak memory of make_tiles on a lazily loaded spectrum image: streamed vs read whole.

Writes a 256x256x2048 float32 SI (512 MiB of spectra) to a .zspy store (or .hspy file) in
a temporary folder, then tiles it in fresh subprocesses, side by side in one run. Each
loads the file lazily and reports its process peak resident memory (``ru_maxrss``) and the
peak of the make_tiles call itself above the memory in use before it (Linux: the peak,
``VmHWM``, is reset through ``/proc/self/clear_refs`` just before the call), next to the
size of the (N, E) float32 spectra make_tiles returns. Modes:

- ``streamed``: ``make_tiles`` as shipped (one band of scan rows at a time,
  ``plasmonwidgets.tiles.STREAM_BLOCK_BYTES``);
- ``whole``: the same call with the band set to the whole scan, i.e. the SI read into
  memory at once, as make_tiles did before it streamed;
- ``other`` (with ``--compare TILES_PY``): the make_tiles of another tiles.py, e.g. the
  version before streaming;
- ``band``: ``make_tiles(si, window=16, rows=(h // 2, h // 2 + h // 8))``, an eighth of the scan (how
  a scan larger than memory is tiled band by band);
- ``baseline``: loading the file lazily and building the HAADF, without tiling (the
  floor every run pays: interpreter, HyperSpy, torch-free imports).

Usage::

    python benchmarks/bench_streaming.py            # 256x256x2048
    python benchmarks/bench_streaming.py --small    # 64x64x512, a quick check
    git show fb2c539:plasmonwidgets/tiles.py > /tmp/tiles_before.py
    python benchmarks/bench_streaming.py --compare /tmp/tiles_before.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, warnings
warnings.simplefilter("ignore")
import plasmonwidgets as pw
import plasmonwidgets.tiles as tiles


def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024


mode, path = sys.argv[1], sys.argv[2]
if mode.startswith("module:"):  # another make_tiles implementation, e.g. an older tiles.py
    source = open(mode.split(":", 1)[1]).read()
    scope = {"__name__": "plasmonwidgets._other_tiles", "__package__": "plasmonwidgets"}
    exec(compile(source, mode, "exec"), scope)
    pw.make_tiles = scope["make_tiles"]
si = pw.load(path, lazy=True)
assert si.is_lazy
before = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
    f.write("5")
t0 = time.perf_counter()
n = 0
if mode != "baseline":
    if mode == "whole":
        tiles.STREAM_BLOCK_BYTES = 1 << 62  # one band: the whole scan
    h = si.scan_shape[0]
    band = {"rows": (h // 2, h // 2 + h // 8)} if mode == "band" else {}
    pairs = pw.make_tiles(si, window=16, **band)
    n = len(pairs)
    assert pairs.spectra.shape == (n, si.n_energy)
seconds = time.perf_counter() - t0
print(json.dumps({"mode": mode, "pairs": n, "seconds": seconds,
                  "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "call_peak": status("VmHWM") - before,
                  "output": n * si.n_energy * 4}))
"""


def write_si(path: Path, h: int, w: int, n_e: int) -> None:
    """A lazy, chunked SI written chunk by chunk (never whole in this process)."""
    import dask.array as da
    import hyperspy.api as hs
    import numpy as np

    import plasmonwidgets as pw

    hs.preferences.General.show_progressbar = False  # in memory only: the saved config is kept

    rng = da.random.default_rng(0)
    spectra = rng.poisson(100.0, size=(h, w, n_e), chunks=(16, w, n_e)).astype(np.float32)
    haadf = np.random.default_rng(1).random((h, w), dtype=np.float32)
    si = pw.SpectrumImage(spectra, np.linspace(0.2, 3.0, n_e), haadf, pixel_size=1.0)
    si.save(path)


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{mode} run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="64x64x512 instead of 256x256x2048")
    parser.add_argument("--format", choices=("zspy", "hspy"), default="zspy",
                        help="file format of the SI (default zspy)")
    parser.add_argument("--compare", metavar="TILES_PY",
                        help="also measure the make_tiles of another tiles.py (e.g. from "
                             "`git show <commit>:plasmonwidgets/tiles.py`)")
    args = parser.parse_args()
    h, w, n_e = (64, 64, 512) if args.small else (256, 256, 2048)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"scan.{args.format}"
        t0 = time.perf_counter()
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):  # dask's bar
            write_si(path, h, w, n_e)
        print(f"wrote {h}x{w}x{n_e} float32 SI ({h * w * n_e * 4 / 2**20:.0f} MiB of spectra) "
              f"to .{args.format} in {time.perf_counter() - t0:.1f} s")
        modes = ["baseline", "streamed", "band", "whole"]
        modes += [f"module:{args.compare}"] if args.compare else []
        results = {mode: measure(mode, path) for mode in modes}
        if args.compare:
            results["other"] = results.pop(f"module:{args.compare}")
    print(f"{'mode':<10}{'process peak':>14}{'call peak':>11}{'output':>8}{'seconds':>9}   (MiB)")
    for mode, r in results.items():
        print(f"{mode:<10}{r['maxrss'] / 2**20:>14.0f}{r['call_peak'] / 2**20:>11.0f}"
              f"{r['output'] / 2**20:>8.0f}{r['seconds']:>9.2f}")
    streamed = results["streamed"]["call_peak"]
    for mode in ("whole", "other"):
        if mode in results:
            print(f"call peak {mode} / streamed: {results[mode]['call_peak'] / streamed:.2f}x")


if __name__ == "__main__":
    main()
