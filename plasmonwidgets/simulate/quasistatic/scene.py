"""Scene-level quasi-static simulator of a nanocube film: the built-in dataset (docs/physics.md).

The loss at every beam position is assembled from two parts that overlap nowhere:

* **Lattice (dipole) response.** Every cube of the film within the scan and an explicit
  buffer of ``extension`` pitches beyond it is a point dipole with the cube's exact
  quasi-static polarisability (from its boundary-element modes: oscillator strengths f_k
  and depolarisation factors L_k = (1 − Λ_k)/2, mean material), coupled to all others by
  the unscreened dipole field G (the coupling of the particles' total surface charges, as
  in :class:`.coupling.Cluster`). Beyond the buffer the film continues as a perfect lattice
  of mean dipoles out to ``film_radius`` pitches, coarse-grained in blocks that keep its
  long-wavelength response (:mod:`.embedding`); all is solved exactly for every beam and
  energy with one eigendecomposition (:class:`.embedding.EmbeddedDipoles`).
* **Local modes.** For every cube within ``local_radius`` of the beam, the dipole's
  isolated loss is replaced by the cube's full modal loss (all tabulated surface modes,
  corner/edge/face character, its own ωp and γ, size and rotation), from the unit cube's
  tabulated beam couplings (:mod:`.beamtable`); a smooth taper hands over to the dipole
  between the two radii.

With ``depletion`` > 0 each cube's free carriers fill only a core of side a − 2·depletion (the
carrier-depleted surface layer of doped-oxide nanocrystals): the core's dipole and size enter
the lattice, the near-field factors and the local modes, which weakens the film's collective
mode (docs/physics.md, "What sets the local variety of the spectra").

Plus the weak bulk loss of beams through a cube and of the support, the instrument
(40 meV resolution, Poisson noise, optional zero-loss tail) and the HAADF image. The film
edge has bare support beyond it: the support membrane continues past the last cubes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy import ndimage, special

from ..beam import Beam
from ..dielectric import CubeModes, Drude
from ..eels import bulk_loss, single_particle_loss
from ..geometry import REGION_NAMES, GeometryParams, Layout, generate_layout, region_map
from ..geometry import projected_thickness as _thickness
from ..haadf import HAADFParams, block_mean, render_haadf
from ..instrument import broaden, channel_average, energy_drift, poisson, shift_spectra
from ..instrument import zlp_tail as _zlp_tail
from ..scene import DEFAULT_DOSE, SceneResult, _fine_energy_grid, validate_arguments
from ._blas import single_threaded_blas
from .beamtable import CouplingTable, coupling_table
from .embedding import EmbeddedDipoles, FarFilm, far_film
from .loss import loss_prefactor, response_lambda
from .modes import cube_modes
from .nearfield import lattice_sum_shift
from .oscillators import pole_model

__all__ = ["QS_REGION_NAMES", "QS_SIMULATOR_VERSION", "QuasistaticScene", "QuasistaticSceneConfig",
           "quasistatic_scene", "simulate_quasistatic_scene"]

#: Bumped whenever a change alters the generated numbers.
QS_SIMULATOR_VERSION = "qs-1.0"

#: Region labels: as the dipole scene's, with bare support (not vacuum) beyond the film edge.
QS_REGION_NAMES = tuple("support" if n == "vacuum" else n for n in REGION_NAMES)


@dataclass(frozen=True)
class QuasistaticSceneConfig:
    """Physics and tuning of the quasi-static scene (lengths nm, energies eV).

    geometry : layout of the scanned film (``margin``: cubes kept exactly, in pitches).
    extension : pitches of explicit (jittered, own size, vacancies) dipoles beyond the near zone.
    film_radius : the film's outer radius in pitches from the scan centre; between the explicit
        cubes and this radius it is a perfect lattice of mean dipoles, coarse-grained in blocks
        (:mod:`.embedding`; ``block_ratio``: a block of n cubes per side lies ≥ n·pitch·ratio from
        the scan; ``far_nodes``: Chebyshev nodes per axis for its beam field). 0 turns it off.
    material : mean Drude material; each scanned cube draws ωp ~ N(ωp, omega_p_sd) clipped to
        ``omega_p_range`` and γ uniform in ``damping_range``.
    eps_host : effective host permittivity ε_m (support and ligands).
    rounding, n_flat, n_round : cube shape and mesh of the tabulated modes.
    table_step : grid step of the tabulated beam couplings, in cube sides.
    local_radius : (inner, outer) distance from a cube's centre, in sides, within which its
        full modes replace its dipole (tapered between the two; outer ≤ the table's 2.5).
    support_thickness, support_eps : the membrane's weak, flat loss.
    zlp_amplitude, energy_drift, energy_jitter : the raw instrument (``zlp_tail=True``): the
        residual zero-loss tail's amplitude at 0.2 eV, and the energy axis's drift over the
        scan and per-pixel jitter (eV; :func:`~..instrument.energy_drift`).
    n_nodes : Chebyshev nodes in ln E for the dipoles' beam field (6 agree with 16 to 1e-9 NMSE).
    near_field : couple neighbouring cubes through the boundary-element-calibrated pair tensor of
        :mod:`.nearfield` (longitudinal coupling × ~0.65, transverse × ~1.15 at 1–5 nm gaps)
        instead of the plain point-dipole field (docs/physics.md, "How strong is the film's
        coupling"). On by default; False gives the point-dipole field.
    depletion : width (nm) of the carrier-depleted surface layer of each cube. Doped-oxide
        nanocrystals carry their free electrons in a core of side a − 2·depletion inside an
        undoped, non-plasmonic shell; the core sets the dipole volume of the lattice, the
        near-field factors' side and the local modes' size, while the single-cube resonance
        keeps the fitted Drude parameters (they describe whole dispersed nanocrystals). Default 1.5 nm
        (docs/physics.md, "What sets the local variety"); 0 is a homogeneous cube.
    lattice_materials : give every explicit cube its own Drude ωp and γ in the coupled lattice
        too (buffer cubes draw theirs from the same distributions), not only in its local modes.
        False: the mean material. ``"oscillators"`` (default): the cubes' responses as
        ``lattice_poles`` Lorentz oscillators with one eigendecomposition per scene
        (:mod:`.oscillators`; the pole truncation is corrected with the mean material's exact
        response, per-cube γ enters each collective mode to first order); 2–4× the mean
        material's time. True or ``"dense"``: the exact reference, a dense solve per energy
        (minutes for 64 × 64).
    lattice_poles : poles per cube for ``"oscillators"`` (None: all ~15, exact but far too large
        for a scene; 2 miss half the per-cube effect, 3 reproduce the dense solve to ~1e-4 NMSE).
    oscillator_nodes : ``n_nodes`` for ``"oscillators"``, whose beam projections are (poles + 1)×
        the mean path's: 4 nodes keep 64 × 64 within budget and change the NMSE to the dense
        solve from 9.0e-5 to 9.8e-5 (median, test scene).

    Examples
    --------
    The earlier, homogeneous film (plain dipole coupling, no depleted shell, the mean material
    in the lattice); the scene itself needs the cube's boundary-element modes and coupling
    table (cached on disk after the first run):

    >>> cfg = QuasistaticSceneConfig(near_field=False, depletion=0.0, lattice_materials=False)
    >>> cfg.eps_host, cfg.film_radius
    (2.0, 100.0)
    >>> scene = simulate_quasistatic_scene(seed=0, size=32, n_energy=40, config=cfg)  # doctest: +SKIP
    """

    geometry: GeometryParams = field(default_factory=GeometryParams)
    extension: float = 4.0
    beam: Beam = field(default_factory=Beam)
    material: Drude = field(default_factory=Drude)
    omega_p_sd: float = 0.08
    omega_p_range: tuple[float, float] = (1.5, 1.95)
    damping_range: tuple[float, float] = (0.07, 0.13)
    eps_host: float = 2.0
    rounding: float = 0.1
    n_flat: int = 4
    n_round: int = 2
    table_step: float = 0.05
    local_radius: tuple[float, float] = (1.4, 2.4)
    haadf: HAADFParams = field(default_factory=HAADFParams)
    fwhm: float = 0.040
    max_step: float = 0.015
    support_thickness: float = 10.0
    support_eps: complex = 3.0 + 0.15j
    zlp_amplitude: float = 0.01
    energy_drift: float = 0.010
    energy_jitter: float = 0.003
    oversample: int = 4
    n_nodes: int = 6
    film_radius: float = 100.0
    block_ratio: float = 2.0
    far_nodes: int = 14
    near_field: bool = True
    depletion: float = 1.5
    lattice_materials: bool | str = "oscillators"
    lattice_poles: int | None = 3
    oscillator_nodes: int = 4


def dipole_modes(cfg: QuasistaticSceneConfig, material: Drude | None = None) -> CubeModes:
    """The cube's polarisability as a sum over its dipole-active boundary-element modes.

    Weights are the orientation-averaged oscillator strengths f_k (> 0), depolarisation
    factors L_k = (1 − Re Λ_k)/2; the static polarisability of the mesh is reproduced to
    the strengths dropped (< 1 %).
    """
    modes = cube_modes(rounding=cfg.rounding, n_flat=cfg.n_flat, n_round=cfg.n_round)
    f = modes.dipole_strengths().mean(axis=1)
    keep = f > 1e-4
    lam = modes.eigenvalues.real[keep]
    return CubeModes(depolarisation=tuple((1.0 - lam) / 2.0), weights=tuple(f[keep] / f[keep].sum()),
                     eps_host=cfg.eps_host, material=material or cfg.material)


# --- geometry ------------------------------------------------------------------------------

def _lattice(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Origin (2,) and basis rows (2, 2) of the (unjittered) lattice behind ``layout.sites``."""
    pitch, angle = layout.params.pitch, layout.lattice_angle
    basis = pitch * np.array([[np.sin(angle), np.cos(angle)], [np.cos(angle), -np.sin(angle)]])
    ref = layout.sites[0]
    ij = np.rint(np.linalg.solve(basis.T, (layout.sites - ref).T).T)
    origin = ref + np.mean(layout.sites - ref - ij @ basis, axis=0)
    return origin, basis


def far_particles(layout: Layout, extension: float, rng_seed: int) -> dict[str, np.ndarray]:
    """Cubes of the lattice continued ``extension`` pitches beyond the near zone.

    Drawn ring by ring (in lattice index around the scan centre) from one stream, so a
    larger extension keeps every cube of a smaller one: convergence tests compare like with
    like. Returns centers (N, 2) (y, x), sides (N,) nm, rotations (N,) rad, and ``sites``
    (K, 2) int: the lattice indices of every site within the reach, occupied or not (the
    near zone's included), which the coarse-grained far film leaves out.
    """
    gp = layout.params
    height, width = layout.field
    near = gp.margin * gp.pitch
    reach = near + extension * gp.pitch
    origin, basis = _lattice(layout)
    n_max = int(np.ceil((np.hypot(height, width) / 2 + reach) / gp.pitch)) + 1
    rng = np.random.default_rng(rng_seed)
    out, sites = [], []
    ic = np.rint(np.linalg.solve(basis.T, np.array([height, width]) / 2 - origin))
    for r in range(n_max + 1):
        ring = [(i, j) for i in range(-r, r + 1) for j in range(-r, r + 1) if max(abs(i), abs(j)) == r]
        ij = np.array(ring, dtype=float).reshape(-1, 2) + ic
        draws = rng.random((len(ij), 5))
        c = origin + ij @ basis + gp.jitter * np.sqrt(2) * special.erfinv(2 * draws[:, :2] - 1)
        in_near = (c > -near).all(axis=1) & (c[:, 0] < height + near) & (c[:, 1] < width + near)
        in_far = (c > -reach).all(axis=1) & (c[:, 0] < height + reach) & (c[:, 1] < width + reach)
        occupied = draws[:, 2] >= np.mean(gp.vacancy_fraction)
        side = np.clip(gp.side_mean + gp.side_sd * np.sqrt(2) * special.erfinv(2 * draws[:, 3] - 1),
                       *gp.side_range)
        rot = layout.lattice_angle + gp.rotation_sd * np.sqrt(2) * special.erfinv(2 * draws[:, 4] - 1)
        sel = in_far & ~in_near & occupied
        out.append(np.column_stack([c[sel], side[sel], rot[sel]]))
        sites.append(ij[in_far].astype(int))
    arr = np.concatenate(out) if out else np.zeros((0, 4))
    return {"centers": arr[:, :2], "sides": arr[:, 2], "rotations": arr[:, 3],
            "sites": np.concatenate(sites) if sites else np.zeros((0, 2), int)}


def _materials(rng: np.random.Generator, n: int, cfg: QuasistaticSceneConfig):
    """Per-cube ωp (N(ωp, sd) clipped) and γ (uniform), eV."""
    wp = np.clip(rng.normal(cfg.material.omega_p, cfg.omega_p_sd, n), *cfg.omega_p_range)
    gam = rng.uniform(*cfg.damping_range, n)
    return wp, gam


def _local_loss(table: CouplingTable, cfg: QuasistaticSceneConfig, dip: CubeModes, layout: Layout,
                omega_p: np.ndarray, damping: np.ndarray, centres: np.ndarray, pixels: np.ndarray,
                pixel_size: float, energy: np.ndarray, sides: np.ndarray) -> np.ndarray:
    """(K, E) Σ over cubes near each beam of taper × (full modal loss − isolated dipole loss).

    ``pixels`` (K, 2) int: the SI pixels (row, col) of the beams, ``centres`` (size,) nm the
    pixel centres. ``sides`` (N,) nm: the plasmonic cores' sides (the cubes' sides without
    depletion); the subtracted dipole keeps the lattice's regularisation radius, half the
    cube's full side.
    """
    beam = cfg.beam
    size = len(centres)
    # each cube sees its beams in row-major order, as a box of the whole scan would list them
    order = np.argsort(pixels[:, 0] * size + pixels[:, 1], kind="stable")
    rows, cols = pixels[order, 0], pixels[order, 1]
    out = np.zeros((len(pixels), len(energy)))
    q = beam.q(energy)
    r_in, r_out = cfg.local_radius
    pref = loss_prefactor(beam) / cfg.eps_host
    for p, ((cy, cx), a, th, r0) in enumerate(zip(layout.centers, sides, layout.rotations, layout.sides / 2)):
        reach = r_out * a
        r0_, r1_ = max(int((cy - reach) / pixel_size), 0), min(int((cy + reach) / pixel_size) + 2, size)
        c0_, c1_ = max(int((cx - reach) / pixel_size), 0), min(int((cx + reach) / pixel_size) + 2, size)
        if r0_ >= r1_ or c0_ >= c1_:
            continue
        box = np.flatnonzero((rows >= r0_) & (rows < r1_) & (cols >= c0_) & (cols < c1_))
        off = np.column_stack([centres[rows[box]] - cy, centres[cols[box]] - cx])
        dist = np.hypot(off[:, 0], off[:, 1]) / a
        sel = dist < r_out
        if not sel.any():
            continue
        off, dist = off[sel], dist[sel]
        idx = order[box[sel]]
        taper = np.clip((r_out - dist) / (r_out - r_in), 0.0, 1.0)
        taper = np.sin(0.5 * np.pi * taper) ** 2
        mat = Drude(cfg.material.eps_inf, float(omega_p[p]), float(damping[p]))
        lam = response_lambda(mat.eps(energy), cfg.eps_host)
        # A loss probability is never negative; the bare line source used for beams through the
        # cube (beamtable.py) gives small negative values 4-7 nm from a 15 nm cube's centre.
        full = np.clip(pref * table.loss(off, side=a, rotation=th, q=q, lam=lam), 0.0, None)
        iso = single_particle_loss(beam, dip, a**3, dist * a, energy, r0=r0) / cfg.eps_host
        out[idx] += taper[:, None] * (full - iso)
    return out


# --- the scene -----------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class QuasistaticScene:
    """One quasi-static scene, set up: all that does not depend on which beams are evaluated.

    Built once by :func:`quasistatic_scene` (layout, materials, coupling table, the embedded
    dipole lattice with its eigendecomposition, thickness maps). :meth:`expected_counts` then
    gives the noiseless spectra at any SI pixels at a cost proportional to their number;
    :func:`simulate_quasistatic_scene` is it at every pixel, plus the instrument's noise.

    Attributes
    ----------
    seed, size, n_energy, e_min, e_max, scale, dose, pixel_size :
        The checked arguments, as for :func:`simulate_quasistatic_scene`.
    config : QuasistaticSceneConfig
        The physics.
    seeds : tuple of 8 np.random.SeedSequence
        The scene's streams: geometry, zero-loss tail, spectrum noise, HAADF, materials, buffer
        cubes, buffer materials, energy drift.
    layout : Layout
        The scanned film's cubes (N of them); ``far``: the buffer cubes (:func:`far_particles`).
    omega_p, damping : (N,) float
        Each scanned cube's ωp and γ, eV.
    energy : (E,) float
        Channel centres, eV (``fine``, ``first``, ``n_sub``, ``d``: the simulation grid).
    thickness : (size, size) float
        Probe-averaged projected thickness of each SI pixel, nm (``thick_si``: oversampled, unblurred).
    lattice : EmbeddedDipoles or None
        The coupled film (None for a scene without cubes); ``film``: its coarse-grained far part.

    Examples
    --------
    >>> scene = quasistatic_scene(seed=1, size=16, n_energy=24)                # doctest: +SKIP
    >>> scene.expected_counts([[0, 0], [7, 9]]).shape                          # doctest: +SKIP
    (2, 24)
    """

    seed: int
    size: int
    n_energy: int
    e_min: float
    e_max: float
    scale: int
    dose: float
    pixel_size: float
    config: QuasistaticSceneConfig
    seeds: tuple
    layout: Layout
    far: dict
    omega_p: np.ndarray
    damping: np.ndarray
    dip: CubeModes
    table: CouplingTable
    energy: np.ndarray
    fine: np.ndarray
    first: int
    n_sub: int
    d: float
    lattice: EmbeddedDipoles | None
    film: FarFilm | None
    n_nodes: int
    thick_si: np.ndarray
    thickness: np.ndarray

    @property
    def centres(self) -> np.ndarray:
        """(size,) SI pixel centres along either axis, nm."""
        return (np.arange(self.size) + 0.5) * self.pixel_size

    @property
    def step(self) -> float:
        """Channel width, eV."""
        return self.energy[1] - self.energy[0]

    def all_pixels(self) -> np.ndarray:
        """(size², 2) int64 every SI pixel (row, col), row-major."""
        rows, cols = np.divmod(np.arange(self.size * self.size, dtype=np.int64), self.size)
        return np.column_stack([rows, cols])

    def expected_counts(self, pixels) -> np.ndarray:
        """Noiseless counts (K, E) float64 per channel at SI pixels ``pixels`` (K, 2) (row, col).

        The lattice, local-mode and bulk losses are evaluated at these beams only (cost ∝ K).
        The whole scan in row-major order gives :func:`simulate_quasistatic_scene`'s ``clean``
        exactly; a subset agrees with it to float32 rounding (the film's oscillator solve is
        float32 and its matrix products are blocked by batch).

        Examples
        --------
        >>> scene = quasistatic_scene(seed=1, size=16, n_energy=24)            # doctest: +SKIP
        >>> scene.expected_counts(np.array([[3, 4]])).shape                     # doctest: +SKIP
        (1, 24)
        """
        pix = self._pixels(pixels)
        cfg, centres = self.config, self.centres
        if len(pix) == 0:
            return np.zeros((0, self.n_energy))
        rows, cols = pix[:, 0], pix[:, 1]
        gamma = np.zeros((len(pix), len(self.fine)))
        with single_threaded_blas():
            if self.lattice is not None:
                beams = _with_scan_corners(np.column_stack([centres[rows], centres[cols]]), centres)
                gamma += self.lattice.loss(beams, self.fine, n_nodes=self.n_nodes)[:len(pix)] / cfg.eps_host
                gamma += _local_loss(self.table, cfg, self.dip, self.layout, self.omega_p, self.damping,
                                     centres, pix, self.pixel_size, self.fine,
                                     sides=self.layout.sides - 2.0 * cfg.depletion)
        # the volume plasmon lives where the free carriers are: the depleted shell adds no bulk loss
        core = np.clip(self.thickness - 2.0 * cfg.depletion, 0.0, None) if cfg.depletion else self.thickness
        points = np.column_stack([centres[rows], centres[cols]])
        gamma += _bulk(cfg, self.layout, self.omega_p, self.damping, core[rows, cols], points, self.fine)
        gamma += _support_loss(cfg, self.fine)[None, :]
        gamma = np.clip(gamma, 0.0, None)  # interpolation can leave −1e-9 far from any cube
        gamma = broaden(gamma, self.d, cfg.fwhm)
        gamma = channel_average(gamma, self.first, self.n_sub, self.n_energy)
        return self.dose * self.step * gamma

    def haadf(self, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(clean, recorded) HAADF images (size·scale,)² float64, counts (recorded: with noise)."""
        cfg, os_si = self.config, self.config.oversample
        thick = self.thick_si
        if self.scale > 1:
            thick = _thickness(self.layout, (self.size * self.scale * os_si,) * 2,
                               self.pixel_size / (self.scale * os_si))
        rng = np.random.default_rng(self.seeds[3]) if noise else None
        return render_haadf(thick, np.ones_like(thick), os_si, self.pixel_size / self.scale, cfg.haadf, rng)

    def _pixels(self, pixels) -> np.ndarray:
        arr = np.asarray(pixels)
        if arr.size == 0:
            return np.zeros((0, 2), np.int64)
        if arr.ndim != 2 or arr.shape[1] != 2 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"pixels must be (K, 2) integer (row, col), got {arr.dtype} {arr.shape}")
        pix = arr.astype(np.int64)
        if pix.min() < 0 or pix.max() >= self.size:
            raise ValueError(f"pixels must lie in 0..{self.size - 1}, got {pix.min()}..{pix.max()}")
        return pix


def quasistatic_scene(
    seed: int = 0,
    size: int = 96,
    n_energy: int = 100,
    e_min: float = 0.2,
    e_max: float = 1.2,
    scale: int = 1,
    dose: float = DEFAULT_DOSE,
    pixel_size: float = 2.0,
    config: QuasistaticSceneConfig | None = None,
) -> QuasistaticScene:
    """Set up a scene of :func:`simulate_quasistatic_scene` without evaluating any beam.

    Arguments as there. The expensive per-beam work is left to
    :meth:`QuasistaticScene.expected_counts`, so spectra at a few pixels cost a fraction of
    the scene (the lattice's eigendecomposition is paid here, once).

    Examples
    --------
    >>> scene = quasistatic_scene(seed=1, size=16, n_energy=24)                # doctest: +SKIP
    >>> full = simulate_quasistatic_scene(seed=1, size=16, n_energy=24)         # doctest: +SKIP
    >>> np.allclose(scene.expected_counts([[2, 5]])[0], full.clean[2, 5], rtol=1e-5)  # doctest: +SKIP
    True
    """
    seed, size, n_energy, e_min, e_max, scale, dose, pixel_size = validate_arguments(
        seed, size, n_energy, e_min, e_max, scale, dose, pixel_size)
    cfg = config or QuasistaticSceneConfig()
    seeds = np.random.SeedSequence(seed).spawn(8)  # the first seven as before: same scenes
    geo_rng, mat_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[4])
    far_seed = int(seeds[5].generate_state(1)[0])
    field_nm = size * pixel_size
    layout = generate_layout(geo_rng, (field_nm, field_nm), cfg.geometry)
    far = far_particles(layout, cfg.extension, far_seed)
    if not 0.0 <= cfg.depletion < 0.25 * cfg.geometry.side_range[0]:
        raise ValueError(f"depletion must be in [0, a quarter of the smallest side "
                         f"{0.25 * cfg.geometry.side_range[0]:g} nm), got {cfg.depletion!r}")
    omega_p, damping = _materials(mat_rng, layout.n_particles, cfg)
    dip = dipole_modes(cfg)
    table = coupling_table(rounding=cfg.rounding, n_flat=cfg.n_flat, n_round=cfg.n_round, step=cfg.table_step)
    energy = np.linspace(e_min, e_max, n_energy)
    fine, first, n_sub, d = _fine_energy_grid(e_min, e_max, n_energy, cfg.fwhm, cfg.max_step)

    lattice, film = None, None
    n_nodes = cfg.oscillator_nodes if _lattice_mode(cfg.lattice_materials) == "oscillators" else cfg.n_nodes
    if layout.n_particles:
        with single_threaded_blas():
            lattice, film = _coupled_film(cfg, layout, far, omega_p, damping, dip, seeds[6], field_nm,
                                          (e_min, e_max))

    # probe-averaged thickness of each SI pixel; the support is everywhere (no vacuum)
    os_si = cfg.oversample
    thick_si = _thickness(layout, (size * os_si, size * os_si), pixel_size / os_si)
    sigma = cfg.haadf.probe_sigma_nm * os_si / pixel_size
    thickness = block_mean(ndimage.gaussian_filter(thick_si, sigma), os_si)
    return QuasistaticScene(
        seed=seed, size=size, n_energy=n_energy, e_min=e_min, e_max=e_max, scale=scale, dose=dose,
        pixel_size=pixel_size, config=cfg, seeds=tuple(seeds), layout=layout, far=far, omega_p=omega_p,
        damping=damping, dip=dip, table=table, energy=energy, fine=fine, first=first, n_sub=n_sub, d=d,
        lattice=lattice, film=film, n_nodes=n_nodes, thick_si=thick_si, thickness=thickness)


def _coupled_film(cfg: QuasistaticSceneConfig, layout: Layout, far: dict, omega_p, damping, dip: CubeModes,
                  material_seed, field_nm: float, energy_range) -> tuple[EmbeddedDipoles, FarFilm]:
    """The explicit cubes and the far film as one :class:`.embedding.EmbeddedDipoles` (solved once)."""
    all_c = np.concatenate([layout.centers, far["centers"]])
    all_a = np.concatenate([layout.sides, far["sides"]])
    core = all_a - 2.0 * cfg.depletion  # the plasmonic core of each cube
    film = _far_film(layout, far, cfg, field_nm)
    near_kw = {}
    if cfg.near_field:
        near_kw = {"sides": core, "film_side": cfg.geometry.side_mean - 2.0 * cfg.depletion,
                   "rotations": np.concatenate([layout.rotations, far["rotations"]]),
                   "film_rotation": layout.lattice_angle}
    mode = _lattice_mode(cfg.lattice_materials)
    if mode != "mean":
        wp_far, gam_far = _materials(np.random.default_rng(material_seed), len(far["sides"]), cfg)
        wp_all, gam_all = np.concatenate([omega_p, wp_far]), np.concatenate([damping, gam_far])
    if mode == "dense":
        near_kw["site_susceptibilities"] = [
            replace(dip, material=Drude(cfg.material.eps_inf, float(w), float(g))).susceptibility
            for w, g in zip(wp_all, gam_all)]
    elif mode == "oscillators":
        near_kw.update(site_materials=(wp_all, gam_all), film_material=(cfg.material.omega_p,
                                                                        cfg.material.damping),
                       poles=pole_model(dip, cfg.lattice_poles, omega_p_range=cfg.omega_p_range,
                                        damping_range=cfg.damping_range, energy_range=energy_range))
    lattice = EmbeddedDipoles(cfg.beam, dip.susceptibility, all_c, core**3, all_a / 2, film,
                              far_nodes=cfg.far_nodes, **near_kw)
    return lattice, film


def _with_scan_corners(beams: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``beams`` (K, 2) nm, followed by the scan's two extreme corners unless they span it already.

    The far film's beam field is interpolated on a Chebyshev grid over the beams' bounding box
    (:meth:`.embedding.EmbeddedDipoles.loss`); fixing that box to the whole scan's makes a
    subset's spectra those of the full scene (and keeps a single beam's box from vanishing).
    """
    lo, hi = centres[0], centres[-1]
    if (beams.min(axis=0) == lo).all() and (beams.max(axis=0) == hi).all():
        return beams
    return np.concatenate([beams, [[lo, lo], [hi, hi]]])


def simulate_quasistatic_scene(
    seed: int = 0,
    size: int = 96,
    n_energy: int = 100,
    e_min: float = 0.2,
    e_max: float = 1.2,
    scale: int = 1,
    dose: float = DEFAULT_DOSE,
    noise: bool = True,
    zlp_tail: bool = False,
    pixel_size: float = 2.0,
    config: QuasistaticSceneConfig | None = None,
) -> SceneResult:
    """Simulate a size×size STEM-EELS spectrum image of a nanocube film with surface modes.

    Arguments as :func:`plasmonwidgets.simulate.simulate_scene`; ``config`` holds the physics.
    The result's ``particles`` add per-cube ``omega_p`` and ``damping`` (eV); the far lattice
    (beyond one pitch outside the scan) is summarised in ``simulation``. The work is
    :func:`quasistatic_scene` then :meth:`QuasistaticScene.expected_counts` at every pixel.

    Examples
    --------
    >>> r = simulate_quasistatic_scene(seed=1, size=16, n_energy=24, noise=False)
    >>> r.spectra.shape
    (16, 16, 24)
    """
    scene = quasistatic_scene(seed, size, n_energy, e_min, e_max, scale, dose, pixel_size, config)
    seed, size, n_energy, e_min, e_max, scale, dose, pixel_size = (
        scene.seed, scene.size, scene.n_energy, scene.e_min, scene.e_max, scene.scale, scene.dose,
        scene.pixel_size)
    cfg, layout, energy, seeds = scene.config, scene.layout, scene.energy, scene.seeds
    step = scene.step
    clean = scene.expected_counts(scene.all_pixels()).reshape(size, size, n_energy)

    if zlp_tail:  # the raw instrument: a residual zero-loss tail and a drifting energy axis
        tail_p, zlp_a, zlp_r = _zlp_tail(np.random.default_rng(seeds[1]), (size, size), energy,
                                         cfg.zlp_amplitude)
        tail = dose * step * tail_p
        offset = energy_drift(np.random.default_rng(seeds[7]), (size, size), drift=cfg.energy_drift,
                              jitter=cfg.energy_jitter)
        recorded = shift_spectra(clean + tail, energy, offset)
    else:
        tail, zlp_a, zlp_r, offset = np.zeros_like(clean), None, None, None
        recorded = clean
    spectra = poisson(np.random.default_rng(seeds[2]), recorded) if noise else recorded
    haadf_clean, haadf = scene.haadf(noise)
    regions = region_map(layout, (size, size), pixel_size)  # label 5 = beyond the film edge

    particles = layout.particles()
    particles.update(omega_p=scene.omega_p, damping=scene.damping)
    far, film, table = scene.far, scene.film, scene.table
    simulation = {
        "simulator_version": QS_SIMULATOR_VERSION, "physics": "quasistatic",
        "seed": seed, "size": size, "n_energy": n_energy, "e_min": e_min, "e_max": e_max,
        "scale": scale, "dose": dose, "noise": bool(noise), "zlp_tail": bool(zlp_tail),
        "pixel_size_nm": pixel_size, "n_particles": int(layout.n_particles),
        "n_far_particles": int(len(far["sides"])), "extension_pitches": cfg.extension,
        "film_radius_pitches": cfg.film_radius, "near_field_coupling": bool(cfg.near_field),
        "depletion_nm": cfg.depletion, "lattice_materials": _lattice_mode(cfg.lattice_materials) != "mean",
        "lattice_solver": _lattice_mode(cfg.lattice_materials),
        "n_film_blocks": int(len(film.sizes)) if film is not None else 0,
        "lattice_pitch_nm": cfg.geometry.pitch, "lattice_angle_rad": layout.lattice_angle,
        "beam_energy_kev": cfg.beam.e0_kev, "collection_angle_rad": cfg.beam.theta_c,
        "eps_inf": cfg.material.eps_inf, "omega_p_ev": cfg.material.omega_p,
        "omega_p_sd_ev": cfg.omega_p_sd, "damping_range_ev": list(cfg.damping_range),
        "eps_host": cfg.eps_host, "cube_rounding": cfg.rounding,
        "n_panels": 6 * (cfg.n_flat + 2 * cfg.n_round) ** 2, "n_mode_groups": int(len(table.eigenvalues)),
        "fwhm_ev": cfg.fwhm, "edge_width_nm": cfg.geometry.edge_width,
        "units": "spectra: counts per channel; haadf: counts; lengths nm; energy eV",
    }
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return SceneResult(
        energy=energy, spectra=f32(spectra), clean=f32(clean), tail=f32(tail), haadf=f32(haadf),
        haadf_clean=f32(haadf_clean), thickness=f32(scene.thickness), regions=regions,
        region_names=list(QS_REGION_NAMES), particles=particles, simulation=simulation,
        pixel_size=pixel_size, scale=scale, zlp_a=zlp_a, zlp_r=zlp_r, layout=layout,
        energy_offset=offset,
    )


def _lattice_mode(value) -> str:
    """'mean', 'oscillators' or 'dense' from ``QuasistaticSceneConfig.lattice_materials``."""
    if value is False:
        return "mean"
    if value is True:
        return "dense"
    if value in ("oscillators", "dense"):
        return value
    raise ValueError(f"lattice_materials must be False, True, 'oscillators' or 'dense', got {value!r}")


def _far_film(layout: Layout, far: dict, cfg: QuasistaticSceneConfig, field_nm: float) -> FarFilm:
    """The perfect, coarse-grained film beyond the explicit cubes (mean occupancy × ⟨a³⟩ per site)."""
    gp = cfg.geometry
    origin, basis = _lattice(layout)
    side = gp.side_mean - 2.0 * cfg.depletion  # the plasmonic core
    volume = (1.0 - np.mean(gp.vacancy_fraction)) * (side**3 + 3.0 * side * gp.side_sd**2)
    if cfg.film_radius <= 0:
        return FarFilm(np.zeros((0, 2)), np.zeros(0, int), volume, gp.pitch)
    radius = cfg.film_radius * gp.pitch
    film = far_film(origin, basis, explicit=far["sites"], box=(0.0, field_nm, 0.0, field_nm),
                    film_radius=radius, block_ratio=cfg.block_ratio, volume=volume)
    if cfg.near_field:
        film = replace(film, g0_shift=lattice_sum_shift(gp.pitch, side))
    return film


def _bulk(cfg: QuasistaticSceneConfig, layout: Layout, omega_p, damping, thickness, points, energy):
    """(K, E) bulk loss of beams at ``points`` (K, 2) nm through ``thickness`` (K,) nm of cube,
    with the material of the nearest cube."""
    t = np.asarray(thickness).ravel()
    out = np.zeros((len(t), len(energy)))
    hit = np.flatnonzero(t > 1e-3)
    if hit.size == 0 or layout.n_particles == 0:
        return out
    pts = points[hit]
    nearest = np.argmin(np.hypot(*(pts[:, None, :] - layout.centers[None, :, :]).transpose(2, 0, 1)), axis=1)
    for p in np.unique(nearest):
        rows = hit[nearest == p]
        mat = Drude(cfg.material.eps_inf, float(omega_p[p]), float(damping[p]))
        out[rows] = bulk_loss(cfg.beam, mat, t[rows], energy)
    return out


def _support_loss(cfg: QuasistaticSceneConfig, energy: np.ndarray) -> np.ndarray:
    """(E,) weak bulk loss of the support membrane (eV⁻¹ per electron)."""
    beam = cfg.beam
    lam = beam.screening_length(energy)
    t = cfg.support_thickness
    t_eff = t - lam * (-np.expm1(-t / lam))
    shape = np.imag(-1.0 / complex(cfg.support_eps)) * beam.bulk_log_factor(energy)
    return beam.bulk_prefactor() * t_eff * shape


def with_extension(config: QuasistaticSceneConfig, extension: float) -> QuasistaticSceneConfig:
    """A copy of ``config`` whose lattice continues ``extension`` pitches beyond the scan."""
    return replace(config, extension=float(extension))
