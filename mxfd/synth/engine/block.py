"""The render entry: one compiled call per block, events applied at their own sample offsets.

Theory of operation
-------------------
:func:`render_block` zeroes the block's four buses (left, right, chorus
send, reverb send), then walks the block's events in order: the voices are
rendered up to the next event's offset, the event is applied there (it may
start, release or change voices), and so on to the block's end.  An event
for a channel with no voice in use goes in with the span's start instead
(:func:`next_split`): a stream of controllers for silent channels does not
cut every voice's render into pieces.  A block
with no voice in use costs the zeroing and nothing else.  Voices that end
free their slot; the high-water mark of used slots shrinks with them, so
the voice loops stay as short as the polyphony actually used.
"""

from __future__ import annotations

import numba

from mxfd.synth.engine import voice as vc
from mxfd.synth.engine.channels import apply_message, must_apply_in_place
from mxfd.synth.engine.layout import K_HIGH_WATER, K_SOUNDING, K_VOICES_PEAK, PLAYING, STATUS


@numba.njit(nogil=True, cache=True)
def render_block(st, n_events: int, n: int) -> int:  # type: ignore[no-untyped-def]
    """Render ``n`` frames into ``out[:, :n]`` (float64, 4 buses), applying ``n_events`` events; voices sounding."""
    counters = st.counters
    out = st.out
    if counters[K_HIGH_WATER] == 0 and n_events == 0:
        out[:, :n] = 0.0
        counters[K_SOUNDING] = 0
        return 0
    out[:, :n] = 0.0
    pos = 0
    e = 0
    while True:
        e, nxt = next_split(st, e, n_events, pos, n)
        if nxt > pos:
            vc.render_voices(st, pos, nxt)
            pos = nxt
        if e >= n_events:
            break
        apply_message(st.ev_base[e], st.ev_length[e], st.ev_data[e], st)
        e += 1
    return settle(st)


@numba.njit(nogil=True, cache=True)
def next_split(st, e: int, n_events: int, pos: int, n: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """From event ``e`` at sample ``pos``: the next event to apply in place, and the sample it splits at.

    The events before it that no sounding voice hears (``must_apply_in_place``) are applied on the
    way, so they do not split the voices' span; with no event left, the split is the block's end.
    """
    while e < n_events and st.ev_offset[e] > pos and not must_apply_in_place(
        st.ev_base[e], st.ev_length[e], st.ev_data[e], st
    ):
        apply_message(st.ev_base[e], st.ev_length[e], st.ev_data[e], st)
        e += 1
    if e < n_events:
        return e, min(max(st.ev_offset[e], pos), n)
    return e, n


@numba.njit(nogil=True, cache=True)
def settle(st) -> int:  # type: ignore[no-untyped-def]
    """After a block: the high-water mark down to the last voice in use, and the voices sounding counted."""
    counters = st.counters
    high = counters[K_HIGH_WATER]
    while high > 0 and st.vi[STATUS, high - 1] != PLAYING:
        high -= 1
    counters[K_HIGH_WATER] = high
    sounding = 0
    for v in range(high):
        if st.vi[STATUS, v] == PLAYING:
            sounding += 1
    counters[K_SOUNDING] = sounding
    if sounding > counters[K_VOICES_PEAK]:
        counters[K_VOICES_PEAK] = sounding
    return sounding
