"""SoundFont 2.04 modulators (section 8.2-8.4): the record model, the ten defaults, source mapping, merge rules.

Theory of operation
-------------------
A modulator adds ``amount x map(source) x map(amount source)`` to one
generator of a voice, at note-on and whenever a source changes.  A source
is a 16-bit word (section 8.2): a 7-bit index, bit 7 saying whether the
index is a MIDI CC or a general controller (velocity, key, pressure, pitch
wheel, ...), bit 8 the direction, bit 9 the polarity and bits 10-15 the
curve (linear, concave, convex, switch).  :func:`map_source` turns a raw
controller value into [0, 1] or [-1, 1] the way FluidSynth 2.3 does
(``fluid_mod_transform_source_value``: the value is divided by its range,
128 or 16384 for the pitch wheel, so a CC of 127 maps to 127/128).

Two modulators are *identical* when source, destination and amount source
are equal (section 9.5.1; the amount and transform do not count).  A voice's
list is built once per zone pair at load time by :func:`voice_modulators`:
the ten defaults, then the instrument zone's modulators (a local one hides
an identical global one; each replaces an identical default), then the
preset zone's (local hides global; each is *added* to an identical one
already there, or appended).  This is FluidSynth's
``fluid_defpreset_noteon_add_mod_to_voice``, including its limit of 64
modulators per voice and its skipping of preset modulators of amount 0.

Where FluidSynth deviates from the spec, this module follows FluidSynth,
because a user switching from it expects the same sound:

- 8.4.2 velocity to filter cutoff: the spec's modulator (source 0x0102,
  -2400 cents) makes the cutoff jump between velocity 63 and 64; FluidSynth
  defines it with a velocity *switch* as amount source (0x0C02, the form
  several SF2.1 fonts use to switch it off) and (since 1.x at least) evaluates it to
  zero ("S. Christian Collins' mod"), so by default velocity does not
  close the filter.  :func:`modulator_value` returns 0 for it.
- 8.4.6 CC10 to pan: amount 500, not the spec's 1000, so CC10 = 64 is the
  centre and the ends reach the pan generator's range.
- 8.4.10 pitch wheel to "initial pitch", a destination that is no
  generator: FluidSynth sends it to fineTune with amount 12700 cents.
- The file's own modulators: a transform other than linear (0), an unknown
  curve type or a source 1 of "no controller" sets the amount to 0; a
  modulator with an invalid source, an unusable destination, or identical to
  a later one in the same zone is dropped (all counted by the loader).

FluidSynth also adds an eleventh, non-standard default (CC8 balance); it has
no SoundFont generator as destination, so it is not in this list and is the
voice engine's business.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final, Iterable, Sequence

from mxfd.synth.soundfont import units
from mxfd.synth.soundfont.generators import IS_VALUE, N_GENERATORS, Gen
from mxfd.synth.soundfont.jit import compiled
from mxfd.synth.soundfont.units import concave, convex

# --- source word fields (section 8.2) ---------------------------------------------------------
INDEX_MASK: Final = 0x7F
CC_FLAG: Final = 0x80
NEGATIVE: Final = 0x100  # direction D: max to min
BIPOLAR: Final = 0x200  # polarity P: -1 .. 1
TYPE_SHIFT: Final = 10
LINEAR: Final = 0
CONCAVE: Final = 1
CONVEX: Final = 2
SWITCH: Final = 3

# general controller indices (section 8.2.1)
GC_NONE: Final = 0
GC_VELOCITY: Final = 2
GC_KEY: Final = 3
GC_POLY_PRESSURE: Final = 10
GC_CHANNEL_PRESSURE: Final = 13
GC_PITCH_WHEEL: Final = 14
GC_PITCH_WHEEL_SENSITIVITY: Final = 16
_GC_VALID: Final = frozenset(
    {GC_NONE, GC_VELOCITY, GC_KEY, GC_POLY_PRESSURE, GC_CHANNEL_PRESSURE, GC_PITCH_WHEEL, GC_PITCH_WHEEL_SENSITIVITY}
)

# MIDI controllers a modulator may not use (section 8.2.1): bank select, data entry, (N)RPN, channel mode.
_CC_BANK_MSB, _CC_DATA_ENTRY, _CC_BANK_LSB, _CC_DATA_ENTRY_LSB = 0, 6, 32, 38
_CC_NRPN_LSB, _CC_RPN_MSB, _CC_FIRST_MODE = 98, 101, 120

TRANSFORM_LINEAR: Final = 0
TRANSFORM_ABSOLUTE: Final = 2

#: The most modulators one voice holds (FluidSynth's FLUID_NUM_MOD).
MAX_VOICE_MODULATORS: Final = 64


def source(index: int, *, cc: bool = False, negative: bool = False, bipolar: bool = False, curve: int = LINEAR) -> int:
    """A source word from its fields."""
    return (
        (index & INDEX_MASK)
        | (CC_FLAG if cc else 0)
        | (NEGATIVE if negative else 0)
        | (BIPOLAR if bipolar else 0)
        | (curve << TYPE_SHIFT)
    )


@compiled
def source_index(word: int) -> int:
    return word & INDEX_MASK


@compiled
def source_is_cc(word: int) -> bool:
    return bool(word & CC_FLAG)


@compiled
def source_curve(word: int) -> int:
    return (word >> TYPE_SHIFT) & 0x3F


@compiled
def source_is_none(word: int) -> bool:
    """A general controller "no controller" source (its other bits do not matter)."""
    return not (word & CC_FLAG) and (word & INDEX_MASK) == GC_NONE


@dataclass(frozen=True)
class Modulator:
    """One modulator: ``dest`` += ``amount`` x map(``src``) x map(``amount_src``), words as in the file."""

    src: int
    dest: int
    amount: float
    amount_src: int = 0
    transform: int = TRANSFORM_LINEAR

    @property
    def identity(self) -> tuple[int, int, int]:
        """What makes two modulators the same modulator (section 9.5.1): source, destination, amount source."""
        return (self.src, self.dest, self.amount_src)

    def identical(self, other: Modulator) -> bool:
        return self.identity == other.identity


DEFAULT_VEL_TO_ATTENUATION: Final = Modulator(  # 8.4.1
    source(GC_VELOCITY, negative=True, curve=CONCAVE), Gen.INITIAL_ATTENUATION, units.PEAK_ATTENUATION_CB
)
DEFAULT_VEL_TO_FILTER: Final = Modulator(  # 8.4.2, FluidSynth's form (see the module docstring)
    source(GC_VELOCITY, negative=True), Gen.INITIAL_FILTER_FC, -2400.0, source(GC_VELOCITY, curve=SWITCH)
)
DEFAULT_PRESSURE_TO_VIBRATO: Final = Modulator(  # 8.4.3
    source(GC_CHANNEL_PRESSURE), Gen.VIB_LFO_TO_PITCH, 50.0
)
DEFAULT_MOD_WHEEL_TO_VIBRATO: Final = Modulator(  # 8.4.4
    source(1, cc=True), Gen.VIB_LFO_TO_PITCH, 50.0
)
DEFAULT_VOLUME_TO_ATTENUATION: Final = Modulator(  # 8.4.5
    source(7, cc=True, negative=True, curve=CONCAVE), Gen.INITIAL_ATTENUATION, units.PEAK_ATTENUATION_CB
)
DEFAULT_PAN: Final = Modulator(  # 8.4.6, amount 500 as FluidSynth
    source(10, cc=True, bipolar=True), Gen.PAN, 500.0
)
DEFAULT_EXPRESSION_TO_ATTENUATION: Final = Modulator(  # 8.4.7
    source(11, cc=True, negative=True, curve=CONCAVE), Gen.INITIAL_ATTENUATION, units.PEAK_ATTENUATION_CB
)
DEFAULT_REVERB_SEND: Final = Modulator(  # 8.4.8
    source(91, cc=True), Gen.REVERB_EFFECTS_SEND, 200.0
)
DEFAULT_CHORUS_SEND: Final = Modulator(  # 8.4.9
    source(93, cc=True), Gen.CHORUS_EFFECTS_SEND, 200.0
)
DEFAULT_PITCH_WHEEL: Final = Modulator(  # 8.4.10, to fineTune as FluidSynth
    source(GC_PITCH_WHEEL, bipolar=True), Gen.FINE_TUNE, 12700.0, source(GC_PITCH_WHEEL_SENSITIVITY)
)

#: FluidSynth's non-standard default modulator: CC8 (concave, bipolar) to stereo balance, 960 cB at the extremes.
#: SF2 has no balance generator, so no font can change it; the engine applies it with the pan (see
#: mxfd.synth.engine.voice.update_params).
BALANCE_SOURCE: Final = source(8, cc=True, bipolar=True, curve=CONCAVE)
BALANCE_AMOUNT_CB: Final = units.PEAK_ATTENUATION_CB

_VEL_TO_FILTER_SRC: Final = DEFAULT_VEL_TO_FILTER.src
_VEL_TO_FILTER_DEST: Final = int(DEFAULT_VEL_TO_FILTER.dest)
_VEL_TO_FILTER_AMOUNT_SRC: Final = DEFAULT_VEL_TO_FILTER.amount_src

#: The ten default modulators of section 8.4, in its order (the order FluidSynth adds them to a voice).
DEFAULT_MODULATORS: Final[tuple[Modulator, ...]] = (
    DEFAULT_VEL_TO_ATTENUATION,
    DEFAULT_VEL_TO_FILTER,
    DEFAULT_PRESSURE_TO_VIBRATO,
    DEFAULT_MOD_WHEEL_TO_VIBRATO,
    DEFAULT_VOLUME_TO_ATTENUATION,
    DEFAULT_PAN,
    DEFAULT_EXPRESSION_TO_ATTENUATION,
    DEFAULT_REVERB_SEND,
    DEFAULT_CHORUS_SEND,
    DEFAULT_PITCH_WHEEL,
)


@compiled
def source_range(word: int) -> float:
    """The range a source's raw value is divided by: 16384 for the pitch wheel, 128 for everything else."""
    if not source_is_cc(word) and source_index(word) == GC_PITCH_WHEEL:
        return 16384.0
    return 128.0


