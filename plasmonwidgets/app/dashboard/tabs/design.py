"""Inverse design tab: which observed structures give a target spectrum.

The target is built as the page says (the scan's mean spectrum plus a Gaussian peak, a
Gaussian alone, the spectrum at the probe, or an NMF endmember). The structures returned
are the observed tiles nearest the design in latent space that lie at least a tile apart;
each one's measured spectrum is drawn against the target with its NMSE, and a visible
warning says when they miss the target by much more than the model's design does.
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as ipw
import numpy as np

from plasmonwidgets.widgets._message import message_html
from plasmonwidgets.widgets.spectrum_view import intensity_label

from ..settings import KEYS, model_label
from ..ui import intro

__all__ = ["GAP_FACTOR", "DesignTab", "endmember_target", "peak_target"]

#: measured NMSE above this many times the design's NMSE is flagged as not borne out
GAP_FACTOR = 3.0
#: ... and only when it is also this many percentage points above it (noise floor)
GAP_MIN_POINTS = 1.0
#: target sources: (shown, value)
SOURCES = (("mean spectrum + Gaussian peak", "Gaussian peak"),
           ("Gaussian peak alone", "pure Gaussian"),
           ("spectrum at the probe", "spectrum at the probe"),
           ("NMF endmember", "NMF endmember"))
# one colour per returned structure: curve, table swatch and outline on the HAADF
# (not the grey of the target nor the blue of the design)
_STRUCTURE_COLORS = ("#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#e377c2", "#8c564b",
                     "#bcbd22", "#17becf")
TARGET_COLOR, DESIGN_COLOR = "#7f7f7f", "#1f77b4"


def structure_color(i: int) -> str:
    """Colour of returned structure ``i`` (0-based) in the curves, table and HAADF outlines."""
    return _STRUCTURE_COLORS[i % len(_STRUCTURE_COLORS)]


def _mean_spectrum(si: Any) -> np.ndarray:
    """The SI's mean spectrum (E,), float64."""
    return np.asarray(si.spectra, dtype=np.float64).reshape(-1, si.n_energy).mean(0)


def peak_target(si: Any, *, center: float, width: float, on_mean: bool = True) -> np.ndarray:
    """A target spectrum (E,) with a Gaussian peak at ``center`` eV (standard deviation
    ``width`` eV).

    ``on_mean=True``: the SI's mean spectrum plus the peak, as tall as the mean spectrum's
    range (max − min). ``on_mean=False``: the peak alone, as tall as the mean spectrum's
    maximum, zero elsewhere (no background, which every measured spectrum has).

    Examples
    --------
    >>> target = peak_target(si, center=2.5, width=0.1)   # doctest: +SKIP
    """
    e = np.asarray(si.energy, dtype=np.float64)
    mean = _mean_spectrum(si)
    peak = np.exp(-0.5 * ((e - center) / width) ** 2)
    if not on_mean:
        return mean.max() * peak
    return mean + (mean.max() - mean.min()) * peak


def endmember_target(si: Any, endmember: Any) -> np.ndarray:
    """An NMF endmember (E,) as a target spectrum: endmembers are normalised to a peak of 1,
    so it is brought to the data's intensity scale (the peak of the mean spectrum).

    Examples
    --------
    >>> target = endmember_target(si, nmf(si).spectra[0])   # doctest: +SKIP
    """
    spec = np.asarray(endmember, dtype=np.float64)
    return spec * (_mean_spectrum(si).max() / max(spec.max(), 1e-30))


