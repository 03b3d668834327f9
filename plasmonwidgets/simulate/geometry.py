"""Particle layout of the simulated scene: a disordered monolayer of nanocubes.

Coordinates are (y, x) in nm from the top-left corner of the scan field; y runs
down the rows, x along the columns. SI pixel (r, c) of size p is centred at
((r + 0.5) p, (c + 0.5) p).

The layout reproduces the disorder of the paper's samples:

* a square lattice (pitch ≈ side + 2 nm) at a random global angle, with jittered
  sites, cube sides drawn around 15 nm (clipped to 10–20 nm), small random
  in-plane rotations and 1–3 nm gaps (overlaps are removed by shrinking cubes);
* 5–10 % vacancies (at least one in every quadrant of the scan);
* one hole in the array in every quadrant (a patch of missing cubes, support intact;
  a single hole when the field is under 6 pitches across);
* a film edge: the support membrane has a tear near the middle of the field
  (a wobbly, roughly round hole as in holey-carbon supports) with empty space
  beyond it, so every half and quadrant of the scan holds edge and vacuum pixels;
* a margin of cubes outside the scan field, which couple to the scanned ones and
  appear cut by the image border, as in a real scan of a larger array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

__all__ = [
    "REGION_NAMES",
    "GeometryParams",
    "Layout",
    "generate_layout",
    "projected_thickness",
    "region_map",
]

#: Region labels of :func:`region_map`, in label order (label = index).
REGION_NAMES = ("interior", "gap", "vacancy", "hole", "edge", "vacuum")

# site kinds
OCCUPIED, VACANCY, HOLE = 0, 1, 2


@dataclass(frozen=True)
class GeometryParams:
    """Tunable geometry of the scene (lengths in nm, angles in rad).

    Examples
    --------
    >>> params = GeometryParams()
    >>> params.pitch > params.side_mean             # cubes do not touch on average
    True
    """

    pitch: float = 17.5  # lattice constant
    side_mean: float = 15.3
    side_sd: float = 0.9
    side_range: tuple[float, float] = (10.0, 20.0)
    jitter: float = 0.35  # sd of site displacement
    rotation_sd: float = 0.04  # sd of each cube's rotation about the lattice angle
    lattice_angle_max: float = 0.2  # global lattice angle drawn in ±this
    vacancy_fraction: tuple[float, float] = (0.05, 0.10)
    hole_radius: tuple[float, float] = (0.9, 1.25)  # in pitches
    tear_radius: float = 0.2  # mean radius of the support tear, fraction of the field
    tear_wobble: float = 0.07  # amplitude of the tear's angular harmonics (relative)
    edge_width: float = 10.0  # support within this distance of the film edge is "edge"
    min_gap: float = 0.8  # cubes closer than this are shrunk
    margin: float = 1.0  # cubes simulated beyond the scan field, in pitches
    corner_exponent: float = 8.0  # superellipse |u|^n + |v|^n <= (a/2)^n: rounded corners


@dataclass
class Layout:
    """A generated scene geometry (see the module docstring for conventions).

    Attributes
    ----------
    field : (height, width) of the scan field, nm.
    centers : (N, 2) particle centres (y, x), nm.
    sides : (N,) cube edge lengths, nm.
    rotations : (N,) in-plane rotation of each cube, rad.
    sites : (S, 2) all lattice sites on the support (y, x), nm, occupied or not.
    site_kind : (S,) int, OCCUPIED / VACANCY / HOLE.
    tear_center : (2,) centre of the support tear (y, x), nm.
    tear_radius : float, mean tear radius, nm.
    tear_harmonics : (K, 3) rows (order, relative amplitude, phase) of the tear outline.
    hole_centers : (Q, 2) centres of the holes in the array, nm.
    params : GeometryParams used.
    lattice_angle : rad.

    Examples
    --------
    >>> import numpy as np
    >>> layout = generate_layout(np.random.default_rng(0), (48.0, 48.0))
    >>> layout.centers.shape[1], layout.field
    (2, (48.0, 48.0))
    """

    field: tuple[float, float]
    centers: np.ndarray
    sides: np.ndarray
    rotations: np.ndarray
    sites: np.ndarray
    site_kind: np.ndarray
    tear_center: np.ndarray
    tear_radius: float
    tear_harmonics: np.ndarray
    hole_centers: np.ndarray
    params: GeometryParams
    lattice_angle: float

    @property
    def n_particles(self) -> int:
        return len(self.centers)

    def tear_outline(self, theta: np.ndarray) -> np.ndarray:
        """Tear radius (nm) in direction ``theta`` (rad) from the tear centre."""
        theta = np.asarray(theta, dtype=np.float64)
        rel = np.ones_like(theta)
        for order, amp, phase in self.tear_harmonics:
            rel = rel + amp * np.cos(order * theta + phase)
        return self.tear_radius * rel

    def edge_distance(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Signed distance (nm) to the film edge: > 0 on the support, < 0 beyond the edge.

        Measured radially from the tear centre (the outline is smooth, so this is
        within a few percent of the Euclidean distance).
        """
        dy = np.asarray(y, dtype=np.float64) - self.tear_center[0]
        dx = np.asarray(x, dtype=np.float64) - self.tear_center[1]
        return np.hypot(dy, dx) - self.tear_outline(np.arctan2(dy, dx))

    def particles(self) -> dict[str, np.ndarray]:
        """Ground truth as a dict of arrays: centers (N, 2) (y, x) nm, sides (N,) nm,
        rotations (N,) rad."""
        return {
            "centers": self.centers.copy(),
            "sides": self.sides.copy(),
            "rotations": self.rotations.copy(),
        }


