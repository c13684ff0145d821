"""The master clock: one monotonic time base for the whole daemon.

Every time stamp in mxfd is a ``REFERENCE_TIME``: a signed integer count of
100 ns units on this clock (IMasterClock's role).  Capture stamps arrivals on
it, clients schedule playback on it, and the wave sink maps it to sample
positions.  Nodes take a clock as a plain callable so tests can inject a
manual one.
"""

from __future__ import annotations

import time
from typing import Callable

#: A ``REFERENCE_TIME``: 100 ns units on the master clock.
ReferenceTime = int

#: A clock is anything that returns the current reference time.
Clock = Callable[[], ReferenceTime]

#: 100 ns units per second, millisecond and microsecond.
UNITS_PER_SECOND = 10_000_000
UNITS_PER_MS = 10_000
UNITS_PER_US = 10


def master_time() -> ReferenceTime:
    """Return the current master time (``CLOCK_MONOTONIC``) in 100 ns units."""
    return time.monotonic_ns() // 100


class ManualClock:
    """A clock that only moves when told to; for tests and offline rendering."""

    __slots__ = ("now",)

    def __init__(self, start: ReferenceTime = 0) -> None:
        self.now = start

    def __call__(self) -> ReferenceTime:
        return self.now

    def advance(self, delta: ReferenceTime) -> ReferenceTime:
        """Move the clock forward by ``delta`` units and return the new time."""
        self.now += delta
        return self.now
