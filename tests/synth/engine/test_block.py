"""The block render: exact onsets for every block size, no allocation per block, idle blocks cost nothing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import mido
import numpy as np
import pytest

import mxfd.synth
from mxfd.core.allocator import Allocator
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.render import SynthChoice, load_song, render_file
from tests.core.helpers import core_growth
from tests.synth.engine.helpers import RATE, TIMGM, run, synth
from tests.test_render import read_wav

SYNTH_FILES = os.path.join(os.path.dirname(os.path.abspath(mxfd.synth.__file__)), "*")


def _one_note(path: Path, t: float, channel: int, key: int) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: a tick is 1/960 s
    track = mido.MidiTrack()
    mid.tracks.append(track)
    ticks = round(t * 960)
    assert ticks == pytest.approx(t * 960)
    track.append(mido.Message("note_on", channel=channel, note=key, velocity=100, time=ticks))
    track.append(mido.Message("note_off", channel=channel, note=key, velocity=0, time=240))
    track.append(mido.MetaMessage("end_of_track", time=480))
    mid.save(path)
    return path


@pytest.mark.parametrize("block", [16, 37, 64, 100, 128, 256, 1000])
def test_a_note_starts_on_the_sample_of_its_time_for_every_block_size(tmp_path: Path, block: int) -> None:
    for t, channel, key in ((0.3125, 0, 60), (999 / 960, 9, 38)):
        song = load_song(str(_one_note(tmp_path / "n.mid", t, channel, key)))
        out = tmp_path / "n.wav"
        with open(out, "wb") as f:
            render_file(song, f, block=block, fmt="float", synth_choice=SynthChoice(TIMGM, 0.0, False, False))
        x, _ = read_wav(out)
        first = int(np.flatnonzero(np.any(x != 0.0, axis=1))[0])
        assert first == round(t * RATE), (block, t, first)


def test_rendering_blocks_with_events_allocates_nothing_in_steady_state() -> None:
    s = synth(block=128)
    s.wave_sink.sync_to_master(0, 0, start=True)
    alloc = Allocator(pool_size=64)
    out = np.zeros((128, 2), np.float32)
    messages = [b"\x90\x3c\x64", b"\xb0\x07\x64", b"\x80\x3c\x00", b"\xe0\x00\x40", b"\x99\x2a\x64", b"\xc0\x05"]

    def cycle(i: int) -> None:
        e = alloc.make_event(messages[i % len(messages)], (i * 128 + 42) * UNITS_PER_SECOND // RATE + 1)
        s.put_message(e)
        s.render(out)

    cycles = 40_000
    growth, where = core_growth(cycle, warmup=2_000, cycles=cycles, files=SYNTH_FILES)
    # The events and sample positions in flight at the two snapshots differ by a few hundred bytes either way;
    # a leak of one byte per block would show as 40 kB.
    assert growth < cycles // 10, where
    assert s.stats()["notes"] > 3000


def test_a_block_with_no_voice_sounding_costs_next_to_nothing() -> None:
    s = synth(block=128)
    out = np.zeros((128, 2), np.float32)
    for _ in range(100):
        s.render(out)
    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        s.render(out)
    per_block = (time.perf_counter() - t0) / n
    assert not out.any()
    assert per_block < 0.01 * 128 / RATE, f"{per_block * 1e6:.1f} us per idle block"


def test_controllers_for_a_silent_channel_leave_the_sounding_voices_exactly_as_they_were() -> None:
    # Applied with the span's start rather than between two spans: no sounding voice can tell.
    note = [(0, bytes([0x90, 60, 100])), (9000, bytes([0x80, 60, 0]))]
    stream = [(t, bytes([0xB1, 1, t % 128])) for t in range(5, 12000, 7)]  # mod wheel on channel 2, silent
    alone = run(synth(), 0.25, note)
    streamed = run(synth(), 0.25, note + stream)
    assert np.abs(alone).max() > 0.01
    assert np.array_equal(alone, streamed)


def test_a_controller_for_a_silent_channel_still_reaches_its_next_note() -> None:
    quiet = run(synth(), 0.1, [(40, bytes([0xB1, 7, 0])), (90, bytes([0x91, 60, 100]))])  # volume 0, then a note
    loud = run(synth(), 0.1, [(90, bytes([0x91, 60, 100]))])
    assert np.abs(loud).max() > 0.01 and np.abs(quiet).max() < 1e-4
