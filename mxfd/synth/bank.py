"""The built-in General MIDI bank: 128 synthesized programs and a drum kit, no files.

Theory of operation
-------------------
Every program is a :class:`Recipe`: two spectra (a *bright* one heard at the
attack and a *dark* one the tone settles to) and the shape of a note in time
(ADSR envelope, how brightness follows velocity and time, vibrato, tremolo,
a pitch envelope, effect sends).  The bank turns each recipe into a pair of
band-limited wavetables per octave band (see :mod:`mxfd.synth.tables`) and
a :class:`Patch`, the flat record a note-on reads.  The voice engine
cross-fades the two layers with a per-voice brightness that starts where
the velocity puts it and moves toward the sustain brightness, so one gather
gives a tone that evolves like an instrument: a piano note that is bright
under the hammer and mellows as it rings, brass that opens up as it speaks.

Spectra are functions of the partial's ratio to the fundamental and of its
frequency in Hz (evaluated at the band's centre), so body resonances and
vowel formants stay roughly fixed in frequency across the keyboard.
Inharmonic timbres (bells, mallets, metal) use tables holding ``cycles``
fundamental periods, which places partials at ratios ``j / cycles``.

Sound effects that are noise rather than tone use one long table built in
the time domain.  The drum kit is in :mod:`mxfd.synth.drums`.

Banks are immutable and cached per sample rate: building one takes about
a second, so it is done once and kept on disk (:mod:`mxfd.synth.bank_cache`),
and every :class:`~mxfd.synth.Synth` at that rate shares it.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from typing import Callable, Final, Optional, Sequence

import numpy as np
import numpy.typing as npt

from mxfd.synth.tables import C128, F64, PoolBuilder, table_from_spectrum

#: Frequency of MIDI note 0 (8.18 Hz); octave band ``k`` starts at ``F_LO * 2**k``.
F_LO: Final = 440.0 * 2.0 ** (-69 / 12)
#: Number of octave bands (note 0 up to past note 127).
BANDS: Final = 11
#: Upward pitch bend a band's table tolerates without aliasing (semitones).
BEND_MARGIN: Final = 2.0
#: Table length bounds (rows) and samples per period of the highest partial.
MIN_TABLE: Final = 128
MAX_TABLE: Final = 2048
OVERSAMPLE: Final = 4
#: RMS every table is normalised to (a unit sine's).
TABLE_RMS: Final = 1.0 / math.sqrt(2.0)
#: Linear gain of a patch at gain 0 dB: a forte note at the GM default volume peaks near -14 dBFS.
VOICE_GAIN: Final = 0.3
#: Note the noise tables play at their natural rate.
NOISE_ROOT: Final = 60

Ratios = npt.NDArray[np.float64]
#: A spectrum: ``(f_ref_hz, max_ratio, phases) -> (ratios, coefficients)``.
Spectrum = Callable[[float, float, F64], tuple[Ratios, C128]]


def note_hz(note: float) -> float:
    """Equal-temperament frequency of MIDI ``note`` (A4 = 69 = 440 Hz)."""
    return float(440.0 * 2.0 ** ((note - 69.0) / 12.0))


def band_of(hz: float) -> int:
    """The octave band whose tables serve a fundamental of ``hz``."""
    if hz <= F_LO:
        return 0
    return min(BANDS - 1, int(math.log2(hz / F_LO)))


# ---------------------------------------------------------------------------
# Spectrum building blocks.  Amplitude shapes take partial ratios ``h`` and
# partial frequencies ``f`` (Hz) as arrays.


def power(h: F64, e: float) -> F64:
    """``h ** -e``: the spectral tilt of a source (1 = sawtooth)."""
    return np.asarray(h, dtype=np.float64) ** (-e)


def lowpass(f: F64, fc: float, order: float = 1.0) -> F64:
    return np.asarray(1.0 / np.sqrt(1.0 + (f / fc) ** (2.0 * order)), dtype=np.float64)


def highpass(f: F64, fc: float, order: float = 1.0) -> F64:
    x = (f / fc) ** order
    return np.asarray(x / np.sqrt(1.0 + x * x), dtype=np.float64)


def formants(f: F64, peaks: Sequence[tuple[float, float, float]]) -> F64:
    """Resonances ``(centre_hz, width_octaves, gain)`` added on a floor of 1."""
    out = np.ones_like(f, dtype=np.float64)
    lf = np.log2(np.maximum(f, 1.0))
    for fc, bw, g in peaks:
        out += g * np.exp(-0.5 * ((lf - math.log2(fc)) / bw) ** 2)
    return out


def comb(h: F64, pos: float, depth: float = 0.8) -> F64:
    """Excitation at ``pos`` along a string: harmonics with a node there are weak."""
    return np.asarray((1.0 - depth) + depth * np.abs(np.sin(np.pi * h * pos)), dtype=np.float64)


def odd(h: F64, even: float) -> F64:
    """Odd harmonics at 1, even ones at ``even`` (0: square-like, clarinet-like)."""
    hi = np.rint(h).astype(np.int64)
    return np.where(hi % 2 == 1, 1.0, even)


Shape = Callable[[F64, F64], F64]


def harmonic(shape: Shape, phase: str = "random") -> Spectrum:
    """Harmonics 1, 2, 3, ... with amplitudes ``shape(h, f)``."""

    def spec(f_ref: float, max_ratio: float, phases: F64) -> tuple[Ratios, C128]:
        n = max(1, int(max_ratio))
        h = np.arange(1, n + 1, dtype=np.float64)
        amp = shape(h, h * f_ref)
        return h, _with_phase(amp, np.arange(1, n + 1), phases, phase)

    return spec


def partials(ratios: Sequence[float], amps: Sequence[float], decay_hz: float = 0.0) -> Spectrum:
    """Given partials (ratios may be inharmonic); ``decay_hz`` rolls off high ones."""
    r_all = np.asarray(ratios, dtype=np.float64)
    a_all = np.asarray(amps, dtype=np.float64)

    def spec(f_ref: float, max_ratio: float, phases: F64) -> tuple[Ratios, C128]:
        keep = r_all <= max_ratio
        r = r_all[keep]
        a = a_all[keep]
        if decay_hz:
            a = a * lowpass(r * f_ref, decay_hz)
        idx = np.arange(1, len(r_all) + 1)[keep]
        return r, _with_phase(a, idx, phases, "random")

    return spec


def shaped(wave: Callable[[F64], F64], shape: Optional[Shape] = None, points: int = 8192) -> Spectrum:
    """Harmonics of a waveform given over one period (``wave(theta)``, theta in [0, 2π))."""
    theta: F64 = np.arange(points, dtype=np.float64) * (2.0 * np.pi / points)
    coefs = np.fft.rfft(wave(theta)) * (2.0 / points)

    def spec(f_ref: float, max_ratio: float, phases: F64) -> tuple[Ratios, C128]:
        n = max(1, min(int(max_ratio), points // 2 - 1))
        h = np.arange(1, n + 1, dtype=np.float64)
        c = coefs[1 : n + 1].astype(np.complex128)
        if shape is not None:
            c = c * shape(h, h * f_ref)
        return h, c

    return spec


def noise_band(lo_hz: float, hi_hz: float, level: float, cycles: int) -> Spectrum:
    """A breathy band of closely spaced partials (``1/cycles`` apart) with random phases."""

    def spec(f_ref: float, max_ratio: float, phases: F64) -> tuple[Ratios, C128]:
        top = min(max_ratio, hi_hz / f_ref)
        bottom = max(1.0 / cycles, lo_hz / f_ref)
        j = np.arange(math.ceil(bottom * cycles), math.floor(top * cycles) + 1)
        if len(j) == 0:
            return np.zeros(0), np.zeros(0, dtype=np.complex128)
        r = j / cycles
        amp = np.full(len(j), level / math.sqrt(len(j)))
        return r, _with_phase(amp, j + 7919, phases, "random")

    return spec


def mix(*parts: tuple[Spectrum, float]) -> Spectrum:
    """Sum of spectra with gains."""

    def spec(f_ref: float, max_ratio: float, phases: F64) -> tuple[Ratios, C128]:
        rs, cs = [], []
        for s, g in parts:
            r, c = s(f_ref, max_ratio, phases)
            rs.append(r)
            cs.append(c * g)
        return np.concatenate(rs), np.concatenate(cs)

    return spec


def _with_phase(amp: F64, idx: npt.NDArray[np.int64], phases: F64, mode: str) -> C128:
    if mode == "sine":
        return np.asarray(amp * -1j, dtype=np.complex128)
    if mode == "cosine":
        return np.asarray(amp + 0j, dtype=np.complex128)
    return np.asarray(amp * np.exp(1j * phases[np.asarray(idx) % len(phases)]), dtype=np.complex128)


# ---------------------------------------------------------------------------
# Recipes and patches


@dataclass(frozen=True)
class Recipe:
    """How one program sounds.  Times are in seconds, ``*_tau`` are time constants.

    ``decay`` is the time constant of the fall from the attack peak toward
    ``sustain``; ``fade`` the time constant of the sustain level's own decay
    (``inf``: held notes hold); ``release`` the time from note-off to silence.
    Brightness (0 dark .. 1 bright layer) starts at ``bright`` and moves to
    ``sus_bright`` with ``bright_tau``; each is a (soft, loud) pair over velocity.
    """

    name: str
    bright: Spectrum
    dark: Spectrum
    cycles: int = 1
    attack: float = 0.004
    decay: float = 1.0
    sustain: float = 1.0
    fade: float = math.inf
    release: float = 0.25
    vel_sens: float = 1.0
    bright_vel: tuple[float, float] = (0.3, 1.0)
    sus_bright: tuple[float, float] = (0.0, 0.0)
    bright_tau: float = 0.3
    vib_rate: float = 5.5
    vib_depth: float = 0.0  # semitones of built-in vibrato
    vib_delay: float = 0.3
    trem_depth: float = 0.0
    pitch_env: float = 0.0  # semitones at the onset, decaying to 0
    pitch_tau: float = 0.03
    key_decay: float = 0.0  # decay times scale by 2**(-key_decay * octaves above middle C)
    gain_db: float = 0.0
    chorus: float = 0.0
    reverb: float = 0.35
    key_pan: float = 0.0  # stereo spread across the keyboard (low keys left), -0.5 .. 0.5
    seed: int = 0
    noise: Optional[Callable[[int, int], tuple[F64, F64]]] = field(default=None, compare=False)


@dataclass(frozen=True)
class Patch:
    """A recipe made playable: pool addresses and per-note constants."""

    name: str
    one_shot: bool
    bases: tuple[int, ...]  # first pool row per band (one entry for one-shots and noise)
    lengths: tuple[int, ...]  # table length per band, or the sample length
    cycles: float  # fundamental periods per table
    attack: float
    decay: float
    sustain: float
    fade: float
    release: float
    vel_sens: float
    bright_vel: tuple[float, float]
    sus_bright: tuple[float, float]
    bright_tau: float
    vib_rate: float
    vib_depth: float
    vib_delay: float
    trem_depth: float
    pitch_env: float
    pitch_tau: float
    key_decay: float
    gain: float
    chorus: float
    reverb: float
    pan: float = 0.0  # offset from the channel's pan, -0.5 .. 0.5
    key_pan: float = 0.0  # extra offset per key: key_pan * (note - 64) / 64
    exclusive: int = 0  # drums: a new note of the class chokes the others
    ignore_note_off: bool = False
    root_hz: float = 0.0  # one-shots: 0 = play at the sample's own rate
    layer: int = 0  # one-shots: which of the row's two samples is this patch's (0 = a, 1 = b)

    def table(self, hz: float) -> tuple[int, int]:
        """(first row, length) of the table for a fundamental of ``hz``."""
        if len(self.bases) == 1:
            return self.bases[0], self.lengths[0]
        k = band_of(hz)
        return self.bases[k], self.lengths[k]


def _pow2_at_least(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def _band_tables(recipe: Recipe, pool: PoolBuilder, f_lim: float, phases: F64) -> tuple[list[int], list[int]]:
    bases: list[int] = []
    lengths: list[int] = []
    k_cycles = recipe.cycles
    margin = 2.0 ** (BEND_MARGIN / 12.0)
    for k in range(BANDS):
        f_top = F_LO * 2.0 ** (k + 1) * margin
        f_ref = F_LO * 2.0 ** (k + 0.5)
        max_ratio = max(1.0, f_lim / f_top)
        ra, ca = recipe.bright(f_ref, max_ratio, phases)
        rb, cb = recipe.dark(f_ref, max_ratio, phases)
        ba = np.rint(ra * k_cycles).astype(np.int64)
        bb = np.rint(rb * k_cycles).astype(np.int64)
        top = max(int(ba.max(initial=1)), int(bb.max(initial=1)))
        length = min(MAX_TABLE, max(MIN_TABLE, _pow2_at_least(OVERSAMPLE * top)))
        ta = _normalised(ba, ca, length, ra <= max_ratio)
        tb = _normalised(bb, cb, length, rb <= max_ratio)
        bases.append(pool.add_periodic(ta, tb))
        lengths.append(length)
    return bases, lengths


def _normalised(bins: npt.NDArray[np.int64], coefs: C128, length: int, keep: npt.NDArray[np.bool_]) -> F64:
    ok = keep & (bins > 0) & (bins < length // 2)
    if not ok.any():
        bins, coefs, ok = np.array([1]), np.array([1.0 + 0j]), np.array([True])
    t = table_from_spectrum(bins[ok], coefs[ok], length)
    rms = float(np.sqrt(np.mean(t * t)))
    if rms > 0:
        t *= TABLE_RMS / rms
    return t


def make_patch(recipe: Recipe, pool: PoolBuilder, sample_rate: int) -> Patch:
    """Build ``recipe``'s tables into ``pool`` and return its patch."""
    f_lim = min(20000.0, 0.45 * sample_rate)
    rng = np.random.default_rng(1000 + recipe.seed)
    phases = rng.uniform(0.0, 2.0 * np.pi, 16384)
    if recipe.noise is not None:
        length = 1 << 15
        a, b = recipe.noise(sample_rate, length)
        base = pool.add_periodic(a, b)
        bases, lengths = [base], [length]
        cycles = length * note_hz(NOISE_ROOT) / sample_rate
    else:
        bases, lengths = _band_tables(recipe, pool, f_lim, phases)
        cycles = float(recipe.cycles)
    return Patch(
        name=recipe.name,
        one_shot=False,
        bases=tuple(bases),
        lengths=tuple(lengths),
        cycles=cycles,
        attack=recipe.attack,
        decay=recipe.decay,
        sustain=recipe.sustain,
        fade=recipe.fade,
        release=recipe.release,
        vel_sens=recipe.vel_sens,
        bright_vel=recipe.bright_vel,
        sus_bright=recipe.sus_bright,
        bright_tau=recipe.bright_tau,
        vib_rate=recipe.vib_rate,
        vib_depth=recipe.vib_depth,
        vib_delay=recipe.vib_delay,
        trem_depth=recipe.trem_depth,
        pitch_env=recipe.pitch_env,
        pitch_tau=recipe.pitch_tau,
        key_decay=recipe.key_decay,
        gain=VOICE_GAIN * 10.0 ** (recipe.gain_db / 20.0),
        chorus=recipe.chorus,
        reverb=recipe.reverb,
        key_pan=recipe.key_pan,
    )


