"""Data tab: HAADF viewer, spectrum and tile at the probe, summary, tiles, loading a file.

Built without models when they are deferred (``Dashboard(defer_models=True)``): the
measured spectrum and tile show at once, a note says the models are loading, and the
predictions, summary lines and metrics follow when they arrive (``_show_models_note``).
"""

from __future__ import annotations

import html
import threading
from functools import cache
from pathlib import Path
from typing import Any

import ipywidgets as ipw
import numpy as np

from plasmonwidgets import pretrained
from plasmonwidgets.widgets._message import message_html
from plasmonwidgets.widgets.spectrum_view import intensity_label

from ..metrics import NMSE_HELP
from ..settings import KEYS, TABS, model_label
from ..ui import note

__all__ = ["DataTab"]

#: split choices shown in the Data tab -> ``TilePairs.split(axis=...)``
_SPLIT_AXES = {"longer": None, "columns": 1, "rows": 0}
_SPLIT_NAMES = {axis: name for name, axis in _SPLIT_AXES.items()}


@cache
def _probe_link_class() -> type:
    """A :class:`~plasmonwidgets.widgets.linking.ProbeLink` whose models can be replaced
    from another thread (deferred models arrive in one) while clicks update the views."""
    from plasmonwidgets.widgets.linking import ProbeLink

    class DashboardProbeLink(ProbeLink):
        def __init__(self, *args: Any, **kwargs: Any):
            self._lock = threading.RLock()
            super().__init__(*args, **kwargs)

        def update(self) -> None:
            # one update at a time: a click's update never ends after, and overwrites,
            # the one showing newly arrived models
            with self._lock:
                super().update()

        def set_models(self, models: dict[str, Any], *, refresh: bool = True) -> None:
            """Predict with ``models`` (name -> model) from now on; refresh the views now
            unless ``refresh`` is False (then the next :meth:`update` does)."""
            with self._lock:
                self.models = models
                if refresh:
                    super().update()

    return DashboardProbeLink


