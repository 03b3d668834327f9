"""Near-field correction of the point-dipole coupling between neighbouring cubes.

A cube's field just outside a face is not that of a point dipole at its centre: the
charges of its dominant (corner/edge) mode sit on the surface, half a side away, and the
point dipole over-estimates the field along the pair axis and under-estimates it across.
Compared with the full boundary-element solution of face-to-face dimers of the scene's cubes
(:class:`.coupling.Cluster`, all 383 modes per cube; docs/physics.md, "How strong is the
film's coupling"), the point-dipole model with the same polarisability needs the pair tensor

    G = κ_L(s) · 2 n̂n̂ / r³ − κ_T(s) · (I − n̂n̂) / r³,    s = r / ā,

(the plain dipole field has κ_L = κ_T = 1) to put the dimer's bright longitudinal (L) and
transverse (T) loss peaks where the boundary elements put them. ā is the pair's mean side.
The factors below were fitted, one gap at a time, on the loss peak of face-to-face and
corner-to-corner dimers of 15.3 nm cubes (rounding 0.1, 384 panels, ε_m = 2, Drude ε∞ 4,
ωp 1.79 eV, γ 0.093 eV). Beyond the last calibrated distance the deviation decays like
s⁻² (the leading multipole correction of the pair interaction); below the first it is held.
"""

from __future__ import annotations

import numpy as np

__all__ = ["KAPPA_DIAGONAL", "KAPPA_FACE", "pair_factors", "corrected_coupling", "lattice_sum_shift"]

#: Face-to-face pairs (pair axis along a cube axis): rows (s = centre distance / side, κ_L, κ_T),
#: BEM-calibrated on dimers of 15.3 nm cubes at gaps 1, 1.5, 2, 3, 5, 7, 10, 14, 20 nm.
KAPPA_FACE = np.array([
    (16.3 / 15.3, 0.683, 1.262),  # κ_T from the 864-panel mesh (384 panels: 0.974, unconverged)
    (16.8 / 15.3, 0.669, 1.067),
    (17.3 / 15.3, 0.656, 1.165),
    (18.3 / 15.3, 0.642, 1.204),
    (20.3 / 15.3, 0.643, 1.130),
    (22.3 / 15.3, 0.656, 1.151),
    (25.3 / 15.3, 0.682, 1.165),
    (29.3 / 15.3, 0.724, 1.163),
    (35.3 / 15.3, 0.775, 1.123),
])

#: Corner-to-corner pairs (pair axis along a face diagonal), gaps 1, 2, 3, 5, 10, 20 nm between
#: the faces' planes (centre distance √2 (a + gap)).
KAPPA_DIAGONAL = np.array([
    (1.507, 1.637, 0.546),
    (1.599, 1.442, 0.577),
    (1.692, 1.330, 0.609),
    (1.876, 1.194, 0.656),
    (2.339, 1.071, 0.754),
    (3.263, 0.983, 0.867),
])

def _factor(table: np.ndarray, col: int, s: np.ndarray) -> np.ndarray:
    """κ − 1 from one table: interpolated, held below its first row, ∝ s⁻² beyond its last."""
    dev = np.interp(s, table[:, 0], table[:, col] - 1.0)
    tail = (table[-1, col] - 1.0) * (table[-1, 0] / np.maximum(s, table[-1, 0])) ** 2
    return np.where(s > table[-1, 0], tail, dev)


