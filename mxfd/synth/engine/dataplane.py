"""The data plane: one compiled call per audio cycle, fed by a lock-free event ring.

Theory of operation
-------------------
The control plane (Python: the transport, the sequencer, the miniport's
intake) and the data plane (compiled, called from the audio callback, where
no Python may run) share a :class:`DataPlane`: a numba structref holding the
voice engine's state, the master section's arrays and two queues.

* The **event ring** carries what the control plane releases, in order:
  each record is two ``int64`` words, the sample frame it is due at on the
  output's clock and a packed message (kind, first channel of the group,
  length, three bytes; see :func:`pack`).  Kind :data:`MSG` is a MIDI
  message; :data:`SOUND_OFF` silences every voice and resets every
  channel (stop, shutdown), as a System Reset of each group in its place
  among the events; :data:`BANK` swaps in the engine state the control
  plane put in ``next`` (another font; see below).  The
  control plane is the only writer of ``write`` and of the records ahead of
  it, the callback the only writer of ``read``: one producer, one consumer,
  aligned 8-byte counters, records written before the counter that
  publishes them (x86-64 keeps stores in order; see
  :mod:`mxfd.io.shm_frames` for the same argument).  A full ring drops the
  record and counts it; nothing waits.
* The **thru queue** holds what the callback itself read from its MIDI
  inputs at the start of the cycle (:func:`hold_thru`), to be played in
  this very cycle at the frame it came at.  The cycle's output leaves one
  period later, so a key is heard exactly one period after it was played:
  the physical limit of constant latency through JACK.

* **A new bank** is a whole engine state, built on the control plane and
  offered in the plane's ``next`` field (``prod[P_BANK]`` counts the
  offers), then a :data:`BANK` record.  At a chunk's start the callback
  carries every channel's state over to it, looks the presets up in its
  font and makes it the engine; the old one goes on as ``retiring``: it
  gets the same events with note-ons turned into note-offs, so a held note
  sounds on from the old font until it is released, and its buses are
  mixed into the new engine's before the master section.  Only one state
  retires at a time (a swap during a swap cuts the older one's tails).
  ``cons[C_SWAPS]`` names the engine (the number of the offer it came
  from), ``cons[C_RETIRED]`` the state ``retiring`` refers to, and
  ``cons[C_RETIRING]`` whether it still sounds: the control plane keeps
  every state any of those name alive, so the callback never frees one.

:func:`run_cycle` renders ``n`` frames from frame ``frame``: per engine
chunk it takes the ring's records and the held thru events due before the
chunk's end, merged by frame (a record already late plays at the chunk's
start and is counted), renders the voices with every event at its own
sample, runs the master section, and writes the two output buffers.  With
no voice sounding, no event due and the effect tails silent it writes zeros
and does nothing else.
"""

from __future__ import annotations

from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt
from numba.core import cgutils, types
from numba.experimental import structref
from numba.extending import intrinsic

from mxfd.synth.engine import layout as L
from mxfd.synth.engine.block import render_block
from mxfd.synth.engine.channels import CHANNELS_PER_GROUP, SYSTEM_RESET, resolve_all
from mxfd.synth.master import L_CHORUS_TAIL, L_REVERB_TAIL, Master, master_process

#: Record kinds.
MSG: Final = 0
SOUND_OFF: Final = 1
BANK: Final = 2

# producer-side counters (the control plane writes them)
P_WRITE: Final = 0
P_DROPS: Final = 1
P_BANK: Final = 2  # engine states offered in ``next`` so far
# consumer-side counters (the callback writes them)
C_READ: Final = 0
C_LATE: Final = 1  # records that came after their frame had been rendered
C_CYCLES: Final = 2
C_POSITION: Final = 3  # the frame the next cycle starts at
C_HIGH: Final = 4  # the most records waiting in the ring at the start of a cycle
C_THRU: Final = 5  # thru events played
C_THRU_DROPS: Final = 6  # thru events beyond the queue's room
C_EVENTS: Final = 7  # records applied
C_SWAPS: Final = 8  # the offer the engine came from (0: the first engine)
C_RETIRED: Final = 9  # the offer ``retiring`` came from
C_RETIRING: Final = 10  # 1 while ``retiring`` has voices sounding
N_COUNTERS: Final = 11
NOTE_ON: Final = 0x90


def pack(kind: int, base: int, length: int, b0: int, b1: int, b2: int) -> int:
    """One ring record's message word."""
    return (kind << 56) | (base << 40) | (length << 32) | (b0 << 16) | (b1 << 8) | b2