class DataTab:
    """The Data tab (a part of :class:`Dashboard`): the HAADF viewer linked to the spectrum at
    the probe (measured and predicted), the tiles and the data summary.

    Examples
    --------
    >>> dash = Dashboard()                                        # doctest: +SKIP
    >>> dash.viewer.position = [10, 20]      # the spectrum and tiles follow  # doctest: +SKIP
    """

    def _build_data(self) -> list[ipw.Widget]:
        from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
        from plasmonwidgets.widgets.spectrum_view import SpectrumView
        from plasmonwidgets.widgets.tile_view import TileView

        si = self.si
        self.viewer = HAADFViewer(si, size=420, title="HAADF — click to probe, Ctrl+click to pin")
        self.viewer.add_class("pw-dashboard-viewer")
        self.spectrum_view = SpectrumView(energy=si.energy, title="spectrum at the probe",
                                          width="520px", height="300px", y_label=intensity_label(si))
        self.spectrum_view.figure.add_class("pw-probe-spectrum")
        self.tile_view = TileView(tile_size=120, si=si)
        h, w = si.scan_shape
        self.viewer.position = [h // 2, w // 2]
        self.probe_link = _probe_link_class()(self.viewer, self.spectrum_view, self.tile_view,
                                              models=self._probe_models(), si=si,
                                              window=self.pairs.window)
        self.summary = ipw.HTML(self._summary_html())
        self.models_note = ipw.HTML(layout={"margin": "0 0 0 8px"})
        self.models_note.add_class("pw-models-note")
        self._show_models_note()
        parts = [
            ipw.HBox([self.viewer, ipw.VBox([self.models_note, self.spectrum_view, self.tile_view])]),
            self.summary,
            self._build_tiling(),
        ]
        loader = ipw.Accordion(children=[self._build_loader()], selected_index=None)
        loader.set_title(0, "Load your own data (.dm3/.dm4/.emd/.hspy)")
        parts.append(loader)
        return parts

    def _build_tiling(self) -> ipw.Widget:
        self.tile_window = ipw.BoundedIntText(value=self.window, min=1, max=4096, description="window",
                                              layout={"width": "170px"})
        self.tile_unit = ipw.ToggleButtons(options=[("HAADF px", "haadf"), ("SI px", "si")],
                                           value=self.window_unit, style={"button_width": "96px"})
        # a Dropdown shows no selection for the value None, so the axes travel as names
        self.split_choice = ipw.Dropdown(
            options=[("halves across the longer axis", "longer"), ("left | right halves", "columns"),
                     ("top / bottom halves", "rows")],
            value=_SPLIT_NAMES[self.split_axis], description="split", layout={"width": "320px"},
        )
        self.tiles_button = ipw.Button(description="Apply", icon="th", layout={"width": "90px"})
        self.tiles_button.on_click(self.guard(lambda _b: self._apply_tiling(), "making tiles"))
        return ipw.VBox([
            ipw.HTML("<b>Tiles</b> (HAADF window around each SI pixel; train and test come from "
                     "different halves of the scan):"),
            ipw.HBox([self.tile_window, self.tile_unit, self.split_choice, self.tiles_button]),
        ])  # fmt: skip

    def _apply_tiling(self) -> None:
        self.set_tiling(window=int(self.tile_window.value), window_unit=self.tile_unit.value,
                        split_axis=_SPLIT_AXES[self.split_choice.value])

    def _show_models_note(self) -> None:
        """Say above the probe's spectrum that the models are loading; hide it when not."""
        if self.models_note is None:
            return
        loading = self.models_loading
        self.models_note.value = message_html(
            "Loading the pre-trained models… the predicted spectra and tiles appear here "
            "when they are ready.", "info") if loading else ""
        self.models_note.layout.display = None if loading else "none"

    def _show_probe_models(self) -> None:
        """Predict at the probe with the models in use; the views are redrawn now if the
        Data tab is shown, else when it is next shown (a bqplot figure changed inside a
        hidden tab has no size and fills the console with errors)."""
        if self.probe_link is None:
            return
        shown = TABS[self.tabs.selected_index or 0] == "Data"
        self._probe_stale = not shown
        self.probe_link.set_models(self._probe_models(), refresh=shown)

    def _probe_models(self) -> dict[str, Any]:
        return {model_label(k): m for k, m in sorted(self.models.items())}

    def _build_loader(self) -> ipw.Widget:
        from plasmonwidgets.widgets.file_chooser import DataFileChooser

        try:
            if self.chooser is None:
                self.chooser = DataFileChooser(self.data_dir)
                self.chooser.on_load(self.guard(self._on_chooser_load, "loading the file"))
                self._redactions.append((str(self.chooser.root), "<data folder>"))
        except FileNotFoundError as exc:
            return note(self._redact(str(exc)), "error")
        e = np.asarray(self.si.energy)
        self.zlp = ipw.Checkbox(value=False, description="remove ZLP tail (power law)", indent=False)
        self.crop_range = ipw.FloatRangeSlider(
            value=(float(e[0]), float(e[-1])), min=float(e[0]), max=float(e[-1]),
            step=float(np.median(np.diff(e))) if e.size > 1 else 0.01,
            description="crop (eV)", continuous_update=False, layout={"width": "420px"},
        )  # fmt: skip
        self.builtin_button = ipw.Button(description="Back to the built-in dataset", icon="undo")
        self.builtin_button.on_click(self.guard(lambda _b: self._load_builtin(), "loading data"))
        self.preprocess_button = ipw.Button(description="Apply to current data", icon="cut")
        self.preprocess_button.on_click(self.guard(lambda _b: self._preprocess(), "pre-processing"))
        return ipw.VBox([
            self.chooser,
            ipw.HTML("<b>Pre-processing</b> (applied when loading, or to the current data):"),
            self.zlp, self.crop_range, ipw.HBox([self.preprocess_button, self.builtin_button]),
        ])  # fmt: skip

    def _crop_arg(self, si: Any) -> tuple[float, float] | None:
        lo, hi = self.crop_range.value
        e = np.asarray(si.energy)
        if lo <= e[0] + 1e-9 and hi >= e[-1] - 1e-9:
            return None
        return float(lo), float(hi)

    def _on_chooser_load(self, si_path: Path, haadf_path: Path | None) -> None:
        self.chooser.status.value = message_html(f"loading {self.display_name(si_path)}…", "info")
        # the crop slider still spans the current data: a narrowed range is the user's choice
        self.load_file(si_path, haadf_path, remove_zlp=self.zlp.value,
                       crop=self._crop_arg(self.si))
        self.select_tab("Data")

    def _preprocess(self) -> None:
        si = self.si
        if self.zlp.value:
            si = si.remove_zlp()
        crop = self._crop_arg(si)
        if crop is not None:
            si = si.crop(*crop)
        if si is self.si:
            raise ValueError("nothing to apply: tick 'remove ZLP tail' or narrow the crop range")
        self.set_si(si, source=f"{self.source} (pre-processed)")

    def _load_builtin(self) -> None:
        from plasmonwidgets import datasets

        self.set_si(datasets.nanocube_array(**pretrained.DATASET))

    def _summary_html(self) -> str:
        si = self.si
        e = np.asarray(si.energy)
        rows = [
            ("source", html.escape(self.source)),
            ("scan (SI pixels)", f"{si.scan_shape[0]} × {si.scan_shape[1]}"),
            ("HAADF pixels", f"{si.haadf.shape[0]} × {si.haadf.shape[1]} (×{si.scale} per SI pixel)"),
            ("energy", f"{e.size} channels, {e[0]:.3g}–{e[-1]:.3g} eV"),
            ("pixel size", f"{si.pixel_size:.3g} {html.escape(si.pixel_unit)}"),
            ("tiles", f"{len(self.pairs)} of {self.pairs.window}×{self.pairs.window} HAADF px "
                      f"({self.pairs.window / si.scale:.3g} SI px) — {len(self.train_set)} train / "
                      f"{len(self.test_set)} test, split {html.escape(self.split_used)}"),
        ]
        names = si.metadata.get("region_names")
        if names:
            rows.append(("regions", html.escape(", ".join(map(str, names)))))
        for key in KEYS:
            if key in self.models:
                rows.append((model_label(key), f"{html.escape(self.model_in_use(key))} — "
                                               f"{self.metric_text(key)}"))
            elif self.models_loading:
                rows.append((model_label(key), "pre-trained model loading…"))
            else:
                rows.append((model_label(key), "— (train it in the Train tab)"))
        cells = "".join(f"<tr><td style='padding-right:12px'>{k}</td><td>{v}</td></tr>"
                        for k, v in rows)
        # line-height: the HTML widget's default (one widget row per line) spreads tables out
        return (f"<table class='pw-summary' style='font-size:90%;line-height:1.4'>{cells}</table>"
                f"<div style='font-size:85%;color:var(--jp-ui-font-color2,#616161)'>"
                f"{html.escape(NMSE_HELP)}; the same numbers as in the Errors tab.</div>")
