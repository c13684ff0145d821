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
nothing and a release is a single cut of the chain.  A chain that is put is
merged into the queue whole: first it is checked for order in one pass (and,
only if a client packed it out of order, put in order by a stable merge sort
of the linked list, O(k log k), still without allocating); then, in the
normal case where it starts at or after the queue's last event, it is simply
linked on, O(1).  A chain that overlaps queued events is merged in one walk
that starts from the previous merge point when it can, so a buffer costs at
most O(queued + k) however its times fall.

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
        # Where the last merge stopped: always an event in the queue, or None.
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
            # One pass: count the chain, find its last event, check its order.
            n = 1
            in_order = True
            last = evt
            t = evt.pres_time_100ns
            e = evt.next_evt
            while e is not None:
                et = e.pres_time_100ns
                if et < t:
                    in_order = False
                t = et
                last = e
                n += 1
                e = e.next_evt
            if not in_order:
                evt = _sort_chain(evt)
                last = evt
                while last.next_evt is not None:
                    last = last.next_evt
            self._merge(evt, last)
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

    def _merge(self, s: Optional[KernelEvent], s_last: KernelEvent) -> None:
        """Merge the time-ordered chain ``s`` (ending at ``s_last``) into the queue, stably."""
        assert s is not None
        head = self._head
        tail = self._tail
        if head is None or tail is None:
            self._head = s
            self._tail = s_last
            return
        t = s.pres_time_100ns
        if tail.pres_time_100ns <= t:
            tail.next_evt = s
            self._tail = s_last
            return
        # Start after the last queued event not later than the chain's first,
        # from the previous merge point when that is not past it.
        prev: Optional[KernelEvent]
        c = self._cursor
        if c is not None and c.pres_time_100ns <= t:
            prev, q = c, c.next_evt
        elif head.pres_time_100ns <= t:
            prev, q = head, head.next_evt
        else:
            prev, q = None, head
        while s is not None:
            if q is None:
                # The rest of the chain, already linked, goes at the end.
                if prev is None:
                    self._head = s
                else:
                    prev.next_evt = s
                self._tail = s_last
                prev = s_last
                break
            if q.pres_time_100ns <= s.pres_time_100ns:  # queued first among equals: stable
                prev = q
                q = q.next_evt
            else:
                nxt = s.next_evt
                if prev is None:
                    self._head = s
                else:
                    prev.next_evt = s
                s.next_evt = q
                prev = s
                s = nxt
        self._cursor = prev


def _sort_chain(head: KernelEvent) -> KernelEvent:
    """Stable merge sort of a ``next_evt`` chain by presentation time; returns the new head."""
    if head.next_evt is None:
        return head
    # Split in the middle (slow and fast pointers), sort each half, merge.
    slow = head
    fast: Optional[KernelEvent] = head.next_evt
    while fast is not None and fast.next_evt is not None:
        nxt = slow.next_evt
        assert nxt is not None
        slow = nxt
        fast = fast.next_evt.next_evt
    second = slow.next_evt
    assert second is not None
    slow.next_evt = None
    a: Optional[KernelEvent] = _sort_chain(head)
    b: Optional[KernelEvent] = _sort_chain(second)
    assert a is not None and b is not None
    # Take from the first half on ties, which keeps equal times in arrival order.
    if b.pres_time_100ns < a.pres_time_100ns:
        out = b
        b = b.next_evt
    else:
        out = a
        a = a.next_evt
    last = out
    while a is not None and b is not None:
        if b.pres_time_100ns < a.pres_time_100ns:
            last.next_evt = b
            last = b
            b = b.next_evt
        else:
            last.next_evt = a
            last = a
            a = a.next_evt
    last.next_evt = a if a is not None else b
    return out
