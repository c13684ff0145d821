"""The plane's miniport: events from the transport reach the data plane at their own frames, in order."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.core.allocator import Allocator
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.synth.engine import dataplane as D
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.dataplane import run_cycle
from mxfd.synth.engine.plane_synth import PlaneSynth
from tests.core.helpers import core_growth
from tests.synth.engine.helpers import FLUIDR3, RATE, font
from tests.synth.engine.test_block import SYNTH_FILES

PERIOD = 128


def plane_synth() -> PlaneSynth:
    s = PlaneSynth(font(), RATE, polyphony=64, block_frames=PERIOD, reverb=False, chorus=False)
    s.wave_sink.sync_to_master(0, 0, start=True)  # master time 0 is frame 0
    return s


def run(s: PlaneSynth, cycles: int) -> np.ndarray:
    """Feed a cycle ahead and render, as the feeding thread and the callback do."""
    left, right = np.zeros(PERIOD, np.float32), np.zeros(PERIOD, np.float32)
    out = []
    for _ in range(cycles):
        s.feed(s.ring.position + 2 * PERIOD)
        run_cycle(s.plane, PERIOD, left, right)
        out.append(left + right)
    return np.concatenate(out)


def at(seconds: float) -> int:
    return round(seconds * UNITS_PER_SECOND)


def test_an_event_plays_from_the_frame_of_its_presentation_time() -> None:
    for t in (0.0, 0.0021, 0.01, 0.0333):
        s, a = plane_synth(), Allocator()
        s.put_message(a.make_event(b"\xc0\x50", 0))  # square lead: sound from the first sample
        s.put_message(a.make_event(b"\x90\x45\x64", at(t)))
        x = run(s, 20)
        assert int(np.flatnonzero(x)[0]) == round(t * RATE), t
        assert s.stats()["late_events"] == 0


def test_every_event_goes_back_to_its_allocator() -> None:
    s, a = plane_synth(), Allocator(pool_size=16)
    for k in range(10):
        s.put_message(a.make_event(b"\x90\x40\x64" if k % 2 == 0 else b"\x80\x40\x00", at(k * 0.003)))
    run(s, 20)
    assert a.is_idle()


def test_releasing_a_group_stops_its_notes_in_order_with_its_events() -> None:
    s, a = plane_synth(), Allocator()
    e = a.make_event(b"\x90\x45\x64", 0)
    e.channel_group = 3
    s.put_message(e)
    run(s, 4)
    assert s.stats()["voices"] == 1
    s.release_channel_group(3)
    run(s, 2 * RATE // PERIOD)  # the piano's release, at most a couple of seconds
    assert s.stats()["voices"] == 0


def test_stop_silences_through_the_ring() -> None:
    s, a = plane_synth(), Allocator()
    s.put_message(a.make_event(b"\x90\x45\x64", 0))
    run(s, 4)
    s.all_sound_off()
    run(s, 60)
    assert s.stats()["voices"] == 0
    assert s.plane_arrays["prod"][D.P_DROPS] == 0


def test_the_plane_synth_does_not_render_in_python() -> None:
    with pytest.raises(RuntimeError, match="data plane"):
        plane_synth().render(np.zeros((PERIOD, 2), np.float32))


# -- another font, swapped in by the callback -------------------------------------------------


def organ_held(s: PlaneSynth, a: Allocator, key: int = 69) -> None:
    s.put_message(a.make_event(b"\xc0\x13", 0))  # church organ: sounds while the key is held
    s.put_message(a.make_event(bytes([0x90, key, 100]), 0))


def cycle_peaks(s: PlaneSynth, cycles: int) -> np.ndarray:
    return np.abs(run(s, cycles).reshape(cycles, PERIOD)).max(axis=1)


def test_a_font_swapped_in_by_the_callback_lets_a_held_note_sound_on_with_no_silent_cycle() -> None:
    s, a = plane_synth(), Allocator()
    organ_held(s, a)
    assert cycle_peaks(s, 40)[10:].min() > 1e-3
    s.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    assert s.stats()["soundfont"] == FLUIDR3
    assert cycle_peaks(s, 100).min() > 1e-3, "a silent cycle across the swap"
    cons = s.plane_arrays["cons"]
    assert cons[D.C_SWAPS] == 1 and cons[D.C_RETIRING] == 1
    assert s.retiring_voices > 0 and s.stats()["voices"] == s.retiring_voices  # nothing new sounds yet
    s.put_message(a.make_event(b"\x80\x45\x00", at(100 * PERIOD / RATE)))  # the old font's note releases
    run(s, 400)
    assert cons[D.C_RETIRING] == 0 and s.retiring_voices == 0 and s.idle


def test_after_a_swap_the_channels_carry_over_and_new_notes_play_the_new_fonts_preset() -> None:
    s, a = plane_synth(), Allocator()
    s.put_message(a.make_event(b"\xb0\x07\x5a", 0))
    organ_held(s, a)
    run(s, 4)
    new = font(FLUIDR3)
    s.replace_font(new, reverb=False, chorus=False)
    run(s, 2)
    arrays = s.arrays()
    assert arrays["ci"][L.C_PROGRAM, 0] == 19 and arrays["cc"][0, 7] == 90
    assert arrays["ci"][L.C_PRESET, 0] == new.find_preset(0, 19)  # looked up in the new font
    assert arrays["counters"][L.K_NOTES] == 1  # the counts go on
    s.put_message(a.make_event(b"\x90\x4c\x64", at(6 * PERIOD / RATE)))
    run(s, 4)
    vi = arrays["vi"]
    assert {int(vi[L.KEY, v]) for v in range(vi.shape[1]) if vi[L.STATUS, v] == L.PLAYING} == {76}
    assert s.retiring_voices > 0  # and the old note still sounds, from the old state


def test_a_key_struck_again_after_a_swap_lets_go_of_its_old_voice() -> None:
    s, a = plane_synth(), Allocator()
    organ_held(s, a, key=60)
    run(s, 4)
    s.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    s.put_message(a.make_event(b"\x90\x3c\x64", at(5 * PERIOD / RATE)))  # in the retiring state, a note-off
    run(s, 400)
    assert s.retiring_voices == 0 and s.plane_arrays["cons"][D.C_RETIRING] == 0
    assert s.stats()["voices"] > 0  # the new font's note is held


def test_a_state_is_let_go_only_once_the_plane_cannot_reach_it_as_of_two_collections() -> None:
    s, a = plane_synth(), Allocator()
    organ_held(s, a)
    run(s, 4)
    s.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    s.replace_font(font(), reverb=False, chorus=False)  # before the callback took the first
    run(s, 2)
    cons = s.plane_arrays["cons"]
    assert cons[D.C_SWAPS] == 2 and cons[D.C_RETIRED] == 0  # the latest offer went in; the first retires
    assert s.collect_retired() == 0  # offer 1 never played: out of reach, but only just
    assert s.collect_retired() == 1
    s.put_message(a.make_event(b"\x80\x45\x00", at(6 * PERIOD / RATE)))
    run(s, 400)
    assert cons[D.C_RETIRING] == 0
    assert s.collect_retired() == 0  # state 0 is still ``retiring``'s, silent or not
    assert set(s._states) == {0, 2}


def test_rendering_while_a_font_retires_allocates_nothing_per_cycle() -> None:
    s, a = plane_synth(), Allocator(pool_size=64)
    s.put_message(a.make_event(b"\xc0\x13", 0))
    s.put_message(a.make_event(b"\x90\x30\x64", 0))  # held through the test: the old state keeps retiring
    run(s, 4)
    s.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    left, right = np.zeros(PERIOD, np.float32), np.zeros(PERIOD, np.float32)
    messages = [b"\x91\x3c\x64", b"\xb1\x07\x64", b"\x81\x3c\x00", b"\xe1\x00\x40"]

    def cycle(i: int) -> None:
        s.put_message(a.make_event(messages[i % len(messages)], at((s.ring.position + PERIOD) / RATE)))
        s.feed(s.ring.position + 2 * PERIOD)
        run_cycle(s.plane, PERIOD, left, right)

    growth, where = core_growth(cycle, warmup=500, cycles=5_000, files=SYNTH_FILES)
    assert s.plane_arrays["cons"][D.C_RETIRING] == 1
    assert growth < 5_000, where
