"""The built-in bank as a SoundFont, so the one voice engine plays it as it plays any font.

Theory of operation
-------------------
The built-in bank (:mod:`mxfd.synth.bank`) describes each program by a
recipe: per octave band a *bright* and a *dark* band-limited wavetable, an
envelope ``E(t)`` (linear attack, exponential decay toward a sustain level
that may itself fade), and a brightness ``w(t)`` that starts where the
velocity puts it and moves to its sustain value, the layers sounding as
``E w`` and ``E (1 - w)``.  Here each becomes SoundFont zones:

- every table is a looped sample (three copies of one period run, the loop
  over the middle one, so interpolation on either side of the loop reads
  the table's own neighbours), its root key and pitch correction the table's
  fundamental at the bank's sample rate;
- each octave band is a pair of zones, bright and dark, over the keys the
  band serves (shifted down by the pitch envelope and vibrato the band's
  margin must hold, as the bank chooses them), split in
  :data:`VELOCITY_SPLITS` where the brightness follows velocity;
- each layer's curve, sampled in time, is fitted with a SoundFont volume
  envelope: the attack to the layer's peak, a decay linear in dB toward the
  level it settles at (silence when it fades away), the recipe's release;
  the peak becomes the zone's attenuation;
- vibrato, tremolo and the pitch envelope become the vibrato LFO, the
  modulation LFO to volume and the modulation envelope to pitch; the
  recipe's velocity sensitivity, reverb and chorus sends replace the amounts
  of the default modulators that carry velocity, CC91 and CC93; the default
  velocity-to-filter modulator is switched off (brightness is the bank's own);
- the drum kit is bank 128, one unlooped zone per key, with its exclusive
  classes, and a release long enough that a note-off does not cut a hit.

The file is built once per sample rate and kept in the cache directory
beside the bank's own files; later starts map it (:func:`builtin_soundfont`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Final, Optional, Sequence

import numpy as np
import numpy.typing as npt

from mxfd.synth.bank import BANDS, GM_NAMES, Bank, Patch, get_bank
from mxfd.synth.bank_cache import bank_key, cache_dir
from mxfd.synth.soundfont import units
from mxfd.synth.soundfont.font import PERCUSSION_BANK, SoundFont, load_soundfont
from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.modulators import (
    DEFAULT_CHORUS_SEND,
    DEFAULT_REVERB_SEND,
    DEFAULT_VEL_TO_ATTENUATION,
    DEFAULT_VEL_TO_FILTER,
    Modulator,
)
from mxfd.synth.soundfont.writer import Font, Instrument, Preset, Sample, Zone, key_range, soundfont_bytes

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]

#: The font's name, as status and ``mxfd instruments`` show it.
NAME: Final = "built-in GM"
#: Velocity ranges a program whose brightness follows velocity is split into (three: a file holds at
#: most 65535 generators, and every split of every band of every program costs two zones).
VELOCITY_SPLITS: Final = ((0, 47), (48, 89), (90, 127))
#: A layer whose peak stays this far under full level is left out (its voice would not be heard).
MIN_LAYER: Final = 1e-3
#: Where a layer's settled level counts as silence (dB under its peak): the envelope decays to nothing.
SILENT_DB: Final = -60.0
#: The loudest zone's level: every zone is scaled alike so that the loudest needs no gain above 0 dB
#: (a zone can only attenuate), which keeps the bank's balance between programs and drums.
LOUDEST: Final = 1.0
#: Times the envelope fit samples (seconds): dense over the attack, logarithmic over the tail.
_T: Final[F64] = np.unique(np.concatenate([np.linspace(0.0, 0.05, 101), np.geomspace(0.05, 120.0, 600)]))
_TC_ZERO: Final = -12000  # the shortest time SoundFont timecents say (1 ms)


def _timecents(seconds: float) -> int:
    return _TC_ZERO if seconds <= 0.001 else min(8000, int(round(units.seconds_to_timecents(seconds))))


def _layer_curves(p: Patch, vel: float) -> tuple[F64, F64]:
    """The bright and dark layers' amplitudes over :data:`_T` for a note at ``vel`` (0..1), middle C's key scaling."""
    t = _T
    tau = np.maximum(t - p.attack, 0.0)
    held = p.sustain * (np.exp(-tau / p.fade) if math.isfinite(p.fade) else 1.0)
    env = held + (1.0 - p.sustain) * np.exp(-tau / p.decay)
    if p.attack > 0.0:
        env = np.where(t < p.attack, t / p.attack, env)
    w0 = p.bright_vel[0] + (p.bright_vel[1] - p.bright_vel[0]) * vel
    ws = p.sus_bright[0] + (p.sus_bright[1] - p.sus_bright[0]) * vel
    w = ws + (w0 - ws) * np.exp(-t / p.bright_tau) if math.isfinite(p.bright_tau) else np.full_like(t, w0)
    return env * w, env * (1.0 - w)


def fit_envelope(level: F64, attack: float) -> Optional[tuple[float, list[tuple[Gen, int]]]]:
    """(peak, volume envelope generators) fitting ``level`` over :data:`_T`; None for a layer too weak to hear.

    The attack ends where the layer first reaches 80 % of its peak and holds until it is within
    2 % of it (a layer that swells as the brightness moves toward it is at its level early on, not
    after the swell), the decay is linear in dB toward the level the layer settles at.
    """
    peak = float(level.max())
    if peak < MIN_LAYER:
        return None
    a = int(np.argmax(level >= 0.8 * peak))
    p = int(np.argmax(level >= 0.98 * peak))
    t_attack = max(float(_T[a]), attack)
    t_peak = max(float(_T[p]), t_attack)
    gens = [(Gen.ATTACK_VOL_ENV, _timecents(t_attack))]
    if t_peak - t_attack > 0.001:
        gens.append((Gen.HOLD_VOL_ENV, _timecents(t_peak - t_attack)))
    db = 20.0 * np.log10(np.maximum(level[p:], 1e-12) / peak)
    settled = float(db[-1])
    if settled > -0.5:
        return peak, gens + [(Gen.SUSTAIN_VOL_ENV, 0)]
    floor = settled if settled > SILENT_DB else -units.PEAK_ATTENUATION_CB / 10.0
    mark = floor / 2.0 if floor > -40.0 else -20.0
    reached = np.flatnonzero(db <= mark)
    t_mark = float(_T[p + int(reached[0])]) if len(reached) else float(_T[-1])
    slope = -mark / max(t_mark - t_peak, 1e-3)  # dB a second
    # A SoundFont decay time is the time for the whole 96 dB: the level falls linearly in dB at that pace.
    decay = units.PEAK_ATTENUATION_CB / 10.0 / slope
    sustain_cb = min(1000, int(round(-floor * 10.0 / 0.96)))  # FluidSynth: 1 - 0.001 x cB, over 960 cB
    return peak, gens + [(Gen.DECAY_VOL_ENV, _timecents(decay)), (Gen.SUSTAIN_VOL_ENV, sustain_cb)]


def _attenuation_cb(gain: float) -> int:
    """initialAttenuation for a linear ``gain`` (at most 1: a zone can only attenuate), with the EMU factor."""
    cb = units.gain_to_centibels(min(gain, 1.0)) / units.EMU_ATTENUATION_FACTOR
    return int(round(min(max(cb, 0.0), 1440.0)))


def _pitch(hz: float) -> tuple[int, int]:
    """(root key, pitch correction in cents) of a sample whose pitch is ``hz``."""
    key = 69.0 + 12.0 * math.log2(hz / 440.0)
    root = min(127, max(0, int(round(key))))
    return root, int(round(min(127.0, max(-128.0, (root - key) * 100.0))))


class _Builder:
    """Collects samples (one per table and layer, shared by the zones that play it) and zones."""

    def __init__(self, bank: Bank) -> None:
        self.bank = bank
        self.rate = bank.sample_rate
        rows = bank.pool.view(np.float32).reshape(-1, 4)
        self.layers = (rows[:, 0], rows[:, 2])
        self.font = Font(NAME)
        self._samples: dict[tuple[int, int, int], tuple[int, float]] = {}
        self._levels: list[tuple[list[tuple[Gen, int]], float]] = []

    def zone(self, gens: list[tuple[Gen, int]], level: float, sample: int, mods: Sequence[Modulator] = ()) -> Zone:
        """A zone playing ``sample`` at the linear ``level``: its attenuation is set by :meth:`finish`."""
        self._levels.append((gens, level))
        return Zone(gens, mods, sample)

    def finish(self) -> Font:
        """The font, every zone's attenuation set with one scale for all (:data:`LOUDEST`)."""
        scale = LOUDEST / max((level for _, level in self._levels), default=1.0)
        for gens, level in self._levels:
            gens.append((Gen.INITIAL_ATTENUATION, _attenuation_cb(level * scale)))
        return self.font

    def sample(self, name: str, base: int, length: int, layer: int, hz: float, looped: bool) -> tuple[int, float]:
        """(index, peak) of the sample of pool rows ``base .. base + length`` of ``layer``."""
        key = (base, length, layer)
        got = self._samples.get(key)
        if got is not None:
            return got
        x = np.asarray(self.layers[layer][base : base + length], dtype=np.float64)
        peak = float(np.max(np.abs(x), initial=0.0)) or 1.0
        data = np.round(x * (32767.0 / peak)).astype(np.int16)
        if looped:
            root, correction = _pitch(hz)
            sample = Sample(name, np.tile(data, 3), self.rate, root, correction, (length, 2 * length))
        elif hz > 0.0:
            root, correction = _pitch(hz)
            sample = Sample(name, data, self.rate, root, correction)
        else:
            sample = Sample(name, data, self.rate)
        self.font.samples.append(sample)
        got = self._samples[key] = (len(self.font.samples) - 1, peak)
        return got


