"""Tabulated beam–mode couplings of the unit cube, for loss maps of many cubes.

For a cube of side a, rotated by θ about the beam axis and centred at c, the beam at b
enters the modal loss (see :mod:`.loss`) only through the products
h_k = g^R_k g^L_k of its couplings to mode k. Modes are scale-free, so in the cube's own
frame (offset u = R(−θ)(b − c)/a, in sides) h_k depends on u and on qa alone:

    h_k(b; a, θ) = a · h_k^unit(u, qa),      Γ = α_f/(π β² ħc ε_m) · Im Σ_k h_k / (2π(Λ(E) − Λ_k)).

:func:`coupling_table` evaluates h^unit once on a grid of offsets (default ±2.5 sides, step
0.05) at a few Chebyshev nodes in ln(qa), for the modes that carry the loss, and caches it
on disk next to the modes. :meth:`CouplingTable.loss` then gives the loss of any cube at
any beam by bilinear interpolation in u and Chebyshev interpolation in ln(qa) (errors
measured in docs/physics.md).

Beams that cross the cube are allowed here: the beam's bare line potential is used on the
surface as for an aloof beam (the distance to the beam is floored at a quarter of a panel
so the panels it pierces stay finite). This is an approximation for penetrating beams: it
keeps the surface-mode excitation continuous across the particle's outline but ignores the
screening of the beam's own field inside the particle; the bulk loss is added separately.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev

from ._blas import single_threaded_blas
from .loss import beam_sources
from .mesh import SurfaceMesh
from .modes import MODES_VERSION, Modes, cache_dir, cube_modes

__all__ = ["TABLE_VERSION", "CouplingTable", "coupling_table", "lnq_weights"]

#: Bumped whenever the table's content changes.
TABLE_VERSION = 1

_MEMORY: dict[str, CouplingTable] = {}


def lnq_weights(x: np.ndarray, lo: float, hi: float, n_nodes: int) -> np.ndarray:
    """Chebyshev interpolation weights in ln x on [lo, hi]: value(x) = weights @ node values.

    Returns (len(x), n_nodes); node j sits at exp(mid + half·cos(π(j + ½)/n)).

    Examples
    --------
    Weights for two values of qa (dimensionless) on [0.5, 4] with 5 nodes; each row sums to 1,
    as a constant is interpolated exactly:

    >>> w = lnq_weights(np.array([1.0, 2.0]), 0.5, 4.0, 5)
    >>> w.shape
    (2, 5)
    >>> bool(np.allclose(w.sum(axis=1), 1.0))
    True
    """
    t_nodes = np.cos(np.pi * (np.arange(n_nodes) + 0.5) / n_nodes)
    log_x = np.log(np.asarray(x, dtype=np.float64))
    t = (2.0 * log_x - (np.log(hi) + np.log(lo))) / (np.log(hi) - np.log(lo))
    fit = np.linalg.inv(chebyshev.chebvander(t_nodes, n_nodes - 1))
    return chebyshev.chebvander(t, n_nodes - 1) @ fit


def _nodes(lo: float, hi: float, n_nodes: int) -> np.ndarray:
    t_nodes = np.cos(np.pi * (np.arange(n_nodes) + 0.5) / n_nodes)
    return np.exp(0.5 * (np.log(hi) + np.log(lo)) + 0.5 * (np.log(hi) - np.log(lo)) * t_nodes)


def _sources(mesh: SurfaceMesh, beams: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`.loss.beam_sources` with ρ floored at a quarter panel size, so beams that
    pierce the surface stay finite; (P, N) each."""
    return beam_sources(mesh, beams, q, floor=0.25 * mesh.sizes.min())