def _quadrants(height: float, width: float) -> list[tuple[float, float, float, float]]:
    """(y0, y1, x0, x1) of the four quadrants of the field."""
    hy, hx = height / 2, width / 2
    return [(0, hy, 0, hx), (0, hy, hx, width), (hy, height, 0, hx), (hy, height, hx, width)]


def generate_layout(
    rng: np.random.Generator, field: tuple[float, float], params: GeometryParams | None = None
) -> Layout:
    """Draw a disordered cube monolayer covering ``field`` = (height, width) nm.

    Examples
    --------
    Cubes over a 48 x 48 nm field; centres (N, 2) and sides (N,) in nm:

    >>> import numpy as np
    >>> layout = generate_layout(np.random.default_rng(0), (48.0, 48.0))
    >>> len(layout.centers) == len(layout.sides)
    True
    """
    gp = params or GeometryParams()
    height, width = float(field[0]), float(field[1])
    pitch = gp.pitch
    margin = gp.margin * pitch

    # support tear near the middle: every quadrant gets edge and vacuum
    tear_center = np.array([height / 2, width / 2]) + rng.uniform(-0.04, 0.04, 2) * [height, width]
    tear_radius = gp.tear_radius * min(height, width)
    orders = np.arange(2, 5, dtype=float)
    tear_harmonics = np.column_stack(
        [orders, rng.uniform(0.3, 1.0, orders.size) * gp.tear_wobble / orders * 2,
         rng.uniform(0, 2 * np.pi, orders.size)]
    )

    # rotated, jittered square lattice covering field + margin
    angle = rng.uniform(-gp.lattice_angle_max, gp.lattice_angle_max)
    a1 = pitch * np.array([np.sin(angle), np.cos(angle)])  # "row" direction in (y, x)
    a2 = pitch * np.array([np.cos(angle), -np.sin(angle)])
    origin = np.array([height / 2, width / 2]) + rng.uniform(-0.5, 0.5, 2) * pitch
    n_half = int(np.ceil((np.hypot(height, width) / 2 + margin) / pitch)) + 1
    ij = np.arange(-n_half, n_half + 1)
    ii, jj = np.meshgrid(ij, ij, indexing="ij")
    sites = origin + ii.reshape(-1, 1) * a1 + jj.reshape(-1, 1) * a2
    inside = (
        (sites[:, 0] > -margin) & (sites[:, 0] < height + margin)
        & (sites[:, 1] > -margin) & (sites[:, 1] < width + margin)
    )
    sites = sites[inside]
    sites = sites + rng.normal(0.0, gp.jitter, sites.shape)
    # cubes sit on the support: keep sites whose cube lies (almost) entirely on it
    tmp = Layout((height, width), sites, np.zeros(0), np.zeros(0), sites, np.zeros(0, int),
                 tear_center, tear_radius, tear_harmonics, np.zeros((0, 2)), gp, angle)
    sites = sites[tmp.edge_distance(sites[:, 0], sites[:, 1]) > 0.55 * pitch]
    kind = np.full(len(sites), OCCUPIED)
    dist_edge = tmp.edge_distance(sites[:, 0], sites[:, 1])

    # one hole in the array per quadrant, clear of the tear and of the other holes; a
    # field too small for that (< 6 pitches) gets a single hole in a random quadrant
    hole_centers = []
    quadrants = _quadrants(height, width)
    if min(height, width) < 6 * pitch:
        quadrants = [quadrants[rng.integers(4)]] if min(height, width) >= 3 * pitch else []
    for y0, y1, x0, x1 in quadrants:
        radius = rng.uniform(*gp.hole_radius) * pitch
        best, best_score = None, -np.inf
        for _ in range(300):
            c = np.array([rng.uniform(y0, y1), rng.uniform(x0, x1)])
            clear_edge = tmp.edge_distance(c[0], c[1]) - radius - gp.edge_width
            clear_border = min(c[0] - y0, y1 - c[0], c[1] - x0, x1 - c[1]) - 0.25 * pitch
            clear_holes = min(
                (np.hypot(*(c - h[0])) - radius - h[1] - pitch for h in hole_centers), default=1e9
            )
            score = min(clear_edge, clear_border, clear_holes)
            if score > best_score:
                best, best_score = c, score
            if score > 0:
                break
        hole_centers.append((best, radius))
        kind[np.hypot(*(sites - best).T) < radius] = HOLE

    # vacancies: one well inside every quadrant, then random ones up to the drawn fraction
    n_vac = int(round(rng.uniform(*gp.vacancy_fraction) * np.sum(kind == OCCUPIED)))
    hole_xy = np.array([h[0] for h in hole_centers]).reshape(-1, 2)
    hole_r = np.array([h[1] for h in hole_centers])
    near_hole = np.zeros(len(sites), dtype=bool)
    for c, radius in zip(hole_xy, hole_r):
        near_hole |= np.hypot(*(sites - c).T) < radius + 1.2 * pitch
    for y0, y1, x0, x1 in _quadrants(height, width):
        ok = (
            (kind == OCCUPIED) & ~near_hole & (dist_edge > gp.edge_width + pitch)
            & (sites[:, 0] > y0 + 0.5 * pitch) & (sites[:, 0] < y1 - 0.5 * pitch)
            & (sites[:, 1] > x0 + 0.5 * pitch) & (sites[:, 1] < x1 - 0.5 * pitch)
        )
        if not ok.any():  # small fields: relax to any occupied site in the quadrant
            ok = ((kind == OCCUPIED) & (sites[:, 0] >= y0) & (sites[:, 0] < y1)
                  & (sites[:, 1] >= x0) & (sites[:, 1] < x1))
        if ok.any():
            kind[rng.choice(np.flatnonzero(ok))] = VACANCY
            n_vac -= 1
    free = np.flatnonzero(kind == OCCUPIED)
    if n_vac > 0 and free.size:
        kind[rng.choice(free, size=min(n_vac, free.size), replace=False)] = VACANCY

    occ = kind == OCCUPIED
    centers = sites[occ]
    lo, hi = gp.side_range
    sides = np.clip(rng.normal(gp.side_mean, gp.side_sd, len(centers)), lo, hi)
    rotations = angle + rng.normal(0.0, gp.rotation_sd, len(centers))
    sides = _remove_overlaps(centers, sides, rotations, gp.min_gap, lo)
    return Layout(
        field=(height, width),
        centers=centers,
        sides=sides,
        rotations=rotations,
        sites=sites,
        site_kind=kind,
        tear_center=tear_center,
        tear_radius=tear_radius,
        tear_harmonics=tear_harmonics,
        hole_centers=hole_xy,
        params=gp,
        lattice_angle=float(angle),
    )


