"""Latent tab: the latent explorer, with the nearest observed tiles on the HAADF."""

from __future__ import annotations

import ipywidgets as ipw

from plasmonwidgets.widgets.spectrum_view import intensity_label

from ..settings import KEYS, model_label
from ..ui import intro

__all__ = ["LatentTab"]


class LatentTab:
    """The Latent tab (a part of :class:`Dashboard`).

    Examples
    --------
    Used through the dashboard, which mixes it in:

    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard()                           # doctest: +SKIP
    >>> display(dash)                                # then open the Latent tab  # doctest: +SKIP
    """

    def _build_latent(self) -> list[ipw.Widget]:
        from plasmonwidgets.widgets.haadf_viewer import HAADFViewer

        self.latent_key = ipw.Dropdown(
            options=[(model_label(k), k) for k in KEYS], value=("im2spec", 2), description="model",
            layout={"width": "260px"},
        )
        self.latent_holder = ipw.VBox()
        self.latent_viewer = HAADFViewer(self.si, size=300, title="nearest observed tiles (numbered)",
                                         window=self.pairs.window, show_probe=False)
        self.latent_key.observe(
            self.guard(lambda _c: self._show_explorer(), "opening the latent explorer"), "value"
        )
        self._show_explorer()
        return [
            intro(
                "Drag the point on the latent pad or the sliders: the decoder's output updates "
                "live. <b>measured</b> is the measured spectrum (im2spec) or tile (spec2im) of the "
                "observed tile encoded nearest the point; the k nearest tiles (back-projection) "
                "are outlined at their size, numbered, on the HAADF and shown below with their "
                "latent distance and position. A warning appears when the point leaves the cloud "
                "of encoded tiles, where the decoder extrapolates."
            ),
            self.latent_key,
            ipw.HBox([self.latent_holder, self.latent_viewer]),
        ]

    def _show_explorer(self) -> None:
        from plasmonwidgets.widgets.latent_explorer import LatentExplorer

        key = self.latent_key.value
        model = self.models.get(key)
        if model is None:
            self.latent_holder.children = (self._missing_models_note(key[0]),)
            return
        explorer = self.explorers.get(key)
        if explorer is None:
            explorer = LatentExplorer(model, self.pairs, viewer=self.latent_viewer,
                                      mode=self.decode_mode)
            if model.target_kind == "spectrum":  # the decoded view is a spectrum
                explorer.spectrum_view.figure.add_class("pw-latent-spectrum")
                explorer.spectrum_view.y_axis.label = intensity_label(self.si)
            else:
                explorer.tile_view.add_class("pw-latent-tiles")
            explorer.add_class("pw-latent-explorer")
            self.explorers[key] = explorer
        self.latent_holder.children = (explorer,)
