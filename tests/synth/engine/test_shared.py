"""The render shared with a helper thread: the same sound as one thread, and a helper that always stops."""

from __future__ import annotations

import gc
import threading

import numpy as np
import numpy.typing as npt

from mxfd.synth.engine import SoundFontSynth
from mxfd.synth.engine.block import render_block
from mxfd.synth.engine.layout import MIN_SHARED_VOICES
from mxfd.synth.engine.shared import VoiceHelper
from tests.synth.engine.helpers import RATE, synth

BLOCK = 256


def _chord(notes: int) -> list[tuple[int, bytes]]:
    """``notes`` note-ons over the first half second, on eight channels with eight programs, then their note-offs."""
    events: list[tuple[int, bytes]] = []
    for c in range(8):
        events.append((c, bytes([0xC0 | c, c * 9])))
    for k in range(notes):
        c = k % 8
        at = 16 + k * RATE // (2 * notes)
        events.append((at, bytes([0x90 | c, 40 + k % 48, 60 + k % 60])))
        events.append((at + RATE // 2, bytes([0x80 | c, 40 + k % 48, 0])))
    return sorted(events, key=lambda e: e[0])


def _render(
    s: SoundFontSynth, seconds: float, events: list[tuple[int, bytes]], helper: VoiceHelper | None
) -> npt.NDArray[np.float32]:
    a = s.arrays()
    total = round(seconds * RATE)
    out = []
    for pos in range(0, total, BLOCK):
        due = [(t - pos, d) for t, d in events if pos <= t < pos + BLOCK]
        for row, (offset, data) in enumerate(due):
            a["ev_offset"][row] = offset
            a["ev_base"][row] = 0
            a["ev_length"][row] = len(data)
            a["ev_data"][row, : len(data)] = np.frombuffer(data, np.uint8)
        if helper is None:
            render_block(s.engine_state, len(due), BLOCK)
        else:
            helper.render_block(len(due), BLOCK)
        out.append(a["out"][:2, :BLOCK].copy())
    return np.concatenate(out, axis=1)


def _both(notes: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]:
    one, two = synth(block=BLOCK, polyphony=128), synth(block=BLOCK, polyphony=128)
    helper = VoiceHelper(two.engine_state, two.arrays()["out"])
    helper.start()
    try:
        alone = _render(one, 1.5, _chord(notes), None)
        shared = _render(two, 1.5, _chord(notes), helper)
    finally:
        helper.stop()
    return alone, shared, int(one.stats()["voices_peak"])  # type: ignore[call-overload]


def test_a_shared_render_is_the_single_thread_render_up_to_float_rounding() -> None:
    alone, shared, peak = _both(96)
    assert peak >= 2 * MIN_SHARED_VOICES
    peak_level = float(np.abs(alone).max())
    assert peak_level > 0.05
    assert float(np.abs(shared - alone).max()) < 1e-5 * max(peak_level, 1.0)


def test_a_span_with_few_voices_is_rendered_by_the_caller_alone_sample_for_sample() -> None:
    alone, shared, peak = _both(6)
    assert 0 < peak < MIN_SHARED_VOICES
    assert np.array_equal(alone, shared)


def test_stopping_the_helper_ends_its_thread() -> None:
    s = synth(block=BLOCK)
    helper = VoiceHelper(s.engine_state, s.arrays()["out"])
    helper.start()
    assert helper.running
    helper.stop()
    assert not helper.running
    helper.stop()  # twice is harmless


def test_a_helper_dropped_without_stop_ends_its_thread() -> None:
    s = synth(block=BLOCK)
    helper = VoiceHelper(s.engine_state, s.arrays()["out"])
    helper.start()
    thread = helper._thread
    assert thread is not None and thread.is_alive()
    del helper
    gc.collect()
    thread.join(10.0)
    assert not thread.is_alive()


def _helpers() -> int:
    return sum(t.name == "mxfd-voice-helper" and t.is_alive() for t in threading.enumerate())


def test_a_synth_on_two_threads_starts_its_helper_only_for_voices_to_share() -> None:
    from mxfd.core.allocator import Allocator

    before = _helpers()
    s = SoundFontSynth(synth().font, RATE, block_frames=BLOCK, reverb=False, chorus=False, threads=2)
    s.wave_sink.sync_to_master(0, 0, start=True)
    out = np.zeros((BLOCK, 2), np.float32)
    alloc = Allocator()
    s.put_message(alloc.make_event(bytes([0x90, 60, 100]), 0))
    for _ in range(20):
        s.render(out)
    assert _helpers() == before  # one note: one thread
    for k in range(2 * MIN_SHARED_VOICES):
        s.put_message(alloc.make_event(bytes([0x91 + k % 8, 40 + k, 100]), 0))
    for _ in range(20):
        s.render(out)
    assert _helpers() == before + 1
    s.close()
    assert _helpers() == before


def test_a_synth_closed_renders_on_one_thread() -> None:
    s = SoundFontSynth(synth().font, RATE, block_frames=BLOCK, reverb=False, chorus=False, threads=2)
    out = np.zeros((BLOCK, 2), np.float32)
    s.render(out)
    s.close()
    s.render(out)  # still renders, now without the helper
    s.close()
