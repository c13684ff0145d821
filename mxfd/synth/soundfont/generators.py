"""The SoundFont 2.04 generator table (sections 8.1.2 and 8.1.3): ids, names, units, ranges, defaults.

Theory of operation
-------------------
A generator is one synthesis parameter set by a zone.  At instrument level
its value is absolute; at preset level it is an offset *added* to the
instrument's value (section 8.5), except for the generators that are not
additive: the key and velocity ranges (which select zones), ``instrument``
and ``sampleID`` (which link zones) and the instrument-only generators
(sample offsets, ``keynum``, ``velocity``, ``sampleModes``,
``exclusiveClass``, ``overridingRootKey``), which are ignored at preset
level.  :func:`clamp` brings an absurd value back into the spec's range,
which the loader counts; values are kept in spec units (cents, timecents,
centibels, tenths of a percent, samples) as float64.

Two FluidSynth conventions are kept because files rely on them: a time
generator of -32768 timecents means exactly zero seconds (not 1 ms, the
range's low end), and ``keynum``, ``velocity`` and ``overridingRootKey`` use
-1 for "not set".
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt


class Gen(IntEnum):
    """Generator ids of SoundFont 2.04 section 8.1.2."""

    START_ADDRS_OFFSET = 0
    END_ADDRS_OFFSET = 1
    STARTLOOP_ADDRS_OFFSET = 2
    ENDLOOP_ADDRS_OFFSET = 3
    START_ADDRS_COARSE_OFFSET = 4
    MOD_LFO_TO_PITCH = 5
    VIB_LFO_TO_PITCH = 6
    MOD_ENV_TO_PITCH = 7
    INITIAL_FILTER_FC = 8
    INITIAL_FILTER_Q = 9
    MOD_LFO_TO_FILTER_FC = 10
    MOD_ENV_TO_FILTER_FC = 11
    END_ADDRS_COARSE_OFFSET = 12
    MOD_LFO_TO_VOLUME = 13
    UNUSED1 = 14
    CHORUS_EFFECTS_SEND = 15
    REVERB_EFFECTS_SEND = 16
    PAN = 17
    UNUSED2 = 18
    UNUSED3 = 19
    UNUSED4 = 20
    DELAY_MOD_LFO = 21
    FREQ_MOD_LFO = 22
    DELAY_VIB_LFO = 23
    FREQ_VIB_LFO = 24
    DELAY_MOD_ENV = 25
    ATTACK_MOD_ENV = 26
    HOLD_MOD_ENV = 27
    DECAY_MOD_ENV = 28
    SUSTAIN_MOD_ENV = 29
    RELEASE_MOD_ENV = 30
    KEYNUM_TO_MOD_ENV_HOLD = 31
    KEYNUM_TO_MOD_ENV_DECAY = 32
    DELAY_VOL_ENV = 33
    ATTACK_VOL_ENV = 34
    HOLD_VOL_ENV = 35
    DECAY_VOL_ENV = 36
    SUSTAIN_VOL_ENV = 37
    RELEASE_VOL_ENV = 38
    KEYNUM_TO_VOL_ENV_HOLD = 39
    KEYNUM_TO_VOL_ENV_DECAY = 40
    INSTRUMENT = 41
    RESERVED1 = 42
    KEY_RANGE = 43
    VEL_RANGE = 44
    STARTLOOP_ADDRS_COARSE_OFFSET = 45
    KEYNUM = 46
    VELOCITY = 47
    INITIAL_ATTENUATION = 48
    RESERVED2 = 49
    ENDLOOP_ADDRS_COARSE_OFFSET = 50
    COARSE_TUNE = 51
    FINE_TUNE = 52
    SAMPLE_ID = 53
    SAMPLE_MODES = 54
    RESERVED3 = 55
    SCALE_TUNING = 56
    EXCLUSIVE_CLASS = 57
    OVERRIDING_ROOT_KEY = 58
    UNUSED5 = 59
    END_OPER = 60


N_GENERATORS: Final = 61
INF: Final = float("inf")

# kinds
VALUE: Final = "value"  # a number in `unit`
RANGE: Final = "range"  # two bytes, low and high key or velocity
INDEX: Final = "index"  # an unsigned index into inst or shdr
UNUSED: Final = "unused"  # unused, reserved or endOper: never valid in a file


@dataclass(frozen=True)
class GeneratorInfo:
    """One row of the generator table."""

    id: int
    name: str  # the spec's name, e.g. "initialFilterFc"
    unit: str
    minimum: float
    maximum: float
    default: float
    kind: str = VALUE
    instrument_only: bool = False  # ignored (and counted) at preset level
    timecents: bool = False  # -32768 means zero seconds


def _g(
    gid: Gen,
    name: str,
    unit: str,
    lo: float,
    hi: float,
    default: float,
    *,
    kind: str = VALUE,
    instrument_only: bool = False,
    timecents: bool = False,
) -> GeneratorInfo:
    return GeneratorInfo(int(gid), name, unit, lo, hi, default, kind, instrument_only, timecents)


GENERATORS: Final[tuple[GeneratorInfo, ...]] = (
    _g(Gen.START_ADDRS_OFFSET, "startAddrsOffset", "smpls", 0, INF, 0, instrument_only=True),
    _g(Gen.END_ADDRS_OFFSET, "endAddrsOffset", "smpls", -INF, 0, 0, instrument_only=True),
    _g(Gen.STARTLOOP_ADDRS_OFFSET, "startloopAddrsOffset", "smpls", -INF, INF, 0, instrument_only=True),
    _g(Gen.ENDLOOP_ADDRS_OFFSET, "endloopAddrsOffset", "smpls", -INF, INF, 0, instrument_only=True),
    _g(Gen.START_ADDRS_COARSE_OFFSET, "startAddrsCoarseOffset", "32k smpls", 0, INF, 0, instrument_only=True),
    _g(Gen.MOD_LFO_TO_PITCH, "modLfoToPitch", "cent fs", -12000, 12000, 0),
    _g(Gen.VIB_LFO_TO_PITCH, "vibLfoToPitch", "cent fs", -12000, 12000, 0),
    _g(Gen.MOD_ENV_TO_PITCH, "modEnvToPitch", "cent fs", -12000, 12000, 0),
    _g(Gen.INITIAL_FILTER_FC, "initialFilterFc", "cent", 1500, 13500, 13500),
    _g(Gen.INITIAL_FILTER_Q, "initialFilterQ", "cB", 0, 960, 0),
    _g(Gen.MOD_LFO_TO_FILTER_FC, "modLfoToFilterFc", "cent fs", -12000, 12000, 0),
    _g(Gen.MOD_ENV_TO_FILTER_FC, "modEnvToFilterFc", "cent fs", -12000, 12000, 0),
    _g(Gen.END_ADDRS_COARSE_OFFSET, "endAddrsCoarseOffset", "32k smpls", -INF, 0, 0, instrument_only=True),
    _g(Gen.MOD_LFO_TO_VOLUME, "modLfoToVolume", "cB fs", -960, 960, 0),
    _g(Gen.UNUSED1, "unused1", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.CHORUS_EFFECTS_SEND, "chorusEffectsSend", "0.1%", 0, 1000, 0),
    _g(Gen.REVERB_EFFECTS_SEND, "reverbEffectsSend", "0.1%", 0, 1000, 0),
    _g(Gen.PAN, "pan", "0.1%", -500, 500, 0),
    _g(Gen.UNUSED2, "unused2", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.UNUSED3, "unused3", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.UNUSED4, "unused4", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.DELAY_MOD_LFO, "delayModLFO", "timecent", -12000, 5000, -12000, timecents=True),
    _g(Gen.FREQ_MOD_LFO, "freqModLFO", "cent", -16000, 4500, 0),
    _g(Gen.DELAY_VIB_LFO, "delayVibLFO", "timecent", -12000, 5000, -12000, timecents=True),
    _g(Gen.FREQ_VIB_LFO, "freqVibLFO", "cent", -16000, 4500, 0),
    _g(Gen.DELAY_MOD_ENV, "delayModEnv", "timecent", -12000, 5000, -12000, timecents=True),
    _g(Gen.ATTACK_MOD_ENV, "attackModEnv", "timecent", -12000, 8000, -12000, timecents=True),
    _g(Gen.HOLD_MOD_ENV, "holdModEnv", "timecent", -12000, 5000, -12000, timecents=True),
    _g(Gen.DECAY_MOD_ENV, "decayModEnv", "timecent", -12000, 8000, -12000, timecents=True),
    _g(Gen.SUSTAIN_MOD_ENV, "sustainModEnv", "-0.1%", 0, 1000, 0),
    _g(Gen.RELEASE_MOD_ENV, "releaseModEnv", "timecent", -12000, 8000, -12000, timecents=True),
    _g(Gen.KEYNUM_TO_MOD_ENV_HOLD, "keynumToModEnvHold", "tcent/key", -1200, 1200, 0),
    _g(Gen.KEYNUM_TO_MOD_ENV_DECAY, "keynumToModEnvDecay", "tcent/key", -1200, 1200, 0),
    _g(Gen.DELAY_VOL_ENV, "delayVolEnv", "timecent", -12000, 5000, -12000, timecents=True),
    _g(Gen.ATTACK_VOL_ENV, "attackVolEnv", "timecent", -12000, 8000, -12000, timecents=True),
    _g(Gen.HOLD_VOL_ENV, "holdVolEnv", "timecent", -12000, 5000, -12000, timecents=True),
    _g(Gen.DECAY_VOL_ENV, "decayVolEnv", "timecent", -12000, 8000, -12000, timecents=True),
    _g(Gen.SUSTAIN_VOL_ENV, "sustainVolEnv", "cB attn", 0, 1440, 0),
    _g(Gen.RELEASE_VOL_ENV, "releaseVolEnv", "timecent", -12000, 8000, -12000, timecents=True),
    _g(Gen.KEYNUM_TO_VOL_ENV_HOLD, "keynumToVolEnvHold", "tcent/key", -1200, 1200, 0),
    _g(Gen.KEYNUM_TO_VOL_ENV_DECAY, "keynumToVolEnvDecay", "tcent/key", -1200, 1200, 0),
    _g(Gen.INSTRUMENT, "instrument", "index", 0, 65535, 0, kind=INDEX),
    _g(Gen.RESERVED1, "reserved1", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.KEY_RANGE, "keyRange", "MIDI ky#", 0, 127, 0, kind=RANGE),
    _g(Gen.VEL_RANGE, "velRange", "MIDI vel", 0, 127, 0, kind=RANGE),
    _g(
        Gen.STARTLOOP_ADDRS_COARSE_OFFSET, "startloopAddrsCoarseOffset", "32k smpls", -INF, INF, 0, instrument_only=True
    ),
    _g(Gen.KEYNUM, "keynum", "MIDI ky#", 0, 127, -1, instrument_only=True),
    _g(Gen.VELOCITY, "velocity", "MIDI vel", 0, 127, -1, instrument_only=True),
    _g(Gen.INITIAL_ATTENUATION, "initialAttenuation", "cB", 0, 1440, 0),
    _g(Gen.RESERVED2, "reserved2", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.ENDLOOP_ADDRS_COARSE_OFFSET, "endloopAddrsCoarseOffset", "32k smpls", -INF, INF, 0, instrument_only=True),
    _g(Gen.COARSE_TUNE, "coarseTune", "semitone", -120, 120, 0),
    _g(Gen.FINE_TUNE, "fineTune", "cent", -99, 99, 0),
    _g(Gen.SAMPLE_ID, "sampleID", "index", 0, 65535, 0, kind=INDEX, instrument_only=True),
    _g(Gen.SAMPLE_MODES, "sampleModes", "bit flags", 0, 3, 0, instrument_only=True),
    _g(Gen.RESERVED3, "reserved3", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.SCALE_TUNING, "scaleTuning", "cent/key", 0, 1200, 100),
    _g(Gen.EXCLUSIVE_CLASS, "exclusiveClass", "arbitrary#", 0, 127, 0, instrument_only=True),
    _g(Gen.OVERRIDING_ROOT_KEY, "overridingRootKey", "MIDI ky#", 0, 127, -1, instrument_only=True),
    _g(Gen.UNUSED5, "unused5", "", 0, 0, 0, kind=UNUSED),
    _g(Gen.END_OPER, "endOper", "", 0, 0, 0, kind=UNUSED),
)
assert len(GENERATORS) == N_GENERATORS and all(g.id == i for i, g in enumerate(GENERATORS))

F64 = npt.NDArray[np.float64]

#: Default value of every generator, indexed by id (what a voice starts from before any zone).
DEFAULTS: Final[F64] = np.array([g.default for g in GENERATORS], dtype=np.float64)
MINIMA: Final[F64] = np.array([g.minimum for g in GENERATORS], dtype=np.float64)
MAXIMA: Final[F64] = np.array([g.maximum for g in GENERATORS], dtype=np.float64)

#: Generators that set a number (VALUE kind), as a bool mask by id.
IS_VALUE: Final = np.array([g.kind == VALUE for g in GENERATORS])
#: Generators a preset zone may set and that are added to the instrument's value (section 8.5).
PRESET_ADDITIVE: Final = np.array([g.kind == VALUE and not g.instrument_only for g in GENERATORS])
#: Generators whose -1 means "not set".
_UNSET_ALLOWED: Final = frozenset({Gen.KEYNUM, Gen.VELOCITY, Gen.OVERRIDING_ROOT_KEY})
#: The timecents value that means zero seconds in FluidSynth (fluid_conv.c: tc <= -32768 gives 0 s).
ZERO_SECONDS_TC: Final = -32768.0


def name(gid: int) -> str:
    """The spec's name of generator ``gid``, or ``"generator N"`` for an id past the table."""
    return GENERATORS[gid].name if 0 <= gid < N_GENERATORS else f"generator {gid}"


def clamp(gid: int, value: float, *, preset: bool) -> float:
    """``value`` of generator ``gid`` brought into the spec's range.

    At instrument level the range is the table's ``[minimum, maximum]``; at
    preset level a value is an offset, so it may span the whole range either
    way (``±(maximum - minimum)``).
    """
    info = GENERATORS[gid]
    if info.timecents and value <= ZERO_SECONDS_TC:
        return ZERO_SECONDS_TC
    lo, hi = info.minimum, info.maximum
    if preset:
        width = hi - lo
        lo, hi = -width, width
    elif value == -1 and gid in _UNSET_ALLOWED:
        return value
    return min(max(value, lo), hi)