# ---------------------------------------------------------------------------
# The General MIDI recipes, family by family.

GM_NAMES: Final = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavi",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "SynthStrings 1", "SynthStrings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "SynthBrass 1", "SynthBrass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)",
    "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bag pipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)  # fmt: skip

# Vowel formants (Hz, width in octaves, gain).
VOWEL_A: Final = ((750.0, 0.25, 6.0), (1200.0, 0.25, 4.0), (2600.0, 0.2, 2.0))
VOWEL_O: Final = ((450.0, 0.25, 6.0), (800.0, 0.25, 4.0), (2830.0, 0.2, 1.0))
VOWEL_U: Final = ((320.0, 0.25, 7.0), (800.0, 0.3, 2.0), (2400.0, 0.2, 0.6))
VIOLIN_BODY: Final = ((290.0, 0.3, 2.5), (500.0, 0.3, 1.5), (1100.0, 0.35, 2.0), (2800.0, 0.3, 2.5))


def _saw(h: F64, f: F64) -> F64:
    return power(h, 1.0)


def _fm(ratio: float, index: float, feedback: float = 0.0) -> Callable[[F64], F64]:
    def wave(t: F64) -> F64:
        return np.asarray(np.sin(t + index * np.sin(ratio * t) + feedback * np.sin(t)), dtype=np.float64)

    return wave


