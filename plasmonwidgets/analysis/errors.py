"""Per-pixel prediction error maps and their correlation with the HAADF image.

The paper (Roccapriore et al., Small 2021, Fig. 3 and S1) shows where in the
image plane a model predicts well: a normalised MSE per SI pixel, and how that
error map correlates with the structure (the HAADF).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics import nmse_percent
from ._inputs import (
    batched,
    check_compatible,
    check_model,
    check_pairs,
    inputs_of,
    target_shape,
    targets_of,
)

__all__ = ["error_haadf_correlation", "error_map", "scan_map", "tile_errors"]


def tile_errors(model: Any, pairs: Any, batch_size: int = 1024) -> np.ndarray:
    """(N,) normalised MSE in % of each tile's prediction.

    NMSE = 100 * Σ(pred − true)² / Σ true², summed over the energy channels
    (im2spec) or over the w×w tile pixels (spec2im), in the physical units
    ``model.predict`` returns.
    """
    check_model(model)
    check_pairs(pairs)
    check_compatible(model, pairs)
    pred = batched(model.predict, inputs_of(model, pairs), target_shape(model), batch_size)
    true = np.asarray(targets_of(model, pairs), dtype=np.float32)
    n = len(true)
    return np.asarray(nmse_percent(pred.reshape(n, -1), true.reshape(n, -1), axis=-1))


def error_map(model: Any, pairs: Any, batch_size: int = 1024) -> np.ndarray:
    """(h, w) per-pixel normalised MSE in % on the SI scan grid.

    Each tile's error (see :func:`tile_errors`) is placed at its SI position
    ``pairs.positions``; pixels without a tile (edges, the other half of a
    split) are NaN. ``batch_size`` bounds memory during prediction.
    """
    return scan_map(tile_errors(model, pairs, batch_size), pairs)


def scan_map(values: np.ndarray, pairs: Any) -> np.ndarray:
    """(h, w) float64 map of per-tile ``values`` (N,) at ``pairs.positions``, NaN elsewhere.

    Also useful for cluster labels or a latent coordinate shown on the scan.
    """
    values = np.asarray(values)
    if values.shape != (len(pairs.positions),):
        raise ValueError(
            f"values must have one entry per tile ({len(pairs.positions)},), got {values.shape}"
        )
    h, w = (int(v) for v in pairs.scan_shape)
    out = np.full((h, w), np.nan, dtype=np.float64)
    rows, cols = np.asarray(pairs.positions, dtype=np.int64).T
    out[rows, cols] = values
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def error_haadf_correlation(err: np.ndarray, si: Any) -> tuple[float, float]:
    """Pearson r and MSE between an error map and the HAADF on the SI grid.

    Parameters
    ----------
    err : array (h, w)
        An error map from :func:`error_map`; NaN pixels are ignored.
    si : SpectrumImage or array (h, w)
        The scan whose HAADF (averaged onto the SI grid with
        ``si.haadf_on_si_grid()``) is compared, or that (h, w) image itself.

    Returns
    -------
    (r, mse) : floats
        ``r`` is the Pearson correlation coefficient over the pixels where both
        maps are finite. ``mse`` is the mean squared difference after z-scoring
        both maps (zero mean, unit standard deviation) so that the error (%) and
        the HAADF (counts) are comparable; with population standard deviations
        this equals ``2 * (1 - r)``: 0 for identical patterns, 2 for unrelated
        ones, 4 for inverted ones.
    """
    haadf = si.haadf_on_si_grid() if hasattr(si, "haadf_on_si_grid") else si
    err = np.asarray(err, dtype=np.float64)
    haadf = np.asarray(haadf, dtype=np.float64)
    if err.ndim != 2:
        raise ValueError(f"err must be an (h, w) error map, got shape {err.shape}")
    if err.shape != haadf.shape:
        raise ValueError(
            f"error map shape {err.shape} differs from the HAADF on the SI grid "
            f"{haadf.shape}; compute the error map from tiles of this SpectrumImage"
        )
    valid = np.isfinite(err) & np.isfinite(haadf)
    if valid.sum() < 3:
        raise ValueError(
            f"only {int(valid.sum())} pixels have a finite error; need at least 3 to correlate"
        )
    e, h = err[valid], haadf[valid]
    for name, values in (("error map", e), ("HAADF", h)):
        if values.std() == 0:
            raise ValueError(f"the {name} is constant over the valid pixels; r is undefined")
    ez, hz = _zscore(e), _zscore(h)
    r = float(np.mean(ez * hz))
    mse = float(np.mean((ez - hz) ** 2))
    return r, mse
