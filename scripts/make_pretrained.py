"""Re-create the pre-trained default models shipped in plasmonwidgets/pretrained/.

    python scripts/make_pretrained.py                 # all four: im2spec/spec2im x 2/10 latent
    python scripts/make_pretrained.py --epochs 5 --only im2spec_2 --out /tmp/pt

Nothing is downloaded: the training data are the built-in simulated nanocube array
(``datasets.nanocube_array(**pretrained.DATASET)``), split spatially into halves
(train on one, test on the other, as the paper does); the architecture is
``pretrained.ARCH``. Each file records the data fingerprint, the simulator
parameters, the loss history and the test NMSE in its metadata, so the dashboard
can refuse to apply a model to data it does not fit.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from plasmonwidgets import datasets, pretrained
    from plasmonwidgets.analysis import error_map
    from plasmonwidgets.models import Im2Spec, Spec2Im
    from plasmonwidgets.tiles import make_tiles
    from plasmonwidgets.training import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="batch-order seed")
    parser.add_argument("--out", type=Path, default=pretrained.HERE, help="output folder")
    parser.add_argument(
        "--only", nargs="*", default=None, metavar="NAME",
        help="subset, e.g. im2spec_2 spec2im_10 (default: all four)",
    )  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    si = datasets.nanocube_array(**pretrained.DATASET)
    pairs = make_tiles(si, window=pretrained.WINDOW)
    train_set, test_set = pairs.split(pretrained.SPLIT)
    fingerprint = pretrained.data_fingerprint(si, pretrained.WINDOW)
    print(
        f"data: {si.scan_shape} scan, {si.n_energy} channels "
        f"{si.energy[0]:.2f}-{si.energy[-1]:.2f} eV; {len(train_set)} train / {len(test_set)} "
        f"test tiles ({time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    classes = {"im2spec": Im2Spec, "spec2im": Spec2Im}
    wanted = [
        (d, k) for d in pretrained.DIRECTIONS for k in pretrained.LATENT_DIMS
        if args.only is None or f"{d}_{k}" in args.only
    ]  # fmt: skip
    if not wanted:
        parser.error(f"--only matched nothing; names are e.g. im2spec_2, spec2im_10 (got {args.only})")
    for direction, latent in wanted:
        kwargs = pretrained.architecture(direction, latent, si.n_energy)
        model = classes[direction](**kwargs, energy=si.energy, device="cpu")
        t1 = time.perf_counter()
        history = train(model, train_set, test_set, epochs=args.epochs, seed=args.seed)
        err = error_map(model, test_set)
        nmse, median = float(np.nanmean(err)), float(np.nanmedian(err))
        extra = {
            "data": fingerprint,
            "dataset": {"name": "nanocube_array", **pretrained.DATASET},
            "split": pretrained.SPLIT,
            "epochs": len(history.train_loss),
            "train_loss": [float(v) for v in history.train_loss],
            "test_loss": [float(v) for v in history.test_loss if v is not None],
            "test_nmse": nmse,
            "test_nmse_median": median,
        }
        path = model.save(args.out / f"{direction}_{latent}.pt", extra=extra)
        print(
            f"{direction} latent={latent}: test NMSE mean {nmse:.2f} %, median {median:.2f} %, "
            f"{time.perf_counter() - t1:.0f} s, {path.stat().st_size / 1024:.0f} kB -> {path}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
