"""TileView: the measured HAADF tile beside model-predicted tiles, on one colour scale.

Each tile is a bqplot ``HeatMap`` in its own small square figure; all of them
share a single ``ColorScale``, so equal intensities look equal across measured
and predicted tiles. Given the SpectrumImage (or a ``vrange``) the scale is
fixed: the HAADF's 0.5-99.5 percentiles over the whole image, computed once, so
a click never re-stretches it, vacuum is black and predicted values outside the
range are clipped to its ends. Without one, the range follows the tiles shown.
Every tile marks the beam position (the tile centre) and, with a pixel size,
carries a scale bar.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np

from . import colormaps
from ._message import message_html
from .scale_bar import ScaleBar, add_scale_bar

__all__ = ["TileView"]

MEASURED = "measured"
_RAMP = 64  # colour bar steps
_TIGHT = {"top": 2, "bottom": 2, "left": 2, "right": 2}
BEAM_COLOR = "#ff2d55"  # the beam marker: a colour no grey tile contains
HAADF_PERCENTILES = (0.5, 99.5)


def haadf_range(si: Any, percentiles: tuple[float, float] = HAADF_PERCENTILES) -> tuple[float, float]:
    """(lo, hi) percentiles of the finite values of ``si.haadf`` (or an (H, W) array).

    The fixed display range of HAADF tiles: the whole image's, so tiles from
    different probe positions and models are drawn alike.

    Examples
    --------
    >>> haadf_range(np.arange(1001.0))
    (5.0, 995.0)
    """
    image = np.asarray(getattr(si, "haadf", si), dtype=np.float64)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        raise ValueError("the HAADF has no finite values; cannot derive a display range")
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if not hi > lo:
        lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    return lo, hi


def _columns(ramp: np.ndarray) -> np.ndarray:
    """(n, 2) colour-bar image; bqplot squeezes a single column away."""
    return np.repeat(ramp[:, None], 2, axis=1)


class TileView(ipw.VBox):
    """Measured (w, w) HAADF tile and predicted tiles (e.g. spec2im outputs) side by side.

    Parameters
    ----------
    cmap : str
        Colormap name from :data:`colormaps.CMAPS` (default grey).
    tile_size : int
        Side of each tile figure in CSS pixels.
    label : str, optional
        Caption of the colour bar (the tiles' intensity quantity and unit);
        "HAADF (counts)" with an ``si``, else "HAADF".
    si : SpectrumImage, optional
        Fixes the colour range to :func:`haadf_range` of its HAADF and gives
        the tiles' pixel size (``si.pixel_size / si.scale``) for the scale bar.
    vrange : (lo, hi), optional
        A fixed colour range instead of the HAADF's; values outside are clipped.
    pixel_size : float, optional
        Size of one tile pixel in ``pixel_unit`` (overrides the SI's); no scale
        bar without it.
    pixel_unit : str
        Unit of ``pixel_size`` ("nm", "µm", "Å", ...).

    Attributes
    ----------
    color_scale : bqplot.ColorScale shared by all tiles and the colour bar
    heatmaps : dict name -> bqplot.HeatMap ("measured" first)
    figures : dict name -> bqplot.Figure
    colorbar : bqplot.Figure showing the shared range
    fixed_range : (lo, hi) or None, the range every tile is drawn on
    beams : dict name -> bqplot.Scatter marking the tile centre
    scale_bars : dict name -> :class:`ScaleBar` (empty without a pixel size)
    children_by_name : "tiles" (HBox), "colorbar" and "message" (HTML)

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> si = pw.datasets.nanocube_array(size=24)
    >>> tv = TileView(si=si)
    >>> tv.set_tiles(measured=np.zeros((8, 8)), predictions={"model": np.full((8, 8), -5.0)})
    >>> tv.color_range == tv.fixed_range
    True
    """

    def __init__(
        self,
        cmap: str = "grey",
        tile_size: int = 150,
        label: str | None = None,
        *,
        si: Any = None,
        vrange: tuple[float, float] | None = None,
        pixel_size: float | None = None,
        pixel_unit: str | None = None,
    ):
        self.color_scale = bq.ColorScale(colors=colormaps.hex_colors(cmap), min=0.0, max=1.0)
        self.tile_size = int(tile_size)
        self.heatmaps: dict[str, bq.HeatMap] = {}
        self.figures: dict[str, bq.Figure] = {}
        self.beams: dict[str, bq.Scatter] = {}
        self.scale_bars: dict[str, ScaleBar] = {}
        self._cells: dict[str, ipw.VBox] = {}
        self.fixed_range: tuple[float, float] | None = None
        if vrange is not None:
            lo, hi = (float(v) for v in vrange)
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"vrange must be finite (lo, hi) with hi > lo, got {vrange}")
            self.fixed_range = (lo, hi)
        elif si is not None:
            self.fixed_range = haadf_range(si)
        if pixel_size is None and si is not None:
            pixel_size = float(si.pixel_size) / int(getattr(si, "scale", 1))
        if pixel_unit is None:
            pixel_unit = str(getattr(si, "pixel_unit", "nm"))
        self.pixel_size = None if pixel_size is None else float(pixel_size)
        self.pixel_unit = pixel_unit
        if label is None:
            label = "HAADF (counts)" if si is not None else "HAADF"
        self.colorbar = self._make_colorbar()
        self.range_note = ipw.HTML(layout=ipw.Layout(max_width="96px"))
        if self.fixed_range is not None:
            self._set_range(*self.fixed_range)
            what = "fixed: HAADF 0.5–99.5th percentile" if vrange is None else "fixed range"
            self.range_note.value = (
                "<div style='font-size:80%;line-height:1.2;color:var(--jp-ui-font-color2,#616161)'>"
                f"{what}; <span style='color:{BEAM_COLOR}'>+</span> beam</div>")
        # the note sits above the bar so the bar stays the cell's last child
        self._bar_cell = ipw.VBox([self._caption(label), self.range_note, self.colorbar])
        self.tiles_box = ipw.HBox([], layout=ipw.Layout(align_items="flex-end"))
        self.message = ipw.HTML("")
        self.children_by_name = {
            "tiles": self.tiles_box, "colorbar": self.colorbar, "message": self.message,
        }
        super().__init__([self.tiles_box, self.message])

    @property
    def color_range(self) -> tuple[float, float]:
        """(min, max) of the shared colour scale, HAADF intensity units."""
        return float(self.color_scale.min), float(self.color_scale.max)

    def set_tiles(
        self,
        measured: Any = None,
        predictions: Mapping[str, Any] | None = None,
        vmin: float | None = None,
        vmax: float | None = None,
    ) -> None:
        """Show ``measured`` (w, w) and ``predictions`` {name: (w, w)} on one colour scale.

        Tiles whose name is not passed are removed. The colour range is the
        fixed range when the view has one (values outside are clipped to its
        ends), else the finite min/max over all tiles; ``vmin``/``vmax`` override
        either.
        """
        tiles: dict[str, np.ndarray] = {}
        if measured is not None:
            tiles[MEASURED] = self._check(measured, MEASURED)
        for name, tile in (predictions or {}).items():
            if name == MEASURED:
                raise ValueError(f"{MEASURED!r} is reserved for the measured tile")
            tiles[str(name)] = self._check(tile, f"prediction {name!r}")
        shapes = {a.shape for a in tiles.values()}
        if len(shapes) > 1:
            raise ValueError(
                f"all tiles must have the same shape, got {dict((n, a.shape) for n, a in tiles.items())}"
            )
        if self.fixed_range is not None:
            lo, hi = self.fixed_range
        else:
            values = np.concatenate([a[np.isfinite(a)] for a in tiles.values()]) if tiles else []
            lo = float(np.min(values)) if len(values) else 0.0
            hi = float(np.max(values)) if len(values) else 1.0
        lo = lo if vmin is None else float(vmin)
        hi = hi if vmax is None else float(vmax)
        if not hi > lo:
            lo, hi = lo - 0.5, lo + 0.5

        if (lo, hi) != self.color_range:
            self._set_range(lo, hi)
        if self.fixed_range is not None or vmin is not None or vmax is not None:
            # the browser would extrapolate the colour ramp; clip so what is drawn is what is stated
            tiles = {n: np.clip(a, lo, hi) for n, a in tiles.items()}
        for name, tile in tiles.items():
            mark = self.heatmaps.get(name)
            rows, cols = tile.shape
            if mark is None:
                self._add(name, tile)
                continue
            with mark.hold_sync():
                if np.shape(mark.color) != tile.shape:
                    mark.x, mark.y = np.arange(cols), np.arange(rows)
                    self._place_overlays(name, tile.shape)
                mark.color = tile
        stale = [n for n in self.heatmaps if n not in tiles]
        for name in stale:
            del self.heatmaps[name]
            del self.figures[name]
            del self._cells[name]
            del self.beams[name]
            self.scale_bars.pop(name, None)
        if stale or len(self._cells) + 1 != len(self.tiles_box.children):
            self.tiles_box.children = (*self._cells.values(), self._bar_cell)

    def tile(self, name: str) -> np.ndarray:
        """The (w, w) array currently shown as ``name`` (clipped to a fixed range)."""
        return np.asarray(self.heatmaps[name].color)

    def show_error(self, text: str) -> None:
        """Show ``text`` as a visible error under the tiles ('' hides it)."""
        self.message.value = message_html(text)

    # --- helpers ------------------------------------------------------------
    @staticmethod
    def _check(tile: Any, what: str) -> np.ndarray:
        try:
            arr = np.asarray(tile, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{what} tile must be a numeric (w, w) array: {exc}") from None
        if arr.ndim != 2 or arr.size == 0:
            raise ValueError(f"{what} tile must be a non-empty 2-D (w, w) array, got shape {arr.shape}")
        return arr

    def _add(self, name: str, tile: np.ndarray) -> None:
        rows, cols = tile.shape
        # image convention: row 0 at the top
        mark = bq.HeatMap(
            x=np.arange(cols), y=np.arange(rows), color=tile,
            scales={"x": bq.LinearScale(), "y": bq.LinearScale(reverse=True),
                    "color": self.color_scale},
        )
        size = f"{self.tile_size}px"
        self.heatmaps[name] = mark
        # the beam sits at the tile centre: row/col w // 2, as tiles.make_tiles cuts them
        self.beams[name] = bq.Scatter(
            x=[cols // 2], y=[rows // 2], scales={"x": mark.scales["x"], "y": mark.scales["y"]},
            marker="plus", colors=[BEAM_COLOR], default_size=max(24, self.tile_size // 2),
            stroke_width=2,
        )
        self.figures[name] = bq.Figure(
            marks=[mark, self.beams[name]], fig_margin=_TIGHT, padding_x=0, padding_y=0,
            layout=ipw.Layout(width=size, height=size),
        )
        if self.pixel_size is not None:
            self.scale_bars[name] = add_scale_bar(
                self.figures[name], pixel_size=self.pixel_size, unit=self.pixel_unit,
                shape=tile.shape, font_size=10,
            )
        self._cells[name] = ipw.VBox([self._caption(name), self.figures[name]],
                                     layout=ipw.Layout(margin="0 8px 0 0"))

    def _caption(self, text: str) -> ipw.HTML:
        # as wide as a tile and wrapping, so long model names never run into each other
        return ipw.HTML(
            f"<div style='line-height:1.2;font-size:90%'><b>{html.escape(text)}</b></div>",
            layout=ipw.Layout(max_width=f"{max(self.tile_size, 72)}px"),
        )

    def _place_overlays(self, name: str, shape: tuple[int, int]) -> None:
        rows, cols = shape
        beam = self.beams[name]
        with beam.hold_sync():
            beam.x, beam.y = [cols // 2], [rows // 2]
        bar = self.scale_bars.get(name)
        if bar is not None:
            # the length stays round; a much smaller tile gets a new bar
            figure = self.figures[name]
            figure.marks = [m for m in figure.marks if m not in bar.marks]
            self.scale_bars[name] = add_scale_bar(figure, pixel_size=self.pixel_size,
                                                  unit=self.pixel_unit, shape=shape, font_size=10)

    def _set_range(self, lo: float, hi: float) -> None:
        with self.color_scale.hold_sync():
            self.color_scale.min, self.color_scale.max = lo, hi
        ramp = np.linspace(lo, hi, _RAMP)
        bar = self.colorbar.marks[0]
        with bar.hold_sync():
            bar.y, bar.color = ramp, _columns(ramp)
        with self._bar_scale.hold_sync():
            self._bar_scale.min, self._bar_scale.max = lo, hi
        ticks, fmt = colormaps.nice_ticks(lo, hi, n=4)
        with self._bar_axis.hold_sync():
            self._bar_axis.tick_values, self._bar_axis.tick_format = ticks, fmt

    def _make_colorbar(self) -> bq.Figure:
        # a one-column heat map of the shared scale with an intensity axis beside it
        # (bqplot's ColorAxis draws poorly at tile size)
        self._bar_scale = bq.LinearScale(min=0.0, max=1.0)
        ramp = np.linspace(0.0, 1.0, _RAMP)
        bar = bq.HeatMap(
            x=np.arange(2), y=ramp, color=_columns(ramp),
            scales={"x": bq.LinearScale(), "y": self._bar_scale, "color": self.color_scale},
        )
        self._bar_axis = bq.Axis(scale=self._bar_scale, orientation="vertical", side="right",
                                 tick_format=".1f", tick_values=[0.0, 0.5, 1.0], grid_lines="none")
        return bq.Figure(
            marks=[bar], axes=[self._bar_axis],
            fig_margin={"top": 8, "bottom": 8, "left": 2, "right": 48},
            padding_x=0, padding_y=0,
            layout=ipw.Layout(width="72px", height=f"{self.tile_size}px"),
        )
