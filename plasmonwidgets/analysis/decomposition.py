"""Non-negative matrix factorisation of a spectrum image (the paper's Fig. 1)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["NMFResult", "nmf"]


class NMFResult(NamedTuple):
    """``maps, spectra = nmf(si)``.

    maps : (n, h, w) float32 non-negative abundance maps (intensity units)
    spectra : (n, E) float32 non-negative endmember spectra, each scaled to a
        maximum of 1, ordered by the energy of their maximum (lowest first)

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> maps, spectra = nmf(si, n_components=2)
    >>> maps.shape, spectra.shape                    # (n, h, w) and (n, E)
    ((2, 12, 12), (2, 32))
    """

    maps: np.ndarray
    spectra: np.ndarray


def nmf(
    si: Any,
    n_components: int = 4,
    max_iter: int = 500,
    seed: int = 0,
    tol: float = 1e-4,
) -> NMFResult:
    """Decompose the SI spectra into non-negative abundance maps and endmembers.

    ``si.spectra`` (h, w, E) ≈ Σ_c maps[c, :, :, None] * spectra[c, None, None, :].

    Negative intensities (noise around zero after zero-loss-peak subtraction)
    are clipped to zero before fitting: NMF requires non-negative data, and
    clipping, unlike shifting the whole SI up, keeps zero meaning "no signal".
    The factorisation uses scikit-learn's NMF (Frobenius loss, NNDSVDa
    initialisation, coordinate descent) seeded by ``seed``, so it is
    reproducible. Each endmember is scaled to a peak of 1 (the maps carry the
    intensity) and components are sorted by the energy of that peak, so the
    same data give the same component order.

    Examples
    --------
    Two endmembers of a 12 x 12 x 32 SI; each spectrum peaks at 1:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> result = nmf(si, n_components=2)
    >>> result.maps.shape, result.spectra.max(axis=1).round(3).tolist()
    ((2, 12, 12), [1.0, 1.0])
    """
    from sklearn.decomposition import NMF

    spectra = getattr(si, "spectra", None)
    energy = getattr(si, "energy", None)
    if spectra is None or energy is None:
        raise TypeError(f"nmf needs a SpectrumImage, got {type(si).__name__}")
    if getattr(si, "is_lazy", False):
        si = si.compute()
        spectra = si.spectra
    h, w, n_e = spectra.shape
    n_components = int(n_components)
    if not 1 <= n_components <= min(h * w, n_e):
        raise ValueError(
            f"n_components must be between 1 and min(pixels, channels) = {min(h * w, n_e)}, "
            f"got {n_components}"
        )
    x = np.clip(np.asarray(spectra, dtype=np.float64).reshape(h * w, n_e), 0.0, None)
    if not x.any():
        raise ValueError("the SI has no positive intensity; NMF needs non-negative signal")
    model = NMF(
        n_components, init="nndsvda", solver="cd", max_iter=int(max_iter), tol=tol,
        random_state=seed,
    )
    abundance = model.fit_transform(x)  # (h*w, n)
    endmembers = model.components_  # (n, E)
    peak = endmembers.max(axis=1)
    peak[peak == 0] = 1.0  # an all-zero component stays zero
    endmembers = endmembers / peak[:, None]
    abundance = abundance * peak[None, :]
    # sort by peak channel; ties broken by the spectral centroid
    centroid = endmembers @ np.arange(n_e) / np.maximum(endmembers.sum(axis=1), 1e-30)
    order = np.lexsort((centroid, np.argmax(endmembers, axis=1)))
    maps = abundance[:, order].T.reshape(n_components, h, w)
    return NMFResult(maps.astype(np.float32), endmembers[order].astype(np.float32))
