"""ErrorMapPanel: per-pixel prediction error maps of several models side by side.

Each map is a small :class:`HAADFViewer` showing the HAADF on the SI grid with
the model's NMSE (%) overlaid on a colour range shared by all models, captioned
with the mean NMSE and the correlation between the error map and the HAADF (the
paper's Fig. 3 comparison of 2- and 10-latent models). The maps' probes are
linked to each other and to an optional main viewer, so clicking a pixel on a
map moves the probe everywhere.
"""

from __future__ import annotations

import traceback
from typing import Any

import ipywidgets as ipw
import numpy as np

from ._message import message_html
from .haadf_viewer import HAADFViewer
from .linking import _named_models, link_probe

__all__ = ["ErrorMapPanel"]


class ErrorMapPanel(ipw.VBox):
    """Error maps of ``models`` on ``pairs``, e.g. ``{"10 latent": m10, "2 latent": m2}``.

    Parameters
    ----------
    models : dict name -> model, or a sequence of Im2Spec/Spec2Im models
    pairs : TilePairs
        Tiles to evaluate (often the test split); pixels without a tile are
        transparent on the maps.
    viewer : HAADFViewer, optional
        Main viewer whose probe follows clicks on the maps (and vice versa).
    si : SpectrumImage, optional
        For the HAADF background and the error/HAADF correlation; defaults to
        ``viewer.si``. Without it the maps show the error alone and no correlation.
    map_size : int
        Side of each map, CSS pixels.

    Attributes
    ----------
    errors : dict name -> (h, w) NMSE % maps (NaN where no tile)
    stats : dict name -> {"mean_nmse": %, "r": Pearson r, "mse": z-scored MSE}
    maps : dict name -> HAADFViewer
    children_by_name : "maps" (HBox), "refresh" (Button), "opacity" (FloatSlider), "message"
    """

    def __init__(
        self,
        models: Any,
        pairs: Any,
        viewer: HAADFViewer | None = None,
        si: Any = None,
        map_size: int = 220,
    ):
        self.models = _named_models(models)
        if not self.models:
            raise ValueError("ErrorMapPanel needs at least one model")
        self.pairs = pairs
        self.viewer = viewer
        self.si = si if si is not None else getattr(viewer, "si", None)
        if viewer is not None and tuple(viewer.scan_shape) != tuple(pairs.scan_shape):
            raise ValueError(
                f"viewer shows SI scan {tuple(viewer.scan_shape)} but pairs are on "
                f"{tuple(pairs.scan_shape)}"
            )
        self.map_size = int(map_size)
        self.errors: dict[str, np.ndarray] = {}
        self.stats: dict[str, dict[str, float]] = {}
        self.maps: dict[str, HAADFViewer] = {}
        self.captions: dict[str, ipw.HTML] = {}
        self._links: list[Any] = []

        self.refresh_button = ipw.Button(
            description="Recompute", icon="refresh",
            tooltip="Recompute the error maps (e.g. after more training)",
        )
        self.refresh_button.on_click(lambda _: self.refresh())
        self.opacity = ipw.FloatSlider(
            value=1.0, min=0.0, max=1.0, step=0.05, description="error opacity",
            style={"description_width": "initial"},
        )
        self.opacity.observe(self._on_opacity, names="value")
        self.maps_box = ipw.HBox([], layout=ipw.Layout(flex_flow="row wrap"))
        self.message = ipw.HTML("")
        self.children_by_name = {
            "maps": self.maps_box,
            "refresh": self.refresh_button,
            "opacity": self.opacity,
            "message": self.message,
        }
        super().__init__([
            ipw.HBox([self.refresh_button, self.opacity]), self.message, self.maps_box,
        ])
        self.refresh()

    def refresh(self) -> None:
        """(Re)compute every model's error map and statistics and redraw.

        A model that fails is reported in the panel's message; the others are shown.
        """
        from .. import analysis

        failures = []
        for name, model in self.models.items():
            try:
                err = np.asarray(analysis.error_map(model, self.pairs), dtype=np.float32)
            except Exception as exc:
                failures.append(f"{name}: " + "".join(
                    traceback.format_exception_only(type(exc), exc)).strip())
                self.errors.pop(name, None)
                continue
            self.errors[name] = err
            stats = {"mean_nmse": float(np.nanmean(err)) if np.isfinite(err).any() else np.nan}
            if self.si is not None:
                try:
                    stats["r"], stats["mse"] = analysis.error_haadf_correlation(err, self.si)
                except ValueError as exc:
                    failures.append(f"{name}: correlation with HAADF: {exc}")
            self.stats[name] = stats
        self._draw()
        self.message.value = message_html("\n".join(failures))

    # --- internals ------------------------------------------------------------
    def _shared_range(self) -> tuple[float, float]:
        finite = [e[np.isfinite(e)] for e in self.errors.values()]
        values = np.concatenate(finite) if finite else np.zeros(0)
        if values.size == 0:
            return 0.0, 1.0
        # a few outlier pixels should not wash out every map
        return 0.0, float(np.percentile(values, 99))

    def _draw(self) -> None:
        for lk in self._links:
            lk.unlink()
        self._links = []
        lo, hi = self._shared_range()
        background = None if self.si is None else self.si.haadf_on_si_grid()
        cells = []
        for name, err in self.errors.items():
            view = self.maps.get(name)
            base = background if background is not None else err
            if view is None:
                view = HAADFViewer(image=base, cmap="grey", window=0, size=self.map_size)
                self.maps[name] = view
            else:
                view.set_image(base, scale=1)
            view.title = name
            view.set_overlay(err, cmap="magma", label="NMSE %", vmin=lo, vmax=hi,
                             opacity=self.opacity.value)
            caption = self.captions.setdefault(
                name, ipw.HTML(layout=ipw.Layout(width=f"{self.map_size + 10}px"))
            )
            caption.value = self._caption(self.stats.get(name, {}))
            cells.append(ipw.VBox([view, caption], layout=ipw.Layout(margin="0 16px 8px 0")))
        # probes: every map follows the main viewer, or the first map without one
        views = list(self.maps[n] for n in self.errors)
        hub = self.viewer if self.viewer is not None else (views[0] if views else None)
        for view in views:
            if view is not hub:
                view.position = list(hub.position)
                self._links.append(link_probe(hub, view))
        self.maps_box.children = tuple(cells)

    @staticmethod
    def _caption(stats: dict[str, float]) -> str:
        parts = [f"mean NMSE <b>{stats.get('mean_nmse', np.nan):.2f} %</b>"]
        if "r" in stats:
            parts.append(f"r(error, HAADF) = {stats['r']:.3f}")
            parts.append(f"MSE = {stats['mse']:.3f}")
        # numbers only, nothing to escape
        return ('<div style="font-size: var(--jp-ui-font-size0, 11px); line-height: 1.4">'
                f'{" · ".join(parts)}</div>')

    def _on_opacity(self, change: dict) -> None:
        for view in self.maps.values():
            view.overlay_opacity = change["new"]
