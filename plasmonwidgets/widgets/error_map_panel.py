"""ErrorMapPanel: per-pixel prediction error maps of several models side by side.

Each map is a small :class:`HAADFViewer` showing the HAADF on the SI grid with
the model's NMSE (%) overlaid on one colour range shared by all models and
stated above the maps, captioned with the NMSE statistics and the correlation
between the error map and the HAADF (the paper's Fig. 3 comparison of 2- and
10-latent models). The training half is hatched and outlined as "training
half"; near-zero-signal pixels, whose NMSE divides by almost nothing, are flat
grey and left out of the colour range. Below the maps a scatter plots each
pixel's NMSE against the local HAADF intensity. The maps' probes are linked to
each other and to an optional main viewer, so clicking a pixel on a map moves
the probe everywhere.
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
from .linking import _named_models, link_probe
from .scale_bar import nice_length

__all__ = ["ErrorMapPanel", "log_ticks", "shared_error_range", "training_box"]

#: default ``min_signal``: pixels with less than 5 % of the median signal energy are greyed
MIN_SIGNAL = 0.05
#: scatter colours of the compared models, in order
SCATTER_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
_MAX_SCATTER = 2500  # points per model in the scatter; beyond, every k-th pixel
_HATCH_PERIOD = 4  # SI pixels between hatch lines on the training half


def shared_error_range(maps: list[np.ndarray], percentile: float = 99.0) -> tuple[float, float]:
    """(0, top) colour range shared by error ``maps``: a round top at their ``percentile``.

    A few outlier pixels should not wash out every map, and a round top (1, 2 or 5
    × 10^k, or a multiple of it) reads well on the colour bar.

    Examples
    --------
    >>> shared_error_range([np.array([[1.0, 3.0]]), np.array([[np.nan, 37.0]])])
    (0.0, 40.0)
    """
    finite = [np.asarray(m, dtype=np.float64) for m in maps]
    values = np.concatenate([m[np.isfinite(m)].ravel() for m in finite]) if finite else np.zeros(0)
    if values.size == 0:
        return 0.0, 1.0
    top = float(np.percentile(values, percentile))
    if not top > 0:
        return 0.0, 1.0
    step = nice_length(top) / 2  # e.g. 37 -> 20 / 2 = 10 -> 40
    return 0.0, float(np.ceil(top / step - 1e-9) * step)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Round ticks in [lo, hi] (> 0) for a log axis: 1, 2, 5 × 10^k, else any digit × 10^k.

    Empty when fewer than two such values fit (the plot's own ticks then apply).

    Examples
    --------
    >>> log_ticks(0.3, 150.0)
    [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    >>> log_ticks(45.0, 98.0)
    [50.0, 60.0, 70.0, 80.0, 90.0]
    """
    if not (0 < lo <= hi and np.isfinite(hi)):
        return []
    decades = range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
    for steps in ((1, 2, 5), range(1, 10)):  # a narrow range needs every digit
        ticks = [float(round(m * 10.0**d, 12)) for d in decades for m in steps]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 2:
            return ticks
    return []


