"""The master clock: REFERENCE_TIME integers in 100 ns units from a monotonic source."""

from __future__ import annotations

import time

import mxfd
from mxfd.core.clock import UNITS_PER_MS, UNITS_PER_SECOND, UNITS_PER_US, ManualClock, master_time


def test_reference_time_units_are_100_ns() -> None:
    assert UNITS_PER_SECOND == 10_000_000
    assert UNITS_PER_MS == 10_000
    assert UNITS_PER_US == 10
    assert mxfd.UNITS_PER_SECOND == UNITS_PER_SECOND and mxfd.UNITS_PER_MS == UNITS_PER_MS


def test_master_time_is_monotonic_nanoseconds_over_100() -> None:
    before = time.monotonic_ns() // 100
    now = master_time()
    after = time.monotonic_ns() // 100
    assert isinstance(now, int)
    assert before <= now <= after


def test_master_time_never_goes_back() -> None:
    samples = [master_time() for _ in range(1000)]
    assert samples == sorted(samples)


def test_manual_clock_only_moves_when_told() -> None:
    clock = ManualClock(1000)
    assert clock() == 1000
    assert clock() == 1000
    assert clock.advance(UNITS_PER_MS) == 11_000
    assert clock() == 11_000
    clock.now = 5
    assert clock() == 5


def test_manual_clock_starts_at_zero_by_default() -> None:
    assert ManualClock()() == 0
