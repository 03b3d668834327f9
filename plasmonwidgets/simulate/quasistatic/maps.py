"""Prototype: loss maps of a small cluster of particles (e.g. 2×2 cubes) on a grid of aloof beams.

Two savings over calling :meth:`Cluster.loss` beam by beam:

* The beam couplings g^R, g^L vary slowly with energy (the K₀ logarithm only adds a
  constant potential, which neutral modes ignore; q K₁(qρ) → 1/ρ), so they are computed
  at a few Chebyshev nodes in ln E and interpolated; the error is checked in the tests.
* When every particle has the same ε, the coupled problem (all panels of all particles,
  a real matrix) is diagonalised once, and each energy costs one division per coupled
  mode. Otherwise the coupled system is solved in the particles' mode bases per energy.

Beams that cross a particle get NaN (the bulk loss of penetrating beams is not modelled here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.polynomial import chebyshev

from ..beam import HBAR_C, Beam
from ._blas import single_threaded_blas
from .coupling import Cluster, mutual_operator
from .loss import _eps_values, beam_sources, crossing_beams, loss_prefactor, response_lambda
from .operator import charge_operator

__all__ = ["LossMap", "quasistatic_loss_map"]


@dataclass(frozen=True)
class LossMap:
    """Loss probabilities of a set of beams.

    Attributes
    ----------
    beams : array (P, 2)
        Beam positions (x, y) in nm.
    energies : array (E,)
        Loss energies (eV).
    loss : array (P, E)
        Γ in eV⁻¹ per electron; NaN for beams that cross a particle.

    Examples
    --------
    A sphere of radius 10 nm: the beam through its centre gets NaN, the one 15 nm away a loss:

    >>> from plasmonwidgets.simulate.dielectric import Drude
    >>> from plasmonwidgets.simulate.quasistatic.modes import sphere_modes
    >>> ball = sphere_modes(n=2, cache=False).transformed(scale=10.0)
    >>> m = quasistatic_loss_map([ball], [[0.0, 0.0], [15.0, 0.0]], [0.5, 0.6], eps=Drude())
    >>> m.n_beams, m.loss.shape
    (2, (2, 2))
    >>> bool(np.isnan(m.loss[0]).all() and (m.loss[1] > 0).all())
    True
    """

    beams: np.ndarray
    energies: np.ndarray
    loss: np.ndarray

    @property
    def n_beams(self) -> int:
        return len(self.beams)


def _couplings(cluster: Cluster, beams: np.ndarray, q: float) -> tuple[np.ndarray, np.ndarray]:
    """g^R and g^L (P, K) in the particles' kept-mode bases at one q (nm⁻¹)."""
    g_r, g_l = [], []
    for m, k in zip(cluster.particles, cluster.keep):
        phi, dphi = beam_sources(m.mesh, beams, q)
        g_r.append((np.conj(phi) * m.mesh.areas[None, :]) @ m.right[:, k])
        g_l.append(dphi @ m.left[k].T)
    return np.concatenate(g_r, axis=1), np.concatenate(g_l, axis=1)


