"""One voice, compiled: start, modulators, envelopes, LFOs, filter and the sample loop.

Theory of operation
-------------------
This is FluidSynth 2.3's voice (``fluid_voice.c``, ``fluid_rvoice.c``,
``fluid_rvoice_dsp.c``, ``fluid_iir_filter.c``, ``fluid_adsr_env.h``)
re-written over the struct of arrays in :mod:`.layout`, so that a note
sounds as FluidSynth plays it:

- Control rate.  Every 64 samples of a voice's own life (its *control
  period*, counted from its first sample, so an onset is exact to the
  sample whatever the block size) the envelopes and LFOs take one step,
  and pitch, amplitude and filter coefficients are recomputed; within the
  period the amplitude and the filter coefficients ramp linearly to their
  new values, as FluidSynth's 64-sample buffers do.
- Envelopes: sections delay, attack (linear in amplitude), hold, decay,
  sustain, release (linear in dB: amplitude = cB-to-gain(960 x (1 - value))),
  each ``count`` steps of ``value = coeff x value + increment`` between
  ``min`` and ``max``.  Hold and decay times scale with the key.
- LFOs: triangles from 0 upward, after their delay; the modulation LFO
  drives pitch, filter and volume, the vibrato LFO pitch.
- Sample loop: 4-point (cubic) interpolation with FluidSynth's "4th order"
  coefficients, read from its table of 256 fractions (the top 8 bits of the
  phase's fraction pick the row); the phase is FluidSynth's fixed point
  (frames in the high 32 bits of a 64-bit word, the fraction in the low
  32); the points next to a loop boundary taken from the other end of the
  loop, the points past an unlooped end duplicating the last one; modes no
  loop, loop, loop until release; 16-bit words or 24-bit with sm24.  Samples go
  in runs: while all four points lie inside the loop (or the sample) they
  are read unchecked, and only the samples next to a boundary take the
  checked path.
- Filter: a resonant 2-pole low-pass (RBJ biquad) at initialFilterFc
  + modulation, Q from initialFilterQ as FluidSynth maps it (0 cB is no
  resonance hump; the gain is divided by sqrt(Q)), applied after the
  amplitude.
- Modulators: each voice's list (defaults, instrument, preset, merged at
  load time by the soundfont package) evaluated against its channel's
  controllers at the start and again whenever one of them changes; what
  they add is kept in ``gen``, the zone's values plus the modulation.
"""

from __future__ import annotations

import math
from typing import Any, Callable, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

from mxfd.synth.engine.layout import (
    A1,
    A1_INCR,
    A2,
    A2_INCR,
    AMP,
    AMP_INCR,
    ATTACK,
    ATTENUATION,
    ATTENUATION_GAIN,
    B02,
    B02_INCR,
    B1,
    B1_INCR,
    C_BEND,
    C_BEND_RANGE,
    C_PRESSURE,
    CHANNEL,
    CONTROL_PERIOD,
    DECAY,
    DELAY,
    E_COEFF,
    E_COUNT,
    E_INCR,
    E_MAX,
    E_MIN,
    END,
    EXCLUSIVE,
    FILTER_GAIN,
    FILTER_INCR_COUNT,
    FILTER_STARTUP,
    FINISHED,
    FREE,
    FRES,
    G_GAIN,
    G_RATE,
    GAIN_CHORUS,
    GAIN_LEFT,
    GAIN_REVERB,
    GAIN_RIGHT,
    HAS_LOOPED,
    HELD,
    HIST1,
    HIST2,
    HOLD,
    K_HIGH_WATER,
    KEY,
    KEY_PRESSURE,
    LAST_FC,
    LAST_FRES,
    LAST_PITCH,
    LOOP_END,
    LOOP_START,
    MIN_ATTENUATION,
    MIN_ATTENUATION_GAIN,
    MOD_COUNT,
    MOD_ENV,
    MOD_KEY,
    MOD_SECTION,
    MOD_VAL,
    MOD_VELOCITY,
    MODENV_NOW,
    MODENV_TO_FC,
    MODENV_TO_PITCH,
    MODLFO_DELAY,
    MODLFO_INCR,
    MODLFO_TO_FC,
    MODLFO_TO_PITCH,
    MODLFO_TO_VOL,
    MODLFO_VAL,
    NOTE_ID,
    PHASE,
    PHASE_INCR,
    PITCH,
    PLAYING,
    Q_LIN,
    QUIET,
    RELEASE,
    ROOT_PITCH_HZ,
    SAMPLE_MODE,
    SOSTENUTO,
    START,
    STATUS,
    SUSTAIN,
    SUSTAINED,
    TICK_LEFT,
    TICKS,
    VELOCITY,
    VIBLFO_DELAY,
    VIBLFO_INCR,
    VIBLFO_TO_PITCH,
    VIBLFO_VAL,
    VOL_COUNT,
    VOL_ENV,
    VOL_SECTION,
    VOL_VAL,
    ZONE,
)
from mxfd.synth.engine.layout import (
    G_CHORUS as C_CHORUS_ON,
)
from mxfd.synth.engine.layout import (
    G_REVERB as C_REVERB_ON,
)
from mxfd.synth.soundfont import modulators as m
from mxfd.synth.soundfont import units
from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.zones import LOOP_CONTINUOUS, LOOP_UNTIL_RELEASE

