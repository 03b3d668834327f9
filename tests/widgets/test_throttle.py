"""Throttle: the latest value, at most once per interval, and never a lost last value."""

from __future__ import annotations

import time

import pytest

from plasmonwidgets.widgets.coalesce import Throttle


def test_zero_interval_delivers_every_value_at_once():
    seen = []
    throttle = Throttle(seen.append, 0.0)
    for v in range(5):
        throttle.submit(v)
    assert seen == [0, 1, 2, 3, 4] and not throttle.pending


def test_burst_is_thinned_and_ends_on_the_last_value():
    seen = []
    throttle = Throttle(seen.append, 0.05)
    t0 = time.monotonic()
    for v in range(2000):
        throttle.submit(v)
        if v % 100 == 0:
            time.sleep(0.01)  # ~0.2 s of submissions in all
    elapsed = time.monotonic() - t0
    deadline = time.monotonic() + 2
    while throttle.pending and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen[-1] == 1999 and seen == sorted(seen)
    # first value at once, then at most one per interval (+ the trailing one)
    assert len(seen) <= elapsed / 0.05 + 2
    assert seen[0] == 0


def test_close_drops_the_held_value():
    seen = []
    throttle = Throttle(seen.append, 10.0)
    throttle.submit(1)  # delivered at once
    throttle.submit(2)  # held for 10 s
    throttle.close()
    time.sleep(0.05)
    assert seen == [1] and not throttle.pending
    throttle.submit(3)  # ignored once closed
    assert seen == [1]


def test_errors_go_to_on_error_and_later_values_still_arrive():
    errors, seen = [], []

    def fn(v):
        if v == 0:
            raise RuntimeError("boom")
        seen.append(v)

    throttle = Throttle(fn, 0.0, on_error=lambda exc, tb: errors.append(str(exc)))
    throttle.submit(0)
    throttle.submit(1)
    assert errors == ["boom"] and seen == [1]


def test_negative_interval_is_refused():
    with pytest.raises(ValueError, match="interval must be >= 0"):
        Throttle(print, -1)
