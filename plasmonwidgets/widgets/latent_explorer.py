"""LatentExplorer: drag through a model's latent space and watch the decoder live.

The panel holds one slider per latent dimension, a 2-D latent pad (a scatter of
every encoded tile with a draggable current point), the decoded output of the
current point (a spectrum for im2spec, a tile for spec2im), the k observed tiles
whose encodings lie nearest (back-projection, outlined at their tile size on a
linked HAADFViewer and shown in a captioned strip) and a latent-grid view (the paper's
Fig. 3/5). The "measured" curve or tile is the measurement at the nearest observed tile.
When the point leaves the cloud of encoded tiles (its distance to the nearest encoding
exceeds the 99th percentile of the nearest-neighbour distances inside the cloud), a
warning says that the decoder is extrapolating.

Decoding is coalesced (see :mod:`.coalesce`): under fast dragging only the
latest latent point is decoded, and the point where the hand stops is always the
one displayed. The decoded view updates with every decode; the views of the observed
inputs behind the point (nearest tiles, the other direction's view, the HAADF
highlight) are throttled to one update per ``SECONDARY_INTERVAL_S`` while dragging
and always end on the resting point.
"""

from __future__ import annotations

import base64
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np
from scipy.spatial import cKDTree

from ..analysis import LatentIndex, cluster_latent, tile_errors
from ..roles import Role, role_of
from ._message import message_html
from .browser_decoder import BrowserDecoder
from .coalesce import Coalescer, Throttle
from .colormaps import hex_colors, lut

__all__ = ["LatentExplorer"]

COLOR_MODES = ("cluster", "error", "region")
#: seconds between updates of the secondary views (nearest tiles, highlight) while dragging
SECONDARY_INTERVAL_S = 0.2
#: a point farther from every encoding than this percentile of the cloud's own
#: nearest-neighbour distances is out of distribution
OOD_PERCENTILE = 99.0
#: colour of the nearest tiles: markers on the pad, outlines on the HAADF
NEAREST_COLOR = "#d62728"
#: side of a tile in the nearest-tile strip, CSS pixels
STRIP_TILE_PX = 64
# width of the title and warning lines: the two columns side by side
_PANEL_WIDTH = "920px"
# captions: text line spacing (an HTML widget's default is one widget row per line)
_CAPTION = "<div style='line-height:1.3;font-size:12px'>{}</div>"


def _model_role(model: Any) -> Role | None:
    """The model's Role (from ``role``, else its ``direction`` label), None if it has neither."""
    try:
        return role_of(getattr(model, "role", None) or getattr(model, "direction", None))
    except ValueError:
        return None


def ood_threshold(z: np.ndarray, percentile: float = OOD_PERCENTILE) -> float:
    """The ``percentile`` of the distances from each encoding (N, d) to its nearest other one.

    A latent point farther than this from every encoding lies outside the data cloud.

    Examples
    --------
    >>> ood_threshold(np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]]), 50)
    1.0
    """
    z = np.asarray(z, dtype=np.float64)
    if len(z) < 2:
        return float("inf")
    dist, _ = cKDTree(z).query(z, k=2)
    return float(np.percentile(dist[:, 1], percentile))


def _png(rgb: np.ndarray) -> bytes:
    """A PNG file of an (h, w, 3) uint8 image (no imaging library needed)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in np.ascontiguousarray(rgb, np.uint8))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def tile_data_uri(tile: np.ndarray, lo: float, hi: float, cmap: str = "grey") -> str:
    """A (w, w) tile as a ``data:image/png`` URI, coloured on the fixed range [lo, hi]."""
    t = np.asarray(tile, dtype=np.float64)
    u = np.clip((t - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    rgb = lut(cmap)[np.nan_to_num(u * 255).astype(np.uint8), :3]
    return "data:image/png;base64," + base64.b64encode(_png(rgb)).decode("ascii")


def _label_colors(n: int) -> list[str]:
    """The first n categorical colours ("#rrggbb"), colour k for integer label k."""
    return ["#{:02x}{:02x}{:02x}".format(*row[:3]) for row in lut("labels")[:n]]


def _mosaic(tiles: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Place (n_rows*n_cols, w, w) tiles on a grid with one NaN pixel of gap.

    Tile k goes to grid row ``k // n_cols`` counted from the *bottom* and is
    flipped vertically, so the result draws upright on a y-up HeatMap.
    Returns (n_rows*(w+1), n_cols*(w+1)) float32.
    """
    w = tiles.shape[-1]
    cell = w + 1
    out = np.full((n_rows * cell, n_cols * cell), np.nan, dtype=np.float32)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, n_cols)
        out[r * cell : r * cell + w, c * cell : c * cell + w] = tile[::-1]
    return out


def _centres(lo: float, hi: float, n_cells: int, n_pixels: int) -> np.ndarray:
    """Pixel-centre coordinates of n_pixels spread evenly over n_cells cells whose
    centres run from lo to hi."""
    step = (hi - lo) / max(n_cells - 1, 1) if hi > lo else 1.0
    width = step * n_cells
    return lo - step / 2 + (np.arange(n_pixels) + 0.5) * width / n_pixels


