"""``Sequencer``: holds render events until they are due, then releases them in time order.

Theory of operation
-------------------
The sequencer sits between the unpacker and the miniport.  It keeps the
events it is given ordered by presentation time and, when :meth:`release` is
called with the current master time, hands every event that is due to its
output as one ``next_evt`` chain.  An event is due when
``pres_time_100ns - schedule_prefetch <= until``: ``schedule_prefetch``
(SchedulePreFetch) is how far ahead of an event's time the miniport wants it.
Late events are simply due, so they play at once (and are counted).

Ordering is stable: events with equal times leave in the order they came
(insert after the last event whose time is not greater, as Wine's synth
does).  That also keeps the INCOMPLETE chunks of a long SysEx together and in
order, since they share one time stamp and arrive in one chain.

The queue *is* a ``next_evt`` chain, so holding and releasing allocate
nothing and a release is a single cut of the chain.  Inserting is O(1) for
events that arrive in time order (the normal case: buffers are packed in
ascending time and follow each other), and merging a later buffer that
overlaps queued events walks forward from the previous insertion point, so a
sorted run costs O(queued + run).  Only adversarial orders cost O(queued) per
event, bounded by the allocator's cap.

A prefetch of 2**63 or more (``DONT_HOLD_FOR_SEQUENCING``, what a software
synth that schedules by sample time asks for) passes chains straight through
in RUN, unsorted, as they arrive.

States (render side): RUN releases; ACQUIRE and PAUSE hold everything,
release nothing and report no due time; STOP returns everything held to the
allocator and discards (returns, counts) whatever it is given.  Entering RUN
in pass-through mode delivers what was held at once, as dmusuart's timer does.
Events held through a pause that have become late play at once on RUN.

Threads: ``put_message`` may be called from I/O threads while a render or
timer thread calls ``release``.  An internal ``threading.Lock`` (no
allocation) guards the queue, and the output's ``put_message`` is called
with that lock held, so chains reach the output in time order even when two
threads deliver.  The output must therefore not call back into this
sequencer (returning events to the allocator is fine: it has its own lock).
"""

from __future__ import annotations

import threading
from typing import Final, Optional

from mxfd.core.allocator import Allocator
from mxfd.core.event import KernelEvent
from mxfd.core.mxf import KSState, MXFNode

#: SchedulePreFetch that means "pass every event on as soon as it arrives".
DONT_HOLD_FOR_SEQUENCING: Final = 0x8000000000000000


