"""The engine's state as a struct of arrays: voices, channels, the font's tables and the block's events.

Theory of operation
-------------------
Everything the compiled code reads or writes lives in preallocated numpy
arrays, held together by one :class:`EngineState` (a numba structref), so
compiled code reaches each array by attribute with no Python object in
between (the real-time audio callback, compiled too, is to take the same arrays).  A voice is a
column: ``vf`` holds its float fields (``vf[AMP, v]``), ``vi`` its integer
fields, ``gen`` its generator values (the zone's, plus what the modulators
add) and ``env`` its two envelopes (volume, modulation), seven sections of
(count, coeff, increment, min, max) each, as FluidSynth's ADSR envelopes
are laid out.  A channel is a column of ``ci`` plus a row of ``cc``: its
128 controller values, then (from :data:`KEY_PRESSURE`) the polyphonic
key pressure of each of its 128 keys.  The font's zone tables are the soundfont
package's, unchanged.  Field numbers are module constants, which numba
compiles in as literals.
"""

from __future__ import annotations

from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt
from numba.core import types
from numba.experimental import structref

from mxfd.core import midi
from mxfd.synth.soundfont.font import SoundFont
from mxfd.synth.soundfont.generators import N_GENERATORS

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# -- voice float fields -----------------------------------------------------------------------
PHASE_INCR = 0
AMP = 1  # envelope x attenuation amplitude now, ramped per control period
AMP_INCR = 2
PITCH = 3  # cents
ROOT_PITCH_HZ = 4
ATTENUATION = 5  # centibels (gen + modulators, clamped)
MIN_ATTENUATION = 6
MODLFO_VAL = 7
MODLFO_INCR = 8
VIBLFO_VAL = 9
VIBLFO_INCR = 10
MODLFO_TO_PITCH = 11
VIBLFO_TO_PITCH = 12
MODENV_TO_PITCH = 13
MODLFO_TO_FC = 14
MODENV_TO_FC = 15
MODLFO_TO_VOL = 16
FRES = 17  # filter cutoff, absolute cents
Q_LIN = 18
FILTER_GAIN = 19
LAST_FRES = 20  # Hz, -1 to force a new calculation
A1 = 21
A2 = 22
B02 = 23
B1 = 24
A1_INCR = 25
A2_INCR = 26
B02_INCR = 27
B1_INCR = 28
HIST1 = 29
HIST2 = 30
GAIN_LEFT = 31
GAIN_RIGHT = 32
GAIN_REVERB = 33
GAIN_CHORUS = 34
VOL_VAL = 35  # envelope values
MOD_VAL = 36
MODENV_NOW = 37  # the modulation envelope as it drives pitch and filter (convex in attack)
ATTENUATION_GAIN = 38  # cB-to-gain of ATTENUATION and of MIN_ATTENUATION, kept with them (not per period)
MIN_ATTENUATION_GAIN = 39
LAST_PITCH = 40  # the pitch (cents) PHASE_INCR was last computed for: a steady pitch costs no power of 2
LAST_FC = 41  # the filter cutoff (cents, clamped) LAST_FRES was computed for
N_VOICE_F = 42

# -- voice integer fields ---------------------------------------------------------------------
STATUS = 0  # FREE or PLAYING
CHANNEL = 1
KEY = 2  # the key that started the voice (note-offs match it)
VELOCITY = 3
ZONE = 4
HELD = 5  # key still down
SUSTAINED = 6  # key up while the sustain pedal was down
SOSTENUTO = 7
VOL_SECTION = 8
VOL_COUNT = 9
MOD_SECTION = 10
MOD_COUNT = 11
TICKS = 12  # samples of control periods begun since the start
TICK_LEFT = 13  # samples left in the current control period
QUIET = 14  # the current control period renders nothing (delay, or zero amplitude)
START = 15
END = 16  # exclusive
LOOP_START = 17
LOOP_END = 18  # exclusive
SAMPLE_MODE = 19
HAS_LOOPED = 20
EXCLUSIVE = 21
NOTE_ID = 22  # start order: the note-on that started the voice
MODLFO_DELAY = 23  # samples
VIBLFO_DELAY = 24
FILTER_STARTUP = 25
FILTER_INCR_COUNT = 26
MOD_KEY = 27  # key and velocity the modulators and pitch see (keynum / velocity generators)
MOD_VELOCITY = 28
PHASE = 29  # position in the sample data: frames in the high 32 bits, the fraction in the low (FluidSynth's phase)
N_VOICE_I = 30

FREE = 0
PLAYING = 1

# envelope sections, as FluidSynth numbers them
DELAY = 0
ATTACK = 1
HOLD = 2
DECAY = 3
SUSTAIN = 4
RELEASE = 5
FINISHED = 6
N_SECTIONS = 7
# envelope data fields
E_COUNT = 0
E_COEFF = 1
E_INCR = 2
E_MIN = 3
E_MAX = 4
VOL_ENV = 0
MOD_ENV = 1

