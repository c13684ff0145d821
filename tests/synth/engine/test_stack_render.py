"""A stack of fonts plays each preset exactly as the font it comes from plays it alone."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.synth.engine import SoundFontSynth
from mxfd.synth.soundfont import SoundFont
from mxfd.synth.soundfont.stack import stack_soundfonts
from tests.synth.engine.helpers import FLUIDR3, RATE, TIMGM, font, run


def synth_of(f: SoundFont) -> SoundFontSynth:
    return SoundFontSynth(f, RATE, polyphony=32, block_frames=128, reverb=False, chorus=False)


def note(bank: int, program: int, channel: int = 0, key: int = 60) -> list[tuple[int, bytes]]:
    return [
        (0, bytes([0xB0 | channel, 0, bank])),
        (0, bytes([0xC0 | channel, program])),
        (64, bytes([0x90 | channel, key, 100])),
        (RATE // 2, bytes([0x80 | channel, key, 0])),
    ]


@pytest.mark.parametrize(
    ("bank", "program", "channel", "key", "alone"),
    [
        (0, 0, 0, 60, TIMGM),  # both have it: the first font's
        (8, 4, 0, 60, FLUIDR3),  # only the second has bank 8
        (0, 40, 9, 38, TIMGM),  # the drum channel: the first font's kit (bank 128)
        (0, 9, 9, 38, FLUIDR3),  # a kit only the second has (Room 1)
        (0, 56, 9, 38, TIMGM),  # a kit neither has: the standard kit, looked up through the whole stack
        (3, 80, 0, 72, TIMGM),  # a bank neither has: bank 0's program, the first font's
    ],
)
def test_a_stacked_preset_sounds_as_its_own_font_plays_it(
    bank: int, program: int, channel: int, key: int, alone: str
) -> None:
    stack = stack_soundfonts([font(TIMGM), font(FLUIDR3)])
    events = note(bank, program, channel, key)
    got = run(synth_of(stack), 1.0, events)
    want = run(synth_of(font(alone)), 1.0, events)
    assert np.abs(want).max() > 1e-3  # the note sounds
    np.testing.assert_array_equal(got, want)
