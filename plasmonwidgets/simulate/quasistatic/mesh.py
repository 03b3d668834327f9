"""Surface meshes of closed particles: rounded cubes and spheres made of bilinear quad panels.

A panel is the image of a flat quad of the cube [−a, a]³ (its "parameter quad") on the
exact curved surface, so quadrature points, normals and areas lie on the true surface
(no faceting error). Its collocation point is the image of the quad's centre, its
normal the exact outward normal there, its area the integral of the surface Jacobian;
:meth:`SurfaceMesh.quadrature` gives Gauss–Legendre points on the curved panel for
integrals that need more than one point (near panels, beam potentials).
:meth:`SurfaceMesh.from_corners` builds flat-ish bilinear panels for other shapes.

Both shapes come from one construction: a face grid of the cube [−a, a]³ is pushed onto
the surface "inner cube of half-side a − r, dilated by a ball of radius r". Along every
face axis the flat part gets ``n_flat`` equal intervals and each rounded strip
``n_round`` intervals of equal angle, so panels on edges and corners have about the
same arc length. ``r = a`` gives the equiangular cubed sphere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["ZONE_NAMES", "SurfaceMesh", "rounded_cube", "sphere"]

ZONE_NAMES = ("face", "edge", "corner")

# Quadrature orders stored on curved meshes (4 for areas and tests, 3 and 8 for near panels).
_STORED_ORDERS = (3, 4, 8)

# Unit-square Gauss–Legendre rules, cached by order.
_RULES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _square_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """(order², 2) points in [0, 1]² and (order²,) weights summing to 1."""
    if order not in _RULES:
        x, w = np.polynomial.legendre.leggauss(order)
        x, w = 0.5 * (x + 1.0), 0.5 * w
        u, v = np.meshgrid(x, x, indexing="ij")
        _RULES[order] = (np.stack([u.ravel(), v.ravel()], axis=1), np.outer(w, w).ravel())
    return _RULES[order]


def _bilinear(corners: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points and Jacobian vectors (∂P/∂u × ∂P/∂v) of bilinear patches.

    corners (N, 4, 3) in the order P00, P10, P11, P01; uv (M, 2). Returns (N, M, 3) twice.
    """
    p0, p1, p2, p3 = (corners[:, k, None, :] for k in range(4))
    u, v = uv[None, :, 0, None], uv[None, :, 1, None]
    pts = (1 - u) * (1 - v) * p0 + u * (1 - v) * p1 + u * v * p2 + (1 - u) * v * p3
    du = (1 - v) * (p1 - p0) + v * (p2 - p3)
    dv = (1 - u) * (p3 - p0) + u * (p2 - p1)
    return pts, np.cross(du, dv)


