"""Several particles coupled through their surface modes (quasi-static, non-retarded).

Each particle p carries its own modes (right R_p, left L_p, eigenvalues Λ_pk) and its own
permittivity, Λ_p(E) = (ε_p + ε_m)/(ε_p − ε_m). Writing the charge of p as σ_p = R_p c_p,
the boundary condition on every particle, 2πΛ_p σ_p − Σ_q F_pq σ_q = −∂_n φ_ext, becomes

    2π [ (Λ_p(E) − Λ_pk) δ_pq δ_kk' − C_pk,qk' ] c_qk' = −(L_p ∂_n φ_ext)_k,
    C_pq = L_p F_pq R_q / (2π)   (p ≠ q),

where F_pq is the exact panel-to-panel operator from the charges of q to the panel centres
of p (with the near-panel quadrature, so narrow gaps are integrated properly: that is where
gap modes come from). Keeping every mode of every particle, this is the full boundary-
element problem of the cluster, only written in the particles' mode bases; keeping fewer
(``n_modes``) is a Petrov–Galerkin reduction. Far pairs (no panel within ``near`` sizes)
use one-point panel interactions.
"""

from __future__ import annotations

import numpy as np

from ..beam import Beam
from ._blas import single_threaded_blas
from .loss import _setup, beam_sources, loss_prefactor
from .mesh import SurfaceMesh
from .modes import Modes
from .operator import NEAR, charge_operator

__all__ = ["Cluster", "mirror_dimer_modes", "mutual_operator"]


def mutual_operator(targets: SurfaceMesh, sources: SurfaceMesh) -> np.ndarray:
    """F from the charges of ``sources`` to the panel centres of ``targets`` (two particles).

    The near-panel quadrature is used only when some panel pair lies within its reach
    (bounding spheres closer than 4 panel sizes); far pairs take one point per panel.

    Examples
    --------
    Two spheres of radius 1 nm (96 panels each) 3 nm apart along x; the block has shape
    (targets' panels, sources' panels):

    >>> from plasmonwidgets.simulate.quasistatic.mesh import sphere
    >>> a = sphere(1.0, n=2)
    >>> mutual_operator(a, a.transformed(translation=(3.0, 0.0, 0.0))).shape
    (96, 96)
    """
    reach = NEAR[-1][0] * max(targets.sizes.max(), sources.sizes.max())
    ct, cs = targets.centroids, sources.centroids
    rt = np.linalg.norm(ct - ct.mean(0), axis=1).max()
    rs = np.linalg.norm(cs - cs.mean(0), axis=1).max()
    near = np.linalg.norm(ct.mean(0) - cs.mean(0)) < rt + rs + reach
    return charge_operator(targets, sources, near=NEAR if near else ())


