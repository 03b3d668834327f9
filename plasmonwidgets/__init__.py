"""plasmonwidgets: learn structure <-> plasmonic response from STEM-EELS with Jupyter widgets.

Public names are imported lazily so that ``import plasmonwidgets`` stays fast and
the data layer works without importing torch.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_PUBLIC = {
    "SpectrumImage": "spectrum_image",
    "Normalization": "spectrum_image",
    "load": "io",
    "make_tiles": "tiles",
    "TilePairs": "tiles",
    "TileDataset": "tile_dataset",
    "Im2Spec": "models",
    "Spec2Im": "models",
    "load_model": "models",
    "train": "training",
    "Trainer": "training",
    "History": "training",
    "ProgressEvent": "training",
    "TrainingError": "training",
    "CheckpointError": "checkpoint",
    "DataFileError": "io",
    "select_device": "device",
    "nmse_percent": "metrics",
    "Ensemble": "ensemble",
    "Microscope": "microscope",
    "RecordedMicroscope": "microscope",
    "SimulatedMicroscope": "microscope",
}
_SUBMODULES = {
    "datasets",
    "analysis",
    "widgets",
    "preprocess",
    "simulate",
    "io",
    "models",
    "training",
    "tiles",
    "pretrained",
    "metrics",
    "autonomous",
}

__all__ = sorted(_PUBLIC) + sorted(_SUBMODULES)


def __getattr__(name: str):
    if name in _PUBLIC:
        module = importlib.import_module(f".{_PUBLIC[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        module = importlib.import_module(f".{name}", __name__)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'plasmonwidgets' has no attribute {name!r}")


def __dir__():
    return __all__
