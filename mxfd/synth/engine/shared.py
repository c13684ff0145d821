"""The offline render on two cores: each span's voices shared with a helper thread.

Theory of operation
-------------------
``mxfd render`` has a length, not a deadline, and the machine usually has a
second core idle.  :class:`VoiceHelper` starts one thread that runs a
compiled loop (:func:`helper_loop`) and never comes back to Python until it
is stopped; the synth starts it with the first block that has
:data:`~mxfd.synth.engine.layout.MIN_SHARED_VOICES` voices in use, and from
then on it spins, a core's worth of CPU time, until the render ends.  :func:`render_block_shared` is
:func:`~mxfd.synth.engine.block.render_block` with each span between two
events shared out by voice slot: the caller renders the lower half of the
slots into the state's buses, the helper the upper half into buses of its own, and the caller
waits for the helper before it applies the next event (an event may start,
release or steal any voice, so events are applied while the helper waits).
Every voice column and every bus has one writer at a time, so nothing is
locked; the handshake is a sequence number in a shared int64 array, stored
with release and loaded with acquire ordering (:mod:`.atomics`), and both
sides spin on it.  A span with few voices is rendered by the caller alone, as
the handshake costs about a microsecond.  At the block's end the helper's
buses are added to the caller's: the same voices summed in another order,
which changes the float rounding and nothing else.

The live daemon does not share its blocks: a block there has a deadline on
one core, and the other core belongs to the rest of the process.
"""

from __future__ import annotations

import threading
import weakref
from typing import Final

import numba
import numpy as np
import numpy.typing as npt

from mxfd.synth.engine import layout as L
from mxfd.synth.engine import voice as vc
from mxfd.synth.engine.atomics import load_acquire, spin_pause, store_release
from mxfd.synth.engine.block import next_split, settle
from mxfd.synth.engine.channels import apply_message

# the handshake's fields
C_POSTED: Final = 0  # sequence number of the last span posted by the caller
C_DONE: Final = 8  # of the last span the helper finished (a cache line away from C_POSTED)
C_FROM: Final = 16
C_TO: Final = 17
C_FIRST: Final = 18  # the helper's voice slots: [C_FIRST, C_END)
C_END: Final = 19
C_STOP: Final = 20
C_SIZE: Final = 24
#: Voice fields are rows and voices columns, so neighbouring slots share cache lines: the two shares
#: are split on a line's boundary (8 float64s), or the cores would pass lines to and fro all the time.
SLOTS_PER_LINE: Final = 8


@numba.njit(nogil=True, cache=True)
def helper_loop(st, ctl, out) -> None:  # type: ignore[no-untyped-def]
    """Render each posted span's share of the voices into ``out`` until told to stop."""
    seen = load_acquire(ctl, C_DONE)
    while True:
        posted = load_acquire(ctl, C_POSTED)
        if posted == seen:
            spin_pause()
            continue
        seen = posted
        if ctl[C_STOP]:
            store_release(ctl, C_DONE, posted)
            return
        vc.render_voice_range(st, ctl[C_FROM], ctl[C_TO], ctl[C_FIRST], ctl[C_END], out)
        store_release(ctl, C_DONE, posted)


@numba.njit(nogil=True, cache=True)
def post(ctl, a: int, b: int, first: int, end: int, stop: int) -> int:  # type: ignore[no-untyped-def]
    """Post samples ``[a, b)`` of slots ``[first, end)`` (or the stop) to the helper; the sequence number."""
    seq = ctl[C_POSTED] + 1
    ctl[C_FROM] = a
    ctl[C_TO] = b
    ctl[C_FIRST] = first
    ctl[C_END] = end
    ctl[C_STOP] = stop
    store_release(ctl, C_POSTED, seq)
    return int(seq)


@numba.njit(nogil=True, cache=True)
def _render_span(st, a: int, b: int, ctl, out2) -> bool:  # type: ignore[no-untyped-def]
    high = st.counters[L.K_HIGH_WATER]
    if high < L.MIN_SHARED_VOICES:
        vc.render_voices(st, a, b)
        return False
    mid = (high // 2 + SLOTS_PER_LINE - 1) // SLOTS_PER_LINE * SLOTS_PER_LINE
    seq = post(ctl, a, b, mid, high, 0)
    vc.render_voice_range(st, a, b, 0, mid, st.out)
    while load_acquire(ctl, C_DONE) != seq:
        spin_pause()
    return True


@numba.njit(nogil=True, cache=True)
def render_block_shared(st, n_events: int, n: int, ctl, out2) -> int:  # type: ignore[no-untyped-def]
    """:func:`~mxfd.synth.engine.block.render_block`, each span's upper slots rendered by the helper."""
    counters = st.counters
    out = st.out
    out[:, :n] = 0.0
    if counters[L.K_HIGH_WATER] == 0 and n_events == 0:
        counters[L.K_SOUNDING] = 0
        return 0
    out2[:, :n] = 0.0
    shared = False
    pos = 0
    e = 0
    while True:
        e, nxt = next_split(st, e, n_events, pos, n)
        if nxt > pos:
            shared |= _render_span(st, pos, nxt, ctl, out2)
            pos = nxt
        if e >= n_events:
            break
        apply_message(st.ev_base[e], st.ev_length[e], st.ev_data[e], st)
        e += 1
    if shared:
        out[:, :n] += out2[:, :n]
    return settle(st)


class VoiceHelper:
    """The helper thread of one engine state, from :meth:`start` until :meth:`stop` (or the state's end)."""

    def __init__(self, state: L.EngineState, buses: npt.NDArray[np.float64]) -> None:
        self.state = state
        self.ctl = np.zeros(C_SIZE, np.int64)
        self.out = np.zeros_like(buses)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            # The thread holds the arrays, not this object, so that dropping it stops the thread.
            self._thread = threading.Thread(
                target=helper_loop, args=(self.state, self.ctl, self.out), name="mxfd-voice-helper", daemon=True
            )
            self._thread.start()
            weakref.finalize(self, _stop, self.ctl, self._thread)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def render_block(self, n_events: int, n: int) -> int:
        return int(render_block_shared(self.state, n_events, n, self.ctl, self.out))

    def stop(self) -> None:
        if self._thread is not None:
            _stop(self.ctl, self._thread)
            self._thread = None


def _stop(ctl: npt.NDArray[np.int64], thread: threading.Thread) -> None:
    if thread.is_alive():
        post(ctl, 0, 0, 0, 0, 1)
        thread.join()
