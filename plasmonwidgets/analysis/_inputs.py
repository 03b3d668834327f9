"""Shared checks and batching for the analysis functions.

A model's *inputs* are what its encoder takes (HAADF tiles for im2spec, spectra
for spec2im) and its *targets* are what its decoder produces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

DIRECTIONS = ("im2spec", "spec2im")


def check_model(model: Any, direction: str | None = None) -> str:
    """Return the model's direction; raise if it is not a plasmonwidgets model
    (or not the required ``direction``)."""
    found = getattr(model, "direction", None)
    if found not in DIRECTIONS or not all(
        callable(getattr(model, name, None)) for name in ("encode", "decode", "predict")
    ):
        raise TypeError(
            f"expected a plasmonwidgets Im2Spec or Spec2Im model, got {type(model).__name__}; "
            "build one with pw.Im2Spec(...) / pw.Spec2Im(...) or pw.load_model(path)"
        )
    if direction is not None and found != direction:
        other = "Spec2Im" if direction == "spec2im" else "Im2Spec"
        raise ValueError(
            f"this analysis needs a {direction} model but got a {found} model; "
            f"pass a pw.{other} model"
        )
    return found


def check_pairs(pairs: Any) -> Any:
    """Raise unless ``pairs`` looks like a non-empty :class:`TilePairs`."""
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
    """Raise when the tiles' window or energy channels do not fit the model."""
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
    """Encoder inputs held by ``pairs``: (N, w, w) tiles or (N, E) spectra."""
    return pairs.images if model.direction == "im2spec" else pairs.spectra


def targets_of(model: Any, pairs: Any) -> np.ndarray:
    """Decoder targets held by ``pairs``: (N, E) spectra or (N, w, w) tiles."""
    return pairs.spectra if model.direction == "im2spec" else pairs.images


def target_shape(model: Any) -> tuple[int, ...]:
    """Shape of one decoded sample: (E,) for im2spec, (w, w) for spec2im."""
    if model.direction == "im2spec":
        return (int(model.n_energy),)
    return (int(model.window), int(model.window))


def input_shape(model: Any) -> tuple[int, ...]:
    """Shape of one encoder input: (w, w) for im2spec, (E,) for spec2im."""
    if model.direction == "im2spec":
        return (int(model.window), int(model.window))
    return (int(model.n_energy),)


def batched(
    fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    sample_shape: tuple[int, ...],
    batch_size: int = 1024,
) -> np.ndarray:
    """Apply a numpy-in/numpy-out model method to ``x`` (N, ...) in batches.

    Returns (N, *sample_shape) float32. Memory is bounded by one batch of
    network activations plus the output, which is allocated once.
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
