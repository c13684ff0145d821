"""Unit conversions (timecents, centibels, absolute cents, pan, curves) with FluidSynth's clamps."""

from __future__ import annotations

import math

import pytest

from mxfd.synth.soundfont import units


def test_timecents_to_seconds() -> None:
    assert units.timecents_to_seconds(0) == 1.0
    assert units.timecents_to_seconds(1200) == 2.0
    assert units.timecents_to_seconds(-1200) == 0.5
    assert units.timecents_to_seconds(-12000) == pytest.approx(1 / 1024)
    assert units.seconds_to_timecents(units.timecents_to_seconds(-3456.0)) == pytest.approx(-3456.0)
    assert units.seconds_to_timecents(0.0) == -32768


def test_envelope_times_clamp_as_fluidsynth() -> None:
    assert units.delay_seconds(-32768) == 0.0  # the most negative value is no time at all
    assert units.attack_seconds(-32768) == 0.0
    assert units.release_seconds(-32768) == 0.0
    assert units.delay_seconds(-20000) == pytest.approx(2**-10)
    assert units.delay_seconds(6000) == pytest.approx(2 ** (5000 / 1200))
    assert units.attack_seconds(9000) == pytest.approx(2 ** (8000 / 1200))
    assert units.release_seconds(9000) == pytest.approx(2 ** (8000 / 1200))


def test_key_number_scaling_of_hold_and_decay() -> None:
    assert units.key_scaled_timecents(-1000, 100, 72) == -1000 - 1200  # an octave up: halved
    assert units.key_scaled_timecents(-1000, 100, 60) == -1000


def test_centibels_to_gain() -> None:
    assert units.centibels_to_gain(0) == 1.0
    assert units.centibels_to_gain(-50) == 1.0  # never amplifies
    assert units.centibels_to_gain(200) == pytest.approx(0.1)  # 20 dB
    assert units.centibels_to_gain(60) == pytest.approx(10**-0.3)  # 6 dB
    assert units.centibels_to_gain(960) == pytest.approx(10**-4.8)
    assert units.centibels_to_gain(1441) == 0.0
    assert units.gain_to_centibels(0.1) == pytest.approx(200)
    assert units.gain_to_centibels(0.0) == 1441


def test_absolute_cents_and_filter_cutoff() -> None:
    assert units.absolute_cents_to_hz(6900) == pytest.approx(440.0)
    assert units.absolute_cents_to_hz(6000) == pytest.approx(261.6256, rel=1e-6)
    assert units.absolute_cents_to_hz(0) == pytest.approx(8.1758, rel=1e-4)
    assert units.hz_to_absolute_cents(880.0) == pytest.approx(8100)
    assert units.filter_cutoff_hz(20000) == units.filter_cutoff_hz(13500) == pytest.approx(19912.1, rel=1e-4)
    assert units.filter_cutoff_hz(0) == units.filter_cutoff_hz(1500) == pytest.approx(19.45, rel=1e-3)
    assert units.lfo_hz(0) == pytest.approx(8.1758, rel=1e-4)
    assert units.cents_to_ratio(1200) == 2.0


def test_pan_is_a_sine_law() -> None:
    left, right = units.pan_gains(0)
    assert left == right == pytest.approx(math.sqrt(0.5), abs=1e-3)
    assert units.pan_gains(-500) == (1.0, 0.0)
    assert units.pan_gains(500) == (0.0, 1.0)
    assert units.pan_gains(-900) == (1.0, 0.0)


def test_concave_and_convex_curves() -> None:
    def concave_point(i: int) -> float:  # SF2.01 page 73, as FluidSynth tabulates it
        return -(400 / 960) * math.log10((127 - i) / 127)

    assert units.concave(0) == 0.0 and units.concave(127) == 1.0 and units.concave(-3) == 0.0
    for i in (1, 32, 64, 100, 126):
        assert units.concave(i) == pytest.approx(concave_point(i))
        assert units.convex(127 - i) == pytest.approx(1 - concave_point(i))
    assert units.concave(64.5) == pytest.approx((concave_point(64) + concave_point(65)) / 2)
    assert units.tenths_percent(250) == 0.25 and units.tenths_percent(2000) == 1.0
