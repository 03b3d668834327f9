"""Quasi-static boundary-element plasmon modes of particles and the EELS of aloof beams.

See docs/physics.md for the model, the formulas, the approximations and the checks.

>>> from plasmonwidgets.simulate.dielectric import Drude
>>> from plasmonwidgets.simulate.quasistatic import cube_modes, eels_modal
>>> cube = cube_modes(rounding=0.2, n_flat=2, n_round=1, cache=False).transformed(scale=15.0)
>>> eels_modal(cube, [[9.0, 9.0]], [0.5, 0.55], eps=Drude(), eps_host=2.0).shape
(1, 2)
"""

from .coupling import Cluster, mirror_dimer_modes
from .loss import eels_direct, eels_modal
from .maps import LossMap, quasistatic_loss_map
from .mesh import SurfaceMesh, rounded_cube, sphere
from .modes import Modes, cache_dir, cube_modes, solve_modes, sphere_modes
from .operator import charge_operator

__all__ = [
    "Cluster",
    "LossMap",
    "Modes",
    "SurfaceMesh",
    "cache_dir",
    "charge_operator",
    "cube_modes",
    "eels_direct",
    "eels_modal",
    "mirror_dimer_modes",
    "quasistatic_loss_map",
    "rounded_cube",
    "solve_modes",
    "sphere",
    "sphere_modes",
]
