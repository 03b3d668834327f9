"""HAADFViewer: a canvas view of the HAADF image with a probe, a tile outline and an overlay.

The image and the overlay travel to the browser once, as float32 buffers; the
browser colours them through a 256-entry lookup table and keeps pan and zoom to
itself. Only semantic state comes back to the kernel: the probe ``position``
(SI pixels) and the last render time ``render_ms``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from . import colormaps
from .serialization import array_to_buffer, buffer_to_array

__all__ = ["HAADFViewer"]

_BOX_STYLES = ("solid", "dashed", "marker")

_STATIC = Path(__file__).parent / "static"


def _robust_range(values: np.ndarray, percentiles=(0.5, 99.5)) -> tuple[float, float]:
    """(lo, hi) display range of the finite values; hi > lo always."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(finite, percentiles))
    if not hi > lo:
        lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


class HAADFViewer(anywidget.AnyWidget):
    """Interactive HAADF image: click to place the probe, overlay SI-grid maps.

    Parameters
    ----------
    si : SpectrumImage, optional
        Shows ``si.haadf`` (H, W) with ``scale = si.scale`` HAADF pixels per SI pixel.
    image : array (H, W), optional
        Any image instead of an SI (e.g. an error map); NaN pixels are transparent.
    scale : int
        HAADF pixels per SI pixel when ``image`` is given (H must be a multiple).
    cmap : str
        One of :data:`colormaps.CMAPS`.
    window : int
        Side of the tile outline drawn around the probe, in HAADF pixels (0 hides it).
    size : int
        Longest side of the canvas on screen, CSS pixels.
    title : str
        Caption above the image.

    In the browser: left click or drag places the probe, arrow keys step it one SI
    pixel, the wheel zooms, right/middle drag or shift+drag pans, ``r`` resets the view.
    Ctrl/Alt/Cmd+click (or the key ``p``, at the probe) asks to pin the spectrum of that
    pixel and, in ``drag_mode = "region"``, a left drag asks for a region; both reach Python
    callbacks registered with :meth:`on_pin` and :meth:`on_region` (the viewer itself stores
    nothing for them).
    A scale bar (from ``pixel_size``) and the image's intensity scale are drawn unless
    ``show_scalebar`` / ``show_colorbar`` are off.

    Notes
    -----
    ``overlays`` maps a group name to a list of boxes, each a dict with ``x0, y0, x1, y1``
    (HAADF pixels; columns x, rows y; the box covers ``x0 <= x < x1``, ``y0 <= y < y1``),
    ``color`` (any CSS colour) and ``label`` (text drawn at the box, may be ""); an optional
    ``style`` is ``"solid"`` (default), ``"dashed"`` or ``"marker"`` (a ringed dot at the
    box centre). Groups never overwrite each other: use :meth:`set_boxes` /
    :meth:`remove_boxes` (or assign a whole new dict: mutating it in place does not sync).

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> v = HAADFViewer(pw.datasets.nanocube_array(size=24))
    >>> v.set_boxes("nearest", [v.tile_box(3, 4, color="#e6194b", label="1")])
    >>> sorted(v.overlays["nearest"][0])
    ['color', 'label', 'style', 'x0', 'x1', 'y0', 'y1']
    """

    _esm = _STATIC / "haadf_viewer.js"
    _css = _STATIC / "haadf_viewer.css"

    # image: float32 (H, W) buffer, row-major; shape travels separately
    image = t.Bytes(b"").tag(sync=True)
    image_shape = t.List(t.Int(), default_value=[0, 0], minlen=2, maxlen=2).tag(sync=True)
    scale = t.Int(1).tag(sync=True)
    cmap = t.Unicode("grey").tag(sync=True)
    lut = t.Bytes(b"").tag(sync=True)  # (256, 4) uint8 RGBA, derived from cmap
    vmin = t.Float(0.0).tag(sync=True)
    vmax = t.Float(1.0).tag(sync=True)
    pixel_size = t.Float(1.0).tag(sync=True)  # size of one SI pixel, pixel_unit
    pixel_unit = t.Unicode("px").tag(sync=True)

    position = t.List(t.Int(), default_value=[0, 0], minlen=2, maxlen=2).tag(sync=True)
    window = t.Int(16).tag(sync=True)
    show_probe = t.Bool(True).tag(sync=True)
    highlight = t.List(t.List(t.Int(), minlen=2, maxlen=2)).tag(sync=True)

    # overlay: float32 (h, w) buffer on the SI grid; NaN is transparent
    overlay = t.Bytes(b"").tag(sync=True)
    overlay_shape = t.List(t.Int(), default_value=[0, 0], minlen=2, maxlen=2).tag(sync=True)
    overlay_cmap = t.Unicode("viridis").tag(sync=True)
    overlay_lut = t.Bytes(b"").tag(sync=True)
    overlay_opacity = t.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    overlay_range = t.List(t.Float(), default_value=[0.0, 1.0], minlen=2, maxlen=2).tag(
        sync=True
    )
    overlay_label = t.Unicode("").tag(sync=True)

    # outlined boxes in HAADF pixels, by group: {"group": [{"x0", "y0", "x1", "y1", "color", "label"}]}
    overlays = t.Dict(key_trait=t.Unicode(), value_trait=t.List(t.Dict())).tag(sync=True)
    # left drag: "probe" moves the probe, "region" draws a box and reports it (see on_region)
    drag_mode = t.Enum(("probe", "region"), default_value="probe").tag(sync=True)
    region_tool = t.Bool(False).tag(sync=True)  # show the "draw box" button (set by on_region)
    show_scalebar = t.Bool(True).tag(sync=True)
    show_colorbar = t.Bool(True).tag(sync=True)  # the HAADF's own intensity scale
    image_label = t.Unicode("").tag(sync=True)  # caption of the intensity scale ("" -> "image")

    title = t.Unicode("").tag(sync=True)
    size = t.Int(400, min=32).tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    render_ms = t.Float(-1.0).tag(sync=True)  # written by the browser after each recolour

    def __init__(
        self,
        si: Any = None,
        *,
        image: Any = None,
        scale: int | None = None,
        cmap: str = "grey",
        window: int = 16,
        size: int = 400,
        title: str = "",
        **kwargs: Any,
    ):
        super().__init__(cmap=cmap, window=window, size=size, title=title, **kwargs)
        self.si = None
        self._pin_callbacks: list = []
        self._region_callbacks: list = []
        self.on_msg(self._on_front_end_msg)
        self.lut = colormaps.lut_bytes(self.cmap)
        self.overlay_lut = colormaps.lut_bytes(self.overlay_cmap)
        if si is not None and image is not None:
            raise ValueError("pass either a SpectrumImage `si` or an `image`, not both")
        if si is not None:
            self.set_si(si)
        elif image is not None:
            self.set_image(image, scale=1 if scale is None else scale)

    # --- data ---------------------------------------------------------------
    def set_si(self, si: Any) -> None:
        """Show ``si.haadf`` with the SI's scale and pixel calibration."""
        for attr in ("haadf", "scale", "scan_shape"):
            if not hasattr(si, attr):
                raise TypeError(
                    f"expected a SpectrumImage (with .{attr}), got {type(si).__name__}; "
                    "use image=... for a plain array"
                )
        self.si = si
        with self.hold_sync():
            self.pixel_size = float(getattr(si, "pixel_size", 1.0))
            self.pixel_unit = str(getattr(si, "pixel_unit", "px"))
            self.image_label = "HAADF (counts)"
            self.set_image(si.haadf, scale=si.scale)

    def set_image(
        self, image: Any, scale: int = 1, vmin: float | None = None, vmax: float | None = None
    ) -> None:
        """Replace the displayed image (H, W); H and W must be multiples of ``scale``.

        The display range defaults to the 0.5-99.5 percentiles of the finite
        values; NaN/Inf pixels are drawn transparent.
        """
        buffer, shape = array_to_buffer(image, "image", ndim=2)
        scale = int(scale)
        if scale < 1 or shape[0] % scale or shape[1] % scale:
            raise ValueError(
                f"image shape {tuple(shape)} is not a multiple of scale {scale}; "
                "pass the HAADF-pixels-per-SI-pixel factor that divides both sides"
            )
        values = buffer_to_array(buffer, shape)
        n_bad = int(np.count_nonzero(~np.isfinite(values)))
        if n_bad == values.size:
            raise ValueError("image has no finite values (all NaN/Inf); nothing to display")
        lo, hi = _robust_range(values)
        h, w = shape[0] // scale, shape[1] // scale
        with self.hold_sync():
            self.image = buffer
            self.image_shape = shape
            self.scale = scale
            self.vmin = lo if vmin is None else float(vmin)
            self.vmax = hi if vmax is None else float(vmax)
            r, c = self.position
            self.position = [min(r, h - 1), min(c, w - 1)]
            self.highlight = [p for p in self.highlight if p[0] < h and p[1] < w]
            if self.overlay_shape != [0, 0] and self.overlay_shape != [h, w]:
                self.clear_overlay()
            self.message = (
                f"{n_bad} non-finite image pixels are drawn transparent" if n_bad else ""
            )

    @property
    def image_data(self) -> np.ndarray:
        """The displayed image as a read-only (H, W) float32 array."""
        return buffer_to_array(self.image, self.image_shape)

    @property
    def scan_shape(self) -> tuple[int, int]:
        """(h, w) SI grid of the image: image_shape // scale."""
        return (self.image_shape[0] // self.scale, self.image_shape[1] // self.scale)

    # --- overlay ------------------------------------------------------------
    def set_overlay(
        self,
        array: Any,
        cmap: str = "viridis",
        label: str = "",
        vmin: float | None = None,
        vmax: float | None = None,
        opacity: float | None = None,
    ) -> None:
        """Draw an (h, w) SI-grid map over the image (NaN = transparent) with a colour bar.

        ``cmap="labels"`` colours integer labels 0..255 categorically. The range
        defaults to the finite min/max of ``array``.
        """
        cmap = colormaps.canonical(cmap)
        arr = np.asarray(array)
        if arr.dtype == bool:
            arr = arr.astype(np.float32)
        buffer, shape = array_to_buffer(arr, "overlay", ndim=2)
        if tuple(shape) != self.scan_shape:
            h, w = self.scan_shape
            raise ValueError(
                f"overlay has shape {tuple(shape)} but this viewer's SI grid is ({h}, {w}) "
                f"(image {tuple(self.image_shape)} at scale {self.scale}); pass a map on the "
                "SI scan grid, e.g. an analysis.error_map or NMF abundance"
            )
        values = buffer_to_array(buffer, shape)
        finite = values[np.isfinite(values)]
        if cmap == "labels":
            lo, hi = 0.0, 255.0
        elif finite.size:
            lo, hi = float(finite.min()), float(finite.max())
        else:
            lo, hi = 0.0, 1.0
        lo = lo if vmin is None else float(vmin)
        hi = hi if vmax is None else float(vmax)
        if not hi > lo:
            lo, hi = lo - 0.5, lo + 0.5
        with self.hold_sync():
            self.overlay = buffer
            self.overlay_shape = shape
            self.overlay_cmap = cmap
            self.overlay_range = [lo, hi]
            self.overlay_label = str(label)
            if opacity is not None:
                self.overlay_opacity = float(opacity)

    def clear_overlay(self) -> None:
        """Remove the overlay and its colour bar."""
        with self.hold_sync():
            self.overlay = b""
            self.overlay_shape = [0, 0]
            self.overlay_label = ""

    @property
    def overlay_data(self) -> np.ndarray | None:
        """The overlay as a read-only (h, w) float32 array, or None."""
        if self.overlay_shape == [0, 0]:
            return None
        return buffer_to_array(self.overlay, self.overlay_shape)

    # --- outlines (overlays) ---------------------------------------------------
    def set_boxes(self, group: str, boxes: list[dict]) -> None:
        """Draw ``boxes`` as group ``group``, replacing only that group (see the class notes)."""
        self.overlays = {**self.overlays, str(group): list(boxes)}

    def remove_boxes(self, group: str | None = None) -> None:
        """Remove group ``group`` (absent: nothing happens), or every group when None."""
        if group is None:
            self.overlays = {}
        elif group in self.overlays:
            self.overlays = {k: v for k, v in self.overlays.items() if k != group}

    def tile_box(
        self, row: int, col: int, *, color: str = "#ffffff", label: str = "",
        window: int | None = None, style: str = "solid",
    ) -> dict:
        """The box of the ``window``-wide HAADF tile centred on SI pixel (row, col).

        The same rows and columns as :func:`plasmonwidgets.tiles.make_tiles` and the probe's
        outline (``window`` defaults to the viewer's). Pass it to :meth:`set_boxes`.
        """
        win = self.window if window is None else int(window)
        s = self.scale
        top = int(row) * s + s // 2 - win // 2
        left = int(col) * s + s // 2 - win // 2
        return {"x0": left, "y0": top, "x1": left + win, "y1": top + win, "color": color,
                "label": str(label), "style": style}

    def pixel_box(
        self, row0: int, col0: int, row1: int | None = None, col1: int | None = None, *,
        color: str = "#ffffff", label: str = "", style: str = "solid",
    ) -> dict:
        """The box of SI pixels ``row0 <= r < row1``, ``col0 <= c < col1`` in HAADF pixels
        (one SI pixel when ``row1``/``col1`` are omitted)."""
        row1 = row0 + 1 if row1 is None else row1
        col1 = col0 + 1 if col1 is None else col1
        s = self.scale
        return {"x0": col0 * s, "y0": row0 * s, "x1": col1 * s, "y1": row1 * s, "color": color,
                "label": str(label), "style": style}

    @t.validate("overlays")
    def _check_overlays(self, proposal):
        out = {}
        for group, boxes in proposal["value"].items():
            checked = []
            for i, box in enumerate(boxes):
                where = f"overlays[{group!r}][{i}]"
                if not isinstance(box, dict):
                    raise t.TraitError(f"{where} must be a dict with x0, y0, x1, y1, color, label")
                missing = [k for k in ("x0", "y0", "x1", "y1") if k not in box]
                if missing:
                    raise t.TraitError(f"{where} lacks {', '.join(missing)} (HAADF pixels)")
                try:
                    x0, y0, x1, y1 = (float(box[k]) for k in ("x0", "y0", "x1", "y1"))
                except (TypeError, ValueError):
                    raise t.TraitError(f"{where}: x0, y0, x1, y1 must be numbers") from None
                if not (x1 > x0 and y1 > y0):
                    raise t.TraitError(f"{where} is empty: need x1 > x0 and y1 > y0, got {box}")
                style = str(box.get("style", "solid"))
                if style not in _BOX_STYLES:
                    raise t.TraitError(f"{where}: style {style!r} is not one of {_BOX_STYLES}")
                checked.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1,
                                "color": str(box.get("color", "#ffffff")),
                                "label": str(box.get("label", "")), "style": style})
            out[str(group)] = checked
        return out

    # --- pin and region requests from the browser ------------------------------
    def on_pin(self, callback, remove: bool = False) -> None:
        """Call ``callback(row, col)`` when the user Ctrl/Alt/Cmd+clicks SI pixel (row, col)."""
        (self._pin_callbacks.remove if remove else self._pin_callbacks.append)(callback)

    def on_region(self, callback, remove: bool = False) -> None:
        """Call ``callback(row0, col0, row1, col1)`` (SI pixels, end exclusive) when the user
        drags a box in ``drag_mode = "region"``."""
        (self._region_callbacks.remove if remove else self._region_callbacks.append)(callback)
        self.region_tool = bool(self._region_callbacks)
        if not self.region_tool:
            self.drag_mode = "probe"

    def _on_front_end_msg(self, _widget, content, _buffers) -> None:
        if not isinstance(content, dict):
            return
        event = content.get("event")
        h, w = self.scan_shape
        try:
            if event == "pin":
                r, c = (int(v) for v in content["position"])
                if not (0 <= r < h and 0 <= c < w):
                    raise ValueError(f"pin ({r}, {c}) is outside the SI scan ({h}, {w})")
                for cb in list(self._pin_callbacks):
                    cb(r, c)
            elif event == "region":
                r0, c0, r1, c1 = (int(v) for v in content["box"])
                r0, r1 = sorted((max(0, min(h, r0)), max(0, min(h, r1))))
                c0, c1 = sorted((max(0, min(w, c0)), max(0, min(w, c1))))
                if r1 <= r0 or c1 <= c0:
                    raise ValueError("the region is empty: drag over at least one SI pixel")
                for cb in list(self._region_callbacks):
                    cb(r0, c0, r1, c1)
        except Exception as exc:  # a browser gesture has no traceback: say it on the widget
            self.message = f"{event}: {exc}"

    # --- validation and derived traits --------------------------------------
    @t.validate("position")
    def _check_position(self, proposal):
        r, c = proposal["value"]
        h, w = self.scan_shape
        if h and not (0 <= r < h and 0 <= c < w):
            raise t.TraitError(
                f"position {[r, c]} is outside the SI scan of shape ({h}, {w}); "
                f"rows must be in 0..{h - 1} and columns in 0..{w - 1}"
            )
        return [int(r), int(c)]

    @t.validate("highlight")
    def _check_highlight(self, proposal):
        h, w = self.scan_shape
        out = []
        for p in proposal["value"]:
            r, c = int(p[0]), int(p[1])
            if h and not (0 <= r < h and 0 <= c < w):
                raise t.TraitError(f"highlight pixel {[r, c]} is outside the SI scan ({h}, {w})")
            out.append([r, c])
        return out

    @t.validate("window")
    def _check_window(self, proposal):
        if proposal["value"] < 0:
            raise t.TraitError(f"window must be >= 0 HAADF pixels, got {proposal['value']}")
        return proposal["value"]

    @t.validate("cmap", "overlay_cmap")
    def _check_cmap(self, proposal):
        try:
            return colormaps.canonical(proposal["value"])
        except ValueError as exc:
            raise t.TraitError(str(exc)) from None

    @t.observe("cmap")
    def _cmap_changed(self, change):
        self.lut = colormaps.lut_bytes(change["new"])

    @t.observe("overlay_cmap")
    def _overlay_cmap_changed(self, change):
        self.overlay_lut = colormaps.lut_bytes(change["new"])
