"""Command line: ``plasmonwidgets demo | simulate | train | predict``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from plasmonwidgets.roles import DIRECTIONS

__all__ = ["main", "dashboard_notebook", "demo_command"]


def dashboard_notebook() -> Path:
    """Path of the dashboard notebook: the copy a wheel installs as package data
    (``plasmonwidgets/app/dashboard.ipynb``, beside this module), else
    ``notebooks/dashboard.ipynb`` of a source checkout (editable installs).

    Examples
    --------
    >>> dashboard_notebook().name
    'dashboard.ipynb'
    """
    here = Path(__file__).resolve().parent
    candidates = (here / "dashboard.ipynb", here.parents[1] / "notebooks" / "dashboard.ipynb")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"dashboard.ipynb not found (looked at {', '.join(map(str, candidates))}); reinstall "
        "plasmonwidgets from a wheel or run it from a source checkout")


def demo_command(host: str, port: int, data_dir: str | os.PathLike, *, max_kernels: int = 8,
                 cull_after: float = 60.0, theme: str = "light") -> tuple[list[str], dict[str, str]]:
    """The Voila command line and environment that ``plasmonwidgets demo`` runs.

    Sources and tracebacks are kept from the page; the file chooser is confined to
    ``data_dir`` (via ``PLASMONWIDGETS_DATA_DIR``); at most ``max_kernels`` dashboards run
    at once (0: no cap; beyond it a page says the server is busy); the kernel of a closed
    tab is shut down ``cull_after`` seconds after its page went away, even while training
    (see :mod:`plasmonwidgets.app.serve`). ``theme`` is the JupyterLab theme of the page,
    "light" or "dark"; the figures follow it.

    Examples
    --------
    >>> cmd, env = demo_command("127.0.0.1", 8866, ".", max_kernels=4)
    >>> cmd[1:3], env["PLASMONWIDGETS_DATA_DIR"] != ""
    (['-m', 'plasmonwidgets.app.serve'], True)
    """
    if theme not in ("light", "dark"):
        raise ValueError(f"--theme must be light or dark, got {theme!r}")
    if max_kernels < 0:
        raise ValueError(f"--max-kernels must be >= 0 (0: no cap), got {max_kernels}")
    if not cull_after > 0:
        raise ValueError(f"--cull-after must be > 0 seconds, got {cull_after}")
    notebook = dashboard_notebook()
    cmd = [
        sys.executable, "-m", "plasmonwidgets.app.serve", str(notebook),
        f"--Voila.ip={host}", f"--port={port}", "--no-browser",
        "--strip_sources=True", "--show_tracebacks=False",
        f"--Voila.root_dir={notebook.parent}", f"--theme={theme}",
        # a closed browser tab must not leave its kernel (and its threads) behind
        f"--MappingKernelManager.cull_idle_timeout={cull_after:g}",
        f"--MappingKernelManager.cull_interval={max(1, min(15, round(cull_after / 4)))}",
        f"--DashboardKernelManager.orphan_timeout={cull_after:g}",
        f"--DashboardKernelManager.max_kernels={max_kernels}",
    ]  # fmt: skip
    env = dict(os.environ, PLASMONWIDGETS_DATA_DIR=str(Path(data_dir).resolve()))
    return cmd, env


def prepare_builtin_dataset() -> None:
    """Simulate and cache the built-in scan once, before any page asks for it.

    A dashboard opened on a fresh machine would otherwise wait the simulation's minute
    behind a loading note; here the terminal says what is happening.

    Examples
    --------
    >>> prepare_builtin_dataset()   # about a minute the first time, then instant  # doctest: +SKIP
    """
    from plasmonwidgets import datasets, pretrained

    if datasets.is_cached(**pretrained.DATASET):
        return
    print(f"simulating the built-in dataset once (about a minute; cached in {datasets.cache_dir()})",
          flush=True)
    t0 = time.perf_counter()
    datasets.nanocube_array(**pretrained.DATASET)
    print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .voila_process import free_port

    prepare_builtin_dataset()
    port = args.port or free_port(args.host)
    cmd, env = demo_command(args.host, port, args.data_dir, max_kernels=args.max_kernels,
                            cull_after=args.cull_after, theme=args.theme)
    url = f"http://{args.host}:{port}/"
    print(f"plasmonwidgets dashboard: {url}  (Ctrl-C to stop)", flush=True)
    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        return proc.wait()


def _cmd_simulate(args: argparse.Namespace) -> int:
    from plasmonwidgets import datasets
    from plasmonwidgets.simulate import summary

    t0 = time.perf_counter()
    si = datasets.nanocube_array(seed=args.seed, size=args.size, scale=args.scale)
    elapsed = time.perf_counter() - t0
    print(summary(si))
    print(f"generated in {elapsed:.1f} s")
    if args.out:
        path = si.save(args.out)
        print(f"saved to {path}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    import numpy as np

    from plasmonwidgets import datasets
    from plasmonwidgets.analysis import error_map
    from plasmonwidgets.io import load
    from plasmonwidgets.models import model_class
    from plasmonwidgets.tiles import make_tiles
    from plasmonwidgets.training import train

    si = datasets.nanocube_array(seed=0) if args.data == "builtin" else load(args.data)
    pairs = make_tiles(si, window=args.window)
    train_set, test_set = pairs.split(args.split)
    # the toolkit's lean default unless the paper's layer sizes are asked for
    preset = "paper" if args.paper_sizes else "lean"
    cls = model_class(args.direction)
    model = cls(window=args.window, n_energy=si.n_energy, latent_dim=args.latent, preset=preset,
                energy=si.energy)
    history = train(model, train_set, test_set, epochs=args.epochs, seed=args.seed,
                    progress=not args.quiet)
    model.save(args.out)
    err = error_map(model, test_set)
    print(
        f"{args.direction} latent={args.latent}: test NMSE {np.nanmean(err):.2f} % "
        f"over {len(test_set)} test tiles, {len(history.train_loss)} epochs, "
        f"{sum(history.epoch_time):.1f} s; saved to {args.out}"
    )
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from plasmonwidgets.analysis import predict_to_file

    chunks = args.chunks and (args.chunks[0] if len(args.chunks) == 1 else tuple(args.chunks))
    path = predict_to_file(args.model, args.haadf, args.out, scale=args.scale, pixel_size=args.pixel_size,
                           chunks=chunks, batch_size=args.batch_size,
                           pad=None if args.pad == "none" else args.pad,
                           precision=args.precision, scheduler=args.scheduler, progress=not args.quiet,
                           overwrite=args.overwrite)
    print(f"predicted spectrum image written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``plasmonwidgets``: subcommands demo, simulate, train, predict.

    Examples
    --------
    >>> args = build_parser().parse_args(["train", "scan.hspy", "--direction", "spec2im"])
    >>> args.direction, args.latent, args.data
    ('spec2im', 10, 'scan.hspy')
    """
    parser = argparse.ArgumentParser(prog="plasmonwidgets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="serve the dashboard with Voila")
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8866, help="port (0 picks a free one)")
    demo.add_argument("--data-dir", default=".", help="folder the dashboard's file chooser may read")
    demo.add_argument("--max-kernels", type=int, default=8,
                      help="most dashboards open at once, each with its own kernel (default 8; 0: "
                           "no cap); beyond it a page says the server is busy")
    demo.add_argument("--cull-after", type=float, default=60.0,
                      help="seconds after its tab closed that a dashboard's kernel is shut down, "
                           "training or not (default 60)")
    demo.add_argument("--theme", choices=("light", "dark"), default="light",
                      help="JupyterLab theme of the page and its figures (default light)")
    demo.set_defaults(func=_cmd_demo)

    sim = sub.add_parser("simulate", help="simulate the built-in nanocube dataset")
    sim.add_argument("out", nargs="?", help="write the SpectrumImage here (.hspy, .zspy or .npz)")
    sim.add_argument("--size", type=int, default=96, help="scan size in SI pixels")
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--scale", type=int, default=1, help="HAADF oversampling factor")
    sim.set_defaults(func=_cmd_simulate)

    tr = sub.add_parser("train", help="train im2spec or spec2im on a file or the built-in data")
    tr.add_argument("data", help="data file, or 'builtin' for the simulated dataset")
    tr.add_argument("--direction", choices=DIRECTIONS, default="im2spec")
    tr.add_argument("--latent", type=int, default=10)
    tr.add_argument("--epochs", type=int, default=30)
    tr.add_argument("--window", type=int, default=16)
    tr.add_argument("--split", default="halves", choices=("halves", "stripes", "blocks"))
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--out", default="model.pt")
    tr.add_argument("--paper-sizes", action="store_true",
                    help="the paper's 64-filter layers instead of the 16-filter default")
    tr.add_argument("--quiet", action="store_true")
    tr.set_defaults(func=_cmd_train)

    pr = sub.add_parser("predict", help="predict the spectrum image of a HAADF image file, block by block")
    pr.add_argument("haadf", help="HAADF image file (.hspy, .zspy, .emd, .dm3, .dm4), read lazily")
    pr.add_argument("--model", required=True, help="trained im2spec model file (model.save / train --out)")
    pr.add_argument("--out", required=True, help="predicted SI, written block by block (.zspy or .hspy)")
    pr.add_argument("--scale", type=int, help="HAADF pixels per predicted SI pixel")
    pr.add_argument("--pixel-size", type=float,
                    help="SI pixel size in the image's calibrated unit (sets the scale instead)")
    pr.add_argument("--chunks", type=int, nargs="+", metavar="N",
                    help="SI pixels per block side (one task and one zarr chunk); N or ROWS COLS")
    pr.add_argument("--batch-size", "--batch", type=int, default=4096, dest="batch_size",
                    help="tiles per model call (default 4096; --batch is the older name)")
    pr.add_argument("--pad", choices=("none", "reflect"), default="none",
                    help="'reflect' also predicts the border pixels (mirrored image)")
    pr.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                    help="auto: bfloat16 on CPUs with native support")
    pr.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786) or threads/processes/"
                                        "synchronous; default: the local threaded scheduler")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=_cmd_predict)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``plasmonwidgets <command> ...`` with ``argv`` (default: ``sys.argv[1:]``);
    returns the exit status.

    Examples
    --------
    >>> main(["train", "builtin", "--direction", "spec2im", "--epochs", "5"])  # doctest: +SKIP
    spec2im latent=2: test NMSE ... % over ... test tiles, 5 epochs, ... s; saved to spec2im.pt
    0
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "port", None) == 0:
        args.port = None
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError, TypeError) as exc:
        print(f"plasmonwidgets {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
