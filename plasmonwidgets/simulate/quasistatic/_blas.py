"""Single-threaded BLAS for the solver's dense algebra (see :mod:`.._parallel`)."""

from __future__ import annotations

from .._parallel import single_threaded_blas

__all__ = ["single_threaded_blas"]
