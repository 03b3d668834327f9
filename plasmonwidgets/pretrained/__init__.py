"""Small pre-trained im2spec / spec2im models for the built-in nanocube dataset.

The files ``{direction}_{latent}.pt`` (im2spec/spec2im at 2 and 10 latent
dimensions) are made by ``scripts/make_pretrained.py`` from
``datasets.nanocube_array(**DATASET)`` with the architecture :data:`ARCH`, so the
dashboard and the tutorials can explore a trained model without waiting.

Each checkpoint carries, in its ``extra`` metadata, a description of the data it
was trained on (:func:`data_fingerprint`). :func:`incompatibility` compares it
with a SpectrumImage before a model is used on that data: a model trained on
100 channels from 0.2 to 1.2 eV means nothing for a spectrum image on another
energy axis, and the caller should offer training instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._compat import warn_renamed
from ..roles import DIRECTIONS

__all__ = [
    "ARCH",
    "DATASET",
    "DIRECTIONS",
    "LATENT_DIMS",
    "SPLIT",
    "WINDOW",
    "architecture",
    "available",
    "check_compatible",
    "incompatibility",
    "data_fingerprint",
    "info",
    "load_default",
    "path",
]

HERE = Path(__file__).resolve().parent

LATENT_DIMS = (2, 10)
WINDOW = 16
SPLIT = "halves"
#: keyword arguments of datasets.nanocube_array for the training data
DATASET: dict[str, Any] = {"seed": 0}
#: the filter counts of the library's default network (``models.PRESETS["lean"]``, which
#: Im2Spec/Spec2Im build when no preset is named): 16 instead of the paper's 64, so each file
#: stays well under 1 MB and trains in seconds per epoch on a laptop CPU; the layer
#: structure is the paper's. The checkpoints store their full config, so they load
#: whatever the defaults become.
ARCH: dict[str, Any] = {"n_filters_enc": 16, "n_filters_dec": 16}

_ENERGY_RTOL = 1e-3  # relative to the energy span: axes equal to ~1/1000 of the range


def architecture(direction: str, latent_dim: int, n_energy: int, window: int = WINDOW) -> dict:
    """Constructor keywords of the default model for ``direction`` and ``latent_dim``.

    Examples
    --------
    >>> architecture("im2spec", 2, n_energy=100)
    {'window': 16, 'n_energy': 100, 'latent_dim': 2, 'n_filters_enc': 16, 'n_filters_dec': 16}
    """
    _check_key(direction, latent_dim, any_latent=True)
    return dict(window=window, n_energy=int(n_energy), latent_dim=int(latent_dim), **ARCH)


def path(direction: str, latent_dim: int) -> Path:
    """Location of the packaged checkpoint (it may not exist; see :func:`available`).

    Examples
    --------
    >>> path("spec2im", 10).suffix
    '.pt'
    """
    _check_key(direction, latent_dim)
    return HERE / f"{direction}_{int(latent_dim)}.pt"


def available() -> list[tuple[str, int]]:
    """(direction, latent_dim) of every packaged checkpoint present.

    Examples
    --------
    >>> ("im2spec", 10) in available()               # when the checkpoints are packaged  # doctest: +SKIP
    True
    """
    return [(d, k) for d in DIRECTIONS for k in LATENT_DIMS if path(d, k).is_file()]


def info(direction: str, latent_dim: int) -> dict[str, Any]:
    """The checkpoint's metadata: ``data`` (fingerprint), ``dataset`` (simulator
    parameters), ``history`` (losses per epoch), ``test_nmse`` (%) and ``split``.

    Examples
    --------
    >>> sorted(info("im2spec", 10))                  # doctest: +SKIP
    ['data', 'dataset', 'epochs', 'split', 'test_loss', 'test_nmse', 'test_nmse_median', 'train_loss']
    """
    from ..checkpoint import read_checkpoint

    return dict(read_checkpoint(_existing(direction, latent_dim))["extra"])


def load_default(direction: str, latent_dim: int, device: Any = "cpu") -> Any:
    """The packaged pre-trained model for the built-in dataset (Im2Spec or Spec2Im).

    Raises FileNotFoundError (with the command that makes the files) when the
    checkpoint is missing. The metadata is attached as ``model.pretrained_info``.

    Examples
    --------
    >>> model = load_default("im2spec", 10)          # doctest: +SKIP
    >>> model.window, model.latent_dim               # doctest: +SKIP
    (16, 10)
    """
    from ..models import load_model

    file = _existing(direction, latent_dim)
    model = load_model(file, device=device)
    model.pretrained_info = info(direction, latent_dim)
    return model


def data_fingerprint(si: Any, window: int = WINDOW) -> dict[str, Any]:
    """What a model must agree with to be used on ``si``: shapes, energy axis, window.

    Plain data (numbers, strings, lists), so it can live in checkpoint metadata.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> fingerprint = data_fingerprint(si)
    >>> isinstance(fingerprint, dict)
    True
    """
    e = np.asarray(si.energy, dtype=np.float64)
    return {
        "n_energy": int(e.size),
        "energy_min": float(e[0]),
        "energy_max": float(e[-1]),
        "scan_shape": [int(n) for n in si.scan_shape],
        "scale": int(si.scale),
        "window": int(window),
        "title": str(si.metadata.get("title", "")),
        "source": str(si.metadata.get("source", si.metadata.get("simulator", ""))),
    }


def incompatibility(model: Any, si: Any) -> str | None:
    """None if ``model`` can be applied to ``si``, else a sentence saying why not.

    Compared: the number of energy channels and the energy axis (to ~0.1 % of its
    span) when the model knows it. A model whose stored fingerprint describes a
    different scan is still usable (structures look alike) as long as the axes agree.

    Examples
    --------
    A model made for 32 channels fits a 32-channel SI; one for 100 does not:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> incompatibility(pw.Im2Spec(window=16, n_energy=32, device="cpu"), si) is None
    True
    >>> incompatibility(pw.Im2Spec(window=16, n_energy=100, device="cpu"), si)[:48]
    'the model (im2spec, 10 latent) expects spectra w'
    """
    e = np.asarray(si.energy, dtype=np.float64)
    n_model = int(model.n_energy)
    where = _describe(model)
    if n_model != e.size:
        return (
            f"the {where} expects spectra with {n_model} energy channels but this data has "
            f"{e.size}; train new models on it in the Train tab"
        )
    energy = getattr(model, "energy", None)
    if energy is not None:
        energy = np.asarray(energy, dtype=np.float64)
        tol = _ENERGY_RTOL * max(float(e[-1] - e[0]), 1e-12)
        if np.max(np.abs(energy - e)) > tol:
            return (
                f"the {where} was trained on {energy[0]:.3g}–{energy[-1]:.3g} eV but this data "
                f"covers {e[0]:.3g}–{e[-1]:.3g} eV; train new models on it in the Train tab"
            )
    return None


def check_compatible(model: Any, si: Any) -> str | None:
    """Deprecated name of :func:`incompatibility` (same result, with a ``DeprecationWarning``).

    In this package a ``check_*`` function raises; this one returns the reason, so it
    was renamed.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     check_compatible(pw.Im2Spec(window=16, n_energy=32, device="cpu"), si) is None
    True
    """
    warn_renamed("check_compatible", "incompatibility", where="plasmonwidgets.pretrained")
    return incompatibility(model, si)


def _describe(model: Any) -> str:
    meta = getattr(model, "pretrained_info", None)
    kind = "pre-trained model" if meta else "model"
    return f"{kind} ({model.direction}, {model.latent_dim} latent)"


def _check_key(direction: str, latent_dim: int, any_latent: bool = False) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not any_latent and int(latent_dim) not in LATENT_DIMS:
        raise ValueError(
            f"pre-trained models exist for latent_dim in {LATENT_DIMS}, got {latent_dim!r}"
        )


def _existing(direction: str, latent_dim: int) -> Path:
    file = path(direction, latent_dim)
    if not file.is_file():
        raise FileNotFoundError(
            f"no pre-trained {direction} model with {latent_dim} latent dimensions at {file}; "
            "create the files with `python scripts/make_pretrained.py`"
        )
    return file