# -- channel integer fields -------------------------------------------------------------------
C_PROGRAM = 0
C_BANK_MSB = 1
C_BANK_LSB = 2
C_PRESET = 3  # preset index in the font's table, -1 for none (resolved at program or bank change)
C_PRESSURE = 4
C_BEND = 5  # 14-bit, 8192 centre
C_BEND_RANGE = 6  # cents
C_RPN = 7  # selected RPN, 0x3FFF null
C_NRPN = 8  # an NRPN is selected (data entry ignored)
C_SUSTAIN = 9
C_SOSTENUTO = 10
C_DRUM = 11  # plays bank 128
C_SOSTENUTO_ID = 12  # note id when sostenuto went down
N_CHANNEL_I = 13

# -- counters (EngineArrays.counters) ---------------------------------------------------------
K_NOTES = 0
K_STOLEN = 1
K_NO_PRESET = 2  # note-ons on a channel whose preset the font lacks
K_VOICES_PEAK = 3
K_SOUNDING = 4  # voices sounding after the last block
K_HIGH_WATER = 5  # one past the highest voice slot in use
#: Below this high-water mark a span is rendered by one thread (:mod:`.shared`: the handshake costs more).
MIN_SHARED_VOICES: Final = 8
K_NEXT_NOTE_ID = 6
K_IGNORED = 7  # messages the engine does not act on
K_MALFORMED = 8
K_EXCLUSIVE_KILLS = 9
N_COUNTERS = 10
#: Counters that count since the start: a new font's state takes them over.
CUMULATIVE_COUNTERS: Final = (
    K_NOTES, K_STOLEN, K_NO_PRESET, K_VOICES_PEAK, K_NEXT_NOTE_ID, K_IGNORED, K_MALFORMED, K_EXCLUSIVE_KILLS,
)  # fmt: skip

# -- configuration (EngineArrays.config) ------------------------------------------------------
G_RATE = 0
G_GAIN = 1
G_REVERB = 2  # 1.0: render the reverb send bus (0.0: nobody listens, so no voice spends time on it)
G_CHORUS = 3  # 1.0: render the chorus send bus
N_CONFIG = 4

#: Output buses of a block: left, right, chorus send, reverb send (the order mxfd.synth.master.Master mixes).
BUSES = 4
#: Samples per control period: envelopes, LFOs, pitch and filter are updated this often, as in FluidSynth.
CONTROL_PERIOD = 64
#: Where a channel's key pressures start in its row of ``cc`` (after its 128 controllers).
KEY_PRESSURE = 128


@structref.register
class EngineStateType(types.StructRef):
    """The numba type of :class:`EngineState`."""

    def preprocess_fields(self, fields):  # type: ignore[no-untyped-def]
        return tuple((name, types.unliteral(typ)) for name, typ in fields)  # type: ignore[no-untyped-call]


class EngineState(structref.StructRefProxy):
    """Every array of the engine in one object: compiled code takes this one argument.

    One structure (a numba structref) rather than tuples of arrays because crossing from Python into
    compiled code costs per object: a call with this one argument costs about a microsecond.
    """


#: The fields of EngineState, in order; each is a numpy array (see :func:`new_state`).
FIELDS: Final = (
    # voices: (field, voice) matrices, generators per voice, envelope data per voice
    "vf", "vi", "gen", "env",
    # channels: integer fields per channel, controller values per channel
    "ci", "cc",
    # the font's zone tables (as ZoneTables names them) and its modulator pool, split by field
    "preset_key", "key_index", "key_zones", "vel_lo", "vel_hi", "generators",
    "start", "end", "loop_start", "loop_end", "sample_mode", "root_key",
    "pitch_correction", "attenuation", "exclusive_class", "sample_rate",
    "mod_first", "mod_count", "mod_src", "mod_dest", "mod_amount", "mod_amount_src", "mod_transform",
    # sample data: the mapped 16-bit words and the sm24 low bytes (empty without sm24)
    "words", "low",
    # the block's events: sample offset, first channel of the group, length, bytes
    "ev_offset", "ev_base", "ev_length", "ev_data",
    # output buses (BUSES, max block), counters, configuration, scratch, MIDI byte tables
    "out", "counters", "config", "select", "status_kind", "data_length",
)  # fmt: skip

structref.define_proxy(EngineState, EngineStateType, list(FIELDS))  # type: ignore[no-untyped-call]