def _program_modulators(p: Patch) -> list[Modulator]:
    return [
        Modulator(DEFAULT_VEL_TO_ATTENUATION.src, DEFAULT_VEL_TO_ATTENUATION.dest,
                  round(DEFAULT_VEL_TO_ATTENUATION.amount * p.vel_sens), DEFAULT_VEL_TO_ATTENUATION.amount_src),
        Modulator(DEFAULT_VEL_TO_FILTER.src, DEFAULT_VEL_TO_FILTER.dest, 0, DEFAULT_VEL_TO_FILTER.amount_src),
        Modulator(DEFAULT_REVERB_SEND.src, DEFAULT_REVERB_SEND.dest, round(1000 * p.reverb)),
        Modulator(DEFAULT_CHORUS_SEND.src, DEFAULT_CHORUS_SEND.dest, round(1000 * p.chorus)),
    ]  # fmt: skip


def _program_generators(p: Patch) -> list[tuple[Gen, int]]:
    gens: list[tuple[Gen, int]] = [(Gen.SAMPLE_MODES, 1), (Gen.RELEASE_VOL_ENV, _timecents(max(p.release, 0.005)))]
    if p.key_decay:
        gens.append((Gen.KEYNUM_TO_VOL_ENV_DECAY, int(round(100.0 * p.key_decay))))
    lfo = int(round(units.hz_to_absolute_cents(max(p.vib_rate, 0.01))))
    if p.vib_depth > 0.0:
        gens += [(Gen.VIB_LFO_TO_PITCH, int(round(100.0 * p.vib_depth))), (Gen.FREQ_VIB_LFO, lfo),
                 (Gen.DELAY_VIB_LFO, _timecents(p.vib_delay / 2.0))]  # fmt: skip
    if p.trem_depth > 0.0:
        swing = -100.0 * math.log10(max(1.0 - p.trem_depth, 1e-3))  # cB either way of the middle
        gens += [(Gen.MOD_LFO_TO_VOLUME, int(round(swing))), (Gen.FREQ_MOD_LFO, lfo)]
    if p.pitch_env:
        gens += [(Gen.MOD_ENV_TO_PITCH, int(round(100.0 * p.pitch_env))), (Gen.ATTACK_MOD_ENV, _TC_ZERO),
                 (Gen.DECAY_MOD_ENV, _timecents(2.5 * p.pitch_tau)), (Gen.SUSTAIN_MOD_ENV, 1000)]  # fmt: skip
    return gens


