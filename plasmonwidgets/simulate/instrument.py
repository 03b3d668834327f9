"""Spectrometer effects: energy resolution, residual zero-loss tail, shot noise."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["broaden", "channel_average", "poisson", "smooth_field", "zlp_tail"]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def broaden(spectra: np.ndarray, step: float, fwhm: float) -> np.ndarray:
    """Gaussian energy resolution of ``fwhm`` eV on a uniform grid of ``step`` eV (last axis).

    Edges use 'nearest' extension: callers pad the grid by a few σ beyond the
    channels they keep so the kept channels are unaffected.
    """
    if fwhm <= 0:
        return np.asarray(spectra, dtype=np.float64)
    return ndimage.gaussian_filter1d(
        np.asarray(spectra, dtype=np.float64), fwhm * FWHM_TO_SIGMA / step, axis=-1,
        mode="nearest", truncate=5.0,
    )


def channel_average(spectra: np.ndarray, first: int, n_sub: int, n_channels: int) -> np.ndarray:
    """Average ``n_sub`` (odd) fine samples centred on every output channel.

    Fine sample ``first + i*n_sub`` is the centre of output channel i; the result is the
    mean over the channel width, shape (..., n_channels).
    """
    half = n_sub // 2
    start = first - half
    block = spectra[..., start : start + n_channels * n_sub]
    return block.reshape(*block.shape[:-1], n_channels, n_sub).mean(axis=-1)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], correlation: float
) -> np.ndarray:
    """A smooth random map in [0, 1] with correlation length ``correlation`` pixels."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), correlation, mode="wrap")
    lo, hi = noise.min(), noise.max()
    return (noise - lo) / (hi - lo) if hi > lo else np.full(shape, 0.5)


def zlp_tail(
    rng: np.random.Generator,
    shape: tuple[int, int],
    energy: np.ndarray,
    amplitude: float,
    exponent: tuple[float, float] = (2.6, 3.4),
    reference: float = 0.2,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Residual zero-loss tail A·E^(−r) with per-pixel A and r (loss probability, eV⁻¹).

    A varies smoothly over the scan (×0.6–1.4 of ``amplitude`` at ``reference`` eV, as
    the ZLP intensity and tail drift during a scan) with a 3 % pixel-to-pixel jitter;
    r varies smoothly within ``exponent``.

    Returns
    -------
    tail : (h, w, E) float64, A·E^(−r)
    a : (h, w) A (eV^(r−1), i.e. tail = a·E^(−r))
    r : (h, w) exponents
    """
    corr = max(shape) / 6.0
    scale = amplitude * (0.6 + 0.8 * smooth_field(rng, shape, corr))
    scale *= 1.0 + 0.03 * rng.standard_normal(shape)
    r = exponent[0] + (exponent[1] - exponent[0]) * smooth_field(rng, shape, corr)
    a = scale * reference**r
    e = np.asarray(energy, dtype=np.float64)
    tail = a[..., None] * e[None, None, :] ** (-r[..., None])
    return tail, a, r


def poisson(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Shot-noise counts drawn from non-negative expected counts (float64 array)."""
    return rng.poisson(np.clip(expected, 0.0, None)).astype(np.float64)