@compiled
def map_source(value: float, word: int) -> float:
    """The raw controller ``value`` of source ``word`` mapped by its curve, polarity and direction (FluidSynth 2.3).

    Unipolar results lie in [0, 1], bipolar in [-1, 1]; an unknown curve gives 0.
    """
    norm = value / source_range(word)
    curve = source_curve(word)
    negative = bool(word & NEGATIVE)
    if word & BIPOLAR:
        if curve == LINEAR:
            return 1.0 - 2.0 * norm if negative else -1.0 + 2.0 * norm
        if curve == SWITCH:
            up = norm >= 0.5
            return (-1.0 if up else 1.0) if negative else (1.0 if up else -1.0)
        if curve not in (CONCAVE, CONVEX):
            return 0.0
        sign = -1.0 if negative else 1.0
        x = 127.0 * 2.0 * (norm - 0.5) if norm > 0.5 else 127.0 * 2.0 * (0.5 - norm)
        y = concave(x) if curve == CONCAVE else convex(x)
        return sign * y if norm > 0.5 else -sign * y
    x = 1.0 - norm if negative else norm
    if curve == LINEAR:
        return x
    if curve == CONCAVE:
        return concave(127.0 * x)
    if curve == CONVEX:
        return convex(127.0 * x)
    if curve == SWITCH:
        up = norm >= 0.5  # FluidSynth switches on the raw value: 64 is "on", or "off" when negative
        return 1.0 if up != negative else 0.0
    return 0.0