class DesignTab:
    """The Inverse design tab (a part of :class:`Dashboard`).

    Examples
    --------
    Used through the dashboard, which mixes it in:

    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard()                           # doctest: +SKIP
    >>> dash.target_spectrum().shape                 # (E,) counts  # doctest: +SKIP
    (100,)
    >>> result = dash.run_inverse_design()           # doctest: +SKIP
    """

    def _build_inverse(self) -> list[ipw.Widget]:
        from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
        from plasmonwidgets.widgets.spectrum_view import SpectrumView
        from plasmonwidgets.widgets.tile_view import TileView

        e = np.asarray(self.si.energy, dtype=np.float64)
        self.design_source = ipw.Dropdown(options=list(SOURCES), value="Gaussian peak",
                                          description="target", layout={"width": "330px"})
        mid = float(e[len(e) // 2])
        span = float(e[-1] - e[0])
        self.design_energy = ipw.FloatSlider(
            value=mid, min=float(e[0]), max=float(e[-1]), step=span / 200, description="peak (eV)",
            readout_format=".3f", continuous_update=True,
        )
        self.design_width = ipw.FloatSlider(
            value=span / 20, min=span / 200, max=span / 4, step=span / 400,
            description="width (eV)", readout_format=".3f",
        )
        self.design_component = ipw.BoundedIntText(value=1, min=1, max=10, description="component",
                                                   layout={"width": "160px"})
        self.design_model = ipw.Dropdown(
            options=[(model_label(k), k) for k in KEYS], value=("im2spec", 10), description="model",
            layout={"width": "260px"},
        )
        self.design_k = ipw.BoundedIntText(value=5, min=1, max=20, description="k",
                                           layout={"width": "120px"})
        # one tile apart by default: the nearest encodings are otherwise neighbouring pixels
        tile_si = math.ceil(self.pairs.window / int(self.si.scale))
        self.design_separation = ipw.BoundedIntText(
            value=tile_si, min=0, max=max(self.si.scan_shape), description="apart (SI px)",
            layout={"width": "190px"}, style={"description_width": "90px"},
            tooltip=f"smallest distance between two structures returned; {tile_si} = one tile",
        )
        self.design_target_note = ipw.HTML(layout={"min_height": "22px"})
        self.design_target_note.add_class("pw-design-target-note")
        self.design_flag = ipw.HTML()
        self.design_flag.add_class("pw-design-flag")
        self.design_table = ipw.HTML()
        self.design_table.add_class("pw-design-table")
        self.design_button = ipw.Button(description="Find structures", icon="search",
                                        button_style="primary")
        self.design_result = ipw.HTML()
        self.design_spectra = SpectrumView(energy=e, title="target, design and measured spectra",
                                           width="560px",
                                           height="300px", y_label=intensity_label(self.si))
        self.design_tiles = TileView(tile_size=100, si=self.si)
        self.design_viewer = HAADFViewer(self.si, size=300, window=self.pairs.window,
                                         show_probe=False, title="structures found")
        for control in (self.design_source, self.design_energy, self.design_width,
                        self.design_component):
            control.observe(self.guard(lambda _c: self._show_target(), "making the target"),
                            "value")
        self.design_button.on_click(self.guard(lambda _b: self.run_inverse_design(),
                                               "running inverse design"))
        self._show_target()
        return [
            intro(
                "Choose a target spectrum; the model finds the latent point whose decoded "
                "spectrum matches it best (im2spec) or encodes it (spec2im), and returns the "
                "observed structures encoded nearest to that point, at least a tile apart. "
                "Their <b>measured</b> spectra show whether the data bear the design out."
            ),
            ipw.HBox([self.design_source, self.design_model, self.design_k,
                      self.design_separation]),
            ipw.HBox([self.design_energy, self.design_width, self.design_component]),
            self.design_target_note,
            self.design_button,
            self.design_result,
            self.design_flag,
            ipw.HBox([self.design_spectra, ipw.VBox([self.design_viewer, self.design_table])]),
            self.design_tiles,
        ]

    def target_spectrum(self) -> np.ndarray:
        """The inverse-design target (E,) chosen in the Inverse design tab."""
        source = self.design_source.value
        si = self.si
        if source == "spectrum at the probe":
            r, c = self.viewer.position if self.viewer is not None else np.array(si.scan_shape) // 2
            return np.asarray(si.spectra[r, c], dtype=np.float64)
        if source == "NMF endmember":
            result = getattr(self.nmf_panel, "result", None)
            if result is None:
                raise ValueError("run NMF in the NMF tab first to use an endmember as target")
            k = int(self.design_component.value) - 1
            if not 0 <= k < len(result.spectra):
                raise ValueError(f"component must be 1..{len(result.spectra)}")
            return endmember_target(si, result.spectra[k])
        return peak_target(si, center=self.design_energy.value, width=self.design_width.value,
                           on_mean=source == "Gaussian peak")

    def target_description(self) -> str:
        """How the current target is built, in words (shown under the controls)."""
        source = self.design_source.value
        si = self.si
        mean = _mean_spectrum(si)
        unit = "counts" if "counts" in intensity_label(si) else "(normalised)"
        c, w = self.design_energy.value, self.design_width.value
        n = int(np.prod(si.scan_shape))
        if source == "Gaussian peak":
            return (f"Target = the scan's mean spectrum (over all {n} probe positions) + a Gaussian "
                    f"peak at {c:.3f} eV, σ = {w:.3f} eV, {mean.max() - mean.min():.4g} {unit} tall "
                    "(the mean spectrum's range).")
        if source == "pure Gaussian":
            return (f"Target = a Gaussian peak alone at {c:.3f} eV, σ = {w:.3f} eV, "
                    f"{mean.max():.4g} {unit} tall (the mean spectrum's maximum), zero elsewhere: "
                    "no background, which every measured spectrum has, so expect large NMSE.")
        if source == "spectrum at the probe":
            r, col = self.viewer.position if self.viewer is not None else np.array(si.scan_shape) // 2
            return f"Target = the measured spectrum at the Data tab's probe, SI ({r}, {col})."
        return (f"Target = NMF endmember {int(self.design_component.value)} (NMF tab), scaled to "
                f"the mean spectrum's peak ({mean.max():.4g} {unit}).")

    def _show_target(self) -> None:
        source = self.design_source.value
        peak = source in ("Gaussian peak", "pure Gaussian")
        self.design_energy.layout.display = "" if peak else "none"
        self.design_width.layout.display = "" if peak else "none"
        self.design_component.layout.display = "" if source == "NMF endmember" else "none"
        try:
            target = self.target_spectrum()
        except ValueError as exc:
            self.design_result.value = message_html(str(exc))
            return
        self.design_target_note.value = (
            f"<div style='font-size:90%;line-height:1.4'>{html.escape(self.target_description())}"
            "</div>")
        self.design_result.value = ""
        self.design_flag.value = ""
        self.design_table.value = ""
        self._draw_design({"target": target})

    def _draw_design(self, curves: dict[str, np.ndarray],
                     colors: dict[str, str] | None = None) -> None:
        view = self.design_spectra
        view.clear()
        # grey target and blue design: legible on light and dark themes
        view.update(predictions=curves, colors={"target": TARGET_COLOR, **(colors or {})})
        view.reset_y_range()

    def run_inverse_design(self) -> Any:
        """Run ``analysis.inverse_design`` for the current target and show the result."""
        from plasmonwidgets.analysis import LatentIndex, inverse_design

        key = self.design_model.value
        model = self.models.get(key)
        if model is None:
            raise ValueError(f"no {model_label(key)} model for this data; train one in the Train tab")
        target = self.target_spectrum()
        index = self._index_cache.get(key)
        if index is None:
            index = self._index_cache[key] = LatentIndex(model, self.pairs)
        k = int(self.design_k.value)
        result = inverse_design(model, target, self.pairs, k=k, index=index,
                                n_starts=4 if self.small else 8,
                                min_separation=int(self.design_separation.value))
        self.last_design = result
        self._show_design(key, target, result)
        return result

    def design_gap(self, result: Any) -> np.ndarray:
        """(k,) bool: which returned structures' measured spectra miss the target by more
        than ``GAP_FACTOR`` × the design's NMSE (and ``GAP_MIN_POINTS`` % more); only for a
        model whose decoder makes spectra (im2spec): there the design NMSE is the decoder's
        promise, elsewhere it is the measured spectra's own."""
        measured = np.asarray(result.spectra_nmse, dtype=np.float64)
        if result.target_kind != "spectrum":
            return np.zeros(len(measured), dtype=bool)
        return (measured > GAP_FACTOR * result.nmse) & (measured > result.nmse + GAP_MIN_POINTS)

    def _show_design(self, key: tuple[str, int], target: np.ndarray, result: Any) -> None:
        n = len(result.indices)
        names = [f"#{i + 1} measured" for i in range(n)]
        colors = {name: structure_color(i) for i, name in enumerate(names)}
        curves = {"target": target}
        if result.target_kind == "spectrum":  # the decoded design is a spectrum: draw it
            curves["design (decoded)"] = np.asarray(result.decoded, dtype=np.float64)
            colors["design (decoded)"] = DESIGN_COLOR
        curves.update({name: np.asarray(s, dtype=np.float64)
                       for name, s in zip(names, result.spectra)})
        self._draw_design(curves, colors)

        tiles = {f"#{i + 1} ({r},{c}) {err:.1f}%": img for i, ((r, c), err, img)
                 in enumerate(zip(result.positions, result.spectra_nmse, result.images))}
        if result.target_kind == "image":  # the decoded design is a tile: shown beside them
            self.design_tiles.set_tiles(measured=None,
                                        predictions={"decoded": result.decoded, **tiles})
        else:
            self.design_tiles.set_tiles(predictions=tiles)
        self._outline_structures(result)

        gap = self.design_gap(result)
        self.design_table.value = self._design_table_html(result, gap)
        measured = np.asarray(result.spectra_nmse, dtype=np.float64)
        spread = (f"{measured.min():.1f} %" if n == 1 else
                  f"{measured.min():.1f}–{measured.max():.1f} %")
        where = "inside" if result.in_range else "<b>outside</b>"
        fewer = (f" Only {n} observed structures lie {result.min_separation} SI px apart near "
                 "the design." if n < int(self.design_k.value) else "")
        if result.target_kind == "spectrum":
            text = (f"{model_label(key)}: design NMSE {result.nmse:.2f} % (the decoded spectrum "
                    f"against the target); latent point {where} the observed range. The {n} nearest "
                    f"observed structures, at least {result.min_separation} SI px apart, are outlined "
                    f"on the HAADF; their measured spectra miss the target by {spread} NMSE.{fewer}")
        else:
            text = (f"{model_label(key)}: the target's encoding lies {where} the observed range; the "
                    f"{n} observed structures encoded nearest it, at least {result.min_separation} "
                    f"SI px apart, are outlined on the HAADF. Their measured spectra miss the target "
                    f"by {spread} NMSE (their mean spectrum by {result.nmse:.2f} %).{fewer}")
        self.design_result.value = message_html(text, "info").replace(
            "&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")
        if gap.any() and np.median(measured) > GAP_FACTOR * result.nmse:
            self.design_flag.value = message_html(
                f"The model's design is not borne out by the measured spectra here: the structures "
                f"it points to miss the target by {spread} NMSE, against {result.nmse:.2f} % for the "
                f"design ({np.median(measured) / max(result.nmse, 1e-12):.1f}× as much). The decoder "
                "promises a spectrum that these observed tiles do not show.", "warning")
        elif not result.in_range:
            self.design_flag.value = message_html(
                "The target lies outside what the data cover: the structures shown are only the "
                "least bad matches.", "warning")
        else:
            self.design_flag.value = ""

    def _outline_structures(self, result: Any) -> None:
        """Outline each structure's tile on the HAADF in its colour, numbered."""
        viewer = self.design_viewer
        positions = [[int(r), int(c)] for r, c in result.positions]
        if hasattr(viewer, "set_boxes"):
            viewer.highlight = []
            viewer.set_boxes("structures", [
                viewer.tile_box(r, c, color=structure_color(i), label=str(i + 1),
                                window=self.pairs.window)
                for i, (r, c) in enumerate(positions)])
        else:  # a viewer without outlines: circles at the probe positions
            viewer.highlight = positions

    def _design_table_html(self, result: Any, gap: np.ndarray) -> str:
        """One row per structure: colour, SI position, latent distance, measured NMSE."""
        design = "design NMSE" if result.target_kind == "spectrum" else "mean of these"
        rows = []
        for i, ((r, c), dist, err) in enumerate(zip(result.positions, result.distances,
                                                    result.spectra_nmse)):
            flag = (" <span style='color:var(--jp-warn-color1,#b26a00)' title='more than "
                    f"{GAP_FACTOR:g}× the design NMSE'>⚠ {err / max(result.nmse, 1e-12):.1f}× "
                    "the design</span>") if gap[i] else ""
            rows.append(
                f"<tr><td><span style='color:{structure_color(i)}'>■</span> #{i + 1}</td>"
                f"<td>({int(r)}, {int(c)})</td><td style='text-align:right'>{float(dist):.3g}</td>"
                f"<td style='text-align:right'>{float(err):.2f} %</td><td>{flag}</td></tr>")
        head = ("<tr><th style='text-align:left'>structure</th><th style='text-align:left'>SI (row, "
                "col)</th><th title='distance of its encoding to the design point'>latent distance"
                "</th><th title='NMSE of its measured spectrum against the target'>measured NMSE"
                "</th><th></th></tr>")
        return (f"<table class='pw-design-structures' style='font-size:90%;line-height:1.4;"
                f"border-spacing:10px 0'>{head}{''.join(rows)}</table>"
                f"<div style='font-size:85%;color:var(--jp-ui-font-color2,#616161)'>{design}: "
                f"{result.nmse:.2f} %. NMSE = 100·Σ(spectrum − target)²/Σ target².</div>")
