"""The MIDI-state side: exclusive classes, pedals, presets and drum kits, stealing, the default modulators."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.synth.engine import layout as L
from tests.synth.engine.helpers import RATE, block, font, run, synth, voices


def _keys(s) -> list[int]:  # type: ignore[no-untyped-def]
    vi = s.arrays()["vi"]
    return sorted(int(vi[L.KEY, v]) for v in voices(s))


def _section(s, key: int) -> int:  # type: ignore[no-untyped-def]
    vi = s.arrays()["vi"]
    return max(int(vi[L.VOL_SECTION, v]) for v in voices(s) if vi[L.KEY, v] == key)


def test_a_closed_hi_hat_chokes_the_open_one() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0x99, 46, 100)))])  # open hi-hat, channel 10
    assert _section(s, 46) < L.RELEASE
    block(s, 128, [(10, bytes((0x99, 42, 100)))])  # closed hi-hat: same exclusive class
    assert _section(s, 46) == L.RELEASE
    assert _section(s, 42) < L.RELEASE
    assert s.arrays()["counters"][L.K_EXCLUSIVE_KILLS] >= 1
    run(s, 1.5)
    assert 46 not in _keys(s)


def test_notes_of_other_exclusive_classes_or_channels_are_not_choked() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0x99, 46, 100))), (0, bytes((0x99, 38, 100)))])  # hi-hat, snare
    block(s, 128, [(0, bytes((0x90, 42, 100)))])  # key 42 on a melodic channel
    assert _section(s, 46) < L.RELEASE and _section(s, 38) < L.RELEASE


def test_the_sustain_pedal_holds_released_keys_until_it_goes_up() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0xB0, 64, 127))), (1, bytes((0x90, 60, 100))), (2, bytes((0x80, 60, 0)))])
    assert _section(s, 60) < L.RELEASE
    block(s, 128, [(0, bytes((0xB0, 64, 0)))])
    assert _section(s, 60) == L.RELEASE


def test_a_key_struck_again_releases_its_sounding_voices() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0x90, 60, 100)))])
    first = set(voices(s))
    block(s, 128, [(0, bytes((0x90, 60, 100)))])
    vi = s.arrays()["vi"]
    assert all(vi[L.VOL_SECTION, v] == L.RELEASE for v in first)
    assert len(voices(s)) == 2 * len(first)


def _preset_name(s, channel: int) -> str:  # type: ignore[no-untyped-def]
    p = int(s.arrays()["ci"][L.C_PRESET, channel])
    return font().presets[p].name if p >= 0 else ""


def test_a_missing_bank_falls_back_to_bank_zero_and_channel_ten_plays_drum_kits() -> None:
    s = synth()
    block(s, 0, [(0, bytes((0xB0, 0, 5))), (0, bytes((0xC0, 24)))])
    assert _preset_name(s, 0) == font().preset(0, 24).name
    assert font().preset(128, 0) is not None
    assert _preset_name(s, 9) == font().preset(128, 0).name
    block(s, 0, [(0, bytes((0xC9, 8)))])  # the Room kit
    assert _preset_name(s, 9) == font().preset(128, 8).name
    block(s, 0, [(0, bytes((0xC9, 3)))])  # no such kit: the standard kit
    assert _preset_name(s, 9) == font().preset(128, 0).name


def test_when_every_voice_sounds_the_oldest_released_one_is_stolen() -> None:
    s = synth(polyphony=4)
    assert len(font().voice_zones(0, 11, 60, 100)) == 1  # one voice per note
    block(s, 128, [(0, bytes((0xC0, 11))), (0, bytes((0x90, 60, 100))), (1, bytes((0x80, 60, 0)))])
    block(s, 128, [(0, bytes((0x90, k, 100))) for k in (62, 64, 65)])
    assert len(voices(s)) == 4
    block(s, 128, [(0, bytes((0x90, 67, 100)))])
    assert _keys(s) == [62, 64, 65, 67]
    assert s.arrays()["counters"][L.K_STOLEN] == 1


def _level(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2))))


def test_volume_and_expression_attenuate_as_the_default_modulators_say() -> None:
    loud = run(synth(), 0.5, [(0, bytes((0xC0, 80))), (0, bytes((0x90, 60, 100)))])
    quiet = run(synth(), 0.5, [(0, bytes((0xC0, 80))), (0, bytes((0xB0, 7, 50))), (0, bytes((0x90, 60, 100)))])
    # CC7 100 -> 50 through the concave curve: 960 cB x (concave(0.609 x 127) - concave(0.219 x 127)) = 12 dB.
    assert _level(loud) - _level(quiet) == pytest.approx(12.0, abs=0.5)
    half = run(synth(), 0.5, [(0, bytes((0xC0, 80))), (0, bytes((0xB0, 11, 64))), (0, bytes((0x90, 60, 100)))])
    assert _level(loud) > _level(half) + 3.0


def test_velocity_attenuates_through_the_concave_curve() -> None:
    f = run(synth(), 0.5, [(0, bytes((0xC0, 80))), (0, bytes((0x90, 60, 127)))])
    p = run(synth(), 0.5, [(0, bytes((0xC0, 80))), (0, bytes((0x90, 60, 32)))])
    assert _level(f) - _level(p) > 6.0


def test_pan_moves_the_note_between_the_sides() -> None:
    x = run(synth(), 0.3, [(0, bytes((0xC0, 80))), (0, bytes((0xB0, 10, 0))), (0, bytes((0x90, 60, 100)))])
    assert _level(x[0]) > _level(x[1]) + 20.0


def _pitch(x: np.ndarray) -> float:
    seg = x[0, round(0.2 * RATE) :].astype(np.float64)
    n = 1 << 20
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n))
    return float(np.argmax(spec[: n // 8]) * RATE / n)


def test_the_pitch_wheel_bends_by_the_rpn_zero_range() -> None:
    base = [(0, bytes((0xC0, 80)))]
    plain = run(synth(), 0.6, [*base, (0, bytes((0x90, 60, 100)))])
    bent = run(synth(), 0.6, [*base, (0, bytes((0xE0, 0x7F, 0x7F))), (0, bytes((0x90, 60, 100)))])
    rpn = [(0, bytes((0xB0, 101, 0))), (0, bytes((0xB0, 100, 0))), (0, bytes((0xB0, 6, 12)))]
    octave = run(synth(), 0.6, [*base, *rpn, (0, bytes((0xE0, 0x7F, 0x7F))), (0, bytes((0x90, 60, 100)))])
    assert _pitch(bent) / _pitch(plain) == pytest.approx(2 ** (2 / 12), rel=0.01)
    assert _pitch(octave) / _pitch(plain) == pytest.approx(2.0, rel=0.01)


def test_the_mod_wheel_and_channel_pressure_drive_the_vibrato_depth() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0xC0, 80))), (0, bytes((0x90, 60, 100)))])
    vf = s.arrays()["vf"]
    v = voices(s)[0]
    assert vf[L.VIBLFO_TO_PITCH, v] == 0.0
    block(s, 128, [(0, bytes((0xB0, 1, 127)))])
    assert vf[L.VIBLFO_TO_PITCH, v] == pytest.approx(50.0 * 127 / 128)  # 50 cents at full wheel (8.4.4)
    block(s, 128, [(0, bytes((0xD0, 64)))])
    assert vf[L.VIBLFO_TO_PITCH, v] == pytest.approx(50.0 * 127 / 128 + 50.0 * 64 / 128)  # plus pressure (8.4.3)


def test_a_system_reset_silences_the_group_and_restores_the_defaults() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0xB0, 7, 10))), (0, bytes((0xC0, 40))), (0, bytes((0x90, 60, 100)))])
    block(s, 128, [(0, bytes((0xFF,)))])
    assert voices(s) == []
    a = s.arrays()
    assert a["cc"][0, 7] == 100 and a["ci"][L.C_PROGRAM, 0] == 0


def test_malformed_and_unknown_messages_are_counted_not_applied() -> None:
    s = synth()
    block(s, 0, [(0, bytes((0x90, 60))), (0, bytes((0x90, 0x80, 1))), (0, bytes((0xF8,)))])
    k = s.arrays()["counters"]
    assert k[L.K_MALFORMED] == 2 and k[L.K_IGNORED] == 1 and voices(s) == []


def test_polyphonic_key_pressure_reaches_only_its_own_keys_voices(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from mxfd.synth.engine import SoundFontSynth
    from mxfd.synth.soundfont import load_soundfont
    from mxfd.synth.soundfont.generators import Gen
    from mxfd.synth.soundfont.modulators import GC_POLY_PRESSURE, source
    from tests.synth.soundfont.sf2writer import Instrument, Preset, Sample, Zone, build, instrument, sample_id, tone

    pressure_to_vibrato = (source(GC_POLY_PRESSURE), int(Gen.VIB_LFO_TO_PITCH), 100, 0, 0)
    path = tmp_path / "poly.sf2"
    path.write_bytes(build(
        [Preset("Test", 0, [Zone([instrument(0)])])],
        [Instrument("inst", [Zone([(int(Gen.SAMPLE_MODES), 1), sample_id(0)], [pressure_to_vibrato])])],  # looped
        [Sample("tone", tone(), loop=(50, 150))],
    ))  # fmt: skip
    s = SoundFontSynth(load_soundfont(str(path)), RATE, block_frames=128, reverb=False, chorus=False)
    block(s, 128, [(0, bytes((0x90, 60, 100))), (0, bytes((0x90, 64, 100)))])
    vf, vi = s.arrays()["vf"], s.arrays()["vi"]
    by_key = {int(vi[L.KEY, v]): v for v in voices(s)}
    block(s, 128, [(0, bytes((0xA0, 60, 64)))])
    assert vf[L.VIBLFO_TO_PITCH, by_key[60]] == pytest.approx(100 * 64 / 128)
    assert vf[L.VIBLFO_TO_PITCH, by_key[64]] == 0.0
    block(s, 128, [(0, bytes((0xB0, 121, 0)))])  # reset all controllers clears key pressure too
    assert vf[L.VIBLFO_TO_PITCH, by_key[60]] == 0.0


def test_balance_turned_right_attenuates_only_the_left_side_as_fluidsynth() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0xC0, 80))), (0, bytes((0x90, 60, 100)))])
    vf = s.arrays()["vf"]
    v = voices(s)[0]
    left, right = vf[L.GAIN_LEFT, v], vf[L.GAIN_RIGHT, v]
    block(s, 128, [(0, bytes((0xB0, 8, 127)))])
    assert vf[L.GAIN_RIGHT, v] == pytest.approx(right)
    assert vf[L.GAIN_LEFT, v] < left * 10 ** (-40 / 20)  # far right: the left side all but gone
    block(s, 128, [(0, bytes((0xB0, 8, 32)))])
    assert vf[L.GAIN_LEFT, v] == pytest.approx(left)
    assert vf[L.GAIN_RIGHT, v] < right
    block(s, 128, [(0, bytes((0xB0, 8, 64)))])
    assert (vf[L.GAIN_LEFT, v], vf[L.GAIN_RIGHT, v]) == pytest.approx((left, right))
