"""Plasmon eigenmodes of one particle shape: eigenvalues, right and left eigenvectors, disk cache.

The surface-charge eigenproblem F σ_k = 2π Λ_k σ_k (Fredkin & Mayergoyz 2003) depends on
shape only. Mode k resonates where (ε + ε_m)/(ε − ε_m) = Λ_k, i.e. at
ε_k = ε_m (Λ_k + 1)/(Λ_k − 1) (sphere: Λ_l = 1/(2l + 1), ε_l = −ε_m (l + 1)/l);
Λ = 1 is the net-charge mode, which a neutral excitation never drives. F is not
symmetric, so its left eigenvectors differ from the right ones; the response to any
excitation is exactly (2πΛ − F)⁻¹ = Σ_k R_k L_k / (2π (Λ − Λ_k)) with L = R⁻¹ (rows), which
stays biorthogonal inside degenerate groups (where independent left/right solvers do not).
Eigenvalues are complex in floating point (degenerate pairs); nothing here drops the
imaginary parts.

F is scale-free, so one decomposition serves a shape at every size and orientation:
:meth:`Modes.transformed` moves the mesh and keeps the vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.linalg

from ._blas import single_threaded_blas
from .mesh import SurfaceMesh, rounded_cube, sphere
from .operator import NEAR, charge_operator

__all__ = ["MODES_VERSION", "Modes", "cache_dir", "cube_modes", "solve_modes", "sphere_modes"]

#: Bumped whenever the mesh or operator changes what a cached decomposition holds.
MODES_VERSION = 1

_MEMORY: dict[str, Modes] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Modes:
    """Eigen-decomposition of F/(2π) on one mesh.

    Attributes
    ----------
    mesh : SurfaceMesh
        The N-panel surface (nm).
    eigenvalues : array (N,) complex
        Λ_k, sorted by decreasing real part (Λ_0 = 1, the net-charge mode).
    right : array (N, N) complex
        Column k: panel charges σ_k of mode k.
    left : array (N, N) complex
        Row k: the dual of mode k, ``left @ right = I``.

    Examples
    --------
    The unit sphere on 96 panels: Λ_0 = 1 (net charge), then the three dipoles near 1/3, which
    resonate near ε = −2 ε_m:

    >>> modes = sphere_modes(n=2, cache=False)
    >>> len(modes)
    96
    >>> modes.eigenvalues[:4].real.round(3)
    array([1.   , 0.332, 0.332, 0.332])
    >>> round(float(modes.resonance_eps(eps_host=1.0)[1].real), 2)
    -1.99
    """

    mesh: SurfaceMesh
    eigenvalues: np.ndarray
    right: np.ndarray
    left: np.ndarray

    def __len__(self) -> int:
        return len(self.eigenvalues)

    def resonance_eps(self, eps_host: float = 1.0) -> np.ndarray:
        """Permittivity ε_k = ε_m (Λ_k + 1)/(Λ_k − 1) at which each mode resonates, shape (N,)."""
        lam = self.eigenvalues
        with np.errstate(divide="ignore", invalid="ignore"):
            return eps_host * (lam + 1.0) / (lam - 1.0)

    def dipole_strengths(self) -> np.ndarray:
        """Oscillator strengths f_k along x, y, z, shape (N, 3); each column sums to 1.

        The static polarisability of the particle in a host ε_m is
        α_aa = ε_m V Σ_k f_ka / (2π (Λ − Λ_k)) (Gaussian, nm³) with Λ = (ε + ε_m)/(ε − ε_m):
        a sphere has f = 1 on its three l = 1 modes (together) and 0 elsewhere.
        """
        m = self.mesh
        moment = (m.areas[:, None] * m.centroids).T @ self.right  # (3, N)
        drive = self.left @ m.normals  # (N, 3)
        return np.real(moment.T * drive) / m.volume

    def transformed(self, *, scale: float = 1.0, rotation: np.ndarray | None = None,
                    translation=(0.0, 0.0, 0.0)) -> Modes:
        """The same modes on the scaled, rotated and translated mesh (see SurfaceMesh.transformed)."""
        mesh = self.mesh.transformed(scale=scale, rotation=rotation, translation=translation)
        return replace(self, mesh=mesh)


def solve_modes(mesh: SurfaceMesh) -> Modes:
    """Assemble F on ``mesh`` and decompose it (dense; ~0.3 s for 600 panels, ~3 s for 1536).

    Examples
    --------
    A sphere of radius 10 nm on 96 panels, not cached:

    >>> modes = solve_modes(sphere(10.0, n=2))
    >>> len(modes), modes.right.shape
    (96, (96, 96))
    """
    f = charge_operator(mesh) / (2.0 * np.pi)
    with single_threaded_blas():
        lam, right = scipy.linalg.eig(f, overwrite_a=True, check_finite=False)
        order = np.argsort(-lam.real, kind="stable")
        lam, right = lam[order], right[:, order]
        left = scipy.linalg.inv(right, check_finite=False)
    return Modes(mesh, lam, right, left)


def cache_dir() -> Path:
    """Folder of cached decompositions.

    ``$PLASMONWIDGETS_CACHE/quasistatic`` if set (as for the datasets), else
    ``$XDG_CACHE_HOME/plasmonwidgets/quasistatic``, else ``~/.cache/plasmonwidgets/quasistatic``.

    Examples
    --------
    The path only; nothing is created until a decomposition is stored:

    >>> cache_dir().name
    'quasistatic'
    """
    env = os.environ.get("PLASMONWIDGETS_CACHE")
    if env:
        return Path(env).expanduser() / "quasistatic"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "plasmonwidgets" / "quasistatic"


def _cached(params: dict, make_mesh, cache: bool) -> Modes:
    """Modes for ``params`` from memory, then disk, else solved and stored in both."""
    key_text = json.dumps({**params, "near": NEAR, "version": MODES_VERSION}, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    if not cache:
        return solve_modes(make_mesh())
    with _LOCK:
        if key in _MEMORY:
            return _MEMORY[key]
    mesh = make_mesh()
    path = cache_dir() / f"{params['shape']}-{key}.npz"
    modes = None
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if int(z["n_panels"]) != len(mesh):
                    raise ValueError("panel count differs from the mesh")
                modes = Modes(mesh, z["eigenvalues"], z["right"], z["left"])
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"ignoring damaged mode cache {path.name} ({exc}); recomputing", stacklevel=3)
    if modes is None:
        modes = solve_modes(mesh)
        _store(path, modes, key_text)
    with _LOCK:
        _MEMORY[key] = modes
    return modes


def _store(path: Path, modes: Modes, key_text: str) -> None:
    """Write atomically (temp file + rename) so a crash never leaves half a file; skip if read-only."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, eigenvalues=modes.eigenvalues, right=modes.right, left=modes.left,
                     n_panels=len(modes), key=key_text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        warnings.warn(f"could not cache modes in {path.parent} ({exc}); they will be recomputed",
                      stacklevel=3)


