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
  SysEx; the chunks themselves stay in order.  A SysEx of up to 8 bytes sits
  inline, like any short event.
* A SysEx cut by another status is counted as truncated.  If none of it has
  gone out, it is dropped.  If chunks already went out, the bytes still held
  go out as a final COMPLETE chunk (not ending in F7), so nothing downstream
  waits for a continuation that will never come; a consumer recognises the
  truncation by the missing F7.  STOP ends such a chain the same way.

Messages leave in the order they complete, COMPLETE events passed through
keeping their place among them.  When the allocator is exhausted, messages
that find no event are dropped and counted as ``lost``.

States: in STOP the parser resets (running status included; a message cut
short counts as truncated) and whatever is given is returned to the
allocator and counted as ``discarded``; the other states parse (the miniport
decides what to capture).

Speed: each chain is handled in two passes under one lock.  Pass 1 runs the
state machine over the bytes, with all state in locals (loaded from and
stored to one tuple per chain), and notes each short message as a small
record; SysEx chunks and COMPLETE events already are events and keep their
place.  Pass 2 returns the raw events and takes exactly as many events as
there are records in one :meth:`~mxfd.core.allocator.Allocator.exchange`
(one allocator lock per chain, nothing taken in vain), fills them and links
them in order.  A full 8-byte raw event is read in place, without a slice.
The whole burst goes downstream as one ``next_evt`` chain.  One thread
drives a sink at a time; the lock keeps ``set_state`` from racing it.
"""

from __future__ import annotations

import threading
from typing import Final, Optional

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE, PACKAGE_EVENT, KernelEvent
from mxfd.core.midi import DATA_LENGTH, EOX, KIND_CHANNEL, KIND_COMMON, STATUS_KIND, SYSEX
from mxfd.core.mxf import KSState, MXFNode

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
_STOPPED: Final = KSState.STOP  # bound once: an enum member lookup costs as much as a dozen bytecodes
#: ``_CUT[need]``: 1 when a status byte arriving in that state cuts a message short (SysEx aside).
_CUT: Final = (0, 1, 1, 1, 0, 0, 0)
#: Pass-1 record of an event that already exists (its place in the output order).
_PREBUILT: Final = (0, 0, 0, 0, 0, 0)
#: Parser state at rest: (need, status, rearm, d1, time, group, sysex length, sysex chunked).
_CLEAN: Final = (_IDLE, 0, _IDLE, 0, 0, 0, 0, False)


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
        # Parser state (see the module docstring), one tuple: loaded and stored once per chain.
        self._state: tuple[int, int, int, int, int, int, int, bool] = _CLEAN
        self._sysex = bytearray(allocator.buffer_size)
        self._records: list[tuple[int, int, int, int, int, int]] = []
        self._prebuilt: list[KernelEvent] = []
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
        need, status, rearm = self._state[:3]
        return status if 0 < need < _IN_SYSEX and rearm else 0

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
        if self.state is _STOPPED:
            self.discarded += evt.chain_length()
            self.allocator.put_message(evt)
            return
        if evt.next_evt is None and (evt.flags & _INCOMPLETE_RAW) != EVENT_INCOMPLETE:
            # One COMPLETE event (a miniport that parses, one message per call): no parsing.
            self.passthrough += 1
            self._output.put_message(evt)
            return
        lock = self._lock
        lock.acquire()
        try:
            out = self._parse(evt)
        finally:
            lock.release()
        if out is not None:
            self._output.put_message(out)

    # -- the parser ------------------------------------------------------------

    def _reset(self) -> Optional[KernelEvent]:
        """Forget the message in progress; return the final chunk of a cut SysEx chain, if any."""
        tail: Optional[KernelEvent] = None
        need, _, _, _, t, group, sxlen, chunked = self._state
        if need == _IN_SYSEX:
            self.truncated += 1
            if chunked:
                tail = self._sysex_event(sxlen, t, group, EVENT_COMPLETE)
        elif 0 < need < _RUN_2:
            self.truncated += 1
        self._state = _CLEAN
        return tail

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
        """Run the chain through the parser; return the output chain (or None).

        Pass 1 parses and notes each short message as a record (its events
        are not taken yet); pass 2 takes exactly that many events in one
        ``get_chain`` and fills them, linking in order the events that already
        exist (COMPLETE ones passed through, SysEx chunks).
        """
        recs = self._records
        rec = recs.append
        pre = self._prebuilt
        start_t = _START
        rearm_t = _REARM
        kind_t = STATUS_KIND
        cut_t = _CUT
        need, status, rearm, d1, mt, mg, sxlen, chunked = self._state
        sx = self._sysex
        sxcap = len(sx)
        raw: Optional[KernelEvent] = None  # consumed raw events, returned in one put
        nstray = ntrunc = nraw = nbytes = nrt = 0
        e: Optional[KernelEvent] = evt
        try:
            while e is not None:
                nxt = e.next_evt
                if (e.flags & _INCOMPLETE_RAW) != EVENT_INCOMPLETE:
                    # COMPLETE (or a package): straight through, in order.
                    rec(_PREBUILT)
                    pre.append(e)
                    self.passthrough += 1
                    e = nxt
                    continue
                t = e.pres_time_100ns
                g = e.channel_group
                xb = e.buffer
                cb = e.cb_event
                nraw += 1
                nbytes += cb
                if xb is None:
                    # A full inline event is read in place; anything shorter costs a slice.
                    src = e.inline if cb == 8 else e.inline[:cb]
                else:
                    src = xb[:cb]
                for b in src:
                    if b < 0x80:
                        if need == 2:
                            rec((mt, mg, 3, status, d1, b))
                            need = rearm
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
                                    rec(_PREBUILT)
                                    pre.append(x)
                                chunked = True
                                sxlen = 0
                            sx[sxlen] = b
                            sxlen += 1
                        elif need == 1:
                            d1 = b
                            need = 2
                        elif need == 5:
                            rec((t, g, 2, status, b, 0))
                        elif need == 3:
                            rec((mt, mg, 2, status, b, 0))
                            need = rearm
                        else:
                            nstray += 1
                    elif b >= 0xF8:
                        # Real time: out now, state untouched.
                        rec((t, g, 1, b, 0, 0))
                        nrt += 1
                    else:
                        # A status byte ends whatever is in progress.
                        if need == 6:
                            if b == EOX:
                                if sxlen == sxcap:
                                    x = self._sysex_event(sxlen, mt, mg, EVENT_INCOMPLETE)
                                    if x is not None:
                                        rec(_PREBUILT)
                                        pre.append(x)
                                    sxlen = 0
                                sx[sxlen] = b
                                x = self._sysex_event(sxlen + 1, mt, mg, EVENT_COMPLETE)
                                if x is not None:
                                    rec(_PREBUILT)
                                    pre.append(x)
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
                                    rec(_PREBUILT)
                                    pre.append(x)
                            sxlen = 0
                            chunked = False
                        else:
                            ntrunc += cut_t[need]
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
                                rec((t, g, 1, b, 0, 0))
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
            for chain in (raw, e):
                if chain is not None:
                    alloc.put_message(chain)
            for x in pre:
                x.next_evt = None
                alloc.put_message(x)
            recs.clear()
            pre.clear()
            self._state = _CLEAN
            raise
        self._state = (need, status, rearm, d1, mt, mg, sxlen, chunked)
        if nstray or ntrunc or nrt:
            self.stray += nstray
            self.truncated += ntrunc
            self.realtime += nrt
        self.raw_events += nraw
        self.raw_bytes += nbytes
        # Pass 2: the raw events go back and exactly the events needed come out, under one lock.
        nshort = len(recs) - len(pre)
        alloc = self.allocator
        whole = True
        try:
            m = alloc.exchange(raw, nshort)
        except AllocatorExhausted:
            m = self._what_is_left(nshort)
            whole = False
        if not recs:
            return None
        if whole and not pre:
            # Short messages only, and an event for each: the chain is linked already.
            assert m is not None
            out = c = m
            for t, g, n, s, x1, x2 in recs:
                ib = c.inline
                ib[0] = s
                ib[1] = x1
                ib[2] = x2
                c.cb_event = n
                c.pres_time_100ns = t
                c.channel_group = g
                c = c.next_evt  # type: ignore[assignment]  # None only after the last record
            self.messages += nshort
            recs.clear()
            return out
        head = self._head
        tail: KernelEvent = head
        j = lost = 0
        for t, g, n, s, x1, x2 in recs:
            if n:
                if m is None:
                    lost += 1
                    continue
                ib = m.inline
                ib[0] = s
                ib[1] = x1
                ib[2] = x2
                m.cb_event = n
                m.pres_time_100ns = t
                m.channel_group = g
                x = m
                m = m.next_evt
            else:
                x = pre[j]
                j += 1
            tail.next_evt = x
            tail = x
        tail.next_evt = None
        first = head.next_evt
        head.next_evt = None
        self.messages += nshort - lost
        if lost:
            self.lost += lost
        recs.clear()
        pre.clear()
        return first

    def _what_is_left(self, n: int) -> Optional[KernelEvent]:
        """The pool is short of ``n`` events: take what it has (the rest of the messages are lost)."""
        alloc = self.allocator
        left = min(n, alloc.available())
        if not left:
            return None
        try:
            return alloc.get_chain(left)
        except AllocatorExhausted:  # another thread was quicker
            return None