def training_box(test_positions: np.ndarray, scan_shape: tuple[int, int],
                 train_positions: np.ndarray | None = None) -> tuple[int, int, int, int]:
    """SI-pixel box (row0, col0, row1, col1), end exclusive, of the training half.

    The bounding box of ``train_positions`` when given; otherwise the part of the
    scan beside the test tiles' bounding box along the axis they were split on.

    Examples
    --------
    Test tiles on the right half (columns 6-11) of a 12 x 12 scan: training is the left half.

    >>> import numpy as np
    >>> test = np.array([(r, c) for r in range(12) for c in range(6, 12)])
    >>> training_box(test, (12, 12))
    (0, 0, 12, 6)
    """
    h, w = (int(v) for v in scan_shape)
    if train_positions is not None and len(train_positions):
        r, c = np.asarray(train_positions).T
        return int(r.min()), int(c.min()), int(r.max()) + 1, int(c.max()) + 1
    r, c = np.asarray(test_positions).T
    r0, r1, c0, c1 = int(r.min()), int(r.max()) + 1, int(c.min()), int(c.max()) + 1
    if (c1 - c0) / w <= (r1 - r0) / h:  # split across columns
        return (0, 0, h, c0) if c0 > w - c1 else (0, c1, h, w)
    return (0, 0, r0, w) if r0 > h - r1 else (r1, 0, h, w)


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
    train_pairs : TilePairs, optional
        The training tiles, to outline the training half exactly; without them
        it is the part of the scan beside ``pairs``.
    min_signal : float
        Pixels whose measured signal energy is below this fraction of the median
        are drawn grey and left out of the colour range and the scatter (their
        NMSE divides by almost nothing); 0 keeps every pixel.

    Attributes
    ----------
    errors : dict name -> (h, w) NMSE % maps (NaN where no tile), every test pixel
    low_signal : dict name -> (h, w) bool, the pixels drawn grey
    shown : dict name -> (h, w) the map drawn: ``errors`` with low-signal pixels NaN
    stats : dict name -> {"mean_nmse", "median_nmse", "p95_nmse", "max_nmse": % over
        every test pixel (as the page's metric table), "r": Pearson r of error and
        HAADF over every test pixel, "mse": z-scored MSE (= 2 (1 - r)), "n_low": grey
        pixels, "r_signal": r without them (only when there are some)}
    color_range : (lo, hi) NMSE % shared by all maps
    train_box : (row0, col0, row1, col1) SI pixels of the hatched training half
    maps : dict name -> HAADFViewer
    children_by_name : "maps" (HBox), "refresh" (Button), "opacity" (FloatSlider), "message",
        "scale" (HTML stating the colour range), "scatter" (bqplot Figure)

    Examples
    --------
    One (h, w) NMSE (%) map per model on the test half of the 12 x 12 scan:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> train, test = pairs.split("halves")
    >>> panel = ErrorMapPanel({"2 latent": model}, test, train_pairs=train)
    >>> display(panel)                               # in a notebook  # doctest: +SKIP
    """

    def __init__(
        self,
        models: Any,
        pairs: Any,
        viewer: HAADFViewer | None = None,
        si: Any = None,
        map_size: int = 220,
        *,
        train_pairs: Any = None,
        min_signal: float = MIN_SIGNAL,
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
        self.min_signal = float(min_signal)
        self.train_box = training_box(
            np.asarray(pairs.positions), tuple(pairs.scan_shape),
            None if train_pairs is None else np.asarray(train_pairs.positions),
        )
        self.color_range = (0.0, 1.0)
        self.errors: dict[str, np.ndarray] = {}
        self.low_signal: dict[str, np.ndarray] = {}
        self.shown: dict[str, np.ndarray] = {}
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
        self.scale_note = ipw.HTML("")
        self.scatter_figure = self._make_scatter()
        self.children_by_name = {
            "maps": self.maps_box,
            "refresh": self.refresh_button,
            "opacity": self.opacity,
            "message": self.message,
            "scale": self.scale_note,
            "scatter": self.scatter_figure,
        }
        super().__init__([
            ipw.HBox([self.refresh_button, self.opacity]), self.message, self.scale_note,
            self.maps_box, self.scatter_figure,
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
            low = (analysis.low_signal_map(model, self.pairs, min_signal=self.min_signal)
                   if self.min_signal > 0 else np.zeros(err.shape, dtype=bool))
            self.low_signal[name] = low
            self.shown[name] = np.where(low, np.nan, err).astype(np.float32)
            stats = self._stats(err)
            stats["n_low"] = int(low.sum())
            if self.si is not None:
                try:
                    stats["r"], stats["mse"] = analysis.error_haadf_correlation(err, self.si)
                    if stats["n_low"]:
                        stats["r_signal"] = analysis.error_haadf_correlation(self.shown[name],
                                                                             self.si)[0]
                except ValueError as exc:
                    failures.append(f"{name}: correlation with HAADF: {exc}")
            self.stats[name] = stats
        for name in [n for n in self.shown if n not in self.errors]:
            self.shown.pop(name)
            self.low_signal.pop(name, None)
        self._draw()
        self._draw_scatter()
        self.message.value = message_html("\n".join(failures))

    # --- internals ------------------------------------------------------------
    @staticmethod
    def _stats(err: np.ndarray) -> dict[str, float]:
        values = err[np.isfinite(err)]
        if values.size == 0:
            return {"mean_nmse": np.nan, "median_nmse": np.nan, "p95_nmse": np.nan, "max_nmse": np.nan}
        return {"mean_nmse": float(values.mean()), "median_nmse": float(np.median(values)),
                "p95_nmse": float(np.percentile(values, 95)), "max_nmse": float(values.max())}

    def _base_image(self, background: np.ndarray, low: np.ndarray) -> tuple[np.ndarray, float, float]:
        """HAADF with the training half hatched and low-signal pixels flat grey, and its range."""
        finite = background[np.isfinite(background)]
        lo, hi = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
        lo, hi = float(lo), float(hi) if hi > lo else float(lo) + 1.0
        base = np.array(background, dtype=np.float64)
        r0, c0, r1, c1 = self.train_box
        rows, cols = np.indices(base.shape)
        inside = (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)
        hatch = inside & ((rows + cols) % _HATCH_PERIOD == 0)
        base[hatch] = hi  # white diagonal lines
        base[inside & ~hatch] = lo + 0.6 * (base[inside & ~hatch] - lo)  # dimmed: not evaluated
        # the grey LUT maps value v to level 255 (v - lo) / (hi - lo): pick the level of MASKED_COLOR
        level = int(colormaps.MASKED_COLOR[1:3], 16) / 255
        base[low] = lo + level * (hi - lo)
        return base, lo, hi

    def _draw(self) -> None:
        for lk in self._links:
            lk.unlink()
        self._links = []
        lo, hi = shared_error_range(list(self.shown.values()))
        self.color_range = (lo, hi)
        background = None if self.si is None else self.si.haadf_on_si_grid()
        cells = []
        for name, err in self.errors.items():
            view = self.maps.get(name)
            shown = self.shown[name]
            if background is not None:
                base, b_lo, b_hi = self._base_image(background, self.low_signal[name])
            else:
                base, b_lo, b_hi = err, None, None
            if view is None:
                view = HAADFViewer(image=base, cmap="grey", window=0, size=self.map_size)
                self.maps[name] = view
            view.set_image(base, scale=1, vmin=b_lo, vmax=b_hi)
            view.title = name
            if self.si is not None:  # the SI grid's pixel size, for the viewer's scale bar
                view.pixel_size = float(self.si.pixel_size)
                view.pixel_unit = str(self.si.pixel_unit)
            if view.has_trait("show_colorbar"):
                view.show_colorbar = False  # the HAADF's own scale would sit beside the NMSE one
            if view.has_trait("overlays"):
                r0, c0, r1, c1 = self.train_box
                view.set_boxes("training half", [view.pixel_box(
                    r0, c0, r1, c1, color="#ffffff", label="training half", style="dashed")])
            view.set_overlay(shown, cmap="magma", label="NMSE %", vmin=lo, vmax=hi,
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
        self.scale_note.value = self._scale_html(lo, hi)

    def _scale_html(self, lo: float, hi: float) -> str:
        n_low = max((s.get("n_low", 0) for s in self.stats.values()), default=0)
        grey = colormaps.MASKED_COLOR
        parts = [
            f"Colour: NMSE <b>{lo:g}–{hi:g} %</b>, the same scale on every map "
            "(higher values show as the top colour).",
            "<span style='display:inline-block;width:18px;height:10px;vertical-align:middle;"
            "background:repeating-linear-gradient(135deg,#fff 0 2px,#555 2px 6px)'></span> "
            "hatched: training half (not evaluated).",
        ]
        if self.min_signal > 0:
            parts.append(
                f"<span style='display:inline-block;width:12px;height:10px;vertical-align:middle;"
                f"background:{grey};border:1px solid #666'></span> flat grey: measured signal below "
                f"{100 * self.min_signal:g} % of the median ({n_low} pixels); their NMSE divides by "
                "almost nothing, so they are left out of the colour scale and the scatter.")
        return ("<div style='font-size:90%;line-height:1.5;margin:2px 0'>"
                + "<br>".join(parts) + "</div>")

    @staticmethod
    def _caption(stats: dict[str, float]) -> str:
        def pct(key: str) -> str:
            v = stats.get(key, np.nan)
            return f"{v:.0f}" if np.isfinite(v) and abs(v) >= 1000 else f"{v:.3g}"

        parts = [
            f"mean NMSE <b>{pct('mean_nmse')} %</b>, median {pct('median_nmse')} %, "
            f"p95 {pct('p95_nmse')} %, max {pct('max_nmse')} % (every test pixel)"
        ]
        if "r" in stats:
            without = (f" ({stats['r_signal']:.2f} without the grey pixels)"
                       if "r_signal" in stats else "")
            parts.append(
                f"correlation of error with HAADF r = {stats['r']:.2f}{without} "
                "(−1…1; > 0: larger errors where the HAADF is brighter)"
            )
        # numbers only, nothing to escape
        return ('<div style="font-size: var(--jp-ui-font-size0, 11px); line-height: 1.4">'
                f'{"<br>".join(parts)}</div>')

    def _make_scatter(self) -> bq.Figure:
        x_scale, y_scale = bq.LinearScale(), bq.LogScale()
        self._scatter_scales = {"x": x_scale, "y": y_scale}
        self._scatter_y_axis = bq.Axis(scale=y_scale, orientation="vertical", label="NMSE (%)",
                                       tick_format=".3~g", label_offset="45px", grid_lines="none")
        return bq.Figure(
            marks=[], title="NMSE against local HAADF intensity, per test pixel",
            axes=[bq.Axis(scale=x_scale, label="HAADF on the SI grid (counts)", label_offset="34px",
                          grid_lines="none"),
                  self._scatter_y_axis],
            legend_location="top-right",
            fig_margin={"top": 40, "bottom": 50, "left": 65, "right": 20},
            layout=ipw.Layout(width="620px", height="340px"),
        )

    def _draw_scatter(self) -> None:
        from .. import analysis

        if self.si is None:
            self.scatter_figure.layout.display = "none"
            return
        marks, thinned = [], []
        for k, (name, shown) in enumerate(self.shown.items()):
            haadf, err = analysis.error_haadf_pairs(shown, self.si)
            keep = err > 0  # a log axis
            haadf, err = haadf[keep], err[keep]
            step = max(1, int(np.ceil(len(err) / _MAX_SCATTER)))
            st = self.stats.get(name, {})
            r = st.get("r_signal", st.get("r", np.nan))
            label = f"{name}, r = {r:.2f}"
            thinned.append(step)
            marks.append(bq.Scatter(
                x=haadf[::step], y=err[::step], scales=self._scatter_scales,
                colors=[SCATTER_COLORS[k % len(SCATTER_COLORS)]], default_size=8, default_opacities=[0.5],
                stroke_width=0, labels=[label], display_legend=True,
            ))
        self.scatter_figure.marks = marks
        values = np.concatenate([np.asarray(m.y, dtype=np.float64) for m in marks]) if marks else []
        if len(values):  # a log axis otherwise labels every integer
            self._scatter_y_axis.tick_values = log_ticks(float(np.min(values)), float(np.max(values)))
        step = max(thinned, default=1)
        self.scatter_figure.title = ("NMSE against local HAADF intensity, per test pixel"
                                     + (f" (1 in {step} shown)" if step > 1 else ""))
        self.scatter_figure.layout.display = "" if marks else "none"

    def _on_opacity(self, change: dict) -> None:
        for view in self.maps.values():
            view.overlay_opacity = change["new"]
