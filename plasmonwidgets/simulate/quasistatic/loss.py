"""EELS of an aloof electron beam from quasi-static surface modes (non-retarded).

An electron moving along z at speed v through (x_b, y_b) is, at loss energy E = ħω, the
line source whose potential in a host ε_m is φ_b(r)/ε_m with

    φ_b(r) = ∫ dz' e^{−iqz'} / |r − (R_b, z')| = 2 K₀(q|R − R_b|) e^{−iqz},   q = ω/v.

For a unit charge it induces the surface charge σ = −(2πΛ − F)⁻¹ ∂_n φ_b / ε_m, with
Λ(E) = (ε + ε_m)/(ε − ε_m) (the boundary condition ε ∂_n φ⁻ = ε_m ∂_n φ⁺), whose potential
Σ_j A_j σ_j/|r − r_j| is the screened interaction W_ind. The loss probability per unit
energy is
(García de Abajo, Rev. Mod. Phys. 82, 209 (2010))

    Γ(E) = α_f/(π β² ħc) · Im[ −∫∫ dz dz' e^{iq(z − z')} W_ind(z, z') ]
         = α_f/(π β² ħc ε_m) · Im Σ_k g^R_k g^L_k / (2π (Λ(E) − Λ_k)),

g^R_k = Σ_j A_j φ̄_b,j* R_jk (the mode's potential seen by the beam; φ̄ panel averages) and
g^L_k = Σ_i L_ki ∂_n φ_b(r_i) (how strongly the beam drives the mode, through the left
eigenvector). Lengths nm, energies eV, Γ in eV⁻¹ per electron. The beam must not cross
the particle (the bulk and the inside of the particle are another problem).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..beam import ALPHA_F, HBAR_C, Beam
from ._blas import single_threaded_blas
from .mesh import SurfaceMesh
from .modes import Modes

__all__ = ["beam_sources", "crossing_beams", "eels_direct", "eels_modal", "loss_prefactor", "response_lambda"]

# (distance from the beam in panel sizes, Gauss–Legendre order) for φ̄, applied in turn so
# the nearest panels end with the finest rule; farther panels use their centre.
_BEAM_RULES = ((6.0, 3), (2.0, 8))


def loss_prefactor(beam: Beam) -> float:
    """α_f/(π β² ħc) in eV⁻¹ nm⁻¹ (non-retarded: no Lorentz factor).

    Examples
    --------
    >>> f"{loss_prefactor(Beam(e0_kev=60.0)):.3e}"
    '5.912e-05'
    """
    return ALPHA_F / (np.pi * beam.beta**2 * HBAR_C)


def response_lambda(eps: np.ndarray, eps_host: float) -> np.ndarray:
    """Λ(E) = (ε + ε_m)/(ε − ε_m), the variable in which mode k resonates at Λ = Λ_k.

    Examples
    --------
    A sphere's dipole mode (Λ = 1/3) resonates at ε = −2 ε_m:

    >>> response_lambda(np.array([-2.0]), 1.0).real  # complex out
    array([0.33333333])
    """
    eps = np.asarray(eps, dtype=np.complex128)
    return (eps + eps_host) / (eps - eps_host)


def _eps_values(eps, energies: np.ndarray) -> np.ndarray:
    """ε at ``energies`` from an array, a callable or an object with ``.eps(E)`` (e.g. Drude)."""
    if hasattr(eps, "eps"):
        eps = eps.eps(energies)
    elif callable(eps):
        eps = eps(energies)
    eps = np.broadcast_to(np.asarray(eps, dtype=np.complex128), energies.shape)
    if not np.all(np.isfinite(eps)):
        raise ValueError("the permittivity must be finite at every energy")
    return eps


def _cross2(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """z component of the cross product of in-plane vectors (..., 2)."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def crossing_beams(mesh: SurfaceMesh, beams: np.ndarray) -> np.ndarray:
    """Which beams (P, 2) pass through the surface: their (x, y) lies in a projected panel. Shape (P,).

    Examples
    --------
    A sphere of radius 10 nm: a beam through its centre and one 15 nm away (x, y in nm):

    >>> from plasmonwidgets.simulate.quasistatic.mesh import sphere
    >>> crossing_beams(sphere(10.0, n=2), np.array([[0.0, 0.0], [15.0, 0.0]]))
    array([ True, False])
    """
    beams = np.asarray(beams, dtype=np.float64)
    c = mesh.corners[:, :, :2]
    hit = np.zeros(len(beams), dtype=bool)
    for tri in ((0, 1, 2), (0, 2, 3)):
        a, b, d = (c[None, :, k, :] for k in tri)
        p = beams[:, None, :]
        s1 = _cross2(b - a, p - a)
        s2 = _cross2(d - b, p - b)
        s3 = _cross2(a - d, p - d)
        inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
        area = np.abs(_cross2(b - a, d - a))
        hit |= (inside & (area > 1e-12 * mesh.areas.max())).any(axis=1)
    return hit


