"""Pre-processing of spectrum images: ZLP-tail removal, cropping, normalisation, binning.

Each function takes a SpectrumImage and returns a new one; the input is never
modified. All fits are vectorised over the pixels (no Python loop per pixel).
"""

from __future__ import annotations

import warnings

import numpy as np

from .spectrum_image import Normalization, SpectrumImage

__all__ = ["remove_zlp", "fit_zlp_tail", "crop", "normalize", "denormalize", "bin_si", "ZLP_MODELS"]

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


def fit_zlp_tail(
    si: SpectrumImage, window: tuple[float, float] | None = None, model: str = "power"
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit the zero-loss-peak tail of every pixel.

    Parameters
    ----------
    window : (start, end) eV
        Fit window, below the plasmon features. Default: the first 10 % of the
        energy axis (at least 3 channels).
    model : "power" (A·E^-r) or "exp2" (A1·e^{-E/t1} + A2·e^{-E/t2}, the paper's form)

    Returns
    -------
    tail : (h, w, E) float32, the fitted tail on the full energy axis
    params : dict of (h, w) parameter maps
    """
    if model not in ZLP_MODELS:
        raise ValueError(f"unknown ZLP model {model!r}; choose one of {ZLP_MODELS}")
    si = si.compute()
    e = si.energy
    if e.size < 3:
        raise ValueError(f"a ZLP-tail fit needs at least 3 energy channels, this SI has {e.size}")
    if e[0] <= 0:
        raise ValueError(
            f"the energy axis starts at {e[0]:g} eV; ZLP-tail models need energies > 0 "
            "— crop the zero-loss peak itself away first, e.g. si.crop(0.05, ...)"
        )
    if window is None:
        n = max(3, e.size // 10)
        window = (e[0], e[n - 1])
    idx = _window_indices(e, window)
    h, w = si.scan_shape
    y = si.spectra.reshape(-1, si.n_energy)[:, idx].T.astype(np.float64)  # (n_win, P)
    fit = _fit_power if model == "power" else _fit_exp2
    params = fit(e[idx], y)
    with np.errstate(over="ignore", invalid="ignore"):
        tail = _evaluate(model, params, e)
    _check_float32_range(tail.reshape(h, w, -1), f"the fitted ZLP tail ({model} model, fit "
                         f"window {e[idx[0]]:g}-{e[idx[-1]]:g} eV)",
                         "try a fit window nearer the start of the axis or the other model")
    tail = tail.astype(np.float32).reshape(h, w, -1)
    return tail, {k: v.reshape(h, w) for k, v in params.items()}


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

    Noise makes some subtracted values negative (mostly inside the fit window);
    they are kept, not clipped, so the result stays unbiased. Crop the fit
    window away afterwards (``.crop(...)``). The fit parameters are stored in
    ``metadata["zlp_fit"]``.
    """
    tail, params = fit_zlp_tail(si, window, model)
    si = si.compute()
    metadata = dict(si.metadata)
    metadata["zlp_fit"] = {"model": model, "window": list(window) if window else None, **params}
    result = si.spectra.astype(np.float64) - tail
    _check_float32_range(result, "the spectrum minus its ZLP tail",
                         "scale the spectra down before removing the tail")
    return si.replace(spectra=result.astype(np.float32), metadata=metadata)


def crop(si: SpectrumImage, e_min: float, e_max: float) -> SpectrumImage:
    """Keep the channels with e_min <= energy <= e_max (eV)."""
    e_min, e_max = float(e_min), float(e_max)
    if not np.isfinite([e_min, e_max]).all() or not e_min < e_max:
        raise ValueError(f"crop needs finite e_min < e_max, got {e_min}, {e_max}")
    keep = np.flatnonzero((si.energy >= e_min) & (si.energy <= e_max))
    if keep.size < 2:
        raise ValueError(
            f"crop {e_min:g}-{e_max:g} eV keeps {keep.size} channel(s) of the "
            f"{si.energy[0]:g}-{si.energy[-1]:g} eV axis; at least 2 are needed"
        )
    return si.replace(spectra=si.spectra[..., keep[0] : keep[-1] + 1], energy=si.energy[keep])


def normalize(si: SpectrumImage, mode: str = "global", by: str = "max") -> SpectrumImage:
    """Scale intensities so they are O(1); invertible with :func:`denormalize`.

    mode : "global" (one factor for the whole SI) or "spectrum" (one per pixel)
    by : "max" (largest value) or "sum" (area under each spectrum / mean area)
    All-zero spectra keep a factor of 1 (with a warning) rather than dividing by zero.
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
    return si.replace(spectra=norm.apply(x), normalization=norm)


def denormalize(si: SpectrumImage) -> SpectrumImage:
    """Undo :func:`normalize`; a no-op for an SI that was never normalised."""
    if si.normalization is None:
        return si
    return si.replace(spectra=si.normalization.invert(si.spectra), normalization=None)


def bin_si(si: SpectrumImage, spatial: int = 1, energy: int = 1) -> SpectrumImage:
    """Sum-bin the scan by ``spatial`` (both axes) and the energy axis by ``energy``.

    Trailing rows, columns or channels that do not fill a whole bin are dropped.
    The HAADF keeps its resolution: the oversampling factor becomes
    ``scale * spatial`` and the pixel size grows by ``spatial``.
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
    return si.replace(spectra=x, energy=e, haadf=haadf, scale=s, pixel_size=si.pixel_size * spatial)