@dataclass(frozen=True)
class SurfaceMesh:
    """A closed surface of N bilinear quad panels (lengths in nm).

    Attributes
    ----------
    corners : array (N, 4, 3)
        Panel corners, counter-clockwise seen from outside.
    centroids : array (N, 3)
        Collocation points (patch centres).
    normals : array (N, 3)
        Outward unit normals at the collocation points.
    areas : array (N,)
        Panel areas (nm²).
    zones : array (N,) int8
        0 face, 1 edge, 2 corner (see ``ZONE_NAMES``); all 2 for a sphere.
    rules : dict
        Gauss–Legendre order -> (points (N, order², 3), area weights (N, order²)).
    enclosed_volume : float or None
        Volume integrated on the curved panels (nm³), when known.

    Examples
    --------
    A sphere of radius 1 nm as 96 panels; its volume (nm³) is 4π/3 to the digits shown:

    >>> m = sphere(1.0, n=2)
    >>> len(m), m.corners.shape
    (96, (96, 4, 3))
    >>> round(m.volume, 3), round(m.transformed(scale=10.0).volume, 1)
    (4.189, 4188.8)
    """

    corners: np.ndarray
    centroids: np.ndarray
    normals: np.ndarray
    areas: np.ndarray
    zones: np.ndarray
    rules: dict = field(default_factory=dict, repr=False)
    enclosed_volume: float | None = None

    @classmethod
    def from_corners(cls, corners: np.ndarray, zones: np.ndarray | None = None) -> SurfaceMesh:
        """Build a mesh from panel corners (N, 4, 3); normals follow the corner order."""
        corners = np.ascontiguousarray(corners, dtype=np.float64)
        if corners.ndim != 3 or corners.shape[1:] != (4, 3):
            raise ValueError(f"panel corners must have shape (N, 4, 3), got {corners.shape}")
        centre, jac = _bilinear(corners, np.array([[0.5, 0.5]]))
        pts, w = _square_rule(4)
        _, jq = _bilinear(corners, pts)
        areas = np.linalg.norm(jq, axis=-1) @ w
        normals = jac[:, 0] / np.linalg.norm(jac[:, 0], axis=-1, keepdims=True)
        if zones is None:
            zones = np.zeros(len(corners), dtype=np.int8)
        return cls(corners, centre[:, 0], normals, areas, np.asarray(zones, dtype=np.int8))

    def __len__(self) -> int:
        return len(self.areas)

    @property
    def sizes(self) -> np.ndarray:
        """Panel size h = sqrt(area) (nm), shape (N,)."""
        return np.sqrt(self.areas)

    @property
    def volume(self) -> float:
        """Enclosed volume (nm³) from the divergence theorem, ∮ r·n dS / 3."""
        if self.enclosed_volume is not None:
            return self.enclosed_volume
        return float(np.sum(self.areas * np.einsum("ij,ij->i", self.centroids, self.normals)) / 3.0)

    def quadrature(self, order: int) -> tuple[np.ndarray, np.ndarray]:
        """Gauss–Legendre points on every panel (orders 3, 4 and 8 are stored; others bilinear).

        Returns
        -------
        points : array (N, order², 3)
        weights : array (N, order²)
            Area weights (nm²); each row sums to the panel area up to the rule's accuracy.
        """
        if order in self.rules:
            return self.rules[order]
        uv, w = _square_rule(order)
        pts, jac = _bilinear(self.corners, uv)
        return pts, np.linalg.norm(jac, axis=-1) * w[None, :]

    def transformed(self, *, scale: float = 1.0, rotation: np.ndarray | None = None,
                    translation=(0.0, 0.0, 0.0)) -> SurfaceMesh:
        """The mesh scaled about the origin, then rotated (3×3 orthogonal matrix), then translated (nm)."""
        rot = np.eye(3) if rotation is None else np.asarray(rotation, dtype=np.float64)
        if rot.shape != (3, 3) or not np.allclose(rot @ rot.T, np.eye(3), atol=1e-9):
            raise ValueError("rotation must be an orthogonal 3x3 matrix (R @ R.T = I)")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        t = np.asarray(translation, dtype=np.float64)
        return SurfaceMesh(
            corners=scale * self.corners @ rot.T + t,
            centroids=scale * self.centroids @ rot.T + t,
            normals=self.normals @ rot.T,
            areas=scale**2 * self.areas,
            zones=self.zones,
            rules={k: (scale * p @ rot.T + t, scale**2 * w) for k, (p, w) in self.rules.items()},
            enclosed_volume=None if self.enclosed_volume is None else scale**3 * self.enclosed_volume,
        )

    @classmethod
    def from_parametric(cls, quads: np.ndarray, surface, zones: np.ndarray) -> SurfaceMesh:
        """Curved panels: flat parameter quads (N, 4, 3) mapped by ``surface``.

        ``surface(points (..., 3)) -> (points on the surface (..., 3), outward unit normals (..., 3))``
        must be smooth inside each quad. The Jacobian is taken by central differences.
        """
        quads = np.asarray(quads, dtype=np.float64)
        centre, _ = _bilinear(quads, np.array([[0.5, 0.5]]))
        cpts, cnorm = surface(centre[:, 0])
        corners, _ = surface(quads)
        rules = {}
        step = 1e-5

        def at(uv: np.ndarray) -> np.ndarray:
            return surface(_bilinear(quads, uv)[0])[0]

        for order in _STORED_ORDERS:
            uv, w = _square_rule(order)
            su, sv = np.array([step, 0.0]), np.array([0.0, step])
            du, dv = at(uv + su) - at(uv - su), at(uv + sv) - at(uv - sv)
            jac = np.linalg.norm(np.cross(du, dv), axis=-1) / (2 * step) ** 2
            rules[order] = (at(uv), jac * w[None, :])
        areas = rules[8][1].sum(axis=1)
        pts8, normals8 = surface(_bilinear(quads, _square_rule(8)[0])[0])
        volume = float(np.sum(np.einsum("nqk,nqk->nq", pts8, normals8) * rules[8][1]) / 3.0)
        return cls(corners, cpts, cnorm, areas, np.asarray(zones, dtype=np.int8), rules, volume)


def _axis_nodes(a: float, r: float, n_flat: int, n_round: int) -> np.ndarray:
    """Node coordinates along one face axis, from −a to a (see module docstring)."""
    flat = np.linspace(-(a - r), a - r, n_flat + 1) if n_flat > 0 else np.array([0.0])
    if n_round == 0:
        return flat
    strip = (a - r) + r * np.tan(np.linspace(0.0, np.pi / 4, n_round + 1)[1:])
    return np.concatenate([-strip[::-1], flat, strip])


