"""The built-in GM bank: every program and drum key sounds, tables are band-limited, banks are shared."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.core.allocator import Allocator
from mxfd.synth.bank import GM_NAMES, band_of, get_bank, note_hz
from mxfd.synth.drums import kit_keys
from tests.synth.helpers import RATE, fundamental, make_synth, mono, note_on, program, render, rms_dbfs, send


def test_the_bank_has_all_128_gm_programs_in_order() -> None:
    bank = get_bank(RATE)
    assert len(bank.programs) == 128
    assert [p.name for p in bank.programs] == list(GM_NAMES)
    assert bank.programs[0].name == "Acoustic Grand Piano" and bank.programs[127].name == "Gunshot"


def test_banks_are_built_once_per_sample_rate() -> None:
    assert get_bank(RATE) is get_bank(RATE)
    assert get_bank(RATE).pool.dtype == np.complex128


def test_every_program_sounds() -> None:
    s, a = make_synth(polyphony=256), Allocator()
    for p in range(128):
        ch = p % 16 if p % 16 != 9 else 0
        send(s, a, p * 0.1, program(ch, p), note_on(ch, 60, 100))
    x = mono(render(s, 128 * 0.1 + 0.05))
    quiet = [p for p in range(128) if rms_dbfs(x[round((p * 0.1 + 0.02) * RATE) : round((p * 0.1 + 0.1) * RATE)]) < -60]
    assert quiet == []


def test_the_drum_kit_covers_the_gm_keys() -> None:
    bank = get_bank(RATE)
    assert set(range(35, 82)) <= set(kit_keys())
    assert all(bank.drums[k] is not None for k in range(35, 82))
    assert bank.drums[20] is None


@pytest.mark.parametrize("note", [96, 108])
def test_high_notes_of_a_bright_program_do_not_alias(note: int) -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 81), note_on(0, note, 127))  # sawtooth lead
    x = mono(render(s, 0.5))[round(0.1 * RATE) :]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1.0 / RATE)
    f0 = note_hz(note)
    harmonic = np.abs(freqs / f0 - np.rint(freqs / f0)) * f0 < 25.0
    alias = spec[~harmonic & (freqs > 20)].max() / spec.max()
    assert 20 * np.log10(alias) < -60


def test_bands_cover_the_keyboard() -> None:
    assert band_of(note_hz(0)) == 0
    assert band_of(note_hz(127)) == 10


@pytest.mark.parametrize("note", [83, 95, 107])  # B: the top of an octave band, the worst case
def test_bending_up_the_whole_default_range_does_not_alias(note: int) -> None:
    # Each key's sample leaves room above its harmonics for the default two semitones of bend; a
    # sample bent further (an RPN range of an octave) aliases, in a SoundFont as anywhere.
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 81), note_on(0, note, 127))
    send(s, a, 0.05, [0xE0, 0x7F, 0x7F])
    x = mono(render(s, 0.6))[round(0.2 * RATE) :]
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1.0 / RATE)
    # FluidSynth's bend: 12700 cents x 2/128 for the whole range, a little short of two semitones.
    f0 = note_hz(note + 2 * 8191 / 8192 * 127 / 128)
    assert fundamental(x, RATE) == pytest.approx(f0, rel=1e-3)
    harmonic = np.abs(freqs / f0 - np.rint(freqs / f0)) * f0 < 25.0
    alias = spec[~harmonic & (freqs > 20)].max() / spec.max()
    assert 20 * np.log10(alias) < -60


def test_piano_keys_spread_across_the_stereo_field() -> None:
    def balance(note: int) -> float:
        s, a = make_synth(), Allocator()
        send(s, a, 0.0, program(0, 0), note_on(0, note, 100))
        out = render(s, 0.3).astype(np.float64)
        return float(np.sqrt(np.mean(out[:, 1] ** 2)) / np.sqrt(np.mean(out[:, 0] ** 2)))

    assert balance(30) < 1.0 < balance(100)