def _driven(drive: float, source: str = "saw") -> Callable[[F64], F64]:
    def wave(t: F64) -> F64:
        if source == "saw":
            h = np.arange(1, 60)
            x = (np.sin(np.outer(t, h)) / h).sum(axis=1)
        else:
            h = np.arange(1, 60, 2)
            x = (np.sin(np.outer(t, h)) / h).sum(axis=1)
        x = x / np.max(np.abs(x))
        return np.asarray(np.tanh(drive * x), dtype=np.float64)

    return wave


def _pluck(
    name: str,
    pos: float,
    tilt: float,
    fc: float,
    decay: float,
    fade: float,
    **kw: object,
) -> Recipe:
    """A plucked or struck string: bright at the pluck, mellowing as it rings."""
    args: dict[str, object] = dict(
        attack=0.0015,
        decay=decay,
        sustain=0.45,
        fade=fade,
        release=0.2,
        bright_vel=(0.35, 1.0),
        sus_bright=(0.0, 0.05),
        bright_tau=decay * 0.8,
        key_decay=0.5,
    )
    args.update(kw)
    return Recipe(
        name,
        bright=harmonic(lambda h, f: power(h, tilt) * comb(h, pos) * lowpass(f, fc, 1.0)),
        dark=harmonic(lambda h, f: power(h, tilt + 0.9) * comb(h, pos, 0.5) * lowpass(f, fc * 0.3, 1.5)),
        **args,  # type: ignore[arg-type]
    )


def _mallet(name: str, ratios: Sequence[float], amps: Sequence[float], decay: float, **kw: object) -> Recipe:
    """A struck bar or bell: inharmonic partials, upper ones dying first."""
    dark_amps = [a if i == 0 else a * 0.15 for i, a in enumerate(amps)]
    args: dict[str, object] = dict(
        cycles=4,
        attack=0.001,
        decay=decay,
        sustain=0.0,
        release=0.3,
        bright_vel=(0.5, 1.0),
        sus_bright=(0.0, 0.0),
        bright_tau=decay * 0.3,
        key_decay=0.4,
        reverb=0.45,
        key_pan=0.15,
    )
    args.update(kw)
    return Recipe(name, bright=partials(ratios, amps, 9000.0), dark=partials(ratios, dark_amps, 4000.0), **args)  # type: ignore[arg-type]


def _bowed(name: str, shift: float, **kw: object) -> Recipe:
    """A bowed string: sawtooth through a body, with delayed vibrato."""
    body = tuple((fc * shift, bw, g) for fc, bw, g in VIOLIN_BODY)
    args: dict[str, object] = dict(
        attack=0.07,
        decay=0.4,
        sustain=0.85,
        release=0.25,
        bright_vel=(0.2, 0.8),
        sus_bright=(0.25, 0.7),
        bright_tau=0.15,
        vib_rate=5.6,
        vib_depth=0.15,
        vib_delay=0.35,
        reverb=0.45,
        chorus=0.2,
    )
    args.update(kw)
    return Recipe(
        name,
        bright=harmonic(lambda h, f: power(h, 0.9) * formants(f, body) * lowpass(f, 7000.0 * shift, 2.0)),
        dark=harmonic(lambda h, f: power(h, 1.4) * formants(f, body) * lowpass(f, 2500.0 * shift, 2.0)),
        **args,  # type: ignore[arg-type]
    )


def _brass(name: str, centre: float, **kw: object) -> Recipe:
    """Brass: a dark onset that opens up; brightness grows with velocity."""
    args: dict[str, object] = dict(
        attack=0.03,
        decay=0.25,
        sustain=0.85,
        release=0.12,
        bright_vel=(0.0, 0.35),
        sus_bright=(0.25, 0.9),
        bright_tau=0.08,
        pitch_env=-0.4,
        pitch_tau=0.03,
        vib_depth=0.08,
        vib_delay=0.45,
        reverb=0.4,
    )
    args.update(kw)
    return Recipe(
        name,
        bright=harmonic(
            lambda h, f: power(h, 0.5) * formants(f, ((centre, 0.6, 4.0),)) * highpass(f, centre * 0.25, 1.0)
            * lowpass(f, centre * 5.0, 2.0)
        ),
        dark=harmonic(lambda h, f: power(h, 1.8) * lowpass(f, centre * 0.8, 2.0)),
        **args,  # type: ignore[arg-type]
    )


def _reed(name: str, peaks: Sequence[tuple[float, float, float]], even: float = 1.0, **kw: object) -> Recipe:
    args: dict[str, object] = dict(
        attack=0.02,
        decay=0.3,
        sustain=0.85,
        release=0.1,
        bright_vel=(0.2, 0.7),
        sus_bright=(0.3, 0.75),
        bright_tau=0.1,
        vib_depth=0.1,
        vib_delay=0.35,
        vib_rate=5.2,
        reverb=0.4,
    )
    args.update(kw)
    return Recipe(
        name,
        bright=harmonic(lambda h, f: power(h, 0.7) * odd(h, even) * formants(f, peaks) * lowpass(f, 6000.0, 2.0)),
        dark=harmonic(lambda h, f: power(h, 1.6) * odd(h, even) * formants(f, peaks) * lowpass(f, 1800.0, 2.0)),
        **args,  # type: ignore[arg-type]
    )


def _pipe(name: str, amps: Sequence[float], breath: float, **kw: object) -> Recipe:
    """A flute: few harmonics, a breathy chiff at the onset."""
    ratios = [float(i + 1) for i in range(len(amps))]
    args: dict[str, object] = dict(
        cycles=4,
        attack=0.035,
        decay=0.2,
        sustain=0.9,
        release=0.1,
        bright_vel=(0.6, 1.0),
        sus_bright=(0.0, 0.05),
        bright_tau=0.06,
        vib_depth=0.12,
        vib_delay=0.25,
        vib_rate=5.0,
        reverb=0.45,
    )
    args.update(kw)
    return Recipe(
        name,
        bright=mix((partials(ratios, amps), 1.0), (noise_band(800.0, 9000.0, breath * 0.5, 4), 1.0)),
        dark=partials(ratios, amps),
        **args,  # type: ignore[arg-type]
    )