@structref.register
class DataPlaneType(types.StructRef):
    def preprocess_fields(self, fields: Any) -> Any:
        return tuple((name, types.unliteral(typ)) for name, typ in fields)  # type: ignore[no-untyped-call]


class DataPlane(structref.StructRefProxy):
    """What the audio callback renders with (see the module docstring)."""


FIELDS: Final = (
    "engine", "next", "retiring",
    # the master section's arguments after (bus, out, m), as Master.arguments() gives them
    "mix", "lim", "reverb_on", "combs", "comb_len", "comb_pos", "comb_store", "allpasses", "ap_len", "ap_pos",
    "rstate", "chorus_on", "line", "cstate",
    # the event ring, its counters, the thru queue (frame offset, first channel, length, bytes) and its length
    "ring", "prod", "cons", "thru", "thru_n", "frames", "groups",
)  # fmt: skip

structref.define_proxy(DataPlane, DataPlaneType, list(FIELDS))  # type: ignore[no-untyped-call]


@numba.njit(cache=True)
def _construct(  # type: ignore[no-untyped-def]
    engine, next_engine, retiring, mix, lim, reverb_on, combs, comb_len, comb_pos, comb_store, allpasses, ap_len,
    ap_pos, rstate, chorus_on, line, cstate, ring, prod, cons, thru, thru_n, frames, groups,
):
    return DataPlane(  # type: ignore[no-untyped-call]
        engine, next_engine, retiring, mix, lim, reverb_on, combs, comb_len, comb_pos, comb_store, allpasses, ap_len,
        ap_pos, rstate, chorus_on, line, cstate, ring, prod, cons, thru, thru_n, frames, groups,
    )