class Sequencer(MXFNode):
    """Orders events by presentation time and releases them when due.

    Counters: ``received`` and ``released`` events, ``late`` (released after
    their presentation time), ``flushed`` (returned to the allocator on STOP),
    ``discarded`` (given while stopped); ``held`` is the queue length.
    """

    def __init__(self, allocator: Allocator, schedule_prefetch: int = 0) -> None:
        super().__init__(allocator)
        self._lock = threading.Lock()
        self._head: Optional[KernelEvent] = None
        self._tail: Optional[KernelEvent] = None
        # Last insertion point, always an event in the queue (or None).
        self._cursor: Optional[KernelEvent] = None
        self._held = 0
        self._prefetch = 0
        self._pass_through = False
        self.schedule_prefetch = schedule_prefetch
        self.received = 0
        self.released = 0
        self.late = 0
        self.flushed = 0
        self.discarded = 0

    # -- configuration and counters -----------------------------------------

    @property
    def schedule_prefetch(self) -> int:
        """SchedulePreFetch in 100 ns units; ≥ 2**63 means pass straight through."""
        return self._prefetch

    @schedule_prefetch.setter
    def schedule_prefetch(self, value: int) -> None:
        if value < 0:
            raise ValueError(f"schedule_prefetch must be >= 0, got {value}")
        self._prefetch = int(value)
        self._pass_through = value >= DONT_HOLD_FOR_SEQUENCING

    @property
    def pass_through(self) -> bool:
        """True when the prefetch is so large that events are never held for time."""
        return self._pass_through

    @property
    def held(self) -> int:
        """Events waiting in the queue."""
        return self._held

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, for status reports."""
        return {
            "held": self._held,
            "received": self.received,
            "released": self.released,
            "late": self.late,
            "flushed": self.flushed,
            "discarded": self.discarded,
        }

    def next_due(self) -> Optional[int]:
        """The master time at which the earliest held event is due, or None.

        None also when not in RUN: nothing is released then, so a timer has
        nothing to wait for until the state changes.
        """
        with self._lock:
            head = self._head
            if head is None or self.state is not KSState.RUN:
                return None
            return head.pres_time_100ns - self._prefetch

    # -- IMXF ----------------------------------------------------------------

    def set_state(self, state: KSState) -> None:
        with self._lock:
            super().set_state(state)
            if self.state is KSState.STOP:
                head = self._head
                if head is not None:
                    self.flushed += self._held
                    self._clear()
                    self.allocator.put_message(head)
            elif self.state is KSState.RUN and self._pass_through and self._head is not None:
                self._deliver_all()

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Take a chain of events to hold until due (or to pass through)."""
        if evt is None:
            return
        with self._lock:
            state = self.state
            if state is KSState.STOP:
                self.discarded += evt.chain_length()
                self.allocator.put_message(evt)
                return
            if self._pass_through and state is KSState.RUN and self._head is None:
                n = evt.chain_length()
                self.received += n
                self.released += n
                self._output.put_message(evt)
                return
            insert = self._insert
            n = 0
            e: Optional[KernelEvent] = evt
            while e is not None:
                nxt = e.next_evt
                insert(e)
                n += 1
                e = nxt
            self.received += n
            self._held += n
            if self._pass_through and state is KSState.RUN:
                self._deliver_all()

    # -- releasing -----------------------------------------------------------

    def release(self, until: int) -> int:
        """Release, as one chain, every event due by master time ``until``.

        Returns the number released (0 when not in RUN).
        """
        with self._lock:
            head = self._head
            if head is None or self.state is not KSState.RUN:
                return 0
            limit = until + self._prefetch  # due: pres_time - prefetch <= until
            if head.pres_time_100ns > limit:
                return 0
            n = 0
            late = 0
            last = head
            e: Optional[KernelEvent] = head
            while e is not None and e.pres_time_100ns <= limit:
                if e.pres_time_100ns < until:
                    late += 1
                n += 1
                last = e
                e = e.next_evt
            last.next_evt = None
            self._head = e
            if e is None:
                self._tail = None
            self._cursor = None
            self._held -= n
            self.released += n
            self.late += late
            self._output.put_message(head)
            return n

    def _deliver_all(self) -> None:
        head = self._head
        if head is not None:
            self.released += self._held
            self._clear()
            self._output.put_message(head)

    def _clear(self) -> None:
        self._head = self._tail = self._cursor = None
        self._held = 0

    # -- the ordered queue ---------------------------------------------------

    def _insert(self, e: KernelEvent) -> None:
        """Link ``e`` after the last held event whose time is not greater."""
        t = e.pres_time_100ns
        tail = self._tail
        if tail is None:
            e.next_evt = None
            self._head = self._tail = e
            return
        if tail.pres_time_100ns <= t:
            e.next_evt = None
            tail.next_evt = e
            self._tail = e
            return
        # Somewhere before the tail: walk from the last insertion point when
        # that is not past ``t``, else from the head.
        c = self._cursor
        if c is None or c.pres_time_100ns > t:
            c = self._head
            assert c is not None
            if c.pres_time_100ns > t:
                e.next_evt = c
                self._head = e
                self._cursor = e
                return
        n = c.next_evt
        # The tail is later than t, so the walk stops before running off the end.
        while n is not None and n.pres_time_100ns <= t:
            c = n
            n = n.next_evt
        c.next_evt = e
        e.next_evt = n
        self._cursor = e
