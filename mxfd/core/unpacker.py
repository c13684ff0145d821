"""``Unpacker``: the render pin's first MXF, DMUS_EVENTHEADER buffers in, kernel events out.

Theory of operation
-------------------
A client writes one buffer (an "IRP": packed DMUS_EVENTHEADER records plus a
start time) at a time.  :meth:`Unpacker.unpack` turns it into one
:class:`~mxfd.core.event.KernelEvent` per MIDI message and hands them down its
output (normally the :class:`~mxfd.core.sequencer.Sequencer`) as a single
``next_evt`` chain, in buffer order.

A buffer is applied all or nothing, in three steps:

1. Validate the whole buffer (the wire rules of :mod:`mxfd.core.wire`, plus
   the short-message rules of structured records) and count the events and
   data buffers it needs.  A malformed buffer raises
   :class:`~mxfd.core.wire.BadBufferError` naming the byte offset.
2. Check that the allocator can supply that many.  If not, raise
   :class:`~mxfd.core.allocator.AllocatorExhausted` *before* taking any: the
   caller holds the buffer and retries later (back-pressure; nothing lost).
   A buffer needing more than the allocator's cap could never go through, so
   it is refused with ``BadBufferError`` instead.
3. Build the chain, then pass it on.  Should the allocator still run dry half
   way (another thread took events after the check), the partial chain goes
   back to the pool and the error is raised, so the buffer is still unapplied.

Records become events as follows:

* Structured records carry one short message.  Its real length comes from the
  status byte (:func:`mxfd.core.midi.message_length`); extra ``cbEvent`` bytes
  are padding (Wine always writes 3, even for a 2-byte program change).  A
  record too short for its status, or whose data bytes have bit 7 set, is
  malformed.
* Unstructured records (SysEx, raw bytes) are copied as they are.  Data longer
  than the allocator's ``buffer_size`` is split into successive events with
  the same time stamp, ``EVENT_INCOMPLETE`` on all but the last ("the message
  continues beyond this event").

Each event's presentation time is ``start_time + rtDelta``; its
``byte_position`` is the offset, in this unpacker's input byte stream, of the
end of the record it came from (of its chunk, for the leading chunks of a
split record), so position notifications can be raised as events are played.
The position restarts at zero when the node is stopped.

States: the unpacker does not hold data (the sequencer does), so in RUN,
PAUSE and ACQUIRE it passes everything on.  In STOP buffers are still
validated, then discarded and counted; events given to ``put_message`` go
straight back to the allocator.
"""

from __future__ import annotations

from typing import Optional

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE, INLINE_CAPACITY, KernelEvent
from mxfd.core.midi import DATA_LENGTH
from mxfd.core.mxf import KSState, MXFNode
from mxfd.core.wire import DMUS_EVENT_STRUCTURED, EVENT_HEADER_SIZE, HEADER, BadBufferError, iter_records

Bytes = bytes | bytearray | memoryview


