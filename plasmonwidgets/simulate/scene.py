"""Orchestrates a simulated STEM-EELS scene: geometry -> loss -> instrument -> SI + HAADF."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .beam import Beam
from .dielectric import CubeModes
from .eels import CoupledDipoles, bulk_loss
from .geometry import REGION_NAMES, GeometryParams, Layout, generate_layout, region_map
from .geometry import projected_thickness as _thickness
from .haadf import HAADFParams, block_mean, render_haadf
from .instrument import broaden, channel_average, poisson
from .instrument import zlp_tail as _zlp_tail

__all__ = ["DEFAULT_DOSE", "SIMULATOR_VERSION", "SceneConfig", "SceneResult", "simulate_scene"]

#: Bumped whenever a change alters the generated numbers (invalidates disk caches).
SIMULATOR_VERSION = "1.0"

#: Default incident electrons per SI pixel (dwell × probe current, e.g. 3 pA × 1 s).
DEFAULT_DOSE = 5.0e6


@dataclass(frozen=True)
class SceneConfig:
    """Physical constants and tuning of the simulator (all have physical units).

    geometry : particle layout; beam : E0 (keV) and collection angle θ_c (rad);
    modes : Drude material + cube modes + host ε_m; fwhm : energy resolution (eV);
    max_step : finest energy step simulated before channel averaging (eV);
    support_thickness : membrane thickness (nm); support_eps : its (complex) permittivity
    in the mid-IR, giving a weak, nearly flat loss on the support;
    zlp_amplitude : residual ZLP tail at 0.2 eV (eV⁻¹ per electron);
    oversample : fine samples per HAADF pixel for anti-aliased rendering.

    Examples
    --------
    >>> config = SceneConfig()
    >>> config.beam.e0_kev, config.fwhm              # keV, eV
    (60.0, 0.04)
    """

    geometry: GeometryParams = field(default_factory=GeometryParams)
    beam: Beam = field(default_factory=Beam)
    modes: CubeModes = field(default_factory=CubeModes)
    haadf: HAADFParams = field(default_factory=HAADFParams)
    fwhm: float = 0.040
    max_step: float = 0.015
    support_thickness: float = 10.0
    support_eps: complex = 3.0 + 0.15j
    zlp_amplitude: float = 0.01
    oversample: int = 4


@dataclass
class SceneResult:
    """Everything :func:`simulate_scene` produced (arrays in physical units).

    Attributes
    ----------
    energy : (E,) channel centres, eV.
    spectra : (h, w, E) what the detector records: counts, = Poisson(clean + tail) with
        noise, else clean + tail.
    clean : (h, w, E) expected counts of the sample's energy loss (no tail, no noise):
        dose · ΔE · Γ, with Γ the instrument-broadened loss probability (eV⁻¹).
    tail : (h, w, E) expected counts of the residual zero-loss tail (zeros without it).
    haadf : (s·h, s·w) HAADF counts (noisy when noise=True).
    haadf_clean : (s·h, s·w) noise-free HAADF.
    thickness : (h, w) probe-averaged projected particle thickness at each SI pixel, nm.
    regions : (h, w) int8 labels into ``region_names`` (see :func:`geometry.region_map`).
    region_names : list of str.
    particles : dict of arrays, centers (N, 2) (y, x) nm, sides (N,) nm, rotations (N,) rad.
    simulation : dict of JSON-serialisable scalars: every parameter used.
    zlp_a, zlp_r : (h, w) tail parameters, tail = dose·ΔE·zlp_a·E^(−zlp_r); None without tail.
    energy_offset : (h, w) eV, the energy-axis drift and jitter of each recorded spectrum
        (:func:`~.instrument.energy_drift`; the quasi-static scene's raw mode), else None.
    pixel_size : SI pixel, nm. scale : HAADF oversampling s.
    layout : the :class:`~plasmonwidgets.simulate.geometry.Layout` (not cached on disk).

    Examples
    --------
    >>> result = simulate_scene(size=24, n_energy=32)
    >>> result.spectra.shape, result.haadf.shape, result.regions.shape
    ((24, 24, 32), (24, 24), (24, 24))
    """

    energy: np.ndarray
    spectra: np.ndarray
    clean: np.ndarray
    tail: np.ndarray
    haadf: np.ndarray
    haadf_clean: np.ndarray
    thickness: np.ndarray
    regions: np.ndarray
    region_names: list[str]
    particles: dict[str, np.ndarray]
    simulation: dict
    pixel_size: float
    scale: int
    zlp_a: np.ndarray | None = None
    zlp_r: np.ndarray | None = None
    layout: Layout | None = None
    energy_offset: np.ndarray | None = None

    def to_spectrum_image(self):
        """The scene as a :class:`~plasmonwidgets.SpectrumImage` with ground truth in metadata.

        metadata keys: ``title``, ``particles``, ``regions``, ``region_names``,
        ``simulation`` and, with a ZLP tail, ``zlp_tail`` = {"a": (h, w), "r": (h, w)} (plus
        "energy_offset" (h, w) eV where the energy axis drifts).
        """
        from ..spectrum_image import SpectrumImage

        metadata = {
            "title": f"Simulated nanocube array (seed {self.simulation['seed']})",
            "particles": {k: v.copy() for k, v in self.particles.items()},
            "regions": self.regions.copy(),
            "region_names": list(self.region_names),
            "simulation": dict(self.simulation),
        }
        if self.zlp_a is not None:
            metadata["zlp_tail"] = {"a": self.zlp_a.copy(), "r": self.zlp_r.copy()}
            if self.energy_offset is not None:
                metadata["zlp_tail"]["energy_offset"] = self.energy_offset.copy()
        return SpectrumImage(
            self.spectra.copy(), self.energy.copy(), self.haadf.copy(), scale=self.scale,
            pixel_size=self.pixel_size, pixel_unit="nm", metadata=metadata,
        )


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_float(name: str, value, positive: bool = True) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def validate_arguments(
    seed, size, n_energy, e_min, e_max, scale, dose, pixel_size
) -> tuple[int, int, int, float, float, int, float, float]:
    """Check simulate_scene/nanocube_array arguments; raise ValueError saying what to change."""
    seed = _check_int("seed", seed, 0)
    size = _check_int("size", size, 16)
    n_energy = _check_int("n_energy", n_energy, 2)
    scale = _check_int("scale (HAADF oversampling)", scale, 1)
    if scale > 16:
        raise ValueError(f"scale must be <= 16 (HAADF {scale}x finer than the SI), got {scale}")
    e_min = _check_float("e_min (eV)", e_min)
    e_max = _check_float("e_max (eV)", e_max)
    if e_min >= e_max:
        raise ValueError(f"e_min must be below e_max, got e_min={e_min} eV >= e_max={e_max} eV")
    if e_max > 5.0:
        raise ValueError(f"e_max must be <= 5 eV (the Drude/dipole model is for the IR), "
                         f"got {e_max}")
    dose = _check_float("dose (electrons per pixel)", dose)
    pixel_size = _check_float("pixel_size (nm)", pixel_size)
    if size > 512:
        raise ValueError(f"size must be <= 512 pixels, got {size}")
    return seed, size, n_energy, e_min, e_max, scale, dose, pixel_size


def _fine_energy_grid(e_min, e_max, n_energy, fwhm, max_step):
    """Simulation grid: channels subdivided to <= max_step and padded by 5σ of the resolution.

    Returns (fine energies, index of channel 0 in the fine grid, samples per channel).
    """
    step = (e_max - e_min) / (n_energy - 1)
    n_sub = max(1, math.ceil(step / max_step - 1e-9))
    n_sub += 1 - n_sub % 2  # odd: one fine sample sits on each channel centre
    d = step / n_sub
    pad = math.ceil(5.0 * fwhm / 2.355 / d) + n_sub
    idx = np.arange(-pad, (n_energy - 1) * n_sub + pad + 1)
    fine = e_min + idx * d
    # keep energies positive (K0/K1 and the Drude model diverge at 0); these few
    # samples only feed the low-side padding of the Gaussian broadening
    fine = np.maximum(fine, 0.5 * e_min)
    return fine, pad, n_sub, d


def _fine_maps(layout: Layout, n: int, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """(n, n) projected thickness (nm) and support coverage (0/1) at spacing-nm samples."""
    thickness = _thickness(layout, (n, n), spacing)
    c = (np.arange(n) + 0.5) * spacing
    support = (layout.edge_distance(c[:, None], c[None, :]) >= 0).astype(np.float64)
    return thickness, support


def _support_loss(cfg: SceneConfig, energy: np.ndarray) -> np.ndarray:
    """(E,) weak bulk loss of the support membrane (eV⁻¹ per electron)."""
    beam = cfg.beam
    eps = complex(cfg.support_eps)
    lam = beam.screening_length(energy)
    t = cfg.support_thickness
    t_eff = t - lam * (-np.expm1(-t / lam))
    return beam.bulk_prefactor() * t_eff * np.imag(-1.0 / eps) * beam.bulk_log_factor(energy)


def simulate_scene(
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
    config: SceneConfig | None = None,
) -> SceneResult:
    """Simulate a size×size STEM-EELS spectrum image of a disordered nanocube monolayer.

    Parameters
    ----------
    seed : int >= 0
        Fixes geometry, tail maps and noise (same seed -> identical arrays).
    size : int >= 16
        Scan is size×size pixels.
    n_energy : int >= 2
        Channels, uniformly from e_min to e_max (eV, channel centres).
    scale : int >= 1
        HAADF oversampling s: the HAADF is (s·size)×(s·size).
    dose : float > 0
        Incident electrons per SI pixel; a channel of width ΔE receives dose·ΔE·Γ counts
        on average (Γ in eV⁻¹). The default gives ~10³ counts/channel at the interior
        peak with 100 channels.
    noise : bool
        Poisson noise on spectra, Poisson + read noise on the HAADF.
    zlp_tail : bool
        Add a residual zero-loss tail A·E^(−r) with smoothly varying per-pixel A, r.
    pixel_size : float
        SI pixel in nm (default 2 nm: a 16-pixel tile spans a cube and its neighbours).
    config : SceneConfig, optional
        Physical constants and tuning.

    Returns
    -------
    SceneResult

    Examples
    --------
    A 24 x 24 scan (2 nm pixels), 32 channels from 0.2 to 1.2 eV, counts:

    >>> result = simulate_scene(seed=1, size=24, n_energy=32)
    >>> result.energy.shape, float(result.energy[0]) >= 0.2
    ((32,), True)
    """
    seed, size, n_energy, e_min, e_max, scale, dose, pixel_size = validate_arguments(
        seed, size, n_energy, e_min, e_max, scale, dose, pixel_size
    )
    cfg = config or SceneConfig()
    geo_rng, tail_rng, noise_rng, haadf_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    field_nm = size * pixel_size
    layout = generate_layout(geo_rng, (field_nm, field_nm), cfg.geometry)

    # --- energy-loss probability on a fine, padded grid ---------------------------------
    energy = np.linspace(e_min, e_max, n_energy)
    step = energy[1] - energy[0]
    fine, first, n_sub, d = _fine_energy_grid(e_min, e_max, n_energy, cfg.fwhm, cfg.max_step)
    centres = (np.arange(size) + 0.5) * pixel_size
    yy, xx = np.meshgrid(centres, centres, indexing="ij")
    beams = np.column_stack([yy.ravel(), xx.ravel()])
    if layout.n_particles:
        dipoles = CoupledDipoles(cfg.beam, cfg.modes, layout.centers, layout.sides**3,
                                 layout.sides / 2)
        gamma = dipoles.loss(beams, fine)
    else:
        gamma = np.zeros((len(beams), len(fine)))

    # probe-averaged thickness and support coverage of each SI pixel, from fine samples
    os_si = cfg.oversample
    thick_si, support_si = _fine_maps(layout, size * os_si, pixel_size / os_si)
    sigma = cfg.haadf.probe_sigma_nm * os_si / pixel_size
    thickness = block_mean(ndimage.gaussian_filter(thick_si, sigma), os_si)
    support = block_mean(ndimage.gaussian_filter(support_si, sigma), os_si)

    gamma += bulk_loss(cfg.beam, cfg.modes.material, thickness.ravel(), fine)
    gamma += support.ravel()[:, None] * _support_loss(cfg, fine)[None, :]
    gamma = broaden(gamma, d, cfg.fwhm)
    gamma = channel_average(gamma, first, n_sub, n_energy)
    clean = (dose * step * gamma).reshape(size, size, n_energy)

    # --- instrument -----------------------------------------------------------------
    if zlp_tail:
        tail_p, zlp_a, zlp_r = _zlp_tail(tail_rng, (size, size), energy, cfg.zlp_amplitude)
        tail = dose * step * tail_p
    else:
        tail, zlp_a, zlp_r = np.zeros_like(clean), None, None
    spectra = poisson(noise_rng, clean + tail) if noise else clean + tail
    if scale > 1:  # the HAADF grid is finer than the SI: sample the scene again
        thick_si, support_si = _fine_maps(layout, size * scale * os_si,
                                          pixel_size / (scale * os_si))
    haadf_clean, haadf = render_haadf(
        thick_si, support_si, os_si, pixel_size / scale, cfg.haadf,
        haadf_rng if noise else None,
    )
    regions = region_map(layout, (size, size), pixel_size)

    m = cfg.modes
    simulation = {
        "simulator_version": SIMULATOR_VERSION,
        "seed": seed, "size": size, "n_energy": n_energy, "e_min": e_min, "e_max": e_max,
        "scale": scale, "dose": dose, "noise": bool(noise), "zlp_tail": bool(zlp_tail),
        "pixel_size_nm": pixel_size, "n_particles": int(layout.n_particles),
        "lattice_pitch_nm": cfg.geometry.pitch, "lattice_angle_rad": layout.lattice_angle,
        "beam_energy_kev": cfg.beam.e0_kev, "collection_angle_rad": cfg.beam.theta_c,
        "eps_inf": m.material.eps_inf, "omega_p_ev": m.material.omega_p,
        "damping_ev": m.material.damping, "eps_host": m.eps_host,
        "mode_depolarisation": ",".join(f"{v:g}" for v in m.depolarisation),
        "mode_weights": ",".join(f"{v:g}" for v in m.weights),
        "fwhm_ev": cfg.fwhm, "edge_width_nm": cfg.geometry.edge_width,
        "units": "spectra: counts per channel; haadf: counts; lengths nm; energy eV",
    }
    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    return SceneResult(
        energy=energy,
        spectra=f32(spectra),
        clean=f32(clean),
        tail=f32(tail),
        haadf=f32(haadf),
        haadf_clean=f32(haadf_clean),
        thickness=f32(thickness),
        regions=regions,
        region_names=list(REGION_NAMES),
        particles=layout.particles(),
        simulation=simulation,
        pixel_size=pixel_size,
        scale=scale,
        zlp_a=zlp_a,
        zlp_r=zlp_r,
        layout=layout,
    )