# fastmath lets LLVM reorder the per-sample arithmetic (a third faster at 256 voices); no code here relies on
# NaN or infinity. The numpy error model drops Python's division-by-zero checks from the loops.
_njit = numba.njit(nogil=True, cache=True, fastmath=True, error_model="numpy")
# The functions of the sample loop and the control period run without numba's reference counting: a call
# between compiled functions takes a reference to each array argument (an atomic increment and decrement
# per array per call, 14 % of a block at 256 voices).  They allocate nothing, and the arrays they get
# are the engine state's, which render_voices' caller holds for the whole block.
_F = TypeVar("_F", bound=Callable[..., Any])
_NO_REFCOUNT: dict[str, Any] = {"_nrt": False}  # numba's own option, left out of its type stubs


def _no_refcount(fn: _F) -> _F:
    return cast(_F, numba.njit(nogil=True, cache=True, fastmath=True, error_model="numpy", **_NO_REFCOUNT)(fn))
_gain = units.centibels_to_gain

# generator ids as plain ints (compiled in as literals)
G_MODLFO_TO_PITCH = int(Gen.MOD_LFO_TO_PITCH)
G_VIBLFO_TO_PITCH = int(Gen.VIB_LFO_TO_PITCH)
G_MODENV_TO_PITCH = int(Gen.MOD_ENV_TO_PITCH)
G_FC = int(Gen.INITIAL_FILTER_FC)
G_Q = int(Gen.INITIAL_FILTER_Q)
G_MODLFO_TO_FC = int(Gen.MOD_LFO_TO_FILTER_FC)
G_MODENV_TO_FC = int(Gen.MOD_ENV_TO_FILTER_FC)
G_MODLFO_TO_VOL = int(Gen.MOD_LFO_TO_VOLUME)
G_CHORUS = int(Gen.CHORUS_EFFECTS_SEND)
G_REVERB = int(Gen.REVERB_EFFECTS_SEND)
G_PAN = int(Gen.PAN)
G_MODLFO_DELAY = int(Gen.DELAY_MOD_LFO)
G_MODLFO_FREQ = int(Gen.FREQ_MOD_LFO)
G_VIBLFO_DELAY = int(Gen.DELAY_VIB_LFO)
G_VIBLFO_FREQ = int(Gen.FREQ_VIB_LFO)
G_MODENV_BASE = int(Gen.DELAY_MOD_ENV)  # delay, attack, hold, decay, sustain, release, key-to-hold, key-to-decay
G_VOLENV_BASE = int(Gen.DELAY_VOL_ENV)
G_KEYNUM = int(Gen.KEYNUM)
G_VELOCITY = int(Gen.VELOCITY)
G_ATTENUATION = int(Gen.INITIAL_ATTENUATION)
G_COARSE = int(Gen.COARSE_TUNE)
G_FINE = int(Gen.FINE_TUNE)
G_SCALE = int(Gen.SCALE_TUNING)

#: FluidSynth's shortest volume release (about 16 ms) and its noise floor for turning voices off.
MIN_VOLENV_RELEASE = -7200.0
NOISE_FLOOR = 2.0e-7
#: The release FluidSynth 2.3 gives a voice choked by its exclusive class (timecents, about 0.9 s in dB).
EXCLUSIVE_RELEASE_TC = -200.0
#: The balance controller.
CC_BALANCE = 8
_HUGE = 4294967295.0  # a section that never ends by count (FluidSynth's 0xffffffff)
#: LAST_PITCH and LAST_FC when the next control period must compute afresh: no pitch or cutoff in cents
#: (not NaN: fastmath lets LLVM assume no comparison sees one).
_UNSET = -1.0e30


@_no_refcount
def _source_value(word: int, chan: int, key: int, vel: int, ci: np.ndarray, cc: np.ndarray) -> float:
    index = word & 0x7F
    if word & 0x80:
        return float(cc[chan, index])
    if index == m.GC_VELOCITY:
        return float(vel)
    if index == m.GC_KEY:
        return float(key)
    if index == m.GC_CHANNEL_PRESSURE:
        return float(ci[C_PRESSURE, chan])
    if index == m.GC_POLY_PRESSURE:
        return float(cc[chan, KEY_PRESSURE + key])
    if index == m.GC_PITCH_WHEEL:
        return float(ci[C_BEND, chan])
    if index == m.GC_PITCH_WHEEL_SENSITIVITY:
        return float(ci[C_BEND_RANGE, chan]) / 100.0
    return 0.0  # "no controller"


@_njit
def _mod_value(k: int, chan: int, key: int, vel: int, st) -> float:  # type: ignore[no-untyped-def]
    src = st.mod_src[k]
    amount_src = st.mod_amount_src[k]
    return float(
        m.modulated_amount(
            src,
            st.mod_dest[k],
            st.mod_amount[k],
            amount_src,
            st.mod_transform[k],
            _source_value(src, chan, key, vel, st.ci, st.cc),
            _source_value(amount_src, chan, key, vel, st.ci, st.cc),
        )
    )


@_njit
def modulate(v: int, st) -> None:  # type: ignore[no-untyped-def]
    """Recompute ``gen[v]``: the zone's generators plus every modulator of the voice, from its channel now.

    The modulators' arrays are read from the state once, not per modulator (see :func:`render_voice_range`):
    a note-on and every controller change of a channel run this for each of its voices.
    """
    i = st.vi
    z = i[ZONE, v]
    chan = i[CHANNEL, v]
    key = i[MOD_KEY, v]
    vel = i[MOD_VELOCITY, v]
    gen = st.gen
    generators = st.generators
    for g in range(gen.shape[1]):
        gen[v, g] = generators[z, g]
    gen[v, G_ATTENUATION] = st.attenuation[z]
    src = st.mod_src
    amount_src = st.mod_amount_src
    dest = st.mod_dest
    amount = st.mod_amount
    transform = st.mod_transform
    ci = st.ci
    cc = st.cc
    first = st.mod_first[z]
    for k in range(first, first + st.mod_count[z]):
        gen[v, dest[k]] += m.modulated_amount(
            src[k], dest[k], amount[k], amount_src[k], transform[k],
            _source_value(src[k], chan, key, vel, ci, cc), _source_value(amount_src[k], chan, key, vel, ci, cc),
        )


