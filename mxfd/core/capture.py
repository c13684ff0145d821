"""``CaptureSink``: raw MIDI bytes in, one complete message per event out.

Theory of operation
-------------------
A capture miniport (dmusuart's model) drains its input ring into a chain of
events holding up to 8 raw bytes each, marked ``EVENT_INCOMPLETE`` and
stamped with the burst's arrival time.  The capture sink owns one MIDI 1.0
parser per stream, fed by those fragments; its state persists across events
and across calls, so a message may be split anywhere.  Each message it
recognises becomes a new event from the stream's allocator carrying the time
stamp and channel group of the raw event that held the message's *first*
byte (its status byte, or its first data byte under running status).  Raw
events go back to the allocator once read.  Events that arrive COMPLETE (a
smarter miniport that parses itself) pass straight through, in order.

The parser is a small state machine whose state is one integer, ``need``:

=====  ===========================================================
need   meaning (what the next data byte does)
=====  ===========================================================
0      idle, no running status: a data byte is stray (dropped, counted)
1      status seen, awaits the first of two data bytes
2      awaits the second of two data bytes (then the message is out)
3      status seen, awaits its only data byte (then the message is out)
4      running status armed, two data bytes: a data byte starts a message
5      running status armed, one data byte: each data byte is a message
6      inside a SysEx: data bytes accumulate
=====  ===========================================================

and the byte rules are MIDI 1.0's, from the tables in :mod:`mxfd.core.midi`:

* Real-time bytes (F8-FF) go out at once as 1-byte messages, wherever they
  appear (inside a message, inside a SysEx), and touch no state.  They are
  emitted in arrival order, so one may precede the message it interrupted.
* Any other status byte ends the message in progress: a message cut short
  (1-3 above, or a SysEx) is dropped and counted as ``truncated``.
* Channel status (80-EF) starts a message and sets running status; when the
  message completes, ``need`` re-arms to 4 or 5.
* System common (F1, F2, F3, F6) and SysEx (F0, and F7) clear running status.
  F4 and F5 are undefined: they clear running status too (they are status
  bytes), are *dropped* and counted as ``undefined``.  An F7 outside a SysEx
  is dropped and counted as ``stray_eox``.
* SysEx runs from F0 to F7, both included, and may be any length.  Bytes
  collect in a scratch array of the allocator's ``buffer_size``; when it is
  full and one more byte arrives, the full chunk goes out as an
  ``EVENT_INCOMPLETE`` event ("continues in a later event") and collection
  goes on.  The final chunk, ending in F7, is COMPLETE.  Every chunk carries
  the F0's time stamp.  Real-time messages may come between the chunks of one
  SysEx; the chunks themselves stay in order.
* A SysEx cut by another status is counted as truncated.  If none of it has
  gone out, it is dropped.  If chunks already went out, the bytes still held
  go out as a final COMPLETE chunk (not ending in F7), so nothing downstream
  waits for a continuation that will never come; a consumer recognises the
  truncation by the missing F7.  STOP ends such a chain the same way.

States: in STOP the parser resets (running status included) and whatever is
given is returned to the allocator and counted as ``discarded``; the other
states parse (the miniport decides what to capture).

Speed: the parse loop keeps all state in locals, reads each fragment's bytes
with one slice and takes its output events from the allocator in chains
(:meth:`~mxfd.core.allocator.Allocator.get_chain`), one lock per refill.  The
output events are a prefix of that chain, so emitting a message costs no
linking; the whole burst goes downstream as one ``next_evt`` chain.  One
thread drives a sink at a time; a lock keeps ``set_state`` from racing it.
"""

from __future__ import annotations

import threading
from typing import Final, Optional

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE, PACKAGE_EVENT, KernelEvent
from mxfd.core.midi import DATA_LENGTH, EOX, KIND_CHANNEL, KIND_COMMON, STATUS_KIND, SYSEX
from mxfd.core.mxf import KSState, MXFNode

#: Output events taken from the allocator per refill (unused ones go back).
REFILL: Final = 8

# need codes (see the table above); the hot loop uses the literals.
_IDLE: Final = 0
_D1_OF_2: Final = 1
_D1_OF_1: Final = 3
_RUN_2: Final = 4
_RUN_1: Final = 5
_IN_SYSEX: Final = 6


