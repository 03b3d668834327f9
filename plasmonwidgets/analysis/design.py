"""Inverse design: which latent point, and which observed structures, give a target spectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import nmse_percent
from ..roles import Role
from ._inputs import check_model, target_shape
from ._inputs import role as role_of_model
from .backprojection import LatentIndex

__all__ = ["InverseDesign", "inverse_design", "separated"]


@dataclass(frozen=True)
class InverseDesign:
    """Result of :func:`inverse_design`.

    Attributes
    ----------
    z : (d,) the latent point found
    decoded : (E,) spectrum (im2spec) or (w, w) tile (spec2im) the decoder makes of ``z``
    target : (E,) the target spectrum
    nmse : NMSE (%) between the decoded spectrum and the target (im2spec), or
        between the mean of the k measured spectra and the target (spec2im)
    in_range : whether ``z`` lies inside the observed latent range
    indices : (k,) TilePairs indices of the observed tiles nearest ``z``, nearest first
    positions : (k, 2) their SI (row, col)
    distances : (k,) their latent distances to ``z``
    images : (k, w, w) their HAADF tiles
    spectra : (k, E) their measured spectra
    spectra_nmse : (k,) NMSE (%) of each measured spectrum against the target
    role : the model's :class:`~plasmonwidgets.roles.Role`; ``input_kind``,
        ``target_kind`` and the ``direction`` label are read from it
    min_separation : the smallest SI-pixel distance (rows or columns, whichever is
        larger) allowed between two returned structures; fewer than k are returned when
        the observed tiles cannot provide k that far apart

    Examples
    --------
    The target is a (32,) spectrum in counts, here a measured one:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> found = inverse_design(model, pairs.spectra[0], pairs, k=3, n_starts=2, max_iter=5)
    >>> found.z.shape, found.decoded.shape, found.positions.shape
    ((2,), (32,), (3, 2))
    """

    z: np.ndarray
    decoded: np.ndarray
    target: np.ndarray
    nmse: float
    in_range: bool
    indices: np.ndarray
    positions: np.ndarray
    distances: np.ndarray
    images: np.ndarray
    spectra: np.ndarray
    spectra_nmse: np.ndarray
    role: Role
    min_separation: int = 0

    @property
    def direction(self) -> str:
        """The model's direction label, "im2spec" or "spec2im"."""
        return self.role.direction

    @property
    def input_kind(self) -> str:
        """What the model reads: "image" or "spectrum"."""
        return self.role.input_kind

    @property
    def target_kind(self) -> str:
        """What the model's decoder makes: "spectrum" (``decoded`` is (E,)) or "image" ((w, w))."""
        return self.role.target_kind