@_njit
def _min_attenuation(v: int, st) -> float:  # type: ignore[no-untyped-def]
    """A lower bound of the voice's attenuation now and later (FluidSynth's voice-off estimate)."""
    z = st.vi[ZONE, v]
    chan = st.vi[CHANNEL, v]
    reduction = 0.0
    dest = st.mod_dest  # read once (see modulate)
    src = st.mod_src
    amount_src = st.mod_amount_src
    first = st.mod_first[z]
    for k in range(first, first + st.mod_count[z]):
        if dest[k] != G_ATTENUATION:
            continue
        s1 = src[k]
        s2 = amount_src[k]
        live = (s1 & 0x80) or (s2 & 0x80)
        for s in (s1, s2):
            i = s & 0x7F
            if not (s & 0x80) and (
                i == m.GC_CHANNEL_PRESSURE or i == m.GC_POLY_PRESSURE or i == m.GC_PITCH_WHEEL
            ):
                live = True
        if not live:
            continue
        now = _mod_value(k, chan, st.vi[MOD_KEY, v], st.vi[MOD_VELOCITY, v], st)
        lowest = -abs(st.mod_amount[k]) if ((s1 | s2) & 0x200) or st.mod_amount[k] < 0 else 0.0
        if now > lowest:
            reduction += now - lowest
    return float(max(st.vf[ATTENUATION, v] - reduction, 0.0))


@_njit
def update_params(v: int, st) -> None:  # type: ignore[no-untyped-def]
    """The voice's real-time parameters from ``gen[v]`` (after a start or a controller change)."""
    f = st.vf
    g = st.gen
    z = st.vi[ZONE, v]
    gain = st.config[G_GAIN]
    f[ATTENUATION, v] = min(max(g[v, G_ATTENUATION], 0.0), 1440.0)
    f[ATTENUATION_GAIN, v] = _gain(f[ATTENUATION, v])
    root = float(st.root_key[z])
    f[PITCH, v] = g[v, G_SCALE] * (st.vi[MOD_KEY, v] - root) + root * 100.0 + 100.0 * g[v, G_COARSE] + g[v, G_FINE]
    f[FRES, v] = min(max(g[v, G_FC], 1500.0), 13500.0)
    q_db = min(max(g[v, G_Q], 0.0), 960.0) / 10.0 - 3.01
    q = math.pow(10.0, q_db / 20.0)
    if q != f[Q_LIN, v]:
        f[Q_LIN, v] = q
        f[FILTER_GAIN, v] = 1.0 / math.sqrt(q)
        f[LAST_FRES, v] = -1.0
        f[LAST_FC, v] = _UNSET
    f[MODLFO_TO_PITCH, v] = min(max(g[v, G_MODLFO_TO_PITCH], -12000.0), 12000.0)
    f[VIBLFO_TO_PITCH, v] = min(max(g[v, G_VIBLFO_TO_PITCH], -12000.0), 12000.0)
    f[MODENV_TO_PITCH, v] = min(max(g[v, G_MODENV_TO_PITCH], -12000.0), 12000.0)
    f[MODLFO_TO_FC, v] = min(max(g[v, G_MODLFO_TO_FC], -12000.0), 12000.0)
    f[MODENV_TO_FC, v] = min(max(g[v, G_MODENV_TO_FC], -12000.0), 12000.0)
    f[MODLFO_TO_VOL, v] = min(max(g[v, G_MODLFO_TO_VOL], -960.0), 960.0)
    left, right = units.pan_gains(g[v, G_PAN])
    # CC8 balance (FluidSynth's fluid_balance): turned right attenuates only the left side, and the reverse
    balance = m.BALANCE_AMOUNT_CB * m.map_source(float(st.cc[st.vi[CHANNEL, v], CC_BALANCE]), m.BALANCE_SOURCE)
    if balance > 0.0:
        left *= units.centibels_to_gain(balance)
    elif balance < 0.0:
        right *= units.centibels_to_gain(-balance)
    f[GAIN_LEFT, v] = left * gain
    f[GAIN_RIGHT, v] = right * gain
    f[GAIN_REVERB, v] = units.tenths_percent(g[v, G_REVERB]) * gain * st.config[C_REVERB_ON]
    f[GAIN_CHORUS, v] = units.tenths_percent(g[v, G_CHORUS]) * gain * st.config[C_CHORUS_ON]


@_njit
def _set_section(env, v: int, e: int, s: int, count: float, coeff: float, incr: float, lo: float, hi: float) -> None:  # type: ignore[no-untyped-def]
    env[v, e, s, E_COUNT] = count
    env[v, e, s, E_COEFF] = coeff
    env[v, e, s, E_INCR] = incr
    env[v, e, s, E_MIN] = lo
    env[v, e, s, E_MAX] = hi


@_njit
def _hold_decay_periods(tc: float, per_key: float, key: int, decay: bool, rate: float) -> float:
    tc = tc + per_key * (60.0 - key)
    if decay:
        tc = min(tc, 8000.0)
    else:
        tc = min(tc, 5000.0)
        if tc <= -32768.0:
            return 0.0
    tc = max(tc, -12000.0)
    return float(int(rate * math.pow(2.0, tc / 1200.0) / CONTROL_PERIOD + 0.5))