class Unpacker(MXFNode):
    """DMUS_EVENTHEADER buffers to kernel events (the render pin's unpacker).

    Counters: ``buffers`` and ``events`` unpacked, ``bad_buffers`` rejected,
    ``back_pressure`` (buffers refused for want of events), ``discarded``
    (events or records dropped because the node was stopped).
    """

    def __init__(self, allocator: Allocator) -> None:
        super().__init__(allocator)
        #: Bytes of input consumed since the last STOP (ullBytePosition's base).
        self.byte_position = 0
        self.buffers = 0
        self.events = 0
        self.bad_buffers = 0
        self.back_pressure = 0
        self.discarded = 0

    def set_state(self, state: KSState) -> None:
        super().set_state(state)
        if self.state is KSState.STOP:
            self.byte_position = 0

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, for status reports."""
        return {
            "buffers": self.buffers,
            "events": self.events,
            "bad_buffers": self.bad_buffers,
            "back_pressure": self.back_pressure,
            "discarded": self.discarded,
            "byte_position": self.byte_position,
        }

    # -- validation ----------------------------------------------------------

    def _measure(self, data: Bytes) -> tuple[int, int, int]:
        """Validate ``data``; return (records, events needed, data buffers needed)."""
        buffer_size = self.allocator.buffer_size
        records = events = buffers = 0
        for off, cb, _group, _delta, flags in iter_records(data):
            records += 1
            body = off + EVENT_HEADER_SIZE
            if flags & DMUS_EVENT_STRUCTURED:
                n = DATA_LENGTH[data[body]]
                if n:
                    if cb <= n:
                        raise BadBufferError(
                            off, f"structured event of {cb} bytes; status {data[body]:#04x} needs {n + 1}"
                        )
                    if data[body + 1] & 0x80 or (n > 1 and data[body + 2] & 0x80):
                        bad = body + 1 if data[body + 1] & 0x80 else body + 2
                        raise BadBufferError(bad, f"status byte {data[bad]:#04x} inside a structured message")
                events += 1
            else:
                full, rest = divmod(cb, buffer_size)
                events += full + (1 if rest else 0)
                buffers += full + (1 if rest > INLINE_CAPACITY else 0)
        return records, events, buffers

    # -- the render path -----------------------------------------------------

    def unpack(self, data: Bytes, start_time: int) -> int:
        """Unpack one buffer whose records are relative to ``start_time``.

        Returns the number of events passed on.  Raises
        :class:`~mxfd.core.wire.BadBufferError` for a malformed buffer and
        :class:`~mxfd.core.allocator.AllocatorExhausted` when the allocator
        cannot supply the events (retry later); in both cases nothing of the
        buffer has been applied.
        """
        try:
            records, need, need_buffers = self._measure(data)
        except BadBufferError:
            self.bad_buffers += 1
            raise
        if self.state is KSState.STOP:
            self.discarded += records
            return 0
        if not need:
            self.buffers += 1
            return 0
        alloc = self.allocator
        if need > alloc.max_pool_size or need_buffers > alloc.max_buffers:
            # Waiting would never help: refuse it as bad input rather than as back-pressure.
            self.bad_buffers += 1
            raise BadBufferError(
                0,
                f"buffer needs {need} events and {need_buffers} data buffers, more than this stream's "
                f"allocator can ever hold ({alloc.max_pool_size} and {alloc.max_buffers})",
            )
        if alloc.available() < need or alloc.buffers_available() < need_buffers:
            self.back_pressure += 1
            raise AllocatorExhausted(
                f"buffer needs {need} events and {need_buffers} data buffers; "
                f"the allocator has {alloc.available()} and {alloc.buffers_available()}"
            )
        head = self._build(data, start_time, need)
        self.byte_position += len(data)
        self.buffers += 1
        self.events += need
        self._output.put_message(head)
        return need

    def _build(self, data: Bytes, start_time: int, need: int) -> KernelEvent:
        """Turn a validated buffer into one chain of ``need`` events (all or nothing)."""
        alloc = self.allocator
        try:
            head = alloc.get_chain(need)  # one lock for the whole buffer; takes all or none
        except AllocatorExhausted:
            self.back_pressure += 1
            raise
        buffer_size = alloc.buffer_size
        base = self.byte_position
        used = len(data)
        e: Optional[KernelEvent] = head
        off = 0
        try:
            while off < used:
                cb, group, delta, flags = HEADER.unpack_from(data, off)
                body = off + EVENT_HEADER_SIZE
                end = body + cb
                record_end = (end + 7) & ~7
                if record_end > used:
                    record_end = used
                t = start_time + delta
                if flags & DMUS_EVENT_STRUCTURED:
                    assert e is not None
                    inline = e.inline
                    status = data[body]
                    inline[0] = status
                    n = DATA_LENGTH[status]
                    if n:
                        inline[1] = data[body + 1]
                        if n > 1:
                            inline[2] = data[body + 2]
                    e.cb_event = n + 1
                    e.channel_group = group
                    e.pres_time_100ns = t
                    e.byte_position = base + record_end
                    e = e.next_evt
                else:
                    pos = body
                    while pos < end:
                        assert e is not None
                        stop = pos + buffer_size
                        if stop >= end:
                            stop = end
                        e.set_data(data, pos, stop)
                        e.channel_group = group
                        e.pres_time_100ns = t
                        if stop < end:
                            e.flags = EVENT_INCOMPLETE
                            e.byte_position = base + stop
                        else:
                            e.flags = EVENT_COMPLETE
                            e.byte_position = base + record_end
                        pos = stop
                        e = e.next_evt
                off = record_end
        except BaseException as exc:
            # Raced past the availability check (data buffers): undo, so the buffer stays unapplied.
            alloc.put_message(head)
            if isinstance(exc, AllocatorExhausted):
                self.back_pressure += 1
            raise
        assert e is None, "event count and records disagree"
        return head

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Pass a chain on (or return it to the allocator when stopped)."""
        if evt is None:
            return
        if self.state is KSState.STOP:
            self.discarded += evt.chain_length()
            self.allocator.put_message(evt)
            return
        self._output.put_message(evt)