# The proxy's own constructor is compiled afresh in every process (about a second); this one is cached.
@numba.njit(cache=True)
def _construct(  # type: ignore[no-untyped-def]
    vf,
    vi,
    gen,
    env,
    ci,
    cc,
    preset_key,
    key_index,
    key_zones,
    vel_lo,
    vel_hi,
    generators,
    start,
    end,
    loop_start,
    loop_end,
    sample_mode,
    root_key,
    pitch_correction,
    attenuation,
    exclusive_class,
    sample_rate,
    mod_first,
    mod_count,
    mod_src,
    mod_dest,
    mod_amount,
    mod_amount_src,
    mod_transform,
    words,
    low,
    ev_offset,
    ev_base,
    ev_length,
    ev_data,
    out,
    counters,
    config,
    select,
    status_kind,
    data_length,
):
    return EngineState(  # type: ignore[no-untyped-call]
        vf,
        vi,
        gen,
        env,
        ci,
        cc,
        preset_key,
        key_index,
        key_zones,
        vel_lo,
        vel_hi,
        generators,
        start,
        end,
        loop_start,
        loop_end,
        sample_mode,
        root_key,
        pitch_correction,
        attenuation,
        exclusive_class,
        sample_rate,
        mod_first,
        mod_count,
        mod_src,
        mod_dest,
        mod_amount,
        mod_amount_src,
        mod_transform,
        words,
        low,
        ev_offset,
        ev_base,
        ev_length,
        ev_data,
        out,
        counters,
        config,
        select,
        status_kind,
        data_length,
    )


def _i64(a: npt.NDArray[Any]) -> I64:
    return np.ascontiguousarray(a, dtype=np.int64)


def _i32(a: npt.NDArray[Any]) -> npt.NDArray[np.int32]:
    return np.ascontiguousarray(a, dtype=np.int32)


def _f64(a: npt.NDArray[Any]) -> F64:
    return np.ascontiguousarray(a, dtype=np.float64)


def new_state(
    font: SoundFont, *, voices: int, channels: int, events: int, block: int, rate: float, gain: float
) -> tuple[EngineState, dict[str, npt.NDArray[Any]]]:
    """A fresh state for ``font``; also its arrays by field name (the Python side reads and fills them)."""
    t = font.tables
    s = font.samples
    words = s.data.view()
    low = (s.low if s.low is not None else np.zeros(0, np.uint8)).view()
    # Read-only always (an SF2's are views of a read-only mmap, an SF3's decoded arrays): one compiled type.
    words.flags.writeable = False
    low.flags.writeable = False
    config = np.zeros(N_CONFIG, np.float64)
    config[G_RATE] = rate
    config[G_GAIN] = gain
    config[G_REVERB] = 1.0
    config[G_CHORUS] = 1.0
    arrays: dict[str, npt.NDArray[Any]] = {
        "vf": np.zeros((N_VOICE_F, voices), np.float64),
        "vi": np.zeros((N_VOICE_I, voices), np.int64),
        "gen": np.zeros((voices, N_GENERATORS), np.float64),
        "env": np.zeros((voices, 2, N_SECTIONS, 5), np.float64),
        "ci": np.zeros((N_CHANNEL_I, channels), np.int64),
        "cc": np.zeros((channels, KEY_PRESSURE + 128), np.int64),
        "preset_key": _i64(t.preset_key),
        "key_index": _i64(t.key_index),
        "key_zones": _i32(t.key_zones),
        "vel_lo": _i32(t.vel_lo),
        "vel_hi": _i32(t.vel_hi),
        "generators": _f64(t.generators),
        "start": _i64(t.start),
        "end": _i64(t.end),
        "loop_start": _i64(t.loop_start),
        "loop_end": _i64(t.loop_end),
        "sample_mode": _i32(t.sample_mode),
        "root_key": _i32(t.root_key),
        "pitch_correction": _f64(t.pitch_correction),
        "attenuation": _f64(t.attenuation),
        "exclusive_class": _i32(t.exclusive_class),
        "sample_rate": _f64(t.sample_rate),
        "mod_first": _i32(t.mod_first),
        "mod_count": _i32(t.mod_count),
        "mod_src": _i64(t.mod_src),
        "mod_dest": _i64(t.mod_dest),
        "mod_amount": _f64(t.mod_amount),
        "mod_amount_src": _i64(t.mod_amount_src),
        "mod_transform": _i64(t.mod_transform),
        "words": words,
        "low": low,
        "ev_offset": np.zeros(events, np.int64),
        "ev_base": np.zeros(events, np.int64),
        "ev_length": np.zeros(events, np.int64),
        "ev_data": np.zeros((events, 3), np.uint8),
        # float64, as the voices compute: a float32 bus cost two conversions per voice, sample and bus
        # (5 % of the voice loop)
        "out": np.zeros((BUSES, block), np.float64),
        "counters": np.zeros(N_COUNTERS, np.int64),
        "config": config,
        "select": np.zeros(max(t.max_voices, 1), np.int32),
        "status_kind": np.frombuffer(midi.STATUS_KIND, np.uint8).copy(),
        "data_length": np.frombuffer(midi.DATA_LENGTH, np.uint8).copy(),
    }
    return _construct(*(arrays[name] for name in FIELDS)), arrays