def _half_extent(side: np.ndarray, rotation: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Half-width of a rotated square projected on the unit-vector angle ``direction``."""
    rel = direction - rotation
    return 0.5 * side * (np.abs(np.cos(rel)) + np.abs(np.sin(rel)))


def _remove_overlaps(
    centers: np.ndarray, sides: np.ndarray, rotations: np.ndarray, min_gap: float, min_side: float
) -> np.ndarray:
    """Shrink neighbouring cubes until each pair is separated by >= ``min_gap`` nm.

    The gap is measured along the centre-to-centre axis (a separating-axis bound, so
    the true gap is at least this).
    """
    sides = sides.copy()
    if len(centers) < 2:
        return sides
    pairs = cKDTree(centers).query_pairs(r=2.0 * sides.max() * 1.5, output_type="ndarray")
    if pairs.size == 0:
        return sides
    i, j = pairs[:, 0], pairs[:, 1]
    d = centers[j] - centers[i]
    dist = np.hypot(d[:, 0], d[:, 1])
    direction = np.arctan2(d[:, 0], d[:, 1])
    for _ in range(20):
        hi = _half_extent(sides[i], rotations[i], direction)
        hj = _half_extent(sides[j], rotations[j], direction)
        gap = dist - hi - hj
        bad = gap < min_gap - 1e-9
        if not bad.any():
            break
        shrink = np.clip((dist[bad] - min_gap) / (hi[bad] + hj[bad]), 0.5, 1.0)
        for idx, f in ((i[bad], shrink), (j[bad], shrink)):
            np.minimum.at(sides, idx, np.maximum(sides[idx] * f, min_side * 0.5))
    return sides


def projected_thickness(
    layout: Layout, shape: tuple[int, int], spacing: float
) -> np.ndarray:
    """Projected particle thickness (nm) sampled at the centres of a regular grid.

    Parameters
    ----------
    shape : (rows, cols) of the grid.
    spacing : grid spacing (nm); sample (r, c) sits at ((r + 0.5) spacing, (c + 0.5) spacing).

    Returns
    -------
    (rows, cols) float64 thickness map: the cube side inside each (rounded-corner)
    square footprint, 0 elsewhere; overlapping footprints add.

    Examples
    --------
    Thickness (nm) on a 24 x 24 grid of 2 nm spacing over the 48 nm field:

    >>> import numpy as np
    >>> layout = generate_layout(np.random.default_rng(0), (48.0, 48.0))
    >>> thickness = projected_thickness(layout, (24, 24), 2.0)
    >>> thickness.shape, bool(thickness.min() >= 0)
    ((24, 24), True)
    """
    rows, cols = shape
    out = np.zeros(shape)
    n = layout.params.corner_exponent
    for (cy, cx), a, th in zip(layout.centers, layout.sides, layout.rotations):
        reach = 0.75 * a
        r0 = max(int(np.floor((cy - reach) / spacing - 0.5)), 0)
        r1 = min(int(np.ceil((cy + reach) / spacing - 0.5)) + 1, rows)
        c0 = max(int(np.floor((cx - reach) / spacing - 0.5)), 0)
        c1 = min(int(np.ceil((cx + reach) / spacing - 0.5)) + 1, cols)
        if r0 >= r1 or c0 >= c1:
            continue
        y = (np.arange(r0, r1) + 0.5)[:, None] * spacing - cy
        x = (np.arange(c0, c1) + 0.5)[None, :] * spacing - cx
        u = (x * np.cos(th) + y * np.sin(th)) / (0.5 * a)
        v = (-x * np.sin(th) + y * np.cos(th)) / (0.5 * a)
        out[r0:r1, c0:c1] += a * (np.abs(u) ** n + np.abs(v) ** n <= 1.0)
    return out


def region_map(layout: Layout, shape: tuple[int, int], pixel_size: float) -> np.ndarray:
    """(h, w) int8 region label of every SI pixel (labels index :data:`REGION_NAMES`).

    Rules, applied to each pixel centre in this order of precedence:

    * ``vacuum`` (5): beyond the film edge (no support under the beam);
    * ``edge`` (4): on the support within ``edge_width`` nm of the film edge;
    * ``hole`` (3): the nearest lattice site is one emptied to make a hole in the array;
    * ``vacancy`` (2): the nearest lattice site is a (single) vacancy;
    * ``interior`` (0): the beam passes through a cube of the array;
    * ``gap`` (1): on the support between cubes.

    "Nearest lattice site" means the Voronoi cell of the (jittered) site, i.e. the
    site's cube footprint plus half the surrounding gaps.

    Examples
    --------
    >>> import numpy as np
    >>> layout = generate_layout(np.random.default_rng(0), (48.0, 48.0))
    >>> regions = region_map(layout, (24, 24), 2.0)
    >>> regions.shape, regions.dtype
    ((24, 24), dtype('int8'))
    """
    h, w = shape
    yy, xx = np.meshgrid((np.arange(h) + 0.5) * pixel_size, (np.arange(w) + 0.5) * pixel_size,
                         indexing="ij")
    labels = np.full(shape, REGION_NAMES.index("gap"), dtype=np.int8)
    thickness = projected_thickness(layout, shape, pixel_size)
    labels[thickness > 0] = REGION_NAMES.index("interior")
    if len(layout.sites):
        _, nearest = cKDTree(layout.sites).query(np.column_stack([yy.ravel(), xx.ravel()]))
        kind = layout.site_kind[nearest].reshape(shape)
        labels[kind == VACANCY] = REGION_NAMES.index("vacancy")
        labels[kind == HOLE] = REGION_NAMES.index("hole")
    d = layout.edge_distance(yy, xx)
    labels[(d >= 0) & (d < layout.params.edge_width)] = REGION_NAMES.index("edge")
    labels[d < 0] = REGION_NAMES.index("vacuum")
    return labels
