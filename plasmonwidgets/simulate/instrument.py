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

    Examples
    --------
    A flat spectrum stays flat under a 40 meV resolution on a 10 meV grid:

    >>> import numpy as np
    >>> broaden(np.ones((2, 50)), step=0.01, fwhm=0.04).round(6).min()
    np.float64(1.0)
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

    Examples
    --------
    3 fine samples per channel, 4 output channels from 12 samples:

    >>> import numpy as np
    >>> channel_average(np.arange(12.0), first=1, n_sub=3, n_channels=4)
    array([ 1.,  4.,  7., 10.])
    """
    half = n_sub // 2
    start = first - half
    block = spectra[..., start : start + n_channels * n_sub]
    return block.reshape(*block.shape[:-1], n_channels, n_sub).mean(axis=-1)


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], correlation: float
) -> np.ndarray:
    """A smooth random map in [0, 1] with correlation length ``correlation`` pixels.

    Examples
    --------
    >>> import numpy as np
    >>> field = smooth_field(np.random.default_rng(0), (24, 24), correlation=6.0)
    >>> field.shape, bool(field.min() >= 0 and field.max() <= 1)
    ((24, 24), True)
    """
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

    Examples
    --------
    Tail of a 12 x 12 scan on 32 energies (eV), in loss probability per eV:

    >>> import numpy as np
    >>> tail, amplitude, exponent = zlp_tail(np.random.default_rng(0), (12, 12),
    ...                                      np.linspace(0.2, 1.2, 32), amplitude=0.01)
    >>> tail.shape
    (12, 12, 32)
    """
    corr = max(shape) / 6.0
    scale = amplitude * (0.6 + 0.8 * smooth_field(rng, shape, corr))
    scale *= 1.0 + 0.03 * rng.standard_normal(shape)
    r = exponent[0] + (exponent[1] - exponent[0]) * smooth_field(rng, shape, corr)
    a = scale * reference**r
    e = np.asarray(energy, dtype=np.float64)
    tail = a[..., None] * e[None, None, :] ** (-r[..., None])
    return tail, a, r


def energy_drift(rng: np.random.Generator, shape: tuple[int, int], *, drift: float = 0.010,
                 jitter: float = 0.003) -> np.ndarray:
    """Per-pixel energy-axis offsets (eV) of a scan: a spectrometer drift plus jitter.

    The drift grows linearly with the acquisition order (row by row) from 0 to ``drift`` eV
    with a random sign, as the high-tension and spectrometer drift over a scan; each pixel
    adds a Gaussian jitter of standard deviation ``jitter`` eV (the zero-loss peak's
    position fluctuating between read-outs).

    Returns
    -------
    (h, w) float64, eV: the loss a channel labelled E records is E − offset
    (:func:`shift_spectra`).

    Examples
    --------
    >>> import numpy as np
    >>> off = energy_drift(np.random.default_rng(0), (16, 16), drift=0.01, jitter=0.0)
    >>> off.shape, round(abs(off[-1, -1]), 3), off[0, 0]
    ((16, 16), 0.01, 0.0)
    """
    h, w = shape
    order = np.arange(h * w, dtype=np.float64).reshape(h, w) / max(h * w - 1, 1)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return sign * drift * order + jitter * rng.standard_normal(shape)


def shift_spectra(spectra: np.ndarray, energy: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Spectra recorded with an energy axis off by ``offset``: out[..., k] = s(E_k − offset).

    Linear interpolation between channels on a uniform axis; beyond the first and last
    channel the edge value is kept.

    Parameters
    ----------
    spectra : (..., E) on the uniform axis ``energy`` (E,) eV.
    offset : (...) eV, one per spectrum.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.linspace(0.0, 1.0, 11)
    >>> shift_spectra(e[None, :], e, np.array([0.1]))[0, 1:4].round(3)   # features move up by 0.1 eV
    array([0. , 0.1, 0.2])
    """
    spectra = np.asarray(spectra, dtype=np.float64)
    step = (energy[-1] - energy[0]) / (len(energy) - 1)
    pos = np.arange(len(energy))[None, :] - (np.asarray(offset, np.float64).reshape(-1, 1) / step)
    pos = np.clip(pos, 0.0, len(energy) - 1.0)
    lo = np.minimum(np.floor(pos).astype(int), len(energy) - 2)
    frac = pos - lo
    flat = spectra.reshape(-1, len(energy))
    rows = np.arange(len(flat))[:, None]
    out = (1.0 - frac) * flat[rows, lo] + frac * flat[rows, lo + 1]
    return out.reshape(spectra.shape)


def poisson(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Shot-noise counts drawn from non-negative expected counts (float64 array).

    Examples
    --------
    >>> import numpy as np
    >>> counts = poisson(np.random.default_rng(0), np.full((12, 12), 100.0))
    >>> counts.dtype, bool(abs(counts.mean() - 100) < 5)
    (dtype('float64'), True)
    """
    return rng.poisson(np.clip(expected, 0.0, None)).astype(np.float64)
