"""Threads for the simulators' dense algebra: chunks of beams on all cores, BLAS on one each.

The matrices here are small (10²–10³): a multi-threaded BLAS on a busy machine can be
15–75× slower than one thread (measured: a 600-panel eigendecomposition 0.2 s on one
thread, 3.3 s on two under load), and gains little on an idle one. Independent chunks of
beams, on the other hand, run well in parallel threads: numpy and scipy release the GIL
in their products.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

__all__ = ["cores", "map_chunks", "single_threaded_blas"]


@contextmanager
def single_threaded_blas():
    """Limit BLAS to one thread inside the block (no-op without threadpoolctl).

    Examples
    --------
    >>> import numpy as np
    >>> with single_threaded_blas():
    ...     float(np.ones((3, 3)) @ np.ones(3) @ np.ones(3))
    9.0
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one), at most 8.

    Examples
    --------
    >>> 1 <= cores() <= 8
    True
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        n = os.cpu_count() or 1
    return max(1, min(n, 8))


def map_chunks(work: Callable[[int], None], n_items: int, chunk: int, workers: int | None = None) -> None:
    """Call ``work(start)`` for start = 0, chunk, 2·chunk, … < n_items, on up to ``workers`` threads.

    ``work`` writes its own slice of a shared output; the chunks must be independent, so the
    result does not depend on ``workers`` (default :func:`cores`; 1 runs them in order).

    Examples
    --------
    >>> import numpy as np
    >>> out = np.zeros(10)
    >>> def work(start):
    ...     out[start:start + 4] = np.arange(start, min(start + 4, 10))
    >>> map_chunks(work, 10, 4, workers=2); out.tolist() == list(range(10))
    True
    """
    starts = range(0, n_items, chunk)
    n = max(1, min(workers or cores(), len(starts)))
    if n == 1:
        for start in starts:
            work(start)
        return
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(work, starts))