def quasistatic_loss_map(particles, beam_positions, energies, *, eps, eps_host: float = 1.0,
                         beam: Beam | None = None, n_nodes: int = 8, n_modes: int | None = None) -> LossMap:
    """Loss of every beam position near a cluster of particles, shape (P, E).

    Parameters
    ----------
    particles : sequence of Modes
        Placed particles (see :class:`~plasmonwidgets.simulate.quasistatic.coupling.Cluster`).
    beam_positions : array (P, 2)
        Beam (x, y) in nm; those crossing a particle give NaN.
    energies : array (E,)
        Loss energies (eV), > 0.
    eps : one permittivity spec, or a list of one per particle
        Array (E,), callable or object with ``.eps(E)``. One spec for all: the coupled
        modes are diagonalised once (fast); a list: one linear solve per energy.
    eps_host : float
        Host permittivity ε_m.
    beam : Beam, optional
        Electron kinematics (default 60 keV; non-retarded).
    n_nodes : int
        Chebyshev nodes in ln E for the beam couplings.
    n_modes : int, optional
        Modes kept per particle (default all: exact for the mesh).

    Examples
    --------
    >>> from plasmonwidgets.simulate.dielectric import Drude
    >>> from plasmonwidgets.simulate.quasistatic.modes import cube_modes
    >>> unit = cube_modes(rounding=0.2, n_flat=2, n_round=1, cache=False)
    >>> cubes = [unit.transformed(scale=15.0, translation=(x, 0.0, 0.0)) for x in (-8.5, 8.5)]
    >>> m = quasistatic_loss_map(cubes, [[0.0, 0.0], [0.0, 10.0]], [0.5, 0.6], eps=Drude(), eps_host=2.0)
    >>> m.loss.shape
    (2, 2)
    """
    beam = Beam() if beam is None else beam
    beams = np.atleast_2d(np.asarray(beam_positions, dtype=np.float64))
    energies = np.atleast_1d(np.asarray(energies, dtype=np.float64))
    if beams.ndim != 2 or beams.shape[1] != 2:
        raise ValueError(f"beam_positions must have shape (P, 2), got {beams.shape}")
    if energies.ndim != 1 or np.any(energies <= 0):
        raise ValueError("energies must be a 1-D array of positive loss energies (eV)")
    particles = list(particles)
    inside = np.zeros(len(beams), dtype=bool)
    for m in particles:
        inside |= crossing_beams(m.mesh, beams)
    aloof = beams[~inside]
    shared = not isinstance(eps, (list, tuple))
    specs = [eps] * len(particles) if shared else list(eps)
    if len(specs) != len(particles):
        raise ValueError(f"got {len(specs)} permittivities for {len(particles)} particles")
    lam = [response_lambda(_eps_values(s, energies), eps_host) for s in specs]

    # Chebyshev nodes in x = ln E over the requested range (slightly widened if it is one point).
    lo, hi = np.log(energies.min()), np.log(energies.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 1e-3, hi + 1e-3
    n_nodes = max(1, int(n_nodes))
    t_nodes = np.cos(np.pi * (np.arange(n_nodes) + 0.5) / n_nodes)
    q_nodes = np.exp(0.5 * (hi + lo) + 0.5 * (hi - lo) * t_nodes) / (HBAR_C * beam.beta)
    t_out = (2 * np.log(energies) - (hi + lo)) / (hi - lo)
    basis = chebyshev.chebvander(t_out, n_nodes - 1)  # (E, n): value = basis @ coefficients
    fit = np.linalg.pinv(chebyshev.chebvander(t_nodes, n_nodes - 1))  # samples -> coefficients
    weights = basis @ fit  # (E, n_nodes): interpolated value = weights @ samples
    out = np.full((len(beams), len(energies)), np.nan)
    with single_threaded_blas():
        if shared and n_modes is None:
            samples_r, samples_l, lam_c = _panel_samples(particles, aloof, q_nodes)
        else:
            cluster = Cluster(particles, n_modes=n_modes)
            samples = [_couplings(cluster, aloof, qn) for qn in q_nodes]
            samples_r = np.stack([s[0] for s in samples])
            samples_l = np.stack([s[1] for s in samples])
            if shared:
                base = np.concatenate([m.eigenvalues[k] for m, k in zip(cluster.particles, cluster.keep)])
                lam_c, vec = np.linalg.eig(np.diag(base) + cluster.coupling)
                samples_r = samples_r @ vec
                samples_l = samples_l @ np.linalg.inv(vec).T
        for e in range(len(energies)):
            g_r = np.tensordot(weights[e], samples_r, axes=1)
            g_l = np.tensordot(weights[e], samples_l, axes=1)
            if shared:
                resp = (g_r * g_l) / (2.0 * np.pi * (lam[0][e] - lam_c))[None, :]
                out[~inside, e] = np.imag(resp.sum(axis=1))
            else:
                system = 2.0 * np.pi * (np.diag(cluster._diagonal([lp[e] for lp in lam])) - cluster.coupling)
                c = np.linalg.solve(system, g_l.T)
                out[~inside, e] = np.imag(np.einsum("pk,kp->p", g_r, c))
    return LossMap(beams, energies, loss_prefactor(beam) / eps_host * out)


def _panel_samples(particles, beams: np.ndarray, q_nodes: np.ndarray):
    """Beam couplings in the coupled modes of the whole cluster's panel problem, at each node.

    Returns g^R, g^L (n_nodes, P, M) and the coupled Λ (M,), without the net-charge modes
    (Λ = 1, one per particle), which a neutral beam never drives.
    """
    meshes = [m.mesh for m in particles]
    sizes = np.cumsum([0] + [len(m) for m in meshes])
    f = np.empty((sizes[-1], sizes[-1]))
    for p, mp in enumerate(meshes):
        for q, mq in enumerate(meshes):
            block = charge_operator(mp) if p == q else mutual_operator(mp, mq)
            f[sizes[p]:sizes[p + 1], sizes[q]:sizes[q + 1]] = block
    lam_c, vec = scipy.linalg.eig(f / (2.0 * np.pi), overwrite_a=True, check_finite=False)
    dual_t = scipy.linalg.inv(vec, check_finite=False).T
    keep = np.abs(lam_c - 1.0) > 1e-8
    lam_c, vec, dual_t = lam_c[keep], vec[:, keep], dual_t[:, keep]
    areas = np.concatenate([m.areas for m in meshes])
    g_r, g_l = [], []
    for qn in q_nodes:
        sources = [beam_sources(m, beams, qn) for m in meshes]
        phi = np.concatenate([s[0] for s in sources], axis=1)
        dphi = np.concatenate([s[1] for s in sources], axis=1)
        g_r.append((np.conj(phi) * areas[None, :]) @ vec)
        g_l.append(dphi @ dual_t)
    return np.stack(g_r), np.stack(g_l), lam_c