def cube_modes(*, rounding: float = 0.1, n_flat: int = 8, n_round: int = 2, cache: bool = True) -> Modes:
    """Modes of a cube of unit side (1 nm) with rounded edges; scale with :meth:`Modes.transformed`.

    Parameters
    ----------
    rounding : float
        Edge and corner radius as a fraction of the side (0 < rounding < 0.5).
    n_flat, n_round : int
        Mesh density (see :func:`~plasmonwidgets.simulate.quasistatic.mesh.rounded_cube`):
        6·(n_flat + 2·n_round)² panels.
    cache : bool
        Reuse (and store) the decomposition in memory and under :func:`cache_dir`.

    Examples
    --------
    >>> modes = cube_modes(rounding=0.2, n_flat=2, n_round=1, cache=False)
    >>> cube15 = modes.transformed(scale=15.0)  # a 15 nm cube, same eigenvectors
    """
    params = {"shape": "rounded_cube", "rounding": float(rounding), "n_flat": int(n_flat),
              "n_round": int(n_round)}
    return _cached(params, lambda: rounded_cube(1.0, rounding=rounding, n_flat=n_flat, n_round=n_round),
                   cache)


def sphere_modes(*, n: int = 5, cache: bool = True) -> Modes:
    """Modes of the unit sphere (radius 1 nm) meshed as a cubed sphere of 6·(2n)² panels.

    Examples
    --------
    A sphere of radius 10 nm on 6·4² = 96 panels:

    >>> ball = sphere_modes(n=2, cache=False).transformed(scale=10.0)
    >>> len(ball)
    96
    """
    return _cached({"shape": "sphere", "n": int(n)}, lambda: sphere(1.0, n=n), cache)
