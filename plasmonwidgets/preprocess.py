"""Pre-processing of spectrum images: ZLP-tail removal, cropping, normalisation, binning.

Each function takes a SpectrumImage and returns a new one; the input is never
modified, and each step is appended to the result's processing history
(``si.history``). All fits are vectorised over the pixels (no Python loop per pixel);
where the zero-loss peak is and which window its tail is fitted in is decided in
:mod:`plasmonwidgets.zlp`.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from .spectrum_image import Normalization, SpectrumImage
from .zlp import NoZLPError, auto_window, find_zlp

__all__ = [
    "remove_zlp", "fit_zlp_tail", "crop", "normalize", "denormalize", "bin_si", "bin_haadf", "ZLP_MODELS",
]

ZLP_MODELS = ("power", "exp2")

# Variable-projection grids: for each fixed nonlinear parameter the amplitudes
# follow from linear least squares for all pixels at once, and the best grid
# point per pixel is refined by a parabola through its neighbours.
_POWER_R = np.linspace(0.5, 8.0, 301)
_EXP_DECAYS = np.geomspace(0.005, 3.0, 40)  # eV


def _window_indices(energy: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    if np.ndim(window) != 1 or len(window) != 2:
        raise ValueError(f"fit window must be a (start, end) pair in eV, got {window!r}")
    lo, hi = float(window[0]), float(window[1])
    if not lo < hi:
        raise ValueError(f"fit window must satisfy start < end, got {window}")
    idx = np.flatnonzero((energy >= lo) & (energy <= hi))
    if idx.size < 3:
        raise ValueError(
            f"fit window {lo:g}-{hi:g} eV holds {idx.size} channels of the "
            f"{energy[0]:g}-{energy[-1]:g} eV axis; it needs at least 3"
        )
    return idx


def _refine_on_grid(grid: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """Per-pixel minimiser of residuals (K, P) over a 1-D grid (K,), parabola-refined."""
    best = residuals.argmin(axis=0)
    k = np.clip(best, 1, grid.size - 2)
    cols = np.arange(residuals.shape[1])
    y0, y1, y2 = residuals[k - 1, cols], residuals[k, cols], residuals[k + 1, cols]
    denom = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        shift = np.where(denom > 0, 0.5 * (y0 - y2) / denom, 0.0)
    step = grid[k + 1] - grid[k]
    refined = grid[k] + np.clip(shift, -1, 1) * step
    at_edge = (best == 0) | (best == grid.size - 1)
    return np.where(at_edge, grid[best], refined)


def _model_and_jacobian(model: str, e: np.ndarray, theta: np.ndarray):
    """Tail values (P, n) and Jacobian (P, n, k) for parameters theta (P, k)."""
    if model == "power":
        a, r = theta[:, :1], theta[:, 1:2]
        pw_ = e[None, :] ** -r
        f = a * pw_
        return f, np.stack([pw_, -f * np.log(e)[None, :]], axis=-1)
    a1, t1, a2, t2 = (theta[:, i : i + 1] for i in range(4))
    x1, x2 = np.exp(-e[None, :] / t1), np.exp(-e[None, :] / t2)
    f = a1 * x1 + a2 * x2
    jac = [x1, a1 * x1 * e[None, :] / t1**2, x2, a2 * x2 * e[None, :] / t2**2]
    return f, np.stack(jac, axis=-1)


def _poisson_weights(y: np.ndarray) -> np.ndarray:
    """sqrt of inverse-variance weights (n_win, P) for counts y, so the steep ZLP end does not dominate."""
    ay = np.abs(y)
    floor = 1e-3 * ay.max(axis=0, keepdims=True) + 1e-12
    return 1.0 / np.sqrt(np.maximum(ay, floor))


def _levenberg_marquardt(
    model: str, e: np.ndarray, y: np.ndarray, theta: np.ndarray, iterations: int = 20
) -> np.ndarray:
    """Polish grid estimates theta (P, k) by weighted damped Gauss-Newton, all pixels at once."""
    sw = _poisson_weights(y).T  # (P, n)
    yt = y.T * sw
    lam = np.full(theta.shape[0], 1e-3)

    def evaluate(th):
        f, jac = _model_and_jacobian(model, e, th)
        return f * sw, jac * sw[..., None]

    f, jac = evaluate(theta)
    cost = ((f - yt) ** 2).sum(axis=1)
    eye = np.eye(theta.shape[1])
    for _ in range(iterations):
        jtj = np.einsum("pnk,pnl->pkl", jac, jac)
        jtr = np.einsum("pnk,pn->pk", jac, yt - f)
        # the floor on the damping scales with the data, so the fit does not depend on units
        floor = 1e-12 * np.einsum("pkk->p", jtj)[:, None, None] / len(eye) + 1e-300
        damped = jtj + lam[:, None, None] * (jtj * eye + floor * eye)
        try:
            step = np.linalg.solve(damped, jtr[..., None])[..., 0]
        except np.linalg.LinAlgError:
            break
        trial = _bounded(model, theta + step)
        # a wild trial step may overflow; its cost is then not finite and it is rejected
        with np.errstate(over="ignore", invalid="ignore"):
            f_new, jac_new = evaluate(trial)
            cost_new = ((f_new - yt) ** 2).sum(axis=1)
        ok = np.isfinite(cost_new) & (cost_new < cost)
        theta = np.where(ok[:, None], trial, theta)
        f = np.where(ok[:, None], f_new, f)
        jac = np.where(ok[:, None, None], jac_new, jac)
        cost = np.where(ok, cost_new, cost)
        lam = np.where(ok, lam * 0.3, lam * 10)
    return theta


#: physically sensible ranges of the nonlinear tail parameters: a power-law exponent of a
#: decaying tail, decay lengths (eV) of the two exponentials; an unbounded fit to an odd
#: pixel otherwise extrapolates to astronomically large values outside its window
POWER_R_RANGE = (0.0, 12.0)
EXP_DECAY_RANGE = (1e-4, 30.0)


def _bounded(model: str, theta: np.ndarray) -> np.ndarray:
    if model == "power":
        theta[:, 1] = np.clip(theta[:, 1], *POWER_R_RANGE)
    else:
        theta[:, [1, 3]] = np.clip(theta[:, [1, 3]], *EXP_DECAY_RANGE)
    return theta


def _fit_power(e: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Fit y ≈ A·e^-r for every column of y (n_win, P)."""
    basis = e[None, :] ** -_POWER_R[:, None]  # (K, n_win)
    norm = (basis**2).sum(axis=1)  # (K,)
    proj = basis @ y  # (K, P)
    residuals = (y**2).sum(axis=0)[None, :] - proj**2 / norm[:, None]
    r = _refine_on_grid(_POWER_R, residuals)
    b = e[:, None] ** -r[None, :]
    amplitude = (b * y).sum(axis=0) / (b**2).sum(axis=0)
    theta = _levenberg_marquardt("power", e, y, np.stack([amplitude, r], axis=1))
    return {"A": theta[:, 0], "r": theta[:, 1]}