def _face_grid(a: float, r: float, n_flat: int, n_round: int) -> tuple[np.ndarray, np.ndarray]:
    """Corners (M, 4, 3) of the grid on the +z face of the cube [−a, a]³ and zone labels (M,)."""
    s = _axis_nodes(a, r, n_flat, n_round)
    i, j = np.meshgrid(np.arange(len(s) - 1), np.arange(len(s) - 1), indexing="ij")
    i, j = i.ravel(), j.ravel()
    x = np.stack([s[i], s[i + 1], s[i + 1], s[i]], axis=1)
    y = np.stack([s[j], s[j], s[j + 1], s[j + 1]], axis=1)
    corners = np.stack([x, y, np.full_like(x, a)], axis=-1)
    # Zone from the panel's parameter-space centre: how many axes leave the flat part.
    cx, cy = 0.5 * (s[i] + s[i + 1]), 0.5 * (s[j] + s[j + 1])
    zones = 1 * (np.abs(cx) > a - r) + 1 * (np.abs(cy) > a - r)
    return corners, zones


def _rounded_surface(a: float, r: float):
    """Map from the surface of the cube [−a, a]³ to the rounded cube of corner radius r > 0.

    A point p goes to inner + r·d/|d| with inner = p clipped to [−(a − r), a − r]³ and
    d = p − inner; d/|d| is the exact outward normal there.
    """
    def surface(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inner = np.clip(points, -(a - r), a - r)
        d = points - inner
        n = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return inner + r * n, n
    return surface


def _sharp_surface(a: float):
    """Identity on the cube's surface, with the normal of the face the point lies on."""
    def surface(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.argmax(np.abs(points), axis=-1)
        n = np.zeros_like(points)
        np.put_along_axis(n, k[..., None], np.sign(np.take_along_axis(points, k[..., None], -1)), -1)
        return points, n
    return surface


# Rotations taking the +z face to each of the six faces.
_FACES = (
    np.eye(3),
    np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]),
    np.array([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]),
    np.array([[0.0, 0, -1], [-1, 0, 0], [0, 1, 0]]),
    np.array([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]]),
    np.array([[0.0, -1, 0], [0, 0, -1], [1, 0, 0]]),
)


def rounded_cube(side: float = 1.0, *, rounding: float, n_flat: int, n_round: int) -> SurfaceMesh:
    """A cube of edge ``side`` (nm) with edges and corners rounded, centred at the origin.

    Parameters
    ----------
    side : float
        Edge length (nm), measured across flat faces.
    rounding : float
        Radius of the rounded edges and corners as a fraction of ``side`` (0 <= rounding <= 0.5);
        0 gives a sharp cube (whose modes do not converge), 0.5 a sphere.
    n_flat : int
        Panels across the flat part of each face, per axis.
    n_round : int
        Panels across each rounded strip (a quarter of an edge circle spans two strips).

    Returns
    -------
    SurfaceMesh
        6·(n_flat + 2·n_round)² panels, with zones face / edge / corner.

    Examples
    --------
    >>> mesh = rounded_cube(15.0, rounding=0.1, n_flat=6, n_round=2)
    >>> len(mesh)
    600
    """
    if not side > 0:
        raise ValueError(f"side must be > 0 nm, got {side}")
    if not 0 <= rounding <= 0.5:
        raise ValueError(f"rounding must lie in [0, 0.5] (a fraction of the side), got {rounding}")
    if rounding > 0 and n_round < 1:
        raise ValueError("a rounded cube needs n_round >= 1 panels across each rounded strip")
    if rounding == 0 and n_round != 0:
        raise ValueError("a sharp cube (rounding=0) takes n_round=0")
    if n_flat < 0 or (n_flat == 0 and rounding < 0.5) or (n_flat > 0 and rounding == 0.5):
        raise ValueError("n_flat must be >= 1 for a cube, and 0 for a sphere (rounding=0.5)")
    a, r = 0.5 * side, rounding * side
    face, zones = _face_grid(a, r, n_flat, n_round)
    quads = np.concatenate([face @ rot.T for rot in _FACES])
    surface = _rounded_surface(a, r) if r > 0 else _sharp_surface(a)
    return SurfaceMesh.from_parametric(quads, surface, np.tile(zones, 6))


def sphere(radius: float = 1.0, *, n: int) -> SurfaceMesh:
    """Equiangular cubed sphere of ``radius`` (nm): 6·(2n)² panels.

    Examples
    --------
    >>> len(sphere(10.0, n=6))
    864
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    mesh = rounded_cube(2.0 * radius, rounding=0.5, n_flat=0, n_round=n)
    return replace(mesh, zones=np.full(len(mesh), 2, dtype=np.int8))
