"""SysEx the SoundFont miniport acts on: GM/GS/XG resets and GS "use for rhythm part"; nothing else."""

from __future__ import annotations

import numpy as np

from mxfd.core.allocator import Allocator
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.synth import gs_rhythm_part
from tests.synth.engine.helpers import synth


def rhythm_part(part_nibble: int, drum_map: int) -> bytes:
    body = bytes((0x40, 0x10 | part_nibble, 0x15, drum_map))
    return b"\xf0\x41\x10\x42\x12" + body + bytes(((128 - sum(body) % 128) % 128,)) + b"\xf7"


def play(s, *messages: bytes) -> None:  # type: ignore[no-untyped-def]
    a = Allocator()
    s.wave_sink.sync_to_master(0, 0, start=True)
    for m in messages:
        s.put_message(a.make_event(m, 0))
    s.render(np.zeros((128, 2), np.float32))


def test_gs_use_for_rhythm_part_names_the_channel_of_each_part() -> None:
    assert gs_rhythm_part(bytearray(rhythm_part(0, 1)), 11) == (9, 1)  # x=0 is part 10
    assert gs_rhythm_part(bytearray(rhythm_part(1, 2)), 11) == (0, 1)
    assert gs_rhythm_part(bytearray(rhythm_part(9, 0)), 11) == (8, 0)
    assert gs_rhythm_part(bytearray(rhythm_part(0xA, 1)), 11) == (10, 1)
    bad = bytearray(rhythm_part(1, 1))
    bad[9] ^= 1  # checksum
    assert gs_rhythm_part(bad, 11) is None


def test_a_channel_made_a_rhythm_part_plays_the_drum_kit_and_back() -> None:
    s = synth()
    ci = s.arrays()["ci"]
    drums = int(ci[L.C_PRESET, 9])
    play(s, rhythm_part(1, 1))  # part 1: MIDI channel 1
    assert ci[L.C_DRUM, 0] == 1 and ci[L.C_PRESET, 0] == drums
    play(s, rhythm_part(0, 0))  # part 10 made melodic
    assert ci[L.C_DRUM, 9] == 0 and ci[L.C_PRESET, 9] != drums
    play(s, b"\xf0\x7e\x7f\x09\x01\xf7")  # GM System On restores channel 10's drums, channel 1's piano
    assert ci[L.C_DRUM, 9] == 1 and ci[L.C_DRUM, 0] == 0


def test_the_engines_own_channel_type_word_is_not_taken_from_the_wire() -> None:
    s = synth()
    play(s, bytes((0xF4, 0, 1)))
    assert s.arrays()["ci"][L.C_DRUM, 0] == 0
    assert s.arrays()["counters"][L.K_MALFORMED] == 1
