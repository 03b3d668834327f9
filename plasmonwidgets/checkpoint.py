"""Model checkpoint files: one self-describing file, written atomically, read safely.

A checkpoint is a plain dict saved with ``torch.save``::

    {"format": "plasmonwidgets-model", "format_version": 1, "package_version": "0.1.0",
     "model_class": "Im2Spec", "config": {...architecture...},
     "state_dict": {...weights and normalisation buffers...},
     "energy": float64 tensor (E,) or None, "extra": {...e.g. training history...}}

Reading uses ``torch.load(weights_only=True)``: only tensors and plain containers are
unpickled, so a foreign or malicious file cannot execute code; it is refused with a
:class:`CheckpointError`. Writing goes to a temporary file in the same directory that is
then renamed over the target (``os.replace`` is atomic), so a save interrupted at any
point leaves the previous file intact; leftovers of a killed save are removed by the next
save or read of that path.

Before a model is built, :func:`read_checkpoint` checks every field's type and the
architecture sizes in ``config`` against the weight shapes, without allocating anything:
a crafted config (``n_energy=2e7``) fails at once instead of building a huge network.
"""

from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from . import _atomic

FORMAT = "plasmonwidgets-model"
FORMAT_VERSION = 1
_REQUIRED = ("format_version", "model_class", "config", "state_dict")
#: largest value each architecture size may take in a file (far above any real model;
#: they bound what a crafted config can make us allocate before the weights are compared)
SIZE_LIMITS = {"window": 1024, "n_energy": 65536, "latent_dim": 1024, "n_layers_enc": 16,
               "n_filters_enc": 512, "n_filters_dec": 512, "pool": 4096}
_MAX_DILATION, _MAX_DILATIONS = 64, 16
#: (input shape, target shape) of each model class, from its config
_IO_SHAPES = {
    "Im2Spec": lambda c: ((c["window"], c["window"]), (c["n_energy"],)),
    "Spec2Im": lambda c: ((c["n_energy"],), (c["window"], c["window"])),
}


class CheckpointError(ValueError):
    """The file is not a readable plasmonwidgets checkpoint (foreign, truncated, too new).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> bad = pathlib.Path(tempfile.mkdtemp()) / "notes.pt"
    >>> _ = bad.write_bytes(b"not a checkpoint")
    >>> try:
    ...     read_checkpoint(bad)
    ... except CheckpointError:
    ...     print("refused")
    refused
    """


def _package_version() -> str:
    from . import __version__

    return __version__


