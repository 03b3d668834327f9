"""Notebook widgets built on the headless core (anywidget + bqplot + ipywidgets).

Names are imported lazily so importing one widget does not pull in the others.
``Dashboard`` lives in the app layer (:mod:`plasmonwidgets.app.dashboard`) and is
re-exported here on first access; no widget module imports the app.
"""

from __future__ import annotations

import importlib

_PUBLIC = {
    "HAADFViewer": "haadf_viewer",
    "SpectrumView": "spectrum_view",
    "TileView": "tile_view",
    "NMFPanel": "nmf_panel",
    "ErrorMapPanel": "error_map_panel",
    "LatentExplorer": "latent_explorer",
    "TrainingProgress": "training_progress",
    "AutonomousPanel": "autonomous_panel",
    "link": "linking",
    "link_probe": "linking",
    "link_training": "training_progress",
}

__all__ = sorted([*_PUBLIC, "Dashboard"])


def __getattr__(name: str):
    if name == "Dashboard":  # the app layer sits above the widgets: import it only on request
        from ..app.dashboard import Dashboard

        globals()[name] = Dashboard
        return Dashboard
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'plasmonwidgets.widgets' has no attribute {name!r}")


def __dir__():
    return __all__