def _synth(name: str, wave: str, cutoff: float, res: float, **kw: object) -> Recipe:
    """Subtractive synth: a classic wave through a resonant lowpass that the envelope sweeps."""

    def src(h: F64) -> F64:
        if wave == "square":
            return power(h, 1.0) * odd(h, 0.0)
        if wave == "pulse":
            return power(h, 1.0) * comb(h, 0.25, 1.0)
        return power(h, 1.0)

    def filt(f: F64, fc: float) -> F64:
        return lowpass(f, fc, 2.0) * formants(f, ((fc, 0.15, res),))

    args: dict[str, object] = dict(
        attack=0.005,
        decay=0.4,
        sustain=0.8,
        release=0.15,
        bright_vel=(0.5, 1.0),
        sus_bright=(0.2, 0.45),
        bright_tau=0.25,
        reverb=0.3,
    )
    args.update(kw)
    return Recipe(
        name,
        bright=harmonic(lambda h, f: src(h) * filt(f, cutoff), phase="sine"),
        dark=harmonic(lambda h, f: src(h) * filt(f, cutoff * 0.15), phase="sine"),
        **args,  # type: ignore[arg-type]
    )


def _pad(name: str, bright: Spectrum, dark: Spectrum, **kw: object) -> Recipe:
    args: dict[str, object] = dict(
        attack=0.35,
        decay=1.0,
        sustain=0.9,
        release=1.0,
        bright_vel=(0.1, 0.4),
        sus_bright=(0.3, 0.6),
        bright_tau=0.8,
        chorus=0.7,
        reverb=0.6,
        gain_db=-2.0,
    )
    args.update(kw)
    return Recipe(name, bright=bright, dark=dark, **args)  # type: ignore[arg-type]


def _noise_table(
    shape: Callable[[F64], F64],
    envelope: Optional[Callable[[F64, int], F64]] = None,
    dark_fc: float = 2000.0,
) -> Callable[[int, int], tuple[F64, F64]]:
    """Time-domain noise loop, spectrally shaped; the dark layer is lowpassed."""

    def make(sample_rate: int, length: int) -> tuple[F64, F64]:
        rng = np.random.default_rng(length + 7)
        f = np.fft.rfftfreq(length, 1.0 / sample_rate)
        spec = rng.normal(size=len(f)) + 1j * rng.normal(size=len(f))
        spec[0] = 0.0
        a = np.fft.irfft(spec * shape(np.maximum(f, 1.0)), n=length)
        b = np.fft.irfft(spec * shape(np.maximum(f, 1.0)) * lowpass(np.maximum(f, 1.0), dark_fc, 2.0), n=length)
        if envelope is not None:
            env = envelope(np.arange(length) / sample_rate, sample_rate)
            a = a * env
            b = b * env
        for x in (a, b):
            x *= TABLE_RMS / max(1e-12, float(np.sqrt(np.mean(x * x))))
        return a, b

    return make


def _applause(t: F64, sample_rate: int) -> F64:
    rng = np.random.default_rng(11)
    env = np.zeros_like(t)
    for start in rng.uniform(0.0, t[-1], 160):
        env += np.exp(-np.maximum(t - start, 0.0) / 0.012) * (t >= start) * rng.uniform(0.3, 1.0)
    return np.asarray(0.3 + env, dtype=np.float64)


def _waves(t: F64, sample_rate: int) -> F64:
    period = t[-1] + 1.0 / sample_rate
    return np.asarray(0.35 + 0.65 * np.sin(np.pi * t / period) ** 2, dtype=np.float64)


