"""The dashboard's settings and names: tabs, model keys, tile window units, small mode."""

from __future__ import annotations

import os

from plasmonwidgets import pretrained

__all__ = ["AXIS_NAMES", "DEFER_ENV", "KEYS", "MODEL_TABS", "SMALL_ENV", "SPLIT_AXES", "TABS",
           "WINDOW_UNITS", "defer_models_setting", "model_label", "small_settings"]

SMALL_ENV = "PLASMONWIDGETS_SMALL"
#: "0" keeps the Voila page loading its models before the first image (to compare timings)
DEFER_ENV = "PLASMONWIDGETS_DEFER_MODELS"
TABS = ("Data", "NMF", "Train", "Errors", "Latent", "Inverse design", "Autonomous")
#: tabs built only once the pre-trained models are in use (they show how each was made)
MODEL_TABS = ("Train", "Errors", "Latent", "Inverse design")
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


def defer_models_setting(default: bool) -> bool:
    """Whether to load the pre-trained models after the first image: ``default`` unless
    ``$PLASMONWIDGETS_DEFER_MODELS`` says "0"/"no" or "1"/"yes".

    Examples
    --------
    >>> import os
    >>> os.environ["PLASMONWIDGETS_DEFER_MODELS"] = "0"
    >>> defer_models_setting(True)
    False
    >>> del os.environ["PLASMONWIDGETS_DEFER_MODELS"]
    """
    value = os.environ.get(DEFER_ENV, "").strip().lower()
    if value in ("0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    return default


def model_label(key: tuple[str, int]) -> str:
    """How the page names a model, e.g. ``("im2spec", 2)`` -> ``"im2spec 2 latent"``.

    Examples
    --------
    >>> model_label(("spec2im", 10))
    'spec2im 10 latent'
    """
    return f"{key[0]} {key[1]} latent"