def pair_factors(s: np.ndarray, theta: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """κ_L and κ_T at centre distances ``s`` (in mean sides) and pair angles ``theta`` (rad).

    ``theta`` is the angle between the pair axis and a cube axis: 0 face to face, π/4 corner to
    corner; in between the two calibrations are blended with weight sin²(2θ).

    Examples
    --------
    Nearly touching cubes (s = 1.1) couple less longitudinally; far apart both factors are 1:

    >>> kl, kt = pair_factors(np.array([1.1, 100.0]))
    >>> bool(kl[0] < 0.7 and abs(kl[1] - 1) < 1e-3 and abs(kt[1] - 1) < 1e-3)
    True
    """
    s = np.asarray(s, dtype=float)
    w = np.sin(2.0 * np.asarray(theta, dtype=float)) ** 2
    return tuple(1.0 + (1.0 - w) * _factor(KAPPA_FACE, col, s) + w * _factor(KAPPA_DIAGONAL, col, s)
                 for col in (1, 2))


def corrected_coupling(centers: np.ndarray, sides: np.ndarray, rotations: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Dipole coupling of coplanar cubes with the near-field factors (host ε_m not applied).

    Parameters
    ----------
    centers : array (N, 2)
        In-plane centres (nm).
    sides : array (N,)
        Cube sides (nm); NaN for a site that is not one cube (a coarse-grained block), whose
        pairs keep the plain dipole field.
    rotations : array (N,)
        In-plane rotation of each cube (rad; the angle of its first axis in the (y, x)
        centre convention, as ``Layout.rotations``); a pair uses the mean of its two.

    Returns
    -------
    g_plane : array (2N, 2N), g_z : array (N, N)
        As :func:`plasmonwidgets.simulate.eels.coupling_matrices`, with κ_L on the
        longitudinal and κ_T on the transverse (in-plane and out-of-plane) parts.

    Examples
    --------
    Two 15 nm cubes 17 nm apart (a 2 nm gap), both unrotated:

    >>> g_plane, g_z = corrected_coupling(np.array([[0.0, 0.0], [0.0, 17.0]]), np.array([15.0, 15.0]),
    ...                                   np.zeros(2))
    >>> g_plane.shape, g_z.shape
    ((4, 4), (2, 2))
    """
    c = np.asarray(centers, dtype=float)
    a = np.asarray(sides, dtype=float)
    if len(a) != len(c):
        raise ValueError(f"got {len(a)} sides for {len(c)} centres")
    d = c[:, None, :] - c[None, :, :]
    r = np.hypot(d[..., 0], d[..., 1])
    np.fill_diagonal(r, np.inf)
    if np.any(r < 1e-9):
        raise ValueError("two particles share the same centre; the dipole coupling diverges")
    rot = np.asarray(rotations, dtype=float)
    s = r / (0.5 * (a[:, None] + a[None, :]))
    theta = np.arctan2(d[..., 0], d[..., 1]) - 0.5 * (rot[:, None] + rot[None, :])
    kl, kt = pair_factors(np.where(np.isfinite(s), s, np.inf), theta)
    inv_r3 = 1.0 / r**3
    nhat = d / r[..., None]
    nn = nhat[..., :, None] * nhat[..., None, :]
    g = (2.0 * kl[..., None, None] * nn - kt[..., None, None] * (np.eye(2) - nn)) * inv_r3[..., None, None]
    n = len(c)
    return g.transpose(0, 2, 1, 3).reshape(2 * n, 2 * n), -kt * inv_r3


def lattice_sum_shift(pitch: float, side: float, reach: int = 40) -> tuple[float, float]:
    """Change of a perfect square lattice's k = 0 dipole sums by the factors, nm⁻³ (in-plane, z).

    The in-plane sum is per axis (Σ G_xx); both add to the plain sums S / (2 d³) and −S / d³.

    Examples
    --------
    15 nm cubes at 17 nm pitch; the in-plane sum drops by about a fifth of S / (2 d³):

    >>> d_plane, d_z = lattice_sum_shift(17.0, 15.0)
    >>> f"{d_plane:.2e}"
    '-1.97e-04'
    """
    i = np.arange(-reach, reach + 1)
    ii, jj = np.meshgrid(i, i, indexing="ij")
    r = pitch * np.hypot(ii, jj).ravel()
    cos2 = (pitch * ii.ravel()) ** 2
    keep = r > 0
    theta = np.arctan2(ii.ravel(), jj.ravel())[keep]
    r, cos2 = r[keep], cos2[keep] / r[keep] ** 2
    kl, kt = pair_factors(r / side, theta)
    plane = np.sum((2.0 * (kl - 1.0) * cos2 - (kt - 1.0) * (1.0 - cos2)) / r**3)
    z = np.sum(-(kt - 1.0) / r**3)
    return float(plane), float(z)
