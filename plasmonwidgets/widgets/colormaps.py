"""Colour lookup tables (LUTs) for the image widgets.

A LUT is a (256, 4) uint8 RGBA array; the browser maps a value v in the display
range [lo, hi] to entry ``round(255 * (v - lo) / (hi - lo))``. The continuous maps
are piecewise-linear through 17 anchors sampled from matplotlib's perceptually
uniform maps (within a few levels of the originals), so no plotting library is
needed at run time. ``"labels"`` is categorical: entry k is category k's colour,
used with the display range (0, 255) so integer labels map one-to-one.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CMAPS", "canonical", "hex_colors", "lut", "lut_bytes"]

_ANCHORS = {
    "viridis": "440154 48186a 472d7b 424086 3b528b 33638d 2c728e 26828e 21918c 1fa088 28ae80 "
    "3fbc73 5ec962 84d44b addc30 d8e219 fde725",
    "magma": "000004 0a0822 1d1147 36106b 51127c 6a1c81 832681 9c2e7f b73779 d0416f e75263 "
    "f56b5c fc8961 fea772 fec488 fde2a3 fcfdbf",
    "inferno": "000004 0b0724 210c4a 3d0965 57106e 71196e 8a226a a32c61 bc3754 d24644 e45a31 "
    "f1731d f98e09 fcac11 f9cb35 f2ea69 fcffa4",
    "coolwarm": "3b4cc0 4e68d8 6282ea 779af7 8db0fe a3c2fe b9d0f9 ccd9ed dddcdc ecd3c5 f5c4ac "
    "f7b093 f4987a eb7d62 dd5f4b ca3b37 b40426",
    "grey": "000000 ffffff",
}
# tab10: distinguishable categories for cluster / region labels
_CATEGORIES = "1f77b4 ff7f0e 2ca02c d62728 9467bd 8c564b e377c2 7f7f7f bcbd22 17becf"

CMAPS = ("grey", "viridis", "magma", "inferno", "coolwarm", "labels")
_ALIASES = {"gray": "grey", "greys": "grey", "grays": "grey"}


def _hex_rgb(codes: str) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (0, 2, 4)] for c in codes.split()], float)


def canonical(name: str) -> str:
    """The canonical colormap name; raises ValueError listing the choices."""
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in CMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(CMAPS)}")
    return key


def lut(name: str) -> np.ndarray:
    """(256, 4) uint8 RGBA lookup table for colormap ``name`` (see :data:`CMAPS`)."""
    key = canonical(name)
    out = np.full((256, 4), 255, dtype=np.uint8)
    if key == "labels":
        rgb = _hex_rgb(_CATEGORIES)
        out[:, :3] = rgb[np.arange(256) % len(rgb)]
        return out
    anchors = _hex_rgb(_ANCHORS[key])
    t = np.linspace(0.0, 1.0, len(anchors))
    x = np.linspace(0.0, 1.0, 256)
    for k in range(3):
        out[:, k] = np.round(np.interp(x, t, anchors[:, k]))
    return out


def lut_bytes(name: str) -> bytes:
    """:func:`lut` as 1024 raw bytes (RGBA per entry), the form the browser receives."""
    return lut(name).tobytes()


def hex_colors(name: str, n: int = 17) -> list[str]:
    """``n`` evenly spaced "#rrggbb" stops of ``name``, for bqplot ``ColorScale(colors=...)``."""
    table = lut(name)
    idx = np.round(np.linspace(0, 255, int(n))).astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*table[i, :3]) for i in idx]
