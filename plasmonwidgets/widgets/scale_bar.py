"""Scale bars for bqplot image figures: a round physical length drawn on the image.

The length is the largest 1, 2 or 5 × 10^k (in nm, or µm from 1000 nm) that fits in
about a quarter of the image width, so the label always reads as a round number
("20 nm"). The bar is two :class:`bqplot.Lines` (a dark edge under a white bar, so
it shows on bright and dark images) and a :class:`bqplot.Label`, drawn in the
image's own pixel scales: it zooms with the image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import bqplot as bq
import numpy as np

__all__ = ["ScaleBar", "add_scale_bar", "format_length", "nice_length", "to_nm"]

#: length units understood by :func:`to_nm`, in nm
_NM_PER = {"nm": 1.0, "µm": 1e3, "μm": 1e3, "um": 1e3, "mm": 1e6, "å": 0.1, "a": 0.1, "angstrom": 0.1,
           "pm": 1e-3}


def to_nm(size: float, unit: str) -> float | None:
    """``size`` in ``unit`` converted to nm, or None if ``unit`` is not a length (e.g. "px").

    Examples
    --------
    >>> to_nm(2.5, "Å")
    0.25
    >>> to_nm(1.0, "px") is None
    True
    """
    factor = _NM_PER.get(str(unit).strip().lower())
    return None if factor is None else float(size) * factor


def nice_length(limit: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``limit`` (> 0).

    Examples
    --------
    >>> nice_length(8.0), nice_length(23.0), nice_length(0.7)
    (5.0, 20.0, 0.5)
    """
    limit = float(limit)
    if not (np.isfinite(limit) and limit > 0):
        raise ValueError(f"limit must be a positive finite length, got {limit}")
    decade = 10.0 ** math.floor(math.log10(limit))
    for step in (5.0, 2.0, 1.0):
        if step * decade <= limit * (1 + 1e-9):
            return step * decade
    return decade  # unreachable: 1 × decade <= limit by construction


def format_length(length: float, unit: str = "nm") -> str:
    """A short label, switching nm to µm from 1000 nm: ``format_length(2000.0)`` -> "2 µm".

    Examples
    --------
    >>> format_length(20.0), format_length(2000.0), format_length(5.0, "Å")
    ('20 nm', '2 µm', '5 Å')
    """
    if unit == "nm" and length >= 1000:
        length, unit = length / 1000, "µm"
    return f"{length:g} {unit}"


@dataclass
class ScaleBar:
    """A scale bar on one bqplot figure; see :func:`add_scale_bar`.

    Attributes
    ----------
    length : float
        Physical length of the bar, ``unit``.
    unit : str
        "nm" for physical lengths, else the data's own unit (e.g. "px").
    pixels : float
        Length of the bar in image pixels (``length / pixel_size``).
    label : str
        Text drawn above the bar, e.g. "20 nm".
    marks : list of the bqplot marks added to the figure (edge, bar, label)

    Examples
    --------
    Returned by :func:`add_scale_bar`, here 5 nm over a 16 x 16 image of 2 nm pixels:

    >>> import bqplot as bq, numpy as np
    >>> img = bq.HeatMap(x=np.arange(16), y=np.arange(16), color=np.zeros((16, 16)),
    ...                  scales={"x": bq.LinearScale(), "y": bq.LinearScale(),
    ...                          "color": bq.ColorScale()})
    >>> bar = add_scale_bar(bq.Figure(marks=[img]), pixel_size=2.0, unit="nm", shape=(16, 16))
    >>> bar.length, bar.unit
    (5.0, 'nm')
    """

    length: float
    unit: str
    pixels: float
    label: str
    pixel_size: float
    marks: list[Any] = field(default_factory=list)

    def place(self, shape: tuple[int, int]) -> None:
        """Move the bar to the lower left of an image of ``shape`` (rows, cols) pixels."""
        rows, cols = (int(v) for v in shape)
        margin = 0.06 * cols
        x0 = -0.5 + margin
        y = rows - 0.5 - 0.08 * rows
        edge, bar, text = self.marks
        for line in (edge, bar):
            with line.hold_sync():
                line.x, line.y = [x0, x0 + self.pixels], [y, y]
        with text.hold_sync():
            text.x, text.y = [x0 + self.pixels / 2], [y - 0.05 * rows]


def add_scale_bar(
    figure: bq.Figure,
    *,
    pixel_size: float,
    unit: str = "nm",
    shape: tuple[int, int],
    fraction: float = 0.3,
    font_size: int = 11,
) -> ScaleBar:
    """Draw a round-length scale bar on an image ``figure`` and return it.

    Parameters
    ----------
    figure : bqplot.Figure
        Its first mark is the image (a HeatMap or Image) whose x and y scales
        count pixels, columns and rows (row 0 at the top: a reversed y scale).
    pixel_size : float
        Size of one image pixel in ``unit``.
    unit : str
        Length unit of ``pixel_size``: "nm", "µm", "Å", ... (converted to nm), or
        anything else ("px") to draw the bar in that unit.
    shape : (rows, cols)
        Image size in pixels; the bar spans at most ``fraction`` of the width.
    fraction : float
        Longest bar as a fraction of the image width.
    font_size : int
        Label size, CSS pixels.

    Examples
    --------
    >>> import bqplot as bq, numpy as np
    >>> img = bq.HeatMap(x=np.arange(16), y=np.arange(16), color=np.zeros((16, 16)),
    ...                  scales={"x": bq.LinearScale(), "y": bq.LinearScale(reverse=True),
    ...                          "color": bq.ColorScale()})
    >>> bar = add_scale_bar(bq.Figure(marks=[img]), pixel_size=2.0, unit="nm", shape=(16, 16))
    >>> bar.label, bar.pixels
    ('5 nm', 2.5)
    """
    if not figure.marks:
        raise ValueError("add_scale_bar needs a figure that already shows an image mark")
    size = float(pixel_size)
    if not (np.isfinite(size) and size > 0):
        raise ValueError(f"pixel_size must be a positive finite number, got {pixel_size}")
    rows, cols = (int(v) for v in shape)
    if rows < 1 or cols < 1:
        raise ValueError(f"shape must be (rows, cols) >= 1, got {shape}")
    nm = to_nm(size, unit)
    bar_unit = "nm" if nm is not None else str(unit)
    size_in_unit = nm if nm is not None else size
    length = nice_length(fraction * cols * size_in_unit)
    scales = {"x": figure.marks[0].scales["x"], "y": figure.marks[0].scales["y"]}
    edge = bq.Lines(x=[0, 1], y=[0, 0], scales=scales, colors=["#000000"], stroke_width=5,
                    opacities=[0.6])
    bar = bq.Lines(x=[0, 1], y=[0, 0], scales=scales, colors=["#ffffff"], stroke_width=3)
    label = format_length(length, bar_unit)
    text = bq.Label(x=[0], y=[0], text=[label], scales=scales, colors=["#ffffff"], align="middle",
                    default_size=font_size, font_weight="bold")
    out = ScaleBar(length=length, unit=bar_unit, pixels=length / size_in_unit, label=label,
                   pixel_size=size_in_unit, marks=[edge, bar, text])
    out.place((rows, cols))
    figure.marks = [*figure.marks, edge, bar, text]
    return out
