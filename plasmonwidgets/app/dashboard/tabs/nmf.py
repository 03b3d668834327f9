"""NMF tab: abundance maps and endmember spectra (the paper's Fig. 1)."""

from __future__ import annotations

import ipywidgets as ipw

from ..ui import intro

__all__ = ["NMFTab"]


class NMFTab:
    """The NMF tab (a part of :class:`Dashboard`).

    Examples
    --------
    Used through the dashboard, which mixes it in:

    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard()                           # doctest: +SKIP
    >>> display(dash)                                # then open the NMF tab  # doctest: +SKIP
    """

    def _build_nmf(self) -> list[ipw.Widget]:
        from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
        from plasmonwidgets.widgets.linking import link_probe
        from plasmonwidgets.widgets.nmf_panel import NMFPanel

        viewer = HAADFViewer(self.si, size=300, window=0, title="HAADF with abundance overlay")
        if self.viewer is not None:
            viewer.position = list(self.viewer.position)
            self._links.append(link_probe(self.viewer, viewer))
        self.nmf_viewer = viewer
        self.nmf_panel = NMFPanel(self.si, viewer=viewer, n_components=4, run=True)
        return [
            intro("Non-negative matrix factorisation of the spectrum image: abundance maps "
                     "and endmember spectra (the paper's Fig. 1)."),
            ipw.HBox([viewer, self.nmf_panel]),
        ]