@dataclass(frozen=True)
class CouplingTable:
    """h^unit_k(u, qa) of the unit cube on a grid of beam offsets and ln(qa) nodes.

    Attributes
    ----------
    axis : array (G,)
        Offsets (in sides) along x' and y' of the cube frame; the grid is axis × axis.
    qa_range : (float, float)
        ln(qa) interpolation interval.
    eigenvalues : array (M,) complex
        Λ_k of the tabulated modes.
    h : array (n_nodes, G, G, M) complex64
        g^R_k g^L_k of the unit cube at each node and offset (x', y'), summed over the modes of
        each group of (nearly) equal Λ.

    Examples
    --------
    A coarse table (offsets ±1.5 sides in steps of 0.5, 3 ln(qa) nodes), then the loss of a
    15 nm cube for one beam 12 nm from its centre (offsets (y, x) in nm) at 0.5 and 0.6 eV in a
    host of ε_m = 2, shape (P, E):

    >>> from plasmonwidgets.simulate.beam import Beam
    >>> from plasmonwidgets.simulate.dielectric import Drude
    >>> from plasmonwidgets.simulate.quasistatic.loss import response_lambda
    >>> table = coupling_table(n_flat=2, n_round=1, extent=1.5, step=0.5, n_nodes=3, cache=False)
    >>> table.extent
    1.5
    >>> e = np.array([0.5, 0.6])
    >>> lam = response_lambda(Drude().eps(e), 2.0)
    >>> table.loss(np.array([[0.0, 12.0]]), side=15.0, rotation=0.0, q=Beam().q(e), lam=lam).shape
    (1, 2)
    """

    axis: np.ndarray
    qa_range: tuple[float, float]
    eigenvalues: np.ndarray
    h: np.ndarray

    @property
    def extent(self) -> float:
        """Half-width of the tabulated square of offsets, in sides."""
        return float(self.axis[-1])

    def interpolate(self, u: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of h at offsets u (P, 2) (x', y' in sides), shape (n_nodes, P, M).

        Offsets outside the table are clipped to its border (callers taper them to zero).
        """
        step = self.axis[1] - self.axis[0]
        g = (np.clip(u, self.axis[0], self.axis[-1]) - self.axis[0]) / step
        i0 = np.clip(np.floor(g).astype(np.int64), 0, len(self.axis) - 2)
        f = g - i0
        fx, fy = f[:, 0][None, :, None], f[:, 1][None, :, None]
        ix, iy = i0[:, 0], i0[:, 1]
        h = self.h
        return ((1 - fx) * (1 - fy) * h[:, ix, iy] + fx * (1 - fy) * h[:, ix + 1, iy]
                + (1 - fx) * fy * h[:, ix, iy + 1] + fx * fy * h[:, ix + 1, iy + 1])

    def loss(self, offsets: np.ndarray, *, side: float, rotation: float, q: np.ndarray,
             lam: np.ndarray) -> np.ndarray:
        """Im Σ_k h_k / (2π(Λ(E) − Λ_k)) for one cube (no prefactor α_f/(πβ²ħc ε_m)), shape (P, E).

        Parameters
        ----------
        offsets : array (P, 2)
            Beam minus cube centre, (y, x) in nm (the scene's axis order).
        side : float
            Edge length a (nm).
        rotation : float
            In-plane rotation θ of the cube (rad), as in the scene geometry.
        q : array (E,)
            ω/v (nm⁻¹) at each energy.
        lam : array (E,) complex
            Λ(E) = (ε + ε_m)/(ε − ε_m) of this cube's material.
        """
        c, s = np.cos(rotation), np.sin(rotation)
        y, x = offsets[:, 0], offsets[:, 1]
        u = np.column_stack([x * c + y * s, -x * s + y * c]) / side
        h = self.interpolate(u)  # (n, P, M)
        w = lnq_weights(q * side, *self.qa_range, len(h))  # (E, n)
        resp = 1.0 / (2.0 * np.pi * (lam[:, None] - self.eigenvalues[None, :]))  # (E, M)
        n, p, m = h.shape
        # Σ_j Σ_k h_jk w_j(E) resp_k(E): one product over (node, mode) pairs
        kernel = (w[:, :, None] * resp[:, None, :]).reshape(len(q), n * m)
        flat = h.transpose(1, 0, 2).reshape(p, n * m)
        return side * np.imag(flat @ kernel.T)


def _select_modes(modes: Modes, h_all: np.ndarray, tol: float) -> np.ndarray:
    """Mode groups (degenerate within 1e-5) whose |h| summed over the grid is ≥ tol of the largest."""
    lam = modes.eigenvalues
    weight = np.abs(h_all).sum(axis=0)  # over the fundamental domain of offsets
    order = np.argsort(lam.real)
    groups, current = [], [order[0]]
    for a, b in itertools.pairwise(order):
        if abs(lam[b] - lam[a]) < 1e-5:
            current.append(b)
        else:
            groups.append(current)
            current = [b]
    groups.append(current)
    gw = np.array([weight[g].sum() for g in groups])
    keep = [k for g, w in zip(groups, gw) if w >= tol * gw.max() for k in g]
    return np.sort(np.array(keep))


def coupling_table(*, rounding: float = 0.1, n_flat: int = 4, n_round: int = 2, extent: float = 2.5,
                   step: float = 0.05, qa_range: tuple[float, float] = (0.01, 0.5), n_nodes: int = 5,
                   tol: float = 1e-3, merge: float = 1e-3, cache: bool = True) -> CouplingTable:
    """The unit cube's coupling table (computed once, then read from memory or disk).

    Parameters
    ----------
    rounding, n_flat, n_round : cube shape and mesh (see :func:`.modes.cube_modes`).
    extent, step : float
        Offsets tabulated on [−extent, extent]² in steps of ``step`` (in sides).
    qa_range : (float, float)
        Range of q·a covered (q = ω/v, a the side); 0.01–0.5 spans 0.2–1.3 eV for 10–20 nm
        cubes at 30–300 keV.
    n_nodes : int
        Chebyshev nodes in ln(qa).
    tol : float
        Mode groups whose summed |h| over the grid is below ``tol`` × the largest are dropped.
    merge : float
        Modes whose Λ differ by less than this share one entry (their h summed).
    cache : bool
        Reuse (and store) the table under :func:`.modes.cache_dir`.

    Examples
    --------
    >>> table = coupling_table(n_flat=2, n_round=1, extent=1.5, step=0.5, n_nodes=3, cache=False)
    >>> table.h.shape[:3]  # (nodes, offsets x', offsets y'); the last axis: mode groups
    (3, 7, 7)
    """
    params = {"rounding": float(rounding), "n_flat": int(n_flat), "n_round": int(n_round),
              "extent": float(extent), "step": float(step), "qa_range": [float(v) for v in qa_range],
              "n_nodes": int(n_nodes), "tol": float(tol), "merge": float(merge),
              "modes": MODES_VERSION, "table": TABLE_VERSION}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:20]
    if cache and key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir() / f"coupling-table-{key}.npz"
    table = _read(path) if cache else None
    if table is None:
        modes = cube_modes(rounding=rounding, n_flat=n_flat, n_round=n_round, cache=cache)
        table = _compute(modes, extent, step, tuple(qa_range), n_nodes, tol, merge)
        if cache:
            _write(path, table)
    if cache:
        _MEMORY[key] = table
    return table


def _compute(modes: Modes, extent: float, step: float, qa_range, n_nodes: int, tol: float,
             merge: float) -> CouplingTable:
    n_axis = int(round(2 * extent / step)) + 1
    axis = np.linspace(-extent, extent, n_axis)
    # The summed h of a group of degenerate modes is invariant under the cube's in-plane
    # symmetries (C4v: x ↔ −x, y ↔ −y, x ↔ y), so only offsets with 0 ≤ y' ≤ x' are computed
    # (1/8 of the grid) and the rest is filled by symmetry.
    centre = n_axis // 2
    fi, fj = np.nonzero(np.tri(n_axis - centre, dtype=bool))  # j <= i, both from the centre
    beams = np.column_stack([axis[centre + fi], axis[centre + fj]])
    mesh = modes.mesh
    drop = np.argmin(np.abs(modes.eigenvalues - 1.0))  # net-charge mode: never driven
    idx = np.delete(np.arange(len(modes)), drop)
    right = modes.right[:, idx] * mesh.areas[:, None]
    left_t = modes.left[idx].T
    nodes = _nodes(*qa_range, n_nodes)
    h = np.empty((n_nodes, len(beams), len(idx)), dtype=np.complex128)
    with single_threaded_blas():
        for j, qa in enumerate(nodes):
            for start in range(0, len(beams), 512):
                b = beams[start:start + 512]
                phi, dphi = _sources(mesh, b, qa)
                h[j, start:start + len(b)] = (np.conj(phi) @ right) * (dphi @ left_t)
    keep = _select_modes(Modes(mesh, modes.eigenvalues[idx], modes.right[:, idx], modes.left[idx]),
                         h[n_nodes // 2], tol)
    # Modes with (nearly) the same Λ share one response factor: store their summed h. This is
    # exact inside degenerate groups and keeps the table and the per-cube work ~3x smaller.
    lam = modes.eigenvalues[idx][keep]
    order = np.argsort(lam.real)
    groups, current = [], [order[0]]
    for a, b in itertools.pairwise(order):
        if abs(lam[b] - lam[a]) < merge:
            current.append(b)
        else:
            groups.append(current)
            current = [b]
    groups.append(current)
    h_kept = h[..., keep]
    h_g = np.stack([h_kept[..., g].sum(axis=-1) for g in groups], axis=-1)
    lam_g = np.array([lam[g].mean() for g in groups])
    fundamental = np.zeros((n_axis - centre, n_axis - centre), dtype=np.int64)
    fundamental[fi, fj] = np.arange(len(fi))
    ai = np.abs(np.arange(n_axis) - centre)
    big, small = np.maximum.outer(ai, ai), np.minimum.outer(ai, ai)
    h_g = h_g[:, fundamental[big, small]].astype(np.complex64)  # (n_nodes, n_axis, n_axis, groups)
    return CouplingTable(axis, (float(qa_range[0]), float(qa_range[1])), lam_g, h_g)


def _read(path) -> CouplingTable | None:
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return CouplingTable(np.array(z["axis"]), tuple(float(v) for v in z["qa_range"]),
                                 np.array(z["eigenvalues"]), np.array(z["h"]))
    except (OSError, ValueError, KeyError) as exc:
        warnings.warn(f"ignoring damaged coupling table {path.name} ({exc}); recomputing", stacklevel=3)
        return None


def _write(path, table: CouplingTable) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, axis=table.axis, qa_range=np.array(table.qa_range),
                     eigenvalues=table.eigenvalues, h=table.h)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if tmp is not None:
            os.unlink(tmp)
        warnings.warn(f"could not cache the coupling table in {path.parent} ({exc})", stacklevel=3)


