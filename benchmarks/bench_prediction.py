"""Whole-image prediction: compute efficiency of the default model, and memory/time on Dask.

Side by side in one run:

- ``throughput``: the matrix-product peak of this CPU with torch's threads (square matmuls of
  ``--matmul`` rows, float32 and bfloat16) in GFLOP/s, and the packaged 10-latent im2spec
  model (the default) on random 16x16 tiles, batch 1024 and 4096, float32 and bfloat16
  autocast: tiles/s through ``model.predict`` (the path prediction uses) and through a bare
  forward pass, and the achieved GFLOP/s (FLOPs counted by ``torch.utils.flop_counter``)
  as a fraction of the measured peak. All cases run in interleaved rounds and the best of
  each is kept, so on a shared machine the peak and the model see the same background load;
- ``scaling``: ``predict_to_file`` of a lazily generated HAADF (never in memory as a whole;
  SI at scale 4) into a .zspy store, each size and scheduler in a fresh subprocess: the local
  threaded scheduler, and a ``LocalCluster`` of 1 and 2 single-threaded worker processes.
  Blocks of ``CHUNK`` SI pixels. Reports wall time, tiles/s, and the peak resident memory
  (``ru_maxrss``) of the client process and of each worker, plus the peaks sampled every 5 s
  (``psutil``; the ~12 MiB child is a multiprocessing helper, not a worker). A run longer than
  ``--timeout`` seconds is stopped (its whole process group) and reported with the blocks
  it had written, the tiles/s up to then and the memory peaks sampled so far;
- ``sweep``: ``analysis.latent_sweep`` of 5 latent sizes (default im2spec architecture, the
  built-in 96x96 scan, ``--epochs`` epochs) serially here and on a ``LocalCluster`` of 2
  single-threaded workers (one task per size), wall time of each (cluster start-up excluded).

Usage::

    python benchmarks/bench_prediction.py                     # 1024² and 2048² HAADF
    python benchmarks/bench_prediction.py --only scaling --sizes 1024 4096 --timeout 720
    python benchmarks/bench_prediction.py --sizes 512 --quick # a smoke run
    python benchmarks/bench_prediction.py --only throughput
    python benchmarks/bench_prediction.py --only sweep --epochs 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

SCALE = 4
#: SI pixels per block side: 4 blocks for a 1024² HAADF at scale 4, 16 for 2048²
CHUNK = 128


def _rate(fn, work: float, min_time: float = 0.3) -> float:
    """work/s of ``fn``, looped for at least ``min_time`` seconds."""
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            return n * work / dt


def _flops_per_tile(model, batch: int) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.randn(batch, model.window, model.window)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(model.normalize_inputs(x))
    return counter.get_total_flops() / batch


def compute_efficiency(rounds: int, n: int) -> dict:
    """Matmul peaks and model throughput, measured in interleaved rounds (best of each): on a
    shared machine every case sees the same background load."""
    import torch

    from plasmonwidgets import pretrained
    from plasmonwidgets.analysis.lazy_prediction import _autocast

    model = pretrained.load_default("im2spec", 10)
    model.eval()
    flops = _flops_per_tile(model, 256)
    rng = np.random.default_rng(0)
    mean, spread = float(model.x_offset.mean()), float(model.x_scale)
    cases = {}
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)

        def mm(a=a, b=b):
            with torch.inference_mode():
                torch.mm(a, b)

        cases[("peak", name)] = (mm, 2 * n**3)
    for batch in (1024, 4096):
        tiles = (mean + spread * rng.standard_normal((batch, model.window, model.window))).astype(np.float32)
        x = model.normalize_inputs(torch.from_numpy(tiles))
        for precision in ("float32", "bfloat16"):
            cast = None if precision == "float32" else "bfloat16"

            def predict(tiles=tiles, cast=cast):
                with _autocast(cast):
                    model.predict(tiles)

            def forward(x=x, cast=cast):
                with torch.inference_mode(), _autocast(cast):
                    model(x)

            cases[("model.predict", precision, batch)] = (predict, batch)
            cases[("forward", precision, batch)] = (forward, batch)
    best = dict.fromkeys(cases, 0.0)
    for fn, _ in cases.values():
        fn()  # warm up: allocations, oneDNN kernel choice
    for _ in range(rounds):
        for key, (fn, work) in cases.items():
            best[key] = max(best[key], _rate(fn, work))
    peak = {name: best[("peak", name)] / 1e9 for name in ("float32", "bfloat16")}
    rows = []
    for key, rate in best.items():
        if key[0] == "peak":
            continue
        path, precision, batch = key
        gflops = rate * flops / 1e9
        rows.append(dict(batch=batch, precision=precision, path=path, tiles_per_s=round(rate),
                         gflop_per_s=round(gflops, 1),
                         pct_of_bf16_peak=round(100 * gflops / peak["bfloat16"], 1),
                         pct_of_same_dtype_peak=round(100 * gflops / peak[precision], 1)))
    return {"matmul_peak_gflop_per_s": {k: round(v, 1) for k, v in peak.items()},
            "mflop_per_tile": round(flops / 1e6, 2), "torch_threads": torch.get_num_threads(),
            "rows": rows}


# ------------------------------------------------------------------------------ scaling
def synthetic_haadf(size: int, mean: float, spread: float, chunk: int = 512):
    """A lazily generated (size, size) HAADF: blurred random particles, block by block."""
    import dask.array as da
    from scipy.ndimage import gaussian_filter

    def block(x, block_info=None):
        loc = block_info[None]["chunk-location"]
        rng = np.random.default_rng(1000 * loc[0] + loc[1])
        img = gaussian_filter((rng.random(x.shape) > 0.995) * 1.0, 3.0)
        img = (img - img.mean()) / (img.std() + 1e-12)
        return (mean + spread * img).astype(np.float32)

    return da.zeros((size, size), chunks=chunk, dtype=np.float32).map_blocks(block, dtype=np.float32)


class _Monitor:
    """Samples, every ``interval`` s on a thread, the resident memory of this process and of
    its child processes (the LocalCluster's workers) and the blocks already in the store,
    keeping the peaks, and prints a progress line: a run stopped by the timeout still
    reports how far it got."""

    def __init__(self, out_dir: str, tiles_per_block: int, interval: float = 5.0):
        import threading

        import psutil

        self.me, self.out_dir, self.tiles_per_block = psutil.Process(), out_dir, tiles_per_block
        self.interval, self.t0 = interval, time.perf_counter()
        self.client_peak, self.worker_peaks = 0, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def blocks_written(self) -> int:
        # HyperSpy's zarr chunks of the 3-D spectra are files data/i/j/k (the HAADF's: data/i/j)
        n = 0
        for root, _, files in os.walk(self.out_dir):
            parts = root.split(os.sep)
            if len(parts) >= 3 and parts[-3] == "data" and parts[-2].isdigit() and parts[-1].isdigit():
                n += sum(f.isdigit() for f in files)
        return n

    def sample(self) -> dict:
        import psutil

        self.client_peak = max(self.client_peak, self.me.memory_info().rss)
        try:  # processes come and go while a cluster starts: skip those that went
            children = self.me.children(recursive=True)
        except psutil.Error:
            children = []
        for child in children:
            try:
                rss = child.memory_info().rss
            except psutil.Error:
                continue
            self.worker_peaks[child.pid] = max(self.worker_peaks.get(child.pid, 0), rss)
        blocks = self.blocks_written()
        elapsed = time.perf_counter() - self.t0
        return dict(progress=True, elapsed_s=round(elapsed, 1), blocks=blocks,
                    tiles_per_s=round(blocks * self.tiles_per_block / elapsed) if elapsed else 0,
                    client_rss_peak_mib=round(self.client_peak / 2**20),
                    child_rss_peak_mib=sorted(round(v / 2**20) for v in self.worker_peaks.values()))

    def _loop(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                print(json.dumps(self.sample()), flush=True)
            except Exception as exc:  # a failed sample must not end the sampling
                print(f"monitor: {exc!r}", file=sys.stderr, flush=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def _run_one(size: int, workers: int, out_dir: str, precision: str) -> dict:
    """One scaling run, in this (fresh) process."""
    from plasmonwidgets import pretrained
    from plasmonwidgets.analysis import predict_to_file

    model = pretrained.load_default("im2spec", 10)
    image = synthetic_haadf(size, float(model.x_offset.mean()), float(model.x_scale))
    run_dir = tempfile.mkdtemp(dir=out_dir)
    out = os.path.join(run_dir, f"pred_{size}_{workers}.zspy")
    worker_peaks = []
    t0 = time.perf_counter()
    if workers == 0:
        with _Monitor(run_dir, CHUNK * CHUNK) as monitor:
            predict_to_file(model, image, out, scale=SCALE, chunks=CHUNK, precision=precision, progress=False)
            elapsed = time.perf_counter() - t0
    else:
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            # worker start-up (imports of torch and plasmonwidgets) is not prediction time
            client.run(lambda: __import__("plasmonwidgets.analysis.lazy_prediction"))
            t0 = time.perf_counter()
            with _Monitor(run_dir, CHUNK * CHUNK) as monitor:
                predict_to_file(model, image, out, scale=SCALE, chunks=CHUNK, precision=precision,
                                progress=False, scheduler=client)
                elapsed = time.perf_counter() - t0
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
            worker_peaks = [round(v / 1024) for v in peaks.values()]
    n = (size // SCALE) ** 2
    return dict(size=size, scheduler="threads" if workers == 0 else f"{workers} worker(s)",
                seconds=round(elapsed, 1), tiles_per_s=round(n / elapsed),
                client_peak_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                worker_peak_mib=worker_peaks,
                output_mib=round(n * model.n_energy * 4 / 2**20),
                load_average=[round(v, 1) for v in os.getloadavg()],
                sampled=monitor.sample())


def _stop_group(proc: subprocess.Popen) -> tuple[str, str]:
    """Kill a run's whole process group (its LocalCluster workers too); its output so far."""
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate()


def scaling(sizes: list[int], workers: list[int], precision: str, timeout: float) -> list[dict]:
    """Each size and scheduler in a fresh process; a run past ``timeout`` seconds is stopped
    and reported with the progress it had made (blocks written, tiles/s, peaks so far)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            for w in workers:
                cmd = [sys.executable, __file__, "--_one", str(size), str(w), tmp, precision]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)
                try:
                    out, err = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    out, err = _stop_group(proc)
                    lines = [json.loads(x) for x in out.strip().splitlines() if x.startswith("{")]
                    last = lines[-1] if lines else {}
                    n = (size // SCALE) ** 2
                    rows.append(dict(size=size, scheduler="threads" if w == 0 else f"{w} worker(s)",
                                     stopped_after_s=timeout, done_fraction=round(
                                         last.get("blocks", 0) * CHUNK * CHUNK / n, 3),
                                     load_average=[round(v, 1) for v in os.getloadavg()], **last))
                    print(rows[-1], flush=True)
                    print(err[-2000:], file=sys.stderr, flush=True)
                    continue
                if proc.returncode:
                    raise RuntimeError(err[-3000:])
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    return rows


def sweep(epochs: int) -> list[dict]:
    """Serial latent sweep vs one task per latent size on 2 worker processes."""
    from distributed import Client, LocalCluster

    import plasmonwidgets as pw
    from plasmonwidgets.analysis import latent_sweep

    si = pw.datasets.nanocube_array(seed=0)
    train, test = pw.make_tiles(si, window=16).split("halves")
    options = dict(dims=(2, 4, 6, 8, 10), epochs=epochs, si=si, progress=False,
                   model_kwargs=dict(device="cpu"))
    t0 = time.perf_counter()
    serial = latent_sweep(train, test, "im2spec", **options)
    rows = [dict(where="serial (this process, torch threads: all cores)",
                 seconds=round(time.perf_counter() - t0, 1))]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: __import__("plasmonwidgets.analysis.sweep"))
        t0 = time.perf_counter()
        there = latent_sweep(train, test, "im2spec", client=client, **options)
        elapsed = time.perf_counter() - t0
    rows.append(dict(where="LocalCluster, 2 workers x 1 thread", seconds=round(elapsed, 1)))
    for a, b in zip(serial, there):
        rows.append(dict(latent_dim=a["latent_dim"], nmse_serial=round(a["test_nmse"], 2),
                         nmse_cluster=round(b["test_nmse"], 2)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("throughput", "scaling", "sweep"))
    parser.add_argument("--epochs", type=int, default=3, help="epochs per model in the sweep")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2],
                        help="0 = local threaded scheduler, n = LocalCluster of n worker processes")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--timeout", type=float, default=720,
                        help="seconds per scaling run; a run stopped there reports its progress")
    parser.add_argument("--matmul", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--_one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._one:
        size, w, tmp, precision = args._one
        print(json.dumps(_run_one(int(size), int(w), tmp, precision)))
        return
    report = {}
    if args.only in (None, "throughput"):
        report["throughput"] = compute_efficiency(3 if args.quick else 8, args.matmul)
        for row in report["throughput"]["rows"]:
            print(row, flush=True)
    if args.only in (None, "scaling"):
        report["scaling"] = scaling(args.sizes, args.workers, args.precision, args.timeout)
    if args.only in (None, "sweep"):
        report["sweep"] = sweep(args.epochs)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
