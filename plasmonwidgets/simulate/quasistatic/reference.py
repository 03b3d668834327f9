"""Analytic non-retarded results for a sphere, used to check the boundary-element solver.

Independent of the solver's code: closed forms only (García de Abajo, Rev. Mod. Phys. 82,
209 (2010), the non-retarded aloof-sphere loss; Ferrell & Echenique, PRL 55, 1526 (1985)).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ..beam import ALPHA_F, HBAR_C

__all__ = ["sphere_aloof_loss", "sphere_multipole_polarizability"]


def sphere_multipole_polarizability(l: int, eps, eps_host: float = 1.0) -> np.ndarray:
    """α_l = l (ε − ε_m)/(l ε + (l + 1) ε_m), the 2^l-pole response of a sphere (in units of a^{2l+1}).

    Examples
    --------
    The dipole (l = 1) near its resonance ε = −2 ε_m:

    >>> complex(sphere_multipole_polarizability(1, -2.0 + 0.1j))
    (1+30j)
    """
    eps = np.asarray(eps, dtype=np.complex128)
    return l * (eps - eps_host) / (l * eps + (l + 1) * eps_host)


def sphere_aloof_loss(energies, *, radius: float, impact: float, eps, beta: float,
                      eps_host: float = 1.0, l_max: int = 60) -> np.ndarray:
    """Loss probability Γ(E) (eV⁻¹) of an electron passing a sphere at distance ``impact`` from its centre.

    Γ(E) = 4 α_f a/(π β² ħc ε_m) Σ_{l≥1} Σ_{m=0}^{l} μ_m (qa)^{2l} K_m(qb)² / ((l+m)! (l−m)!) Im α_l,
    q = E/(ħc β), μ_0 = 1, μ_{m>0} = 2.

    Parameters
    ----------
    energies : array (E,)
        Loss energies (eV).
    radius, impact : float
        Sphere radius a and impact parameter b > a (nm).
    eps : array (E,)
        Sphere permittivity at ``energies``.
    beta : float
        v/c of the electron.
    eps_host : float
        Host permittivity ε_m.
    l_max : int
        Last multipole; terms fall off as (a/b)^{2l}.

    Examples
    --------
    A Drude sphere of radius 10 nm, a 60 keV beam 15 nm from its centre, at 0.5 and 0.6 eV:

    >>> from plasmonwidgets.simulate.beam import Beam
    >>> from plasmonwidgets.simulate.dielectric import Drude
    >>> e = np.array([0.5, 0.6])
    >>> loss = sphere_aloof_loss(e, radius=10.0, impact=15.0, eps=Drude().eps(e), beta=Beam().beta)
    >>> loss.shape, bool((loss > 0).all())
    ((2,), True)
    """
    e = np.asarray(energies, dtype=np.float64)
    if not impact > radius > 0:
        raise ValueError("need impact > radius > 0 (an aloof trajectory)")
    eps = np.broadcast_to(np.asarray(eps, dtype=np.complex128), e.shape)
    x = e / (HBAR_C * beta) * impact  # q b
    # y_m = x^m K_m(x) by the stable upward recurrence y_{m+1} = x² y_{m−1} + 2m y_m; the
    # terms are (a/b)^{2l} x^{2(l−m)} y_m² / ((l+m)! (l−m)!), summed in logs (no overflow).
    y = np.empty((l_max + 1, e.size))
    y[0] = special.k0(x)
    y[1] = x * special.k1(x)
    for m in range(1, l_max):
        y[m + 1] = x**2 * y[m - 1] + 2 * m * y[m]
    log_y, log_x = np.log(y), np.log(x)
    total = np.zeros_like(e)
    for l in range(1, l_max + 1):
        ang = np.zeros_like(e)
        for m in range(l + 1):
            mu = 1.0 if m == 0 else 2.0
            log_t = (2 * l * np.log(radius / impact) + 2 * (l - m) * log_x + 2 * log_y[m]
                     - special.gammaln(l + m + 1) - special.gammaln(l - m + 1))
            ang += mu * np.exp(log_t)
        total += ang * np.imag(sphere_multipole_polarizability(l, eps, eps_host))
    return 4.0 * ALPHA_F * radius / (np.pi * beta**2 * HBAR_C * eps_host) * total
