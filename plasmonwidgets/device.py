"""Choosing the torch device a model lives on."""

from __future__ import annotations

import torch

_AUTO = (None, "auto")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def select_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return the torch device to use.

    ``preferred=None`` (or ``"auto"``) picks CUDA, then Apple MPS, then the CPU, whichever
    is first available. An explicit device ("cpu", "cuda", "cuda:1", "mps" or a
    ``torch.device``) is checked: asking for an accelerator this machine lacks raises a
    ValueError instead of failing later inside a forward pass.

    Examples
    --------
    >>> select_device("cpu")
    device(type='cpu')
    >>> select_device()                              # CUDA, else MPS, else the CPU  # doctest: +SKIP
    device(type='cuda', index=0)
    """
    if preferred in _AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(preferred)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {preferred!r}; use 'cpu', 'cuda', 'cuda:N', 'mps' or None (auto)"
        ) from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available here; "
                             "use device=None to pick the best available device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device} requested but only "
                             f"{torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type == "mps" and not _mps_available():
        raise ValueError("device 'mps' requested but Apple MPS is not available here; "
                         "use device=None to pick the best available device")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device type {device.type!r}; use 'cpu', 'cuda' or 'mps'")
    return device
