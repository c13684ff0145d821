"""Modulators: the ten defaults of section 8.4 (as FluidSynth defines them), source mapping, identity and merging."""

from __future__ import annotations

import math
from typing import Callable

import pytest

from mxfd.synth.soundfont import SoundFont
from mxfd.synth.soundfont import modulators as m
from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.modulators import DEFAULT_MODULATORS, Modulator, map_source, modulator_value
from tests.synth.soundfont.sf2writer import Instrument, Preset, Sample, Zone, build, instrument, sample_id, tone


def concave_ref(x: float) -> float:
    """The concave curve re-derived here: FluidSynth's 128 points, linearly interpolated."""

    def point(i: int) -> float:
        return 0.0 if i <= 0 else 1.0 if i >= 127 else -(400 / 960) * math.log10((127 - i) / 127)

    i = int(x)
    return point(i) + (point(i + 1) - point(i)) * (x - i)


def test_the_ten_defaults_as_source_words() -> None:
    """Section 8.4, with FluidSynth's choices for 8.4.2 (amount source), 8.4.6 (500) and 8.4.10 (fineTune)."""
    got = [(d.src, int(d.dest), d.amount, d.amount_src, d.transform) for d in DEFAULT_MODULATORS]
    assert got == [
        (0x0502, 48, 960.0, 0x0000, 0),  # 8.4.1 velocity, concave, negative -> initialAttenuation
        (0x0102, 8, -2400.0, 0x0C02, 0),  # 8.4.2 velocity, linear, negative -> initialFilterFc (x velocity switch)
        (0x000D, 6, 50.0, 0x0000, 0),  # 8.4.3 channel pressure -> vibLfoToPitch
        (0x0081, 6, 50.0, 0x0000, 0),  # 8.4.4 CC1 -> vibLfoToPitch
        (0x0587, 48, 960.0, 0x0000, 0),  # 8.4.5 CC7, concave, negative -> initialAttenuation
        (0x028A, 17, 500.0, 0x0000, 0),  # 8.4.6 CC10, bipolar -> pan
        (0x058B, 48, 960.0, 0x0000, 0),  # 8.4.7 CC11, concave, negative -> initialAttenuation
        (0x00DB, 16, 200.0, 0x0000, 0),  # 8.4.8 CC91 -> reverbEffectsSend
        (0x00DD, 15, 200.0, 0x0000, 0),  # 8.4.9 CC93 -> chorusEffectsSend
        (0x020E, 52, 12700.0, 0x0010, 0),  # 8.4.10 pitch wheel, bipolar -> fineTune (x pitch wheel sensitivity)
    ]


def test_8_4_1_velocity_to_attenuation() -> None:
    mod = m.DEFAULT_VEL_TO_ATTENUATION
    assert modulator_value(mod, 0, 0) == pytest.approx(960.0)
    for vel in (1, 40, 64, 100, 127):
        assert modulator_value(mod, vel, 0) == pytest.approx(960 * concave_ref(127 * (1 - vel / 128)))
    assert modulator_value(mod, 127, 0) < 2.0  # 127/128 of the way: about 0.14 dB, not exactly 0


def test_8_4_2_velocity_to_filter_is_off_as_in_fluidsynth() -> None:
    for vel in (1, 63, 64, 127):
        assert modulator_value(m.DEFAULT_VEL_TO_FILTER, vel, vel) == 0.0


@pytest.mark.parametrize("mod", [m.DEFAULT_PRESSURE_TO_VIBRATO, m.DEFAULT_MOD_WHEEL_TO_VIBRATO])
def test_8_4_3_and_8_4_4_pressure_and_mod_wheel_to_vibrato(mod: Modulator) -> None:
    assert modulator_value(mod, 0, 0) == 0.0
    assert modulator_value(mod, 64, 0) == pytest.approx(25.0)
    assert modulator_value(mod, 127, 0) == pytest.approx(50 * 127 / 128)


