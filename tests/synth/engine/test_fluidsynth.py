"""Differential test against FluidSynth: the same note, the same font, reverb and chorus off on both.

For a sample of TimGM6mb's melodic presets and its drum kit (and a smaller
sample of FluidR3_GM's, and of an SF3 made from TimGM6mb), one note at two
velocities is rendered by ``mxfd render`` and by ``fluidsynth -F`` (both as
32-bit float, so FluidSynth's 16-bit dither does not hide the quiet drums):
the onset within 1 ms, the fundamental (the strongest partial) within
0.3 %, the 10 ms RMS envelope within 3 dB on average over the frames above
-60 dBFS, the overall level within 3 dB, the spectral centroid within 10 %.

FluidSynth's MIDI player starts on its second 64-sample buffer, so every
event it plays is 64 samples late; the notes here sit on a multiple of 64
samples, where that is the whole difference, and it is taken off its onset.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import mido
import pytest

from mxfd.cli import main as cli
from tests.synth.engine.compare import compare
from tests.synth.engine.helpers import FLUIDR3, RATE, TIMGM
from tests.synth.engine.sf3 import sf2_to_sf3

FLUIDSYNTH = shutil.which("fluidsynth") or "/usr/bin/fluidsynth"
#: FluidSynth's player starts one buffer late (see the module docstring).
FLUIDSYNTH_START_MS = 64 * 1000.0 / RATE
VELOCITIES = (100, 50)
#: Every eighth melodic program (key 60) and the drum kit's kick, snare, hats, toms and cymbals (channel 10).
MELODIC = list(range(0, 128, 8))
DRUMS = [35, 36, 38, 40, 42, 44, 46, 49, 51, 56]
#: FluidR3_GM: every sixteenth program and a few drums.
FLUIDR3_MELODIC = list(range(4, 128, 16))
FLUIDR3_DRUMS = [36, 38, 42, 46, 49]
#: GM programs 120-127 are sound effects (fret noise, breath, sea shore...): no pitch to compare.
UNPITCHED_FROM = 120


def _note_file(path: Path, program: int, key: int, velocity: int, channel: int) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)  # 120 bpm: the note at 0.5 s = sample 24000 = 375 x 64
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.Message("program_change", channel=channel, program=program, time=0))
    track.append(mido.Message("note_on", channel=channel, note=key, velocity=velocity, time=480))
    track.append(mido.Message("note_off", channel=channel, note=key, velocity=0, time=960))
    track.append(mido.MetaMessage("end_of_track", time=1920))
    mid.save(path)
    return path


def _render_both(
    tmp_path: Path, font: str, program: int, key: int, velocity: int, channel: int
) -> tuple[Path, Path]:
    mid = _note_file(tmp_path / "note.mid", program, key, velocity, channel)
    ours, theirs = tmp_path / "mxfd.wav", tmp_path / "fluidsynth.wav"
    argv = [str(mid), str(ours), "--soundfont", font, "--rate", str(RATE), "--reverb", "off", "--chorus", "off"]
    assert cli(["render", *argv, "--format", "float", "--no-progress"]) == 0
    subprocess.run(
        [FLUIDSYNTH, "-ni", "-R", "0", "-C", "0", "-r", str(RATE), "-O", "float", "-F", str(theirs), font, str(mid)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return ours, theirs


def _check(tmp_path: Path, font: str, program: int, key: int, velocity: int, channel: int, pitched: bool) -> None:
    ours, theirs = _render_both(tmp_path, font, program, key, velocity, channel)
    c = compare(str(ours), str(theirs), pitched=pitched)
    c.onset_ms += FLUIDSYNTH_START_MS
    assert c.failures(pitched) == [], c


@pytest.mark.parametrize("velocity", VELOCITIES)
@pytest.mark.parametrize("program", MELODIC)
def test_a_melodic_preset_sounds_as_fluidsynth_plays_it(tmp_path: Path, program: int, velocity: int) -> None:
    _check(tmp_path, TIMGM, program, 60, velocity, 0, pitched=program < UNPITCHED_FROM)


@pytest.mark.parametrize("velocity", VELOCITIES)
@pytest.mark.parametrize("key", DRUMS)
def test_a_drum_kit_note_sounds_as_fluidsynth_plays_it(tmp_path: Path, key: int, velocity: int) -> None:
    _check(tmp_path, TIMGM, 0, key, velocity, 9, pitched=False)


@pytest.mark.parametrize("velocity", VELOCITIES)
@pytest.mark.parametrize("program", FLUIDR3_MELODIC)
def test_a_fluidr3_preset_sounds_as_fluidsynth_plays_it(tmp_path: Path, program: int, velocity: int) -> None:
    _check(tmp_path, FLUIDR3, program, 60, velocity, 0, pitched=program < UNPITCHED_FROM)


@pytest.mark.parametrize("velocity", VELOCITIES)
@pytest.mark.parametrize("key", FLUIDR3_DRUMS)
def test_a_fluidr3_drum_note_sounds_as_fluidsynth_plays_it(tmp_path: Path, key: int, velocity: int) -> None:
    _check(tmp_path, FLUIDR3, 0, key, velocity, 9, pitched=False)


#: An SF3 of TimGM6mb (every sample an Ogg Vorbis stream): a few programs and drums, both synths decoding it.
SF3_MELODIC = [0, 24, 40, 56, 73, 104]
SF3_DRUMS = [36, 38, 42]


@pytest.fixture(scope="module")
def timgm_sf3(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sf3") / "TimGM6mb.sf3"
    path.write_bytes(sf2_to_sf3(Path(TIMGM).read_bytes()))
    return str(path)


@pytest.mark.parametrize("program", SF3_MELODIC)
def test_an_sf3_preset_sounds_as_fluidsynth_plays_it(tmp_path: Path, timgm_sf3: str, program: int) -> None:
    _check(tmp_path, timgm_sf3, program, 60, 100, 0, pitched=True)


@pytest.mark.parametrize("key", SF3_DRUMS)
def test_an_sf3_drum_note_sounds_as_fluidsynth_plays_it(tmp_path: Path, timgm_sf3: str, key: int) -> None:
    _check(tmp_path, timgm_sf3, 0, key, 100, 9, pitched=False)
