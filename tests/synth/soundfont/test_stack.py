"""A stack of fonts played as one: which member answers, and that its samples stay what they were."""

from __future__ import annotations

import gc
from typing import Callable

import numpy as np
import pytest

from mxfd.synth.soundfont import SoundFont, soundfont_from_buffer
from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.stack import FontStack, stack_soundfonts
from tests.synth.soundfont.sf2writer import Instrument, Preset, Sample, Zone, build, instrument, sample_id, tone


def font_bytes(presets: list[tuple[int, int, str]], amplitude: int, **kw: object) -> bytes:
    """One looped sample per preset (bank, program, name); each sample's ramp scaled by ``amplitude`` + preset."""
    samples = [Sample(f"s{i}", tone(300 + 10 * i, amplitude + 100 * i), loop=(50, 250)) for i in range(len(presets))]
    insts = [Instrument(f"i{i}", [Zone([(Gen.SAMPLE_MODES, 1), sample_id(i)])]) for i in range(len(presets))]
    ps = [Preset(name, program, [Zone([instrument(i)])], bank=bank) for i, (bank, program, name) in enumerate(presets)]
    return build(ps, insts, samples, **kw)  # type: ignore[arg-type]


def same_zones(stack: SoundFont, member: SoundFont, bank: int, program: int, key: int, velocity: int) -> bool:
    got = stack.voice_zones(bank, program, key, velocity)
    want = member.voice_zones(bank, program, key, velocity)
    if len(got) != len(want) or not want:
        return False
    for g, w in zip(got, want, strict=True):
        if g.sample_name != w.sample_name or g.modulators != w.modulators:
            return False
        if not np.array_equal(g.generators, w.generators) or (g.key_range, g.vel_range) != (w.key_range, w.vel_range):
            return False
        shift = g.start - w.start  # the member's base in the stack's words, the same for every offset
        if (g.end - shift, g.loop_start - shift, g.loop_end - shift) != (w.end, w.loop_start, w.loop_end):
            return False
        window = stack.samples.frames(g.sample, g.start, g.end)
        if not np.array_equal(window, member.samples.frames(w.sample, w.start, w.end)):
            return False
    return True


def test_each_bank_program_comes_from_the_first_font_that_has_it(timgm: SoundFont, fluidr3: SoundFont) -> None:
    stack = stack_soundfonts([timgm, fluidr3])
    assert isinstance(stack, FontStack) and stack.members == (timgm, fluidr3)
    keys = {(p.bank, p.program) for p in timgm.presets} | {(p.bank, p.program) for p in fluidr3.presets}
    assert sorted((p.bank, p.program) for p in stack.presets) == sorted(keys)
    for bank, program in sorted(keys):
        member = timgm if timgm.find_preset(bank, program) >= 0 else fluidr3
        assert stack.preset(bank, program) == member.preset(bank, program)
        for key, velocity in ((36, 40), (60, 100), (84, 127)):
            if member.voice_zones(bank, program, key, velocity):
                assert same_zones(stack, member, bank, program, key, velocity), (bank, program, key, velocity)
    assert stack.name == f"{timgm.name} + {fluidr3.name}"


def test_a_files_samples_stay_mapped_from_the_file(timgm: SoundFont, fluidr3: SoundFont) -> None:
    """Rule: stacking copies no sample data; the stack's words are the files' pages, mapped again."""
    stack = stack_soundfonts([timgm, fluidr3])
    words = stack.samples.data
    start = words.ctypes.data
    ends = {start, start + words.nbytes - 1}
    z = stack.voice_zones(8, 4, 60, 100)[0]  # FluidR3_GM only: in the second member's pages
    ends.add(start + 2 * z.start)
    files = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            span, _, _, _, _, *path = line.split()
            lo, hi = (int(x, 16) for x in span.split("-"))
            if any(lo <= a < hi for a in ends):
                files.add(path[0] if path else "")
    assert files == {timgm.path, fluidr3.path}
    assert not words.flags.writeable


def test_a_font_not_read_from_its_file_is_copied_into_the_stack(load: Callable[..., SoundFont]) -> None:
    top = load(font_bytes([(0, 0, "top piano")], 1000))
    data = font_bytes([(0, 0, "hidden"), (0, 5, "only below"), (128, 0, "kit")], 5000)
    below = soundfont_from_buffer(data, "below.sf2")
    stack = stack_soundfonts([top, below])
    assert [p.name for p in stack.presets] == ["top piano", "only below", "kit"]
    assert same_zones(stack, top, 0, 0, 60, 100)
    assert same_zones(stack, below, 0, 5, 60, 100)
    assert same_zones(stack, below, 128, 0, 36, 100)


def test_24_bit_low_bytes_follow_their_words_in_a_stack(load: Callable[..., SoundFont]) -> None:
    plain = load(font_bytes([(0, 0, "sixteen")], 1000))
    deep = load(font_bytes([(0, 1, "twenty-four")], 3000, version=(2, 4), sm24=True))
    stack = stack_soundfonts([plain, deep])
    assert stack.samples.low is not None and len(stack.samples.low) == len(stack.samples.data)
    assert same_zones(stack, plain, 0, 0, 60, 100)  # its low bytes are zero: the 16-bit words as they were
    assert same_zones(stack, deep, 0, 1, 60, 100)


def test_the_stack_outlives_its_members_and_unmaps_when_dropped(load: Callable[..., SoundFont]) -> None:
    members = [load(font_bytes([(0, p, f"p{p}")], 1000 * (p + 1))) for p in range(3)]
    want = [m.samples.frames(0) for m in members]
    stack = stack_soundfonts(members)
    del members
    gc.collect()
    for p in range(3):
        z = stack.voice_zones(0, p, 60, 100)[0]
        np.testing.assert_array_equal(stack.samples.frames(z.sample), want[p])
    address = stack.samples.data.ctypes.data
    del stack, z
    gc.collect()
    with open("/proc/self/maps") as maps:
        assert not any(int(line.split("-")[0], 16) == address for line in maps)


def test_one_font_is_its_own_stack_and_none_is_an_error(load: Callable[..., SoundFont]) -> None:
    font = load(font_bytes([(0, 0, "alone")], 1000))
    assert stack_soundfonts([font]) is font
    with pytest.raises(ValueError):
        stack_soundfonts([])