def _fit_exp2(e: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """Fit y ≈ A1·exp(-e/t1) + A2·exp(-e/t2) (t1 < t2) for every column of y (n_win, P)."""
    t1, t2 = np.meshgrid(_EXP_DECAYS, _EXP_DECAYS, indexing="ij")
    keep = t1 < t2
    t1, t2 = t1[keep], t2[keep]
    best_res = np.full(y.shape[1], np.inf)
    best = np.zeros((4, y.shape[1]))
    sw = _poisson_weights(y)  # (n_win, P)
    w2, yw = sw**2, y * sw**2
    for a, b in zip(t1, t2):
        b1, b2 = np.exp(-e / a)[:, None], np.exp(-e / b)[:, None]
        # per-pixel weighted 2x2 normal equations, solved in closed form
        g11, g12, g22 = (w2 * b1 * b1).sum(0), (w2 * b1 * b2).sum(0), (w2 * b2 * b2).sum(0)
        r1, r2 = (yw * b1).sum(0), (yw * b2).sum(0)
        det = g11 * g22 - g12**2
        # decays far shorter than the window's energies underflow to det = 0: such grid
        # points give non-finite residuals and are skipped below, without warnings
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            c1 = (g22 * r1 - g12 * r2) / det
            c2 = (g11 * r2 - g12 * r1) / det
            res = (((c1 * b1 + c2 * b2 - y) * sw) ** 2).sum(axis=0)
        better = np.isfinite(res) & (res < best_res)
        best_res[better] = res[better]
        best[0, better], best[1, better] = a, b
        best[2, better], best[3, better] = c1[better], c2[better]
    theta = _levenberg_marquardt("exp2", e, y, best[[2, 0, 3, 1]].T)
    return {"A1": theta[:, 0], "t1": theta[:, 1], "A2": theta[:, 2], "t2": theta[:, 3]}


def _evaluate(model: str, params: dict[str, np.ndarray], e: np.ndarray) -> np.ndarray:
    """Tail model on energies e (E,) for P pixels -> (P, E)."""
    if model == "power":
        return params["A"][:, None] * e[None, :] ** -params["r"][:, None]
    return params["A1"][:, None] * np.exp(-e[None, :] / params["t1"][:, None]) + params["A2"][
        :, None
    ] * np.exp(-e[None, :] / params["t2"][:, None])


def _zlp_fit(si: SpectrumImage, window: tuple[float, float] | None, model: str):
    """Shared by :func:`fit_zlp_tail` and :func:`remove_zlp`: (tail, params, record)."""
    if model not in ZLP_MODELS:
        raise ValueError(f"unknown ZLP model {model!r}; choose one of {ZLP_MODELS}")
    si = si.compute()
    e = si.energy
    if e.size < 3:
        raise ValueError(f"a ZLP-tail fit needs at least 3 energy channels, this SI has {e.size}")
    summed = si.spectra.sum(axis=(0, 1), dtype=np.float64)
    if window is None:
        info = find_zlp(e, summed)
        window = auto_window(e, info)
        rule = "auto"
    else:
        rule = "given"
        info = None
        if e[0] <= 0 < e[-1]:  # the ZLP may be on the axis: measure the tail from its centre
            with contextlib.suppress(NoZLPError):
                info = find_zlp(e, summed)
    origin = info.centre if info is not None and info.kind == "zlp" else 0.0
    idx = _window_indices(e, window)
    if e[idx[0]] <= origin:
        where = "the zero-loss peak's centre" if info is not None and info.kind == "zlp" else "0 eV"
        raise ValueError(
            f"the fit window starts at {e[idx[0]]:g} eV, at or below {where} ({origin:.3g} eV); "
            "ZLP-tail models need energies > 0 above the peak: choose a window on the tail "
            "above it, or window=None to find one"
        )
    # on an axis that holds the peak, the channels below the window are the peak itself:
    # a tail model is not valid there, so they are left as measured
    lower = int(idx[0]) if e[0] <= origin else 0
    h, w = si.scan_shape
    x = e - origin
    y = si.spectra.reshape(-1, si.n_energy)[:, idx].T.astype(np.float64)  # (n_win, P)
    fit = _fit_power if model == "power" else _fit_exp2
    params = fit(x[idx], y)
    tail = np.zeros((h * w, e.size))
    with np.errstate(over="ignore", invalid="ignore"):
        tail[:, lower:] = _evaluate(model, params, x[lower:])
    _check_float32_range(tail.reshape(h, w, -1), f"the fitted ZLP tail ({model} model, fit "
                         f"window {e[idx[0]]:g}-{e[idx[-1]]:g} eV)",
                         "try a fit window nearer the start of the axis or the other model")
    tail = tail.astype(np.float32).reshape(h, w, -1)
    record = {
        "step": "remove_zlp", "model": model, "window": [float(window[0]), float(window[1])],
        "window_rule": rule, "channels": [float(e[idx[0]]), float(e[idx[-1]])],
        "subtracted_from": float(e[lower]), "zlp": None if info is None else info.as_dict(),
    }
    return tail, {k: v.reshape(h, w) for k, v in params.items()}, record


def fit_zlp_tail(
    si: SpectrumImage, window: tuple[float, float] | None = None, model: str = "power"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit the zero-loss-peak tail of every pixel.

    Parameters
    ----------
    window : (start, end) eV, optional
        Fit window on the tail, below the plasmon features, in absolute eV. None chooses
        it from the summed spectrum (:mod:`plasmonwidgets.zlp`): ``(ZLP centre + 3 FWHM,
        centre + 6 FWHM)`` when the axis holds the peak, ``(start, 3 * start)`` when the
        axis starts on its tail; data without a ZLP (core loss) raise a ValueError that
        points to a background fit (exspy's ``remove_background``).
    model : "power" (A·E^-r) or "exp2" (A1·e^{-E/t1} + A2·e^{-E/t2}, the paper's form)
        E is measured from the ZLP centre when the axis holds the peak, else from 0 eV.

    Returns
    -------
    tail : (h, w, E) float32, the fitted tail (0 below the window on an axis holding the peak)
    params : dict of (h, w) parameter maps

    Examples
    --------
    >>> si = pw.datasets.nanocube_array(zlp_tail=True)   # doctest: +SKIP
    >>> tail, params = fit_zlp_tail(si, (0.06, 0.15))   # doctest: +SKIP
    """
    tail, params, _ = _zlp_fit(si, window, model)
    return tail, params


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_float32_range(values: np.ndarray, what: str, fix: str) -> None:
    """Raise a ValueError naming the first (row, col) pixel where float64 ``values``
    (h, w, E) are not finite or do not fit float32."""
    bad = ~(np.abs(values) <= _FLOAT32_MAX)  # also catches NaN
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad.any(axis=-1))[0])
        n = int(bad.any(axis=-1).sum())
        raise ValueError(f"{what} exceeds float32's range (±{_FLOAT32_MAX:.3g}) in {n} "
                         f"pixel(s), first at ({r}, {c}); {fix}")


def remove_zlp(
    si: SpectrumImage, window: tuple[float, float] | None = None, model: str = "power"
) -> SpectrumImage:
    """Subtract the fitted ZLP tail (see :func:`fit_zlp_tail`) from every spectrum.

    With ``window=None`` the zero-loss peak is located on the summed spectrum and the
    window follows from its width; the window actually used, the ZLP centre and FWHM
    are recorded in ``si.history`` and, with the per-pixel fit parameter maps, in
    ``metadata["zlp_fit"]``. Core-loss data (no ZLP) are refused with a pointer to
    exspy's ``remove_background``.

    Noise makes some subtracted values negative (mostly inside the fit window);
    they are kept, not clipped, so the result stays unbiased. Crop the fit
    window away afterwards (``.crop(...)``).

    Examples
    --------
    >>> si = pw.load("low_loss.emd").remove_zlp().crop(0.2, 1.2)   # doctest: +SKIP
    """
    tail, params, record = _zlp_fit(si, window, model)
    si = si.compute()
    metadata = _with_step(si.metadata, record)
    metadata["zlp_fit"] = {"model": model, "window": record["window"], **params}
    result = si.spectra.astype(np.float64) - tail
    _check_float32_range(result, "the spectrum minus its ZLP tail",
                         "scale the spectra down before removing the tail")
    return si.replace(spectra=result.astype(np.float32), metadata=metadata)


def _with_step(metadata: dict, step: dict) -> dict:
    """A copy of ``metadata`` with ``step`` appended to its processing history."""
    out = dict(metadata)
    out["history"] = [*metadata.get("history", []), step]
    return out


def crop(si: SpectrumImage, e_min: float, e_max: float) -> SpectrumImage:
    """Keep the channels with e_min <= energy <= e_max (eV).

    Examples
    --------
    Keep the channels between 0.8 and 1.2 eV of a 32-channel SI (0.5-2.0 eV):

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> small = crop(si, 0.8, 1.2)
    >>> bool(small.energy.min() >= 0.8 and small.energy.max() <= 1.2), small.spectra.shape[:2]
    (True, (12, 12))
    """
    e_min, e_max = float(e_min), float(e_max)
    if not np.isfinite([e_min, e_max]).all() or not e_min < e_max:
        raise ValueError(f"crop needs finite e_min < e_max, got {e_min}, {e_max}")
    keep = np.flatnonzero((si.energy >= e_min) & (si.energy <= e_max))
    if keep.size < 2:
        raise ValueError(
            f"crop {e_min:g}-{e_max:g} eV keeps {keep.size} channel(s) of the "
            f"{si.energy[0]:g}-{si.energy[-1]:g} eV axis; at least 2 are needed"
        )
    step = {"step": "crop", "e_min": e_min, "e_max": e_max}
    return si.replace(spectra=si.spectra[..., keep[0] : keep[-1] + 1], energy=si.energy[keep],
                      metadata=_with_step(si.metadata, step))


def normalize(si: SpectrumImage, mode: str = "global", by: str = "max") -> SpectrumImage:
    """Scale intensities so they are O(1); invertible with :func:`denormalize`.

    mode : "global" (one factor for the whole SI) or "spectrum" (one per pixel)
    by : "max" (largest value) or "sum" (area under each spectrum / mean area)
    All-zero spectra keep a factor of 1 (with a warning) rather than dividing by zero.

    Examples
    --------
    One factor for the whole SI, the largest intensity: the spectra peak at 1.

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> float(normalize(si, "global", by="max").spectra.max())
    1.0
    """
    if mode not in ("global", "spectrum"):
        raise ValueError(f"mode must be 'global' or 'spectrum', got {mode!r}")
    if by not in ("max", "sum"):
        raise ValueError(f"by must be 'max' or 'sum', got {by!r}")
    if si.normalization is not None:
        raise ValueError("this SpectrumImage is already normalised; call denormalize() first")
    si = si.compute()
    x = si.spectra
    reduce = np.max if by == "max" else np.sum
    if mode == "global":
        factor = float(reduce(np.abs(x), axis=-1).mean() if by == "sum" else np.abs(x).max())
        if factor == 0:
            warnings.warn("all spectra are zero; normalisation factor set to 1", stacklevel=3)
            factor = 1.0
    else:
        factor = reduce(np.abs(x), axis=-1, keepdims=True)
        zero = factor == 0
        if zero.any():
            warnings.warn(
                f"{int(zero.sum())} all-zero spectra keep a normalisation factor of 1",
                stacklevel=3,
            )
            factor = np.where(zero, 1.0, factor)
    norm = Normalization(f"{mode}/{by}", 0.0, factor)
    step = {"step": "normalize", "mode": mode, "by": by}
    return si.replace(spectra=norm.apply(x), normalization=norm,
                      metadata=_with_step(si.metadata, step))


def denormalize(si: SpectrumImage) -> SpectrumImage:
    """Undo :func:`normalize`; a no-op for an SI that was never normalised.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> back = denormalize(normalize(si, "spectrum"))
    >>> bool(np.allclose(back.spectra, si.spectra, rtol=1e-5))
    True
    """
    if si.normalization is None:
        return si
    return si.replace(spectra=si.normalization.invert(si.spectra), normalization=None,
                      metadata=_with_step(si.metadata, {"step": "denormalize"}))


def bin_si(si: SpectrumImage, spatial: int = 1, energy: int = 1) -> SpectrumImage:
    """Sum-bin the scan by ``spatial`` (both axes) and the energy axis by ``energy``.

    Trailing rows, columns or channels that do not fill a whole bin are dropped.
    The HAADF keeps its resolution: the oversampling factor becomes
    ``scale * spatial`` and the pixel size grows by ``spatial``.

    Examples
    --------
    Sum 2 x 2 scan pixels and pairs of channels: (12, 12, 32) -> (6, 6, 16); the HAADF keeps
    its 12 x 12 pixels, so the oversampling becomes 2.

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> binned = bin_si(si, spatial=2, energy=2)
    >>> binned.spectra.shape, binned.scale
    ((6, 6, 16), 2)
    """
    for name, v in (("spatial", spatial), ("energy", energy)):
        number = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        if not number or not np.isfinite(v) or int(v) != v or v < 1:
            raise ValueError(f"{name} bin factor must be a positive integer, got {v!r}")
    spatial, energy = int(spatial), int(energy)
    if si.normalization is not None:
        raise ValueError("bin before normalising (sums of normalised spectra are not counts)")
    si = si.compute()
    h, w = si.scan_shape
    hb, wb, eb = h // spatial, w // spatial, si.n_energy // energy
    if hb == 0 or wb == 0:
        raise ValueError(f"spatial bin {spatial} is larger than the scan {h}x{w}")
    if eb < 2:
        raise ValueError(f"energy bin {energy} leaves fewer than 2 of {si.n_energy} channels")
    x = si.spectra[: hb * spatial, : wb * spatial, : eb * energy]
    x = x.reshape(hb, spatial, wb, spatial, eb, energy).sum(axis=(1, 3, 5), dtype=np.float64)
    _check_float32_range(x, "a binned sum", "scale the spectra down before binning")
    x = x.astype(np.float32)
    e = si.energy[: eb * energy].reshape(eb, energy).mean(axis=1)
    s = si.scale * spatial
    haadf = si.haadf[: hb * s, : wb * s]
    step = {"step": "bin", "spatial": spatial, "energy": energy}
    return si.replace(spectra=x, energy=e, haadf=haadf, scale=s, pixel_size=si.pixel_size * spatial,
                      metadata=_with_step(si.metadata, step))


def bin_haadf(si: SpectrumImage, factor: int) -> SpectrumImage:
    """Average the HAADF over ``factor`` x ``factor`` blocks (an oversampled HAADF made coarser).

    ``factor`` must divide the oversampling ``si.scale``; the result has scale
    ``si.scale // factor`` and the same SI pixel size, so a HAADF pixel becomes
    ``factor`` times larger. Averaging (not summing) keeps HAADF intensities on the
    scale a model was trained on. The spectra are untouched.

    Examples
    --------
    >>> si.scale, si.haadf.shape          # doctest: +SKIP
    (32, (192, 1568))
    >>> si.bin_haadf(8).haadf.shape      # doctest: +SKIP
    (24, 196)
    """
    number = isinstance(factor, (int, np.integer)) and not isinstance(factor, bool)
    if not number or factor < 1:
        raise ValueError(f"HAADF bin factor must be a positive integer, got {factor!r}")
    factor = int(factor)
    if si.scale % factor:
        divisors = [d for d in range(1, si.scale + 1) if si.scale % d == 0]
        raise ValueError(
            f"HAADF bin factor {factor} does not divide the HAADF oversampling {si.scale} "
            f"(HAADF pixels per SI pixel); choose one of {divisors}"
        )
    H, W = si.haadf.shape
    image = si.haadf.reshape(H // factor, factor, W // factor, factor).mean(axis=(1, 3), dtype=np.float64)
    step = {"step": "bin_haadf", "factor": factor}
    return si.replace(haadf=image.astype(np.float32), scale=si.scale // factor,
                      metadata=_with_step(si.metadata, step))