def write_checkpoint(path: str | os.PathLike, *, model_class: str, config: dict,
                     state_dict: dict, energy: torch.Tensor | None = None,
                     extra: dict | None = None) -> Path:
    """Atomically write a checkpoint to ``path`` and return it as a Path.

    The parent directory must exist. On any error the temporary file is removed and the
    previous content of ``path`` (if any) is untouched.

    Examples
    --------
    Usually called by ``model.save``; the config holds the model's sizes:

    >>> import pathlib, tempfile
    >>> import plasmonwidgets as pw
    >>> model = pw.Im2Spec(window=8, n_energy=32, device="cpu")
    >>> path = model.save(pathlib.Path(tempfile.mkdtemp()) / "im2spec.pt")  # uses write_checkpoint
    >>> path.suffix
    '.pt'
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save checkpoint: directory {path.parent} does not exist")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_version": _package_version(),
        "model_class": model_class,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "energy": None if energy is None else energy.detach().cpu(),
        "extra": dict(extra or {}),
    }
    _atomic.recover(path)  # leftovers of an earlier, interrupted save
    tmp = _atomic.temp_path(path)
    try:
        with open(tmp, "xb") as fh:  # the usual file mode (umask applies)
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        _atomic.move_into_place(tmp, path)
    except BaseException:
        _atomic.remove(tmp)
        raise
    return path


def _unpickler_reason(exc: BaseException) -> str:
    """The informative line of torch's (long) weights-only unpickling error."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    boilerplate = ("Weights only load failed", "Check the documentation", "Please file an issue")
    for ln in lines:
        if "global" in ln.lower() and not ln.startswith(boilerplate):
            return ln
    informative = [ln.split("WeightsUnpickler error:", 1)[-1].strip() for ln in lines
                   if not ln.startswith(boilerplate)]
    informative = [ln for ln in informative if ln]
    return informative[0] if informative else (lines[0] if lines else type(exc).__name__)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint written by :func:`write_checkpoint`.

    Returns the payload dict (tensors on the CPU). Raises FileNotFoundError for a missing
    file and CheckpointError for anything that is not a complete, compatible checkpoint.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import plasmonwidgets as pw
    >>> path = pw.Im2Spec(window=8, n_energy=32, device="cpu").save(
    ...     pathlib.Path(tempfile.mkdtemp()) / "im2spec.pt")
    >>> payload = read_checkpoint(path)
    >>> payload["model_class"], payload["config"]["n_energy"]
    ('Im2Spec', 32)
    """
    path = Path(path)
    _atomic.recover(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(
            f"{path} is empty (0 bytes): the save or copy that made it did not finish; "
            "save the model again or copy the file again"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _unpickler_reason(exc)
        if "global" in reason.lower():
            # weights_only refuses classes/functions: this file wants to build objects
            raise CheckpointError(
                f"{path} references Python objects other than tensors and plain data "
                f"({reason}); it is not a plasmonwidgets checkpoint and was not loaded "
                f"(loading it could run code)"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or not a torch file): {reason}"
        ) from None
    except Exception as exc:  # torch raises many types on garbage (IndexError, EOFError, ...)
        raise CheckpointError(
            f"{path} is not a readable checkpoint (truncated or not a torch file): {exc}"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is a torch file but not a plasmonwidgets model checkpoint "
            f"(expected a dict with format={FORMAT!r}); save models with model.save(path)"
        )
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path} is an incomplete checkpoint: missing {missing}")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r} but this plasmonwidgets "
            f"({_package_version()}) reads versions 1..{FORMAT_VERSION}; it was written by "
            f"plasmonwidgets {payload.get('package_version', '?')} - upgrade to read it"
        )
    validate_payload(payload, path)
    return payload


def validate_payload(payload: dict[str, Any], path: str | os.PathLike) -> None:
    """Check types and sizes of a checkpoint payload before any model is built.

    ``model_class`` a str; ``config`` sizes positive ints within :data:`SIZE_LIMITS`;
    ``state_dict`` str -> tensors backed by stored data (no stride tricks that make a
    small file declare a huge tensor), finite; the normalisation buffers and the dense
    layers agree with the config's window / n_energy / latent_dim; ``energy`` None or
    a finite 1-D float tensor of n_energy values. Raises CheckpointError naming ``path``.

    Examples
    --------
    :func:`read_checkpoint` runs this on every file; it raises on a bad payload:

    >>> import pathlib, tempfile
    >>> import plasmonwidgets as pw
    >>> path = pw.Im2Spec(window=8, n_energy=32, device="cpu").save(
    ...     pathlib.Path(tempfile.mkdtemp()) / "im2spec.pt")
    >>> validate_payload(read_checkpoint(path), path) is None
    True
    """
    name = payload["model_class"]
    if not isinstance(name, str):
        raise CheckpointError(f"{path}: 'model_class' must be a class name (str), got "
                              f"{type(name).__name__} {name!r:.80}")
    config, state = payload["config"], payload["state_dict"]
    if not isinstance(config, dict) or not all(isinstance(k, str) for k in config):
        raise CheckpointError(f"{path}: 'config' must be a dict of architecture settings")
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path}: 'state_dict' must be a dict of named weight tensors")
    if not isinstance(payload.get("extra", {}), dict):
        raise CheckpointError(f"{path}: 'extra' must be a dict")
    _check_sizes(config, path)
    for key, value in state.items():
        _check_tensor(key, value, path)
    if name in _IO_SHAPES:
        _check_shapes(name, config, state, path)
    energy = payload.get("energy")
    if energy is not None:
        if not isinstance(energy, torch.Tensor) or not energy.is_floating_point():
            raise CheckpointError(f"{path}: 'energy' must be a float tensor of energies (eV) "
                                  f"or None, got {type(energy).__name__} {energy!r:.80}")
        _check_tensor("energy", energy, path)
        if tuple(energy.shape) != (config["n_energy"],):
            raise CheckpointError(f"{path}: 'energy' has shape {tuple(energy.shape)}, but the "
                                  f"config says n_energy={config['n_energy']}")


def _check_sizes(config: dict, path: Any) -> None:
    for key in ("window", "n_energy", "latent_dim"):
        if key not in config:
            raise CheckpointError(f"{path}: 'config' lacks {key!r}")
    for key, limit in SIZE_LIMITS.items():
        if key not in config:
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise CheckpointError(
                f"{path}: config {key}={value!r:.40} is not a size this program builds (an "
                f"integer from 1 to {limit}); the file is damaged or was not written by "
                "plasmonwidgets")
    dil = config.get("dilations", (1,))
    if (not isinstance(dil, (list, tuple)) or not 1 <= len(dil) <= _MAX_DILATIONS
            or any(isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= _MAX_DILATION
                   for d in dil)):
        raise CheckpointError(f"{path}: config dilations={dil!r:.80} must be 1 to "
                              f"{_MAX_DILATIONS} integers from 1 to {_MAX_DILATION}")
    for key in ("symmetric",):
        if key in config and not isinstance(config[key], bool):
            raise CheckpointError(f"{path}: config {key}={config[key]!r:.40} must be True/False")
    seed = config.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise CheckpointError(f"{path}: config seed={seed!r:.40} must be an integer or None")


def _check_tensor(key: str, value: Any, path: Any) -> None:
    if not isinstance(value, torch.Tensor):
        raise CheckpointError(f"{path}: state_dict entry {key!r} is a {type(value).__name__}, "
                              "not a tensor")
    if value.layout != torch.strided or value.is_quantized:
        raise CheckpointError(f"{path}: state_dict entry {key!r} is not a plain dense tensor")
    # a view may address memory only inside the storage the file holds
    if value.numel():
        end = value.storage_offset() + sum((n - 1) * abs(st) for n, st in
                                           zip(value.shape, value.stride())) + 1
        if (end * value.element_size() > value.untyped_storage().nbytes()
                or value.numel() * value.element_size() > value.untyped_storage().nbytes()):
            raise CheckpointError(f"{path}: state_dict entry {key!r} declares shape "
                                  f"{tuple(value.shape)} but the file holds less data for it")
    if value.is_floating_point() and value.numel() and not bool(torch.isfinite(value).all()):
        raise CheckpointError(f"{path}: {key!r} contains NaN or infinite values; the model "
                              "diverged or the file is damaged")


def _check_shapes(name: str, config: dict, state: dict, path: Any) -> None:
    """The weights whose shapes follow from the config, compared before building."""
    inp, out = _IO_SHAPES[name](config)
    d = config["latent_dim"]
    expected = {"x_offset": inp, "y_offset": out}
    f_enc, f_dec = config.get("n_filters_enc"), config.get("n_filters_dec")
    if name == "Im2Spec" and f_enc and f_dec:
        expected["encoder.fc.weight"] = (d, f_enc * config["window"] ** 2)
        expected["decoder.fc.weight"] = (f_dec * config["n_energy"], d)
    elif name == "Spec2Im" and f_enc and f_dec:
        length = math.ceil(config["n_energy"] / config.get("pool", 1))
        expected["encoder.fc.weight"] = (d, f_enc * length)
        expected["decoder.fc.weight"] = (f_dec * (config["window"] // 4) ** 2, d)
    for key, shape in expected.items():
        if key not in state:
            raise CheckpointError(f"{path}: state_dict lacks {key!r}; the file is incomplete or "
                                  f"not a {name} checkpoint")
        if tuple(state[key].shape) != tuple(shape):
            raise CheckpointError(
                f"{path}: checkpoint does not match its config: {key!r} has shape "
                f"{tuple(state[key].shape)}, but window={config['window']}, n_energy="
                f"{config['n_energy']}, latent_dim={d} need {tuple(shape)}; the file is "
                "damaged or was edited")
