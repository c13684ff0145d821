"""Takes of a timing measurement, each started once the JACK server is quiet.

A JACK xrun spoils a take near it, so the timing tests judge each thing in a
take no xrun came near and take again otherwise.  Most runs have a stray xrun
now and then, and a second take does.  But a host that starves the machine's
virtual CPUs gives storms: for tens of seconds nearly every cycle is an xrun,
and a fixed count of takes is spent inside one.  So :class:`Takes` waits, before
each take, until the xrun count has held still for :data:`QUIET_S`, and gives
up on a measurement only when its time budget is spent; what it waited is in
:meth:`Takes.report`, for the failure message.

A host can also be never quiet for a second: an xrun every few tenths of a
second for minutes.  A take there still has undisturbed notes between the
xruns, and the tests judge each note on its own, so a take waits at most
:data:`PATIENCE_S` for quiet and then goes ahead; waiting for a quiet that
never comes would spend the whole budget on a handful of takes.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

#: How long the xrun count must hold still before a take starts, seconds.
QUIET_S = 1.0
#: How long a measurement may go on, takes and waits together, seconds.
BUDGET_S = 240.0
#: How long a take waits for quiet before it goes ahead anyway, seconds.
PATIENCE_S = 1.5
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
            if not wait_for_quiet(self.xruns, min(max(deadline, t0 + QUIET_S * 2), t0 + PATIENCE_S)):
                self.stormy += 1
            self.waits.append(time.monotonic() - t0)
            yield take
            take += 1

    def report(self) -> str:
        """How the takes went: their count, the waits for quiet, how many never found it."""
        waited = sum(self.waits)
        return (f"{len(self.waits)} takes in {self.budget_s:.0f} s; {waited:.1f} s waited for a quiet server "
                f"(longest {max(self.waits, default=0.0):.1f} s), {self.stormy} takes started without a quiet spell")


def undisturbed_pairs(onsets: list[int], marks: list[int], before: int, after: int) -> dict[int, int]:
    """Pair each undisturbed onset with the undisturbed one nearest before it: ``{k: i}``, ``i < k``.

    An onset is undisturbed when no mark (an xrun, a missed cycle) falls from
    ``before`` frames ahead of it to ``after`` frames past it.  The time from
    onset ``i`` to onset ``k`` is then the daemon's alone, whatever disturbed
    the notes between: pairing past them gets a judgement of every note from
    fewer takes on a host whose xruns come every few tenths of a second.
    """
    clean = [k for k, at in enumerate(onsets) if not any(at - before <= m <= at + after for m in marks)]
    return dict(zip(clean[1:], clean[:-1], strict=True))
