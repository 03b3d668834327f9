"""Encoding tiles into latent space and decoding a uniform latent grid.

The paper's latent analysis (Fig. 4-6): every observed input is encoded to a
latent vector z (d,), and a uniform grid over two latent dimensions is decoded
to show what the model has learned to generate there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._inputs import (
    batched,
    check_compatible,
    check_model,
    check_pairs,
    input_shape,
    inputs_of,
    target_shape,
)

__all__ = ["LatentGrid", "as_latent", "embed", "latent_grid"]


def embed(model: Any, pairs: Any, batch_size: int = 1024) -> np.ndarray:
    """(N, d) float32 latent vectors of all encoder inputs in ``pairs``.

    ``pairs`` is a :class:`TilePairs` (its tiles are encoded for im2spec, its
    spectra for spec2im) or an array of encoder inputs (N, w, w) / (N, E) in
    physical units. Encoding runs in batches of ``batch_size`` so memory stays
    bounded for large scans.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")          # 144 tiles (8, 8)

    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> embed(model, pairs).shape                                 # one latent vector per tile
    (144, 2)
    """
    check_model(model)
    if isinstance(pairs, np.ndarray):
        x = pairs
        if x.shape[1:] != input_shape(model):
            raise ValueError(
                f"a {model.direction} encoder takes inputs of shape (N, "
                f"{', '.join(map(str, input_shape(model)))}), got {x.shape}"
            )
    else:
        check_pairs(pairs)
        check_compatible(model, pairs)
        x = inputs_of(model, pairs)
    return batched(model.encode, x, (int(model.latent_dim),), batch_size)


def as_latent(z: Any, latent_dim: int, name: str = "z") -> np.ndarray:
    """Validate latent vectors: (N, d) or (d,) finite floats -> float64 array.

    Examples
    --------
    >>> as_latent([0.5, -1.0], 2)                                 # one point (d,)
    array([ 0.5, -1. ])
    >>> as_latent([0.5], 2)
    Traceback (most recent call last):
    ...
    ValueError: z must have shape (N, 2) or (2,) for this 2-d latent space, got (1,)
    """
    try:
        out = np.asarray(z, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if out.ndim not in (1, 2) or out.shape[-1] != latent_dim:
        raise ValueError(
            f"{name} must have shape (N, {latent_dim}) or ({latent_dim},) for this "
            f"{latent_dim}-d latent space, got {out.shape}"
        )
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} contains NaN/Inf")
    return out


@dataclass(frozen=True)
class LatentGrid:
    """A uniform grid over two latent dimensions and what the decoder makes of it.

    ``decoded[i, j]`` is the decoder output at latent vector ``z[i, j]``, whose
    ``dims[0]`` coordinate is ``x[j]`` (columns) and ``dims[1]`` coordinate is
    ``y[i]`` (rows, increasing with i; flip vertically to draw with y up). All
    other latent coordinates are held at ``z_fixed`` (the median of the
    reference encodings).

    Attributes
    ----------
    x, y : (n,) latent coordinates along dims[0] and dims[1]
    z : (n, n, d) full latent vectors
    decoded : (n, n, E) spectra (im2spec) or (n, n, w, w) tiles (spec2im), physical units
    dims : the two latent dimensions spanned
    z_fixed : (d,) the vector the other dimensions are taken from
    direction : "im2spec" or "spec2im"

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")          # 144 tiles (8, 8)

    >>> model = pw.Spec2Im(n_energy=32, window=8, latent_dim=2, pool=4, device="cpu")
    >>> grid = latent_grid(model, n=3, pairs=pairs)
    >>> grid.decoded.shape, grid.coords.shape                     # 3x3 tiles (8, 8); (z0, z1)
    ((3, 3, 8, 8), (3, 3, 2))
    """

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    decoded: np.ndarray
    dims: tuple[int, int]
    z_fixed: np.ndarray
    direction: str

    @property
    def coords(self) -> np.ndarray:
        """(n, n, 2) the (dims[0], dims[1]) coordinates of each grid node."""
        return self.z[..., list(self.dims)]


def _check_dims(dims: Any, latent_dim: int) -> tuple[int, int]:
    try:
        d0, d1 = (int(d) for d in dims)
    except (TypeError, ValueError):
        raise ValueError(f"dims must be two latent dimension indices, got {dims!r}") from None
    if latent_dim < 2:
        raise ValueError(f"a latent grid needs at least 2 latent dimensions, model has {latent_dim}")
    if d0 == d1 or not (0 <= d0 < latent_dim and 0 <= d1 < latent_dim):
        raise ValueError(
            f"dims must be two different indices in 0..{latent_dim - 1}, got {(d0, d1)}"
        )
    return d0, d1


def latent_grid(
    model: Any,
    n: int = 8,
    dims: tuple[int, int] = (0, 1),
    pairs: Any = None,
    z: Any = None,
    *,
    z_ref: Any = None,
    ranges: Any = None,
    batch_size: int = 1024,
) -> LatentGrid:
    """Decode an n×n uniform grid spanning the observed range of two latent dims.

    Parameters
    ----------
    model : Im2Spec or Spec2Im
    n : grid nodes per side (>= 2)
    dims : the two latent dimensions to span (x, y)
    pairs : TilePairs, optional
        Observed data; encoded to give the reference latent vectors.
    z, z_ref : array (N, d), optional
        Reference latent vectors (e.g. from :func:`embed`) instead of ``pairs``;
        ``z_ref`` is another name for ``z``.
    ranges : ((x_min, x_max), (y_min, y_max)), optional
        Span these latent ranges instead of the observed min..max.

    Returns
    -------
    LatentGrid

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")          # 144 tiles (8, 8)

    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=3, device="cpu")
    >>> grid = latent_grid(model, n=4, dims=(0, 2), pairs=pairs)  # spans z0 and z2, z1 held
    >>> grid.decoded.shape                                        # 4x4 spectra (E,)
    (4, 4, 32)
    """
    check_model(model)
    d = int(model.latent_dim)
    d0, d1 = _check_dims(dims, d)
    n = int(n)
    if n < 2:
        raise ValueError(f"n must be >= 2 grid nodes per side, got {n}")
    if z is not None and z_ref is not None:
        raise ValueError("pass the reference latent vectors as z or z_ref, not both")
    ref = z if z is not None else z_ref
    if ref is None:
        if pairs is None:
            raise ValueError(
                "pass pairs= (observed tiles) or z= (their encodings) so the grid spans "
                "the latent region the data actually occupies"
            )
        ref = embed(model, pairs, batch_size)
    ref = as_latent(ref, d, "z")
    ref = ref.reshape(-1, d)
    if ranges is None:
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        ranges = ((lo[d0], hi[d0]), (lo[d1], hi[d1]))
    try:
        (x0, x1), (y0, y1) = ((float(a), float(b)) for a, b in ranges)
    except (TypeError, ValueError):
        raise ValueError(
            f"ranges must be ((x_min, x_max), (y_min, y_max)), got {ranges!r}"
        ) from None
    x = np.linspace(x0, x1, n)
    y = np.linspace(y0, y1, n)
    z_fixed = np.median(ref, axis=0)
    grid = np.broadcast_to(z_fixed, (n, n, d)).copy()
    grid[..., d0] = x[None, :]
    grid[..., d1] = y[:, None]
    flat = grid.reshape(n * n, d).astype(np.float32)
    decoded = batched(model.decode, flat, target_shape(model), batch_size)
    return LatentGrid(
        x=x,
        y=y,
        z=grid,
        decoded=decoded.reshape(n, n, *target_shape(model)),
        dims=(d0, d1),
        z_fixed=z_fixed,
        direction=model.direction,
    )