@_njit
def _setup_envelope(v: int, st, e: int, base: int, rate: float) -> None:  # type: ignore[no-untyped-def]
    g = st.gen
    env = st.env
    key = st.vi[MOD_KEY, v]
    n = float(int(rate * units.delay_seconds(g[v, base]) / CONTROL_PERIOD))
    _set_section(env, v, e, DELAY, n, 0.0, 0.0, -1.0, 1.0)
    n = 1.0 + int(rate * units.attack_seconds(g[v, base + 1]) / CONTROL_PERIOD)
    _set_section(env, v, e, ATTACK, n, 1.0, 1.0 / n, -1.0, 1.0)
    n = _hold_decay_periods(g[v, base + 2], g[v, base + 6], key, False, rate)
    _set_section(env, v, e, HOLD, n, 1.0, 0.0, -1.0, 2.0)
    level = min(max(1.0 - 0.001 * g[v, base + 4], 0.0), 1.0)
    n = _hold_decay_periods(g[v, base + 3], g[v, base + 7], key, True, rate)
    _set_section(env, v, e, DECAY, n, 1.0, -1.0 / n if n > 0 else 0.0, level, 2.0)
    _set_section(env, v, e, SUSTAIN, _HUGE, 1.0, 0.0, -1.0, 2.0)
    lowest_release = MIN_VOLENV_RELEASE if e == VOL_ENV else -12000.0
    n = 1.0 + int(rate * units.release_seconds(max(g[v, base + 5], lowest_release)) / CONTROL_PERIOD)
    _set_section(env, v, e, RELEASE, n, 1.0, -1.0 / n, 0.0, 1.0 if e == VOL_ENV else 2.0)
    _set_section(env, v, e, FINISHED, _HUGE, 0.0, 0.0, -1.0, 1.0)


@_no_refcount
def _clear(v: int, f, i) -> None:  # type: ignore[no-untyped-def]
    # a loop, not f[:, v] = 0: the column slice's strided store loop took a third longer
    for k in range(f.shape[0]):
        f[k, v] = 0.0
    for k in range(i.shape[0]):
        i[k, v] = 0


@_njit
def start_voice(v: int, zone: int, chan: int, key: int, vel: int, note_id: int, st) -> None:  # type: ignore[no-untyped-def]
    """Set voice slot ``v`` playing ``zone`` for (key, velocity) on channel ``chan``; it sounds from its next sample."""
    f = st.vf
    i = st.vi
    rate = st.config[G_RATE]
    _clear(v, f, i)
    i[STATUS, v] = PLAYING
    i[CHANNEL, v] = chan
    i[KEY, v] = key
    i[VELOCITY, v] = vel
    i[ZONE, v] = zone
    i[HELD, v] = 1
    i[NOTE_ID, v] = note_id
    g = st.generators
    i[MOD_KEY, v] = int(g[zone, G_KEYNUM]) if g[zone, G_KEYNUM] >= 0 else key
    i[MOD_VELOCITY, v] = int(g[zone, G_VELOCITY]) if g[zone, G_VELOCITY] > 0 else vel
    i[START, v] = st.start[zone]
    i[END, v] = st.end[zone]
    i[LOOP_START, v] = st.loop_start[zone]
    i[LOOP_END, v] = st.loop_end[zone]
    i[SAMPLE_MODE, v] = st.sample_mode[zone]
    i[EXCLUSIVE, v] = st.exclusive_class[zone]
    f[Q_LIN, v] = -1.0
    modulate(v, st)
    update_params(v, st)
    f[MIN_ATTENUATION, v] = _min_attenuation(v, st)
    f[MIN_ATTENUATION_GAIN, v] = _gain(f[MIN_ATTENUATION, v])
    root = float(st.root_key[zone])
    root_hz = units.absolute_cents_to_hz(root * 100.0 - st.pitch_correction[zone])
    f[ROOT_PITCH_HZ, v] = root_hz * (rate / st.sample_rate[zone])
    gv = st.gen
    f[MODLFO_INCR, v] = 4.0 * CONTROL_PERIOD * units.lfo_hz(gv[v, G_MODLFO_FREQ]) / rate
    f[VIBLFO_INCR, v] = 4.0 * CONTROL_PERIOD * units.lfo_hz(gv[v, G_VIBLFO_FREQ]) / rate
    i[MODLFO_DELAY, v] = int(rate * units.delay_seconds(gv[v, G_MODLFO_DELAY]))
    i[VIBLFO_DELAY, v] = int(rate * units.delay_seconds(gv[v, G_VIBLFO_DELAY]))
    _setup_envelope(v, st, VOL_ENV, G_VOLENV_BASE, rate)
    _setup_envelope(v, st, MOD_ENV, G_MODENV_BASE, rate)
    i[VOL_SECTION, v] = DELAY
    i[MOD_SECTION, v] = DELAY
    i[FILTER_STARTUP, v] = 1
    f[LAST_FRES, v] = -1.0
    f[LAST_FC, v] = _UNSET
    f[LAST_PITCH, v] = _UNSET
    i[PHASE, v] = i[START, v] * PHASE_ONE
    mode = i[SAMPLE_MODE, v]
    if (mode == LOOP_CONTINUOUS or mode == LOOP_UNTIL_RELEASE) and i[START, v] >= i[LOOP_END, v]:
        i[PHASE, v] = i[LOOP_START, v] * PHASE_ONE
    i[TICK_LEFT, v] = 0  # the first control period begins at the voice's first sample


