"""SpectrumCompare: pinned spectra, region sums and energy-window maps, as in HyperSpy or DM.

It sits on a :class:`HAADFViewer` and a :class:`SpectrumView` showing the same SI:

- **pin** the probe's spectrum (the "pin probe" button) or any pixel (Ctrl/Alt/Cmd+click on
  the HAADF): the curve stays in the spectrum view in its own colour, with a marker of
  that colour on the HAADF;
- **region**: "draw box" on the HAADF, then drag: the mean (or sum) spectrum of the SI
  pixels inside is kept like a pin, its box outlined on the HAADF in the same colour;
- **energy window**: drag on the spectrum plot (or move the "window" slider): the counts
  summed over the window's channels, as a map over the SI, shown over the HAADF with its
  colour bar and the window in its label.

At most ``max_pins`` curves (pins and regions together) are kept: one curve is E float32
numbers in the browser, and a legend of more than ~8 colours can no longer be told apart.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np

from ._message import message_html

__all__ = ["Kept", "SpectrumCompare", "PIN_COLORS", "MAX_PINS", "window_channels", "window_map"]

#: distinct from the probe's blue and the predictions' orange/green; readable on grey HAADF
PIN_COLORS = ("#d62728", "#9467bd", "#e377c2", "#17becf", "#8c564b", "#bcbd22", "#ff9896", "#7f7f7f")
MAX_PINS = 8
_REDUCE = ("mean", "sum")
_WINDOW_COLOR = "#ff7f0e"


def window_map(spectra: Any, energy: Any, lo: float, hi: float) -> tuple[np.ndarray, int]:
    """Counts summed over the channels with ``lo <= E <= hi`` at every SI pixel.

    Parameters
    ----------
    spectra : array (h, w, E)
    energy : array (E,), eV
    lo, hi : float
        Window ends in eV (``lo < hi``).

    Returns
    -------
    map : (h, w) float64 array
    n_channels : int
        Channels inside the window.

    Examples
    --------
    >>> m, n = window_map(np.ones((2, 3, 5)), np.linspace(0, 1, 5), 0.2, 0.6)
    >>> m.shape, n, float(m[0, 0])
    ((2, 3), 2, 2.0)
    """
    first, last = window_channels(energy, lo, hi)
    block = np.asarray(spectra[..., first : last + 1], dtype=np.float64)
    return block.sum(axis=-1), last - first + 1


def window_channels(energy: Any, lo: float, hi: float) -> tuple[int, int]:
    """(first, last) indices of the channels with ``lo <= E <= hi`` (ValueError if none).

    Examples
    --------
    The channels of a 0.5-2.0 eV axis (32 channels) between 1.0 and 1.2 eV:

    >>> import numpy as np
    >>> window_channels(np.linspace(0.5, 2.0, 32), 1.0, 1.2)
    (11, 14)
    """
    e = np.asarray(energy, dtype=np.float64)
    if not hi > lo:
        raise ValueError(f"energy window needs hi > lo, got {lo}–{hi} eV")
    tol = 1e-9 * max(1.0, float(np.abs(e).max()))
    sel = np.flatnonzero((e >= lo - tol) & (e <= hi + tol))
    if sel.size == 0:
        step = float(np.median(np.diff(e))) if e.size > 1 else 0.0
        raise ValueError(
            f"no channel lies in {lo:.4g}–{hi:.4g} eV (channels every {step:.3g} eV from "
            f"{e[0]:.4g} to {e[-1]:.4g}); widen the window"
        )
    return int(sel[0]), int(sel[-1])


@dataclass(frozen=True)
class Kept:
    """One kept curve: a pinned pixel or a region.

    ``box`` is (row0, col0, row1, col1) in SI pixels, end exclusive (a pin is one pixel);
    ``reduce`` is "pixel" for a pin, else "mean" or "sum" over the box.

    Examples
    --------
    A pinned pixel at row 3, column 4; spectrum (E,) in the SI's intensity units:

    >>> import numpy as np
    >>> kept = Kept(name="pin 1", kind="pin", color="#e69f00", box=(3, 4, 4, 5), reduce="pixel",
    ...             spectrum=np.ones(32))
    >>> kept.box
    (3, 4, 4, 5)
    """

    name: str
    kind: str
    color: str
    box: tuple[int, int, int, int]
    reduce: str
    spectrum: np.ndarray = field(repr=False, compare=False)

    @property
    def n_pixels(self) -> int:
        r0, c0, r1, c1 = self.box
        return (r1 - r0) * (c1 - c0)

    def describe(self, pixel_size: float = 1.0, unit: str = "px") -> str:
        """Legend text: position as x (column), y (row) in SI pixels and in ``unit``."""
        r0, c0, r1, c1 = self.box
        phys = unit != "px"
        if self.kind == "pin":
            text = f"{self.name}: x {c0}, y {r0} px"
            if phys:
                text += f" = {c0 * pixel_size:.4g}, {r0 * pixel_size:.4g} {unit}"
            return text
        text = f"{self.name}: x {c0}–{c1 - 1}, y {r0}–{r1 - 1} px"
        if phys:
            text += f" ({(c1 - c0) * pixel_size:.4g} × {(r1 - r0) * pixel_size:.4g} {unit})"
        return text + f", {self.reduce} of {self.n_pixels} px"


class SpectrumCompare:
    """Pins, region sums and energy-window maps for a viewer and a spectrum view.

    Parameters
    ----------
    viewer : HAADFViewer
        Shows the SI's HAADF; receives markers, boxes and the window map.
    spectrum_view : SpectrumView
        On the SI's energy axis; receives the kept curves, the window brush and the controls
        (under its buttons, unless ``attach=False``: then show :attr:`controls` yourself).
    si : SpectrumImage
        Source of the spectra (h, w, E); may be lazy (only the pixels asked for are read).
    max_pins : int
        Most curves kept at once (pins and regions together).
    reduce : {"mean", "sum"}
        How a region's spectra are combined; the legend says which.

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> from plasmonwidgets.widgets import HAADFViewer, SpectrumView
    >>> si = pw.datasets.nanocube_array(size=24)
    >>> cmp = SpectrumCompare(HAADFViewer(si), SpectrumView(energy=si.energy), si)
    >>> cmp.pin(3, 4).name, cmp.add_region(0, 0, 4, 4).describe(si.pixel_size, si.pixel_unit)
    ('P1', 'R2: x 0–3, y 0–3 px (8 × 8 nm), mean of 16 px')
    >>> m = cmp.set_window(0.45, 0.55); m.shape
    (24, 24)
    """

    def __init__(
        self,
        viewer: Any,
        spectrum_view: Any,
        si: Any,
        *,
        max_pins: int = MAX_PINS,
        reduce: str = "mean",
        attach: bool = True,
    ):
        if tuple(viewer.scan_shape) != tuple(si.scan_shape):
            raise ValueError(
                f"the viewer shows an SI scan of {tuple(viewer.scan_shape)} but the SI has "
                f"{tuple(si.scan_shape)}; build both from the same SpectrumImage"
            )
        if spectrum_view.energy.size != si.n_energy:
            spectrum_view.set_energy(si.energy)
        if reduce not in _REDUCE:
            raise ValueError(f"reduce must be one of {_REDUCE}, got {reduce!r}")
        if not 1 <= int(max_pins) <= len(PIN_COLORS):
            raise ValueError(f"max_pins must be 1..{len(PIN_COLORS)} (one colour each), got {max_pins}")
        self.viewer = viewer
        self.spectrum_view = spectrum_view
        self.si = si
        self.max_pins = int(max_pins)
        self.kept: list[Kept] = []
        self._count = 0
        self.window: tuple[float, float] | None = None
        self.window_data: np.ndarray | None = None
        self._build_controls(reduce)
        viewer.on_pin(self._on_pin_click)
        viewer.on_region(self._on_region_drag)
        if attach:
            spectrum_view.add_controls(self.controls)

    # --- kept curves -------------------------------------------------------------
    def pin(self, row: int, col: int) -> Kept:
        """Keep the spectrum at SI pixel (row, col); returns the kept entry.

        Pinning a pixel that is already pinned returns that entry. Raises ValueError when
        ``max_pins`` curves are kept already.
        """
        h, w = self.si.scan_shape
        row, col = int(row), int(col)
        if not (0 <= row < h and 0 <= col < w):
            raise ValueError(f"pixel ({row}, {col}) is outside the SI scan ({h}, {w})")
        for k in self.kept:
            if k.kind == "pin" and k.box[:2] == (row, col):
                self._say(f"{k.name} is already pinned there", "info")
                return k
        spectrum = np.asarray(self.si.spectra[row, col], dtype=np.float64)
        return self._keep("pin", "P", (row, col, row + 1, col + 1), "pixel", spectrum)

    def add_region(self, row0: int, col0: int, row1: int, col1: int, reduce: str | None = None) -> Kept:
        """Keep the mean (or sum) spectrum of SI rows ``row0:row1``, columns ``col0:col1``
        (end exclusive); ``reduce`` defaults to the "mean/sum" toggle."""
        reduce = self.reduce_toggle.value if reduce is None else reduce
        if reduce not in _REDUCE:
            raise ValueError(f"reduce must be one of {_REDUCE}, got {reduce!r}")
        h, w = self.si.scan_shape
        r0, c0, r1, c1 = (int(v) for v in (row0, col0, row1, col1))
        if not (0 <= r0 < r1 <= h and 0 <= c0 < c1 <= w):
            raise ValueError(
                f"region rows {r0}:{r1}, columns {c0}:{c1} is empty or outside the SI scan "
                f"({h}, {w}); rows need 0 <= row0 < row1 <= {h}, columns 0 <= col0 < col1 <= {w}"
            )
        block = np.asarray(self.si.spectra[r0:r1, c0:c1], dtype=np.float64)
        spectrum = block.sum(axis=(0, 1)) if reduce == "sum" else block.mean(axis=(0, 1))
        return self._keep("region", "R", (r0, c0, r1, c1), reduce, spectrum)

    def unpin(self, name: str) -> None:
        """Remove kept curve ``name`` (e.g. "P1"); KeyError names the ones kept."""
        if not any(k.name == name for k in self.kept):
            raise KeyError(f"nothing kept as {name!r}; kept: {[k.name for k in self.kept]}")
        self.kept = [k for k in self.kept if k.name != name]
        self.spectrum_view.remove_pinned(name)
        self._refresh()
        self._say("")

    def clear(self) -> None:
        """Remove every pinned spectrum and region."""
        self.kept = []
        self.spectrum_view.remove_pinned()
        self._refresh()
        self._say("")

    def _keep(self, kind: str, prefix: str, box, reduce: str, spectrum: np.ndarray) -> Kept:
        if len(self.kept) >= self.max_pins:
            raise ValueError(
                f"{self.max_pins} spectra are kept already (the most the plot can tell apart); "
                "unpin one or clear all first"
            )
        used = {k.color for k in self.kept}
        color = next(c for c in PIN_COLORS if c not in used)
        self._count += 1
        entry = Kept(f"{prefix}{self._count}", kind, color, tuple(box), reduce, spectrum)
        self.kept.append(entry)
        self.spectrum_view.set_pinned(entry.name, spectrum, color=color, dashed=kind == "region")
        self._refresh()
        self._say("")
        return entry

    def _refresh(self) -> None:
        """Markers and boxes on the HAADF, and the legend, from :attr:`kept`."""
        v = self.viewer
        pins = [v.pixel_box(*k.box, color=k.color, label=k.name, style="marker")
                for k in self.kept if k.kind == "pin"]
        regions = [v.pixel_box(*k.box, color=k.color, label=k.name)
                   for k in self.kept if k.kind == "region"]
        v.set_boxes("pins", pins)
        v.set_boxes("regions", regions)
        rows = []
        size, unit = float(getattr(self.si, "pixel_size", 1.0)), str(getattr(self.si, "pixel_unit", "px"))
        for k in self.kept:
            swatch = (f"<span style='display:inline-block;width:18px;height:0;vertical-align:middle;"
                      f"border-top:3px {'dashed' if k.kind == 'region' else 'solid'} {k.color}'></span>")
            text = ipw.HTML(f"{swatch} {html.escape(k.describe(size, unit))}",
                            layout=ipw.Layout(margin="0 4px 0 0"))
            text.add_class("pw-compare-entry")
            button = ipw.Button(description="unpin", tooltip=f"Remove {k.name}",
                                layout=ipw.Layout(width="auto", height="22px"))
            button.on_click(lambda _b, name=k.name: self._guard(self.unpin, name))
            rows.append(ipw.HBox([button, text], layout=ipw.Layout(align_items="center")))
        self.legend.children = rows
        self.clear_button.disabled = not self.kept
        self.count_label.value = (f"<span style='font-size:90%'>{len(self.kept)} of {self.max_pins} "
                                  "kept</span>" if self.kept else "")

    # --- energy window -------------------------------------------------------------
    def set_window(self, lo: float, hi: float, show: bool = True) -> np.ndarray:
        """Map the counts summed over ``lo <= E <= hi`` eV and (``show``) draw it on the viewer.

        The window is then stated by its first and last channel energies (:attr:`window`).
        Returns the (h, w) map (also in :attr:`window_data`).
        """
        e = self.si.energy
        data, n = window_map(self.si.spectra, e, float(lo), float(hi))
        first, last = window_channels(e, float(lo), float(hi))
        self.window = (float(e[first]), float(e[last]))
        self.window_data = data
        self._window_channels = n
        self._sync_window_widgets()
        if show and not self.show_map.value:
            self.show_map.value = True  # the observer draws it
        elif self.show_map.value:
            self._draw_map()
        return data

    def window_label(self) -> str:
        """E.g. "counts, 0.45–0.55 eV (11 ch)" — the map's colour bar label."""
        if self.window is None:
            return ""
        lo, hi = self.window
        unit = getattr(self.si, "intensity_unit", "counts")
        what = "counts" if unit == "counts" else f"intensity ({unit})"
        return f"{what} summed {lo:.3g}–{hi:.3g} eV ({self._window_channels} ch)"

    def _draw_map(self) -> None:
        if self.window_data is None:
            return
        self.viewer.set_overlay(self.window_data, cmap="inferno", label=self.window_label(),
                                opacity=self.map_opacity.value)

    def _on_show_map(self, change: dict) -> None:
        if change["new"]:
            if self.window_data is None:
                self._guard(self.set_window, *self.window_slider.value)
            else:
                self._draw_map()
        elif self.viewer.overlay_label == self.window_label():
            self.viewer.clear_overlay()

    def _on_slider(self, change: dict) -> None:
        if self._syncing:
            return
        self._guard(self.set_window, *change["new"])

    def _on_brush(self, _change: dict) -> None:
        sel = self.brush.selected
        # while the brush is being dragged: wait for the release (one map, not one per move)
        if self._syncing or self.brush.brushing or sel is None or len(sel) != 2:
            return
        lo, hi = sorted(float(v) for v in sel)
        if hi > lo and (lo, hi) != self.window:
            self._guard(self.set_window, lo, hi)

    def _sync_window_widgets(self) -> None:
        lo, hi = self.window
        self._syncing = True
        try:
            e = self.si.energy
            self.window_slider.value = (max(float(e[0]), lo), min(float(e[-1]), hi))
            self.brush.selected = np.array([lo, hi])
        finally:
            self._syncing = False
        self.window_caption.value = f"<span style='font-size:90%'>{html.escape(self.window_label())}</span>"

    # --- browser gestures ------------------------------------------------------------
    def _on_pin_click(self, row: int, col: int) -> None:
        self._guard(self.pin, row, col)

    def _on_region_drag(self, r0: int, c0: int, r1: int, c1: int) -> None:
        self._guard(self.add_region, r0, c0, r1, c1)

    def _pin_probe(self) -> None:
        self.pin(*self.viewer.position)

    def _guard(self, fn, *args) -> Any:
        try:
            return fn(*args)
        except (ValueError, KeyError) as exc:  # a click has no traceback: say it here
            self._say(str(exc).strip("'\""), "warning")
            return None

    def _say(self, text: str, kind: str = "error") -> None:
        self.message.value = message_html(text, kind) if text else ""

    # --- widgets ---------------------------------------------------------------------
    def _build_controls(self, reduce: str) -> None:
        e = np.asarray(self.si.energy, dtype=np.float64)
        step = float(np.median(np.diff(e)))
        mid = e.size // 2
        half = max(1, e.size // 40)
        self._syncing = False
        self._window_channels = 0
        self.pin_button = ipw.Button(description="pin probe", layout=ipw.Layout(width="auto"),
                                     tooltip="Keep the spectrum at the probe (or Ctrl/Alt+click the HAADF)")
        self.pin_button.on_click(lambda _b: self._guard(self._pin_probe))
        self.box_toggle = ipw.ToggleButton(description="draw box", layout=ipw.Layout(width="auto"),
                                           tooltip="Drag a box on the HAADF to keep its region's spectrum")
        self.box_toggle.observe(self._on_box_toggle, "value")
        self.viewer.observe(self._on_drag_mode, "drag_mode")
        self.reduce_toggle = ipw.ToggleButtons(options=[("mean", "mean"), ("sum", "sum")], value=reduce,
                                               tooltips=["region: mean spectrum", "region: summed spectrum"],
                                               style={"button_width": "58px"})
        self.clear_button = ipw.Button(description="clear all", disabled=True,
                                       layout=ipw.Layout(width="auto"), tooltip="Remove every kept spectrum")
        self.clear_button.on_click(lambda _b: self.clear())
        self.count_label = ipw.HTML("")
        self.legend = ipw.VBox([])
        self.legend.add_class("pw-compare-legend")
        self.window_slider = ipw.FloatRangeSlider(
            value=(float(e[max(0, mid - half)]), float(e[min(e.size - 1, mid + half)])),
            min=float(e[0]), max=float(e[-1]), step=step, readout=False,  # the caption states it
            description="energy window", continuous_update=False, layout=ipw.Layout(width="300px"),
            style={"description_width": "initial"},
        )  # fmt: skip
        self.window_slider.observe(self._on_slider, "value")
        self.show_map = ipw.ToggleButton(description="map", value=False, layout=ipw.Layout(width="auto"),
                                         tooltip="Show the energy-window map over the HAADF")
        self.show_map.observe(self._on_show_map, "value")
        self.map_opacity = ipw.FloatSlider(value=1.0, min=0.0, max=1.0, step=0.05, description="opacity",
                                           readout_format=".2f", continuous_update=True,
                                           layout=ipw.Layout(width="200px"))
        self.map_opacity.observe(self._on_opacity, "value")
        self.window_caption = ipw.HTML("")
        # drag on the plot to choose the window (bqplot draws the brush itself)
        self.brush = bq.interacts.BrushIntervalSelector(scale=self.spectrum_view.x_scale, color=_WINDOW_COLOR)
        self.brush.observe(self._on_brush, ["selected", "brushing"])
        self.spectrum_view.figure.interaction = self.brush
        self.message = ipw.HTML("")
        hint = ipw.HTML("<span style='font-size:85%;color:var(--jp-ui-font-color2,#616161)'>Ctrl/Alt+click "
                        "the HAADF (or key p) pins a pixel; drag on the plot picks an energy window</span>")
        self.controls = ipw.VBox([
            ipw.HBox([self.pin_button, self.box_toggle, self.reduce_toggle, self.clear_button,
                      self.count_label], layout=ipw.Layout(align_items="center")),
            self.legend,
            ipw.HBox([self.window_slider, self.show_map, self.map_opacity],
                     layout=ipw.Layout(align_items="center")),
            self.window_caption, hint, self.message,
        ])  # fmt: skip
        self.controls.add_class("pw-spectrum-compare")
        self.children_by_name = {
            "pin": self.pin_button, "draw box": self.box_toggle, "reduce": self.reduce_toggle,
            "clear": self.clear_button, "legend": self.legend, "window": self.window_slider,
            "map": self.show_map, "opacity": self.map_opacity, "message": self.message,
        }

    def _on_box_toggle(self, change: dict) -> None:
        self.viewer.drag_mode = "region" if change["new"] else "probe"

    def _on_drag_mode(self, change: dict) -> None:
        self.box_toggle.value = change["new"] == "region"

    def _on_opacity(self, change: dict) -> None:
        if self.show_map.value and self.viewer.overlay_label == self.window_label():
            self.viewer.overlay_opacity = change["new"]

    def close(self) -> None:
        """Stop listening to the viewer and remove the markers and the map."""
        self.viewer.on_pin(self._on_pin_click, remove=True)
        self.viewer.on_region(self._on_region_drag, remove=True)
        self.viewer.unobserve(self._on_drag_mode, "drag_mode")
        self.viewer.remove_boxes("pins")
        self.viewer.remove_boxes("regions")
        if self.window is not None and self.viewer.overlay_label == self.window_label():
            self.viewer.clear_overlay()