def _meminfo_address_of(typingctx: Any, ref: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        proxy = cgutils.create_struct_proxy(signature.args[0])(context, builder, value=args[0])  # type: ignore[no-untyped-call]
        return builder.ptrtoint(proxy.meminfo, cgutils.intp_t)

    return types.intp(ref), codegen


_meminfo_address: Any = intrinsic(_meminfo_address_of)


@numba.njit(cache=True)
def _address(dp):  # type: ignore[no-untyped-def]
    return _meminfo_address(dp)


def address(dp: DataPlane) -> int:
    """The address compiled code turns back into ``dp`` with :func:`from_address` (``dp`` must stay alive)."""
    return int(_address(dp))


def from_address_of(typ: Any) -> Any:
    """A compiled function ``f(address) -> DataPlane`` of type ``typ`` (``numba.typeof`` of a plane)."""

    def from_address(typingctx: Any, addr: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            proxy = cgutils.create_struct_proxy(typ)(context, builder)  # type: ignore[no-untyped-call]
            proxy.meminfo = builder.inttoptr(args[0], proxy.meminfo.type)
            value = proxy._getvalue()
            context.nrt.incref(builder, typ, value)  # the caller's reference, released at its end
            return value

        return typ(addr), codegen

    return intrinsic(from_address)


def plane_type() -> Any:
    """The numba type of every plane :func:`new_dataplane` makes (for code compiled before any plane exists)."""
    from types import SimpleNamespace

    from mxfd.synth.soundfont.generators import N_GENERATORS

    one = np.zeros(0)
    tables = SimpleNamespace(max_voices=1, generators=np.zeros((0, N_GENERATORS)))
    for name in L.FIELDS:
        if not hasattr(tables, name):
            setattr(tables, name, one)
    empty = SimpleNamespace(tables=tables, samples=SimpleNamespace(data=np.zeros(0, np.int16), low=None))
    engine, _ = L.new_state(empty, voices=1, channels=16, events=1, block=16, rate=48000.0, gain=1.0)  # type: ignore[arg-type]
    dp, _ = new_dataplane(engine, Master(48000, 16, True), frames=16, groups=1, ring_records=1, thru_events=1)
    return numba.typeof(dp)  # type: ignore[no-untyped-call]


def new_dataplane(engine: Any, master: Master, *, frames: int, groups: int, ring_records: int = 8192,
                  thru_events: int = 1024) -> tuple[DataPlane, dict[str, npt.NDArray[Any]]]:
    """A plane over ``engine`` (an EngineState) and ``master``'s arrays; also its own arrays by name."""
    arrays: dict[str, npt.NDArray[Any]] = {
        "ring": np.zeros((ring_records, 2), np.int64),
        "prod": np.zeros(8, np.int64),
        "cons": np.zeros(N_COUNTERS, np.int64),
        "thru": np.zeros((thru_events, 4), np.int64),
        "thru_n": np.zeros(1, np.int64),
        "frames": np.zeros((frames, 2), np.float32),
    }
    names = ("ring", "prod", "cons", "thru", "thru_n", "frames")
    dp = _construct(engine, engine, engine, *master.arguments(), *(arrays[k] for k in names), groups)  # type: ignore[call-arg]
    return dp, arrays


def load_control_calls(dp: DataPlane, engine: Any) -> None:
    """Load (or, on a first start, compile) every signature the control plane calls these with, now.

    A signature first needed later (a bank reload, the void rendering while no server plays the
    pin) would compile then, holding the GIL for a second or more while the daemon runs.
    """
    plane, state = numba.typeof(dp), numba.typeof(engine)  # type: ignore[no-untyped-call]
    buffer = types.Array(types.float32, 1, "C")
    offer.compile((plane, state))
    run_cycle.compile((plane, types.uint32, buffer, buffer))


@numba.njit(cache=True)
def offer(dp, engine) -> None:  # type: ignore[no-untyped-def]
    """Put ``engine`` in ``next`` for a :data:`BANK` record to swap in (the control plane; then push the record)."""
    dp.next = engine
    dp.prod[P_BANK] += 1


@numba.njit(nogil=True, cache=True)
def _swap(dp) -> None:  # type: ignore[no-untyped-def]
    """Make the offered state the engine, its channels the old one's; the old one retires (see the docstring)."""
    cons = dp.cons
    offered = dp.prod[P_BANK]
    if offered <= cons[C_SWAPS]:
        return  # already in: a later offer replaced this one before its record came
    old = dp.engine
    new = dp.next
    # Element by element: numba's slice assignment may copy the source first (an allocation) in case it overlaps.
    for i in range(old.ci.shape[0]):
        for c in range(old.ci.shape[1]):
            new.ci[i, c] = old.ci[i, c]
    for c in range(old.cc.shape[0]):
        for i in range(old.cc.shape[1]):
            new.cc[c, i] = old.cc[c, i]
    for k in L.CUMULATIVE_COUNTERS:
        new.counters[k] = old.counters[k]
    resolve_all(new)
    dp.retiring = old
    cons[C_RETIRED] = cons[C_SWAPS]
    cons[C_RETIRING] = 1 if old.counters[L.K_HIGH_WATER] > 0 else 0
    dp.engine = new
    cons[C_SWAPS] = offered


@numba.njit(nogil=True, cache=True)
def _render_retiring(dp, eng, k: int, m: int) -> None:  # type: ignore[no-untyped-def]
    """The retiring state's voices on into the engine's buses; this chunk's events, note-ons as note-offs."""
    ret = dp.retiring
    for i in range(k):
        ret.ev_offset[i] = eng.ev_offset[i]
        ret.ev_base[i] = eng.ev_base[i]
        ret.ev_length[i] = eng.ev_length[i]
        status = eng.ev_data[i, 0]
        ret.ev_data[i, 0] = status - 0x10 if status & 0xF0 == NOTE_ON else status
        ret.ev_data[i, 1] = eng.ev_data[i, 1]
        ret.ev_data[i, 2] = eng.ev_data[i, 2]
    render_block(ret, k, m)
    for b in range(eng.out.shape[0]):
        for i in range(m):
            eng.out[b, i] += ret.out[b, i]
    if ret.counters[L.K_HIGH_WATER] == 0:
        dp.cons[C_RETIRING] = 0


@numba.njit(nogil=True, cache=True)
def hold_thru(dp, offset: int, base: int, data, length: int) -> None:  # type: ignore[no-untyped-def]
    """Queue a short message read at ``offset`` of this cycle, to play at that offset of it (in order)."""
    q = dp.thru
    row = dp.thru_n[0]
    if row >= q.shape[0]:
        dp.cons[C_THRU_DROPS] += 1
        return
    n = min(length, 3)
    q[row, 0] = offset
    q[row, 1] = base
    q[row, 2] = n
    q[row, 3] = (data[0] << 16) | ((data[1] if n > 1 else 0) << 8) | (data[2] if n > 2 else 0)
    dp.thru_n[0] = row + 1


@numba.njit(nogil=True, cache=True)
def _put(eng, row: int, offset: int, base: int, length: int, packed: int) -> None:  # type: ignore[no-untyped-def]
    eng.ev_offset[row] = offset
    eng.ev_base[row] = base
    eng.ev_length[row] = length
    eng.ev_data[row, 0] = (packed >> 16) & 0xFF
    eng.ev_data[row, 1] = (packed >> 8) & 0xFF
    eng.ev_data[row, 2] = packed & 0xFF


@numba.njit(nogil=True, cache=True)
def run_cycle(dp, n: int, left, right) -> None:  # type: ignore[no-untyped-def]
    """Render the next ``n`` frames into ``left`` and ``right`` (see the module docstring)."""
    eng = dp.engine
    cons = dp.cons
    ring = dp.ring
    cap = ring.shape[0]
    frame = cons[C_POSITION]
    w = dp.prod[P_WRITE]
    r = cons[C_READ]
    if w - r > cons[C_HIGH]:
        cons[C_HIGH] = w - r
    q = dp.thru
    held = dp.thru_n[0]
    h = 0
    chunk = eng.out.shape[1]
    room = eng.ev_offset.shape[0]
    out = dp.frames
    pos = 0
    while pos < n:
        m = min(chunk, n - pos)
        start = frame + pos
        end = start + m
        k = 0
        while k < room:
            due_ring = r < w and ring[r % cap, 0] < end
            due_thru = h < held and q[h, 0] < pos + m
            if not due_ring and not due_thru:
                break
            if due_ring and (not due_thru or ring[r % cap, 0] - frame <= q[h, 0]):
                at = ring[r % cap, 0]
                word = ring[r % cap, 1]
                kind = (word >> 56) & 0xFF
                if kind == SOUND_OFF and k + dp.groups > room:
                    break  # no room left for its resets in this chunk: the next one starts with it
                if kind == BANK:
                    if k > 0:
                        break  # the events before it play on the old engine; the next chunk starts with it
                    r += 1
                    _swap(dp)
                    eng = dp.engine
                    continue
                r += 1
                if at < start:
                    cons[C_LATE] += 1
                    at = start
                if kind == SOUND_OFF:
                    # a System Reset of every group, in order with the events around it
                    for g in range(dp.groups):
                        _put(eng, k, at - start, g * CHANNELS_PER_GROUP, 1, SYSTEM_RESET << 16)
                        k += 1
                    cons[C_EVENTS] += 1
                    continue
                _put(eng, k, at - start, (word >> 40) & 0xFFFF, (word >> 32) & 0xFF, word)
                cons[C_EVENTS] += 1
            else:
                row = h
                h += 1
                _put(eng, k, max(q[row, 0] - pos, 0), q[row, 1], q[row, 2], q[row, 3])
                cons[C_THRU] += 1
            k += 1
        cons[C_READ] = r  # the records are copied: their slots are the producer's again
        retiring = cons[C_RETIRING] != 0
        silent = eng.counters[L.K_HIGH_WATER] == 0 and k == 0 and not retiring and dp.lim[L_REVERB_TAIL] == 0.0 and (
            dp.lim[L_CHORUS_TAIL] == 0.0
        )
        if silent:
            for i in range(m):
                left[pos + i] = 0.0
                right[pos + i] = 0.0
        else:
            render_block(eng, k, m)
            if retiring:
                _render_retiring(dp, eng, k, m)
            master_process(eng.out, out, m, dp.mix, dp.lim, dp.reverb_on, dp.combs, dp.comb_len, dp.comb_pos,
                           dp.comb_store, dp.allpasses, dp.ap_len, dp.ap_pos, dp.rstate, dp.chorus_on, dp.line,
                           dp.cstate)
            for i in range(m):
                left[pos + i] = out[i, 0]
                right[pos + i] = out[i, 1]
        pos += m
    dp.thru_n[0] = 0
    cons[C_POSITION] = frame + n
    cons[C_CYCLES] += 1


class EventRing:
    """The control plane's end of a plane's event ring (one producer thread)."""

    def __init__(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self._ring = arrays["ring"]
        self._prod = arrays["prod"]
        self._cons = arrays["cons"]
        self._cap = self._ring.shape[0]

    def push(self, frame: int, word: int) -> bool:
        """Queue a record due at ``frame``; False (counted) when the ring is full."""
        w = int(self._prod[P_WRITE])
        if w - int(self._cons[C_READ]) >= self._cap:
            self._prod[P_DROPS] += 1
            return False
        slot = self._ring[w % self._cap]
        slot[0] = frame
        slot[1] = word
        self._prod[P_WRITE] = w + 1  # publishes the record written above
        return True

    @property
    def position(self) -> int:
        """The frame the data plane renders next."""
        return int(self._cons[C_POSITION])
