"""The quasi-static surface-charge operator F of a particle surface (and between two surfaces).

A surface charge σ on a closed surface S creates the potential φ(r) = ∮ σ(r')/|r − r'| dS'
(Gaussian units, lengths in nm). Its normal field on S, seen from the side of the outward
normal n, jumps by ∓2πσ; the smooth part is

    (Fσ)(r) = ∮ σ(r') (r − r')·n(r) / |r − r'|³ dS'.

With one constant σ per panel and collocation at panel centres,
F_ij = ∫_panel j (r_i − r')·n_i / |r_i − r'|³ dS' (dimensionless: the solid angle
that panel j subtends at r_i, signed by n_i). Far panels use one point, panels whose
centre lies within ``near[1]`` panel sizes of r_i use a 3×3 rule and those within
``near[0]`` sizes an 8×8 rule. The diagonal (the curvature part of the principal value,
zero for a flat panel) is fixed by Gauss's law: a unit charge at r' sees a field whose
flux through S is 2π when r' lies on S, so Σ_i A_i F_ij = 2π A_j.
"""

from __future__ import annotations

import numpy as np

from .mesh import SurfaceMesh

__all__ = ["NEAR", "charge_operator"]

#: (distance in source-panel sizes, Gauss–Legendre order) of the refined quadratures.
NEAR = ((2.0, 8), (4.0, 3))

# Target rows per block: bounds temporary arrays to ~50 MB.
_BLOCK = 256



def _kernel(targets: np.ndarray, normals: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(r_t − r_s)·n_t / |r_t − r_s|³ for targets (..., 3) against points (..., 3)."""
    d = targets - points
    r2 = np.einsum("...k,...k->...", d, d)
    return np.einsum("...k,...k->...", d, normals) / (r2 * np.sqrt(r2))


def charge_operator(
    targets: SurfaceMesh,
    sources: SurfaceMesh | None = None,
    *,
    near: tuple[tuple[float, int], ...] = NEAR,
) -> np.ndarray:
    """Collocation matrix of F from the panel charges of ``sources`` to the panel centres of ``targets``.

    Parameters
    ----------
    targets : SurfaceMesh
        Surface whose panel centres and normals receive the field (N_t panels).
    sources : SurfaceMesh, optional
        Surface that carries the charge (N_s panels). Omitted: the same surface, and the
        diagonal is set by the Gauss-law column sum.
    near : sequence of (distance, order)
        Refinement: a source panel whose centre is within ``distance`` × its size
        (sqrt of its area) of a target point is integrated with an order×order rule;
        the first matching entry wins.

    Returns
    -------
    F : array (N_t, N_s) float64
        Dimensionless; the surface-charge eigenproblem is F σ = 2π Λ σ. Between two
        separate surfaces, columns are corrected to zero net flux (Σ_i A_i F_ij = 0).

    Examples
    --------
    >>> from plasmonwidgets.simulate.quasistatic.mesh import sphere
    >>> m = sphere(1.0, n=2)
    >>> F = charge_operator(m)
    >>> bool(np.allclose(m.areas @ F, 2 * np.pi * m.areas))
    True
    """
    same = sources is None
    src = targets if same else sources
    nt, ns = len(targets), len(src)
    out = np.empty((nt, ns))
    rules = [(dist, src.quadrature(order)) for dist, order in near]
    with np.errstate(divide="ignore", invalid="ignore"):  # self pairs: replaced below
        for start in range(0, nt, _BLOCK):
            rows = np.arange(start, min(start + _BLOCK, nt))
            out[rows] = _rows(targets, src, rows, same, rules)
    if same:
        # Gauss's law fixes the self terms: Σ_i A_i F_ij = 2π A_j.
        a = targets.areas
        np.fill_diagonal(out, 0.0)
        out[np.diag_indices(nt)] = 2.0 * np.pi - (a @ out) / a
    else:
        # Gauss again: charge outside a closed surface sends zero net flux through it. The
        # quadrature's residual flux (largest across narrow gaps) would otherwise couple
        # bonding modes to spurious charge transfer between particles; remove it evenly.
        a = targets.areas
        out -= (a @ out)[None, :] / a.sum()
    return out


def _rows(targets: SurfaceMesh, src: SurfaceMesh, rows: np.ndarray, same: bool, rules) -> np.ndarray:
    """Rows ``rows`` of F: one-point rule, then the refined rules for near panels."""
    t, n = targets.centroids[rows], targets.normals[rows]
    block = _kernel(t[:, None, :], n[:, None, :], src.centroids[None, :, :]) * src.areas[None, :]
    dist = np.linalg.norm(t[:, None, :] - src.centroids[None, :, :], axis=-1) / src.sizes[None, :]
    done = np.zeros(block.shape, dtype=bool)
    if same:
        done[np.arange(len(rows)), rows] = True
    for limit, (pts, wts) in rules:
        i, j = np.nonzero((dist < limit) & ~done)
        done[i, j] = True
        if i.size:
            k = _kernel(t[i, None, :], n[i, None, :], pts[j])
            block[i, j] = np.einsum("pq,pq->p", k, wts[j])
    return block