def _nmse(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """NMSE (%) of each row of ``pred`` (M, E) against ``target`` (E,)."""
    return np.asarray(nmse_percent(pred, np.broadcast_to(target, pred.shape), axis=-1))


def separated(positions: Any, k: int, min_separation: int) -> np.ndarray:
    """Indices of up to ``k`` of ``positions`` (M, 2), taken in order, each at least
    ``min_separation`` SI pixels from every one taken before (Chebyshev distance: the
    larger of the row and column offsets, so two tiles of that width do not overlap).

    Examples
    --------
    >>> separated([[0, 0], [0, 1], [0, 5], [9, 9]], k=3, min_separation=4).tolist()
    [0, 2, 3]
    """
    pos = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    keep: list[int] = []
    for i, p in enumerate(pos):
        if len(keep) == k:
            break
        if not keep or np.min(np.max(np.abs(pos[keep] - p), axis=1)) >= min_separation:
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _nearest_separated(index: LatentIndex, z: np.ndarray, k: int, min_separation: int) -> Any:
    """The k observed tiles encoded nearest ``z`` that lie ``min_separation`` SI pixels apart.

    Asks the index for ever more neighbours (latent order) until k far-enough ones are found
    or every tile was seen. Returns (indices, distances, positions, images, spectra).
    """
    m = min(len(index), max(4 * k, k + 16))
    while True:
        near = index.query(z, m)
        pick = separated(near.positions, k, min_separation)
        if len(pick) == k or m == len(index):
            break
        m = min(len(index), 4 * m)
    return (near.indices[pick], near.distances[pick], near.positions[pick], near.images[pick],
            near.spectra[pick])


def _optimise_im2spec(index: LatentIndex, target: np.ndarray, n_starts: int, seed: int,
                      max_iter: int) -> np.ndarray:
    """Minimise NMSE(decode(z), target) over the observed latent box from several starts.

    L-BFGS-B with the box as bounds; the gradient is a central finite
    difference evaluated in one batched decode call (2d + 1 latent points), so
    only the model's public numpy ``decode`` is needed.
    """
    from scipy.optimize import minimize

    model = index.model
    lower, upper = index.lower, index.upper
    d = index.latent_dim
    span = np.maximum(upper - lower, 1e-6)
    step = 1e-3 * span
    n_e = target.shape[0]

    def value_and_grad(z: np.ndarray) -> tuple[float, np.ndarray]:
        offsets = np.concatenate([np.zeros((1, d)), np.diag(step), -np.diag(step)])
        pts = (z[None, :] + offsets).astype(np.float32)
        errs = _nmse(np.asarray(model.decode(pts)).reshape(len(pts), n_e), target)
        grad = (errs[1 : d + 1] - errs[d + 1 :]) / (2 * step)
        return float(errs[0]), grad

    # starts: the observed encodings whose decoded spectra match best (so the result
    # is never worse than the best observed tile), then random points in the box
    rng = np.random.default_rng(seed)
    n_good = min((n_starts + 1) // 2, len(index))
    observed = _nmse(index.decoded().astype(np.float64), target)
    good = np.argsort(observed)[:n_good]
    starts = np.concatenate(
        [index.z[good], rng.uniform(lower, upper, size=(n_starts - n_good, d))]
    )
    best_z, best_f = index.z[good[0]], float(observed[good[0]])
    for z0 in starts:
        res = minimize(value_and_grad, z0, jac=True, method="L-BFGS-B",
                       bounds=list(zip(lower, upper)), options={"maxiter": max_iter})
        if res.fun < best_f:
            best_z, best_f = np.clip(res.x, lower, upper), float(res.fun)
    return best_z


def inverse_design(
    model: Any,
    target_spectrum: Any,
    pairs: Any,
    k: int = 5,
    n_starts: int = 8,
    *,
    index: LatentIndex | None = None,
    seed: int = 0,
    max_iter: int = 100,
    min_separation: int | None = None,
) -> InverseDesign:
    """Find the latent point and the observed structures whose spectrum best matches a target.

    im2spec (decoder: latent -> spectrum): minimise the NMSE between the decoded
    spectrum and the target over latent points inside the observed latent range
    (the box spanned by the encodings of ``pairs``; the decoder is not trusted
    outside it), from ``n_starts`` starts: half at the observed encodings whose
    decoded spectra match best (so the optimum is at least as good as every
    observed encoding), half at random points in the box. The k observed
    tiles encoded nearest the optimum are the structures predicted to give the
    target.

    spec2im (encoder: spectrum -> latent): the target is encoded directly, and
    its nearest observed encodings give the structures; ``decoded`` is the
    tile the model generates for the target. ``in_range`` tells whether the
    target's encoding falls inside the observed range (if not, no measured
    structure resembles it and the neighbours are only the least bad).

    Neighbouring probe positions see nearly the same tile and encode to nearly the
    same point, so the k nearest encodings are often k neighbouring pixels of one
    spot. The structures returned are therefore the nearest ones lying at least
    ``min_separation`` SI pixels apart (default: the tile window, so no two tiles
    overlap); ``min_separation=0`` returns the plain k nearest.

    Parameters
    ----------
    model : Im2Spec or Spec2Im
    target_spectrum : (E,) physical intensities on the model's energy axis
    pairs : TilePairs observed data the structures are taken from
    k : number of observed tiles returned
    n_starts : optimisation starts (im2spec)
    index : a :class:`LatentIndex` of (model, pairs), to skip encoding again
    seed : seed for the random starts
    max_iter : L-BFGS-B iterations per start
    min_separation : smallest distance in SI pixels (larger of the row and column
        offsets) between two returned structures; default ``pairs.window``. The window is
        in HAADF pixels, so with several HAADF pixels per SI pixel the default keeps them
        more than a tile apart; pass ``ceil(window / scale)`` for exactly one tile.

    Examples
    --------
    >>> res = inverse_design(model, target, pairs, k=5)          # doctest: +SKIP
    >>> res.positions, res.spectra_nmse, res.nmse                # doctest: +SKIP
    """
    check_model(model)
    model_role = role_of_model(model)
    # a decoder that makes spectra can be searched for the target; an encoder of spectra
    # maps the target to its latent point directly
    decodes_spectra = model_role.target_kind == "spectrum"
    if index is None:
        index = LatentIndex(model, pairs)
    elif index.model is not model or index.pairs is not pairs:
        raise ValueError("index was built from a different model or pairs; build a new LatentIndex")
    n_e = int(model.n_energy)
    target = np.asarray(target_spectrum, dtype=np.float64)
    if target.shape != (n_e,):
        raise ValueError(
            f"target_spectrum must be one spectrum of shape ({n_e},) on the model's energy axis, "
            f"got {target.shape}"
        )
    if not np.all(np.isfinite(target)):
        raise ValueError("target_spectrum contains NaN/Inf")
    if not np.any(target):
        raise ValueError("target_spectrum is all zeros; the normalised error is undefined")
    n_starts = int(n_starts)
    if n_starts < 1:
        raise ValueError(f"n_starts must be >= 1, got {n_starts}")
    k = int(k)
    if not 1 <= k <= len(index):
        raise ValueError(f"k must be between 1 and the number of tiles ({len(index)}), got {k}")
    sep = int(pairs.window if min_separation is None else min_separation)
    if sep < 0:
        raise ValueError(f"min_separation must be >= 0 SI pixels, got {min_separation}")

    if decodes_spectra:
        z = _optimise_im2spec(index, target, n_starts, seed, int(max_iter))
    else:
        z = np.asarray(model.encode(target[None, :].astype(np.float32)), np.float64).reshape(-1)
    decoded = np.asarray(model.decode(z[None, :].astype(np.float32))).reshape(target_shape(model))
    indices, distances, positions, images, spectra = _nearest_separated(index, z, k, sep)
    spectra_nmse = _nmse(spectra.astype(np.float64), target)
    if decodes_spectra:
        nmse = float(_nmse(decoded[None, :].astype(np.float64), target)[0])
    else:
        mean = spectra.astype(np.float64).mean(axis=0)
        nmse = float(_nmse(mean[None, :], target)[0])
    in_range = bool(np.all((z >= index.lower) & (z <= index.upper)))
    return InverseDesign(
        z=z,
        decoded=decoded,
        target=target,
        nmse=nmse,
        in_range=in_range,
        indices=indices,
        positions=positions,
        distances=distances,
        images=images,
        spectra=spectra,
        spectra_nmse=spectra_nmse,
        role=model_role,
        min_separation=sep,
    )
