"""Where Dask graphs run: the local threaded scheduler or any ``dask.distributed`` cluster.

Lazy prediction (:func:`plasmonwidgets.analysis.predict_to_file`) and cluster sweeps
build ordinary Dask graphs; this module only chooses who computes them, so the same
code runs on a laptop, a workstation or a cluster (``dask-jobqueue`` for SLURM/PBS,
Kubernetes, ...).

``scheduler`` everywhere means one of

- ``None``: an active ``dask.distributed.Client`` when the caller made one (Dask's own
  rule), otherwise Dask's local threaded scheduler;
- ``"threads"``, ``"processes"`` or ``"synchronous"``: that local Dask scheduler;
- an address such as ``"tcp://10.0.0.5:8786"``: a client connected to that scheduler for
  the duration of the call;
- a ``dask.distributed.Client``: that client.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["LOCAL_SCHEDULERS", "dask_scheduler", "active_client", "torch_threads_for_worker",
           "report_to_client", "worker_progress"]

LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ImportError(
            "running on a Dask cluster needs the 'distributed' package: "
            "pip install distributed (or pip install 'plasmonwidgets[distributed]')"
        ) from None
    return distributed


def active_client() -> Any:
    """The ``dask.distributed.Client`` Dask would use now, or None.

    Examples
    --------
    None when no ``dask.distributed`` client has been started in this process:

    >>> active_client() is None                      # doctest: +SKIP
    True
    """
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:  # no client made in this process
        return None


@contextlib.contextmanager
def dask_scheduler(scheduler: Any = None) -> Iterator[Any]:
    """Run the Dask computations inside the ``with`` block on ``scheduler`` (see the module
    docstring); yields the distributed Client in use, or None for a local scheduler.

    Examples
    --------
    >>> with dask_scheduler("tcp://scheduler:8786") as client:      # doctest: +SKIP
    ...     spectra.compute()
    """
    import dask

    if scheduler is None:
        client = active_client()
        if client is not None:
            with client.as_current():
                yield client
            return
        scheduler = "threads"
    if isinstance(scheduler, str) and scheduler in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=scheduler):
            yield None
        return
    if isinstance(scheduler, str):
        if "://" not in scheduler:
            raise ValueError(
                f"scheduler must be one of {', '.join(LOCAL_SCHEDULERS)} or a Dask scheduler address "
                f"such as tcp://host:8786, got {scheduler!r}"
            )
        distributed = _distributed()
        try:
            client = distributed.Client(scheduler, set_as_default=False, timeout="10s")
        except OSError as exc:
            raise ConnectionError(
                f"could not reach the Dask scheduler at {scheduler} ({exc}); check the address and "
                "that `dask scheduler` is running there"
            ) from None
        try:
            with client.as_current():
                yield client
        finally:
            client.close()
        return
    distributed = _distributed()
    if not isinstance(scheduler, distributed.Client):
        raise TypeError(f"scheduler must be None, a name, an address or a dask.distributed.Client, "
                        f"got {type(scheduler).__name__}")
    with scheduler.as_current():
        yield scheduler


def torch_threads_for_worker() -> None:
    """Inside a task on a ``dask.distributed`` worker: give torch the worker's threads, not
    every core of the machine (several workers share it). Elsewhere: nothing.

    Examples
    --------
    Outside a Dask worker it does nothing:

    >>> torch_threads_for_worker()
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    import torch

    n = max(1, int(getattr(worker.state, "nthreads", 1)))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def report_to_client(topic: str | None, msg: dict) -> None:
    """Inside a task on a ``dask.distributed`` worker: log ``msg`` as an event on ``topic``
    for the client (:func:`worker_progress`). Elsewhere, or without a topic: nothing.

    Examples
    --------
    Outside a Dask worker (or with ``topic=None``) it does nothing:

    >>> report_to_client(None, {"done": 3, "total": 10})
    """
    if topic is None:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    worker.log_event(topic, msg)


@contextlib.contextmanager
def worker_progress(client: Any, topic: str, *, desc: str, unit: str) -> Iterator[dict]:
    """A progress bar (``tqdm.auto``) in this process for work done on a cluster's workers.

    Dask's local progress bar sees nothing of a distributed scheduler's tasks, so the tasks
    report themselves: each logs ``{"done": n, "of": total}`` on ``topic``
    (:func:`report_to_client`), the scheduler forwards the events to ``client`` and the bar
    advances by ``n``. On leaving, the events the scheduler kept (``client.get_events``)
    settle the count, so events still in flight when the computation returned are counted.
    Yields a dict whose ``"done"`` and ``"total"`` are the units reported so far and the
    total announced (None before the first report).

    Examples
    --------
    >>> with worker_progress(client, "my-run", desc="predicting", unit="spectrum"):  # doctest: +SKIP
    ...     spectra.store(target)    # tasks call report_to_client("my-run", {...})
    """
    from tqdm.auto import tqdm

    lock = threading.Lock()
    state: dict[str, Any] = {"bar": None, "done": 0, "total": None}

    def advance(done: int, total: int) -> None:  # under the lock
        if state["bar"] is None:
            state["bar"] = tqdm(total=total, desc=desc, unit=unit, leave=True)
            state["total"] = total
        state["bar"].update(done)
        state["done"] += done

    def handler(event: tuple) -> None:  # on the client's event loop
        msg = event[1]
        with lock:
            if not state.get("closed"):
                advance(int(msg["done"]), int(msg["of"]))

    client.subscribe_topic(topic, handler)
    try:
        yield state
    finally:
        client.unsubscribe_topic(topic)
        events = [msg for _, msg in client.get_events(topic)]
        with lock:
            state["closed"] = True
            missing = sum(int(m["done"]) for m in events) - state["done"]
            if missing > 0:
                advance(missing, int(events[0]["of"]))
            if state["bar"] is not None:
                state["bar"].close()
