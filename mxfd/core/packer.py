"""``Packer``: the capture pin's last MXF, kernel events in, DMUS_EVENTHEADER buffers out.

Theory of operation
-------------------
The packer writes each event it is given as one DMUS_EVENTHEADER record (the
layout of :mod:`mxfd.core.wire`) into the buffer it is filling, then passes
the used events on to its output, which is the allocator unless
``connect_output`` named another node.  A buffer's start time is its first
record's presentation time; every record stores ``rtDelta`` from it (which
may be negative: a real-time byte can overtake the message it interrupted).
Records are flagged ``DMUS_EVENT_STRUCTURED`` when the event holds exactly one
channel, system common or real-time message (its length matches its status
byte); everything else, SysEx and its chunks included, is unstructured.  A
SysEx that arrives as a chain of chunk events becomes one record per chunk.

A buffer is *completed*, i.e. handed to ``on_buffer(start_time, data)``:

1. when the next record does not fit (``completed_full``);
2. when its first record is ``max_delay`` old (1 ms by default) on the
   master clock (``completed_timeout``).  ``put_message`` checks the clock
   once per chain; between chains an I/O thread or timer calls :meth:`poll`
   at :meth:`next_deadline`, so live input is never held back waiting for a
   buffer to fill;
3. on :meth:`flush` (``completed_flush``) and on STOP (``completed_stop``).

Buffers come from a small pool of reusable ``bytearray``\\ s, so the packer
always has one to fill.  ``on_buffer`` gets a ``bytes`` copy of the used part.
A consumer that falls behind says so by returning ``False`` from
``on_buffer`` (anything else, ``None`` included, means "taken"); the packer
then keeps that buffer, and every later one, in order in a bounded queue of
``queue_size`` buffers and offers them again, oldest first, at the next
completion, on :meth:`poll`, :meth:`flush` and :meth:`drain` (which the
consumer calls when it has caught up).  When the queue is full the oldest
buffer is dropped and counted (``dropped_buffers``, ``dropped_events``).  An
exception from ``on_buffer`` is counted (``consumer_errors``), logged (the
1st, 2nd, 4th, 8th... time, so a broken consumer cannot flood the log) and
treated like a refusal, so the buffer is not lost.

States: in STOP the current buffer is completed first; events given while
stopped go back to the allocator, counted as ``discarded``.  The other states
pack.  ``on_buffer`` must not call back into the packer's ``put_message``.

Speed: one ``struct.pack_into`` per short event writes the header, the
message bytes and zero padding in one go, straight into the current buffer;
the clock is read once per chain and once per buffer started, and the whole
chain is passed on in one ``put_message``.  ``events`` is derived from the
record counts rather than counted per event.
"""

from __future__ import annotations

import logging
import struct
import threading
from collections import deque
from typing import Callable, Final, Optional

from mxfd.core.allocator import Allocator
from mxfd.core.clock import UNITS_PER_MS, Clock, master_time
from mxfd.core.event import INLINE_CAPACITY, KernelEvent
from mxfd.core.midi import message_length
from mxfd.core.mxf import KSState, MXFNode
from mxfd.core.wire import (
    EVENT_HEADER_SIZE,
    HEADER,
    MAX_BUFFER_SIZE,
    MAX_STRUCTURED_SIZE,
    event_size,
    structured_flag,
)

_log = logging.getLogger(__name__)

#: Smallest default buffer (an IRP of a page).
DEFAULT_BUFFER_SIZE: Final = 4096
#: Completed buffers held for a consumer that is behind.
DEFAULT_QUEUE_SIZE: Final = 8

#: ``on_buffer(start_time, data)``; return ``False`` to refuse (consumer behind).
BufferCallback = Callable[[int, bytes], Optional[bool]]


def _short_lengths() -> bytes:
    """``table[s]``: length of the structured message that status ``s`` starts, 0 if unstructured."""
    table = bytearray(256)
    for s in range(0x80, 0x100):
        if structured_flag(bytes([s])) and message_length(s) <= MAX_STRUCTURED_SIZE:
            table[s] = message_length(s)
    return bytes(table)


_SHORT_LENGTH: Final = _short_lengths()
# One struct per inline length: header, the event bytes and zero padding to the QWORD boundary.
_PACK: Final[tuple[Callable[..., None], ...]] = tuple(
    struct.Struct(f"<IIqI{cb}s{event_size(cb) - EVENT_HEADER_SIZE - cb}x").pack_into
    for cb in range(INLINE_CAPACITY + 1)
)
_SIZE: Final = tuple(event_size(cb) for cb in range(INLINE_CAPACITY + 1))
_ZEROS: Final = tuple(bytes(n) for n in range(8))

_STOPPED: Final = KSState.STOP  # bound once: an enum member lookup costs as much as a dozen bytecodes
_FULL: Final = 0
_TIMEOUT: Final = 1
_FLUSH: Final = 2
_STOP: Final = 3


