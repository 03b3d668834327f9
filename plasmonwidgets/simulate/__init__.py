"""Physics simulators of STEM-EELS spectrum images of doped-In₂O₃ nanocube arrays.

The built-in dataset's simulator is :mod:`.quasistatic` (boundary-element surface modes of
each cube in a converged film; :func:`.quasistatic.scene.simulate_quasistatic_scene`). This
package's own :func:`simulate_scene` is the first, point-dipole model (identical dipoles driven
by the fast-electron field on a finite patch), kept as a fast toy for unit tests
(``nanocube_array(physics="toy")``). Both return every intermediate (clean spectra, ZLP tail,
HAADF, ground-truth particles and region labels) and share the geometry, beam, HAADF and
instrument modules; :func:`plasmonwidgets.datasets.nanocube_array` wraps them with caching.
See docs/physics.md.
"""

from __future__ import annotations

import numpy as np

from .beam import Beam
from .dielectric import CubeModes, Drude
from .eels import CoupledDipoles, bulk_loss, dipole_loss_direct, single_particle_loss
from .geometry import REGION_NAMES, GeometryParams, Layout, generate_layout, region_map
from .haadf import HAADFParams
from .scene import DEFAULT_DOSE, SIMULATOR_VERSION, SceneConfig, SceneResult, simulate_scene

__all__ = [
    "DEFAULT_DOSE",
    "REGION_NAMES",
    "SIMULATOR_VERSION",
    "Beam",
    "CoupledDipoles",
    "CubeModes",
    "Drude",
    "GeometryParams",
    "HAADFParams",
    "Layout",
    "SceneConfig",
    "SceneResult",
    "bulk_loss",
    "dipole_loss_direct",
    "generate_layout",
    "region_map",
    "simulate_scene",
    "single_particle_loss",
    "summary",
]


def summary(si) -> str:
    """A short human-readable description of a (simulated) SpectrumImage.

    Lists shape, energy range, HAADF grid, number of particles and the pixel count
    of every region when the metadata holds them, and the energy of the strongest
    peak of the mean interior spectrum (above 0.3 eV, clear of any ZLP tail).

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> print(summary(pw.datasets.nanocube_array(size=24, cache=False)))  # doctest: +ELLIPSIS
    spectrum image: 24 x 24 pixels of 2 nm, 100 channels 0.2-1.2 eV
    ...
    """
    h, w = si.scan_shape
    e = np.asarray(si.energy)
    lines = [
        f"spectrum image: {h} x {w} pixels of {si.pixel_size:g} {si.pixel_unit}, "
        f"{e.size} channels {e[0]:.3g}-{e[-1]:.3g} eV",
        f"HAADF: {si.haadf.shape[0]} x {si.haadf.shape[1]} (scale {si.scale})",
    ]
    md = si.metadata
    particles = md.get("particles")
    if isinstance(particles, dict) and "sides" in particles:
        sides = np.asarray(particles["sides"])
        lines.append(f"particles: {sides.size} cubes, side {sides.mean():.1f} ± "
                     f"{sides.std():.1f} nm (incl. those just outside the field)")
    regions, names = md.get("regions"), md.get("region_names")
    if regions is not None and names is not None:
        regions = np.asarray(regions)
        counts = np.bincount(regions.ravel().astype(np.int64), minlength=len(names))
        lines.append("regions (pixels): " + ", ".join(
            f"{n} {int(c)}" for n, c in zip(names, counts)))
        if "interior" in names and counts[names.index("interior")]:
            spectra = np.asarray(si.spectra)
            mean = spectra[regions == names.index("interior")].mean(axis=0)
            usable = e >= 0.3
            if usable.any():
                k = np.flatnonzero(usable)[np.argmax(mean[usable])]
                lines.append(f"interior mean spectrum peaks at {e[k]:.3f} eV")
    sim = md.get("simulation")
    if isinstance(sim, dict) and "seed" in sim:
        lines.append(f"simulated: seed {sim['seed']}, dose {sim.get('dose', 0):.3g} e-/pixel, "
                     f"noise {sim.get('noise')}, ZLP tail {sim.get('zlp_tail')}")
    return "\n".join(lines)
