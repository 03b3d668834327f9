"""Per-cube Drude materials in the coupled lattice, solved once per scene as oscillators.

A Drude cube's polarisability per volume is a sum of Lorentz poles in z = E² + iγE,

    χ(E; ωp, γ) = c + Σ_k b_k ωp² / (ℓ_k ωp² − z),   ℓ_k = L_k / D_k,
    b_k = B_k ε_m / (4π D_k²),   c = Σ_k B_k (ε∞ − ε_m) / (4π D_k),   D_k = ε∞ L_k + ε_m (1 − L_k),

one pole per boundary-element mode (depolarisation factor L_k = (1 − Λ_k)/2, weight B_k; the
pole sits at ω_k² = (1 − Λ_k) ωp² / (ε∞(1 − Λ_k) + ε_m(1 + Λ_k))), plus the constant c that the
background ε∞ gives. With one amplitude y per site and pole, the coupled dipoles
(1/(V_i χ_i) − G) p = F become

    (A − z) y = b,   A = Ω − K^T H K,   H = (1 − G C)^{-1} G,   b = K^T (1 − G C)^{-1} F,

with Ω = diag(ℓ_k ωp_i²), K the site-to-pole amplitudes √(V_i b_k) ωp_i and C = diag(V_i c);
F^T p = (a real term) + b^T (A − z)^{-1} b. A is real symmetric for any per-site ωp and
volume: one eigendecomposition per scene, then every energy is a diagonal resolvent. Damping
enters only through z; with per-site γ_i each collective mode m gets the damping of the sites
it lives on, γ_m = Σ_(i,k) U_(ik),m² γ_i (first order in γ_i − γ̄; the neglected mixing of
modes by the damping differences is measured against the exact dense solve in the tests and in
docs/physics.md).

To keep the eigenproblem small, the cube's ~15 distinct dipole-active poles are replaced by a
few (:func:`pole_model`) fitted to the full χ over the scene's energies and materials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg
from scipy.optimize import least_squares

from ..dielectric import CubeModes

__all__ = ["PoleModel", "pole_model", "oscillator_modes"]


@dataclass(frozen=True)
class PoleModel:
    """χ(E; ωp, γ) = background + Σ_k strength_k ωp² / (ell_k ωp² − E² − iγE) (dimensionless).

    background : c; ell : (K,) pole positions in units of ωp²; strength : (K,) b_k.

    Examples
    --------
    >>> from plasmonwidgets.simulate.dielectric import CubeModes
    >>> m = pole_model(CubeModes(depolarisation=(0.23, 0.4), weights=(0.7, 0.3), eps_host=2.0))
    >>> len(m.ell)
    2
    """

    background: float
    ell: np.ndarray
    strength: np.ndarray

    def susceptibility(self, energy, omega_p: float, damping: float) -> np.ndarray:
        """χ at energies (E,) eV for one Drude material (ωp, γ in eV)."""
        e = np.asarray(energy, dtype=np.float64)
        z = (e**2 + 1j * damping * e) / omega_p**2
        return self.background + np.sum(self.strength[:, None] / (self.ell[:, None] - z.ravel()[None, :]),
                                         axis=0).reshape(e.shape)


def _exact_poles(modes: CubeModes) -> PoleModel:
    """All poles of ``modes`` (equal L merged)."""
    eps_inf, eps_m = modes.material.eps_inf, modes.eps_host
    big_l = np.round(np.asarray(modes.depolarisation, float), 12)
    weight = np.asarray(modes.weights, float)
    uniq, inv = np.unique(big_l, return_inverse=True)
    w = np.bincount(inv, weights=weight)
    d = eps_inf * uniq + eps_m * (1.0 - uniq)
    return PoleModel(float(np.sum(w * (eps_inf - eps_m) / (4 * np.pi * d))), uniq / d,
                     w * eps_m / (4 * np.pi * d**2))


def pole_model(modes: CubeModes, n_poles: int | None = None, *, omega_p_range=(1.5, 1.95),
               damping_range=(0.07, 0.13), energy_range=(0.2, 1.2)) -> PoleModel:
    """The cube's dipole response as ``n_poles`` Lorentz poles (None: all, exact).

    The background c is kept (it is the high-energy limit); pole positions and strengths are
    fitted by least squares to the relative error of the full χ over ``energy_range`` for
    materials at the corners of ``omega_p_range`` × ``damping_range`` (χ depends on the
    material only through z / ωp², so one fit serves every cube).

    Returns
    -------
    PoleModel

    Examples
    --------
    The default two-mode cube response: exact (all poles) and fitted with one pole; ``ell`` is
    the pole position in z = (E² + iγE)/ωp²:

    >>> from plasmonwidgets.simulate.dielectric import CubeModes
    >>> len(pole_model(CubeModes()).ell), len(pole_model(CubeModes(), 1).ell)
    (2, 1)
    """
    exact = _exact_poles(modes)
    if n_poles is None or n_poles >= len(exact.ell):
        return exact
    if n_poles < 1:
        raise ValueError(f"n_poles must be >= 1 or None, got {n_poles!r}")
    energy = np.linspace(*energy_range, 120)
    wps = (omega_p_range[0], np.mean(omega_p_range), omega_p_range[1])
    u = np.concatenate([(energy**2 + 1j * g * energy) / wp**2 for wp in wps for g in damping_range])
    ref = exact.background + np.sum(exact.strength[:, None] / (exact.ell[:, None] - u[None, :]), axis=0)
    groups = np.array_split(np.argsort(exact.ell), n_poles)
    b0 = np.array([exact.strength[g].sum() for g in groups])
    l0 = np.array([np.sum(exact.strength[g] * exact.ell[g]) for g in groups]) / b0

    def residual(p):
        model = exact.background + np.sum(p[n_poles:, None] / (p[:n_poles, None] - u[None, :]), axis=0)
        r = (model - ref) / np.abs(ref)
        return np.concatenate([r.real, r.imag])

    fit = least_squares(residual, np.concatenate([l0, b0]), bounds=(1e-6, np.inf))
    order = np.argsort(fit.x[:n_poles])
    return PoleModel(exact.background, fit.x[:n_poles][order], fit.x[n_poles:][order])


def oscillator_modes(g: np.ndarray, volume: np.ndarray, omega_p: np.ndarray, damping: np.ndarray,
                     poles: PoleModel | list[PoleModel]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collective oscillators of coupled dipoles with per-site Drude materials.

    Parameters
    ----------
    g : (n, n) real symmetric coupling between the n dipole components (diagonal shifts included).
    volume, omega_p, damping : (n,) per component: V (nm³), ωp and γ (eV) of its site.
    poles : PoleModel of the cube, or one per component (all with the same background c).

    Returns
    -------
    lam : (M,) eigenvalues of A (eV²), M = Σ poles per component; gam : (M,) damping of each mode
    (eV); w : (n, M) projection: F^T p = real + Σ_m (F·w_m)² / (lam_m − E² − iE·gam_m).

    Examples
    --------
    Two weakly coupled components (15 nm cubes, 3375 nm³) of ωp 1.7 and 1.8 eV, γ 0.1 eV, each
    with the two poles of the default cube response, give four collective modes:

    >>> from plasmonwidgets.simulate.dielectric import CubeModes
    >>> g = np.array([[0.0, 1e-4], [1e-4, 0.0]])
    >>> lam, gam, w = oscillator_modes(g, np.full(2, 3375.0), np.array([1.7, 1.8]), np.full(2, 0.1),
    ...                                pole_model(CubeModes()))
    >>> lam.shape, gam.shape, w.shape
    ((4,), (4,), (2, 4))
    """
    n = len(volume)
    models = [poles] * n if isinstance(poles, PoleModel) else list(poles)
    if len(models) != n:
        raise ValueError(f"got {len(models)} pole models for {n} dipole components")
    owner = np.concatenate([np.full(len(m.ell), d) for d, m in enumerate(models)])
    ell = np.concatenate([m.ell for m in models])
    strength = np.concatenate([m.strength for m in models])
    c = volume * np.array([m.background for m in models])
    one_minus_gc = np.eye(n) - g * c[None, :]
    lu = linalg.lu_factor(one_minus_gc, check_finite=False)
    h = linalg.lu_solve(lu, g, check_finite=False)  # (1 − GC)^{-1} G, symmetric
    h = 0.5 * (h + h.T)
    kappa = np.sqrt(volume[owner] * strength) * omega_p[owner]  # (M,)
    a = -(h[np.ix_(owner, owner)] * kappa[:, None]) * kappa[None, :]
    a[np.diag_indices_from(a)] += ell * omega_p[owner] ** 2
    # single precision: eigenvalue errors ~1e-7 of the band, far below the linewidths γE ~ 0.05 eV²,
    # at about half the time of the (poles × lattice)-sized decomposition
    lam, u = linalg.eigh(a.astype(np.float32), overwrite_a=True, check_finite=False, driver="evd")
    lam, u = lam.astype(np.float64), u.astype(np.float64)
    gam = damping[owner] @ u**2
    ku = np.zeros((n, len(lam)))
    np.add.at(ku, owner, kappa[:, None] * u)  # K U
    w = linalg.lu_solve(lu, ku, trans=1, check_finite=False)  # (1 − CG)^{-1} K U
    return lam, gam, w