@_njit
def release(v: int, st) -> None:  # type: ignore[no-untyped-def]
    """Move the voice to its release sections (FluidSynth's noteoff), keeping the amplitude continuous."""
    f = st.vf
    i = st.vi
    if i[STATUS, v] != PLAYING:
        return
    if i[VOL_SECTION, v] == ATTACK and f[VOL_VAL, v] > 0.0:
        lfo = f[MODLFO_VAL, v] * -f[MODLFO_TO_VOL, v]
        amp = f[VOL_VAL, v] * _gain(lfo)
        env_value = -(((-200.0 / math.log(10.0)) * math.log(amp) - lfo) / units.PEAK_ATTENUATION_CB - 1.0)
        f[VOL_VAL, v] = min(max(env_value, 0.0), 1.0)
    if i[MOD_SECTION, v] == ATTACK and f[MOD_VAL, v] > 0.0:
        f[MOD_VAL, v] = min(max(units.convex(127.0 * f[MOD_VAL, v]), 0.0), 1.0)
    i[VOL_SECTION, v] = RELEASE
    i[VOL_COUNT, v] = 0
    i[MOD_SECTION, v] = RELEASE
    i[MOD_COUNT, v] = 0
    i[HELD, v] = 0
    i[SUSTAINED, v] = 0
    i[SOSTENUTO, v] = 0
    i[TICK_LEFT, v] = 0  # the release takes effect at once, not at the end of the control period


@_njit
def kill_exclusive(v: int, st) -> None:  # type: ignore[no-untyped-def]
    """Choke a voice for a newer one of its exclusive class: a fast release."""
    st.vi[EXCLUSIVE, v] = 0
    n = 1.0 + int(st.config[G_RATE] * units.release_seconds(EXCLUSIVE_RELEASE_TC) / CONTROL_PERIOD)
    _set_section(st.env, v, VOL_ENV, RELEASE, n, 1.0, -1.0 / n, 0.0, 1.0)
    release(v, st)


@_njit
def _env_step(v: int, st, e: int, sec_field: int, count_field: int, val_field: int) -> None:  # type: ignore[no-untyped-def]
    """Step envelope ``e`` of voice ``v`` by one control period."""
    _env_step_arrays(v, st.vf, st.vi, st.env, e, sec_field, count_field, val_field)


@_no_refcount
def _env_step_arrays(v: int, f, i, env, e: int, sec_field: int, count_field: int, val_field: int) -> None:  # type: ignore[no-untyped-def]
    sec = i[sec_field, v]
    count = i[count_field, v]
    val = f[val_field, v]
    while count >= env[v, e, sec, E_COUNT]:
        if sec == DECAY:
            val = env[v, e, sec, E_MIN] * env[v, e, sec, E_COEFF]
        sec += 1
        count = 0
    x = env[v, e, sec, E_COEFF] * val + env[v, e, sec, E_INCR]
    if x < env[v, e, sec, E_MIN]:
        x = env[v, e, sec, E_MIN]
        sec += 1
        count = 0
    elif x > env[v, e, sec, E_MAX]:
        x = env[v, e, sec, E_MAX]
        sec += 1
        count = 0
    else:
        count += 1
    i[sec_field, v] = sec
    i[count_field, v] = count
    f[val_field, v] = x


@_no_refcount
def _lfo_step(v: int, f, val_field: int, incr_field: int, delay: int, ticks: int) -> None:  # type: ignore[no-untyped-def]
    if ticks < delay:
        return
    x = f[val_field, v] + f[incr_field, v]
    if x > 1.0:
        f[incr_field, v] = -f[incr_field, v]
        x = 2.0 - x
    elif x < -1.0:
        f[incr_field, v] = -f[incr_field, v]
        x = -2.0 - x
    f[val_field, v] = x


@_no_refcount
def _filter_coefficients(v: int, f, i, rate: float, fmod: float) -> None:  # type: ignore[no-untyped-def]
    cents = min(max(f[FRES, v] + fmod, 1500.0), 13500.0)
    if cents == f[LAST_FC, v]:
        return  # what the last period found, so the same coefficients (a cutoff without modulation)
    f[LAST_FC, v] = cents
    fres = units.filter_cutoff_hz(cents)
    if fres > 0.45 * rate:
        fres = 0.45 * rate
    elif fres < 5.0:
        fres = 5.0
    if abs(fres - f[LAST_FRES, v]) <= 0.01:
        return
    f[LAST_FRES, v] = fres
    omega = 2.0 * math.pi * fres / rate
    sin_c = math.sin(omega)
    cos_c = math.cos(omega)
    alpha = sin_c / (2.0 * f[Q_LIN, v])
    a0_inv = 1.0 / (1.0 + alpha)
    a1 = -2.0 * cos_c * a0_inv
    a2 = (1.0 - alpha) * a0_inv
    b1 = (1.0 - cos_c) * a0_inv * f[FILTER_GAIN, v]
    b02 = b1 * 0.5
    if i[FILTER_STARTUP, v]:
        f[A1, v] = a1
        f[A2, v] = a2
        f[B02, v] = b02
        f[B1, v] = b1
        i[FILTER_INCR_COUNT, v] = 0
        i[FILTER_STARTUP, v] = 0
    else:
        f[A1_INCR, v] = (a1 - f[A1, v]) / CONTROL_PERIOD
        f[A2_INCR, v] = (a2 - f[A2, v]) / CONTROL_PERIOD
        f[B02_INCR, v] = (b02 - f[B02, v]) / CONTROL_PERIOD
        f[B1_INCR, v] = (b1 - f[B1, v]) / CONTROL_PERIOD
        i[FILTER_INCR_COUNT, v] = CONTROL_PERIOD