class Cluster:
    """Particles (each a placed :class:`Modes`) coupled through their surface charges.

    Parameters
    ----------
    particles : sequence of Modes
        Modes already moved to their places (:meth:`Modes.transformed`; nm). Their
        surfaces must not touch.
    n_modes : int, optional
        Modes kept per particle after dropping the net-charge mode (Λ = 1): the first
        ``n_modes`` by decreasing real Λ (the most red-shifted, i.e. the ones a Drude
        particle shows at the lowest energies). Default: all (exact).

    Examples
    --------
    >>> from plasmonwidgets.simulate.quasistatic.modes import cube_modes
    >>> unit = cube_modes(rounding=0.2, n_flat=2, n_round=1, cache=False)
    >>> pair = Cluster([unit.transformed(scale=10.0, translation=(-6.0, 0, 0)),
    ...                 unit.transformed(scale=10.0, translation=(6.0, 0, 0))])
    >>> lam, strengths = pair.eigenmodes()
    """

    def __init__(self, particles, *, n_modes: int | None = None):
        self.particles = list(particles)
        if not self.particles:
            raise ValueError("a cluster needs at least one particle")
        self.keep = []
        for m in self.particles:
            # Drop the net-charge mode (Λ = 1): a neutral beam never drives it.
            rest = np.delete(np.arange(len(m)), np.argmin(np.abs(m.eigenvalues - 1.0)))
            self.keep.append(rest if n_modes is None else rest[: int(n_modes)])
        self.offsets = np.cumsum([0] + [len(k) for k in self.keep])
        with single_threaded_blas():
            self.coupling = self._coupling_matrix()

    def _coupling_matrix(self) -> np.ndarray:
        """C (K, K) with zero diagonal blocks; K = total number of kept modes."""
        k_total = self.offsets[-1]
        c = np.zeros((k_total, k_total), dtype=np.complex128)
        for p, mp in enumerate(self.particles):
            for q, mq in enumerate(self.particles):
                if p == q:
                    continue
                f_pq = mutual_operator(mp.mesh, mq.mesh)
                block = mp.left[self.keep[p]] @ f_pq @ mq.right[:, self.keep[q]]
                c[self._slice(p), self._slice(q)] = block / (2.0 * np.pi)
        return c

    def _slice(self, p: int) -> slice:
        return slice(self.offsets[p], self.offsets[p + 1])

    def _diagonal(self, lam_per_particle) -> np.ndarray:
        """Λ_p(E) − Λ_pk for every kept mode, shape (K,)."""
        return np.concatenate([lam - m.eigenvalues[k]
                               for lam, m, k in zip(lam_per_particle, self.particles, self.keep)])

    def eigenmodes(self) -> tuple[np.ndarray, np.ndarray]:
        """Coupled modes when every particle has the same ε.

        Returns
        -------
        eigenvalues : array (K,) complex
            Λ of the coupled modes, sorted by decreasing real part (resonance at
            ε = ε_m (Λ + 1)/(Λ − 1); larger Λ is more red-shifted).
        strengths : array (K, 3)
            Oscillator strengths along x, y, z normalised by the total volume (Σ over
            modes = 1 per axis when all modes are kept).
        """
        base = np.concatenate([m.eigenvalues[k] for m, k in zip(self.particles, self.keep)])
        with single_threaded_blas():
            lam, vec = np.linalg.eig(np.diag(base) + self.coupling)
            dual = np.linalg.inv(vec)
        moment = np.zeros((3, len(lam)), dtype=np.complex128)
        drive = np.zeros((len(lam), 3), dtype=np.complex128)
        volume = 0.0
        for p, (m, k) in enumerate(zip(self.particles, self.keep)):
            mesh = m.mesh
            moment += (mesh.areas[:, None] * mesh.centroids).T @ m.right[:, k] @ vec[self._slice(p)]
            drive += dual[:, self._slice(p)] @ (m.left[k] @ mesh.normals)
            volume += mesh.volume
        strengths = np.real(moment.T * drive) / volume
        order = np.argsort(-lam.real, kind="stable")
        return lam[order], strengths[order]

    def loss(self, beams, energies, *, eps, eps_host: float = 1.0, beam: Beam | None = None) -> np.ndarray:
        """Loss probability Γ(E) (eV⁻¹) of aloof beams near the cluster, shape (P, E).

        Parameters
        ----------
        beams : array (P, 2)
            Beam positions (x, y) in nm; none may cross a particle.
        energies : array (E,)
            Loss energies (eV).
        eps : one permittivity spec or a sequence of one per particle
            Each an array (E,), a callable of energy, or an object with ``.eps(E)``
            (e.g. :class:`~plasmonwidgets.simulate.dielectric.Drude`).
        eps_host : float
            Host permittivity ε_m.
        beam : Beam, optional
            Electron kinematics (default 60 keV).
        """
        beam = Beam() if beam is None else beam
        specs = eps if isinstance(eps, (list, tuple)) else [eps] * len(self.particles)
        if len(specs) != len(self.particles):
            raise ValueError(f"got {len(specs)} permittivities for {len(self.particles)} particles")
        setups = [_setup(m.mesh, beams, energies, s, eps_host, beam) for m, s in zip(self.particles, specs)]
        beams, energies, _, q = setups[0]
        lam = [lam_p for _, _, lam_p, _ in setups]
        out = np.empty((len(beams), len(energies)))
        with single_threaded_blas():
            for e, qe in enumerate(q):
                out[:, e] = self._loss_at(beams, qe, [lp[e] for lp in lam])
        return loss_prefactor(beam) / eps_host * out

    def _loss_at(self, beams: np.ndarray, qe: float, lam_e: list) -> np.ndarray:
        """Im Σ g^R c for every beam at one energy (no prefactor), shape (P,)."""
        g_r, g_l = [], []
        for m, k in zip(self.particles, self.keep):
            phi, dphi = beam_sources(m.mesh, beams, qe)
            g_r.append((np.conj(phi) * m.mesh.areas[None, :]) @ m.right[:, k])
            g_l.append(dphi @ m.left[k].T)
        g_r, g_l = np.concatenate(g_r, axis=1), np.concatenate(g_l, axis=1)
        system = 2.0 * np.pi * (np.diag(self._diagonal(lam_e)) - self.coupling)
        c = np.linalg.solve(system, g_l.T)  # (K, P)
        return np.imag(np.einsum("pk,kp->p", g_r, c))


