"""``CycleClock``: when a device's cycles start, from the callback's own readings.

Theory of operation
-------------------
A real-time callback reads ``CLOCK_MONOTONIC`` as it starts each cycle.  The
reading is the cycle's scheduled start plus a wake-up delay that is never
negative and mostly tiny, with now and then a late one.  So the *phase* of a
reading, its time less the duration of the frames before it, is the
schedule's phase plus that delay, and the least phase of the recent reports
is the schedule's, with the jitter gone.

The schedule can move.  After an xrun JACK's dummy driver anchors its cycles
at the late wake-up, and a sound card's driver restarts the stream: every
later phase is later by the step.  A report says so (``step``) when the
device announced an xrun since the last one, or when :data:`MOVED_AFTER`
reports in a row were later than the least by over half a cycle (a run of
late wake-ups that long is a new schedule, not jitter).  The filter then
forgets the old phases, and for :data:`SETTLE_REPORTS` reports its user
re-anchors on each estimate instead of slewing to it, while the least phase
settles back down to the schedule.

JACK offers a filtered clock of its own (``jack_frames_to_time``), but an
xrun resets that filter to the late wake-up and it converges on the new
schedule over seconds, carrying every note timed through it meanwhile.

The window is short (:data:`PHASES` reports) so that a sound card drifting
from ``CLOCK_MONOTONIC`` by 100 ppm (the worst seen) moves the least phase
by 0.14 ms at most (1.4 s at 48 kHz and 128 frames, a report every 8 cycles).
Sans-I/O: the caller passes the readings in.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

#: Reports the least phase is taken over.
PHASES: Final = 64
#: Reports in a row later than the least phase by over half a cycle: the schedule moved unannounced.
MOVED_AFTER: Final = 4
#: Reports after a move that ask to re-anchor while the least phase settles.
SETTLE_REPORTS: Final = 8

NS_PER_SECOND: Final = 1_000_000_000


class CycleStart(NamedTuple):
    """The estimate for one report: when its cycle started, and whether to re-anchor there."""

    start_ns: int  #: the cycle's start on the callback's clock, jitter removed
    step: bool  #: the schedule moved lately: re-anchor on this estimate, don't slew to it


class CycleClock:
    """The least-phase filter over a callback's readings of its cycles' starts (see the module's notes)."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"CycleClock: the rate must be positive, got {rate}")
        self.rate = rate
        self._phases: deque[int] = deque(maxlen=PHASES)
        self._xruns = 0
        self._late = 0
        self._since_move: int = -1  # reports since the latest move; -1: none yet
        #: Reports that found the schedule moved.
        self.steps = 0

    def reset(self) -> None:
        """Forget everything: the device's frames start again (a new client or stream)."""
        self._phases.clear()
        self._late = 0
        self._since_move = -1

    def report(self, start_ns: int, frame: int, length: int, xruns: int) -> CycleStart:
        """The cycle that starts at frame ``frame`` began (as read) at ``start_ns``.

        ``length`` is its frame count; ``xruns`` the device's xrun count so far.
        """
        phase = start_ns - frame * NS_PER_SECOND // self.rate
        phases = self._phases
        moved = xruns != self._xruns
        self._xruns = xruns
        if phases and phase - min(phases) > length * NS_PER_SECOND // (2 * self.rate):
            self._late += 1
            moved = moved or self._late >= MOVED_AFTER
        else:
            self._late = 0
        if moved:
            phases.clear()
            self._late = 0
            self._since_move = 0
            self.steps += 1
        phases.append(phase)
        step = 0 <= self._since_move < SETTLE_REPORTS
        if self._since_move >= 0:
            self._since_move += 1
        return CycleStart(min(phases) + frame * NS_PER_SECOND // self.rate, step)


__all__ = ["MOVED_AFTER", "PHASES", "SETTLE_REPORTS", "CycleClock", "CycleStart"]
