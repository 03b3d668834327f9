"""The dashboard's settings and names: tabs, model keys, tile window units, small mode."""

from __future__ import annotations

import os

from plasmonwidgets import pretrained

__all__ = ["AXIS_NAMES", "KEYS", "SMALL_ENV", "SPLIT_AXES", "TABS", "WINDOW_UNITS", "model_label",
           "small_settings"]

SMALL_ENV = "PLASMONWIDGETS_SMALL"
TABS = ("Data", "NMF", "Train", "Errors", "Latent", "Inverse design")
#: the four models the page shows: (direction, latent dimensions)
KEYS = tuple((d, k) for d in pretrained.DIRECTIONS for k in pretrained.LATENT_DIMS)
#: tile window units: HAADF pixels, or SI pixels (x scale HAADF pixels each)
WINDOW_UNITS = ("haadf", "si")
#: train/test split of the scan into halves: None = across the longer axis,
#: 1 = left | right (columns cut), 0 = top / bottom (rows cut)
SPLIT_AXES = (None, 1, 0)
# how the page names TilePairs.split's axes ("rows" cut: top / bottom halves)
AXIS_NAMES = {"columns": "left | right", "rows": "top / bottom"}


def small_settings() -> bool:
    """True when ``$PLASMONWIDGETS_SMALL`` asks for small sizes/epochs (CI, quick looks).

    Examples
    --------
    >>> import os
    >>> os.environ["PLASMONWIDGETS_SMALL"] = "1"
    >>> small_settings()
    True
    """
    return os.environ.get(SMALL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def model_label(key: tuple[str, int]) -> str:
    """How the page names a model, e.g. ``("im2spec", 2)`` -> ``"im2spec 2 latent"``."""
    return f"{key[0]} {key[1]} latent"
