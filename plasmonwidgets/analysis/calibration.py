"""Is a predicted spread honest? Interval coverage, a post-hoc std scale, uncertainty maps.

A predictive distribution per value is given as a mean and a standard deviation (e.g. from
:class:`plasmonwidgets.Ensemble`); its central interval at level ``q`` is
``mean +/- z_q * std`` with ``z_q`` the standard normal quantile of ``(1 + q) / 2``. A
calibrated predictor holds a fraction ``q`` of the true values inside that interval for
every ``q``; plotting the observed fraction against ``q`` gives the calibration curve.

A deep ensemble's spread measures how much its members disagree (model uncertainty), not
the noise in the measured spectra, so against measured values it is usually too narrow.
:func:`fit_std_scale` fits one factor on a validation set that makes the interval at a
chosen level hold its nominal fraction there; apply it to new predictions.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from ..metrics import nmse_percent

__all__ = [
    "LEVELS",
    "Calibration",
    "z_value",
    "coverage",
    "calibration_curve",
    "fit_std_scale",
    "uncertainty_map",
    "prediction_error_map",
    "uncertainty_error_correlation",
]

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


class Calibration(NamedTuple):
    """Observed interval coverage at nominal levels.

    Attributes
    ----------
    levels : (L,) float
        Nominal central-interval levels in (0, 1).
    observed : (L,) float
        Fraction of true values inside the predicted interval at each level.

    Examples
    --------
    >>> import numpy as np
    >>> curve = Calibration(levels=np.array([0.5, 0.9]), observed=np.array([0.48, 0.91]))
    >>> round(float(np.max(np.abs(curve.observed - curve.levels))), 3)   # worst miscalibration
    0.02
    """

    levels: np.ndarray
    observed: np.ndarray

    @property
    def max_gap(self) -> float:
        """Largest ``|observed - nominal|`` over the levels (0 is perfect calibration)."""
        return float(np.max(np.abs(self.observed - self.levels)))


def z_value(level: float) -> float:
    """Half-width of the central normal interval holding ``level``, in standard deviations.

    Examples
    --------
    >>> round(z_value(0.9), 3)
    1.645
    """
    level = _check_level(level)
    return NormalDist().inv_cdf(0.5 + level / 2)


def _check_level(level: Any) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating)) or not 0 < level < 1:
        raise ValueError(f"level must be a number strictly between 0 and 1 (e.g. 0.9), got {level!r}")
    return float(level)


def _arrays(mean: Any, std: Any, true: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    m, s, t = (np.asarray(a, dtype=np.float64) for a in (mean, std, true))
    if not (m.shape == s.shape == t.shape):
        raise ValueError(f"mean, std and true must have the same shape, got {m.shape}, {s.shape} "
                         f"and {t.shape}")
    if m.size == 0:
        raise ValueError("mean, std and true are empty; give at least one value")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError("std must be finite and non-negative")
    return m, s, t


def coverage(mean: Any, std: Any, true: Any, *, level: float = 0.9) -> float:
    """Fraction of ``true`` inside ``mean +/- z(level) * std`` (all arrays the same shape).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(size=100_000)
    >>> round(coverage(np.zeros_like(true), np.ones_like(true), true, level=0.9), 2)
    0.9
    """
    m, s, t = _arrays(mean, std, true)
    return float(np.mean(np.abs(t - m) <= z_value(level) * s))


def calibration_curve(mean: Any, std: Any, true: Any, levels: Any = LEVELS) -> Calibration:
    """Observed coverage at each nominal level (default 0.1, 0.2, ..., 0.9).

    Parameters
    ----------
    mean, std, true : arrays of one shape, e.g. (N, E) spectra
        Predicted mean, predicted standard deviation and true values.
    levels : sequence of float in (0, 1)

    Returns
    -------
    Calibration
        ``levels`` and ``observed``; a calibrated predictor has observed == levels.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(0.0, 2.0, size=50_000)
    >>> curve = calibration_curve(np.zeros_like(true), np.full_like(true, 2.0), true)
    >>> curve.max_gap < 0.01
    True
    """
    m, s, t = _arrays(mean, std, true)
    levels = np.array([_check_level(q) for q in levels], dtype=np.float64)
    ratio = np.abs(t - m) / np.where(s > 0, s, np.finfo(np.float64).tiny)
    observed = np.array([np.mean(ratio <= z_value(q)) for q in levels])
    return Calibration(levels, observed)


def fit_std_scale(mean: Any, std: Any, true: Any, *, level: float = 0.9) -> float:
    """One factor for ``std`` that makes the ``level`` interval hold ``level`` of ``true``.

    Fit on a validation set (values the predictor was not trained on) and multiply later
    predicted standard deviations by it. The factor is the ``level`` quantile of the
    standardised absolute error ``|true - mean| / std`` divided by ``z(level)``, so the
    interval at that level is exact on the validation set; other levels follow if the
    errors are roughly Gaussian.

    Returns
    -------
    float > 0

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> true = rng.normal(0.0, 3.0, size=100_000)       # the real spread is 3
    >>> scale = fit_std_scale(np.zeros_like(true), np.ones_like(true), true)
    >>> round(scale, 1)                                  # std 1 was 3x too narrow
    3.0
    """
    m, s, t = _arrays(mean, std, true)
    level = _check_level(level)
    ok = s > 0
    if not np.any(ok):
        raise ValueError("every std is 0: a spread of zero cannot be scaled; train members that "
                         "disagree (different seeds) or add a noise term")
    ratio = np.abs(t[ok] - m[ok]) / s[ok]
    scale = float(np.quantile(ratio, level)) / z_value(level)
    return max(scale, np.finfo(np.float32).tiny)


def uncertainty_map(std: Any, scan_shape: tuple[int, int] | None = None) -> np.ndarray:
    """The predicted spread summed over energy per scan pixel: (h, w).

    ``std`` is (h, w, E), or (h*w, E) with ``scan_shape=(h, w)`` (row-major pixels).

    Examples
    --------
    >>> import numpy as np
    >>> uncertainty_map(np.ones((4, 5, 10))).shape
    (4, 5)
    """
    s = np.asarray(std, dtype=np.float64)
    if scan_shape is not None:
        h, w = (int(v) for v in scan_shape)
        if s.ndim != 2 or s.shape[0] != h * w:
            raise ValueError(f"std must be ({h * w}, E) for scan_shape {(h, w)}, got shape {s.shape}")
        s = s.reshape(h, w, -1)
    if s.ndim != 3:
        raise ValueError(f"std must be (h, w, E), or (h*w, E) with scan_shape, got shape {s.shape}")
    return s.sum(axis=-1)


def prediction_error_map(pred: Any, true: Any) -> np.ndarray:
    """Per-pixel NMSE (%) of predicted spectra (h, w, E) against true ones: (h, w).

    The arrays-in version of :func:`plasmonwidgets.analysis.error_map` (which runs a model).

    Examples
    --------
    >>> import numpy as np
    >>> prediction_error_map(np.ones((2, 3, 4)), np.ones((2, 3, 4))).shape
    (2, 3)
    """
    p, t = np.asarray(pred), np.asarray(true)
    if p.ndim != 3:
        raise ValueError(f"pred and true must be (h, w, E), got shape {p.shape}")
    return nmse_percent(p, t, axis=-1)


def uncertainty_error_correlation(uncertainty: Any, error: Any) -> dict[str, float]:
    """Spearman (rank) and Pearson correlation of an uncertainty map with an error map.

    Non-finite pixels in either map are left out. A useful uncertainty ranks the
    pixels like the error does (Spearman near 1).

    Returns
    -------
    dict with ``"spearman"`` and ``"pearson"`` (NaN when a map is constant).

    Examples
    --------
    >>> import numpy as np
    >>> u = np.arange(12.0).reshape(3, 4)
    >>> uncertainty_error_correlation(u, u ** 2)["spearman"]
    1.0
    """
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    e = np.asarray(error, dtype=np.float64).ravel()
    if u.shape != e.shape:
        raise ValueError(f"uncertainty and error maps differ in size: {np.shape(uncertainty)} vs "
                         f"{np.shape(error)}")
    ok = np.isfinite(u) & np.isfinite(e)
    u, e = u[ok], e[ok]
    if u.size < 3 or np.ptp(u) == 0 or np.ptp(e) == 0:
        return {"spearman": float("nan"), "pearson": float("nan")}
    return {"spearman": float(stats.spearmanr(u, e).statistic),
            "pearson": float(stats.pearsonr(u, e).statistic)}