@_no_refcount
def control_step(v: int, f, i, env, config) -> int:  # type: ignore[no-untyped-def]
    """Begin a control period: step envelopes and LFOs, set pitch, amplitude ramp and filter.

    Returns 1 (render the period), -1 (the period is silent: delay or no amplitude) or 0 (the voice has ended).
    Takes the state's arrays rather than the state (see :func:`render_voices`).
    """
    ticks = i[TICKS, v]
    i[TICKS, v] = ticks + CONTROL_PERIOD
    _env_step_arrays(v, f, i, env, VOL_ENV, VOL_SECTION, VOL_COUNT, VOL_VAL)
    if i[VOL_SECTION, v] == FINISHED:
        return 0
    _env_step_arrays(v, f, i, env, MOD_ENV, MOD_SECTION, MOD_COUNT, MOD_VAL)
    _lfo_step(v, f, MODLFO_VAL, MODLFO_INCR, i[MODLFO_DELAY, v], ticks)
    _lfo_step(v, f, VIBLFO_VAL, VIBLFO_INCR, i[VIBLFO_DELAY, v], ticks)

    section = i[VOL_SECTION, v]
    if section == DELAY:
        return -1
    lfo_cb = f[MODLFO_VAL, v] * -f[MODLFO_TO_VOL, v]
    if section == ATTACK:
        target = f[ATTENUATION_GAIN, v] * _gain(lfo_cb) * f[VOL_VAL, v]
    else:
        target = f[ATTENUATION_GAIN, v] * _gain(units.PEAK_ATTENUATION_CB * (1.0 - f[VOL_VAL, v]) + lfo_cb)
        amp_max = f[MIN_ATTENUATION_GAIN, v] * f[VOL_VAL, v]
        if amp_max < NOISE_FLOOR / config[G_GAIN]:
            return 0
    f[AMP_INCR, v] = (target - f[AMP, v]) / CONTROL_PERIOD
    if f[AMP, v] == 0.0 and f[AMP_INCR, v] == 0.0:
        return -1

    if i[MOD_SECTION, v] == ATTACK:
        modenv = units.convex(127.0 * f[MOD_VAL, v])
    else:
        modenv = f[MOD_VAL, v]
    f[MODENV_NOW, v] = modenv
    pitch = (
        f[PITCH, v]
        + f[MODLFO_VAL, v] * f[MODLFO_TO_PITCH, v]
        + f[VIBLFO_VAL, v] * f[VIBLFO_TO_PITCH, v]
        + modenv * f[MODENV_TO_PITCH, v]
    )
    if pitch != f[LAST_PITCH, v]:  # the same pitch as the last period's keeps its increment
        f[LAST_PITCH, v] = pitch
        incr = units.absolute_cents_to_hz(pitch) / f[ROOT_PITCH_HZ, v]
        f[PHASE_INCR, v] = incr if incr != 0.0 else 1.0
    _filter_coefficients(v, f, i, config[G_RATE], f[MODLFO_VAL, v] * f[MODLFO_TO_FC, v] + modenv * f[MODENV_TO_FC, v])
    return 1


@_no_refcount
def _word(words, low, j: int) -> float:  # type: ignore[no-untyped-def]
    if low.shape[0]:
        return float((np.int32(words[j]) << 8) | np.int32(low[j])) * (1.0 / 8388608.0)
    return float(words[j]) * (1.0 / 32768.0)


@_no_refcount
def _point(words, low, j: int, lo: int, hi: int, loop_len: int, looping: bool, has_looped: bool) -> float:  # type: ignore[no-untyped-def]
    """Sample ``j`` as the interpolator sees it next to the window ``[lo, hi)``.

    Past the end a looping voice reads the loop's start, an unlooped one repeats its last sample; before the
    start a voice that has looped reads the loop's end, else repeats its first sample (FluidSynth's rules).
    """
    if j >= hi:
        j = j - loop_len if looping else hi - 1
    elif j < lo:
        j = j + loop_len if has_looped else lo
    return _word(words, low, j)


#: The phase's fixed point: frames in the high 32 bits, the fraction in the low 32 (FluidSynth's fluid_phase_t).
PHASE_ONE = 1 << 32
_SHIFT_INDEX = np.uint64(32)
_SHIFT_ROW = np.uint64(32 - 8)  # the fraction's top 8 bits pick the coefficients' row
_ROW_MASK = np.uint64(255)
_U0 = np.uint64(0)
_U1 = np.uint64(1)
_U2 = np.uint64(2)


def _cubic_table() -> npt.NDArray[np.float64]:
    """FluidSynth's 4-point ("4th order") coefficients at the 256 fractions i / 256 (its interp_coeff)."""
    x = np.arange(256, dtype=np.float64) / 256.0
    return np.ascontiguousarray(
        np.stack(
            [x * (-0.5 + x * (1.0 - 0.5 * x)), 1.0 + x * x * (1.5 * x - 2.5), x * (0.5 + x * (2.0 - 1.5 * x)),
             0.5 * x * x * (x - 1.0)],
            axis=1,
        )
    )


#: Compiled in as a constant: a table look-up costs less than the four cubics it replaces.
CUBIC = _cubic_table()