@compiled
def modulated_amount(
    src: int, dest: int, amount: float, amount_src: int, transform: int, src_value: float, amount_src_value: float
) -> float:
    """What a modulator given by its fields adds to its destination for these raw source values.

    This is FluidSynth's fluid_mod_get_value: a source 1 of "no controller" gives 0, an amount source of
    "no controller" counts as 1, FluidSynth's velocity-to-filter default gives 0, and the absolute-value
    transform is applied last.
    """
    if src == _VEL_TO_FILTER_SRC and dest == _VEL_TO_FILTER_DEST and amount_src == _VEL_TO_FILTER_AMOUNT_SRC:
        return 0.0
    if source_is_none(src):
        return 0.0
    v1 = map_source(src_value, src)
    v2 = 1.0 if source_is_none(amount_src) else map_source(amount_src_value, amount_src)
    out = amount * v1 * v2
    return abs(out) if transform == TRANSFORM_ABSOLUTE else out


def modulator_value(mod: Modulator, src_value: float, amount_src_value: float) -> float:
    """What ``mod`` adds to its destination when its sources have these raw values (see :func:`modulated_amount`)."""
    return modulated_amount(mod.src, mod.dest, mod.amount, mod.amount_src, mod.transform, src_value, amount_src_value)


def _source_valid(word: int) -> bool:
    index = source_index(word)
    if not source_is_cc(word):
        return index in _GC_VALID
    return not (
        index in (_CC_BANK_MSB, _CC_BANK_LSB, _CC_DATA_ENTRY, _CC_DATA_ENTRY_LSB)
        or _CC_NRPN_LSB <= index <= _CC_RPN_MSB
        or index >= _CC_FIRST_MODE
    )