@dataclass(frozen=True)
class _Decoded:
    """What one decode produces: the latent point, the decoder output and its neighbours."""

    z: np.ndarray  # (d,)
    output: np.ndarray  # (E,) spectrum or (w, w) tile, physical units
    neighbours: Any  # analysis.BackProjection for z
    index: LatentIndex  # the encodings the neighbours were found in
    generation: int  # model generation the result belongs to


class LatentExplorer(ipw.VBox):
    """Real-time latent-space panel for an Im2Spec or Spec2Im model.

    Parameters
    ----------
    model : Im2Spec or Spec2Im
        Must have ``latent_dim >= 2``.
    pairs : TilePairs
        Observed tiles/spectra; encoded once into the latent pad and used for
        back-projection.
    viewer : HAADFViewer, optional
        The k nearest tiles are outlined on it at their size, numbered (overlay group
        "nearest"; a viewer without ``set_boxes`` gets circles via ``highlight``).
    spectrum_view : SpectrumView, optional
        im2spec: the decoded spectrum ("decoded") and the measured spectrum of the
        nearest observed tile ("measured"); created when omitted. spec2im: the
        observed inputs behind the latent point, the nearest spectrum ("measured")
        and the mean of the k nearest ("mean of nearest").
    tile_view : TileView, optional
        spec2im: the decoded tile ("decoded") and the nearest observed tile
        ("measured"); created when omitted. im2spec: the nearest observed tile and
        the mean of the k nearest.
    k : number of nearest observed tiles shown (back-projection)
    mode : ``"thread"`` (decode on a worker thread, latest value wins) or
        ``"sync"`` (decode inside the slider callback; scripts, tests, benchmarks)
    max_points : at most this many tiles are drawn on the pad (a fixed random
        subset; all tiles are still used for back-projection)
    n_clusters : clusters for the "cluster" colouring
    grid_size : nodes per side of the latent grid
    follow_viewer : when True, clicking a pixel on ``viewer`` moves the latent
        point to that pixel's encoding
    browser_decode : also decode in the page (:class:`BrowserDecoder`): while a slider is
        dragged the decoded view is redrawn in the browser on every move, and the
        kernel's own decode follows at ``SECONDARY_INTERVAL_S`` (the notebook API and
        the views' Python state are unchanged; without a browser nothing changes)

    Attributes
    ----------
    sliders : list of FloatSlider, one per latent dimension
    pad : bqplot Figure, the 2-D latent pad (``cloud``, ``neighbour_marks``, ``point`` marks)
    dim_x, dim_y, color_by : Dropdowns choosing the pad's axes and colouring
    mode_toggle : ToggleButtons "decode" / "grid"
    grid_figure : bqplot Figure of the latent grid
    neighbour_strip : HTML strip of the k nearest observed HAADF tiles, with gaps and
        captions (latent distance, SI position); they are outlined on ``viewer``
    measured_caption : HTML line saying whose measurement the "measured" curve/tile is
    ood_box : HTML line with the out-of-distribution warning ('' inside the data cloud)
    out_of_distribution : bool, whether the last decoded point left the data cloud
    nearest_positions : SI [row, col] of the nearest tiles last shown
    status : HTML line for messages (errors in red)
    children_by_name : the named children above, for driving the panel without a browser

    Examples
    --------
    A 2-D latent space of an (untrained) model over the 144 tiles of a 12 x 12 scan:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> explorer = LatentExplorer(model, pairs, mode="sync")
    >>> explorer.set_latent([0.5, -0.5])
    >>> explorer.z.tolist()
    [0.5, -0.5]
    """

    def __init__(
        self,
        model: Any,
        pairs: Any,
        viewer: Any = None,
        spectrum_view: Any = None,
        tile_view: Any = None,
        *,
        k: int = 5,
        mode: str = "thread",
        max_points: int = 4000,
        n_clusters: int = 6,
        grid_size: int = 8,
        follow_viewer: bool = False,
        browser_decode: bool = True,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self._lock = threading.RLock()  # guards model/index swaps against the worker
        self._local = threading.local()  # per-thread "the code itself moves sliders" flag
        self._dragging = False
        self._generation = 0
        self._k = int(k)
        if self._k < 1:
            raise ValueError(f"k must be >= 1 nearest tiles, got {k}")
        self._n_clusters = int(n_clusters)
        self._max_points = int(max_points)
        self._color_cache: dict[str, np.ndarray] = {}
        self.viewer = viewer
        self.last_output: np.ndarray | None = None
        self.last_neighbours: Any = None
        self.model, self.pairs = model, pairs
        self.index = self._build_index(model, pairs)
        self._ood_limit = ood_threshold(self.index.z)
        self.out_of_distribution = False
        self.last_ood_distance = float("nan")
        images = np.asarray(pairs.images)
        # one fixed grey range for every strip tile: the tiles' own 0.5-99.5 % range
        sample = images[:: max(1, len(images) // 2000)]
        self._tile_range = tuple(float(v) for v in np.percentile(sample, [0.5, 99.5]))
        # what the model reads and decodes (a stand-in may carry only its direction label)
        self._role = _model_role(model)
        self.spectrum_view = spectrum_view
        self.tile_view = tile_view
        self._ensure_views()
        self._z = self.index.median.copy()
        self._coalescer = Coalescer(
            self._decode, self._publish, mode=mode, on_error=self._report_error,
            name="LatentExplorer-decoder",
        )
        # the views beside the decoded one follow a drag a few times a second, so the
        # browser spends each frame on the decoded curve or tile
        self._secondary = Throttle(self._publish_secondary,
                                   SECONDARY_INTERVAL_S if mode == "thread" else 0.0,
                                   on_error=self._report_error)

        d = self.index.latent_dim
        self.status = ipw.HTML()
        self.title = ipw.HTML(layout={"height": "24px", "overflow": "hidden", "width": _PANEL_WIDTH})
        # fixed size, empty or a warning: the page does not move when it appears
        self.ood_box = ipw.HTML(layout={"height": "44px", "overflow": "hidden", "width": _PANEL_WIDTH})
        self.ood_box.add_class("pw-latent-ood")
        self.sliders = [self._make_slider(i) for i in range(d)]
        self.sliders_box = ipw.VBox(self.sliders)
        self.browser_decoder = (BrowserDecoder(model, self.sliders,
                                               attribute="y" if self._decodes_spectra
                                               else "color")
                                if browser_decode else None)
        dims = [(f"z{i}", i) for i in range(d)]
        self.dim_x = ipw.Dropdown(options=dims, value=0, description="x", layout={"width": "120px"})
        self.dim_y = ipw.Dropdown(options=dims, value=1, description="y", layout={"width": "120px"})
        for dropdown in (self.dim_x, self.dim_y):
            dropdown.style.description_width = "16px"
        self.color_by = ipw.Dropdown(
            options=self._color_options(), description="colour", layout={"width": "170px"}
        )
        self.color_by.style.description_width = "44px"
        self.legend = ipw.HTML()
        self.k_slider = ipw.IntSlider(
            value=min(self._k, len(self.index)), min=1, max=min(max(20, self._k), len(self.index)),
            description="k nearest",
            continuous_update=False,
        )
        self._build_pad()
        self._build_neighbours()
        self._build_grid(grid_size)
        self.mode_toggle = ipw.ToggleButtons(options=["decode", "grid"], value="decode")
        self.mode_toggle.style.button_width = "80px"
        self.output_box = ipw.VBox(self._view_widgets())

        self.dim_x.observe(self._on_dims, "value")
        self.dim_y.observe(self._on_dims, "value")
        self.color_by.observe(lambda _: self._recolor(), "value")
        self.k_slider.observe(self._on_k, "value")
        self.mode_toggle.observe(self._on_mode, "value")
        self.grid_size.observe(lambda _: self._refresh_grid(), "value")
        if viewer is not None and follow_viewer:
            viewer.observe(self._on_viewer_position, "position")

        left = ipw.VBox(
            [self.pad, ipw.HBox([self.dim_x, self.dim_y, self.color_by]), self.legend,
             self.sliders_box],
            layout={"width": "440px", "flex": "0 0 auto"},
        )
        right = ipw.VBox(
            [ipw.HBox([self.mode_toggle, self.grid_size]), self.output_box, self.measured_caption,
             self.neighbour_caption, self.neighbour_strip, self.k_slider],
            layout={"flex": "0 0 auto"},
        )
        # columns keep their size; in a narrow output the right one wraps below the pad
        self.children = [self.title, self.ood_box,
                         ipw.HBox([left, right], layout={"flex_flow": "row wrap"}), self.status]
        if self.browser_decoder is not None:
            self.browser_decoder.on_status(self._update_title)
            self.children += (self.browser_decoder,)
        self._update_title()
        self._recolor()
        self._place_point()
        self._coalescer.submit(self._z.copy())

    # -- public API -----------------------------------------------------------------
    @property
    def z(self) -> np.ndarray:
        """(d,) the current latent point (a copy)."""
        return self._z.copy()

    @property
    def decode_count(self) -> int:
        """How many latent points have actually been decoded (coalesced ones are skipped)."""
        return self._coalescer.count

    @property
    def decode_mode(self) -> str:
        return self._coalescer.mode

    def set_latent(self, z: Any) -> None:
        """Move the current latent point to ``z`` (d,) and decode it."""
        z = np.asarray(z, dtype=np.float64)
        if z.shape != self._z.shape or not np.all(np.isfinite(z)):
            raise ValueError(
                f"z must be {self._z.shape[0]} finite latent coordinates, got shape {z.shape}"
            )
        self._z = z.copy()
        self._sync_sliders()
        if not self._dragging:
            self._place_point()
        self._request()

    def wait(self, timeout: float | None = 5.0, all_views: bool = True) -> bool:
        """Block until the latest latent point has been decoded and shown in every view
        (``all_views=False``: in the decoded view; the throttled ones may follow later)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._coalescer.wait_idle(timeout):
            return False
        while all_views and self._secondary.pending:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def set_model(self, model: Any) -> None:
        """Swap in a (re)trained model: re-encode the pairs, keep the latent point
        if the latent dimension is unchanged (else start at the median encoding)."""
        if _model_role(model) != self._role:
            raise ValueError(
                f"this explorer shows a {self._role.direction} model; got "
                f"{getattr(model, 'direction', type(model).__name__)!r} — build a new "
                "LatentExplorer for it"
            )
        index = self._build_index(model, self.pairs)
        same_dim = index.latent_dim == self.index.latent_dim
        with self._lock:
            self.model, self.index = model, index
            self._ood_limit = ood_threshold(index.z)
            self._generation += 1
            self._color_cache.clear()
        if not same_dim:
            self._rebuild_dims()
        else:
            self._update_slider_ranges()
        if self.browser_decoder is not None:
            with self.browser_decoder.hold_sync():
                self.browser_decoder.sliders = list(self.sliders)
                self.browser_decoder.set_model(model)
        self._update_pad_scales()
        self._update_title()
        self._recolor()
        if self.mode_toggle.value == "grid":
            self._refresh_grid()
        self.set_latent(self._z if same_dim else index.median)

    def close(self) -> None:
        """Stop the decoder thread and close the widgets."""
        coalescer = getattr(self, "_coalescer", None)  # absent if __init__ failed early
        if coalescer is not None:
            coalescer.close()
            self._secondary.close()
        super().close()

    # -- construction helpers ------------------------------------------------------
    @staticmethod
    def _build_index(model: Any, pairs: Any) -> LatentIndex:
        if int(getattr(model, "latent_dim", 0)) < 2:
            raise ValueError(
                "LatentExplorer needs a model with latent_dim >= 2 (a 2-D pad); got "
                f"latent_dim={getattr(model, 'latent_dim', None)}"
            )
        return LatentIndex(model, pairs)

    def _ensure_views(self) -> None:
        if self._decodes_spectra and self.spectrum_view is None:
            from .spectrum_view import SpectrumView

            self.spectrum_view = SpectrumView()
        if self._role.target_kind == "image" and self.tile_view is None:
            from .tile_view import TileView

            # with the scan at hand, tiles keep the HAADF's fixed range (as on the Data tab)
            # instead of re-stretching to each decoded tile
            si = getattr(self.viewer, "si", None)
            self.tile_view = TileView(si=si if getattr(si, "haadf", None) is not None else None)
        energy = np.asarray(self.pairs.energy, dtype=np.float64)
        if self.spectrum_view is not None and not np.array_equal(self.spectrum_view.energy, energy):
            self.spectrum_view.set_energy(energy)
        measured = getattr(self.spectrum_view, "lines", {}).get("measured")
        if measured is not None:  # the legend says whose measurement it is
            measured.labels = ["measured, nearest tile"]

    @property
    def _decodes_spectra(self) -> bool:
        """True when the decoder makes spectra (im2spec), False when it makes tiles."""
        return self._role.target_kind == "spectrum"

    def _view_widgets(self) -> list[ipw.Widget]:
        """The decoded-output view first, then the other view when one was given."""
        views = [self.spectrum_view, self.tile_view]
        if self._role.target_kind == "image":
            views.reverse()
        return [v if isinstance(v, ipw.DOMWidget) else v.figure for v in views if v is not None]

    def _make_slider(self, dim: int) -> ipw.FloatSlider:
        lo, hi, step = self._slider_range(dim)
        slider = ipw.FloatSlider(
            value=float(np.clip(self._z[dim], lo, hi)), min=lo, max=hi, step=step,
            description=f"z{dim}", continuous_update=True, readout_format=".2f",
            layout={"width": "420px"},
        )
        slider.observe(lambda change, dim=dim: self._on_slider(dim, change["new"]), "value")
        return slider

    def _slider_range(self, dim: int) -> tuple[float, float, float]:
        """Observed range of one latent dimension, padded by 10 %, and a fine step."""
        lo, hi = float(self.index.lower[dim]), float(self.index.upper[dim])
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        lo, hi = lo - pad, hi + pad
        return lo, hi, (hi - lo) / 1000

    def _regions(self) -> tuple[np.ndarray, list[str] | None] | None:
        """(N,) region label of each tile and the region names, when known: from the
        pairs, else from the linked viewer's SpectrumImage ``metadata["regions"]``."""
        if getattr(self.pairs, "regions", None) is not None:
            return np.asarray(self.pairs.regions), getattr(self.pairs, "region_names", None)
        metadata = getattr(getattr(self.viewer, "si", None), "metadata", None) or {}
        label_map = metadata.get("regions")
        if label_map is None or np.shape(label_map) != tuple(self.pairs.scan_shape):
            return None
        rows, cols = np.asarray(self.pairs.positions).T
        return np.asarray(label_map)[rows, cols], metadata.get("region_names")

    def _color_options(self) -> list[str]:
        return (["region"] if self._regions() is not None else []) + ["cluster", "error"]

    def _build_pad(self) -> None:
        n = len(self.index)
        rng = np.random.default_rng(0)
        self._shown = (
            np.sort(rng.choice(n, self._max_points, replace=False))
            if n > self._max_points else np.arange(n)
        )
        self._sx, self._sy = bq.LinearScale(), bq.LinearScale()
        self._scat_color = bq.ColorScale(colors=hex_colors("viridis", 9))
        self.cloud = bq.Scatter(
            scales={"x": self._sx, "y": self._sy, "color": self._scat_color},
            default_size=12, stroke=None, default_opacities=[0.6],
            interactions={"click": "select"}, unselected_style={"opacity": 0.6},
        )
        self.neighbour_marks = bq.Scatter(
            scales={"x": self._sx, "y": self._sy}, default_size=60, fill=False,
            colors=["#d62728"], stroke_width=1.5,
        )
        self.point = bq.Scatter(
            scales={"x": self._sx, "y": self._sy}, default_size=160, colors=["#111111"],
            stroke="white", stroke_width=2, enable_move=True, interactions={"click": "add"},
        )
        # d3's own round tick values: a fixed num_ticks gave labels such as 9, 2, -5, -13
        self._ax = bq.Axis(scale=self._sx, label="z0")
        self._ay = bq.Axis(scale=self._sy, label="z1", orientation="vertical")
        self.pad = bq.Figure(
            marks=[self.cloud, self.neighbour_marks, self.point], axes=[self._ax, self._ay],
            fig_margin={"top": 10, "bottom": 40, "left": 50, "right": 10},
            layout={"width": "430px", "height": "380px"}, min_aspect_ratio=0.5,
            max_aspect_ratio=2.0,
        )
        self.point.on_drag_start(self._on_drag_start)
        self.point.on_drag(self._on_drag)
        self.point.on_drag_end(self._on_drag_end)
        self.point.observe(self._on_point_arrays, ["x", "y"])
        self.cloud.on_element_click(self._on_cloud_click)
        self._update_pad_scales()
        self._update_cloud_xy()

    def _build_neighbours(self) -> None:
        what = "spectrum" if self._decodes_spectra else "HAADF tile"
        # fixed heights: captions that change while dragging must not move the page
        self.measured_caption = ipw.HTML(layout={"height": "34px", "overflow": "hidden",
                                                 "width": "480px"})
        self.measured_caption.add_class("pw-latent-measured")
        self._measured_what = what
        self.neighbour_caption = ipw.HTML(
            _CAPTION.format("<b>Nearest observed tiles</b> (encodings nearest the point: red rings "
                            "on the pad, numbered outlines on the HAADF); d = latent distance, "
                            "(row, col) = SI position."),
            layout={"height": "34px", "overflow": "hidden", "width": "480px"})
        self.neighbour_strip = ipw.HTML()
        self.neighbour_strip.add_class("pw-latent-strip")

    def _build_grid(self, grid_size: int) -> None:
        self.grid_size = ipw.IntSlider(
            value=int(grid_size), min=3, max=12, description="grid n",
            continuous_update=False, layout={"width": "260px"},
        )
        self._gx, self._gy = bq.LinearScale(), bq.LinearScale()
        self._gcolor = bq.ColorScale(colors=hex_colors("grey"))
        if self._decodes_spectra:  # a small curve per grid node, else a tile mosaic
            self.grid_mark = bq.Lines(
                scales={"x": self._gx, "y": self._gy}, colors=["#1f77b4"], stroke_width=1.2,
            )
        else:
            self.grid_mark = bq.HeatMap(
                x=np.arange(2.0), y=np.arange(2.0), color=np.zeros((2, 2)), null_color="white",
                scales={"x": self._gx, "y": self._gy, "color": self._gcolor},
            )
        self.grid_point = bq.Scatter(
            scales={"x": self._gx, "y": self._gy}, default_size=80, colors=["#d62728"],
        )
        self._gax = bq.Axis(scale=self._gx, label="z0")
        self._gay = bq.Axis(scale=self._gy, label="z1", orientation="vertical")
        self.grid_figure = bq.Figure(
            marks=[self.grid_mark, self.grid_point], axes=[self._gax, self._gay],
            padding_x=0, padding_y=0,
            fig_margin={"top": 10, "bottom": 40, "left": 50, "right": 10},
            layout={"width": "480px", "height": "440px"},
        )
        self.latent_grid = None  # analysis.LatentGrid last drawn

    # -- state -> widgets ------------------------------------------------------------
    @property
    def _syncing(self) -> bool:
        """True while this thread moves sliders/the point itself (their observers then
        ignore the change). Per thread: a model swap on the training poller thread must
        not swallow a slider move made meanwhile in the kernel's main thread."""
        return getattr(self._local, "syncing", False)

    @_syncing.setter
    def _syncing(self, value: bool) -> None:
        self._local.syncing = value

    def _dims(self) -> tuple[int, int]:
        return int(self.dim_x.value), int(self.dim_y.value)

    def _update_title(self) -> None:
        d = self.index.latent_dim
        where = " · decoded in the browser as you drag" if self._page_decodes() else ""
        self.title.value = (
            f"<b>{self._role.direction} latent explorer</b> — {d} latent dimensions, "
            f"{len(self.index)} observed tiles<small>{where}</small>"
        )

    def _update_pad_scales(self) -> None:
        dx, dy = self._dims()
        (x0, x1, _), (y0, y1, _) = self._slider_range(dx), self._slider_range(dy)
        self._sx.min, self._sx.max = x0, x1
        self._sy.min, self._sy.max = y0, y1

    def _update_cloud_xy(self) -> None:
        dx, dy = self._dims()
        z = self.index.z[self._shown]
        with self.cloud.hold_sync():
            self.cloud.x = z[:, dx]
            self.cloud.y = z[:, dy]
        self._ax.label, self._ay.label = f"z{dx}", f"z{dy}"

    def _place_point(self) -> None:
        dx, dy = self._dims()
        self._syncing = True
        try:
            with self.point.hold_sync():
                self.point.x = [self._z[dx]]
                self.point.y = [self._z[dy]]
            if self.mode_toggle.value == "grid":  # hidden otherwise; _on_mode catches up
                with self.grid_point.hold_sync():
                    self.grid_point.x, self.grid_point.y = [self._z[dx]], [self._z[dy]]
        finally:
            self._syncing = False

    def _sync_sliders(self) -> None:
        self._syncing = True
        try:
            for dim, slider in enumerate(self.sliders):
                value = float(self._z[dim])
                if not slider.min <= value <= slider.max:  # widen rather than clamp
                    slider.min, slider.max = min(slider.min, value), max(slider.max, value)
                slider.value = value
        finally:
            self._syncing = False

    def _update_slider_ranges(self) -> None:
        self._syncing = True
        try:
            for dim, slider in enumerate(self.sliders):
                lo, hi, step = self._slider_range(dim)
                # order matters: never let min exceed the current max
                slider.max = max(hi, slider.min)
                slider.min, slider.max, slider.step = lo, hi, step
        finally:
            self._syncing = False

    def _rebuild_dims(self) -> None:
        d = self.index.latent_dim
        self._z = self.index.median.copy()
        old, self.sliders = self.sliders, [self._make_slider(i) for i in range(d)]
        self.sliders_box.children = self.sliders
        for slider in old:
            slider.close()
        dims = [(f"z{i}", i) for i in range(d)]
        self._syncing = True
        try:
            self.dim_x.options, self.dim_y.options = dims, dims
            self.dim_x.value, self.dim_y.value = 0, 1
        finally:
            self._syncing = False
        self._update_cloud_xy()

    def _color_values(self, mode: str) -> np.ndarray:
        """(N,) colour values for every tile: labels or log10 NMSE %."""
        if mode not in self._color_cache:
            with self._lock:
                model, index = self.model, self.index
            if mode == "cluster":
                values = cluster_latent(index.z, min(self._n_clusters, len(index))).labels
            elif mode == "error":
                values = np.log10(np.maximum(tile_errors(model, self.pairs), 1e-6))
            elif mode == "region":
                values = self._regions()[0]
            else:
                raise ValueError(f"colour mode must be one of {COLOR_MODES}, got {mode!r}")
            self._color_cache[mode] = np.asarray(values, dtype=np.float64)
        return self._color_cache[mode]

    def _recolor(self) -> None:
        mode = self.color_by.value
        try:
            values = self._color_values(mode)
        except Exception as exc:
            self._report_error(exc)
            return
        if mode == "error":
            colors = hex_colors("viridis", 9)
            # a few badly predicted tiles must not squash everyone else into one colour
            lo, hi = (float(v) for v in np.percentile(values, [2, 98]))
            self.legend.value = (
                f"<small>colour: prediction error NMSE ≤ {10**lo:.3g} % "
                f"<span style='color:{colors[0]}'>■</span> … "
                f"<span style='color:{colors[-1]}'>■</span> ≥ {10**hi:.3g} % "
                "(log scale)</small>"
            )
            lo, hi = (lo, hi) if hi > lo else (lo - 1, hi + 1)
        else:
            labels = np.unique(values).astype(int)
            colors = _label_colors(max(int(labels.max()) + 1, 2))
            names = self._regions()[1] if mode == "region" else None
            items = [
                f"<span style='color:{colors[v]}'>■</span> "
                f"{names[v] if names is not None and v < len(names) else v}"
                for v in labels
            ]
            self.legend.value = f"<small>{mode}: {' '.join(items)}</small>"
            # integer label v sits exactly on colour anchor v
            lo, hi = 0.0, float(len(colors) - 1)
        with self._scat_color.hold_sync():
            self._scat_color.colors = colors
            self._scat_color.min, self._scat_color.max = lo, hi
        self.cloud.color = values[self._shown]

    # -- events ----------------------------------------------------------------------
    def _on_slider(self, dim: int, value: float) -> None:
        if self._syncing:
            return
        z = self._z.copy()
        z[dim] = value
        self._z = z
        self._request()  # first: the decode runs while the pad point is being sent
        if dim in self._dims():
            self._place_point()

    def _set_pad_xy(self, x: float, y: float) -> None:
        """Move the point on the pad; a drag past the edge stops at the edge (stays visible)."""
        dx, dy = self._dims()
        z = self._z.copy()
        z[dx] = np.clip(float(x), self._sx.min, self._sx.max)
        z[dy] = np.clip(float(y), self._sy.min, self._sy.max)
        self.set_latent(z)

    def _on_drag_start(self, _mark: Any, _content: dict) -> None:
        self._dragging = True

    def _on_drag(self, _mark: Any, content: dict) -> None:
        point = content.get("point") or {}
        if "x" in point and "y" in point:
            self._set_pad_xy(point["x"], point["y"])

    def _on_drag_end(self, _mark: Any, content: dict) -> None:
        self._dragging = False
        self._on_drag(_mark, content)

    def _on_point_arrays(self, _change: dict) -> None:
        """The browser appended a point (click on the pad) or moved it (drag end)."""
        if self._syncing:
            return
        x, y = np.asarray(self.point.x), np.asarray(self.point.y)
        if len(x) == 0 or len(x) != len(y):
            return  # x and y arrive in one message; wait until both are set
        dx, dy = self._dims()
        if len(x) > 1 or not np.allclose([x[-1], y[-1]], [self._z[dx], self._z[dy]]):
            self._set_pad_xy(x[-1], y[-1])

    def _on_cloud_click(self, _mark: Any, content: dict) -> None:
        """Clicking an observed tile on the pad jumps to its encoding."""
        data = content.get("data") or {}
        if "index" in data:
            self.set_latent(self.index.z[self._shown[int(data["index"])]])

    def _on_viewer_position(self, change: dict) -> None:
        row, col = (int(v) for v in change["new"])
        hit = self.pairs.index_of(row, col)
        if hit is not None:  # pixels without a tile (other split half, edges) are ignored
            self.set_latent(self.index.z[hit])

    def _on_dims(self, change: dict) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:  # keep the two axes different: picking the other axis' dim swaps them
            if self.dim_x.value == self.dim_y.value:
                other = self.dim_y if change["owner"] is self.dim_x else self.dim_x
                other.value = change["old"]
        finally:
            self._syncing = False
        self._update_pad_scales()
        self._update_cloud_xy()
        self._place_point()
        if self.mode_toggle.value == "grid":
            self._refresh_grid()
        self._request()  # neighbour markers move to the new axes

    def _on_k(self, change: dict) -> None:
        self._k = int(change["new"])
        self._request()

    def _on_mode(self, change: dict) -> None:
        if change["new"] == "grid":
            self._refresh_grid()  # also places the grid point
            self.output_box.children = [self.grid_figure]
        else:
            self.output_box.children = self._view_widgets()

    @property
    def children_by_name(self) -> dict[str, Any]:
        """Named children: "slider z0" … (FloatSlider per latent dim), "pad", "x", "y",
        "color by", "k", "mode", "grid size", "grid", "neighbours" (the nearest-tile strip),
        "out of distribution" (the warning line), "measured caption", "spectrum view",
        "tile view" (None where absent) and "status"."""
        named: dict[str, Any] = {f"slider z{i}": s for i, s in enumerate(self.sliders)}
        named.update({
            "pad": self.pad, "x": self.dim_x, "y": self.dim_y, "color by": self.color_by,
            "k": self.k_slider, "mode": self.mode_toggle, "grid size": self.grid_size,
            "grid": self.grid_figure, "neighbours": self.neighbour_strip,
            "out of distribution": self.ood_box, "measured caption": self.measured_caption,
            "spectrum view": self.spectrum_view, "tile view": self.tile_view,
            "status": self.status,
        })
        return named

    # -- decoding ----------------------------------------------------------------------
    def _request(self) -> None:
        self._coalescer.submit(self._z.copy())

    def _decode(self, z: np.ndarray) -> _Decoded | None:
        """Worker side: decode z and back-project it (model.decode holds model.lock)."""
        with self._lock:
            model, index, k, generation = self.model, self.index, self._k, self._generation
        if len(z) != index.latent_dim:  # a request made before a model swap
            return None
        output = np.asarray(model.decode(z.astype(np.float32)[None]))[0]
        return _Decoded(z, output, index.query(z, min(k, len(index))), index, generation)

    def _publish(self, result: _Decoded | None) -> None:
        if result is None or result.generation != self._generation:
            return
        self.last_output = result.output
        self.last_neighbours = result.neighbours
        self._show_ood(float(np.asarray(result.neighbours.distances).reshape(-1)[0]))
        if not self._page_decodes():
            self._show_decoded(result)
        if self.status.value:
            self.status.value = ""
        self._secondary.submit(result)

    def _page_decodes(self) -> bool:
        """True while the page draws the decoded view itself (BrowserDecoder ready)."""
        return self.browser_decoder is not None and self.browser_decoder.ready

    def _show_decoded(self, result: _Decoded) -> None:
        """The decoded output and the nearest observed counterpart, in one view."""
        bp = result.neighbours
        if self._decodes_spectra:
            # one call: both curves and the y range in one update
            self.spectrum_view.update(measured=bp.spectra[0], predictions={"decoded": result.output})
            mark = self.spectrum_view.lines["decoded"]
        else:
            self.tile_view.set_tiles(measured=bp.images[0], predictions={"decoded": result.output})
            mark = self.tile_view.heatmaps["decoded"]
        if self.browser_decoder is not None:
            self.browser_decoder.set_target(mark)

    def _publish_secondary(self, result: _Decoded) -> None:
        """The observed inputs behind the latent point: the other-direction view, the
        nearest-tile strip and markers, and the highlight on the HAADF viewer."""
        if result.generation != self._generation:
            return
        if self._page_decodes():  # the kernel's value for the same point, a few times a second
            self._show_decoded(result)
        bp = result.neighbours
        mean_label = "mean of nearest"  # fixed name: changing k must not add curves
        if self._decodes_spectra:  # the other view shows the observed tiles
            if self.tile_view is not None:
                self.tile_view.set_tiles(measured=bp.images[0],
                                         predictions={mean_label: bp.mean_image})
        elif self.spectrum_view is not None:
            self.spectrum_view.update(measured=bp.spectra[0],
                                      predictions={mean_label: bp.mean_spectrum})
        self._show_neighbours(bp, result.index)
        if self.viewer is not None:
            self._outline_nearest(bp.positions)

    def _show_neighbours(self, bp: Any, index: LatentIndex) -> None:
        dx, dy = self._dims()
        zn = index.z[bp.indices]
        with self.neighbour_marks.hold_sync():
            self.neighbour_marks.x = zn[:, dx]
            self.neighbour_marks.y = zn[:, dy]
        self.neighbour_strip.value = self._strip_html(bp)
        r, c = (int(v) for v in np.asarray(bp.positions)[0])
        self.measured_caption.value = _CAPTION.format(
            f"<b>decoded</b>: the decoder's {self._measured_what} at the point · <b>measured</b>: "
            f"the nearest observed tile's (#1, SI ({r}, {c}), d = {float(bp.distances[0]):.3g})")

    def _strip_html(self, bp: Any) -> str:
        """The k nearest tiles side by side with gaps, each captioned with its latent
        distance and SI position; the size depends on k only (no jump while dragging)."""
        lo, hi = self._tile_range
        cells = []
        for i, (tile, d, (r, c)) in enumerate(zip(np.asarray(bp.images), np.asarray(bp.distances),
                                                  np.asarray(bp.positions))):
            cells.append(
                f"<div class='pw-strip-cell' style='width:{STRIP_TILE_PX + 8}px;text-align:center'>"
                f"<img src='{tile_data_uri(tile, lo, hi)}' width='{STRIP_TILE_PX}' "
                f"height='{STRIP_TILE_PX}' style='image-rendering:pixelated;display:block;"
                f"margin:2px auto;outline:2px solid {NEAREST_COLOR}' alt='nearest tile {i + 1}'>"
                f"<div class='pw-strip-caption' style='font-size:10px;line-height:12px;height:24px;"
                f"overflow:hidden;white-space:nowrap'>#{i + 1} d={float(d):.2g}<br>"
                f"({int(r)}, {int(c)})</div></div>")
        return (f"<div style='display:flex;flex-wrap:wrap;gap:6px;width:440px' "
                f"title='grey scale fixed to the tiles range {lo:.4g}–{hi:.4g}'>{''.join(cells)}</div>")

    @property
    def nearest_positions(self) -> list[list[int]]:
        """SI [row, col] of the nearest observed tiles last shown, nearest first."""
        bp = self.last_neighbours
        return [] if bp is None else [[int(r), int(c)] for r, c in np.asarray(bp.positions)]

    def _outline_nearest(self, positions: Any) -> None:
        """Outline the nearest tiles on the viewer at their true size, numbered; a viewer
        without outlines gets circles (``highlight``)."""
        viewer = self.viewer
        pos = [[int(r), int(c)] for r, c in np.asarray(positions)]
        if hasattr(viewer, "set_boxes"):
            if viewer.highlight:
                viewer.highlight = []
            viewer.set_boxes("nearest", [
                viewer.tile_box(r, c, color=NEAREST_COLOR, label=str(i + 1),
                                window=self.pairs.window)
                for i, (r, c) in enumerate(pos)])
        else:
            viewer.highlight = pos

    def _show_ood(self, distance: float) -> None:
        """Warn (visibly) when the point is farther from every encoding than the cloud's
        own nearest-neighbour spacing allows."""
        ood = bool(distance > self._ood_limit)
        self.out_of_distribution = ood
        self.last_ood_distance = distance
        text = "" if not ood else _CAPTION.format(message_html(
            f"Outside the data: the point is {distance:.3g} from the nearest encoded tile, farther "
            f"than {OOD_PERCENTILE:g} % of the spacings inside the cloud ({self._ood_limit:.3g}). "
            "The decoder is extrapolating: no observed structure looks like this.", "warning"))
        if self.ood_box.value != text:
            self.ood_box.value = text

    def _refresh_grid(self) -> None:
        """Decode an n×n grid over the pad's two dims (analysis.latent_grid)."""
        with self._lock:
            index = self.index
        grid = index.grid(int(self.grid_size.value), dims=self._dims())
        self.latent_grid = grid
        n = len(grid.x)
        if self._decodes_spectra:
            spectra = grid.decoded.reshape(n * n, -1)
            e = np.asarray(self.pairs.energy, dtype=np.float64)
            u = (e - e[0]) / (e[-1] - e[0]) - 0.5  # -0.5..0.5 across a cell
            lo, hi = float(spectra.min()), float(spectra.max())
            v = (spectra - lo) / (hi - lo if hi > lo else 1.0) - 0.5
            step_x = (grid.x[-1] - grid.x[0]) / (n - 1) or 1.0
            step_y = (grid.y[-1] - grid.y[0]) / (n - 1) or 1.0
            cx = np.repeat(grid.x[None, :], n, axis=0).ravel()  # node (i, j) -> x[j]
            cy = np.repeat(grid.y[:, None], n, axis=1).ravel()
            with self.grid_mark.hold_sync():
                self.grid_mark.x = cx[:, None] + 0.85 * step_x * u[None, :]
                self.grid_mark.y = cy[:, None] + 0.85 * step_y * v
        else:
            w = grid.decoded.shape[-1]
            tiles = grid.decoded.reshape(n * n, w, w)
            mosaic = _mosaic(tiles, n, n)  # node (i, j) -> block row i from the bottom = y[i]
            with self.grid_mark.hold_sync():
                self.grid_mark.x = _centres(grid.x[0], grid.x[-1], n, mosaic.shape[1])
                self.grid_mark.y = _centres(grid.y[0], grid.y[-1], n, mosaic.shape[0])
                self.grid_mark.color = mosaic
        dx, dy = grid.dims
        self._gax.label, self._gay.label = f"z{dx}", f"z{dy}"
        self._place_point()

    def _report_error(self, exc: BaseException, _trace: str = "") -> None:
        self.status.value = message_html(f"{type(exc).__name__}: {exc}")