def mirror_dimer_modes(unit: Modes, *, side: float, gap: float, parity: int = -1
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Modes of two identical particles facing each other across the plane x = 0, one parity at a time.

    The dimer is ``unit`` scaled by ``side`` and centred at x = ∓(side + gap)/2 (the unit
    mesh must be mirror-symmetric in x, like every cube and sphere mesh here). Charges of
    parity ``p`` obey σ_right(x, y, z) = p·σ_left(−x, y, z), so the full operator reduces to
    F_ll + p·F_lr M on the left particle (M: the mirror permutation) — the exact coupled
    problem with half the unknowns. Bonding (longitudinal-dipole) modes have parity −1.

    Returns
    -------
    eigenvalues : array (N,) complex
        Λ, sorted by decreasing real part.
    strengths : array (N, 3)
        Oscillator strengths of the dimer modes along x, y, z (per total volume).

    Examples
    --------
    Two 15 nm cubes (coarse 96-panel mesh) across a 2 nm gap: the bonding mode, the one
    brightest along x, sits at a larger Λ than the single cube's 0.48 (a more negative ε, so a
    lower energy):

    >>> from plasmonwidgets.simulate.quasistatic.modes import cube_modes
    >>> unit = cube_modes(rounding=0.2, n_flat=2, n_round=1, cache=False)
    >>> lam, strengths = mirror_dimer_modes(unit, side=15.0, gap=2.0)
    >>> lam.shape, strengths.shape
    ((96,), (96, 3))
    >>> round(float(lam[np.argmax(strengths[:, 0])].real), 2)
    0.57
    """
    if parity not in (-1, 1):
        raise ValueError(f"parity must be +1 or -1, got {parity}")
    d = 0.5 * (side + gap)
    left = unit.mesh.transformed(scale=side, translation=(-d, 0.0, 0.0))
    right = unit.mesh.transformed(scale=side, translation=(d, 0.0, 0.0))
    mirrored = left.centroids * np.array([-1.0, 1.0, 1.0])
    dist = np.linalg.norm(right.centroids[:, None, :] - mirrored[None, :, :], axis=-1)
    match = np.argmin(dist, axis=1)  # right panel j is the mirror of left panel match[j]
    if np.any(dist[np.arange(len(match)), match] > 1e-6 * side) or len(set(match)) != len(match):
        raise ValueError("the unit mesh is not mirror-symmetric in x; use Cluster.eigenmodes instead")
    reduced = charge_operator(left)
    f_lr = charge_operator(left, right)
    np.add.at(reduced.T, match, parity * f_lr.T)  # column match[j] gains parity·F_lr[:, j]
    with single_threaded_blas():
        lam, vec = np.linalg.eig(reduced / (2.0 * np.pi))
        dual = np.linalg.inv(vec)
    # Both halves carry the same dipole moment along x for parity −1 (along y, z for +1).
    moment = (left.areas[:, None] * left.centroids).T @ vec
    strengths = np.real(moment.T * (dual @ left.normals)) / left.volume
    order = np.argsort(-lam.real, kind="stable")
    return lam[order], strengths[order]
