"""Takes of a timing measurement, each started once the JACK server is quiet.

A JACK xrun spoils a take near it, so the timing tests judge each thing in a
take no xrun came near and take again otherwise.  Most runs have a stray xrun
now and then, and a second take does.  But a host that starves the machine's
virtual CPUs gives storms: for tens of seconds nearly every cycle is an xrun,
and a fixed count of takes is spent inside one.  So :class:`Takes` waits, before
each take, until the xrun count has held still for :data:`QUIET_S`, and gives
up on a measurement only when its time budget is spent; what it waited is in
:meth:`Takes.report`, for the failure message.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

#: How long the xrun count must hold still before a take starts, seconds.
QUIET_S = 1.0
#: How long a measurement may go on, takes and waits together, seconds.
BUDGET_S = 240.0
#: How often the xrun count is read while waiting, seconds.
POLL_S = 0.05


def wait_for_quiet(xruns: Callable[[], int], deadline: float, quiet_s: float = QUIET_S) -> bool:
    """Wait until ``xruns()`` has not changed for ``quiet_s``, or until ``deadline`` (monotonic); True if quiet."""
    seen = xruns()
    since = time.monotonic()
    while True:
        now = time.monotonic()
        if now - since >= quiet_s:
            return True
        if now >= deadline:
            return False
        time.sleep(POLL_S)
        n = xruns()
        if n != seen:
            seen, since = n, time.monotonic()


class Takes:
    """Iterate for take numbers; each starts after a quiet spell, until ``budget_s`` is spent.

    ``xruns`` reads a count of the server's xruns so far (an ear's reports, a
    daemon's status).  At least ``least`` takes are made whatever the budget.
    """

    def __init__(self, xruns: Callable[[], int], budget_s: float = BUDGET_S, least: int = 2) -> None:
        self.xruns = xruns
        self.budget_s = budget_s
        self.least = least
        self.waits: list[float] = []
        self.stormy = 0

    def __iter__(self) -> Iterator[int]:
        start = time.monotonic()
        deadline = start + self.budget_s
        take = 0
        while take < self.least or time.monotonic() < deadline:
            t0 = time.monotonic()
            if not wait_for_quiet(self.xruns, max(deadline, t0 + QUIET_S * 2)):
                self.stormy += 1
            self.waits.append(time.monotonic() - t0)
            yield take
            take += 1

    def report(self) -> str:
        """How the takes went: their count, the waits for quiet, how many never found it."""
        waited = sum(self.waits)
        return (f"{len(self.waits)} takes in {self.budget_s:.0f} s; {waited:.1f} s waited for a quiet server "
                f"(longest {max(self.waits, default=0.0):.1f} s), {self.stormy} takes started in a storm")