def _check_aloof(mesh: SurfaceMesh, beams: np.ndarray) -> None:
    """Raise if a beam line (along z) crosses the surface."""
    hit = crossing_beams(mesh, beams)
    if hit.any():
        x, y = beams[np.argmax(hit)]
        raise ValueError(
            f"the beam at (x, y) = ({x:g}, {y:g}) nm crosses the particle; this solver handles "
            "aloof beams only (move the beam outside the particle's projected outline)")


def beam_sources(mesh: SurfaceMesh, beams: np.ndarray, q: float, *,
                 floor: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Beam potential averaged over panels and its normal derivative at the collocation points.

    Parameters
    ----------
    mesh : SurfaceMesh
        N panels (nm).
    beams : array (P, 2)
        Beam positions (x, y) in nm.
    q : float
        ω/v in nm⁻¹.
    floor : float
        Smallest distance ρ from the beam (nm) used in K₀ and K₁: > 0 keeps beams that
        pierce the surface finite (the coupling table floors at a quarter panel size).

    Returns
    -------
    phi_bar : array (P, N) complex
        Panel average of 2 K₀(qρ) e^{−iqz}: one point for panels farther than 6 panel
        sizes from the beam, a 3×3 rule within that, 8×8 within 2 sizes.
    dphi_dn : array (P, N) complex
        n·∇[2 K₀(qρ) e^{−iqz}] at the panel centres (nm⁻¹), less its area-weighted mean
        (zero net flux through the closed surface, as Gauss's law requires).

    Examples
    --------
    One beam 15 nm from the centre of a 96-panel sphere of radius 10 nm, q = 0.05 nm⁻¹:

    >>> from plasmonwidgets.simulate.quasistatic.mesh import sphere
    >>> phi_bar, dphi_dn = beam_sources(sphere(10.0, n=2), np.array([[15.0, 0.0]]), 0.05)
    >>> phi_bar.shape, dphi_dn.shape
    ((1, 96), (1, 96))
    """
    beams = np.asarray(beams, dtype=np.float64)
    phi = _line_potential(mesh.centroids[None], beams[:, None, :], q, floor)
    rho_c = np.linalg.norm(mesh.centroids[None, :, :2] - beams[:, None, :], axis=-1) / mesh.sizes[None, :]
    for limit, order in _BEAM_RULES:
        i, j = np.nonzero(rho_c < limit)
        if i.size:
            pts, wts = mesh.quadrature(order)
            phi[i, j] = np.einsum("pk,pk->p", _line_potential(pts[j], beams[i, None, :], q, floor),
                                  wts[j])
            phi[i, j] /= mesh.areas[j]
    d = mesh.centroids[None, :, :2] - beams[:, None, :]
    rho = np.maximum(np.linalg.norm(d, axis=-1), floor)
    n = mesh.normals[None]
    phase = np.exp(-1j * q * mesh.centroids[None, :, 2])
    radial = np.einsum("pnk,pnk->pn", d, n[..., :2]) / rho
    dphi = -2.0 * q * phase * (special.k1(q * rho) * radial + 1j * special.k0(q * rho) * n[..., 2])
    # Gauss: the beam's flux through a closed surface is zero. Removing the discretisation's
    # residual flux keeps the net-charge mode (Λ = 1, left eigenvector ∝ areas) undriven;
    # otherwise it leaks in with weight ~|ε| where ε is large and negative (low energies).
    dphi -= (dphi @ mesh.areas)[:, None] / mesh.areas.sum()
    return phi, dphi


def _line_potential(points: np.ndarray, beam_xy: np.ndarray, q: float, floor: float = 0.0) -> np.ndarray:
    """2 K₀(qρ) e^{−iqz} at points (..., 3) for beams broadcast as (..., 2), ρ ≥ floor."""
    rho = np.maximum(np.linalg.norm(points[..., :2] - beam_xy, axis=-1), floor)
    return 2.0 * special.k0(q * rho) * np.exp(-1j * q * points[..., 2])


def _setup(mesh, beams, energies, eps, eps_host, beam):
    beams = np.atleast_2d(np.asarray(beams, dtype=np.float64))
    if beams.ndim != 2 or beams.shape[1] != 2:
        raise ValueError(f"beams must have shape (P, 2) (x, y in nm), got {beams.shape}")
    energies = np.atleast_1d(np.asarray(energies, dtype=np.float64))
    if energies.ndim != 1 or np.any(energies <= 0):
        raise ValueError("energies must be a 1-D array of positive loss energies (eV)")
    if not eps_host > 0:
        raise ValueError(f"eps_host must be > 0, got {eps_host}")
    _check_aloof(mesh, beams)
    lam = response_lambda(_eps_values(eps, energies), eps_host)
    q = energies / (HBAR_C * beam.beta)
    return beams, energies, lam, q


def eels_modal(modes: Modes, beams, energies, *, eps, eps_host: float = 1.0, beam: Beam | None = None,
               keep: np.ndarray | None = None) -> np.ndarray:
    """Loss probability Γ(E) (eV⁻¹) of aloof beams from the modal sum over right and left eigenvectors.

    Parameters
    ----------
    modes : Modes
        Modes of the particle, placed where it is (nm).
    beams : array (P, 2)
        Beam positions (nm); no beam may cross the particle.
    energies : array (E,)
        Loss energies (eV).
    eps : array (E,), callable or object with ``.eps(E)``
        Particle permittivity (e.g. :class:`~plasmonwidgets.simulate.dielectric.Drude`).
    eps_host : float
        Permittivity of the surrounding medium ε_m.
    beam : Beam, optional
        Electron kinematics (default 60 keV); only β enters (non-retarded).
    keep : array of int, optional
        Indices of the modes to sum over (default all: exact for this mesh).

    Returns
    -------
    array (P, E)
        Γ in eV⁻¹ per electron.

    Examples
    --------
    >>> from plasmonwidgets.simulate.dielectric import Drude
    >>> from plasmonwidgets.simulate.quasistatic.modes import sphere_modes
    >>> m = sphere_modes(n=3, cache=False).transformed(scale=10.0)
    >>> eels_modal(m, [[15.0, 0.0]], [0.5, 0.6], eps=Drude()).shape
    (1, 2)
    """
    beam = Beam() if beam is None else beam
    mesh = modes.mesh
    beams, energies, lam, q = _setup(mesh, beams, energies, eps, eps_host, beam)
    idx = np.arange(len(modes)) if keep is None else np.asarray(keep)
    right, left, lam_k = modes.right[:, idx], modes.left[idx], modes.eigenvalues[idx]
    out = np.empty((len(beams), len(energies)))
    with single_threaded_blas():
        for e, qe in enumerate(q):
            phi, dphi = beam_sources(mesh, beams, qe)
            g_r = (np.conj(phi) * mesh.areas[None, :]) @ right
            g_l = dphi @ left.T
            resp = g_r * g_l / (2.0 * np.pi * (lam[e] - lam_k))[None, :]
            out[:, e] = np.imag(resp.sum(axis=1))
    return loss_prefactor(beam) / eps_host * out


def eels_direct(mesh: SurfaceMesh, operator: np.ndarray, beams, energies, *, eps, eps_host: float = 1.0,
                beam: Beam | None = None) -> np.ndarray:
    """The same loss as :func:`eels_modal` from a linear solve per energy (reference; shape (P, E)).

    ``operator`` is F of ``mesh`` (see
    :func:`~plasmonwidgets.simulate.quasistatic.operator.charge_operator`), or of several
    particles' meshes stacked together for a coupled system.

    Examples
    --------
    A sphere of radius 10 nm (96 panels), one beam 15 nm from its centre (x, y in nm), two
    energies (eV); with every mode kept, :func:`eels_modal` gives the same numbers:

    >>> from plasmonwidgets.simulate.dielectric import Drude
    >>> from plasmonwidgets.simulate.quasistatic.mesh import sphere
    >>> from plasmonwidgets.simulate.quasistatic.modes import solve_modes
    >>> from plasmonwidgets.simulate.quasistatic.operator import charge_operator
    >>> mesh = sphere(10.0, n=2)
    >>> direct = eels_direct(mesh, charge_operator(mesh), [[15.0, 0.0]], [0.5, 0.6], eps=Drude())
    >>> direct.shape
    (1, 2)
    >>> modal = eels_modal(solve_modes(mesh), [[15.0, 0.0]], [0.5, 0.6], eps=Drude())
    >>> bool(np.allclose(direct, modal))
    True
    """
    beam = Beam() if beam is None else beam
    beams, energies, lam, q = _setup(mesh, beams, energies, eps, eps_host, beam)
    lam = np.broadcast_to(lam, energies.shape)
    out = np.empty((len(beams), len(energies)))
    eye = np.eye(len(mesh))
    with single_threaded_blas():
        for e, qe in enumerate(q):
            phi, dphi = beam_sources(mesh, beams, qe)
            sigma = np.linalg.solve(2.0 * np.pi * lam[e] * eye - operator, dphi.T)
            out[:, e] = np.imag(np.einsum("pn,np->p", np.conj(phi) * mesh.areas[None, :], sigma))
    return loss_prefactor(beam) / eps_host * out
