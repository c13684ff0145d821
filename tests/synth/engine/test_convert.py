"""The compiled unit conversions and source mapping agree with the soundfont package's reference."""

from __future__ import annotations

import pytest

from mxfd.synth.engine import convert as cv
from mxfd.synth.soundfont import modulators as m
from mxfd.synth.soundfont import units


@pytest.mark.parametrize("cb", [-10.0, 0.0, 1.0, 60.0, 200.0, 960.0, 1440.0, 1441.0, 2000.0])
def test_centibels_to_gain_matches_the_reference(cb: float) -> None:
    assert cv.cb_to_gain(cb) == pytest.approx(units.centibels_to_gain(cb), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("cents", [0.0, 6900.0, 1500.0, 13500.0, -1200.0])
def test_absolute_cents_to_hz_matches_the_reference(cents: float) -> None:
    assert cv.cents_to_hz(cents) == pytest.approx(units.absolute_cents_to_hz(cents), rel=1e-12)
    assert cv.filter_hz(cents) == pytest.approx(units.filter_cutoff_hz(cents), rel=1e-12)


def test_timecents_follow_the_spec_and_fluidsynths_clamps() -> None:
    assert cv.tc_seconds(1200.0, 8000.0) == pytest.approx(2.0)
    assert cv.tc_seconds(0.0, 8000.0) == pytest.approx(1.0)
    assert cv.tc_seconds(-32768.0, 8000.0) == 0.0  # the most negative value is exactly zero
    assert cv.tc_seconds(-20000.0, 8000.0) == pytest.approx(units.attack_seconds(-20000.0))
    assert cv.tc_seconds(9000.0, 5000.0) == pytest.approx(units.delay_seconds(9000.0))


@pytest.mark.parametrize("pan", [-600.0, -500.0, -250.0, 0.0, 120.0, 500.0])
def test_pan_gains_match_the_reference(pan: float) -> None:
    left, right = units.pan_gains(pan)
    assert cv.pan_side(-pan) == pytest.approx(left)
    assert cv.pan_side(pan) == pytest.approx(right)


WORDS = [
    m.source(2, negative=True, curve=m.CONCAVE),
    m.source(1, cc=True),
    m.source(10, cc=True, bipolar=True),
    m.source(7, cc=True, negative=True, curve=m.CONVEX),
    m.source(11, cc=True, bipolar=True, curve=m.CONCAVE),
    m.source(11, cc=True, bipolar=True, negative=True, curve=m.CONVEX),
    m.source(64, cc=True, curve=m.SWITCH),
    m.source(64, cc=True, bipolar=True, negative=True, curve=m.SWITCH),
    m.source(m.GC_PITCH_WHEEL, bipolar=True),
]


@pytest.mark.parametrize("word", WORDS)
def test_each_source_curve_maps_as_the_reference(word: int) -> None:
    top = 16383 if word == WORDS[-1] else 127
    for value in range(0, top + 1, 1 if top == 127 else 97):
        assert cv.map_source(float(value), word) == pytest.approx(m.map_source(float(value), word), abs=1e-12)
