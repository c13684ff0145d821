"""SoundFont units to physical ones, with FluidSynth's clamps (its ``fluid_conv.c``, version 2.3).

Every function is a scalar of ``float`` in and ``float`` out using only
:mod:`math` and module constants, marked :func:`~.jit.compiled`, so the
compiled voice engine runs these very functions.  Where
FluidSynth reads a table indexed by the truncated value (centibels to gain,
pan) these compute the continuous curve it samples; the two differ by less
than 0.05 dB.

- timecents: ``seconds = 2 ** (tc / 1200)``; -32768 means exactly zero.
- centibels of attenuation: ``gain = 10 ** (-cB / 200)``, 1 cB = 0.1 dB;
  FluidSynth never amplifies (negative attenuation is 0 dB) and treats
  1441 cB (144 dB) and more as silence.
- absolute cents: ``hz = 8.176 * 2 ** (cents / 1200)``, 6900 cents = 440 Hz.
"""

from __future__ import annotations

import math
from typing import Final

from mxfd.synth.soundfont.jit import compiled

#: FluidSynth (``fluid_defsfont.c``) scales every file's initialAttenuation by 0.4, as EMU8k/10k
#: hardware does, at preset and instrument level alike (not the modulators' contribution).
EMU_ATTENUATION_FACTOR: Final = 0.4
#: The attenuation reached by the default modulators at their extreme, in centibels (FLUID_PEAK_ATTENUATION).
PEAK_ATTENUATION_CB: Final = 960.0
#: Attenuation past which a voice is silent (FluidSynth's cb2amp table ends at 1440 cB).
SILENT_ATTENUATION_CB: Final = 1441.0
#: Frequency of absolute cents 0 (MIDI key 0), in Hz.
KEY0_HZ: Final = 8.1757989156437073336828122976032719176391831357
ZERO_SECONDS_TC: Final = -32768.0


@compiled
def timecents_to_seconds(tc: float) -> float:
    """A duration in timecents as seconds, without range checks (FluidSynth's fluid_tc2sec)."""
    return math.pow(2.0, tc / 1200.0)


@compiled
def delay_seconds(tc: float) -> float:
    """An envelope or LFO delay: -32768 is zero, else clamped to [-12000, 5000] timecents (fluid_tc2sec_delay)."""
    if tc <= ZERO_SECONDS_TC:
        return 0.0
    return math.pow(2.0, min(max(tc, -12000.0), 5000.0) / 1200.0)


@compiled
def attack_seconds(tc: float) -> float:
    """An attack time: -32768 is zero, else clamped to [-12000, 8000] timecents (fluid_tc2sec_attack)."""
    if tc <= ZERO_SECONDS_TC:
        return 0.0
    return math.pow(2.0, min(max(tc, -12000.0), 8000.0) / 1200.0)


@compiled
def release_seconds(tc: float) -> float:
    """A release time: -32768 is zero, else clamped to [-12000, 8000] timecents (fluid_tc2sec_release)."""
    if tc <= ZERO_SECONDS_TC:
        return 0.0
    return math.pow(2.0, min(max(tc, -12000.0), 8000.0) / 1200.0)


@compiled
def seconds_to_timecents(seconds: float) -> float:
    """The inverse of :func:`timecents_to_seconds`; zero or less is -32768 (fluid_sec2tc)."""
    if seconds <= 0.0:
        return ZERO_SECONDS_TC
    return max(1200.0 * math.log2(seconds), ZERO_SECONDS_TC)


@compiled
def key_scaled_timecents(tc: float, per_key: float, key: int) -> float:
    """Hold or decay time scaled by key number (keynumToVolEnvHold etc.): ``tc + per_key * (60 - key)``."""
    return tc + per_key * (60 - key)


@compiled
def centibels_to_gain(cb: float) -> float:
    """An attenuation in centibels as an amplitude factor: 0 or less is 1 (FluidSynth 2.3 never amplifies),
    1441 or more is silence."""
    if cb <= 0.0:
        return 1.0
    if cb >= SILENT_ATTENUATION_CB:
        return 0.0
    return math.pow(10.0, cb / -200.0)