def _splits(p: Patch) -> tuple[tuple[int, int], ...]:
    if p.bright_vel[0] == p.bright_vel[1] and p.sus_bright[0] == p.sus_bright[1]:
        return ((0, 127),)
    return VELOCITY_SPLITS


def _program_instrument(b: _Builder, program: int, p: Patch) -> Instrument:
    zones = [Zone(_program_generators(p), _program_modulators(p))]
    reach = int(math.ceil(max(0.0, p.pitch_env) + p.vib_depth))
    for lo_v, hi_v in _splits(p):
        curves = _layer_curves(p, (lo_v + hi_v) / 2.0 / 127.0)
        fits = [fit_envelope(c, p.attack) for c in curves]
        for band in range(len(p.bases)):
            if len(p.bases) == 1:
                lo_k, hi_k, centre = 0, 127, 60.0
            else:
                lo_k, hi_k = 12 * band - reach, 12 * band + 11 - reach
                if band == BANDS - 1:
                    hi_k = 127
                if band == 0:
                    lo_k = 0
                if hi_k < 0 or lo_k > 127:
                    continue
                centre = 12 * band + 5.5 - reach
            hz = b.rate * p.cycles / p.lengths[band]
            pan = p.pan + p.key_pan * (min(max(centre, 0.0), 127.0) - 64.0) / 64.0
            for layer, fit in enumerate(fits):
                if fit is None:
                    continue
                level, envelope = fit
                index, peak = b.sample(
                    f"{program:03d}-{band:02d}{'bd'[layer]}", p.bases[band], p.lengths[band], layer, hz, looped=True
                )
                gens = [(Gen.KEY_RANGE, key_range(lo_k, hi_k)), *envelope]
                if (lo_v, hi_v) != (0, 127):
                    gens.append((Gen.VEL_RANGE, key_range(lo_v, hi_v)))
                if pan:
                    gens.append((Gen.PAN, int(round(1000.0 * min(max(pan, -0.5), 0.5)))))
                zones.append(b.zone(gens, p.gain * level * peak, index))
    return Instrument(GM_NAMES[program], zones)


