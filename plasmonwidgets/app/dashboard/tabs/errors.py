"""Errors tab: per-pixel error maps on the test half, 2 vs 10 latent (Figs. 3, 5, S1b)."""

from __future__ import annotations

import html

import ipywidgets as ipw

from plasmonwidgets import pretrained

from ..metrics import NMSE_HELP
from ..ui import intro

__all__ = ["ErrorsTab"]


class ErrorsTab:
    """The Errors tab (a part of :class:`Dashboard`).

    Examples
    --------
    Used through the dashboard, which mixes it in; pick a direction to show its error maps:

    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard()                           # doctest: +SKIP
    >>> dash.error_direction.value = "spec2im"       # doctest: +SKIP
    """

    def _build_errors(self) -> list[ipw.Widget]:
        self.error_direction = ipw.ToggleButtons(options=list(pretrained.DIRECTIONS),
                                                 description="model")
        self.error_holder = ipw.VBox()
        self.error_models = ipw.HTML()
        self.error_models.add_class("pw-error-models")
        self.error_direction.observe(
            self.guard(lambda _c: self._show_error_panel(), "computing error maps"), "value"
        )
        self._show_error_panel()
        return [
            intro(
                "Per-pixel prediction error (normalised MSE, %) on the <b>test half</b> of the "
                "scan for 2 and 10 latent dimensions, and its correlation with the HAADF "
                "(the paper's Figs. 3, 5 and S1b). Click a map to move the probe."
            ),
            self.error_direction,
            self.error_models,
            self.error_holder,
        ]

    def _show_error_panel(self) -> None:
        from plasmonwidgets.widgets.error_map_panel import ErrorMapPanel

        direction = self.error_direction.value
        models = {f"{k} latent": m for (d, k), m in sorted(self.models.items()) if d == direction}
        self.error_models.value = self._models_caption(direction)
        if not models:
            self.error_holder.children = (self._missing_models_note(direction),)
            return
        panel = self.error_panels.get(direction)
        if panel is None:
            panel = ErrorMapPanel(models, self.test_set, viewer=self.viewer, si=self.si,
                                  map_size=260, train_pairs=self.train_set)
            self.error_panels[direction] = panel
        self.error_holder.children = (panel,)

    def _models_caption(self, direction: str) -> str:
        """The metric table of ``direction``'s models in use (how each was trained, its
        test NMSE mean, median, p95, max and mean by region) and the strongest baseline."""
        table = self.metric_table_html(direction)
        if not table:
            return ""
        return (f"<div style='line-height:1.4;margin:2px 0'>Models in use, on the test half "
                f"(hover a cell for details):{table}<span style='font-size:85%;"
                f"color:var(--jp-ui-font-color2,#616161)'>{html.escape(NMSE_HELP)}. The maps "
                "below show it pixel by pixel; the Data tab quotes the same numbers.</span></div>")