def _build_tables() -> tuple[bytes, bytes]:
    """``START[s]``: ``need`` after status ``s``; ``REARM[s]``: ``need`` once its message is out."""
    start = bytearray(256)
    rearm = bytearray(256)
    for s in range(0x80, 0xF8):
        kind = STATUS_KIND[s]
        if kind == KIND_CHANNEL or (kind == KIND_COMMON and DATA_LENGTH[s]):
            start[s] = _D1_OF_2 if DATA_LENGTH[s] == 2 else _D1_OF_1
            if kind == KIND_CHANNEL:
                rearm[s] = _RUN_2 if DATA_LENGTH[s] == 2 else _RUN_1
    return bytes(start), bytes(rearm)


_START, _REARM = _build_tables()
_INCOMPLETE_RAW: Final = EVENT_INCOMPLETE | PACKAGE_EVENT  # mask: raw bytes are INCOMPLETE, not a package


class _ChainHead(KernelEvent):
    """A private list head; the allocator rejects it (wrong type) should it ever leak."""

    __slots__ = ()


class CaptureSink(MXFNode):
    """The capture sink MXF (``CaptureSink(allocator)``).

    Counters (ints, also in :meth:`counters`): ``messages`` emitted (a SysEx
    counts once however many chunks), ``realtime`` and ``sysex`` among them,
    ``sysex_chunks`` emitted, ``passthrough`` (COMPLETE events passed on),
    ``raw_events`` and ``raw_bytes`` read, ``stray`` data bytes,
    ``stray_eox``, ``truncated`` messages, ``undefined`` (F4/F5) bytes,
    ``discarded`` events (given while stopped) and ``lost`` messages (the
    allocator was exhausted).
    """

    def __init__(self, allocator: Allocator) -> None:
        super().__init__(allocator)
        self._lock = threading.Lock()
        self._head = _ChainHead(allocator)
        # Parser state (see the module docstring).
        self._need = _IDLE
        self._status = 0
        self._rearm = _IDLE
        self._d1 = 0
        self._time = 0
        self._group = 0
        self._sysex = bytearray(allocator.buffer_size)
        self._sysex_len = 0
        self._sysex_chunked = False
        # Counters.
        self.messages = 0
        self.realtime = 0
        self.sysex = 0
        self.sysex_chunks = 0
        self.passthrough = 0
        self.raw_events = 0
        self.raw_bytes = 0
        self.stray = 0
        self.stray_eox = 0
        self.truncated = 0
        self.undefined = 0
        self.discarded = 0
        self.lost = 0

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, for status reports."""
        return {
            "messages": self.messages,
            "realtime": self.realtime,
            "sysex": self.sysex,
            "sysex_chunks": self.sysex_chunks,
            "passthrough": self.passthrough,
            "raw_events": self.raw_events,
            "raw_bytes": self.raw_bytes,
            "stray": self.stray,
            "stray_eox": self.stray_eox,
            "truncated": self.truncated,
            "undefined": self.undefined,
            "discarded": self.discarded,
            "lost": self.lost,
        }

    @property
    def running_status(self) -> int:
        """The running status byte now in force, or 0."""
        return self._status if 0 < self._need < _IN_SYSEX and self._rearm else 0

    # -- IMXF ----------------------------------------------------------------

    def set_state(self, state: KSState) -> None:
        """Change state; STOP resets the parser and running status."""
        tail: Optional[KernelEvent] = None
        with self._lock:
            super().set_state(state)
            if self.state is KSState.STOP:
                tail = self._reset()
        if tail is not None:
            self._output.put_message(tail)

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Parse a chain of raw (INCOMPLETE) events; pass COMPLETE ones on.

        Ownership of the chain moves here; the messages found go downstream as
        one chain.
        """
        if evt is None:
            return
        if self.state is KSState.STOP:
            self.discarded += evt.chain_length()
            self.allocator.put_message(evt)
            return
        with self._lock:
            out = self._parse(evt)
        if out is not None:
            self._output.put_message(out)

    # -- the parser ------------------------------------------------------------

    def _reset(self) -> Optional[KernelEvent]:
        """Forget the message in progress; return the final chunk of a cut SysEx chain, if any."""
        tail: Optional[KernelEvent] = None
        if self._need == _IN_SYSEX:
            self.truncated += 1
            if self._sysex_chunked:
                tail = self._sysex_event(self._sysex_len, self._time, self._group, EVENT_COMPLETE)
        self._need = _IDLE
        self._status = 0
        self._rearm = _IDLE
        self._sysex_len = 0
        self._sysex_chunked = False
        return tail

    def _refill(self, tail: KernelEvent) -> Optional[KernelEvent]:
        """Take more output events and link them after ``tail``; None (counted) when exhausted."""
        alloc = self.allocator
        try:
            chain = alloc.get_chain(REFILL)
        except AllocatorExhausted:
            try:
                chain = alloc.get_message()
            except AllocatorExhausted:
                self.lost += 1
                return None
        tail.next_evt = chain
        return chain

    def _sysex_event(self, n: int, t: int, group: int, flags: int) -> Optional[KernelEvent]:
        """An event holding the first ``n`` collected SysEx bytes; None (counted) when exhausted."""
        alloc = self.allocator
        try:
            e = alloc.get_message()
        except AllocatorExhausted:
            self.lost += 1
            return None
        try:
            e.set_data(self._sysex, 0, n)
        except AllocatorExhausted:
            alloc.put_message(e)
            self.lost += 1
            return None
        e.pres_time_100ns = t
        e.channel_group = group
        e.flags = flags
        self.sysex_chunks += 1
        return e

    def _parse(self, evt: KernelEvent) -> Optional[KernelEvent]:
        """Run the chain through the parser; return the output chain (or None)."""
        head = self._head
        tail: KernelEvent = head
        spare: Optional[KernelEvent] = None  # invariant: tail.next_evt is spare
        raw: Optional[KernelEvent] = None  # consumed raw events, to return in one put
        start_t = _START
        rearm_t = _REARM
        kind_t = STATUS_KIND
        refill = self._refill
        need = self._need
        status = self._status
        rearm = self._rearm
        d1 = self._d1
        mt = self._time
        mg = self._group
        sx = self._sysex
        sxcap = len(sx)
        sxlen = self._sysex_len
        chunked = self._sysex_chunked
        emitted = 0  # short messages (realtime included) taken from the spare chain
        nrt = nstray = ntrunc = nraw = nbytes = npass = 0
        e: Optional[KernelEvent] = evt
        try:
            while e is not None:
                nxt = e.next_evt
                if (e.flags & _INCOMPLETE_RAW) != EVENT_INCOMPLETE:
                    # COMPLETE (or a package): straight through, in order.
                    tail.next_evt = e
                    e.next_evt = spare
                    tail = e
                    npass += 1
                    e = nxt
                    continue
                t = e.pres_time_100ns
                g = e.channel_group
                xb = e.buffer
                cb = e.cb_event
                nraw += 1
                nbytes += cb
                for b in (e.inline if xb is None else xb)[:cb]:
                    if b < 0x80:
                        if need == 2:
                            need = rearm
                            m = spare
                            if m is None:
                                m = spare = refill(tail)
                                if m is None:
                                    continue
                            spare = m.next_evt
                            tail = m
                            ib = m.inline
                            ib[0] = status
                            ib[1] = d1
                            ib[2] = b
                            m.cb_event = 3
                            m.pres_time_100ns = mt
                            m.channel_group = mg
                            emitted += 1
                        elif need == 4:
                            mt = t
                            mg = g
                            d1 = b
                            need = 2
                        elif need == 6:
                            if sxlen == sxcap:
                                # The scratch is full and the SysEx goes on: out with the chunk.
                                x = self._sysex_event(sxlen, mt, mg, EVENT_INCOMPLETE)
                                if x is not None:
                                    tail.next_evt = x
                                    x.next_evt = spare
                                    tail = x
                                chunked = True
                                sxlen = 0
                            sx[sxlen] = b
                            sxlen += 1
                        elif need == 1:
                            d1 = b
                            need = 2
                        elif need == 5 or need == 3:
                            if need == 5:
                                mt = t
                                mg = g
                            else:
                                need = rearm
                            m = spare
                            if m is None:
                                m = spare = refill(tail)
                                if m is None:
                                    continue
                            spare = m.next_evt
                            tail = m
                            ib = m.inline
                            ib[0] = status
                            ib[1] = b
                            m.cb_event = 2
                            m.pres_time_100ns = mt
                            m.channel_group = mg
                            emitted += 1
                        else:
                            nstray += 1
                    elif b >= 0xF8:
                        # Real time: out now, state untouched.
                        m = spare
                        if m is None:
                            m = spare = refill(tail)
                            if m is None:
                                continue
                        spare = m.next_evt
                        tail = m
                        m.inline[0] = b
                        m.cb_event = 1
                        m.pres_time_100ns = t
                        m.channel_group = g
                        emitted += 1
                        nrt += 1
                    else:
                        # A status byte ends whatever is in progress.
                        if need == 6:
                            if b == EOX:
                                if sxlen == sxcap:
                                    x = self._sysex_event(sxlen, mt, mg, EVENT_INCOMPLETE)
                                    if x is not None:
                                        tail.next_evt = x
                                        x.next_evt = spare
                                        tail = x
                                    sxlen = 0
                                sx[sxlen] = b
                                x = self._sysex_event(sxlen + 1, mt, mg, EVENT_COMPLETE)
                                if x is not None:
                                    tail.next_evt = x
                                    x.next_evt = spare
                                    tail = x
                                    self.sysex += 1
                                    self.messages += 1
                                need = 0
                                sxlen = 0
                                chunked = False
                                continue
                            ntrunc += 1
                            if chunked:
                                x = self._sysex_event(sxlen, mt, mg, EVENT_COMPLETE)
                                if x is not None:
                                    tail.next_evt = x
                                    x.next_evt = spare
                                    tail = x
                            sxlen = 0
                            chunked = False
                        elif 0 < need < 4:
                            ntrunc += 1
                        if b < 0xF0 or start_t[b]:
                            # Channel status, or system common with data bytes.
                            status = b
                            need = start_t[b]
                            rearm = rearm_t[b]
                            mt = t
                            mg = g
                        elif b == SYSEX:
                            need = 6
                            sx[0] = b
                            sxlen = 1
                            mt = t
                            mg = g
                        else:
                            need = 0
                            kind = kind_t[b]
                            if kind == KIND_COMMON:
                                # F6, tune request: a whole message in one byte.
                                m = spare
                                if m is None:
                                    m = spare = refill(tail)
                                    if m is None:
                                        continue
                                spare = m.next_evt
                                tail = m
                                m.inline[0] = b
                                m.cb_event = 1
                                m.pres_time_100ns = t
                                m.channel_group = g
                                emitted += 1
                            elif b == EOX:
                                self.stray_eox += 1
                            else:
                                self.undefined += 1
                e.next_evt = raw
                raw = e
                e = nxt
        except BaseException:
            # Nothing may leak: hand everything back and start clean.
            alloc = self.allocator
            tail.next_evt = None
            if spare is not None:
                alloc.put_message(spare)
            out = head.next_evt
            head.next_evt = None
            for chain in (out, raw, e):
                if chain is not None:
                    alloc.put_message(chain)
            self._need = _IDLE
            self._status = 0
            self._rearm = _IDLE
            self._sysex_len = 0
            self._sysex_chunked = False
            raise
        tail.next_evt = None
        out = head.next_evt
        head.next_evt = None
        self._need = need
        self._status = status
        self._rearm = rearm
        self._d1 = d1
        self._time = mt
        self._group = mg
        self._sysex_len = sxlen
        self._sysex_chunked = chunked
        self.messages += emitted
        self.realtime += nrt
        self.stray += nstray
        self.truncated += ntrunc
        self.raw_events += nraw
        self.raw_bytes += nbytes
        self.passthrough += npass
        alloc = self.allocator
        if spare is not None or raw is not None:
            # One lock for both: the leftover spare events and the raw events read.
            if spare is not None:
                if raw is not None:
                    last = spare
                    while last.next_evt is not None:
                        last = last.next_evt
                    last.next_evt = raw
                alloc.put_message(spare)
            else:
                alloc.put_message(raw)
        return out