class Packer(MXFNode):
    """The packer MXF: ``Packer(allocator, on_buffer)``.

    Parameters
    ----------
    allocator:
        The stream's allocator.
    on_buffer:
        Receives each completed buffer as ``(start_time, data)``; returns
        ``False`` when it cannot take it now.
    buffer_size:
        Bytes per buffer; at least one record of the allocator's largest
        event (default: 4096, or that if larger).
    queue_size:
        Completed buffers held while the consumer is behind.
    max_delay:
        Completion deadline after a buffer's first record, in 100 ns units.
    clock:
        The master clock (injectable for tests).

    Counters (ints, also in :meth:`counters`): ``events`` packed,
    ``buffers`` completed (``completed_full``, ``completed_timeout``,
    ``completed_flush``, ``completed_stop``), ``delivered``, ``refused``,
    ``consumer_errors``, ``dropped_buffers``, ``dropped_events``,
    ``discarded`` (given while stopped), ``bad_events`` (no bytes, or bytes
    the event does not have: dropped).
    """

    def __init__(
        self,
        allocator: Allocator,
        on_buffer: BufferCallback,
        *,
        buffer_size: Optional[int] = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_delay: int = UNITS_PER_MS,
        clock: Clock = master_time,
    ) -> None:
        super().__init__(allocator)
        smallest = event_size(allocator.buffer_size)
        if buffer_size is None:
            buffer_size = max(DEFAULT_BUFFER_SIZE, smallest)
        if not smallest <= buffer_size <= MAX_BUFFER_SIZE:
            raise ValueError(
                f"buffer_size must be in {smallest}..{MAX_BUFFER_SIZE} (a record of the allocator's "
                f"{allocator.buffer_size}-byte events must fit), got {buffer_size}"
            )
        if queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, got {queue_size}")
        if max_delay < 0:
            raise ValueError(f"max_delay must not be negative, got {max_delay}")
        self._on_buffer = on_buffer
        self._clock = clock
        self.buffer_size = buffer_size
        self.queue_size = queue_size
        self.max_delay = max_delay
        self._lock = threading.RLock()
        self._free = [bytearray(buffer_size) for _ in range(queue_size)]
        self._queue: deque[tuple[int, bytearray, int, int]] = deque()
        self._buf = bytearray(buffer_size)
        self._used = 0
        self._records = 0
        self._start = 0
        self._deadline = 0
        self._events_done = 0
        self.buffers = 0
        self.completed_full = 0
        self.completed_timeout = 0
        self.completed_flush = 0
        self.completed_stop = 0
        self.delivered = 0
        self.refused = 0
        self.consumer_errors = 0
        self.dropped_buffers = 0
        self.dropped_events = 0
        self.discarded = 0
        self.bad_events = 0

    @property
    def events(self) -> int:
        """Events packed (into completed buffers and the one being filled)."""
        return self._events_done + self._records

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, for status reports."""
        return {
            "events": self.events,
            "buffers": self.buffers,
            "completed_full": self.completed_full,
            "completed_timeout": self.completed_timeout,
            "completed_flush": self.completed_flush,
            "completed_stop": self.completed_stop,
            "delivered": self.delivered,
            "refused": self.refused,
            "consumer_errors": self.consumer_errors,
            "queued": len(self._queue),
            "dropped_buffers": self.dropped_buffers,
            "dropped_events": self.dropped_events,
            "discarded": self.discarded,
            "bad_events": self.bad_events,
            "pending_events": self._records,
        }

    # -- IMXF ----------------------------------------------------------------

    def set_state(self, state: KSState) -> None:
        """Change state; STOP completes the buffer being filled first."""
        with self._lock:
            if KSState(state) is _STOPPED:
                self._complete(_STOP)
            super().set_state(state)

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Pack a chain of events, then pass the events on (to the allocator by default)."""
        if evt is None:
            return
        if self.state is _STOPPED:
            self.discarded += evt.chain_length()
            self.allocator.put_message(evt)
            return
        lock = self._lock
        lock.acquire()
        try:
            buf = self._buf
            off = self._used
            nrec = self._records
            cap = len(buf)
            if off:
                start = self._start
            else:
                # An empty buffer starts here: the first event's time is its start time.
                start = self._start = evt.pres_time_100ns
                self._deadline = self._clock() + self.max_delay
            packs = _PACK
            sizes = _SIZE
            short_length = _SHORT_LENGTH
            e: Optional[KernelEvent] = evt
            try:
                while e is not None:
                    cb = e.cb_event
                    xb = e.buffer
                    if xb is None and cb > 0:
                        try:
                            size = sizes[cb]
                        except IndexError:  # over 8 bytes and no buffer: not a well-formed event
                            self.bad_events += 1
                            e = e.next_evt
                            continue
                        t = e.pres_time_100ns
                        if off + size > cap:
                            buf = self._complete_full(off, nrec, t)
                            off = nrec = 0
                            start = t
                        ib = e.inline
                        packs[cb](buf, off, cb, e.channel_group, t - start, short_length[ib[0]] == cb, ib)
                        off += size
                        nrec += 1
                    elif xb is not None and 0 < cb <= len(xb) and (size := event_size(cb)) <= cap:
                        t = e.pres_time_100ns
                        if off + size > cap:
                            buf = self._complete_full(off, nrec, t)
                            off = nrec = 0
                            start = t
                        HEADER.pack_into(buf, off, cb, e.channel_group, t - start, 0)
                        body = off + EVENT_HEADER_SIZE
                        buf[body : body + cb] = memoryview(xb)[:cb]
                        off += size
                        buf[body + cb : off] = _ZEROS[off - body - cb]
                        nrec += 1
                    else:
                        self.bad_events += 1
                    e = e.next_evt
            finally:
                self._used = off
                self._records = nrec
            if off and self._clock() >= self._deadline:
                self._complete(_TIMEOUT)
        finally:
            lock.release()
            self._output.put_message(evt)

    # -- completion ------------------------------------------------------------

    def next_deadline(self) -> Optional[int]:
        """Master time by which the current buffer must complete, or None when it is empty."""
        return self._deadline if self._used else None

    def poll(self, now: Optional[int] = None) -> bool:
        """Complete the current buffer if its deadline has passed; offer queued buffers again.

        Returns True when a buffer was completed.
        """
        with self._lock:
            if now is None:
                now = self._clock()
            done = False
            if self._used and now >= self._deadline:
                self._complete(_TIMEOUT)
                done = True
            elif self._queue:
                self._drain()
            return done

    def flush(self) -> None:
        """Complete the current buffer now, and offer queued buffers again."""
        with self._lock:
            if self._used:
                self._complete(_FLUSH)
            elif self._queue:
                self._drain()

    def drain(self) -> int:
        """Offer queued buffers to the consumer again, oldest first; return how many it took."""
        with self._lock:
            return self._drain()

    @property
    def queued(self) -> int:
        """Completed buffers waiting for the consumer."""
        return len(self._queue)

    # -- internals -------------------------------------------------------------

    def _complete_full(self, used: int, records: int, start: int) -> bytearray:
        """The next record does not fit: complete the buffer and start one at ``start``."""
        self._used = used
        self._records = records
        self._complete(_FULL)
        self._start = start
        self._deadline = self._clock() + self.max_delay
        return self._buf

    def _complete(self, reason: int) -> None:
        """Hand the current buffer to the consumer (or the queue); start an empty one."""
        used = self._used
        if not used:
            return
        self.buffers += 1
        if reason == _FULL:
            self.completed_full += 1
        elif reason == _TIMEOUT:
            self.completed_timeout += 1
        elif reason == _FLUSH:
            self.completed_flush += 1
        else:
            self.completed_stop += 1
        start = self._start
        nrec = self._records
        self._events_done += nrec
        self._used = 0
        self._records = 0
        if self._queue:
            self._enqueue(start, nrec, used)
            self._drain()
        elif not self._deliver(start, self._buf, used):
            self._enqueue(start, nrec, used)

    def _enqueue(self, start: int, nrec: int, used: int) -> None:
        """Queue the current buffer (dropping the oldest if full) and take a free one."""
        queue = self._queue
        if len(queue) >= self.queue_size:
            _, old, _, old_records = queue.popleft()
            self.dropped_buffers += 1
            self.dropped_events += old_records
            self._free.append(old)
            n = self.dropped_buffers
            if n & (n - 1) == 0:
                _log.warning(
                    "capture consumer behind: dropped a buffer of %d events (%d buffers dropped so far)",
                    old_records,
                    n,
                )
        queue.append((start, self._buf, used, nrec))
        self._buf = self._free.pop()

    def _drain(self) -> int:
        queue = self._queue
        n = 0
        while queue:
            start, buf, used, _ = queue[0]
            if not self._deliver(start, buf, used):
                break
            queue.popleft()
            self._free.append(buf)
            n += 1
        return n

    def _deliver(self, start: int, buf: bytearray, used: int) -> bool:
        data = bytes(memoryview(buf)[:used])
        try:
            taken = self._on_buffer(start, data)
        except Exception:
            self.consumer_errors += 1
            n = self.consumer_errors
            if n & (n - 1) == 0:  # the 1st, 2nd, 4th, 8th...: a broken consumer must not flood the log
                _log.exception("on_buffer raised (%d times so far); the buffer stays queued", n)
            return False
        if taken is False:
            self.refused += 1
            return False
        self.delivered += 1
        return True
