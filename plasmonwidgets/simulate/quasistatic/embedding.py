"""The far film as a coarse-grained perfect lattice: converged coupled dipoles for a scene.

A close-packed cube film has a strong collective in-plane dipole mode; a finite patch of
radius R holds it at wavevectors ~1/R, so its spectra converge only like 1/R, while the beam
drives wavevectors down to κ = q/γ (~1/200 nm at 0.5 eV, tens of pitches). Here the scanned
cubes and a buffer around them are explicit (jittered, own sizes, vacancies, holes, the tear);
beyond, the film continues as a perfect square lattice of identical dipoles with the mean
polarisability, out to ``film_radius`` pitches, coarse-grained in aligned n×n blocks whose
size grows with the distance from the scan (n·pitch ≤ distance / ``block_ratio``).

A block is one dipole at the block's centre whose polarisability keeps the long-wavelength
response of the film it replaces: the polarisation per area of a lattice of pitch d is
E / (d² (1/α − G̃(k))), with the lattice sum G̃(k) = G₀ − 2π|k| k̂k̂ / d² + O(k²) (the
non-analytic term is the same for every pitch: it is the continuum's). Equating it for the
fine lattice (α, d) and a lattice of blocks (α_n, n·d), whose k = 0 sum is G₀ / n³, gives

    1 / α_n = (1/α − G₀ (1 − 1/n)) / n²,   G₀ = S / d³ · diag(1/2, 1/2, −1),

with S = Σ'_{(i,j)≠0} (i² + j²)^{−3/2} = 4 ζ(3/2) β(3/2) = 9.0336 (Hardy's identity;
:func:`square_lattice_sum`, tested against a direct sum). Since the shift is independent of
energy, the whole system keeps the form diag(1/(V χ(E))) − (G + shifts) and is solved for all
energies by one symmetric eigendecomposition, as :class:`~...eels.CoupledDipoles` does.

The beam field at far sites (the blocks, all at least the buffer away from every beam) is a
smooth function of the beam position; it is evaluated on a tensor Chebyshev grid over the
scan and interpolated, so the far sites cost ~``far_nodes``² beams instead of every pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev
from scipy import special

from .._parallel import map_chunks
from ..beam import Beam, regularised_distance
from ..eels import CoupledDipoles, coupling_matrices
from .nearfield import corrected_coupling
from .oscillators import oscillator_modes

__all__ = ["FarFilm", "EmbeddedDipoles", "far_film", "square_lattice_sum"]


def square_lattice_sum() -> float:
    """S = Σ over (i, j) ≠ 0 of (i² + j²)^(−3/2) = 4 ζ(3/2) β(3/2) ≈ 9.0336.

    β is Dirichlet's beta function, β(s) = 4^(−s) (ζ(s, 1/4) − ζ(s, 3/4)) with Hurwitz ζ.
    The in-plane dipole sum of a square lattice of pitch d at k = 0 is S / (2 d³) on each
    axis, the out-of-plane one −S / d³.

    Examples
    --------
    >>> round(square_lattice_sum(), 4)
    9.0336
    """
    s = 1.5
    beta = 4.0**-s * (special.zeta(s, 0.25) - special.zeta(s, 0.75))
    return float(4.0 * special.zeta(s) * beta)


@dataclass(frozen=True)
class FarFilm:
    """Coarse-grained perfect film beyond the explicit cubes.

    centers : (M, 2) block centres (y, x), nm; sizes : (M,) block size n (cubes per side);
    volume : mean volume per lattice site (occupancy × ⟨a³⟩), nm³; pitch : nm.

    Examples
    --------
    Two blocks, of 1 and 3 cubes per side, in a film of 17 nm pitch with 3375 nm³ (a 15 nm
    cube) per site; each block's volume n² V̄ in nm³:

    >>> film = FarFilm(np.array([[0.0, 100.0], [0.0, 200.0]]), np.array([1, 3]), volume=3375.0,
    ...                pitch=17.0)
    >>> film.volumes
    array([ 3375., 30375.])
    """

    centers: np.ndarray
    sizes: np.ndarray
    volume: float
    pitch: float
    #: additions to the fine lattice's k = 0 sums (in-plane per axis, z), nm⁻³: the
    #: near-field factors of :mod:`.nearfield` change the nearest shells' coupling
    g0_shift: tuple[float, float] = (0.0, 0.0)

    @property
    def volumes(self) -> np.ndarray:
        """(M,) effective volume n² V̄ of each block (its polarisability is V_n χ minus the shift)."""
        return self.sizes.astype(float) ** 2 * self.volume

    def shifts(self) -> tuple[np.ndarray, np.ndarray]:
        """(M,) in-plane and out-of-plane diagonal shifts s_n = G₀ (1 − 1/n) / n², nm⁻³."""
        n = self.sizes.astype(float)
        g0 = square_lattice_sum() / self.pitch**3
        common = (1.0 - 1.0 / n) / n**2
        return (0.5 * g0 + self.g0_shift[0]) * common, (-g0 + self.g0_shift[1]) * common


def far_film(origin: np.ndarray, basis: np.ndarray, *, explicit: np.ndarray,
             box: tuple[float, float, float, float], film_radius: float, block_ratio: float,
             volume: float) -> FarFilm:
    """Tile the perfect lattice outside the explicit sites with blocks growing with distance.

    Parameters
    ----------
    origin : (2,) lattice origin (y, x) nm; basis : (2, 2) rows a1, a2 (nm).
    explicit : (K, 2) int lattice indices (i, j) of the sites modelled explicitly (occupied or
        not); the blocks never cover them.
    box : (y0, y1, x0, x1) nm, the scanned field; distances are measured to it.
    film_radius : the film's outer radius, nm from the box centre (blocks beyond are dropped).
    block_ratio : a block of n cubes per side sits at least n·pitch·block_ratio from the box.
    volume : mean volume per site, nm³.

    Returns
    -------
    FarFilm

    Examples
    --------
    A square lattice of 17 nm pitch whose 7 × 7 central sites are explicit, scanned over a
    60 nm box, continued to 300 nm; blocks grow from single cubes to 4 × 4:

    >>> explicit = np.array([(i, j) for i in range(-3, 4) for j in range(-3, 4)])
    >>> film = far_film(np.zeros(2), 17.0 * np.eye(2), explicit=explicit, box=(-30.0, 30.0, -30.0, 30.0),
    ...                 film_radius=300.0, block_ratio=2.0, volume=3375.0)
    >>> int(film.sizes.min()), int(film.sizes.max())
    (1, 4)
    """
    pitch = float(np.hypot(*basis[0]))
    y0, y1, x0, x1 = box
    centre = np.array([(y0 + y1) / 2, (x0 + x1) / 2])
    ic = np.rint(np.linalg.solve(basis.T, centre - origin)).astype(int)
    explicit = np.asarray(explicit, dtype=int).reshape(-1, 2)
    taken = set(map(tuple, explicit))
    lo = explicit.min(axis=0) if len(explicit) else ic
    hi = explicit.max(axis=0) if len(explicit) else ic - 1
    r_idx = int(np.ceil(film_radius / pitch)) + 1
    top = 1 << int(np.ceil(np.log2(2 * r_idx + 1)))
    out_c, out_n = [], []

    def box_distance(p):
        dy = max(y0 - p[0], 0.0, p[0] - y1)
        dx = max(x0 - p[1], 0.0, p[1] - x1)
        return np.hypot(dy, dx)

    stack = [(ic[0] - top // 2, ic[1] - top // 2, top)]
    while stack:
        i0, j0, n = stack.pop()
        mid = origin + (i0 + 0.5 * (n - 1)) * basis[0] + (j0 + 0.5 * (n - 1)) * basis[1]
        half_diag = 0.5 * np.sqrt(2.0) * n * pitch
        if np.hypot(*(mid - centre)) - half_diag > film_radius:
            continue
        if n == 1:
            if (i0, j0) not in taken and np.hypot(*(mid - centre)) <= film_radius:
                out_c.append(mid)
                out_n.append(1)
            continue
        overlaps = not (i0 > hi[0] or i0 + n - 1 < lo[0] or j0 > hi[1] or j0 + n - 1 < lo[1])
        far_enough = n * pitch * block_ratio <= box_distance(mid) - half_diag
        if not overlaps and far_enough:
            # the rim is drawn at the block's own scale: kept when its centre is inside
            if np.hypot(*(mid - centre)) <= film_radius:
                out_c.append(mid)
                out_n.append(n)
            continue
        h = n // 2
        stack.extend([(i0, j0, h), (i0 + h, j0, h), (i0, j0 + h, h), (i0 + h, j0 + h, h)])
    centers = np.array(out_c, dtype=float).reshape(-1, 2)
    return FarFilm(centers=centers, sizes=np.array(out_n, dtype=int), volume=float(volume), pitch=pitch)


def _cheb_matrix(x: np.ndarray, lo: float, hi: float, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Chebyshev nodes (m,) on [lo, hi] and the (len(x), m) interpolation matrix at x."""
    k = np.arange(m)
    t = np.cos(np.pi * (k + 0.5) / m)
    nodes = 0.5 * (lo + hi) + 0.5 * (hi - lo) * t
    if hi - lo < 1e-9:
        return nodes[:1], np.ones((len(x), 1))
    v_nodes = chebyshev.chebvander(t, m - 1)
    v_x = chebyshev.chebvander((2.0 * x - (lo + hi)) / (hi - lo), m - 1)
    return nodes, np.linalg.solve(v_nodes.T, v_x.T).T


