"""The built-in bank as a SoundFont: every program and the kit, in tune, its balance kept, built once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mxfd.synth import builtin_font as bf
from mxfd.synth.bank import GM_NAMES, get_bank
from mxfd.synth.engine import SoundFontSynth
from mxfd.synth.soundfont.font import SoundFont
from mxfd.synth.soundfont.generators import Gen
from tests.synth.engine.helpers import RATE, run


@pytest.fixture(scope="module")
def builtin(tmp_path_factory: pytest.TempPathFactory) -> SoundFont:
    return bf.builtin_soundfont(RATE, tmp_path_factory.mktemp("cache"))


def _note(font: SoundFont, program: int, key: int, velocity: int = 100, seconds: float = 0.5) -> np.ndarray:
    s = SoundFontSynth(font, RATE, polyphony=16, block_frames=128, reverb=False, chorus=False)
    channel = 9 if program < 0 else 0
    events = [] if program < 0 else [(0, bytes([0xC0, program]))]
    events.append((0, bytes([0x90 | channel, key, velocity])))
    return np.asarray(run(s, seconds, events)[0], np.float64)


def _f0(x: np.ndarray, lo: float, hi: float) -> float:
    n = 8 * len(x)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    band = (f > lo) & (f < hi)
    return float(f[band][np.argmax(spectrum[band])])


def test_every_general_midi_program_and_the_drum_kit_is_a_preset(builtin: SoundFont) -> None:
    assert builtin.name == bf.NAME and builtin.counters() == {}
    assert [(p.bank, p.program, p.name) for p in builtin.presets if p.bank == 0] == [
        (0, n, name[:20])
        for n, name in enumerate(GM_NAMES)  # a SoundFont name holds 20 characters
    ]
    assert builtin.preset(128, 0) is not None
    for program in range(128):
        assert builtin.voice_zones(0, program, 60, 100), GM_NAMES[program]
    assert builtin.voice_zones(128, 0, 38, 100) and not builtin.voice_zones(128, 0, 10, 100)


@pytest.mark.parametrize(("program", "key"), [(80, 69), (0, 48), (19, 60), (73, 84), (33, 36)])
def test_notes_sound_at_their_equal_tempered_pitch(builtin: SoundFont, program: int, key: int) -> None:
    hz = 440.0 * 2 ** ((key - 69) / 12)
    x = _note(builtin, program, key)[RATE // 10 :]
    assert _f0(x, hz * 0.9, hz * 1.1) == pytest.approx(hz, rel=0.003)


def test_a_table_loops_over_a_middle_copy_so_interpolation_reads_its_own_neighbours(builtin: SoundFont) -> None:
    z = builtin.voice_zones(0, 80, 60, 100)[0]
    length = z.loop_end - z.loop_start
    assert (z.loop_start - z.start, z.end - z.loop_end, z.sample_mode) == (length, length, 1)
    data = builtin.samples.data
    assert np.array_equal(data[z.start : z.loop_start], data[z.loop_start : z.loop_end])


def test_the_loudest_zone_is_at_full_level_and_the_banks_balance_is_kept(builtin: SoundFont) -> None:
    zones = [builtin.voice_zone(v) for v in range(len(builtin.tables.attenuation))]
    assert min(z.attenuation for z in zones) == 0.0
    kick, piano = _note(builtin, -1, 36, 127), _note(builtin, 0, 60, 127)
    bank = get_bank(RATE)
    drum, grand = bank.drums[36], bank.programs[0]
    assert drum is not None
    # peak levels: the kit's kick against the piano, as the bank balances them (within 3 dB)
    expected_db = 20 * np.log10(drum.gain / grand.gain)
    measured_db = 20 * np.log10(np.abs(kick).max() / np.abs(piano).max())
    assert abs(measured_db - expected_db) < 6.0


def test_a_constant_layer_sustains_and_a_fading_one_decays_to_silence_at_its_pace() -> None:
    peak, gens = bf.fit_envelope(np.full_like(bf._T, 0.5), 0.01) or (0.0, [])
    assert peak == 0.5 and dict(gens)[Gen.SUSTAIN_VOL_ENV] == 0
    fading = np.exp(-bf._T / 0.5)  # 17.4 dB a second: the full 96 dB in 5.5 s
    peak, gens = bf.fit_envelope(fading, 0.0) or (0.0, [])
    g = dict(gens)
    assert g[Gen.SUSTAIN_VOL_ENV] == 1000
    assert 2.0 ** (g[Gen.DECAY_VOL_ENV] / 1200) == pytest.approx(96 / (20 / np.log(10) / 0.5), rel=0.05)
    assert bf.fit_envelope(np.full_like(bf._T, 1e-4), 0.0) is None


def test_the_font_is_built_once_and_mapped_from_the_cache_after(tmp_path: Path) -> None:
    first = bf.builtin_soundfont(RATE, tmp_path)
    (path,) = tmp_path.glob("builtin-*.sf2")
    stamp = path.stat().st_mtime_ns
    again = bf.builtin_soundfont(RATE, tmp_path)
    assert path.stat().st_mtime_ns == stamp and again.path == str(path) == first.path


def test_a_damaged_cache_file_is_built_again(tmp_path: Path) -> None:
    path = bf.builtin_font_path(RATE, tmp_path)
    path.write_bytes(b"RIFF\0\0\0\0junk")
    font = bf.builtin_soundfont(RATE, tmp_path)
    assert font.voice_zones(0, 0, 60, 100) and path.stat().st_size > 1_000_000
