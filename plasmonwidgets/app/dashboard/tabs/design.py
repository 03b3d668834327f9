"""Inverse design tab: which observed structures give a target spectrum."""

from __future__ import annotations

from typing import Any

import ipywidgets as ipw
import numpy as np

from plasmonwidgets.widgets._message import message_html
from plasmonwidgets.widgets.spectrum_view import intensity_label

from ..settings import KEYS, model_label
from ..ui import intro

__all__ = ["DesignTab", "endmember_target", "peak_target"]


def _mean_spectrum(si: Any) -> np.ndarray:
    """The SI's mean spectrum (E,), float64."""
    return np.asarray(si.spectra, dtype=np.float64).reshape(-1, si.n_energy).mean(0)


def peak_target(si: Any, *, center: float, width: float) -> np.ndarray:
    """A target spectrum (E,): the SI's mean spectrum plus a Gaussian peak at ``center`` eV
    (standard deviation ``width`` eV) as tall as the mean spectrum's range.

    Examples
    --------
    >>> target = peak_target(si, center=2.5, width=0.1)   # doctest: +SKIP
    """
    e = np.asarray(si.energy, dtype=np.float64)
    mean = _mean_spectrum(si)
    peak = np.exp(-0.5 * ((e - center) / width) ** 2)
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
    """The Inverse design tab (a part of :class:`Dashboard`)."""

    def _build_inverse(self) -> list[ipw.Widget]:
        from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
        from plasmonwidgets.widgets.spectrum_view import SpectrumView
        from plasmonwidgets.widgets.tile_view import TileView

        e = np.asarray(self.si.energy, dtype=np.float64)
        self.design_source = ipw.Dropdown(
            options=["Gaussian peak", "spectrum at the probe", "NMF endmember"],
            description="target", layout={"width": "300px"},
        )
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
        self.design_button = ipw.Button(description="Find structures", icon="search",
                                        button_style="primary")
        self.design_result = ipw.HTML()
        self.design_spectra = SpectrumView(energy=e, title="target and design", width="520px",
                                           height="300px", y_label=intensity_label(self.si))
        self.design_tiles = TileView(tile_size=100)
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
                "spectrum matches it best (im2spec) or encodes it (spec2im), and shows the "
                "observed structures nearest to that point."
            ),
            ipw.HBox([self.design_source, self.design_model, self.design_k]),
            ipw.HBox([self.design_energy, self.design_width, self.design_component]),
            self.design_button,
            self.design_result,
            ipw.HBox([self.design_spectra, self.design_viewer]),
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
        return peak_target(si, center=self.design_energy.value, width=self.design_width.value)

    def _show_target(self) -> None:
        source = self.design_source.value
        peak = source == "Gaussian peak"
        self.design_energy.layout.display = "" if peak else "none"
        self.design_width.layout.display = "" if peak else "none"
        self.design_component.layout.display = "" if source == "NMF endmember" else "none"
        try:
            target = self.target_spectrum()
        except ValueError as exc:
            self.design_result.value = message_html(str(exc))
            return
        self.design_result.value = ""
        self._draw_design({"target": target})

    def _draw_design(self, curves: dict[str, np.ndarray]) -> None:
        view = self.design_spectra
        view.clear()
        view.update(predictions=curves, colors={"target": "#7f7f7f"})  # legible on light and dark
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
                                n_starts=4 if self.small else 8)
        self.last_design = result
        curves = {"target": target}
        if result.direction == "im2spec":
            curves["design"] = np.asarray(result.decoded, dtype=np.float64)
        curves[f"{k} nearest (mean)"] = np.asarray(result.spectra, dtype=np.float64).mean(0)
        self._draw_design(curves)
        tiles = {f"({r},{c}) {err:.0f}%": img for (r, c), err, img
                 in zip(result.positions, result.spectra_nmse, result.images)}
        if result.direction == "spec2im":
            self.design_tiles.set_tiles(measured=None,
                                        predictions={"decoded": result.decoded, **tiles})
        else:
            self.design_tiles.set_tiles(predictions=tiles)
        self.design_viewer.highlight = [[int(r), int(c)] for r, c in result.positions]
        where = "inside" if result.in_range else "<b>outside</b>"
        self.design_result.value = message_html(
            f"{model_label(key)}: design NMSE {result.nmse:.2f} % vs target; latent point {where} "
            f"the observed range; the {k} nearest observed structures are outlined "
            "(captions: SI position and their measured-spectrum NMSE).", "info"
        ).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")
        return result
