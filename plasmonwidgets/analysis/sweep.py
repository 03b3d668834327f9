"""How prediction quality depends on the latent size (the paper's 2 vs 10 dims)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._inputs import DIRECTIONS, check_pairs
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
    seed: int = 0,
    train_kwargs: dict | None = None,
    model_kwargs: dict | None = None,
    return_models: bool = False,
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
    seed : seed of the weight initialisation and of training
    train_kwargs, model_kwargs : extra arguments for ``pw.train`` and the model
    return_models : add each trained model to its row under ``"model"``

    Returns
    -------
    list of dict, one per latent size, with
        ``latent_dim``, ``test_nmse`` (mean per-tile NMSE on the test set, %),
        ``test_nmse_median`` (%), ``train_loss`` and ``test_loss`` (last logged
        epoch, MSE on normalised targets; the NMSE and correlation columns use the
        weights the model keeps: the last epoch's, or the best-validation ones when
        ``train_kwargs`` pass ``validation``), ``r`` and ``mse`` (test error map vs HAADF, see
        :func:`error_haadf_correlation`), ``train_time_s``.
    """
    from ..models import Im2Spec, Spec2Im
    from ..training import train as train_model

    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'im2spec' or 'spec2im', got {direction!r}")
    check_pairs(train)
    check_pairs(test)
    sizes = [int(d) for d in dims]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"dims must be positive latent sizes, got {dims!r}")
    window, n_energy = int(train.images.shape[-1]), int(train.spectra.shape[-1])
    cls = Im2Spec if direction == "im2spec" else Spec2Im
    reference = _haadf_reference(test, si)
    rows = []
    for d in sizes:
        model = cls(window=window, n_energy=n_energy, latent_dim=d, energy=train.energy,
                    seed=seed, **(model_kwargs or {}))
        history = train_model(model, train, test, epochs=epochs, seed=seed,
                              **(train_kwargs or {}))
        errors = tile_errors(model, test)
        r, mse = error_haadf_correlation(scan_map(errors, test), reference)
        row = {
            "latent_dim": d,
            "test_nmse": float(np.mean(errors)),
            "test_nmse_median": float(np.median(errors)),
            "train_loss": float(history.train_loss[-1]),
            "test_loss": _last_value(history.test_loss),
            "r": r,
            "mse": mse,
            "train_time_s": float(np.sum(history.epoch_time)),
        }
        if return_models:
            row["model"] = model
        rows.append(row)
    return rows
