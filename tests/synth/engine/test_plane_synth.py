"""The plane's miniport: events from the transport reach the data plane at their own frames, in order."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.core.allocator import Allocator
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.synth.engine import dataplane as D
from mxfd.synth.engine.dataplane import run_cycle
from mxfd.synth.engine.plane_synth import PlaneSynth
from tests.synth.engine.helpers import RATE, font

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