@compiled
def gain_to_centibels(gain: float) -> float:
    """The attenuation in centibels of an amplitude factor (silence is 1441)."""
    if gain <= 0.0:
        return SILENT_ATTENUATION_CB
    return min(-200.0 * math.log10(gain), SILENT_ATTENUATION_CB)


@compiled
def absolute_cents_to_hz(cents: float) -> float:
    """Absolute cents as Hz: 6900 is 440 Hz, 0 is MIDI key 0 (fluid_ct2hz_real, without its table)."""
    return KEY0_HZ * math.pow(2.0, cents / 1200.0)


@compiled
def hz_to_absolute_cents(hz: float) -> float:
    return 6900.0 + 1200.0 * math.log2(hz / 440.0)


@compiled
def filter_cutoff_hz(cents: float) -> float:
    """A filter cutoff in absolute cents as Hz, clamped to [1500, 13500] cents, about 20 Hz to 20 kHz (fluid_ct2hz)."""
    return KEY0_HZ * math.pow(2.0, min(max(cents, 1500.0), 13500.0) / 1200.0)


@compiled
def cents_to_ratio(cents: float) -> float:
    """A pitch interval in cents as a frequency ratio."""
    return math.pow(2.0, cents / 1200.0)


@compiled
def lfo_hz(cents: float) -> float:
    """An LFO frequency generator (absolute cents, 0 is 8.176 Hz) as Hz, clamped to the spec's [-16000, 4500]."""
    return KEY0_HZ * math.pow(2.0, min(max(cents, -16000.0), 4500.0) / 1200.0)


@compiled
def tenths_percent(value: float) -> float:
    """A value in 0.1 % units (reverb and chorus sends, sustainModEnv) as a fraction, clamped to [0, 1]."""
    return min(max(value / 1000.0, 0.0), 1.0)


@compiled
def pan_gains(pan: float) -> tuple[float, float]:
    """Left and right gains of a pan generator in 0.1 % (-500 left .. 500 right): FluidSynth's sine law.

    The centre gives 0.707 to each side (-3 dB), each end gives 1 and 0.
    """
    c = min(max(pan, -500.0), 500.0)
    left = math.sin((500.0 - c) * (math.pi / 2.0) / 1001.0) if c > -500.0 else 1.0
    right = math.sin((c + 500.0) * (math.pi / 2.0) / 1001.0) if c < 500.0 else 1.0
    return left, right


# FluidSynth's curve tables (gentables/fluid_concave.cpp, fluid_convex.cpp): 128 points over [0, 127], the
# curves of SF2.01 section 8.2 as drawn on its page 73 (the printed equations are off), linearly interpolated.
# Point i of the concave curve is -(400/960) log10((127 - i) / 127); the convex curve is its mirror image.
_CURVE_SCALE: Final = -200.0 * 2.0 / PEAK_ATTENUATION_CB


@compiled
def concave(x: float) -> float:
    """The concave curve from [0, 127] to [0, 1], interpolated between FluidSynth's 128 points (fluid_concave)."""
    if x < 0.0:
        return 0.0
    i = int(x)
    if i >= 127:
        return 1.0
    a = 0.0 if i == 0 else _CURVE_SCALE * math.log10((127.0 - i) / 127.0)
    b = 1.0 if i + 1 >= 127 else _CURVE_SCALE * math.log10((126.0 - i) / 127.0)
    return a + (b - a) * (x - i)


@compiled
def convex(x: float) -> float:
    """The convex curve from [0, 127] to [0, 1] (fluid_convex)."""
    if x < 0.0:
        return 0.0
    i = int(x)
    if i >= 127:
        return 1.0
    a = 0.0 if i == 0 else 1.0 - _CURVE_SCALE * math.log10(i / 127.0)
    b = 1.0 if i + 1 >= 127 else 1.0 - _CURVE_SCALE * math.log10((i + 1.0) / 127.0)
    return a + (b - a) * (x - i)