def _drum_instrument(b: _Builder) -> Instrument:
    zones = []
    for key, p in enumerate(b.bank.drums):
        if p is None:
            continue
        index, peak = b.sample(f"drum-{key:03d}", p.bases[0], p.lengths[0], p.layer, p.root_hz, looped=False)
        seconds = p.lengths[0] / b.rate
        gens: list[tuple[Gen, int]] = [
            (Gen.KEY_RANGE, key_range(key, key)),
            (Gen.PAN, int(round(1000.0 * min(max(p.pan, -0.5), 0.5)))),
            (Gen.ATTACK_VOL_ENV, _TC_ZERO),
            (Gen.RELEASE_VOL_ENV, _timecents(seconds if p.ignore_note_off else p.release)),
        ]
        if p.root_hz <= 0.0:
            gens += [(Gen.SCALE_TUNING, 0), (Gen.OVERRIDING_ROOT_KEY, key)]
        if p.exclusive:
            gens.append((Gen.EXCLUSIVE_CLASS, p.exclusive))
        zones.append(b.zone(gens, p.gain * peak, index, _program_modulators(p)))
    return Instrument("Standard Kit", zones)


def builtin_font_spec(bank: Bank) -> Font:
    """The SoundFont of ``bank``: its 128 programs in bank 0, its kit as bank 128 program 0."""
    b = _Builder(bank)
    for program, patch in enumerate(bank.programs):
        b.font.instruments.append(_program_instrument(b, program, patch))
        b.font.presets.append(Preset(GM_NAMES[program], 0, program, [Zone((), (), program)]))
    b.font.instruments.append(_drum_instrument(b))
    b.font.presets.append(Preset("Standard Kit", PERCUSSION_BANK, 0, [Zone((), (), len(b.font.instruments) - 1)]))
    return b.finish()


def builtin_font_path(sample_rate: int, directory: Optional[Path] = None) -> Path:
    """Where the built-in font for ``sample_rate`` is kept: named for what builds it, as the bank's files are."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(bank_key(sample_rate).encode())
    for source in (here / "builtin_font.py", here / "soundfont" / "writer.py"):
        h.update(source.read_bytes())
    return (directory or cache_dir()) / f"builtin-{sample_rate}-{h.hexdigest()[:16]}.sf2"


def builtin_soundfont(sample_rate: int, directory: Optional[Path] = None) -> SoundFont:
    """The built-in bank as a loaded SoundFont (memory-mapped): from the cache, else built and kept there.

    A cache that cannot be written costs a warning: the font is then built into memory each time.
    """
    path = builtin_font_path(sample_rate, directory)
    if path.exists():
        try:
            return load_soundfont(path)
        except Exception as exc:  # a damaged cache file is rebuilt, not fatal
            log.warning("built-in font cache %s unusable (%s): building it again", path, exc)
    data = soundfont_bytes(builtin_font_spec(get_bank(sample_rate)))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("cannot keep the built-in font in %s (%s): it is built at every start", path.parent, exc)
        from mxfd.synth.soundfont.font import soundfont_from_buffer

        return soundfont_from_buffer(data, NAME)
    return load_soundfont(path)
