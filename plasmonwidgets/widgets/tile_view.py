"""TileView: the measured HAADF tile beside model-predicted tiles, on one colour scale.

Each tile is a bqplot ``HeatMap`` in its own small square figure; all of them
share a single ``ColorScale`` whose min/max span every tile shown, so equal
intensities look equal across measured and predicted tiles.
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

__all__ = ["TileView"]

MEASURED = "measured"
_RAMP = 64  # colour bar steps
_TIGHT = {"top": 2, "bottom": 2, "left": 2, "right": 2}


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
    label : str
        Caption of the colour bar (the tiles' intensity quantity).

    Attributes
    ----------
    color_scale : bqplot.ColorScale shared by all tiles and the colour bar
    heatmaps : dict name -> bqplot.HeatMap ("measured" first)
    figures : dict name -> bqplot.Figure
    colorbar : bqplot.Figure showing the shared range
    children_by_name : "tiles" (HBox), "colorbar" and "message" (HTML)
    """

    def __init__(self, cmap: str = "grey", tile_size: int = 150, label: str = "HAADF"):
        self.color_scale = bq.ColorScale(colors=colormaps.hex_colors(cmap), min=0.0, max=1.0)
        self.tile_size = int(tile_size)
        self.heatmaps: dict[str, bq.HeatMap] = {}
        self.figures: dict[str, bq.Figure] = {}
        self._cells: dict[str, ipw.VBox] = {}
        self.colorbar = self._make_colorbar()
        self._bar_cell = ipw.VBox([self._caption(label), self.colorbar])
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
        finite min/max over all tiles unless ``vmin``/``vmax`` are given.
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
        values = np.concatenate([a[np.isfinite(a)] for a in tiles.values()]) if tiles else []
        lo = float(np.min(values)) if len(values) else 0.0
        hi = float(np.max(values)) if len(values) else 1.0
        lo = lo if vmin is None else float(vmin)
        hi = hi if vmax is None else float(vmax)
        if not hi > lo:
            lo, hi = lo - 0.5, lo + 0.5

        if (lo, hi) != self.color_range:
            self._set_range(lo, hi)
        for name, tile in tiles.items():
            mark = self.heatmaps.get(name)
            rows, cols = tile.shape
            if mark is None:
                self._add(name, tile)
                continue
            with mark.hold_sync():
                if np.shape(mark.color) != tile.shape:
                    mark.x, mark.y = np.arange(cols), np.arange(rows)
                mark.color = tile
        stale = [n for n in self.heatmaps if n not in tiles]
        for name in stale:
            del self.heatmaps[name]
            del self.figures[name]
            del self._cells[name]
        if stale or len(self._cells) + 1 != len(self.tiles_box.children):
            self.tiles_box.children = (*self._cells.values(), self._bar_cell)

    def tile(self, name: str) -> np.ndarray:
        """The (w, w) array currently shown as ``name``."""
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
        self.figures[name] = bq.Figure(
            marks=[mark], fig_margin=_TIGHT, padding_x=0, padding_y=0,
            layout=ipw.Layout(width=size, height=size),
        )
        self._cells[name] = ipw.VBox([self._caption(name), self.figures[name]],
                                     layout=ipw.Layout(margin="0 8px 0 0"))

    def _caption(self, text: str) -> ipw.HTML:
        # as wide as a tile and wrapping, so long model names never run into each other
        return ipw.HTML(
            f"<div style='line-height:1.2;font-size:90%'><b>{html.escape(text)}</b></div>",
            layout=ipw.Layout(max_width=f"{max(self.tile_size, 72)}px"),
        )

    def _set_range(self, lo: float, hi: float) -> None:
        with self.color_scale.hold_sync():
            self.color_scale.min, self.color_scale.max = lo, hi
        ramp = np.linspace(lo, hi, _RAMP)
        bar = self.colorbar.marks[0]
        with bar.hold_sync():
            bar.y, bar.color = ramp, _columns(ramp)
        with self._bar_scale.hold_sync():
            self._bar_scale.min, self._bar_scale.max = lo, hi

    def _make_colorbar(self) -> bq.Figure:
        # a one-column heat map of the shared scale with an intensity axis beside it
        # (bqplot's ColorAxis draws poorly at tile size)
        self._bar_scale = bq.LinearScale(min=0.0, max=1.0)
        ramp = np.linspace(0.0, 1.0, _RAMP)
        bar = bq.HeatMap(
            x=np.arange(2), y=ramp, color=_columns(ramp),
            scales={"x": bq.LinearScale(), "y": self._bar_scale, "color": self.color_scale},
        )
        axis = bq.Axis(scale=self._bar_scale, orientation="vertical", side="right",
                       tick_format=".3g", num_ticks=5, grid_lines="none")
        return bq.Figure(
            marks=[bar], axes=[axis], fig_margin={"top": 8, "bottom": 8, "left": 2, "right": 48},
            padding_x=0, padding_y=0,
            layout=ipw.Layout(width="72px", height=f"{self.tile_size}px"),
        )
