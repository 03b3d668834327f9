"""NMFPanel: run NMF on a spectrum image, browse abundance maps and endmember spectra.

Choosing a component overlays its abundance map on a linked :class:`HAADFViewer`
and emphasises its endmember. The abundance thumbnails are small HAADFViewers
whose probe follows the linked viewer, so clicking a thumbnail moves the probe;
the probe shows there as a small ring (a crosshair would cut the small maps).
Component k has the colour :func:`colormaps.nmf_color` ``(k)`` in its map's
title and its endmember curve, the same as in the tutorial notebooks; each map
carries its own colour bar (abundance) and scale bar.
"""

from __future__ import annotations

import traceback
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np

from . import colormaps
from ._message import message_html
from .haadf_viewer import HAADFViewer
from .linking import link_probe

__all__ = ["NMFPanel"]

NONE = -1  # component selector value meaning "no overlay"


class NMFPanel(ipw.VBox):
    """Non-negative matrix factorisation of ``si`` with abundance maps and endmembers.

    Parameters
    ----------
    si : SpectrumImage
    viewer : HAADFViewer, optional
        Receives the chosen component's abundance as its overlay.
    n_components : int
        Initial number of components (the paper uses 4).
    max_components : int
        Upper bound of the component selector.
    run : bool
        Run the decomposition immediately.
    thumbnail_size : int
        Side of each abundance map, CSS pixels.

    Named children (``children_by_name``): "n_components" (BoundedIntText),
    "run" (Button), "component" (ToggleButtons, value = component index or -1),
    "maps" (HBox of (title, HAADFViewer) boxes), "spectra" (bqplot Figure), "message" (HTML).

    Attributes
    ----------
    thumbnails : list of HAADFViewer, one abundance map per component
    titles : list of ipywidgets.HTML, each map's title in its component's colour
    colors : list of "#rrggbb", component k's colour (:data:`colormaps.NMF_COLORS`)

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> panel = NMFPanel(pw.datasets.nanocube_array(size=24), n_components=2, run=True)
    >>> panel.colors == list(colormaps.NMF_COLORS[:2])
    True
    """

    def __init__(
        self,
        si: Any,
        viewer: HAADFViewer | None = None,
        n_components: int = 4,
        max_components: int = 10,
        run: bool = False,
        thumbnail_size: int = 130,
    ):
        if not hasattr(si, "spectra") or not hasattr(si, "energy"):
            raise TypeError(f"NMFPanel needs a SpectrumImage, got {type(si).__name__}")
        if viewer is not None and tuple(viewer.scan_shape) != tuple(si.scan_shape):
            raise ValueError(
                f"viewer shows SI scan {tuple(viewer.scan_shape)} but si has {tuple(si.scan_shape)}"
            )
        self.si = si
        self.viewer = viewer
        self.result = None  # analysis.NMFResult after a run
        self.thumbnail_size = int(thumbnail_size)
        self.thumbnails: list[HAADFViewer] = []
        self.titles: list[ipw.HTML] = []
        self.colorbars: list[ipw.HTML] = []
        self._cells: list[ipw.VBox] = []
        self.colors: list[str] = []
        self._probe_links: list[Any] = []

        self.n_components = ipw.BoundedIntText(
            value=int(n_components), min=1, max=int(max_components), description="components",
            style={"description_width": "initial"}, layout=ipw.Layout(width="150px"),
        )
        self.run_button = ipw.Button(description="Run NMF", icon="play", button_style="primary")
        self.run_button.on_click(lambda _: self.run())
        self.component = ipw.ToggleButtons(
            options=[("none", NONE)], value=NONE, description="overlay",
            style={"button_width": "56px", "description_width": "initial"},
        )
        self.component.observe(self._on_component, names="value")
        self.maps_box = ipw.HBox([], layout=ipw.Layout(flex_flow="row wrap"))
        x_scale, y_scale = bq.LinearScale(), bq.LinearScale(min=0.0)
        self.spectra_lines = bq.Lines(
            x=np.asarray(si.energy, dtype=np.float64), y=np.zeros((0, si.n_energy)),
            scales={"x": x_scale, "y": y_scale}, display_legend=True, stroke_width=2,
        )
        self.spectra_figure = bq.Figure(
            marks=[self.spectra_lines], title="endmember spectra",
            axes=[
                bq.Axis(scale=x_scale, label="Energy loss (eV)", label_offset="34px"),
                bq.Axis(scale=y_scale, orientation="vertical", label="norm. intensity",
                        tick_format=".2~g", label_offset="45px"),
            ],
            legend_location="top-right",
            fig_margin={"top": 40, "bottom": 50, "left": 65, "right": 20},
            layout=ipw.Layout(width="480px", height="280px"),
        )
        self.message = ipw.HTML("")
        self.children_by_name = {
            "n_components": self.n_components,
            "run": self.run_button,
            "component": self.component,
            "maps": self.maps_box,
            "spectra": self.spectra_figure,
            "message": self.message,
        }
        super().__init__([
            ipw.HBox([self.n_components, self.run_button]),
            self.message,
            self.component,
            self.maps_box,
            self.spectra_figure,
        ])
        if run:
            self.run()

    def run(self) -> None:
        """Decompose with the chosen number of components and refresh the panel.

        Failures (bad data, too many components) are shown in the panel's
        message, not raised, because this runs from a button click.
        """
        from .. import analysis

        n = int(self.n_components.value)
        self.message.value = message_html(f"running NMF with {n} components…", "info")
        try:
            result = analysis.nmf(self.si, n_components=n)
        except Exception as exc:
            text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.message.value = message_html(f"NMF failed: {text}")
            return
        self.result = result
        self._show(result)
        x = np.asarray(self.si.spectra, dtype=np.float64).reshape(-1, self.si.n_energy)
        model = result.maps.reshape(n, -1).T.astype(np.float64) @ result.spectra
        residual = np.linalg.norm(x.clip(0, None) - model) / max(np.linalg.norm(x.clip(0, None)), 1e-30)
        self.message.value = message_html(
            f"{n} components · relative residual {100 * residual:.2f} % of the (non-negative) SI",
            "info",
        )

    def select(self, component: int | None) -> None:
        """Overlay component ``component`` (0-based) on the viewer; None removes it."""
        self.component.value = NONE if component is None else int(component)

    # --- internals ------------------------------------------------------------
    def _show(self, result: Any) -> None:
        n = len(result.spectra)
        colors = [colormaps.nmf_color(k) for k in range(n)]
        self.colors = colors
        with self.spectra_lines.hold_sync():
            self.spectra_lines.y = result.spectra
            self.spectra_lines.colors = colors
            self.spectra_lines.labels = [f"C{k + 1}" for k in range(n)]
            self.spectra_lines.opacities = [1.0] * n
        for lk in self._probe_links:
            lk.unlink()
        self._probe_links = []
        # reuse thumbnails; only create what is missing
        while len(self.thumbnails) < n:
            thumb = HAADFViewer(image=result.maps[0], cmap="viridis", window=0,
                                size=self.thumbnail_size, show_probe=False)
            thumb.observe(self._mark_probe, names="position")
            title = ipw.HTML(layout=ipw.Layout(width=f"{self.thumbnail_size}px"))
            bar = ipw.HTML(layout=ipw.Layout(width=f"{self.thumbnail_size + 12}px"))
            self.thumbnails.append(thumb)
            self.titles.append(title)
            self.colorbars.append(bar)
            self._cells.append(ipw.VBox([title, thumb, bar], layout=ipw.Layout(margin="0 12px 6px 0")))
        for k in range(n):
            thumb = self.thumbnails[k]
            lo, hi = self.map_range(result.maps[k])
            with thumb.hold_sync():
                thumb.set_image(result.maps[k], scale=1, vmin=lo, vmax=hi)
                thumb.title = ""  # the coloured title above says which component
                # the physical scale of the SI grid, for the viewer's scale bar
                thumb.pixel_size = float(getattr(self.si, "pixel_size", 1.0))
                thumb.pixel_unit = str(getattr(self.si, "pixel_unit", "px"))
                if thumb.has_trait("image_label"):
                    thumb.image_label = f"C{k + 1} abundance"
                if thumb.has_trait("show_colorbar"):
                    thumb.show_colorbar = False  # too wide for a small map: the bar below instead
            self.colorbars[k].value = colormaps.colorbar_html(
                "viridis", lo, hi, width=self.thumbnail_size, label="abundance (a.u.)")
            self.titles[k].value = (
                f"<div style='font-weight:bold;color:{colors[k]};line-height:1.3'>"
                f"<span style='display:inline-block;width:18px;height:3px;background:{colors[k]};"
                f"vertical-align:middle;margin-right:4px'></span>C{k + 1}</div>"
            )
            if self.viewer is not None:
                thumb.position = list(self.viewer.position)
                self._probe_links.append(link_probe(self.viewer, thumb))
            self._mark_probe({"owner": thumb})
        self.maps_box.children = tuple(self._cells[:n])
        previous = self.component.value
        self.component.options = [("none", NONE)] + [(f"C{k + 1}", k) for k in range(n)]
        if previous != NONE and previous < n:
            self._apply(previous)  # same value: the observer does not fire
        else:
            self.component.value = NONE

    @staticmethod
    def map_range(abundance: np.ndarray) -> tuple[float, float]:
        """(0, 99.5th percentile) display range of an abundance map (a few hot pixels saturate)."""
        finite = np.asarray(abundance, dtype=np.float64)
        finite = finite[np.isfinite(finite)]
        hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        return 0.0, hi if hi > 0 else 1.0

    def _mark_probe(self, change: dict) -> None:
        # a small ring at the probe instead of a crosshair across the whole small map
        thumb = change["owner"]
        thumb.highlight = [list(thumb.position)] if self.viewer is not None else []

    def _on_component(self, change: dict) -> None:
        self._apply(change["new"])

    def _apply(self, k: int) -> None:
        if self.result is None:
            return
        n = len(self.result.spectra)
        self.spectra_lines.opacities = [1.0 if k in (NONE, j) else 0.25 for j in range(n)]
        if self.viewer is None:
            return
        try:
            if k == NONE:
                self.viewer.clear_overlay()
            else:
                self.viewer.set_overlay(
                    self.result.maps[k], cmap="viridis", label=f"NMF C{k + 1} abundance"
                )
        except Exception as exc:
            self.message.value = message_html(f"cannot overlay C{k + 1}: {exc}")