@_no_refcount
def _interior(words, low, ph) -> float:  # type: ignore[no-untyped-def]
    """The interpolated sample at fixed-point phase ``ph`` (uint64) with all four points inside the window.

    No checks, and unsigned indices: numba wraps a negative signed index around the array's end, and those
    tests in every access cost more than the arithmetic.
    """
    c = CUBIC
    j = ph >> _SHIFT_INDEX
    r = (ph >> _SHIFT_ROW) & _ROW_MASK
    if low.shape[0]:
        return float(
            c[r, 0] * float((np.int32(words[j - _U1]) << 8) | np.int32(low[j - _U1]))
            + c[r, 1] * float((np.int32(words[j]) << 8) | np.int32(low[j]))
            + c[r, 2] * float((np.int32(words[j + _U1]) << 8) | np.int32(low[j + _U1]))
            + c[r, 3] * float((np.int32(words[j + _U2]) << 8) | np.int32(low[j + _U2]))
        ) * (1.0 / 8388608.0)
    return float(
        c[r, 0] * float(words[j - _U1])
        + c[r, 1] * float(words[j])
        + c[r, 2] * float(words[j + _U1])
        + c[r, 3] * float(words[j + _U2])
    ) * (1.0 / 32768.0)


@_no_refcount
def _run(v: int, f, words, low, out, t0: int, t1: int, ph, inc, amp: float, amp_incr: float, ramp: int):  # type: ignore[no-untyped-def]
    """Frames ``[t0, t1)`` of voice ``v``, all four points of each inside the window: interpolate, filter, mix.

    ``ph`` and ``inc`` are the fixed-point phase and increment (uint64); returns the phase, amplitude and
    filter ramp count after the run, which ramps the filter's coefficients throughout or not at all.  The
    filter's state comes from and goes back to ``f``.  Three loops, none testing anything per sample: a
    ramping filter (into all four buses), a steady one into all four, and a steady one for a voice that
    feeds no effect bus (into left and right only); with the tests of the ramp and the effect gains in the
    loop it took 7 % longer.  Interpolation, filter and mix stay in one loop: the filter's recursion is
    a chain of dependent multiplications, and the interpolation of the next samples fills the time it
    waits (split into stages over a buffer, as FluidSynth does, the same work took a tenth longer).
    """
    a1 = f[A1, v]
    a2 = f[A2, v]
    b02 = f[B02, v]
    b1 = f[B1, v]
    h1 = f[HIST1, v]
    h2 = f[HIST2, v]
    a1i = f[A1_INCR, v]
    a2i = f[A2_INCR, v]
    b02i = f[B02_INCR, v]
    b1i = f[B1_INCR, v]
    gl = f[GAIN_LEFT, v]
    gr = f[GAIN_RIGHT, v]
    grev = f[GAIN_REVERB, v]
    gcho = f[GAIN_CHORUS, v]
    if ramp > 0:  # the filter's coefficients ramping to new ones: the ramp covers the run (see render_span)
        ramp -= t1 - t0
        for t in range(np.uint64(t0), np.uint64(t1)):
            amp += amp_incr
            s = _interior(words, low, ph) * amp
            ph += inc
            centre = s - a1 * h1 - a2 * h2
            y = b02 * (centre + h2) + b1 * h1
            h2 = h1
            h1 = centre
            a1 += a1i
            a2 += a2i
            b02 += b02i
            b1 += b1i
            out[0, t] += y * gl
            out[1, t] += y * gr
            out[2, t] += y * gcho
            out[3, t] += y * grev
    elif gcho != 0.0 or grev != 0.0:
        for t in range(np.uint64(t0), np.uint64(t1)):
            amp += amp_incr
            s = _interior(words, low, ph) * amp
            ph += inc
            centre = s - a1 * h1 - a2 * h2
            y = b02 * (centre + h2) + b1 * h1
            h2 = h1
            h1 = centre
            out[0, t] += y * gl
            out[1, t] += y * gr
            out[2, t] += y * gcho
            out[3, t] += y * grev
    else:
        for t in range(np.uint64(t0), np.uint64(t1)):  # the same, into the left and right buses only
            amp += amp_incr
            s = _interior(words, low, ph) * amp
            ph += inc
            centre = s - a1 * h1 - a2 * h2
            y = b02 * (centre + h2) + b1 * h1
            h2 = h1
            h1 = centre
            out[0, t] += y * gl
            out[1, t] += y * gr
    f[A1, v] = a1
    f[A2, v] = a2
    f[B02, v] = b02
    f[B1, v] = b1
    f[HIST1, v] = h1
    f[HIST2, v] = h2
    return ph, amp, ramp


@_no_refcount
def _one(v: int, f, out, t: int, s: float, ramp: int) -> int:  # type: ignore[no-untyped-def]
    """Filter and mix one sample ``s`` (amplitude applied) of voice ``v`` at frame ``t``; the ramp count after."""
    h1 = f[HIST1, v]
    h2 = f[HIST2, v]
    centre = s - f[A1, v] * h1 - f[A2, v] * h2
    y = f[B02, v] * (centre + h2) + f[B1, v] * h1
    f[HIST2, v] = h1
    f[HIST1, v] = centre
    if ramp > 0:
        ramp -= 1
        f[A1, v] += f[A1_INCR, v]
        f[A2, v] += f[A2_INCR, v]
        f[B02, v] += f[B02_INCR, v]
        f[B1, v] += f[B1_INCR, v]
    out[0, t] += y * f[GAIN_LEFT, v]
    out[1, t] += y * f[GAIN_RIGHT, v]
    out[2, t] += y * f[GAIN_CHORUS, v]
    out[3, t] += y * f[GAIN_REVERB, v]
    return ramp


