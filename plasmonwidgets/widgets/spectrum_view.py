"""SpectrumView: measured and predicted EEL spectra on one energy axis (bqplot).

One bqplot ``Lines`` mark per named series ("measured" plus one per model), an
optional filled band per series, and a y scale that never jumps while the probe
is dragged: either fixed by the caller or expanded only, with an explicit reset.
Every update touches each mark inside ``hold_sync`` so a change is one message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np
import traitlets as t

from ._message import message_html

__all__ = ["SpectrumView", "intensity_label"]

MEASURED = "measured"
MEASURED_COLOR = "#1f77b4"
PALETTE = ("#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_PAD = 0.05  # fraction of the data span added above and below in auto range
_MARGIN = {"top": 40, "bottom": 50, "left": 70, "right": 20}  # right: room for the last tick
_LEGEND_ROW_PX = 16  # bqplot draws one legend row per series, 16 px apart


def intensity_label(si: Any) -> str:
    """The intensity axis label for a SpectrumImage's spectra.

    "Intensity (counts)" only for un-normalised data, "Intensity (normalised)" after
    ``si.normalize()``.

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> intensity_label(pw.datasets.nanocube_array(size=24).normalize())
    'Intensity (normalised)'
    """
    normalised = getattr(si, "normalization", None) is not None
    return "Intensity (normalised)" if normalised else "Intensity (counts)"


def _curve(y: Any, n: int, what: str) -> np.ndarray:
    try:
        arr = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a numeric 1-D array: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D (E,), got shape {arr.shape}")
    if n == 0:
        raise ValueError(f"set the energy axis with set_energy(e) before {what}")
    if arr.size != n:
        raise ValueError(
            f"{what} has {arr.size} values but the energy axis has {n}; "
            "pass a spectrum sampled on the same energy axis"
        )
    return arr


def _wire(y: np.ndarray) -> np.ndarray:
    """float32 for the browser: half the bytes of float64, far finer than a pixel."""
    return y.astype(np.float32)


class SpectrumView(ipw.VBox):
    """Measured spectrum and any number of named predictions versus energy (eV).

    Parameters
    ----------
    energy : array (E,), optional
        Energy-loss axis in eV.
    y_range : (lo, hi), optional
        Fixed intensity range (turns ``fix_y`` on). Without it the range follows the
        curves shown: it grows and shrinks with each update (each probe position).
    title, y_label : str
        Figure title and intensity axis label (:func:`intensity_label` gives the right one
        for a SpectrumImage: counts only for un-normalised data).

    The legend sits top-right; the auto range keeps headroom above the curves for
    it, so it never hides data.

    Attributes
    ----------
    figure : bqplot.Figure
    lines : dict name -> bqplot.Lines ("measured" first, then predictions)
    bands : dict name -> bqplot.Lines with ``fill="between"``
    pinned : dict name -> bqplot.Lines
        Kept curves (pinned probes, region sums) set with :meth:`set_pinned`; they are not
        in the figure legend (their owner shows its own) but count for the auto range.
    fix_y : Bool trait (the "fix y" toggle)
        True holds the intensity range as it is (or as :meth:`set_y_range` set it);
        False lets it follow the data again.
    children_by_name : dict of the figure, the "fit y" button, the "fix y" toggle and the
        message HTML

    Examples
    --------
    >>> sv = SpectrumView(energy=np.linspace(0.2, 1.2, 100))
    >>> sv.set_measured(np.ones(100)); sv.fix_y = True   # hold this range
    >>> sv.set_measured(5 * np.ones(100)); sv.y_range[1] < 5
    True
    """

    fix_y = t.Bool(False, help="hold the intensity range; False: it follows the curves")

    def __init__(
        self,
        energy: Any = None,
        y_range: tuple[float, float] | None = None,
        title: str = "",
        y_label: str = "Intensity",
        width: str = "520px",
        height: str = "320px",
    ):
        self.x_scale = bq.LinearScale()
        self.y_scale = bq.LinearScale()
        scales = {"x": self.x_scale, "y": self.y_scale}
        self._scales = scales
        x_axis = bq.Axis(scale=self.x_scale, label="Energy loss (eV)", grid_lines="none",
                         label_offset="34px")
        self.y_axis = y_axis = bq.Axis(
            scale=self.y_scale, orientation="vertical", label=y_label, grid_lines="none",
            tick_format=".4~g", label_offset="55px",
        )
        measured = bq.Lines(
            x=np.zeros(0), y=np.zeros(0), scales=scales, colors=[MEASURED_COLOR],
            labels=[MEASURED], display_legend=True, stroke_width=2,
        )
        self.lines: dict[str, bq.Lines] = {MEASURED: measured}
        self.bands: dict[str, bq.Lines] = {}
        self.pinned: dict[str, bq.Lines] = {}
        self.figure = bq.Figure(
            marks=[measured], axes=[x_axis, y_axis], title=title, legend_location="top-right",
            fig_margin=dict(_MARGIN), layout=ipw.Layout(width=width, height=height),
        )
        self.fit_button = ipw.Button(
            description="fit y", tooltip="Fit the intensity range to the curves shown",
            layout=ipw.Layout(width="auto"),
        )
        self.fit_button.on_click(lambda _: self.reset_y_range())
        self.fix_button = ipw.ToggleButton(
            value=False, description="fix y", icon="lock", layout=ipw.Layout(width="auto"),
            tooltip="Hold the intensity range; off, it follows the curves at every probe",
        )
        self.message = ipw.HTML("")
        self.children_by_name = {
            "figure": self.figure, "fit_y": self.fit_button, "fix_y": self.fix_button,
            "message": self.message,
        }
        self._energy = np.zeros(0)
        self._fixed_range: tuple[float, float] | None = None
        self._range: tuple[float, float] | None = None  # current auto range
        self._extra_marks: list[bq.Mark] = []  # e.g. an energy-window shading
        super().__init__([self.figure, ipw.HBox([self.fit_button, self.fix_button]), self.message])
        t.link((self.fix_button, "value"), (self, "fix_y"))
        self.observe(self._on_fix_y, "fix_y")
        if energy is not None:
            self.set_energy(energy)
        if y_range is not None:
            self.set_y_range(*y_range)

    # --- data ---------------------------------------------------------------
    @property
    def energy(self) -> np.ndarray:
        """(E,) energy axis in eV."""
        return self._energy

    def set_energy(self, energy: Any) -> None:
        """Set the energy axis (E,) in eV; clears curves whose length no longer fits."""
        e = np.asarray(energy, dtype=np.float64)
        if e.ndim != 1 or e.size < 2:
            raise ValueError(f"energy must be a 1-D axis with >= 2 values, got shape {e.shape}")
        if not np.all(np.isfinite(e)):
            raise ValueError("energy axis contains NaN/Inf")
        self._energy = e
        with self.x_scale.hold_sync():
            self.x_scale.min, self.x_scale.max = float(e.min()), float(e.max())
        # curves sampled on another axis no longer mean anything: empty them
        for marks, empty in ((self.lines, np.zeros(0)), (self.bands, np.zeros((2, 0))),
                             (self.pinned, np.zeros(0))):
            for mark in marks.values():
                keep = np.shape(mark.y)[-1] == e.size
                with mark.hold_sync():
                    mark.x = e if keep else np.zeros(0)
                    if not keep:
                        mark.y = empty

    def set_measured(self, y: Any) -> None:
        """Show the measured spectrum (E,)."""
        self.update(measured=y)

    def set_prediction(self, name: str, y: Any, color: str | None = None) -> None:
        """Add or replace the prediction curve ``name`` (E,), e.g. "10 latent"."""
        self.update(predictions={name: y}, colors={name: color} if color else None)

    def remove_prediction(self, name: str) -> None:
        """Remove prediction ``name`` and its band (KeyError if absent)."""
        if name == MEASURED or name not in self.lines:
            raise KeyError(f"no prediction named {name!r}; have {self.prediction_names}")
        del self.lines[name]
        self.bands.pop(name, None)
        self._sync_marks()

    def set_pinned(self, name: str, y: Any, *, color: str, dashed: bool = False) -> None:
        """Add or replace the kept curve ``name`` (E,) in ``color``; the y range follows it."""
        y = _wire(_curve(y, self._energy.size, f"pinned curve {name!r}"))
        mark = self.pinned.get(name)
        if mark is None:
            self.pinned[str(name)] = bq.Lines(
                x=self._energy, y=y, scales=self._scales, colors=[color], labels=[str(name)],
                display_legend=False, stroke_width=1.5, line_style="dashed" if dashed else "solid",
            )
            self._sync_marks()
        else:
            with mark.hold_sync():
                mark.x = self._energy
                mark.y = y
                mark.colors = [color]
        self._update_range()

    def remove_pinned(self, name: str | None = None) -> None:
        """Remove kept curve ``name`` (KeyError if absent), or all of them when None."""
        if name is None:
            self.pinned.clear()
        elif name in self.pinned:
            del self.pinned[name]
        else:
            raise KeyError(f"no pinned curve named {name!r}; have {list(self.pinned)}")
        self._sync_marks()
        self._update_range()

    def add_controls(self, *widgets: ipw.Widget) -> None:
        """Show ``widgets`` under the figure's buttons (e.g. a comparison toolbar)."""
        self.children = (*self.children, *widgets)

    @property
    def prediction_names(self) -> list[str]:
        return [n for n in self.lines if n != MEASURED]

    def set_extra_marks(self, marks: list) -> None:
        """Draw ``marks`` (bqplot marks on :attr:`x_scale`/:attr:`y_scale`) on top of the curves;
        they do not count for the y range."""
        self._extra_marks = list(marks)
        self._sync_marks()

    def set_band(self, name: str, lo: Any, hi: Any) -> None:
        """Fill between ``lo`` and ``hi`` (E,) in the colour of series ``name``."""
        self.update(bands={name: (lo, hi)})

    def remove_band(self, name: str) -> None:
        if name not in self.bands:
            raise KeyError(f"no band named {name!r}; have {list(self.bands)}")
        del self.bands[name]
        self._sync_marks()

    def update(
        self,
        measured: Any = None,
        predictions: Mapping[str, Any] | None = None,
        bands: Mapping[str, tuple[Any, Any]] | None = None,
        colors: Mapping[str, str] | None = None,
    ) -> None:
        """Set several curves at once: one message per changed mark, one for the y scale.

        ``predictions`` maps names to (E,) curves; ``bands`` maps names to (lo, hi).
        All inputs are validated before anything is drawn.
        """
        n = self._energy.size
        new_curves: dict[str, np.ndarray] = {}
        if measured is not None:
            new_curves[MEASURED] = _curve(measured, n, "measured spectrum")
        for name, y in (predictions or {}).items():
            if name == MEASURED:
                raise ValueError(f"{MEASURED!r} is reserved for the measured spectrum")
            new_curves[str(name)] = _curve(y, n, f"prediction {name!r}")
        new_bands = {
            str(name): np.stack([_curve(lo, n, f"band {name!r} lower"),
                                 _curve(hi, n, f"band {name!r} upper")])
            for name, (lo, hi) in (bands or {}).items()
        }
        added = False
        for name, y in new_curves.items():
            mark = self.lines.get(name)
            if mark is None:
                color = (colors or {}).get(name) or self._next_color()
                mark = bq.Lines(
                    x=self._energy, y=_wire(y), scales=self._scales, colors=[color], labels=[name],
                    display_legend=True, stroke_width=2,
                )
                self.lines[name] = mark
                added = True
                continue
            with mark.hold_sync():
                mark.x = self._energy  # unchanged arrays are not re-sent
                mark.y = _wire(y)
                if colors and colors.get(name):
                    mark.colors = [colors[name]]
        for name, lohi in new_bands.items():
            band = self.bands.get(name)
            if band is None:
                series = self.lines.get(name)
                color = series.colors[0] if series is not None else self._next_color()
                self.bands[name] = bq.Lines(
                    x=self._energy, y=_wire(lohi), scales=self._scales, fill="between",
                    colors=[color, color], fill_colors=[color], fill_opacities=[0.2],
                    stroke_width=0, display_legend=False,
                )
                added = True
                continue
            with band.hold_sync():
                band.x = self._energy
                band.y = _wire(lohi)
        if added:
            self._sync_marks()
        self._update_range()

    def clear(self) -> None:
        """Remove all predictions and bands and empty the measured curve."""
        for name in self.prediction_names:
            del self.lines[name]
        self.bands.clear()
        self.pinned.clear()
        with self.lines[MEASURED].hold_sync():
            self.lines[MEASURED].y = np.zeros(0)
            self.lines[MEASURED].x = np.zeros(0)
        self._sync_marks()
        self._range = None

    # --- y range ------------------------------------------------------------
    def set_y_range(self, lo: float | None, hi: float | None = None) -> None:
        """Fix the intensity range to (lo, hi) (``fix_y`` on); ``set_y_range(None)`` lets it
        follow the data again (``fix_y`` off)."""
        if lo is None:
            self.fix_y = False
            self._fixed_range = None
            self.reset_y_range()
            return
        if hi is None:
            raise ValueError("set_y_range needs both ends: set_y_range(lo, hi), or None for auto")
        lo, hi = float(lo), float(hi)
        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise ValueError(f"y range must be finite with hi > lo, got ({lo}, {hi})")
        self._fixed_range = (lo, hi)
        self.fix_y = True
        self._apply_range(lo, hi)

    def _on_fix_y(self, change: dict) -> None:
        if change["new"]:
            if self._fixed_range is None:  # hold what is shown now
                self._fixed_range = self._range
        else:
            self._fixed_range = None
            self._update_range()

    @property
    def y_range(self) -> tuple[float, float] | None:
        """The (lo, hi) intensity range shown, or None before any data."""
        return self._fixed_range or self._range

    def reset_y_range(self) -> None:
        """Fit the range to the curves currently shown; with ``fix_y`` on, hold the new fit."""
        self._fixed_range = None
        self._range = None
        self._update_range()

    def _data_extent(self) -> tuple[float, float] | None:
        finite = [
            np.asarray(m.y, dtype=np.float64).ravel()
            for m in (*self.lines.values(), *self.bands.values(), *self.pinned.values())
        ]
        values = np.concatenate(finite) if finite else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return None
        return float(values.min()), float(values.max())

    def _update_range(self) -> None:
        if self._fixed_range is not None:
            return
        extent = self._data_extent()
        if extent is None:
            return
        lo, hi = extent
        pad = _PAD * (hi - lo) if hi > lo else max(abs(hi), 1.0) * _PAD
        lo, hi = lo - pad, hi + pad
        room = self._legend_room()
        hi += (hi - lo) * room / (1.0 - room)
        if self.fix_y:  # fixed before any data: hold the first fit
            self._fixed_range = (lo, hi)
        if self._range == (lo, hi):
            return
        self._range = (lo, hi)
        self._apply_range(lo, hi)

    def _legend_room(self) -> float:
        """Fraction of the plot height the top-right legend covers (kept free of data)."""
        rows = sum(1 for m in self.lines.values() if m.display_legend)
        if rows == 0:
            return 0.0
        try:
            height = float(str(self.figure.layout.height).removesuffix("px"))
        except ValueError:  # not in px (e.g. "50%"): assume a typical plot
            height = 320.0
        plot = max(height - _MARGIN["top"] - _MARGIN["bottom"], 1.0)
        return min(0.5, (_LEGEND_ROW_PX * (rows + 1) + 4) / plot)

    def _apply_range(self, lo: float, hi: float) -> None:
        with self.y_scale.hold_sync():
            self.y_scale.min, self.y_scale.max = lo, hi

    # --- helpers ------------------------------------------------------------
    def _next_color(self) -> str:
        used = {m.colors[0] for m in self.lines.values()}
        for color in PALETTE:
            if color not in used:
                return color
        return PALETTE[len(self.lines) % len(PALETTE)]

    def _sync_marks(self) -> None:
        # bands first so the lines draw on top of them; kept curves under the live ones
        self.figure.marks = [*self.bands.values(), *self.pinned.values(), *self.lines.values(),
                             *self._extra_marks]

    def show_error(self, text: str) -> None:
        """Show ``text`` as a visible error under the plot ('' hides it)."""
        self.message.value = message_html(text)
