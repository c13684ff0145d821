"""Unit conversions and modulator source mapping, compiled: the twins of :mod:`mxfd.synth.soundfont.units`
and :func:`mxfd.synth.soundfont.modulators.map_source` for code that runs inside the render.

The soundfont package keeps the reference (plain Python, documented there);
these are the same formulas for numba, and tests check the two agree.  The
concave and convex curves are the reference's own 128 points, sampled at
import, interpolated here.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from mxfd.synth.soundfont import modulators as m
from mxfd.synth.soundfont import units

_njit = numba.njit(nogil=True, cache=True)

CONCAVE_POINTS = np.array([units.concave(float(i)) for i in range(128)], np.float64)
CONVEX_POINTS = np.array([units.convex(float(i)) for i in range(128)], np.float64)

KEY0_HZ = units.KEY0_HZ
SILENT_CB = units.SILENT_ATTENUATION_CB
PEAK_CB = units.PEAK_ATTENUATION_CB

# modulator source word fields
_INDEX = m.INDEX_MASK
_CC = m.CC_FLAG
_NEG = m.NEGATIVE
_BIP = m.BIPOLAR
_SHIFT = m.TYPE_SHIFT
GC_NONE = m.GC_NONE
GC_VELOCITY = m.GC_VELOCITY
GC_KEY = m.GC_KEY
GC_POLY_PRESSURE = m.GC_POLY_PRESSURE
GC_CHANNEL_PRESSURE = m.GC_CHANNEL_PRESSURE
GC_PITCH_WHEEL = m.GC_PITCH_WHEEL
GC_PITCH_WHEEL_SENSITIVITY = m.GC_PITCH_WHEEL_SENSITIVITY
TRANSFORM_ABSOLUTE = m.TRANSFORM_ABSOLUTE
# FluidSynth evaluates its velocity-to-filter default to zero (see mxfd.synth.soundfont.modulators)
VEL_FILTER_SRC, VEL_FILTER_DEST, VEL_FILTER_AMOUNT_SRC = m.DEFAULT_VEL_TO_FILTER.identity


@_njit
def cb_to_gain(cb: float) -> float:
    if cb <= 0.0:
        return 1.0
    if cb >= SILENT_CB:
        return 0.0
    return math.pow(10.0, cb / -200.0)


@_njit
def cents_to_hz(cents: float) -> float:
    return KEY0_HZ * math.pow(2.0, cents / 1200.0)


@_njit
def filter_hz(cents: float) -> float:
    return cents_to_hz(min(max(cents, 1500.0), 13500.0))


@_njit
def tc_seconds(tc: float, hi: float) -> float:
    """Timecents as seconds: -32768 or less is zero, else clamped to [-12000, hi]."""
    if tc <= -32768.0:
        return 0.0
    return math.pow(2.0, min(max(tc, -12000.0), hi) / 1200.0)


@_njit
def curve(x: float, points: np.ndarray) -> float:  # type: ignore[type-arg,unused-ignore]
    if x < 0.0:
        return 0.0
    i = int(x)
    if i >= 127:
        return 1.0
    a = points[i]
    return float(a + (points[i + 1] - a) * (x - i))


@_njit
def pan_side(c: float) -> float:
    if c <= -500.0:
        return 0.0
    if c >= 500.0:
        return 1.0
    return math.sin((c + 500.0) * (math.pi / 2.0) / 1001.0)


@_njit
def map_source(value: float, word: int) -> float:
    """A raw controller value mapped by the source word's curve, polarity and direction."""
    if not (word & _CC) and (word & _INDEX) == GC_PITCH_WHEEL:
        norm = value / 16384.0
    else:
        norm = value / 128.0
    kind = (word >> _SHIFT) & 0x3F
    negative = (word & _NEG) != 0
    if word & _BIP:
        if kind == 0:
            return 1.0 - 2.0 * norm if negative else -1.0 + 2.0 * norm
        if kind == 3:
            up = norm >= 0.5
            if negative:
                return -1.0 if up else 1.0
            return 1.0 if up else -1.0
        if kind == 1:
            pts = CONCAVE_POINTS
        elif kind == 2:
            pts = CONVEX_POINTS
        else:
            return 0.0
        sign = -1.0 if negative else 1.0
        if norm > 0.5:
            return sign * curve(127.0 * 2.0 * (norm - 0.5), pts)
        return -sign * curve(127.0 * 2.0 * (0.5 - norm), pts)
    x = 1.0 - norm if negative else norm
    if kind == 0:
        return x
    if kind == 1:
        return curve(127.0 * x, CONCAVE_POINTS)
    if kind == 2:
        return curve(127.0 * x, CONVEX_POINTS)
    if kind == 3:
        return 1.0 if x >= 0.5 else 0.0
    return 0.0
