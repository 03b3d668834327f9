"""Per-pixel prediction error maps and their correlation with the HAADF image.

The paper (Roccapriore et al., Small 2021, Fig. 3 and S1) shows where in the
image plane a model predicts well: a normalised MSE per SI pixel, and how that
error map correlates with the structure (the HAADF).

Where the measured signal is almost zero (vacuum beside a particle, the edge of a
void) the NMSE divides by almost nothing and reaches hundreds of percent
without the prediction being bad; ``min_signal`` leaves such pixels out (NaN)
and :func:`low_signal_map` says which they were, so a display can grey them.
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

__all__ = [
    "error_haadf_correlation",
    "error_haadf_pairs",
    "error_map",
    "low_signal_map",
    "scan_map",
    "tile_errors",
]


def _check_fraction(min_signal: float) -> float:
    frac = float(min_signal)
    if not (np.isfinite(frac) and 0.0 <= frac < 1.0):
        raise ValueError(
            f"min_signal is a fraction of the median signal energy in [0, 1), got {min_signal}; "
            "e.g. 0.05 leaves out pixels with less than 5 % of the median"
        )
    return frac


def _low_signal(true: np.ndarray, min_signal: float) -> np.ndarray:
    """(N,) bool: Σ true² of each sample below ``min_signal`` × the median over samples."""
    energy = np.sum(np.asarray(true, dtype=np.float64).reshape(len(true), -1) ** 2, axis=-1)
    if energy.size == 0 or min_signal == 0.0:
        return np.zeros(energy.shape, dtype=bool)
    return energy < min_signal * float(np.median(energy))


def tile_errors(
    model: Any, pairs: Any, batch_size: int = 1024, *, min_signal: float = 0.0
) -> np.ndarray:
    """(N,) normalised MSE in % of each tile's prediction.

    NMSE = 100 * Σ(pred − true)² / Σ true², summed over the energy channels
    (im2spec) or over the w×w tile pixels (spec2im), in the physical units
    ``model.predict`` returns. With ``min_signal`` > 0, samples whose measured
    energy Σ true² is below ``min_signal`` × the median over ``pairs`` are NaN
    (their NMSE divides by almost nothing; see :func:`low_signal_map`).

    Examples
    --------
    One NMSE (%) per tile; an untrained model's are large:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> tile_errors(model, pairs).shape
    (144,)
    """
    check_model(model)
    check_pairs(pairs)
    check_compatible(model, pairs)
    frac = _check_fraction(min_signal)
    pred = batched(model.predict, inputs_of(model, pairs), target_shape(model), batch_size)
    true = np.asarray(targets_of(model, pairs), dtype=np.float32)
    n = len(true)
    out = np.asarray(nmse_percent(pred.reshape(n, -1), true.reshape(n, -1), axis=-1), dtype=np.float64)
    out[_low_signal(true, frac)] = np.nan
    return out


def error_map(
    model: Any, pairs: Any, batch_size: int = 1024, *, min_signal: float = 0.0
) -> np.ndarray:
    """(h, w) per-pixel normalised MSE in % on the SI scan grid.

    Each tile's error (see :func:`tile_errors`) is placed at its SI position
    ``pairs.positions``; pixels without a tile (edges, the other half of a
    split) are NaN, and so are near-zero-signal pixels when ``min_signal`` > 0
    (:func:`low_signal_map` tells them apart). ``batch_size`` bounds memory
    during prediction.

    Examples
    --------
    >>> err = error_map(model, test, min_signal=0.05)  # doctest: +SKIP
    >>> grey = low_signal_map(model, test, min_signal=0.05)  # doctest: +SKIP
    """
    return scan_map(tile_errors(model, pairs, batch_size, min_signal=min_signal), pairs)


def low_signal_map(model: Any, pairs: Any, *, min_signal: float = 0.05) -> np.ndarray:
    """(h, w) bool map of the pixels :func:`error_map` leaves out for ``min_signal``.

    True where the measured target of ``model`` (the spectrum for im2spec, the
    HAADF tile for spec2im) has energy Σ true² below ``min_signal`` × the median
    over ``pairs``; False elsewhere, including pixels without a tile. No
    prediction is run.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> low_signal_map(model, pairs, min_signal=0.05).sum()   # every spectrum is well above 5 %
    np.int64(0)
    """
    check_model(model)
    check_pairs(pairs)
    frac = _check_fraction(min_signal)
    low = _low_signal(np.asarray(targets_of(model, pairs)), frac)
    return scan_map(low.astype(np.float64), pairs) == 1.0


def scan_map(values: np.ndarray, pairs: Any) -> np.ndarray:
    """(h, w) float64 map of per-tile ``values`` (N,) at ``pairs.positions``, NaN elsewhere.

    Also useful for cluster labels or a latent coordinate shown on the scan.

    Examples
    --------
    Per-tile values (N,) placed on the (h, w) scan grid:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> grid = scan_map(np.arange(len(pairs), dtype=float), pairs)
    >>> grid.shape, grid[0, 1]
    ((12, 12), np.float64(1.0))
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

    Examples
    --------
    An error map that follows the HAADF exactly gives r = 1:

    >>> import numpy as np
    >>> haadf = np.random.default_rng(0).uniform(50, 100, (12, 12))   # counts
    >>> r, mse = error_haadf_correlation(2.0 * haadf + 1.0, haadf)
    >>> round(r, 6)
    1.0
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


def error_haadf_pairs(err: np.ndarray, si: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel (HAADF intensity, error) for a scatter plot of error against structure.

    Parameters
    ----------
    err : array (h, w)
        An error map (NaN pixels are left out).
    si : SpectrumImage or array (h, w)
        Its HAADF averaged onto the SI grid, as in :func:`error_haadf_correlation`.

    Returns
    -------
    (haadf, error) : two (n,) float64 arrays over the pixels where both are finite,
        row-major order.

    Examples
    --------
    NaN pixels of the (h, w) error map are left out:

    >>> import numpy as np
    >>> haadf = np.random.default_rng(0).uniform(50, 100, (12, 12))
    >>> err = np.ones((12, 12))
    >>> err[0, :] = np.nan
    >>> intensity, error = error_haadf_pairs(err, haadf)
    >>> intensity.shape, error.shape
    ((132,), (132,))
    """
    haadf = si.haadf_on_si_grid() if hasattr(si, "haadf_on_si_grid") else si
    err = np.asarray(err, dtype=np.float64)
    haadf = np.asarray(haadf, dtype=np.float64)
    if err.shape != haadf.shape or err.ndim != 2:
        raise ValueError(
            f"error map shape {err.shape} differs from the HAADF on the SI grid {haadf.shape}; "
            "compute the error map from tiles of this SpectrumImage"
        )
    valid = np.isfinite(err) & np.isfinite(haadf)
    return haadf[valid], err[valid]
