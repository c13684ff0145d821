"""The installed General MIDI fonts (TimGM6mb, FluidR3_GM) load fast, lazily, and as FluidSynth reads them.

The Makefile installs both fonts and fluidsynth (CI too), so these tests fail, not skip, without them.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mxfd.synth.soundfont import PERCUSSION_BANK, SoundFont, load_soundfont
from mxfd.synth.soundfont.zones import UNLOOPED
from tests.synth.soundfont.conftest import FLUIDR3, TIMGM


def fluidsynth_shell(font: str, commands: list[str], tmp_path: Path) -> str:
    """Run FluidSynth's command shell headless on ``font`` and return what it printed."""
    script = tmp_path / "commands.txt"
    script.write_text("\n".join([*commands, "quit"]) + "\n")
    out = subprocess.run(
        [
            "fluidsynth",
            "-n",
            "-i",
            "-q",
            "-a",
            "file",
            "-o",
            f"audio.file.name={os.devnull}",
            "-o",
            "synth.polyphony=4096",
            "-f",
            str(script),
            font,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout


@pytest.mark.parametrize(("path", "count"), [(TIMGM, 136), (FLUIDR3, 189)])
def test_the_preset_listing_matches_fluidsynths(path: str, count: int, tmp_path: Path) -> None:
    font = load_soundfont(path)
    listing = fluidsynth_shell(path, ["inst 1"], tmp_path)
    theirs = [(int(b), int(p), n.rstrip()) for b, p, n in re.findall(r"^(\d{3})-(\d{3}) (.*)$", listing, re.M)]
    ours = [(p.bank, p.program, p.name) for p in font.presets]
    assert len(ours) == count
    assert ours == theirs


@pytest.mark.parametrize(("which", "path"), [("timgm", TIMGM), ("fluidr3", FLUIDR3)])
def test_every_preset_starts_as_many_voices_as_in_fluidsynth(
    which: str, path: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Six notes per preset (low, middle, high key; soft and loud), each preset on a channel of 16 in turn.

    FluidSynth's shell counts sounding voices; nothing is rendered between commands, so the count grows
    by the voices each note-on started.
    """
    font: SoundFont = request.getfixturevalue(which)
    commands = []
    expected = []
    for i, p in enumerate(font.presets):
        chan = i % 16
        commands.append(f"select {chan} 1 {p.bank} {p.program}")
        for key in (36, 60, 84) if p.bank != PERCUSSION_BANK else (36, 42, 46):
            for vel in (30, 127):
                commands += [f"noteon {chan} {key} {vel}", "voice_count"]
                expected.append(len(font.voice_zones(p.bank, p.program, key, vel)))
    counts = [int(c) for c in re.findall(r"voice_count: (\d+)", fluidsynth_shell(path, commands, tmp_path))]
    started = [int(d) for d in np.diff([0, *counts])]
    assert sum(expected) < 65535  # FluidSynth's polyphony below, so it steals no voice
    assert started == expected


@pytest.mark.parametrize("which", ["timgm", "fluidr3"])
def test_every_preset_resolves_inside_its_samples(which: str, request: pytest.FixtureRequest) -> None:
    font: SoundFont = request.getfixturevalue(which)
    t = font.tables
    s = font.samples
    assert font.counters().get("sample_unusable", 0) == 0
    for p in range(len(font.presets)):
        assert t.vz_first[p + 1] > t.vz_first[p], font.presets[p]  # every preset sounds somewhere
    assert np.all(t.start >= s.start[t.sample]) and np.all(t.start < t.end)
    assert np.all(t.end <= s.end[t.sample] + 46)
    looped = t.sample_mode != UNLOOPED
    assert np.all(t.loop_start[looped] >= s.start[t.sample[looped]])
    assert np.all(t.loop_end[looped] <= s.end[t.sample[looped]] + 46)
    assert np.all(t.loop_end[looped] - t.loop_start[looped] >= 2)
    assert t.key_index[-1] == len(t.key_zones)


def test_known_facts_of_the_real_fonts(timgm: SoundFont, fluidr3: SoundFont) -> None:
    # TimGM6mb: mono piano, the hi-hats share an exclusive class
    assert [v.sample_name for v in timgm.voice_zones(0, 0, 60, 100)] == ["Piano Db3"]
    assert {v.exclusive_class for k in (42, 44, 46) for v in timgm.voice_zones(128, 0, k, 100)} == {1}
    # FluidR3_GM: a stereo piano, left and right panned apart
    left, right = fluidr3.voice_zones(0, 0, 60, 100)
    assert (left.sample_type, right.sample_type) == (4, 2)
    assert (left.generator(17), right.generator(17)) == (-500, 500)
    assert fluidr3.name == "Fluid R3 GM" and fluidr3.version == (2, 1)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


def mapped_kib(path: str) -> int:
    """Resident kB of this process's mappings of ``path``."""
    total = 0
    current = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            current = line.endswith(path)
        elif current and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_fluidr3_loads_fast_and_lazily() -> None:
    """Rule: the sample data is mapped, so loading a 141 MB font costs neither its size in memory nor its read."""
    size_kib = os.path.getsize(FLUIDR3) // 1024
    before = rss_kib()
    mapped_before = mapped_kib(FLUIDR3)  # a font another test still holds is mapped too
    t0 = time.perf_counter()
    font = load_soundfont(FLUIDR3)
    elapsed = time.perf_counter() - t0
    grew = rss_kib() - before
    assert elapsed < 1.0, f"loading FluidR3_GM took {elapsed:.2f} s"
    assert grew < size_kib // 3, f"RSS grew {grew} KiB loading a {size_kib} KiB font"
    assert mapped_kib(FLUIDR3) - mapped_before < 2048  # only the preset data has been read
    # playing one sample pages in about that sample, not the file
    (vz, _) = font.voice_zones(0, 0, 60, 100)
    frames = font.samples.frames(vz.sample)
    assert float(np.abs(frames).max()) > 0.01
    assert mapped_kib(FLUIDR3) - mapped_before < 2048 + 2 * frames.size * 2 // 1024 + 1024


def test_corrupted_fonts_load_or_fail_with_one_clear_line() -> None:
    """Rule: bad input gives a SoundFontError (one line naming the file) or a font, never another exception."""
    from mxfd.synth.soundfont import SoundFontError, soundfont_from_buffer
    from mxfd.synth.soundfont.riff import walk
    from tests.synth.soundfont.sf2writer import (
        Instrument,
        Preset,
        Sample,
        Zone,
        build,
        instrument,
        key_range,
        sample_id,
        tone,
        vel_range,
    )

    base = build(
        [
            Preset(
                "P",
                0,
                [
                    Zone([(17, 100)], mods=[(0x0587, 48, 100, 0, 0)]),
                    Zone([key_range(0, 64), instrument(0)]),
                    Zone([instrument(1)]),
                ],
            ),
            Preset("Q", 1, [Zone([vel_range(10, 20), instrument(1)])], bank=128),
        ],
        [
            Instrument("I", [Zone([(48, 10)]), Zone([(54, 1), sample_id(0)], mods=[(0x0081, 8, -50, 0x000D, 0)])]),
            Instrument("J", [Zone([key_range(40, 90), sample_id(1)])]),
        ],
        [Sample("a", tone(), loop=(10, 150), type=4, link=1), Sample("b", tone(300), type=2, link=0)],
    )
    layout = walk(base, "f.sf2")
    pdta_start = layout.hydra["phdr"].offset
    rng = np.random.default_rng(2026)
    outcomes = {"loaded": 0, "refused": 0}
    for _ in range(600):
        data = bytearray(base)
        for _ in range(int(rng.integers(1, 4))):
            at = int(rng.integers(pdta_start - 8, len(data)))
            data[at] = int(rng.integers(0, 256))
        try:
            font = soundfont_from_buffer(bytes(data), "f.sf2")
        except SoundFontError as exc:
            assert str(exc).startswith("f.sf2: ") and "\n" not in str(exc)
            outcomes["refused"] += 1
            continue
        for p in font.presets:
            for key in (0, 40, 64, 127):
                for vz in font.voice_zones(p.bank, p.program, key, 15):
                    assert 0 <= vz.start <= vz.end <= len(font.samples.data)
        outcomes["loaded"] += 1
    assert outcomes["loaded"] > 50 and outcomes["refused"] > 50, outcomes
