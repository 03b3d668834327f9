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
point leaves the previous file intact.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "plasmonwidgets-model"
FORMAT_VERSION = 1
_REQUIRED = ("format_version", "model_class", "config", "state_dict")


class CheckpointError(ValueError):
    """The file is not a readable plasmonwidgets checkpoint (foreign, truncated, too new)."""


def _package_version() -> str:
    from . import __version__

    return __version__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_checkpoint(path: str | os.PathLike, *, model_class: str, config: dict,
                     state_dict: dict, energy: torch.Tensor | None = None,
                     extra: dict | None = None) -> Path:
    """Atomically write a checkpoint to ``path`` and return it as a Path.

    The parent directory must exist. On any error the temporary file is removed and the
    previous content of ``path`` (if any) is untouched.
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
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
    """
    path = Path(path)
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
    if not isinstance(payload["config"], dict) or not isinstance(payload["state_dict"], dict):
        raise CheckpointError(f"{path}: 'config' and 'state_dict' must be dicts")
    return payload