@pytest.mark.parametrize("mod", [m.DEFAULT_VOLUME_TO_ATTENUATION, m.DEFAULT_EXPRESSION_TO_ATTENUATION])
def test_8_4_5_and_8_4_7_volume_and_expression_to_attenuation(mod: Modulator) -> None:
    assert modulator_value(mod, 0, 0) == pytest.approx(960.0)
    assert modulator_value(mod, 100, 0) == pytest.approx(960 * concave_ref(127 * (1 - 100 / 128)))
    assert modulator_value(mod, 127, 0) == pytest.approx(960 * concave_ref(127 / 128))


def test_8_4_6_pan() -> None:
    assert modulator_value(m.DEFAULT_PAN, 64, 0) == 0.0
    assert modulator_value(m.DEFAULT_PAN, 0, 0) == -500.0
    assert modulator_value(m.DEFAULT_PAN, 127, 0) == pytest.approx(500 * (-1 + 2 * 127 / 128))


@pytest.mark.parametrize(("mod", "dest"), [(m.DEFAULT_REVERB_SEND, 16), (m.DEFAULT_CHORUS_SEND, 15)])
def test_8_4_8_and_8_4_9_effect_sends(mod: Modulator, dest: int) -> None:
    assert mod.dest == dest
    assert modulator_value(mod, 0, 0) == 0.0
    assert modulator_value(mod, 127, 0) == pytest.approx(200 * 127 / 128)


def test_8_4_10_pitch_wheel() -> None:
    mod = m.DEFAULT_PITCH_WHEEL
    assert modulator_value(mod, 8192, 2) == 0.0
    assert modulator_value(mod, 16383, 2) == pytest.approx(12700 * (-1 + 2 * 16383 / 16384) * 2 / 128)
    assert modulator_value(mod, 0, 2) == pytest.approx(-12700 * 2 / 128)  # about two semitones down
    assert modulator_value(mod, 0, 12) == pytest.approx(-12700 * 12 / 128)


def test_source_curves_polarities_and_directions() -> None:
    vel = m.GC_VELOCITY
    assert map_source(32, m.source(vel)) == 0.25
    assert map_source(32, m.source(vel, negative=True)) == 0.75
    assert map_source(32, m.source(vel, bipolar=True)) == -0.5
    assert map_source(32, m.source(vel, bipolar=True, negative=True)) == 0.5
    assert map_source(63, m.source(vel, curve=m.SWITCH)) == 0.0
    assert map_source(64, m.source(vel, curve=m.SWITCH)) == 1.0
    assert map_source(64, m.source(vel, curve=m.SWITCH, negative=True)) == 0.0
    assert map_source(10, m.source(vel, curve=m.SWITCH, bipolar=True)) == -1.0
    assert map_source(64, m.source(vel, curve=m.CONCAVE)) == pytest.approx(concave_ref(63.5))
    assert map_source(64, m.source(vel, curve=m.CONVEX)) == pytest.approx(1 - concave_ref(127 - 63.5))
    # bipolar concave is odd-symmetric about the centre
    up = map_source(96, m.source(vel, curve=m.CONCAVE, bipolar=True))
    down = map_source(32, m.source(vel, curve=m.CONCAVE, bipolar=True))
    assert up == pytest.approx(-down) and up > 0
    assert map_source(64, m.source(vel) | (7 << m.TYPE_SHIFT)) == 0.0  # unknown curve
    assert map_source(8192, m.source(m.GC_PITCH_WHEEL, bipolar=True)) == 0.0  # range 16384


def test_no_controller_sources() -> None:
    assert modulator_value(Modulator(0, Gen.PAN, 100.0), 127, 0) == 0.0  # source 1 none: nothing
    assert modulator_value(Modulator(m.source(7, cc=True), Gen.PAN, 100.0, 0), 64, 0) == 50.0  # source 2 none: x1


def test_absolute_transform() -> None:
    mod = Modulator(m.source(10, cc=True, bipolar=True), Gen.PAN, 100.0, 0, m.TRANSFORM_ABSOLUTE)
    assert modulator_value(mod, 0, 0) == 100.0


