"""How prediction quality depends on the latent size (the paper's 2 vs 10 dims).

One model per latent size. The models are independent, so with a ``dask.distributed``
client each is trained as one task on the cluster (the tiles sent to every worker once);
without one they are trained here, one after another.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..roles import role_of
from ._inputs import check_pairs
from .errors import error_haadf_correlation, scan_map, tile_errors

__all__ = ["latent_sweep"]


def _haadf_reference(pairs: Any, si: Any) -> np.ndarray:
    """(h, w) HAADF on the SI grid: from ``si`` or, without one, the tile centres."""
    if si is not None:
        return si.haadf_on_si_grid()
    ref = np.full(pairs.scan_shape, np.nan)
    c = pairs.images.shape[-1] // 2
    ref[pairs.positions[:, 0], pairs.positions[:, 1]] = pairs.images[:, c, c]
    return ref


def _last_value(values: list) -> float:
    """The last logged value (test losses may be skipped on some epochs), NaN if none."""
    logged = [v for v in values if v is not None]
    return float(logged[-1]) if logged else float("nan")


def latent_sweep(
    train: Any,
    test: Any,
    direction: str,
    dims: tuple[int, ...] = (2, 4, 6, 8, 10),
    epochs: int = 30,
    *,
    si: Any = None,
    seed: int | tuple[int, ...] = 0,
    train_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    return_models: bool = False,
    client: Any = None,
    progress: bool = True,
) -> list[dict]:
    """Train one model per latent size and tabulate its test error.

    Parameters
    ----------
    train, test : TilePairs from a spatial split (``pairs.split(...)``)
    direction : "im2spec" or "spec2im"
    dims : latent sizes to try
    epochs : training epochs per model (``pw.train``)
    si : SpectrumImage the tiles came from; its HAADF on the SI grid is
        correlated with the test error map. Without it the centre pixel of each
        test tile is used, which is the same thing when the HAADF and the SI
        share a grid (scale 1).
    seed : int or sequence of int
        Seed of the weight initialisation and of training; several seeds train an ensemble,
        one model per (latent size, seed), for the spread over training seeds.
    train_kwargs, model_kwargs : extra arguments for ``pw.train`` and the model
    return_models : add each trained model to its row under ``"model"``
    client : dask.distributed.Client or a scheduler address ("tcp://host:8786"), optional
        Train one model per task on that cluster (``client.submit``); a task's torch uses
        its worker's threads. Without one, the models are trained here in turn.
    progress : progress bars (one per model here; finished models with a client)

    Returns
    -------
    list of dict, one per latent size in the order of ``dims`` (per latent size and seed,
    seeds varying fastest, when ``seed`` is a sequence), with
        ``latent_dim``, ``seed``, ``test_nmse`` (mean per-tile NMSE on the test set, %),
        ``test_nmse_median`` (%), ``train_loss`` and ``test_loss`` (last logged
        epoch, MSE on normalised targets; the NMSE and correlation columns use the
        weights the model keeps: the last epoch's, or the best-validation ones when
        ``train_kwargs`` pass ``validation``), ``r`` and ``mse`` (test error map vs HAADF, see
        :func:`error_haadf_correlation`), ``train_time_s``. The same numbers with or
        without a client.

    Examples
    --------
    >>> rows = latent_sweep(train, test, "im2spec", dims=(2, 10), si=si)           # doctest: +SKIP
    >>> rows = latent_sweep(train, test, "im2spec", client="tcp://host:8786")      # doctest: +SKIP
    """
    direction = role_of(direction).direction  # an unknown label raises here, before training
    check_pairs(train)
    check_pairs(test)
    sizes = [int(d) for d in dims]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"dims must be positive latent sizes, got {dims!r}")
    seeds = [int(s) for s in np.atleast_1d(seed)]
    if not seeds:
        raise ValueError("seed must be an integer or a non-empty sequence of integers")
    reference = _haadf_reference(test, si)
    job = dict(direction=direction, epochs=epochs, train_kwargs=dict(train_kwargs or {}),
               model_kwargs=dict(model_kwargs or {}))
    configs = [(d, s) for d in sizes for s in seeds]
    if client is None:
        rows = [_train_one(train, test, reference, d, seed=s, progress=progress, **job) for d, s in configs]
    else:
        rows = _on_cluster(client, train, test, reference, configs, job, progress)
    for row in rows:
        model = row.pop("model")
        if return_models:
            # a cluster task returns the weights (a model's lock cannot be pickled)
            row["model"] = model.new_model() if hasattr(model, "new_model") else model
    return rows


def _train_one(train: Any, test: Any, reference: np.ndarray, latent_dim: int, *, direction: str,
               epochs: int, seed: int, train_kwargs: dict, model_kwargs: dict, progress: bool,
               portable: bool = False) -> dict:
    """Train and score one model; its row holds the model under "model" (``portable``: its
    picklable :class:`~plasmonwidgets.analysis.lazy_prediction.ModelPayload`)."""
    from ..cluster import torch_threads_for_worker
    from ..models import model_class
    from ..training import train as train_model

    torch_threads_for_worker()
    window, n_energy = int(train.images.shape[-1]), int(train.spectra.shape[-1])
    model = model_class(direction)(window=window, n_energy=n_energy, latent_dim=latent_dim,
                                   energy=train.energy, seed=seed, **model_kwargs)
    options = {"progress": progress, **train_kwargs}
    history = train_model(model, train, test, epochs=epochs, seed=seed, **options)
    errors = tile_errors(model, test)
    r, mse = error_haadf_correlation(scan_map(errors, test), reference)
    if portable:
        from .lazy_prediction import ModelPayload

        model = ModelPayload(model)
    return {
        "latent_dim": latent_dim,
        "seed": seed,
        "test_nmse": float(np.mean(errors)),
        "test_nmse_median": float(np.median(errors)),
        "train_loss": float(history.train_loss[-1]),
        "test_loss": _last_value(history.test_loss),
        "r": r,
        "mse": mse,
        "train_time_s": float(np.sum(history.epoch_time)),
        "model": model,
    }


def _on_cluster(client: Any, train: Any, test: Any, reference: np.ndarray, configs: list[tuple[int, int]],
                job: dict, progress: bool) -> list[dict]:
    """One task per (latent size, seed) on ``client`` (a Client or an address); rows in order."""
    from ..cluster import dask_scheduler

    if isinstance(client, str) and "://" not in client:
        raise ValueError(f"client must be a dask.distributed.Client or a scheduler address such as "
                         f"tcp://host:8786, got {client!r}")
    with dask_scheduler(client) as cl:
        from distributed import as_completed

        # the tiles travel to each worker once, not once per task
        shared = cl.scatter([train, test, reference], broadcast=True)
        futures = [cl.submit(_train_one, *shared, d, seed=s, progress=False, portable=True, pure=False, **job)
                   for d, s in configs]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(futures), desc=f"{job['direction']} latent sweep", unit="model")
        try:
            for _ in as_completed(futures):
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return cl.gather(futures)
