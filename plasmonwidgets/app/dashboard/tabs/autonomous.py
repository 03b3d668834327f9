"""Autonomous tab: an autonomous experiment replayed on the data shown.

The tab drives an :class:`~plasmonwidgets.widgets.autonomous_panel.AutonomousPanel` on a
:class:`~plasmonwidgets.RecordedMicroscope` over the dashboard's current spectrum image
(the built-in scan or a user's file): the HAADF is known, spectra are "measured" only where
the loop asks for them, and since the whole scan is recorded the error of the predicted SI
is drawn against the number of spectra measured. The loop trains its own small ensemble
(no pre-trained model is needed) and starts only when Start or Step is pressed.
"""

from __future__ import annotations

import ipywidgets as ipw

from ..ui import intro

__all__ = ["AutonomousTab", "default_budget"]


def default_budget(scan_shape: tuple[int, int]) -> tuple[int, int]:
    """(budget, batch) the tab starts with: batches of about 1/50 of the scan (at most 20),
    ten of them, never more than the scan's pixels.

    Examples
    --------
    >>> default_budget((96, 96)), default_budget((24, 24)), default_budget((4, 4))
    ((200, 20), (110, 11), (16, 2))
    """
    n = int(scan_shape[0]) * int(scan_shape[1])
    batch = max(2, min(20, n // 50))
    return min(n, 10 * batch), batch


class AutonomousTab:
    """The Autonomous tab (a part of :class:`Dashboard`).

    Examples
    --------
    Used through the dashboard, which mixes it in:

    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard()                                   # doctest: +SKIP
    >>> panel = dash.select_tab("Autonomous") and dash.autonomous_panel   # doctest: +SKIP
    >>> panel.step(); panel.wait(60)                         # doctest: +SKIP
    True
    """

    autonomous_panel = None

    def _build_autonomous(self) -> list[ipw.Widget]:
        from plasmonwidgets.microscope import RecordedMicroscope
        from plasmonwidgets.widgets.autonomous_panel import AutonomousPanel

        self._close_autonomous()
        budget, batch = default_budget(self.si.scan_shape)
        panel = AutonomousPanel(RecordedMicroscope(self.si), budget=budget, batch=batch,
                                window=self.tile_pixels(), map_size=300)
        self.autonomous_panel = panel
        self._hooks.append(panel.close)  # the dashboard's close() stops the loop
        box = self._boxes["Autonomous"]

        def on_children(change: dict) -> None:
            # new data empties the tab (set_si): stop this loop, it measures the old scan
            if panel in change["old"] and panel not in change["new"]:
                box.unobserve(handler, "children")
                self._close_autonomous(panel)

        handler = self.guard(on_children, "closing the autonomous experiment")
        box.observe(handler, "children")
        h, w = self.si.scan_shape
        return [
            intro(
                "An <b>autonomous experiment</b> replayed on this scan: the HAADF image is "
                "known, spectra are slow. Each step trains a small ensemble of im2spec models on "
                "the spectra measured so far, predicts the whole spectrum image with its "
                "uncertainty, and picks the next beam positions (by default where the ensemble "
                "expects the most error summed over alike local structures). The "
                f"{h}×{w} scan is recorded, so the spectra are read from "
                "it where the loop asks and the predicted SI is compared with the whole scan. "
                "Press <b>Step</b> for one step or <b>Start</b> to run to the budget; "
                "<b>Reset</b> starts a new run (another strategy) and keeps the old error curve "
                "for comparison."),
            panel,
        ]

    def _close_autonomous(self, panel=None) -> None:
        """Stop and close the tab's panel (``panel``, default the current one)."""
        panel = self.autonomous_panel if panel is None else panel
        if panel is None:
            return
        if panel.close in self._hooks:
            self._hooks.remove(panel.close)
        panel.close()
        if self.autonomous_panel is panel:
            self.autonomous_panel = None
