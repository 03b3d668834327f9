"""Colour lookup tables (LUTs) for the image widgets.

A LUT is a (256, 4) uint8 RGBA array; the browser maps a value v in the display
range [lo, hi] to entry ``round(255 * (v - lo) / (hi - lo))``. The continuous maps
are piecewise-linear through 17 anchors sampled from matplotlib's perceptually
uniform maps (within a few levels of the originals), so no plotting library is
needed at run time. ``"labels"`` is categorical: entry k is category k's colour,
used with the display range (0, 255) so integer labels map one-to-one.

:data:`NMF_COLORS` is the one palette of NMF components: the dashboard's endmember
curves and map titles and the tutorial notebooks' matplotlib figures all take
component k's colour from it, so C1 is the same colour everywhere.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CMAPS", "MASKED_COLOR", "NMF_COLORS", "canonical", "hex_colors", "lut", "lut_bytes", "nice_ticks",
           "nmf_color", "colorbar_html"]

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

#: colour of NMF component k (0-based) is NMF_COLORS[k % 8]; chosen apart from the blue of
#: measured curves and from each other (Okabe-Ito, safe for colour-blind readers)
NMF_COLORS = ("#e69f00", "#009e73", "#cc79a7", "#0072b2", "#d55e00", "#56b4e9", "#f0e442", "#000000")
#: pixels left out of a map (e.g. near-zero signal): a neutral grey no colormap here contains
MASKED_COLOR = "#9e9e9e"

CMAPS = ("grey", "viridis", "magma", "inferno", "coolwarm", "labels")
_ALIASES = {"gray": "grey", "greys": "grey", "grays": "grey"}


def _hex_rgb(codes: str) -> np.ndarray:
    return np.array([[int(c[i : i + 2], 16) for i in (0, 2, 4)] for c in codes.split()], float)


def canonical(name: str) -> str:
    """The canonical colormap name; raises ValueError listing the choices.

    Examples
    --------
    >>> canonical("gray"), canonical("viridis")
    ('grey', 'viridis')
    """
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in CMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(CMAPS)}")
    return key


def lut(name: str) -> np.ndarray:
    """(256, 4) uint8 RGBA lookup table for colormap ``name`` (see :data:`CMAPS`).

    Examples
    --------
    >>> table = lut("viridis")
    >>> table.shape, table.dtype
    ((256, 4), dtype('uint8'))
    """
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
    """:func:`lut` as 1024 raw bytes (RGBA per entry), the form the browser receives.

    Examples
    --------
    >>> len(lut_bytes("magma"))
    1024
    """
    return lut(name).tobytes()


def hex_colors(name: str, n: int = 17) -> list[str]:
    """``n`` evenly spaced "#rrggbb" stops of ``name``, for bqplot ``ColorScale(colors=...)``.

    Examples
    --------
    >>> hex_colors("grey", n=3)
    ['#000000', '#808080', '#ffffff']
    """
    table = lut(name)
    idx = np.round(np.linspace(0, 255, int(n))).astype(int)
    return ["#{:02x}{:02x}{:02x}".format(*table[i, :3]) for i in idx]


def nmf_color(k: int) -> str:
    """"#rrggbb" colour of NMF component ``k`` (0-based), from :data:`NMF_COLORS`.

    Examples
    --------
    >>> nmf_color(0), nmf_color(1)
    ('#e69f00', '#009e73')
    """
    return NMF_COLORS[int(k) % len(NMF_COLORS)]


def nice_ticks(lo: float, hi: float, n: int = 5) -> tuple[list[float], str]:
    """Round tick values inside [lo, hi] (steps of 1, 2 or 5 × 10^k) and a d3 format for them.

    At most about ``n`` ticks. Returns ``(ticks, fmt)``, e.g. for a colour bar axis.

    Examples
    --------
    >>> nice_ticks(-3.6, 241.6)
    ([0.0, 50.0, 100.0, 150.0, 200.0], '.0f')
    """
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
        raise ValueError(f"need finite lo < hi, got ({lo}, {hi})")
    raw = (hi - lo) / max(int(n), 1)
    decade = 10.0 ** np.floor(np.log10(raw))
    step = next(m * decade for m in (1.0, 2.0, 5.0, 10.0) if m * decade >= raw * (1 - 1e-9))
    first = np.ceil(lo / step - 1e-9) * step
    ticks = [float(round(v, 12)) + 0.0 for v in np.arange(first, hi + step * 1e-9, step)]
    digits = max(0, -int(np.floor(np.log10(step) + 1e-9)))
    return ticks, f".{digits}f"


def colorbar_html(name: str, lo: float, hi: float, *, width: int = 120, label: str = "") -> str:
    """A horizontal colour bar of colormap ``name`` over [lo, hi] with round ticks, as HTML.

    For small images whose own widget has no room for a colour bar; ``label``
    (quantity and unit) is written above it. Plain HTML and CSS: it needs no kernel.

    Examples
    --------
    >>> "linear-gradient" in colorbar_html("viridis", 0.0, 2.5, label="abundance")
    True
    """
    import html as _html

    stops = ", ".join(hex_colors(name, 9))
    ticks, fmt = nice_ticks(lo, hi, n=3)
    digits = int(fmt[1:-1])
    marks = "".join(
        f"<span style='position:absolute;left:{100 * (t - lo) / (hi - lo):.2f}%;top:10px;"
        "transform:translateX(-50%);text-align:center;line-height:1.1'>"
        "<span style='display:block;margin:0 auto;width:1px;height:3px;background:currentColor'>"
        f"</span>{t:.{digits}f}</span>"
        for t in ticks
    )
    title = (f"<div style='line-height:1.2'>{_html.escape(label)}</div>" if label else "")
    return (
        f"<div style='font-size:var(--jp-ui-font-size0,11px);color:var(--jp-ui-font-color2,#616161);"
        f"width:{int(width)}px;margin-bottom:4px'>{title}"
        f"<div style='position:relative;height:26px;margin:0 8px'>"
        f"<div style='height:9px;background:linear-gradient(to right, {stops});"
        f"border:1px solid var(--jp-border-color1,#bdbdbd)'></div>{marks}</div></div>"
    )
