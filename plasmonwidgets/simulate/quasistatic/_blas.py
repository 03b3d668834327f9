"""Single-threaded BLAS for the solver's dense algebra.

The matrices here are small (10²–10³): a multi-threaded BLAS on a busy machine can be
15–75× slower than one thread (measured: a 600-panel eigendecomposition 0.2 s on one
thread, 3.3 s on two under load), and gains little on an idle one.
"""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread inside the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