def sources_valid(mod: Modulator) -> bool:
    """FluidSynth's fluid_mod_check_sources: a source 1 of "no controller" is valid whatever the second source."""
    if not _source_valid(mod.src):
        return False
    if source_is_none(mod.src):
        return True
    return _source_valid(mod.amount_src)


def destination_valid(dest: int) -> bool:
    """A modulator can drive only a numeric generator (no ranges, indices or linked modulators, bit 15)."""
    return 0 <= dest < N_GENERATORS and bool(IS_VALUE[dest])


def imported(src: int, dest: int, amount: int, amount_src: int, transform: int) -> tuple[Modulator, str]:
    """A file's modulator record as FluidSynth imports it, and why it was disabled ("" if it was not)."""
    why = ""
    value = float(amount)
    if source_curve(src) > SWITCH or source_curve(amount_src) > SWITCH:
        value, why = 0.0, "unknown source curve"
    elif transform != TRANSFORM_LINEAR:
        value, why = 0.0, f"transform {transform} (only linear is supported)"
    elif source_is_none(src):
        value = 0.0  # legal but inert: FluidSynth forces 0 so the voice's minimum-attenuation estimate holds
    if source_is_none(amount_src):
        amount_src &= ~BIPOLAR  # "no controller" counts as +1, unipolar
    return Modulator(src, dest, value, amount_src, transform), why


def zone_modulators(mods: Sequence[Modulator]) -> tuple[list[Modulator], int, int]:
    """A zone's modulator list cleaned as FluidSynth does: (kept, dropped as invalid, dropped as duplicate).

    Of identical modulators in one zone only the last is kept (fluid_zone_check_mod drops a modulator
    identical to any following one); the list is cut at 64.
    """
    kept: list[Modulator] = []
    invalid = duplicate = 0
    for i, mod in enumerate(mods):
        if not sources_valid(mod) or not destination_valid(mod.dest):
            invalid += 1
        elif any(mod.identical(later) for later in mods[i + 1 :]):
            duplicate += 1
        else:
            kept.append(mod)
    return kept[:MAX_VOICE_MODULATORS], invalid, duplicate


def _local_over_global(global_mods: Iterable[Modulator], local_mods: Sequence[Modulator]) -> list[Modulator]:
    merged = list(local_mods)
    merged += [g for g in global_mods if not any(g.identical(m) for m in local_mods)]
    return merged


def voice_modulators(
    instrument_global: Sequence[Modulator],
    instrument_local: Sequence[Modulator],
    preset_global: Sequence[Modulator],
    preset_local: Sequence[Modulator],
    defaults: Sequence[Modulator] = DEFAULT_MODULATORS,
) -> list[Modulator]:
    """The modulators of a voice started from these zones (sections 8.4 and 9.5, as FluidSynth applies them)."""
    voice = list(defaults)
    n_checked = len(voice)
    for mod in _local_over_global(instrument_global, instrument_local):
        # An instrument modulator replaces an identical default (only its amount changes).
        for i in range(n_checked):
            if voice[i].identical(mod):
                voice[i] = replace(voice[i], amount=mod.amount)
                break
        else:
            if len(voice) < MAX_VOICE_MODULATORS:
                voice.append(mod)
    n_checked = len(voice)
    for mod in _local_over_global(preset_global, preset_local):
        if mod.amount == 0:
            continue  # FluidSynth skips disabled preset modulators
        # A preset modulator adds to an identical one already in the voice.
        for i in range(n_checked):
            if voice[i].identical(mod):
                voice[i] = replace(voice[i], amount=voice[i].amount + mod.amount)
                break
        else:
            if len(voice) < MAX_VOICE_MODULATORS:
                voice.append(mod)
    return voice
