"""The fast electron: kinematics, its evanescent field at a particle, loss prefactors.

Units: lengths nm, energies eV, fields in the reduced form of docs/physics.md (the
field factor ``f`` multiplying ``2 e q / (v γ)``-type constants that are folded
into :meth:`Beam.dipole_prefactor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

HBAR_C = 197.327  # eV nm
ALPHA_F = 1.0 / 137.036  # fine-structure constant
MC2 = 511.0e3  # electron rest energy, eV

__all__ = ["ALPHA_F", "HBAR_C", "MC2", "Beam", "regularised_distance"]


def regularised_distance(r: np.ndarray, r0: np.ndarray | float) -> np.ndarray:
    """Effective impact parameter ``(R^4 + r0^4)^(1/4)`` (nm).

    Removes the divergence of K0/K1 for trajectories through or grazing a particle
    of radius ~r0 while leaving distant trajectories untouched: the relative
    change is (r0/R)^4 / 4, i.e. 0.1 % at R = 4 r0, where the quadratic form
    sqrt(R^2 + r0^2) still shifts K1^2 by ~6 %.

    Examples
    --------
    Far from a particle (100 nm vs r0 = 5 nm) nothing changes; at its centre, b becomes r0:

    >>> import numpy as np
    >>> regularised_distance(np.array([0.0, 100.0]), 5.0).round(3)
    array([  5., 100.])
    """
    r = np.asarray(r, dtype=np.float64)
    return np.sqrt(np.sqrt(r**4 + np.asarray(r0, dtype=np.float64) ** 4))


@dataclass(frozen=True)
class Beam:
    """A fast electron of kinetic energy ``e0_kev`` collected within ``theta_c`` (rad).

    Examples
    --------
    A 60 keV electron travels at about 45 % of the speed of light:

    >>> beam = Beam(e0_kev=60.0, theta_c=0.01)
    >>> round(beam.beta, 3)
    0.446
    """

    e0_kev: float = 60.0
    theta_c: float = 0.010

    @property
    def gamma(self) -> float:
        """Lorentz factor γ = 1 + E0 / mc²."""
        return 1.0 + self.e0_kev * 1e3 / MC2

    @property
    def beta(self) -> float:
        """v / c (60 keV -> 0.446)."""
        return float(np.sqrt(1.0 - 1.0 / self.gamma**2))

    def q(self, energy: np.ndarray | float) -> np.ndarray:
        """Longitudinal momentum transfer q = E / (ħc β) in nm⁻¹ for loss energy E (eV)."""
        return np.asarray(energy, dtype=np.float64) / (HBAR_C * self.beta)

    def dipole_prefactor(self, energy: np.ndarray | float) -> np.ndarray:
        """4 α_f q² / (π β² γ² ħc) in eV⁻¹ nm⁻³: Γ(E, b) = prefactor · Im(f^H p)."""
        q = self.q(energy)
        return 4.0 * ALPHA_F * q**2 / (np.pi * self.beta**2 * self.gamma**2 * HBAR_C)

    def bulk_prefactor(self) -> float:
        """2 α_f / (π β² ħc) in eV⁻¹ nm⁻¹ (bulk loss per nm of material)."""
        return 2.0 * ALPHA_F / (np.pi * self.beta**2 * HBAR_C)

    def bulk_log_factor(self, energy: np.ndarray | float) -> np.ndarray:
        """ln sqrt(1 + (β θ_c mc² / E)²): the angular integral of the bulk loss."""
        e = np.asarray(energy, dtype=np.float64)
        return 0.5 * np.log1p((self.beta * self.theta_c * MC2 / e) ** 2)

    def screening_length(self, energy: np.ndarray | float) -> np.ndarray:
        """v / ω = ħc β / E (nm): the depth over which a surface reduces bulk loss."""
        return HBAR_C * self.beta / np.asarray(energy, dtype=np.float64)

    def field(
        self, energy: float, offsets: np.ndarray, r0: np.ndarray | float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reduced beam field at particles displaced by ``offsets`` from the beam.

        Parameters
        ----------
        energy : float
            Loss energy E (eV).
        offsets : array (..., 2)
            In-plane vector from the beam to the particle centre (nm).
        r0 : float or array broadcastable to offsets[..., 0]
            Regularisation radius (nm), about half the particle side.

        Returns
        -------
        f_plane : array (..., 2)
            Real in-plane field −K1(q R/γ) R̂ (R̂ = R/R_eff, which vanishes smoothly
            for a beam through the particle centre).
        f_z : array (...)
            K0(q R/γ); the physical out-of-plane field is (i/γ)·f_z.
        """
        offsets = np.asarray(offsets, dtype=np.float64)
        r = np.hypot(offsets[..., 0], offsets[..., 1])
        r_eff = regularised_distance(r, r0)
        x = self.q(energy) * r_eff / self.gamma
        f_plane = -(special.k1(x) / r_eff)[..., None] * offsets
        return f_plane, special.k0(x)
