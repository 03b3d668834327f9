"""Shared checks and batching for the analysis functions.

A model's *inputs* are what its encoder takes and its *targets* what its decoder
produces; the model says which (``model.inputs_of(pairs)``, ``model.target_kind``, see
:mod:`plasmonwidgets.roles`). The helpers here ask the model, so they also serve
stand-ins that only carry a ``direction`` label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..roles import DIRECTIONS, Role, role_of

__all__ = ["DIRECTIONS", "batched", "check_compatible", "check_model", "check_pairs",
           "input_shape", "inputs_of", "role", "target_shape", "targets_of"]


def role(model: Any) -> Role:
    """The model's :class:`~plasmonwidgets.roles.Role` (from its ``role``, else its
    ``direction`` label).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> role(SimpleNamespace(direction="spec2im")).target_kind
    'image'
    """
    found = getattr(model, "role", None)
    return found if isinstance(found, Role) else role_of(getattr(model, "direction", None))


def check_model(model: Any, direction: str | None = None) -> str:
    """Return the model's direction label; raise if it is not a plasmonwidgets model
    (or not the required ``direction``).

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> check_model(pw.Spec2Im(n_energy=64, device="cpu"))
    'spec2im'
    >>> check_model(pw.Spec2Im(n_energy=64, device="cpu"), "im2spec")
    Traceback (most recent call last):
    ...
    ValueError: this analysis needs a im2spec model but got a spec2im model; pass a pw.Im2Spec model
    """
    found = getattr(model, "direction", None)
    if found not in DIRECTIONS or not all(
        callable(getattr(model, name, None)) for name in ("encode", "decode", "predict")
    ):
        raise TypeError(
            f"expected a plasmonwidgets Im2Spec or Spec2Im model, got {type(model).__name__}; "
            "build one with pw.Im2Spec(...) / pw.Spec2Im(...) or pw.load_model(path)"
        )
    if direction is not None and found != direction:
        from ..models import model_class  # the class name for the message only

        raise ValueError(
            f"this analysis needs a {direction} model but got a {found} model; "
            f"pass a pw.{model_class(direction).__name__} model"
        )
    return found


def check_pairs(pairs: Any) -> Any:
    """Raise unless ``pairs`` looks like a non-empty :class:`TilePairs`.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")          # 144 tiles (8, 8)

    >>> len(check_pairs(pairs))
    144
    """
    needed = ("images", "spectra", "positions", "scan_shape")
    missing = [name for name in needed if not hasattr(pairs, name)]
    if missing:
        raise TypeError(
            f"expected TilePairs (from pw.make_tiles), got {type(pairs).__name__} "
            f"without {', '.join(missing)}"
        )
    if len(pairs.positions) == 0:
        raise ValueError("pairs is empty; make tiles from a larger scan or a smaller window")
    return pairs


def check_compatible(model: Any, pairs: Any) -> None:
    """Raise when the tiles' window or energy channels do not fit the model.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")          # 144 tiles (8, 8)

    >>> check_compatible(pw.Im2Spec(window=8, n_energy=32, device="cpu"), pairs)   # fits
    >>> check_compatible(pw.Im2Spec(window=16, n_energy=32, device="cpu"), pairs)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: model expects 16x16 tiles but pairs have 8x8; rebuild the tiles with ...
    """
    # TilePairs.window avoids materialising a lazily cut tile stack
    window = int(getattr(pairs, "window", None) or pairs.images.shape[-1])
    n_energy = int(pairs.spectra.shape[-1])
    if int(model.window) != window:
        raise ValueError(
            f"model expects {model.window}x{model.window} tiles but pairs have "
            f"{window}x{window}; rebuild the tiles with pw.make_tiles(si, window={model.window})"
        )
    if int(model.n_energy) != n_energy:
        raise ValueError(
            f"model expects {model.n_energy} energy channels but pairs have {n_energy}; "
            "crop/bin the SpectrumImage the same way as for training"
        )


def inputs_of(model: Any, pairs: Any) -> np.ndarray:
    """Encoder inputs held by ``pairs``: (N, w, w) tiles or (N, E) spectra, as the model says.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> pairs = SimpleNamespace(images=np.zeros((5, 16, 16)), spectra=np.zeros((5, 64)))
    >>> inputs_of(SimpleNamespace(direction="im2spec"), pairs).shape
    (5, 16, 16)
    """
    return role(model).inputs_of(pairs)


def targets_of(model: Any, pairs: Any) -> np.ndarray:
    """Decoder targets held by ``pairs``: (N, E) spectra or (N, w, w) tiles.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> pairs = SimpleNamespace(images=np.zeros((5, 16, 16)), spectra=np.zeros((5, 64)))
    >>> targets_of(SimpleNamespace(direction="im2spec"), pairs).shape
    (5, 64)
    """
    return role(model).targets_of(pairs)


def target_shape(model: Any) -> tuple[int, ...]:
    """Shape of one decoded sample: (E,) for a spectrum, (w, w) for a tile.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> target_shape(SimpleNamespace(direction="spec2im", window=16, n_energy=64))
    (16, 16)
    """
    return role(model).target_shape(window=model.window, n_energy=model.n_energy)


def input_shape(model: Any) -> tuple[int, ...]:
    """Shape of one encoder input: (w, w) for a tile, (E,) for a spectrum.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> input_shape(SimpleNamespace(direction="spec2im", window=16, n_energy=64))
    (64,)
    """
    return role(model).input_shape(window=model.window, n_energy=model.n_energy)


def batched(
    fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    sample_shape: tuple[int, ...],
    batch_size: int = 1024,
) -> np.ndarray:
    """Apply a numpy-in/numpy-out model method to ``x`` (N, ...) in batches.

    Returns (N, *sample_shape) float32. Memory is bounded by one batch of
    network activations plus the output, which is allocated once.

    Examples
    --------
    >>> import numpy as np
    >>> batched(lambda x: x.sum(axis=1), np.ones((5, 3)), (), batch_size=2)   # 3 calls
    array([3., 3., 3., 3., 3.], dtype=float32)
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(x)
    out = np.empty((n, *sample_shape), dtype=np.float32)
    for start in range(0, n, batch_size):
        chunk = np.asarray(x[start : start + batch_size], dtype=np.float32)
        # reshape pins the (N, *sample_shape) layout whatever the method returns for N = 1
        out[start : start + len(chunk)] = np.asarray(fn(chunk)).reshape(len(chunk), *sample_shape)
    return out
