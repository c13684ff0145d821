"""``VoiceEngine``: the render voices, struct-of-arrays, vectorised across voices.

Theory of operation
-------------------
This is the real-time half of the synth (FluidSynth's rvoice side).  Every
voice is one column of a few preallocated arrays; the voices sounding now
are always the first ``n`` columns (a freed voice is replaced by the last
one), so a render step works on plain ``[:n]`` slices and never loops over
voices in Python.  No array is allocated after construction: every numpy
call writes into preallocated storage with ``out=``, and per-voice values
are broadcast by matrix products or ``copyto`` (a broadcasting ufunc with
``out=`` still allocates iterator buffers).  What remains per call is
numpy's own small, short-lived objects (views, iterators), a few KB that
are freed before the call returns.

The synth renders a block as *segments* between event offsets, so every
event takes effect at its own sample.  :meth:`render_segment` does, for a
segment of ``m`` frames:

1. Control rate, on ``(n,)`` arrays: channel gain (volume × expression,
   smoothed), pitch (key + bend + pitch envelope + vibrato LFO), the ADSR
   envelope, the brightness cross-fade, tremolo.  The envelope is a
   first-order section per stage, ``env' = tgt + (env + slope·m - tgt)·e^(-rate·m)``,
   which covers a linear attack (rate 0), exponential decay toward a
   sustain level that itself fades (``tgt`` decays), release and the fast
   fade of a stolen voice, with one formula and no branches.
2. Audio rate, on ``(n, m)`` arrays, all from one small matrix product:
   ``coef (3, n, 4) @ basis (4, m)`` gives each voice's phase (a quadratic,
   so pitch changes glide within the segment), and the gains of its bright
   and dark layers (linear ramps from the previous segment's end: no zipper
   noise, no clicks).  The phase is wrapped per voice (``& (L-1)``), offset
   to the voice's table, and one gather reads ``(a, da, b, db)`` rows from
   the pool; ``(a + da·f)·gA + (b + db·f)·gB`` is the voice signal.
3. One more matrix product mixes all voices into four buses: left, right,
   chorus send, reverb send (``mix (4, n) @ signal (n, m)``).

Attack ends are segment boundaries too (the synth asks
:attr:`next_attack_end`), so an attack reaches its peak on its exact sample
and the decay starts there.

Voices die when their envelope falls below ``floor`` (about -100 dB) or a
one-shot runs off its end.  A stolen or choked voice fades with a 1 ms time
constant and is then freed; it keeps its column meanwhile, which is why the
engine has room for more voices than the polyphony limit.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from mxfd.limits import MAX_POLYPHONY
from mxfd.synth.bank import BEND_MARGIN, Bank, Patch, note_hz

# Stages.
ATTACK: Final = 0
DECAY: Final = 1  # decay toward the sustain level, and the sustain itself
RELEASE: Final = 2
FADE: Final = 3  # stolen, choked or silenced: a few ms to zero

#: Envelope level at which a voice is inaudible and freed (-100 dB).
KILL_LEVEL: Final = 1e-5
#: A fading voice is freed here (-80 dB of its level, itself below full scale).
FADE_FLOOR: Final = 1e-4
#: Time constant of the fade of a stolen, choked or silenced voice (seconds).
FADE_TAU: Final = 0.001
#: Smoothing time constant of channel gain and pan changes (seconds).
SMOOTH_TAU: Final = 0.005
#: A note let go during an attack shorter than this still reaches its peak first (seconds).
MIN_NOTE: Final = 0.01
#: Default longest segment (frames); longer blocks are rendered in chunks.
MAX_SEGMENT: Final = 128
_NEVER: Final = np.iinfo(np.int64).max
_GOLDEN: Final = 0.6180339887498949

# Rows of the float64 state matrix.
(
    POS, INC_KEY, INC, WRAP, END, ENV, SLOPE, RATE, TGT_RATE, W_RATE, PE_RATE, TGT, CAP, FLOOR, W, W_TGT, VELGAIN,
    CG, PANP, PAN_OFF, LFO, LFO_RATE, VIB, VIB_ENV, VIB_ENV_RATE, TREM_A, TREM_B, PE, GA, GB,
    SEND_CHO, SEND_REV, RELEASE_RATE, DECAY_RATE, PITCH_SENS,
) = range(35)  # fmt: skip
# RATE, TGT_RATE, W_RATE and PE_RATE are adjacent: one exp call decays all four per segment.
_NF: Final = 35
# Rows of the int64 state matrix.
CHAN, KEY, NOTE, START, ATTACK_END, EXCL, STAGE, HELD, SUS, SOST, DRUM, REL_PENDING, IGNORE_OFF, SEQ = range(14)
_NI: Final = 14

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class ChannelParams:
    """What a voice reads from its channel, per channel (group slot × 16 + channel).

    Kept up to date by :class:`~mxfd.synth.channel.ChannelState`; the engine
    reads these arrays every segment.
    """

    gain: F64  # volume × expression, linear
    pan: F64  # 0 (left) .. 1 (right)
    bend: F64  # semitones: pitch bend × range + tuning
    bend_up: F64  # semitones: the highest the bend can go now (range + tuning, or the bend if higher)
    vib: F64  # semitones of vibrato from modulation wheel and pressure
    chorus: F64  # send 0..1
    reverb: F64  # send 0..1


class VoiceEngine:
    """Preallocated voices and the vectorised renderer.

    Parameters
    ----------
    bank:
        The instrument bank (its pool is what voices read).
    sample_rate:
        Frames per second.
    polyphony:
        Voices that may sound at once; the engine has room for twice as many
        so stolen voices can fade out.
    max_segment:
        Longest segment :meth:`render_segment` accepts.
    """

    def __init__(self, bank: Bank, sample_rate: int, polyphony: int, max_segment: int = MAX_SEGMENT) -> None:
        if not 1 <= polyphony <= MAX_POLYPHONY:
            raise ValueError(f"polyphony must be 1..{MAX_POLYPHONY}, got {polyphony}")
        self.bank = bank
        self.pool = bank.pool
        self.sample_rate = sample_rate
        self.polyphony = polyphony
        self.capacity = cap = max(2 * polyphony, polyphony + 16)
        self.max_segment = ms = max_segment
        self.n = 0
        #: Voices fading out after a steal, choke or sound-off (they do not count toward polyphony).
        self.n_fading = 0
        self._n_attack = 0
        #: Sample position at which the earliest attack ends (a segment boundary).
        self.next_attack_end = _NEVER
        self._started = 0
        # Counters.
        self.stolen = 0
        self.hard_killed = 0
        self.voices_peak = 0
        self.notes_started = 0

        self.f = np.zeros((_NF, cap), dtype=np.float64)
        self.i = np.zeros((_NI, cap), dtype=np.int64)
        self.f[END] = math.inf
        self.f[WRAP] = math.inf
        self.i[ATTACK_END] = _NEVER
        self._maskcol = np.zeros((cap, 1), dtype=np.intp)
        self._basecol = np.zeros((cap, 1), dtype=np.intp)
        # Audio-rate coefficients: [phase, gain A, gain B] × basis [1, n, n + 1, n (n - 1) / 2].
        self._coef = np.zeros((3, cap, 4), dtype=np.float32)
        self._mix = np.zeros((cap, 4), dtype=np.float32)
        k = np.arange(ms, dtype=np.float64)
        self._basis = np.ascontiguousarray(np.stack([np.ones(ms), k, k + 1.0, k * (k - 1.0) / 2.0]).astype(np.float32))
        # Control-rate scratch.
        self._s = np.zeros((12, cap), dtype=np.float64)
        self._decays = np.zeros((4, cap), dtype=np.float64)
        self._b = np.zeros((4, cap), dtype=np.bool_)
        # Audio-rate scratch, as flat buffers viewed (n, m) contiguously per segment.
        self._r = np.zeros(3 * cap * ms, dtype=np.float32)
        self._fr = np.zeros(cap * ms, dtype=np.float32)
        self._idx = np.zeros(cap * ms, dtype=np.intp)
        self._col = np.zeros(cap * ms, dtype=np.intp)
        self._g = np.zeros(cap * ms, dtype=np.complex128)
        self._t1 = np.zeros(cap * ms, dtype=np.float32)
        self._t2 = np.zeros(cap * ms, dtype=np.float32)
        self._smooth_per_sample = 1.0 / (SMOOTH_TAU * sample_rate)
        self._pan_dirty = 0

    # -- queries ---------------------------------------------------------------

    @property
    def sounding(self) -> int:
        """Voices counting toward the polyphony limit (all but the fading ones)."""
        return self.n - self.n_fading

    # -- starting voices -------------------------------------------------------

    def allocate(self) -> int:
        """A free column for a new voice (the caller has made room under the polyphony limit)."""
        if self.n >= self.capacity:
            # Every column is busy with sounding or fading voices: cut the quietest fading one.
            n = self.n
            s = self._s[0, :n]
            np.multiply(self.f[ENV, :n], self.f[VELGAIN, :n], out=s)
            fading = self._b[0, :n]
            np.equal(self.i[STAGE, :n], FADE, out=fading)
            np.logical_not(fading, out=fading)
            s[fading] = math.inf
            victim = int(np.argmin(s))
            self.hard_killed += 1
            self._free(victim)
        v = self.n
        self.n += 1
        if self.n > self.voices_peak:
            self.voices_peak = self.n
        return v

    def start(
        self,
        v: int,
        patch: Patch,
        chan: int,
        note: int,
        velocity: int,
        now: int,
        params: ChannelParams,
        drum: bool,
    ) -> None:
        """Fill column ``v`` with a new note of ``patch`` starting at sample ``now``."""
        f = self.f
        i = self.i
        sr = self.sample_rate
        vel = velocity / 127.0
        bend = float(params.bend[chan])
        if patch.one_shot:
            base, length = patch.bases[0], patch.lengths[0]
            inc_key = 1.0 if patch.root_hz <= 0 else note_hz(note) / patch.root_hz
            f[WRAP, v] = math.inf
            f[END, v] = float(length)
            mask = -1
            f[POS, v] = 0.0
        else:
            # The band that stays alias-free up to the top of the bend range (tables allow BEND_MARGIN).
            reach = max(0.0, float(params.bend_up[chan]) - BEND_MARGIN) + max(0.0, patch.pitch_env) + patch.vib_depth
            base, length = patch.table(note_hz(note + reach))
            inc_key = length * note_hz(note) / (patch.cycles * sr)
            f[WRAP, v] = float(length)
            f[END, v] = math.inf
            mask = length - 1
            self._started += 1
            f[POS, v] = ((self._started * _GOLDEN) % 1.0) * length
        f[INC_KEY, v] = inc_key
        if drum:
            f[INC, v] = inc_key
            f[PE, v] = 0.0
            f[PITCH_SENS, v] = 0.0
        else:
            f[INC, v] = inc_key * 2.0 ** ((bend + patch.pitch_env) / 12.0)
            f[PE, v] = patch.pitch_env
            f[PITCH_SENS, v] = 1.0
        f[PE_RATE, v] = 1.0 / (patch.pitch_tau * sr)
        kt = 2.0 ** (-patch.key_decay * (note - 60) / 12.0)
        f[TGT_RATE, v] = 0.0 if math.isinf(patch.fade) else 1.0 / (patch.fade * kt * sr)
        f[RELEASE_RATE, v] = math.log(1.0 / KILL_LEVEL) / (max(patch.release, 0.005) * sr)
        f[DECAY_RATE, v] = 1.0 / (patch.decay * kt * sr)
        if patch.attack > 0.0:
            attack = max(1, round(patch.attack * sr))
            f[ENV, v] = 0.0
            f[SLOPE, v] = 1.0 / attack
            f[RATE, v] = 0.0
            f[CAP, v] = 1.0
            f[FLOOR, v] = -1.0
            i[STAGE, v] = ATTACK
            i[ATTACK_END, v] = now + attack
            self._n_attack += 1
            if now + attack < self.next_attack_end:
                self.next_attack_end = now + attack
        else:
            f[ENV, v] = 1.0
            f[SLOPE, v] = 0.0
            f[RATE, v] = f[DECAY_RATE, v]
            f[CAP, v] = math.inf
            f[FLOOR, v] = KILL_LEVEL
            i[STAGE, v] = DECAY
            i[ATTACK_END, v] = _NEVER
        f[TGT, v] = patch.sustain
        lo, hi = patch.bright_vel
        w0 = lo + (hi - lo) * vel
        lo, hi = patch.sus_bright
        f[W, v] = w0
        f[W_TGT, v] = lo + (hi - lo) * vel
        f[W_RATE, v] = 0.0 if math.isinf(patch.bright_tau) else 1.0 / (patch.bright_tau * kt * sr)
        f[VELGAIN, v] = patch.gain * vel ** (2.0 * patch.vel_sens)
        cg = float(params.gain[chan])
        f[CG, v] = cg
        pan_off = patch.pan + patch.key_pan * (note - 64) / 64.0
        f[PAN_OFF, v] = pan_off
        panp = min(1.0, max(0.0, float(params.pan[chan]) + pan_off))
        f[PANP, v] = panp
        f[LFO, v] = 0.0
        f[LFO_RATE, v] = 2.0 * math.pi * patch.vib_rate / sr
        f[VIB, v] = patch.vib_depth
        if patch.vib_delay > 0.0:
            f[VIB_ENV, v] = 0.0
            f[VIB_ENV_RATE, v] = 1.0 / (patch.vib_delay * sr)
        else:
            f[VIB_ENV, v] = 1.0
            f[VIB_ENV_RATE, v] = 0.0
        f[TREM_A, v] = 1.0 - 0.5 * patch.trem_depth
        f[TREM_B, v] = -0.5 * patch.trem_depth
        g0 = 0.0 if patch.attack > 0.0 else f[VELGAIN, v] * cg * f[TREM_A, v]
        f[GA, v] = g0 * w0
        f[GB, v] = g0 * (1.0 - w0)
        f[SEND_CHO, v] = patch.chorus
        f[SEND_REV, v] = patch.reverb
        mix = self._mix[v]
        mix[0] = math.cos(panp * math.pi / 2.0)
        mix[1] = math.sin(panp * math.pi / 2.0)
        mix[2] = patch.chorus * float(params.chorus[chan])
        mix[3] = patch.reverb * float(params.reverb[chan])
        i[CHAN, v] = chan
        i[NOTE, v] = note
        i[KEY, v] = chan * 128 + note
        i[START, v] = now
        i[EXCL, v] = patch.exclusive if drum else 0
        i[HELD, v] = 1
        i[SUS, v] = 0
        i[SOST, v] = 0
        i[DRUM, v] = 1 if drum else 0
        i[REL_PENDING, v] = 0
        i[IGNORE_OFF, v] = 1 if patch.ignore_note_off else 0
        i[SEQ, v] = self.notes_started
        self._maskcol[v, 0] = mask
        self._basecol[v, 0] = base
        self.notes_started += 1

    # -- changing voices -------------------------------------------------------

    def release(self, v: int) -> None:
        """Start the release of voice ``v`` from where its envelope is now.

        A note let go during a short attack (under :data:`MIN_NOTE`) first
        reaches its peak, so even a zero-length note is heard; a long attack
        (a pad's swell) is released at once from its current level.
        """
        i = self.i
        stage = i[STAGE, v]
        if stage == ATTACK:
            if i[ATTACK_END, v] - i[START, v] <= MIN_NOTE * self.sample_rate:
                i[REL_PENDING, v] = 1
                return
            i[ATTACK_END, v] = _NEVER
            self._end_attack_count()
            if self._n_attack:
                self.next_attack_end = int(i[ATTACK_END, : self.n].min())
        elif stage >= RELEASE:
            return
        self.i[STAGE, v] = RELEASE
        f = self.f
        f[SLOPE, v] = 0.0
        f[RATE, v] = f[RELEASE_RATE, v]
        f[TGT, v] = 0.0
        f[TGT_RATE, v] = 0.0
        f[CAP, v] = math.inf
        f[FLOOR, v] = KILL_LEVEL

    def fade(self, v: int) -> None:
        """Fade voice ``v`` out within a few ms (steal, choke, sound off)."""
        stage = self.i[STAGE, v]
        if stage == FADE:
            return
        if stage == ATTACK:
            self._end_attack_count()
        self.i[STAGE, v] = FADE
        self.i[ATTACK_END, v] = _NEVER
        self.n_fading += 1
        f = self.f
        f[SLOPE, v] = 0.0
        f[RATE, v] = 1.0 / (FADE_TAU * self.sample_rate)
        f[TGT, v] = 0.0
        f[TGT_RATE, v] = 0.0
        f[CAP, v] = math.inf
        f[FLOOR, v] = FADE_FLOOR
        self.i[HELD, v] = 0
        self.i[SUS, v] = 0
        self.i[SOST, v] = 0

    def _end_attack_count(self) -> None:
        self._n_attack -= 1
        if self._n_attack <= 0:
            self._n_attack = 0
            self.next_attack_end = _NEVER

    def steal(self, now: int) -> int:
        """Choose a voice to give up and fade it; returns its column.

        Priority to keep (FluidSynth's overflow score, simplified): drums
        +4000, a held key +2000, a key held by a pedal +1000, a voice less
        than 50 ms old +1000, plus up to +500 for loudness.  The lowest score
        goes: released voices first, then quiet and old ones.
        """
        n = self.n
        i = self.i
        s = self._s[0, :n]
        t = self._s[1, :n]
        np.multiply(i[DRUM, :n], 4000.0, out=s)
        np.multiply(i[HELD, :n], 2000.0, out=t)
        np.add(s, t, out=s)
        np.logical_or(i[SUS, :n], i[SOST, :n], out=self._b[0, :n])
        np.less(i[HELD, :n], 1, out=self._b[1, :n])
        np.logical_and(self._b[0, :n], self._b[1, :n], out=self._b[0, :n])
        np.multiply(self._b[0, :n], 1000.0, out=t)
        np.add(s, t, out=s)
        young = now - int(0.05 * self.sample_rate)
        np.greater(i[START, :n], young, out=self._b[1, :n])
        np.multiply(self._b[1, :n], 1000.0, out=t)
        np.add(s, t, out=s)
        np.multiply(self.f[ENV, :n], 500.0, out=t)
        np.add(s, t, out=s)
        np.greater_equal(i[STAGE, :n], RELEASE, out=self._b[2, :n])
        np.multiply(self._b[2, :n], -500.0, out=t)  # released voices go before anything still attacking
        np.add(s, t, out=s)
        np.multiply(i[SEQ, :n], 1e-9, out=t)  # ties: the newer note stays
        np.add(s, t, out=s)
        np.equal(i[STAGE, :n], FADE, out=self._b[3, :n])
        s[self._b[3, :n]] = math.inf
        v = int(np.argmin(s))
        self.fade(v)
        self.stolen += 1
        return v

    def _free(self, v: int) -> None:
        """Remove column ``v``, moving the last voice into it."""
        i = self.i
        if i[STAGE, v] == FADE:
            self.n_fading -= 1
        elif i[STAGE, v] == ATTACK:
            self._end_attack_count()
        last = self.n - 1
        if v != last:
            self.f[:, v] = self.f[:, last]
            i[:, v] = i[:, last]
            self._maskcol[v] = self._maskcol[last]
            self._basecol[v] = self._basecol[last]
            self._mix[v] = self._mix[last]
        i[ATTACK_END, last] = _NEVER
        self.n = last

    def mark_pan_dirty(self) -> None:
        """Channel pan or effect sends changed: follow them for the next segments."""
        self._pan_dirty = 1 + int(6 * SMOOTH_TAU * self.sample_rate / max(1, self.max_segment))

    # -- selections (vectorised, no allocation) ----------------------------------

    def select(self, row: int, value: int) -> npt.NDArray[np.bool_]:
        """A scratch mask (valid until the next call) of voices whose int ``row`` equals ``value``."""
        out = self._b[0, : self.n]
        np.equal(self.i[row, : self.n], value, out=out)
        return out

    def select_channels(self, first: int, stop: int) -> npt.NDArray[np.bool_]:
        """A scratch mask of voices on channels ``first <= chan < stop``."""
        n = self.n
        out = self._b[0, :n]
        tmp = self._b[1, :n]
        np.greater_equal(self.i[CHAN, :n], first, out=out)
        np.less(self.i[CHAN, :n], stop, out=tmp)
        np.logical_and(out, tmp, out=out)
        return out

    # -- rendering -------------------------------------------------------------

    def render_segment(self, bus: npt.NDArray[np.float32], t_end: int, params: ChannelParams) -> None:
        """Render the next ``bus.shape[1]`` frames of every voice into the 4-row ``bus``.

        ``t_end`` is the sample position at the end of the segment.
        """
        m = bus.shape[1]
        n = self.n
        if n == 0:
            bus.fill(0.0)
            return
        f = self.f
        i = self.i
        s = self._s
        chan = i[CHAN, :n]
        fm = float(m)

        # -- control rate ----------------------------------------------------------
        # Channel gain, smoothed so volume and expression changes never step.
        cg_t = s[0, :n]
        params.gain.take(chan, out=cg_t)
        a_s = 1.0 - math.exp(-fm * self._smooth_per_sample)
        cg = f[CG, :n]
        np.subtract(cg_t, cg, out=cg_t)
        np.multiply(cg_t, a_s, out=cg_t)
        np.add(cg, cg_t, out=cg)

        # LFO (vibrato and tremolo share it).
        lfo = f[LFO, :n]
        sinv = s[1, :n]
        np.multiply(f[LFO_RATE, :n], fm, out=sinv)
        np.add(lfo, sinv, out=lfo)
        np.remainder(lfo, 2.0 * math.pi, out=lfo)
        np.sin(lfo, out=sinv)

        # Pitch: bend + pitch envelope + vibrato depth × LFO, as an increment ratio.
        semis = s[2, :n]
        tmp = s[3, :n]
        vib_env = f[VIB_ENV, :n]
        np.multiply(f[VIB_ENV_RATE, :n], fm, out=tmp)
        np.add(vib_env, tmp, out=vib_env)
        np.minimum(vib_env, 1.0, out=vib_env)
        np.multiply(f[VIB, :n], vib_env, out=tmp)
        params.vib.take(chan, out=semis)
        np.add(semis, tmp, out=semis)
        np.multiply(semis, sinv, out=semis)
        params.bend.take(chan, out=tmp)
        np.add(semis, tmp, out=semis)
        np.multiply(semis, f[PITCH_SENS, :n], out=semis)
        # e^(-rate * m) for the envelope, the sustain fade, the brightness and the pitch envelope at once.
        decays = self._decays[:, :n]
        np.multiply(f[RATE : PE_RATE + 1, :n], -fm, out=decays)
        np.exp(decays, out=decays)
        pe = f[PE, :n]
        np.multiply(pe, decays[3], out=pe)
        np.add(semis, pe, out=semis)
        np.multiply(semis, 1.0 / 12.0, out=semis)
        np.exp2(semis, out=semis)
        inc_t = semis
        np.multiply(inc_t, f[INC_KEY, :n], out=inc_t)

        # Envelope.
        env = f[ENV, :n]
        e = decays[0]
        env_end = s[5, :n]
        np.multiply(f[SLOPE, :n], fm, out=env_end)
        np.add(env_end, env, out=env_end)
        tgt = f[TGT, :n]
        np.subtract(env_end, tgt, out=env_end)
        np.multiply(env_end, e, out=env_end)
        np.add(env_end, tgt, out=env_end)
        np.minimum(env_end, f[CAP, :n], out=env_end)
        np.multiply(tgt, decays[1], out=tgt)

        # Brightness.
        w = f[W, :n]
        w_tgt = f[W_TGT, :n]
        np.subtract(w, w_tgt, out=w)
        np.multiply(w, decays[2], out=w)
        np.add(w, w_tgt, out=w)

        # Gains at the segment end: envelope × velocity × channel × tremolo, split by brightness.
        g = s[6, :n]
        np.multiply(f[TREM_B, :n], sinv, out=g)
        np.add(g, f[TREM_A, :n], out=g)
        np.multiply(g, env_end, out=g)
        np.multiply(g, f[VELGAIN, :n], out=g)
        np.multiply(g, cg, out=g)
        ga_end = s[7, :n]
        np.multiply(g, w, out=ga_end)
        np.subtract(g, ga_end, out=g)  # g is now gB at the end
        coef = self._coef
        ga = f[GA, :n]
        gb = f[GB, :n]
        np.copyto(coef[1, :n, 0], ga)
        np.copyto(coef[2, :n, 0], gb)
        np.subtract(ga_end, ga, out=tmp)
        np.multiply(tmp, 1.0 / fm, out=coef[1, :n, 2], casting="same_kind")
        np.subtract(g, gb, out=tmp)
        np.multiply(tmp, 1.0 / fm, out=coef[2, :n, 2], casting="same_kind")
        np.copyto(ga, ga_end)
        np.copyto(gb, g)

        # Phase: starts at POS with increment INC, gliding to inc_t over the segment.
        pos = f[POS, :n]
        inc = f[INC, :n]
        np.copyto(coef[0, :n, 0], pos)
        np.copyto(coef[0, :n, 1], inc)
        np.subtract(inc_t, inc, out=tmp)
        np.multiply(tmp, 1.0 / fm, out=coef[0, :n, 3], casting="same_kind")
        np.multiply(tmp, (fm - 1.0) / 2.0, out=tmp)
        np.add(pos, tmp, out=pos)
        np.multiply(inc, fm, out=tmp)
        np.add(pos, tmp, out=pos)
        np.remainder(pos, f[WRAP, :n], out=pos)
        np.copyto(inc, inc_t)
        np.copyto(env, env_end)

        if self._pan_dirty:
            self._follow_pan(n, a_s, params)

        # -- audio rate ------------------------------------------------------------
        nm = n * m
        r = self._r[: 3 * nm].reshape(3, n, m)
        np.matmul(coef[:, :n, :], self._basis[:, :m], out=r)
        phase = r[0]
        frac = self._fr[:nm].reshape(n, m)
        idx = self._idx[:nm].reshape(n, m)
        col = self._col[:nm].reshape(n, m)
        np.floor(phase, out=frac)
        np.copyto(idx, frac, casting="unsafe")
        np.subtract(phase, frac, out=frac)
        np.copyto(col, self._maskcol[:n])
        np.bitwise_and(idx, col, out=idx)
        np.copyto(col, self._basecol[:n])
        np.add(idx, col, out=idx)
        gath = self._g[:nm].reshape(n, m)
        np.take(self.pool, idx, out=gath, mode="clip")
        rows = gath.view(np.float32).reshape(n, m, 4)
        t1 = self._t1[:nm].reshape(n, m)
        t2 = self._t2[:nm].reshape(n, m)
        np.multiply(rows[:, :, 1], frac, out=t1)
        np.add(t1, rows[:, :, 0], out=t1)
        np.multiply(t1, r[1], out=t1)
        np.multiply(rows[:, :, 3], frac, out=t2)
        np.add(t2, rows[:, :, 2], out=t2)
        np.multiply(t2, r[2], out=t2)
        np.add(t1, t2, out=t1)
        np.matmul(self._mix[:n].T, t1, out=bus)

        # -- state changes at the segment end ----------------------------------------
        if self._n_attack and self.next_attack_end <= t_end:
            self._finish_attacks(n, t_end)
        dead = self._b[2, :n]
        np.less(env_end, f[FLOOR, :n], out=dead)
        over = self._b[3, :n]
        np.greater_equal(pos, f[END, :n], out=over)
        np.logical_or(dead, over, out=dead)
        if dead.any():
            for v in np.flatnonzero(dead)[::-1]:
                self._free(int(v))

    def _follow_pan(self, n: int, a_s: float, params: ChannelParams) -> None:
        f = self.f
        s = self._s
        chan = self.i[CHAN, :n]
        target = s[8, :n]
        np.take(params.pan, chan, out=target)
        np.add(target, f[PAN_OFF, :n], out=target)
        np.clip(target, 0.0, 1.0, out=target)
        panp = f[PANP, :n]
        np.subtract(target, panp, out=target)
        np.multiply(target, a_s, out=target)
        np.add(panp, target, out=panp)
        np.multiply(panp, math.pi / 2.0, out=target)
        mix = self._mix
        np.cos(target, out=mix[:n, 0], casting="same_kind")
        np.sin(target, out=mix[:n, 1], casting="same_kind")
        np.take(params.chorus, chan, out=target)
        np.multiply(target, f[SEND_CHO, :n], out=mix[:n, 2], casting="same_kind")
        np.take(params.reverb, chan, out=target)
        np.multiply(target, f[SEND_REV, :n], out=mix[:n, 3], casting="same_kind")
        self._pan_dirty -= 1

    def _finish_attacks(self, n: int, t_end: int) -> None:
        """Voices whose attack ended by ``t_end`` enter decay (or release, if let go meanwhile)."""
        f = self.f
        i = self.i
        done = self._b[0, :n]
        np.less_equal(i[ATTACK_END, :n], t_end, out=done)
        for k in np.flatnonzero(done):
            v = int(k)
            i[ATTACK_END, v] = _NEVER
            i[STAGE, v] = DECAY
            f[SLOPE, v] = 0.0
            f[CAP, v] = math.inf
            f[FLOOR, v] = KILL_LEVEL
            f[ENV, v] = 1.0
            f[RATE, v] = f[DECAY_RATE, v]
            self._n_attack -= 1
            if i[REL_PENDING, v]:
                i[REL_PENDING, v] = 0
                self.release(v)
        if self._n_attack > 0:
            self.next_attack_end = int(i[ATTACK_END, :n].min())
        else:
            self._n_attack = 0
            self.next_attack_end = _NEVER