class EmbeddedDipoles:
    """Coupled dipoles of the explicit cubes embedded in a coarse-grained perfect film.

    Parameters
    ----------
    beam : Beam
    susceptibility : callable E -> χ(E) = α / V (the mean material, host included).
    centers, volumes, r0 : (N, 2) nm, (N,) nm³, (N,) nm: the explicit cubes.
    film : FarFilm, the far film (may be empty).
    far_nodes : Chebyshev nodes per axis for the far sites' beam field over the scan.
    sides : (N,) nm, optional: the explicit cubes' sides. Given, pairs of cubes (explicit, and
        single-cube film sites with side ``film_side``) couple through the near-field-corrected
        tensor of :mod:`.nearfield`; blocks of several cubes keep the plain dipole field.
    rotations : (N,) rad, optional, and film_rotation: the cubes' in-plane rotations (the
        near-field factors depend on the pair axis relative to the cube axes).
    site_susceptibilities : sequence of N callables E -> χ_i(E), optional: each explicit cube's
        own material (the film keeps ``susceptibility``). The sites then no longer share one
        χ(E), so :meth:`loss` solves the coupled system exactly at every energy (dense, minutes
        for a 64 × 64 scan: a reference, not for routine scenes).
    site_materials : ((N,), (N,)) eV, optional: each explicit cube's Drude ωp and γ, solved
        with ``poles`` (:class:`.oscillators.PoleModel`) as collective oscillators: one
        eigendecomposition per scene (:mod:`.oscillators`), the film with ``film_material``
        (ωp, γ); ``susceptibility`` must be that material's exact χ: the few-pole truncation is
        corrected with it (the exact mean-material response minus its few-pole version).
    threads : int, optional
        Threads that project chunks of beams in :meth:`loss` at once (default: the cores this
        process may use, at most 8). The result does not depend on it.

    The coupling is the unscreened G between the particles' total charges (as in
    :class:`.coupling.Cluster`); divide the loss by ε_m as the scene does.

    Examples
    --------
    Two 15 nm cubes (3375 nm³, r0 7.5 nm) 17 nm apart with no far film; the loss (eV⁻¹) at two
    beams (y, x in nm) and two energies (eV), shape (P, E):

    >>> from plasmonwidgets.simulate.dielectric import CubeModes
    >>> empty = FarFilm(np.zeros((0, 2)), np.zeros(0, dtype=int), volume=3375.0, pitch=17.0)
    >>> dipoles = EmbeddedDipoles(Beam(), CubeModes().susceptibility, np.array([[0.0, -8.5], [0.0, 8.5]]),
    ...                           np.full(2, 3375.0), np.full(2, 7.5), empty)
    >>> dipoles.loss(np.array([[0.0, 0.0], [12.0, 0.0]]), np.array([0.5, 0.6])).shape
    (2, 2)
    """

    def __init__(self, beam: Beam, susceptibility, centers, volumes, r0, film: FarFilm, far_nodes: int = 14,
                 sides=None, film_side: float | None = None, rotations=None, film_rotation: float = 0.0,
                 site_susceptibilities=None, site_materials=None, poles=None, film_material=None,
                 threads: int | None = None):
        self.beam = beam
        self.threads = threads
        self.site_susceptibilities = site_susceptibilities
        self.susceptibility = susceptibility
        near = np.asarray(centers, float).reshape(-1, 2)
        self.n_near = len(near)
        self.centers = np.concatenate([near, film.centers])
        vol = np.concatenate([np.asarray(volumes, float), film.volumes])
        self.r0 = np.concatenate([np.asarray(r0, float), np.full(len(film.sizes), film.pitch / 2)])
        sp, sz = film.shifts()
        if sides is None:
            g_plane, g_z = coupling_matrices(self.centers)
        else:
            block_side = np.where(film.sizes == 1, np.nan if film_side is None else film_side, np.nan)
            rot = np.concatenate([np.zeros(len(near)) if rotations is None else np.asarray(rotations, float),
                                  np.full(len(film.sizes), film_rotation)])
            g_plane, g_z = corrected_coupling(self.centers, np.concatenate([np.asarray(sides, float),
                                                                            block_side]), rot)
        g_plane[np.diag_indices_from(g_plane)] += np.repeat(np.concatenate([np.zeros(self.n_near), sp]), 2)
        g_z[np.diag_indices_from(g_z)] += np.concatenate([np.zeros(self.n_near), sz])
        self.far_nodes = int(far_nodes)
        if site_susceptibilities is not None:
            if len(site_susceptibilities) != self.n_near:
                raise ValueError(f"got {len(site_susceptibilities)} site susceptibilities for "
                                 f"{self.n_near} explicit cubes")
            self._g_plane, self._g_z, self._vol = g_plane, g_z, vol
            return
        self.oscillators = site_materials is not None
        if self.oscillators:
            if poles is None or film_material is None:
                raise ValueError("site_materials needs poles (a PoleModel) and film_material (ωp, γ)")
            wp, gam = (np.concatenate([np.asarray(x, float), np.full(len(film.sizes), float(f))])
                       for x, f in zip(site_materials, film_material))
            if len(wp) != len(self.centers):
                raise ValueError(f"got {len(site_materials[0])} site materials for {self.n_near} "
                                 "explicit cubes")
            self._poles, self._film_material = poles, tuple(float(f) for f in film_material)
            lam_p, self._gam_plane, w_p = oscillator_modes(
                g_plane, np.repeat(vol, 2), np.repeat(wp, 2), np.repeat(gam, 2), poles)
            lam_z, self._gam_z, w_z = oscillator_modes(g_z, vol, wp, gam, poles)
            self.n_osc_plane, self.n_osc_z = len(lam_p), len(lam_z)
        s_plane, s_z = np.sqrt(np.repeat(vol, 2)), np.sqrt(vol)
        self.lam_plane, u = np.linalg.eigh(s_plane[:, None] * g_plane * s_plane[None, :])
        self._w_plane = s_plane[:, None] * u
        self.lam_z, u = np.linalg.eigh(s_z[:, None] * g_z * s_z[None, :])
        self._w_z = s_z[:, None] * u
        if self.oscillators:
            # the few-pole truncation, measured on the mean material by the exact eigen path, is
            # subtracted: both share these eigenvectors, so the correction costs their projection
            self.lam_plane = np.concatenate([lam_p, self.lam_plane])
            # (K + 1)× the modes to project every beam on: single precision halves that cost
            # (relative error ~1e-7 per coefficient, far below the oscillators' own 1e-4)
            self._w_plane = np.hstack([w_p, self._w_plane]).astype(np.float32)
            self.lam_z = np.concatenate([lam_z, self.lam_z])
            self._w_z = np.hstack([w_z, self._w_z]).astype(np.float32)

    def _spectral_weights(self, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(E, M) Im of each mode's resolvent, in-plane and out-of-plane, before the beam factors."""
        e = energy[:, None]
        if not self.oscillators:
            inv_chi = 1.0 / self.susceptibility(energy)[:, None]
            return (np.imag(1.0 / (inv_chi - self.lam_plane[None, :])),
                    np.imag(1.0 / (inv_chi - self.lam_z[None, :])))
        inv_exact = 1.0 / self.susceptibility(energy)[:, None]
        inv_poles = 1.0 / self._poles.susceptibility(energy, *self._film_material)[:, None]
        out = []
        for lam, gam, n_osc in ((self.lam_plane, self._gam_plane, self.n_osc_plane),
                                (self.lam_z, self._gam_z, self.n_osc_z)):
            osc = np.imag(1.0 / (lam[None, :n_osc] - e**2 - 1j * e * gam[None, :]))
            mean = lam[None, n_osc:]
            out.append(np.hstack([osc, np.imag(1.0 / (inv_exact - mean) - 1.0 / (inv_poles - mean))]))
        return out[0], out[1]

    def _fields(self, centers, r0, beams, e_node):
        """Reduced in-plane (P, 2N) and out-of-plane (P, N) beam fields at ``centers``."""
        off = centers[None, :, :] - beams[:, None, :]
        r_eff = regularised_distance(np.hypot(off[..., 0], off[..., 1]), r0[None, :])
        x = self.beam.q(e_node) * r_eff / self.beam.gamma
        f_plane = -(e_node * special.k1(x) / r_eff)[..., None] * off
        return f_plane.reshape(len(beams), -1), special.k0(x)

    def loss(self, beams: np.ndarray, energy: np.ndarray, n_nodes: int = 6, chunk: int = 64) -> np.ndarray:
        """(P, E) dipolar loss (eV⁻¹, before the 1/ε_m of the scene) at beams (P, 2) nm, energies (E,) eV."""
        beams = np.asarray(beams, float).reshape(-1, 2)
        energy = np.asarray(energy, float)
        if self.site_susceptibilities is not None:
            return self._dense_loss(beams, energy)
        nodes, interp = CoupledDipoles._nodes(energy, min(n_nodes, len(energy)))
        w_plane, w_z = self._spectral_weights(energy)
        w_plane = w_plane / energy[:, None] ** 2
        w_z = w_z / self.beam.gamma**2
        pref = self.beam.dipole_prefactor(energy)
        nn = self.n_near
        m = len(nodes)
        dt = self._w_plane.dtype  # float32 for the oscillators (see __init__)
        # far sites: fields on a Chebyshev grid of beam positions, projected once per ln-E node
        far_c, far_r0 = self.centers[nn:], self.r0[nn:]
        if len(far_c):
            ny, phi_y = _cheb_matrix(beams[:, 0], beams[:, 0].min(), beams[:, 0].max(), self.far_nodes)
            nx, phi_x = _cheb_matrix(beams[:, 1], beams[:, 1].min(), beams[:, 1].max(), self.far_nodes)
            grid = np.column_stack([np.repeat(ny, len(nx)), np.tile(nx, len(ny))])
            phi = (phi_y[:, :, None] * phi_x[:, None, :]).reshape(len(beams), -1)
            far_p, far_z = [], []
            for e_node in nodes:
                fp, fz = self._fields(far_c, far_r0, grid, e_node)
                far_p.append(fp.astype(dt, copy=False) @ self._w_plane[2 * nn:])
                far_z.append(fz.astype(dt, copy=False) @ self._w_z[nn:])
        out = np.empty((len(beams), len(energy)))
        if self.oscillators:
            # the (E, chunk, modes) coefficients stay below ~2e7 numbers (K + 1 times the modes)
            chunk = max(4, min(chunk, int(2e7 // (len(energy) * len(self.lam_plane)))))
            interp, w_plane, w_z = (x.astype(dt) for x in (interp, w_plane, w_z))

        def fill(start: int) -> None:
            b = beams[start:start + chunk]
            pc = len(b)
            c_plane = np.empty((m, pc, len(self.lam_plane)), dtype=dt)
            c_z = np.empty((m, pc, len(self.lam_z)), dtype=dt)
            for j, e_node in enumerate(nodes):
                fp, fz = self._fields(self.centers[:nn], self.r0[:nn], b, e_node)
                c_plane[j] = fp.astype(dt, copy=False) @ self._w_plane[:2 * nn]
                c_z[j] = fz.astype(dt, copy=False) @ self._w_z[:nn]
                if len(far_c):
                    c_plane[j] += phi[start:start + pc].astype(dt, copy=False) @ far_p[j]
                    c_z[j] += phi[start:start + pc].astype(dt, copy=False) @ far_z[j]
            cp = (interp @ c_plane.reshape(m, -1)).reshape(len(energy), pc, -1)
            cz = (interp @ c_z.reshape(m, -1)).reshape(len(energy), pc, -1)
            np.square(cp, out=cp)
            np.square(cz, out=cz)
            im = np.matmul(cp, w_plane[:, :, None])[..., 0] + np.matmul(cz, w_z[:, :, None])[..., 0]
            out[start:start + pc] = (im * pref[:, None]).T

        # one single-threaded BLAS call per core beats one multi-threaded call on matrices this small
        map_chunks(fill, len(beams), chunk, self.threads)
        return out

    def _dense_loss(self, beams: np.ndarray, energy: np.ndarray) -> np.ndarray:
        """(P, E) exact loss with per-site materials: one dense solve per energy."""
        from scipy import linalg

        n_far = len(self.centers) - self.n_near
        chi = np.concatenate([np.array([f(energy) for f in self.site_susceptibilities]),
                              np.repeat(self.susceptibility(energy)[None, :], n_far, axis=0)])
        pref = self.beam.dipole_prefactor(energy)
        out = np.empty((len(beams), len(energy)))
        for j, e in enumerate(energy):
            inv = 1.0 / (self._vol * chi[:, j])
            fp, fz = self._fields(self.centers, self.r0, beams, e)
            yp = linalg.solve(np.diag(np.repeat(inv, 2)) - self._g_plane, fp.T, check_finite=False)
            yz = linalg.solve(np.diag(inv) - self._g_z, fz.T, check_finite=False)
            im = (np.imag(np.einsum("pi,ip->p", fp, yp)) / e**2
                  + np.imag(np.einsum("pi,ip->p", fz, yz)) / self.beam.gamma**2)
            out[:, j] = im * pref[j]
        return out