def test_identity_is_source_destination_and_amount_source() -> None:
    a = Modulator(0x0587, Gen.INITIAL_ATTENUATION, 960.0)
    assert a.identical(Modulator(0x0587, Gen.INITIAL_ATTENUATION, 10.0, 0, 2))  # amount, transform don't count
    assert not a.identical(Modulator(0x0587, Gen.INITIAL_ATTENUATION, 960.0, 0x0081))
    assert not a.identical(Modulator(0x0587, Gen.PAN, 960.0))
    assert not a.identical(Modulator(0x0507, Gen.INITIAL_ATTENUATION, 960.0))


def test_imported_file_modulators_are_disabled_as_fluidsynth_does() -> None:
    mod, why = m.imported(0x0081, Gen.PAN, 100, 0, 2)
    assert mod.amount == 0 and "transform 2" in why
    mod, why = m.imported(0x0081 | (5 << m.TYPE_SHIFT), Gen.PAN, 100, 0, 0)
    assert mod.amount == 0 and "curve" in why
    mod, why = m.imported(0, Gen.PAN, 100, 0, 0)
    assert mod.amount == 0 and why == ""
    mod, _ = m.imported(0x0081, Gen.PAN, 100, m.BIPOLAR, 0)
    assert mod.amount_src == 0  # "no controller" is unipolar +1


def test_zone_lists_drop_invalid_and_earlier_duplicates() -> None:
    cc7 = m.source(7, cc=True)
    mods = [
        Modulator(cc7, Gen.PAN, 1.0),
        Modulator(m.source(0, cc=True), Gen.PAN, 1.0),  # bank select: invalid
        Modulator(m.source(5), Gen.PAN, 1.0),  # general controller 5: invalid
        Modulator(cc7, Gen.KEY_RANGE, 1.0),  # not a numeric generator
        Modulator(cc7, Gen.PAN, 2.0),  # same as the first: the last one wins
    ]
    kept, invalid, duplicate = m.zone_modulators(mods)
    assert kept == [Modulator(cc7, Gen.PAN, 2.0)]
    assert (invalid, duplicate) == (3, 1)


def test_voice_list_instrument_replaces_and_preset_adds() -> None:
    """Section 9.5 as FluidSynth applies it: local over global, instrument replaces, preset adds."""
    vel_att = m.DEFAULT_VEL_TO_ATTENUATION
    cc2 = Modulator(m.source(2, cc=True), Gen.INITIAL_FILTER_FC, -1000.0)
    voice = m.voice_modulators(
        instrument_global=[Modulator(vel_att.src, vel_att.dest, 100.0), Modulator(cc2.src, cc2.dest, -5.0)],
        instrument_local=[Modulator(vel_att.src, vel_att.dest, 480.0)],
        preset_global=[Modulator(vel_att.src, vel_att.dest, 7.0), cc2],
        preset_local=[Modulator(vel_att.src, vel_att.dest, 20.0), Modulator(m.source(11, cc=True), Gen.PAN, 0.0)],
    )
    by_identity = {x.identity: x.amount for x in voice}
    assert len(voice) == 11  # the ten defaults and the instrument's CC2 modulator
    assert by_identity[vel_att.identity] == 480.0 + 20.0  # local instrument replaced the default; local preset added
    assert by_identity[cc2.identity] == -5.0 - 1000.0  # global instrument appended; global preset added
    assert voice[0].identity == vel_att.identity  # the defaults keep their place


def test_a_font_can_switch_a_default_off(load: Callable[..., SoundFont]) -> None:
    vel_att = m.DEFAULT_VEL_TO_ATTENUATION
    data = build(
        [Preset("P", 0, [Zone([instrument(0)])])],
        [Instrument("I", [Zone([sample_id(0)], mods=[(vel_att.src, vel_att.dest, 0, 0, 0)])])],
        [Sample("s", tone())],
    )
    (vz,) = load(data).voice_zones(0, 0, 60, 100)
    assert len(vz.modulators) == 10
    assert vz.modulators[0].identity == vel_att.identity and vz.modulators[0].amount == 0.0
    assert vz.modulators[1:] == DEFAULT_MODULATORS[1:]