@_no_refcount
def render_span(v: int, f, i, words, low, out, a: int, b: int) -> bool:  # type: ignore[no-untyped-def]
    """Add samples ``[a, b)`` of voice ``v`` (all in one control period) to the buses; False when its sample ended.

    The samples go in runs: as long as all four points of every sample lie inside the loop (or the
    sample), :func:`_run` takes them unchecked; a sample next to a boundary takes the checked path, which
    wraps around the loop and finds the points from its other end.
    """
    ph = np.uint64(i[PHASE, v])
    # FluidSynth's fluid_phase_set_float: the increment's fraction truncated to 32 bits
    inc = np.uint64(f[PHASE_INCR, v] * PHASE_ONE)
    if inc == _U0:
        inc = _U1  # a pitch 2**-32 of the root's still moves: a run's length is divided by the increment
    amp = f[AMP, v]
    amp_incr = f[AMP_INCR, v]
    ramp = i[FILTER_INCR_COUNT, v]
    mode = i[SAMPLE_MODE, v]
    looping = mode == LOOP_CONTINUOUS or (mode == LOOP_UNTIL_RELEASE and i[VOL_SECTION, v] < RELEASE)
    start = i[START, v]
    loop_start = i[LOOP_START, v]
    loop_end = i[LOOP_END, v]
    end = i[END, v]
    has_looped = i[HAS_LOOPED, v] != 0
    hi = loop_end if looping else end
    loop_len = loop_end - loop_start
    c = CUBIC
    alive = True
    t = a
    while t < b:
        idx = int(np.int64(ph >> _SHIFT_INDEX))
        if looping:
            if idx >= loop_end:
                ph -= np.uint64(loop_len) << _SHIFT_INDEX
                idx = int(np.int64(ph >> _SHIFT_INDEX))
                has_looped = True
        elif idx >= end:
            alive = False
            break
        lo = loop_start if has_looped else start
        if idx - 1 >= lo and idx + 2 < hi:
            # the samples before the first whose last point would reach the window's end (exact in fixed point)
            boundary = np.uint64(hi - 2) << _SHIFT_INDEX
            stop = min(b, t + int(np.int64((boundary - ph + inc - _U1) // inc)))
            if ramp > 0:
                stop = min(stop, t + ramp)  # a run ramps the filter throughout or not at all
            ph, amp, ramp = _run(v, f, words, low, out, t, stop, ph, inc, amp, amp_incr, ramp)
            t = stop
            continue
        r = (ph >> _SHIFT_ROW) & _ROW_MASK
        s = (
            c[r, 0] * _point(words, low, idx - 1, lo, hi, loop_len, looping, has_looped)
            + c[r, 1] * _point(words, low, idx, lo, hi, loop_len, looping, has_looped)
            + c[r, 2] * _point(words, low, idx + 1, lo, hi, loop_len, looping, has_looped)
            + c[r, 3] * _point(words, low, idx + 2, lo, hi, loop_len, looping, has_looped)
        )
        # The ramp steps before the sample (FluidSynth's steps after): a voice's first sample is already
        # above zero, so a note is heard from the very sample of its note-on.
        amp += amp_incr
        ph += inc
        ramp = _one(v, f, out, t, s * amp, ramp)
        t += 1
    if abs(f[HIST1, v]) < 1e-20:
        f[HIST1, v] = 0.0  # no denormals in a dying filter
    if abs(f[HIST2, v]) < 1e-20:
        f[HIST2, v] = 0.0
    i[PHASE, v] = np.int64(ph)
    f[AMP, v] = amp
    i[FILTER_INCR_COUNT, v] = ramp
    i[HAS_LOOPED, v] = 1 if has_looped else 0
    return alive


@_njit
def render_voices(st, a: int, b: int) -> None:  # type: ignore[no-untyped-def]
    """Add samples ``[a, b)`` of every voice sounding to the buses; free those that end."""
    render_voice_range(st, a, b, 0, st.counters[K_HIGH_WATER], st.out)


@_njit
def render_voice_range(st, a: int, b: int, first: int, end: int, out) -> None:  # type: ignore[no-untyped-def]
    """Add samples ``[a, b)`` of the voices in slots ``[first, end)`` sounding to ``out``; free those that end.

    The state's arrays are taken from it once here and passed down: each attribute read of a structref
    takes a reference to the array (an atomic increment, and a decrement later), and taken per voice and
    per control period those cost more than the envelopes.  A part of the slots is one thread's share
    (:mod:`mxfd.synth.engine.shared`); each writes only its own voices' columns and its own buses.
    """
    f = st.vf
    i = st.vi
    env = st.env
    config = st.config
    words = st.words
    low = st.low
    for v in range(first, end):
        if i[STATUS, v] == PLAYING:
            if not render_voice(v, f, i, env, config, words, low, out, a, b):
                i[STATUS, v] = FREE  # as free() does


@_no_refcount
def render_voice(v: int, f, i, env, config, words, low, out, a: int, b: int) -> bool:  # type: ignore[no-untyped-def]
    """Add samples ``[a, b)`` of voice ``v`` to the buses, stepping its control periods; False when it ended."""
    pos = a
    while pos < b:
        if i[TICK_LEFT, v] == 0:
            state = control_step(v, f, i, env, config)
            if state == 0:
                return False
            i[QUIET, v] = 1 if state < 0 else 0
            i[TICK_LEFT, v] = CONTROL_PERIOD
        m = min(i[TICK_LEFT, v], b - pos)
        if not i[QUIET, v]:
            if not render_span(v, f, i, words, low, out, pos, pos + m):
                return False
        i[TICK_LEFT, v] -= m
        pos += m
    return True


@_njit
def free(v: int, st) -> None:  # type: ignore[no-untyped-def]
    st.vi[STATUS, v] = FREE