def gm_recipes() -> list[Recipe]:
    """The 128 General MIDI programs, in program order."""
    r: list[Recipe] = []
    # Piano ----------------------------------------------------------------
    piano = Recipe(
        "piano",
        bright=harmonic(lambda h, f: power(h, 0.75) * comb(h, 1 / 7.3, 0.7) * lowpass(f, 6000.0, 1.0)),
        dark=harmonic(lambda h, f: power(h, 2.2) * lowpass(f, 1200.0, 1.0)),
        attack=0.0015,
        decay=0.35,
        sustain=0.45,
        fade=3.5,
        release=0.35,
        bright_vel=(0.25, 1.0),
        sus_bright=(0.0, 0.06),
        bright_tau=0.45,
        key_decay=0.6,
        reverb=0.4,
        key_pan=0.2,
    )
    r.append(piano)
    r.append(replace(piano, bright_vel=(0.5, 1.0), sus_bright=(0.05, 0.2), gain_db=-1.0))
    r.append(
        replace(
            piano,
            bright=harmonic(lambda h, f: power(h, 0.6) * comb(h, 1 / 9, 0.6) * highpass(f, 200.0)),
            chorus=0.4,
        )
    )
    r.append(replace(piano, chorus=1.0, bright_vel=(0.4, 1.0), sus_bright=(0.05, 0.2)))
    r.append(
        Recipe(
            "rhodes",
            bright=mix((shaped(_fm(1.0, 1.8)), 1.0), (partials([14.0], [0.12]), 1.0)),
            dark=shaped(_fm(1.0, 0.25)),
            attack=0.0015,
            decay=0.9,
            sustain=0.5,
            fade=4.0,
            release=0.3,
            bright_vel=(0.1, 1.0),
            sus_bright=(0.0, 0.1),
            bright_tau=0.25,
            key_decay=0.4,
            chorus=0.3,
            trem_depth=0.1,
            vib_rate=4.5,
            key_pan=0.15,
        )
    )
    r.append(
        Recipe(
            "dx piano",
            bright=mix((shaped(_fm(1.0, 3.0)), 1.0), (partials([14.0, 15.0], [0.2, 0.1]), 1.0)),
            dark=shaped(_fm(1.0, 0.5)),
            attack=0.001,
            decay=0.6,
            sustain=0.45,
            fade=3.0,
            release=0.3,
            bright_vel=(0.2, 1.0),
            sus_bright=(0.05, 0.15),
            bright_tau=0.3,
            key_decay=0.5,
            chorus=0.6,
            key_pan=0.15,
        )
    )
    r.append(_pluck("harpsichord", 1 / 9, 0.5, 9000.0, 0.9, 3.0, sustain=0.6, vel_sens=0.3, bright_vel=(0.9, 1.0),
                    key_pan=0.15, sus_bright=(0.2, 0.3), release=0.15, gain_db=-2.0))
    r.append(
        Recipe(
            "clavi",
            bright=harmonic(lambda h, f: power(h, 0.8) * comb(h, 0.2, 0.9) * highpass(f, 400.0)),
            dark=harmonic(lambda h, f: power(h, 1.3) * comb(h, 0.2, 0.9) * lowpass(f, 2500.0)),
            attack=0.001,
            decay=0.3,
            sustain=0.35,
            fade=2.0,
            release=0.07,
            bright_vel=(0.4, 1.0),
            sus_bright=(0.2, 0.4),
            bright_tau=0.2,
            gain_db=-2.0,
        )
    )
    # Chromatic percussion -------------------------------------------------
    r.append(_mallet("celesta", [1, 2, 4, 6.75], [1, 0.3, 0.25, 0.05], 0.6))
    r.append(_mallet("glockenspiel", [1, 2.75, 5.25, 8.5], [1, 0.4, 0.25, 0.1], 1.2, gain_db=-3.0))
    r.append(_mallet("music box", [1, 2, 3.25, 5.5], [1, 0.25, 0.2, 0.1], 0.9))
    r.append(_mallet("vibraphone", [1, 4, 10], [1, 0.25, 0.08], 2.5, trem_depth=0.35, vib_rate=5.0,
                     release=0.35))
    r.append(_mallet("marimba", [1, 4, 9.25], [1, 0.3, 0.1], 0.45))
    r.append(_mallet("xylophone", [1, 3, 6, 9], [1, 0.5, 0.2, 0.1], 0.3))
    r.append(_mallet("tubular bells", [1, 2, 2.75, 4.25, 5.5, 6.75], [0.6, 1.0, 0.7, 0.5, 0.3, 0.2], 3.0,
                     release=1.5))
    r.append(_pluck("dulcimer", 1 / 8, 0.6, 8000.0, 0.6, 2.5, chorus=0.7))
    # Organ ------------------------------------------------------------------
    drawbar = [0.5, 1, 1.5, 2, 3, 4, 6, 8]
    r.append(
        Recipe(
            "drawbar organ",
            cycles=2,
            bright=partials(drawbar + [10, 12, 16], [0.8, 1, 0.6, 0.6, 0.3, 0.3, 0.15, 0.15, 0.3, 0.25, 0.2]),
            dark=partials(drawbar, [0.8, 1, 0.6, 0.6, 0.3, 0.3, 0.15, 0.15]),
            attack=0.006,
            sustain=1.0,
            release=0.06,
            vel_sens=0.1,
            bright_vel=(1.0, 1.0),
            sus_bright=(0.0, 0.0),
            bright_tau=0.03,
            chorus=0.5,
            gain_db=-3.0,
        )
    )
    r.append(
        Recipe(
            "percussive organ",
            cycles=2,
            bright=partials([0.5, 1, 2, 3, 4], [0.5, 1, 0.6, 1.2, 0.3]),
            dark=partials([0.5, 1, 2, 4], [0.5, 1, 0.6, 0.3]),
            attack=0.004,
            release=0.06,
            vel_sens=0.2,
            bright_vel=(1.0, 1.0),
            sus_bright=(0.0, 0.0),
            bright_tau=0.2,
            chorus=0.5,
            gain_db=-3.0,
        )
    )
    r.append(
        Recipe(
            "rock organ",
            cycles=2,
            bright=mix((partials(drawbar, [1, 1, 0.8, 0.8, 0.6, 0.5, 0.4, 0.4]), 1.0),
                       (shaped(_driven(1.5, "square")), 0.3)),
            dark=partials(drawbar, [1, 1, 0.8, 0.8, 0.6, 0.5, 0.4, 0.4]),
            attack=0.005,
            release=0.06,
            vel_sens=0.1,
            bright_vel=(0.5, 0.5),
            sus_bright=(0.3, 0.3),
            vib_rate=6.5,
            vib_depth=0.08,
            vib_delay=0.0,
            trem_depth=0.2,
            chorus=0.6,
            gain_db=-4.0,
        )
    )
    r.append(
        Recipe(
            "church organ",
            cycles=2,
            bright=partials([0.5, 1, 1.5, 2, 3, 4, 5, 6, 8], [0.7, 1, 0.4, 0.7, 0.4, 0.45, 0.2, 0.25, 0.25]),
            dark=partials([0.5, 1, 2, 4], [0.7, 1, 0.5, 0.2]),
            attack=0.06,
            release=0.4,
            vel_sens=0.0,
            bright_vel=(0.6, 0.6),
            sus_bright=(0.7, 0.7),
            bright_tau=0.3,
            reverb=0.9,
            gain_db=-4.0,
        )
    )
    r.append(_reed("reed organ", ((1000.0, 0.5, 2.0),), even=0.6, attack=0.04, vib_depth=0.0, vel_sens=0.2,
                   release=0.08))
    r.append(_reed("accordion", ((1200.0, 0.5, 3.0),), even=0.7, attack=0.03, trem_depth=0.25, vib_rate=6.5,
                   vib_depth=0.0, chorus=0.5, vel_sens=0.4))
    r.append(_reed("harmonica", ((1500.0, 0.4, 3.0),), even=0.5, attack=0.03, vib_depth=0.1, vel_sens=0.6))
    r.append(_reed("tango accordion", ((900.0, 0.5, 2.5),), even=0.8, attack=0.03, trem_depth=0.15, vib_rate=6.0,
                   vib_depth=0.0, chorus=0.6, vel_sens=0.4))
    # Guitar -----------------------------------------------------------------
    r.append(_pluck("nylon guitar", 1 / 5.5, 1.0, 3500.0, 0.5, 2.0))
    r.append(_pluck("steel guitar", 1 / 6, 0.8, 7000.0, 0.6, 3.0, chorus=0.3))
    r.append(_pluck("jazz guitar", 1 / 4, 1.3, 1800.0, 0.7, 3.0, sus_bright=(0.0, 0.0)))
    r.append(_pluck("clean guitar", 1 / 7, 0.8, 6000.0, 0.8, 3.5, sustain=0.55, chorus=0.5))
    r.append(_pluck("muted guitar", 1 / 6, 1.0, 3000.0, 0.08, 0.2, sustain=0.3, release=0.05))
    r.append(
        Recipe(
            "overdriven guitar",
            bright=shaped(_driven(3.0), lambda h, f: lowpass(f, 4500.0, 2.0) * formants(f, ((1500.0, 0.5, 2.0),))),
            dark=shaped(_driven(2.0), lambda h, f: lowpass(f, 2000.0, 2.0)),
            attack=0.003,
            decay=0.5,
            sustain=0.75,
            fade=6.0,
            release=0.12,
            vel_sens=0.5,
            bright_vel=(0.6, 1.0),
            sus_bright=(0.4, 0.7),
            bright_tau=0.4,
            vib_depth=0.05,
            vib_delay=0.5,
            gain_db=-4.0,
        )
    )
    r.append(
        Recipe(
            "distortion guitar",
            bright=shaped(_driven(9.0), lambda h, f: lowpass(f, 4000.0, 2.0) * formants(f, ((1200.0, 0.5, 2.0),))),
            dark=shaped(_driven(6.0), lambda h, f: lowpass(f, 2200.0, 2.0)),
            attack=0.003,
            decay=0.5,
            sustain=0.8,
            fade=8.0,
            release=0.12,
            vel_sens=0.4,
            bright_vel=(0.7, 1.0),
            sus_bright=(0.5, 0.7),
            bright_tau=0.4,
            vib_depth=0.05,
            vib_delay=0.5,
            gain_db=-6.0,
        )
    )
    r.append(_mallet("guitar harmonics", [1, 2, 3], [1, 0.3, 0.1], 1.5, cycles=1, bright_tau=0.2))
    # Bass -------------------------------------------------------------------
    r.append(_pluck("acoustic bass", 1 / 4, 1.4, 1500.0, 0.5, 2.0, sustain=0.5, release=0.1, key_decay=0.3))
    r.append(_pluck("finger bass", 1 / 5, 1.1, 2500.0, 0.6, 2.5, sustain=0.55, release=0.08, key_decay=0.3))
    r.append(_pluck("pick bass", 1 / 8, 0.8, 4000.0, 0.5, 2.5, sustain=0.5, release=0.08, key_decay=0.3))
    r.append(_pluck("fretless bass", 1 / 4, 1.6, 1200.0, 0.8, 3.0, attack=0.008, sustain=0.6, vib_depth=0.08,
                    release=0.1, key_decay=0.3))
    r.append(_pluck("slap bass 1", 1 / 12, 0.5, 8000.0, 0.35, 1.5, bright_tau=0.05, sustain=0.5, release=0.08,
                    key_decay=0.3))
    r.append(_pluck("slap bass 2", 1 / 14, 0.4, 9000.0, 0.3, 1.2, bright_tau=0.04, sustain=0.45, release=0.08,
                    key_decay=0.3))
    r.append(_synth("synth bass 1", "saw", 2500.0, 3.0, decay=0.3, sustain=0.7, release=0.08, sus_bright=(0.1, 0.25),
                    bright_tau=0.12))
    r.append(_synth("synth bass 2", "square", 1800.0, 2.0, decay=0.3, sustain=0.7, release=0.08,
                    sus_bright=(0.2, 0.35), bright_tau=0.15))
    # Strings ----------------------------------------------------------------
    r.append(_bowed("violin", 1.0))
    r.append(_bowed("viola", 0.8, attack=0.08))
    r.append(_bowed("cello", 0.55, attack=0.09, vib_rate=5.2))
    r.append(_bowed("contrabass", 0.35, attack=0.1, vib_depth=0.08, vib_rate=5.0))
    r.append(_bowed("tremolo strings", 0.9, attack=0.05, trem_depth=0.7, vib_rate=8.0, vib_depth=0.0,
                    chorus=0.6))
    r.append(_pluck("pizzicato", 1 / 2.5, 1.3, 3000.0, 0.12, 0.4, sustain=0.3, release=0.1, reverb=0.5))
    r.append(_pluck("harp", 1 / 2.2, 1.2, 5000.0, 0.8, 3.0, sustain=0.5, release=0.8, reverb=0.6, key_pan=0.2))
    r.append(_mallet("timpani", [1, 1.5, 2, 2.5, 3], [1, 0.6, 0.4, 0.2, 0.1], 0.9, cycles=2, pitch_env=0.3,
                     pitch_tau=0.05, release=0.6, key_decay=0.0))
    # Ensemble ---------------------------------------------------------------
    ens_b = harmonic(lambda h, f: power(h, 0.9) * formants(f, VIOLIN_BODY) * lowpass(f, 6000.0, 2.0))
    ens_d = harmonic(lambda h, f: power(h, 1.5) * formants(f, VIOLIN_BODY) * lowpass(f, 2200.0, 2.0))
    r.append(_pad("strings", ens_b, ens_d, attack=0.12, release=0.4, chorus=0.9, vib_depth=0.06, vib_delay=0.2,
                  bright_vel=(0.2, 0.6), sus_bright=(0.3, 0.6), bright_tau=0.3, gain_db=0.0))
    r.append(_pad("slow strings", ens_b, ens_d, attack=0.35, release=0.6, chorus=0.9, vib_depth=0.05,
                  gain_db=0.0))
    syn_b = harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 5000.0, 2.0), phase="random")
    syn_d = harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 1200.0, 2.0), phase="random")
    r.append(_pad("synth strings 1", syn_b, syn_d, attack=0.08, release=0.4, chorus=1.0, gain_db=0.0))
    r.append(_pad("synth strings 2", syn_b, syn_d, attack=0.25, release=0.6, chorus=1.0, sus_bright=(0.1, 0.3)))
    choir_a = harmonic(lambda h, f: power(h, 1.2) * formants(f, VOWEL_A) * lowpass(f, 4000.0, 2.0))
    choir_o = harmonic(lambda h, f: power(h, 1.4) * formants(f, VOWEL_O) * lowpass(f, 3000.0, 2.0))
    choir_u = harmonic(lambda h, f: power(h, 1.6) * formants(f, VOWEL_U) * lowpass(f, 2500.0, 2.0))
    r.append(_pad("choir aahs", choir_a, choir_o, attack=0.15, release=0.5, vib_depth=0.12, vib_delay=0.25,
                  vib_rate=5.0, sus_bright=(0.5, 0.8), gain_db=0.0))
    r.append(_pad("voice oohs", choir_o, choir_u, attack=0.12, release=0.4, vib_depth=0.1, vib_delay=0.25,
                  vib_rate=5.0, sus_bright=(0.3, 0.6), gain_db=0.0))
    r.append(_pad("synth voice", choir_a, choir_u, attack=0.06, release=0.4, vib_depth=0.06, chorus=0.9))
    r.append(
        Recipe(
            "orchestra hit",
            cycles=2,
            bright=harmonic(lambda h, f: power(h, 0.7) * lowpass(f, 6000.0, 1.0) * odd(h, 0.8)),
            dark=partials([0.5, 1, 1.5, 2, 3], [0.5, 1, 0.7, 0.5, 0.3]),
            attack=0.004,
            decay=0.25,
            sustain=0.2,
            fade=0.5,
            release=0.3,
            bright_vel=(0.8, 1.0),
            sus_bright=(0.0, 0.2),
            bright_tau=0.15,
            reverb=0.7,
        )
    )
    # Brass ------------------------------------------------------------------
    r.append(_brass("trumpet", 1300.0))
    r.append(_brass("trombone", 700.0, attack=0.04, pitch_env=-0.5))
    r.append(_brass("tuba", 320.0, attack=0.05, pitch_env=-0.3, vib_depth=0.04))
    r.append(
        Recipe(
            "muted trumpet",
            bright=harmonic(lambda h, f: power(h, 0.6) * formants(f, ((1800.0, 0.3, 8.0),)) * highpass(f, 900.0, 2.0)),
            dark=harmonic(lambda h, f: power(h, 1.0) * formants(f, ((1500.0, 0.3, 6.0),)) * highpass(f, 700.0, 2.0)),
            attack=0.02,
            sustain=0.9,
            release=0.1,
            bright_vel=(0.2, 0.6),
            sus_bright=(0.3, 0.8),
            bright_tau=0.08,
            vib_depth=0.08,
            vib_delay=0.4,
            gain_db=1.0,
        )
    )
    r.append(_brass("french horn", 450.0, attack=0.05, pitch_env=-0.2, reverb=0.6, sus_bright=(0.1, 0.6)))
    r.append(_brass("brass section", 1100.0, chorus=0.9, vib_depth=0.05))
    r.append(_synth("synth brass 1", "saw", 3000.0, 1.0, attack=0.02, decay=0.3, sustain=0.8, release=0.15,
                    bright_vel=(0.4, 1.0), sus_bright=(0.3, 0.6), bright_tau=0.2, chorus=0.5))
    r.append(_synth("synth brass 2", "saw", 2200.0, 0.6, attack=0.06, decay=0.5, sustain=0.85, release=0.25,
                    bright_vel=(0.2, 0.6), sus_bright=(0.3, 0.5), bright_tau=0.4, chorus=0.9))
    # Reed -------------------------------------------------------------------
    r.append(_reed("soprano sax", ((900.0, 0.5, 3.0), (2500.0, 0.4, 2.0))))
    r.append(_reed("alto sax", ((700.0, 0.5, 3.0), (2000.0, 0.4, 2.0))))
    r.append(_reed("tenor sax", ((500.0, 0.5, 3.0), (1600.0, 0.4, 2.0))))
    r.append(_reed("baritone sax", ((350.0, 0.5, 3.0), (1200.0, 0.4, 2.0)), vib_depth=0.06))
    r.append(_reed("oboe", ((1100.0, 0.3, 5.0), (3000.0, 0.3, 2.0)), vib_depth=0.08))
    r.append(_reed("english horn", ((800.0, 0.3, 5.0), (2300.0, 0.3, 2.0)), vib_depth=0.08))
    r.append(_reed("bassoon", ((450.0, 0.3, 5.0), (1150.0, 0.3, 2.0)), vib_depth=0.05))
    r.append(_reed("clarinet", ((1500.0, 0.5, 1.0),), even=0.08, vib_depth=0.0, sus_bright=(0.2, 0.6)))
    # Pipe -------------------------------------------------------------------
    r.append(_pipe("piccolo", [1, 0.1, 0.05], 0.25, gain_db=-3.0))
    r.append(_pipe("flute", [1, 0.25, 0.1, 0.05, 0.02], 0.3))
    r.append(_pipe("recorder", [1, 0.1, 0.2, 0.03, 0.05], 0.2, vib_depth=0.04))
    r.append(_pipe("pan flute", [1, 0.15, 0.08], 0.5, attack=0.05, sus_bright=(0.2, 0.3)))
    r.append(_pipe("blown bottle", [1, 0.05], 0.7, attack=0.08, sus_bright=(0.4, 0.5), vib_depth=0.0))
    r.append(_pipe("shakuhachi", [1, 0.3, 0.12, 0.05], 0.6, vib_depth=0.25, vib_rate=4.5, sus_bright=(0.2, 0.4)))
    r.append(_pipe("whistle", [1, 0.03], 0.05, attack=0.03, vib_depth=0.2, vib_delay=0.1, gain_db=-3.0))
    r.append(_pipe("ocarina", [1, 0.05, 0.08], 0.15, vib_depth=0.08))
    # Synth lead -------------------------------------------------------------
    r.append(_synth("square lead", "square", 6000.0, 0.3, sus_bright=(0.6, 0.9), bright_tau=0.1, gain_db=-3.0))
    r.append(_synth("saw lead", "saw", 7000.0, 0.3, sus_bright=(0.6, 0.9), bright_tau=0.1, gain_db=-3.0))
    r.append(_pipe("calliope", [1, 0.4, 0.25, 0.15, 0.1], 0.3, vib_depth=0.15, vib_delay=0.05, chorus=0.5))
    r.append(_synth("chiff lead", "pulse", 4000.0, 1.0, bright_tau=0.05, sus_bright=(0.3, 0.5), gain_db=-3.0))
    r.append(
        Recipe(
            "charang",
            bright=shaped(_driven(5.0), lambda h, f: lowpass(f, 5000.0, 2.0)),
            dark=shaped(_driven(2.5), lambda h, f: lowpass(f, 2500.0, 2.0)),
            attack=0.004,
            decay=0.6,
            sustain=0.8,
            fade=8.0,
            release=0.12,
            bright_vel=(0.7, 1.0),
            sus_bright=(0.4, 0.6),
            gain_db=-6.0,
        )
    )
    r.append(_pad("voice lead", choir_a, choir_o, attack=0.02, release=0.2, vib_depth=0.12, vib_delay=0.2,
                  chorus=0.4, bright_vel=(0.5, 1.0), sus_bright=(0.6, 0.8), gain_db=0.0))
    r.append(
        Recipe(
            "fifths",
            cycles=2,
            bright=mix((harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 6000.0, 2.0), "sine"), 1.0),
                       (partials([1.5 * k for k in range(1, 40)], [0.7 / k for k in range(1, 40)], 6000.0), 1.0)),
            dark=mix((harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 1500.0, 2.0), "sine"), 1.0),
                     (partials([1.5 * k for k in range(1, 40)], [0.7 / k for k in range(1, 40)], 1500.0), 1.0)),
            attack=0.005,
            decay=0.4,
            sustain=0.8,
            release=0.15,
            bright_vel=(0.5, 1.0),
            sus_bright=(0.4, 0.7),
            gain_db=-4.0,
        )
    )
    r.append(
        Recipe(
            "bass and lead",
            cycles=2,
            bright=mix((harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 5000.0, 2.0), "sine"), 1.0),
                       (partials([0.5], [1.0]), 1.0)),
            dark=mix((harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 900.0, 2.0), "sine"), 1.0),
                     (partials([0.5], [1.0]), 1.0)),
            attack=0.004,
            decay=0.4,
            sustain=0.75,
            release=0.12,
            bright_vel=(0.5, 1.0),
            sus_bright=(0.3, 0.5),
            gain_db=-3.0,
        )
    )
    # Synth pad --------------------------------------------------------------
    warm = harmonic(lambda h, f: power(h, 1.0) * lowpass(f, 900.0, 2.0))
    r.append(_pad("new age", partials([1, 2, 3, 4.25, 5.5], [1, 0.6, 0.4, 0.5, 0.3]), warm, cycles=4,
                  attack=0.01, decay=1.5, sustain=0.6, bright_vel=(0.8, 1.0), sus_bright=(0.0, 0.1),
                  bright_tau=0.6))
    r.append(_pad("warm pad", warm, harmonic(lambda h, f: power(h, 1.2) * lowpass(f, 500.0, 2.0)), attack=0.3))
    r.append(_pad("polysynth", syn_b, syn_d, attack=0.01, decay=0.6, sustain=0.7, release=0.4,
                  bright_vel=(0.6, 1.0), sus_bright=(0.2, 0.4), bright_tau=0.4))
    r.append(_pad("choir pad", choir_a, choir_u, attack=0.4, release=1.2, vib_depth=0.05))
    r.append(_pad("bowed glass", partials([1, 2, 3, 4], [1, 0.4, 0.2, 0.1]), partials([1, 2], [1, 0.2]),
                  attack=0.5, release=1.0))
    r.append(_pad("metallic pad", partials([1, 2.25, 3.5, 4.75, 6], [1, 0.6, 0.5, 0.3, 0.2], 8000.0),
                  partials([1, 2.25, 3.5], [1, 0.3, 0.1]), cycles=4, attack=0.02, release=1.5))
    r.append(_pad("halo pad", mix((choir_a, 1.0), (partials([4, 5, 6], [0.3, 0.2, 0.2]), 1.0)), choir_u,
                  attack=0.4, release=1.5))
    r.append(_pad("sweep pad", syn_d, syn_b, attack=0.2, release=1.2, bright_vel=(0.0, 0.0), sus_bright=(1.0, 1.0),
                  bright_tau=1.5))
    # Synth effects ----------------------------------------------------------
    r.append(_mallet("rain", [1, 2.5, 4.25, 6.5], [1, 0.5, 0.4, 0.3], 1.0, chorus=0.8, reverb=0.8,
                     trem_depth=0.3, vib_rate=8.0))
    r.append(_pad("soundtrack", warm, harmonic(lambda h, f: power(h, 1.5) * lowpass(f, 400.0, 2.0)), attack=0.5,
                  release=1.5, reverb=0.9))
    r.append(_mallet("crystal", [1, 2, 3.5, 5.25, 7.5], [1, 0.5, 0.4, 0.3, 0.2], 1.5, reverb=0.8, chorus=0.6))
    r.append(_pluck("atmosphere", 1 / 6, 0.8, 5000.0, 1.0, 4.0, sustain=0.6, chorus=0.9, reverb=0.8, release=0.8))
    r.append(_pad("brightness", syn_b, warm, attack=0.05, release=1.0, bright_vel=(1.0, 1.0),
                  sus_bright=(0.7, 0.9)))
    r.append(_pad("goblins", choir_u, warm, attack=0.6, release=1.2, vib_depth=0.8, vib_rate=0.7, vib_delay=0.0))
    r.append(_mallet("echoes", [1, 2, 3, 4.5], [1, 0.4, 0.3, 0.2], 1.5, trem_depth=0.5, vib_rate=3.0,
                     reverb=0.9, release=1.0))
    r.append(_pad("sci-fi", partials([1, 1.75, 2.5, 3.25], [1, 0.5, 0.4, 0.3]), warm, cycles=4, attack=0.1,
                  vib_depth=0.5, vib_rate=7.0, vib_delay=0.0, release=1.0))
    # Ethnic -----------------------------------------------------------------
    r.append(_pluck("sitar", 1 / 20, 0.4, 9000.0, 1.0, 3.0, sustain=0.6, pitch_env=0.15, pitch_tau=0.2,
                    sus_bright=(0.3, 0.5), chorus=0.3))
    r.append(_pluck("banjo", 1 / 9, 0.6, 8000.0, 0.25, 0.8, sustain=0.35))
    r.append(_pluck("shamisen", 1 / 11, 0.5, 7000.0, 0.3, 1.0, sustain=0.4, sus_bright=(0.1, 0.3)))
    r.append(_pluck("koto", 1 / 7, 0.7, 6000.0, 0.6, 2.0, vib_depth=0.05))
    r.append(_mallet("kalimba", [1, 5.25, 9.5], [1, 0.3, 0.1], 0.5))
    r.append(_reed("bagpipe", ((1200.0, 0.4, 4.0), (2800.0, 0.3, 2.0)), even=0.8, attack=0.02, vel_sens=0.0,
                   vib_depth=0.0, release=0.05, bright_vel=(0.7, 0.7), sus_bright=(0.8, 0.8), gain_db=-3.0))
    r.append(_bowed("fiddle", 1.05, attack=0.04, vib_depth=0.1, sus_bright=(0.5, 0.85)))
    r.append(_reed("shanai", ((1400.0, 0.3, 6.0), (3000.0, 0.3, 2.0)), vib_depth=0.15, sus_bright=(0.6, 0.9)))
    # Percussive -------------------------------------------------------------
    r.append(_mallet("tinkle bell", [1, 2.75, 4.5, 6.25], [1, 0.6, 0.4, 0.2], 0.8))
    r.append(_mallet("agogo", [1, 2.5, 4.25], [1, 0.5, 0.3], 0.3))
    r.append(_mallet("steel drums", [1, 2, 3, 4.25], [1, 0.5, 0.3, 0.2], 0.6, chorus=0.4, bright_tau=0.1))
    r.append(_mallet("woodblock", [1, 2.5, 4.25], [1, 0.3, 0.1], 0.06, release=0.05))
    r.append(_mallet("taiko", [1, 1.5, 2.25, 3], [1, 0.6, 0.3, 0.2], 0.35, cycles=4, pitch_env=-2.0,
                     pitch_tau=0.08, key_decay=0.0, release=0.4))
    r.append(_mallet("melodic tom", [1, 1.5, 2.25], [1, 0.4, 0.2], 0.25, pitch_env=3.0, pitch_tau=0.1,
                     key_decay=0.0))
    r.append(_mallet("synth drum", [1], [1], 0.3, cycles=1, pitch_env=12.0, pitch_tau=0.06, key_decay=0.0))
    r.append(
        Recipe(
            "reverse cymbal",
            bright=harmonic(lambda h, f: power(h, 0.2)),
            dark=harmonic(lambda h, f: power(h, 0.5)),
            noise=_noise_table(lambda f: highpass(f, 3000.0, 2.0), dark_fc=6000.0),
            attack=1.6,
            decay=0.05,
            sustain=0.0,
            release=0.08,
            bright_vel=(0.0, 0.0),
            sus_bright=(1.0, 1.0),
            bright_tau=1.0,
            gain_db=-6.0,
        )
    )
    # Sound effects ----------------------------------------------------------
    sine = harmonic(lambda h, f: power(h, 1.0))
    r.append(
        Recipe("fret noise", sine, sine, noise=_noise_table(lambda f: formants(f, ((3000.0, 0.5, 6.0),)) - 1.0),
               attack=0.002, decay=0.06, sustain=0.0, release=0.05, gain_db=-6.0)
    )
    r.append(
        Recipe("breath noise", sine, sine, noise=_noise_table(lambda f: formants(f, ((1200.0, 1.0, 4.0),)) - 1.0),
               attack=0.06, decay=0.5, sustain=0.7, release=0.15, gain_db=-6.0)
    )
    r.append(
        Recipe("seashore", sine, sine, noise=_noise_table(lambda f: lowpass(f, 1500.0, 1.0), _waves),
               attack=1.0, release=1.5, gain_db=-4.0, reverb=0.6)
    )
    r.append(
        Recipe("bird tweet", partials([1, 2], [1, 0.1]), partials([1], [1]), attack=0.01, vib_depth=4.0,
               vib_rate=14.0, vib_delay=0.0, trem_depth=0.6, release=0.1, gain_db=-4.0)
    )
    r.append(
        Recipe("telephone ring", partials([1, 1.25, 2, 2.5], [1, 1, 0.3, 0.3]), partials([1, 1.25], [1, 1]),
               cycles=4, attack=0.005, trem_depth=1.0, vib_rate=16.0, release=0.05, gain_db=-4.0)
    )
    r.append(
        Recipe("helicopter", sine, sine, noise=_noise_table(lambda f: lowpass(f, 600.0, 2.0)), attack=0.5,
               trem_depth=0.9, vib_rate=11.0, release=0.6, gain_db=-2.0)
    )
    r.append(
        Recipe("applause", sine, sine, noise=_noise_table(lambda f: formants(f, ((2000.0, 1.2, 3.0),)) - 1.0,
                                                         _applause),
               attack=0.3, release=0.8, gain_db=-4.0, reverb=0.6)
    )
    r.append(
        Recipe("gunshot", sine, sine, noise=_noise_table(lambda f: lowpass(f, 3000.0, 1.0)), attack=0.001,
               decay=0.12, sustain=0.0, release=0.2, pitch_env=-5.0, pitch_tau=0.2, reverb=0.7)
    )
    named = []
    for program, recipe in enumerate(r):
        named.append(replace(recipe, name=GM_NAMES[program], seed=program))
    if len(named) != 128:
        raise AssertionError(f"the GM bank must have 128 programs, has {len(named)}")
    return named


