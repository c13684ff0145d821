"""Replacing the font of a running synth: held notes sound on from the old font, new notes play the new one."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from mxfd.core.allocator import Allocator
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.synth.engine import SoundFontSynth
from mxfd.synth.engine import layout as L
from tests.core.helpers import core_growth
from tests.synth.engine.helpers import FLUIDR3, RATE, TIMGM, font
from tests.synth.engine.test_block import SYNTH_FILES

BLOCK = 128


class Player:
    """A synth fed through ``put_message`` and rendered block by block, as the daemon does."""

    def __init__(self, path: str = TIMGM) -> None:
        self.synth = SoundFontSynth(font(path), RATE, polyphony=64, block_frames=BLOCK, reverb=False, chorus=False)
        self.synth.wave_sink.sync_to_master(0, 0, start=True)
        self.alloc = Allocator(pool_size=64)
        self.out = np.zeros((BLOCK, 2), np.float32)
        self.position = 0

    def send(self, message: bytes) -> None:
        """``message`` at the next block's first sample."""
        self.synth.put_message(self.alloc.make_event(message, self.position * UNITS_PER_SECOND // RATE + 1))

    def blocks(self, n: int) -> npt.NDArray[np.float32]:
        """Render ``n`` blocks; the left channel, one row per block."""
        rows = np.zeros((n, BLOCK), np.float32)
        for k in range(n):
            self.synth.render(self.out)
            rows[k] = self.out[:, 0]
            self.position += BLOCK
        return rows


def peak(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.asarray(np.max(np.abs(rows), axis=1))


def test_a_held_note_sounds_on_from_the_old_font_with_no_silent_block_and_ends_when_released() -> None:
    p = Player(TIMGM)
    p.send(bytes([0xC0, 19]))  # church organ: sounds while the key is held
    p.send(bytes([0x90, 69, 100]))
    before = p.blocks(100)
    assert peak(before[20:]).min() > 1e-3
    p.synth.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    assert p.synth.font.path == FLUIDR3 and p.synth.stats()["soundfont"] == FLUIDR3
    across = p.blocks(100)
    assert peak(across).min() > 1e-3, "a silent block across the swap"
    assert p.synth.retiring_voices > 0 and p.synth.stats()["voices"] == p.synth.retiring_voices
    p.send(bytes([0x80, 69, 0]))  # the old font's voice releases, and ends
    p.blocks(400)
    assert p.synth.retiring_voices == 0 and p.synth.idle
    assert p.synth.collect_retired() == 1 and p.synth.retired == []


def test_the_channels_carry_over_and_new_notes_play_the_new_fonts_preset() -> None:
    p = Player(TIMGM)
    p.send(bytes([0xC0, 19]))
    p.send(bytes([0xB0, 7, 90]))
    p.send(bytes([0x90, 69, 100]))
    p.blocks(10)
    p.synth.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    a = p.synth.arrays()
    assert a["ci"][L.C_PROGRAM, 0] == 19 and a["cc"][0, 7] == 90
    assert a["ci"][L.C_PRESET, 0] == font(FLUIDR3).find_preset(0, 19)  # looked up in the new font
    p.send(bytes([0x90, 76, 100]))
    p.blocks(4)
    vi = a["vi"]
    new_keys = {int(vi[L.KEY, v]) for v in range(vi.shape[1]) if vi[L.STATUS, v] == L.PLAYING}
    assert new_keys == {76}  # the new note sounds in the new font's state only
    assert p.synth.retiring_voices > 0  # and the old one's still sounds


def test_a_key_struck_again_after_the_swap_lets_go_of_its_old_voice() -> None:
    p = Player(TIMGM)
    p.send(bytes([0xC0, 19]))
    p.send(bytes([0x90, 60, 100]))
    p.blocks(10)
    p.synth.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    p.send(bytes([0x90, 60, 100]))  # a note-on, in the retiring state a note-off
    p.blocks(400)
    assert p.synth.retiring_voices == 0
    assert p.synth.stats()["voices"] > 0  # the new font's note is held


def test_a_swap_to_the_same_bank_with_other_effects_and_gain_plays_on() -> None:
    p = Player(TIMGM)
    p.send(bytes([0xC0, 19]))
    p.send(bytes([0x90, 69, 100]))
    p.blocks(20)
    p.synth.replace_font(font(TIMGM), gain_db=-6.0, reverb=True, chorus=True)
    assert p.synth.effects == (True, True) and p.synth.master.reverb is not None
    assert peak(p.blocks(50)).min() > 1e-3


def test_rendering_while_a_font_retires_allocates_nothing_per_block() -> None:
    p = Player(TIMGM)
    p.send(bytes([0xC0, 19]))
    p.send(bytes([0x90, 48, 100]))  # held through the whole test: the old state keeps retiring
    p.blocks(10)
    p.synth.replace_font(font(FLUIDR3), reverb=False, chorus=False)
    messages = [b"\x91\x3c\x64", b"\xb1\x07\x64", b"\x81\x3c\x00", b"\xe1\x00\x40", b"\x99\x2a\x64", b"\xc1\x05"]

    def cycle(i: int) -> None:
        p.send(messages[i % len(messages)])
        p.synth.render(p.out)
        p.position += BLOCK

    cycles = 10_000
    growth, where = core_growth(cycle, warmup=1_000, cycles=cycles, files=SYNTH_FILES)
    # Less than a byte a block on average: an allocation in every block would be tens of bytes a block;
    # what remains is a few one-off allocations (a couple of KB seen, in some runs) over the 10 000.
    assert growth < cycles, where
    assert p.synth.retiring_voices > 0
