"""Latest-value-wins scheduling for expensive reactions to fast UI events.

A slider dragged in the browser fires tens of change events per second; a
decoder forward pass takes milliseconds. Computing every event in turn builds a
backlog, so the display lags further and further behind the hand.
:class:`Coalescer` keeps one slot: a new request overwrites the pending one, a
single worker thread computes whatever is in the slot when it becomes free and
publishes the result. Intermediate values are skipped, memory stays constant,
and the last value submitted is always the last one published.

In ``mode="sync"`` the same object computes and publishes inside ``submit``
(scripts, tests, benchmarks, and kernels where blocking for a few ms is fine).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["Coalescer", "Throttle"]

_EMPTY = object()  # marks an empty request slot (None is a valid request)

MODES = ("thread", "sync")


class Coalescer:
    """Run ``compute(request)`` then ``publish(result)`` for the latest request only.

    Parameters
    ----------
    compute : callable(request) -> result
        The expensive part (e.g. decoding a latent vector). Runs on the worker
        thread in ``"thread"`` mode.
    publish : callable(result)
        Pushes the result to the views (e.g. sets bqplot mark arrays).
    mode : {"thread", "sync"}
        ``"thread"``: ``submit`` returns at once and one daemon worker thread
        does the work. ``"sync"``: ``submit`` computes and publishes before
        returning.
    on_error : callable(exception, traceback_text), optional
        Called when ``compute`` or ``publish`` raises; the worker keeps running.
        Without it the last error is only kept in ``last_error``.
    name : str
        Worker thread name (shows up in debuggers and ``threading.enumerate()``).

    Attributes
    ----------
    count : int
        How many requests were actually computed (skipped ones are not counted).
    submitted : int
        How many requests were submitted.
    last_error : BaseException or None

    Examples
    --------
    In ``"sync"`` mode every request is computed and published before ``submit`` returns:

    >>> shown = []
    >>> coalescer = Coalescer(lambda z: 2 * z, shown.append, mode="sync")
    >>> coalescer.submit(1); coalescer.submit(5)
    >>> shown, coalescer.count
    ([2, 10], 2)
    """

    def __init__(
        self,
        compute: Callable[[Any], Any],
        publish: Callable[[Any], None],
        mode: str = "thread",
        on_error: Callable[[BaseException, str], None] | None = None,
        name: str = "plasmonwidgets-coalescer",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if not callable(compute) or not callable(publish):
            raise TypeError("compute and publish must be callables")
        self.compute = compute
        self.publish = publish
        self.mode = mode
        self.on_error = on_error
        self.name = name
        self.count = 0
        self.submitted = 0
        self.last_error: BaseException | None = None
        self._slot: Any = _EMPTY
        self._slot_seq = 0  # sequence number of the request in the slot
        self._done_seq = 0  # sequence number of the last request published (or skipped past)
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()  # sync mode: one compute at a time

    # -- public API ---------------------------------------------------------------
    def submit(self, request: Any) -> None:
        """Ask for ``request`` to be computed; replaces any request not yet started."""
        if self._closed:
            raise RuntimeError(f"{self.name} is closed; create a new Coalescer")
        if self.mode == "sync":
            with self._sync_lock:
                self.submitted += 1
                self._run(request)
                self._done_seq = self.submitted
            return
        with self._cond:
            self.submitted += 1
            self._slot = request
            self._slot_seq = self.submitted
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until every submitted request has been published or skipped.

        Returns False if ``timeout`` (s) passed first. Immediate in sync mode.
        """
        with self._cond:
            return self._cond.wait_for(
                lambda: self._done_seq >= self.submitted and not self._busy, timeout
            )

    @property
    def idle(self) -> bool:
        """True when nothing is pending or being computed."""
        with self._cond:
            return self._done_seq >= self.submitted and not self._busy

    def close(self, timeout: float | None = 1.0) -> None:
        """Drop any pending request and stop the worker thread."""
        with self._cond:
            self._closed = True
            self._slot = _EMPTY
            self._done_seq = self.submitted
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- worker -------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slot is not _EMPTY or self._closed)
                if self._closed:
                    return
                request, seq = self._slot, self._slot_seq
                self._slot = _EMPTY
                self._busy = True
            try:
                self._run(request)
            finally:
                with self._cond:
                    self._busy = False
                    self._done_seq = max(self._done_seq, seq)
                    self._cond.notify_all()

    def _run(self, request: Any) -> None:
        try:
            result = self.compute(request)
            self.count += 1
            self.publish(result)
        except Exception as exc:  # keep the worker alive; report through on_error
            self.last_error = exc
            if self.on_error is not None:
                self.on_error(exc, traceback.format_exc())

    def __repr__(self) -> str:
        return (
            f"Coalescer(mode={self.mode!r}, submitted={self.submitted}, computed={self.count})"
        )


class Throttle:
    """Call ``fn(value)`` for the latest submitted value at most once per ``interval`` s.

    A value that arrives within ``interval`` of the previous call is held back and
    delivered by a timer when the interval has passed (newer values replace it), so the
    last value submitted is always delivered, at most ``interval`` late. With
    ``interval=0`` every value is delivered at once, inside ``submit``.

    Used for the secondary views of a drag (nearest tiles, highlights): they follow the
    hand a few times per second instead of competing with the primary view every frame.
    ``on_error(exception, traceback_text)`` receives exceptions raised by ``fn``.

    Examples
    --------
    The first value goes out at once; a later one within 0.1 s waits for the timer:

    >>> import time
    >>> sent = []
    >>> throttle = Throttle(sent.append, interval=0.1)
    >>> throttle.submit(1); throttle.submit(2); throttle.submit(3)
    >>> time.sleep(0.3); sent
    [1, 3]
    """

    def __init__(self, fn: Callable[[Any], None], interval: float,
                 on_error: Callable[[BaseException, str], None] | None = None):
        if not interval >= 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        self.fn = fn
        self.interval = float(interval)
        self.on_error = on_error
        self.calls = 0
        self._lock = threading.Lock()
        self._value: Any = _EMPTY
        self._last = float("-inf")
        self._timer: threading.Timer | None = None
        self._closed = False

    def submit(self, value: Any) -> None:
        """Deliver ``value`` now if the interval has passed, else when it has."""
        with self._lock:
            if self._closed:
                return
            self._value = value
            if self._timer is not None:  # a delivery is scheduled: it will take this value
                return
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._deliver)
                self._timer.daemon = True
                self._timer.start()
                return
        self._deliver()

    @property
    def pending(self) -> bool:
        """True while a value waits for its delivery."""
        with self._lock:
            return self._value is not _EMPTY

    def close(self) -> None:
        """Drop any held value and cancel the timer."""
        with self._lock:
            self._closed = True
            self._value = _EMPTY
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _deliver(self) -> None:
        with self._lock:
            value, self._value = self._value, _EMPTY
            self._timer = None
            if value is _EMPTY or self._closed:
                return
            self._last = time.monotonic()
            self.calls += 1
        try:
            self.fn(value)
        except Exception as exc:
            if self.on_error is not None:
                self.on_error(exc, traceback.format_exc())