# ---------------------------------------------------------------------------


class Bank:
    """The built-in GM bank at one sample rate: the pool, 128 programs, a drum kit.

    Use :func:`get_bank`, which caches one bank per sample rate.
    """

    #: What ``mxfd status`` calls this bank.
    name = "built-in GM"

    def __init__(self, sample_rate: int) -> None:
        from mxfd.synth.drums import build_kit

        self.sample_rate = sample_rate
        pool = PoolBuilder()
        self.programs: tuple[Patch, ...] = tuple(make_patch(rc, pool, sample_rate) for rc in gm_recipes())
        kit = build_kit(pool, sample_rate)
        #: Drum patches by key number (None: no sound at that key).
        self.drums: tuple[Optional[Patch], ...] = tuple(kit.get(k) for k in range(128))
        self.pool: C128 = pool.build()

    @classmethod
    def of(cls, sample_rate: int, programs: tuple[Patch, ...], drums: tuple[Optional[Patch], ...], pool: C128) -> Bank:
        """A bank from parts built before (:mod:`mxfd.synth.bank_cache` keeps them on disk)."""
        bank = cls.__new__(cls)
        bank.sample_rate = sample_rate
        bank.programs = programs
        bank.drums = drums
        bank.pool = pool
        return bank

    @property
    def nbytes(self) -> int:
        return int(self.pool.nbytes)


_BANKS: dict[int, Bank] = {}
_BANKS_LOCK = threading.Lock()


def get_bank(sample_rate: int) -> Bank:
    """The (shared, immutable) built-in bank for ``sample_rate``; built once, then mapped from the disk cache."""
    from mxfd.synth.bank_cache import load_or_build

    with _BANKS_LOCK:
        bank = _BANKS.get(sample_rate)
        if bank is None:
            bank = _BANKS[sample_rate] = load_or_build(sample_rate)
        return bank
