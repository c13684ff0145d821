"""The General MIDI drum kit (channel 10), synthesized into one-shot samples.

Theory of operation
-------------------
Each GM key from 35 (Acoustic Bass Drum) to 81 (Open Triangle), plus the GS
extensions 27-34 and 82-87, gets a short sample built with numpy when the
bank is made, at the synth's own sample rate (so drum voices play at
exactly one sample per sample and need no interpolation):

* kick drums and toms: a sine whose pitch falls exponentially from the
  strike to the drum's resonance, plus a click;
* snares and claps: a tuned membrane plus band-passed noise (the wires);
* hi-hats and cymbals: the TR-808 recipe, six inharmonic square waves
  band-passed high, mixed with noise, with the decay giving closed, pedal,
  open, splash, crash and ride;
* hand percussion: damped sines, inharmonic bells, shaped noise bursts.

Noise is coloured in the frequency domain (an FFT of white noise times the
wanted magnitude response), so no filter library is needed.  Every sample
starts at zero with a sub-millisecond fade-in and decays to silence, so a
drum voice never clicks.  Drums have no bright/dark pair, so two drum
samples share the rows of the pool (layers a and b): a drum voice reads its
own layer with the other's gain at zero, which halves the kit's memory.

Hi-hats, whistles, guiros, cuicas and triangles form exclusive classes: a
new note of the class chokes the one still ringing (an open hi-hat is
closed by the pedal).
"""

from __future__ import annotations

import math
from typing import Callable, Final

import numpy as np

from mxfd.synth.bank import VOICE_GAIN, Patch
from mxfd.synth.tables import F64, PoolBuilder

#: Release (s) a drum voice takes when it is cut short (all notes off, a vanished source).
DRUM_RELEASE: Final = 0.12

_HAT = 1
_WHISTLE = 2
_GUIRO = 3
_CUICA = 4
_TRIANGLE = 5


class _Gen:
    """Sample generators at one rate."""

    def __init__(self, sample_rate: int) -> None:
        self.sr = sample_rate
        self.rng = np.random.default_rng(35)

    def t(self, seconds: float) -> F64:
        return np.arange(int(seconds * self.sr)) / self.sr

    def decay(self, t: F64, tau: float) -> F64:
        return np.asarray(np.exp(-t / tau), dtype=np.float64)

    def sweep(self, t: F64, f_start: float, f_end: float, tau: float) -> F64:
        """A sine whose frequency falls exponentially from ``f_start`` to ``f_end``."""
        freq_integral = f_end * t + (f_start - f_end) * tau * (1.0 - np.exp(-t / tau))
        return np.asarray(np.sin(2.0 * np.pi * freq_integral), dtype=np.float64)

    def noise(self, n: int, shape: Callable[[F64], F64]) -> F64:
        """White noise of ``n`` samples coloured by the magnitude response ``shape(freq_hz)``."""
        size = 1 << max(8, (n - 1).bit_length())
        f = np.maximum(np.fft.rfftfreq(size, 1.0 / self.sr), 1.0)
        spec = self.rng.normal(size=len(f)) + 1j * self.rng.normal(size=len(f))
        x = np.fft.irfft(spec * shape(f), n=size)[:n]
        return np.asarray(x / max(1e-12, float(np.max(np.abs(x)))), dtype=np.float64)

    def metal(self, t: F64, scale: float = 1.0) -> F64:
        """Six inharmonic square waves (the TR-808 cymbal oscillators)."""
        out = np.zeros_like(t)
        for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0):
            out += np.sign(np.sin(2.0 * np.pi * f * scale * t + f))
        return out / 6.0

    def bells(self, t: F64, freqs: list[float], amps: list[float], taus: list[float]) -> F64:
        out = np.zeros_like(t)
        for f, a, tau in zip(freqs, amps, taus, strict=True):
            if f < 0.45 * self.sr:
                out += a * np.sin(2.0 * np.pi * f * t + f) * np.exp(-t / tau)
        return out

    def highpass_noise(self, t: F64, fc: float, order: float = 2.0) -> F64:
        return self.noise(len(t), lambda f: _hp(f, fc, order))

    def bandpass_noise(self, t: F64, fc: float, octaves: float) -> F64:
        return self.noise(len(t), lambda f: np.exp(-0.5 * (np.log2(f / fc) / octaves) ** 2))

    def bandpass(self, x: F64, fc: float, octaves: float) -> F64:
        spec = np.fft.rfft(x)
        f = np.maximum(np.fft.rfftfreq(len(x), 1.0 / self.sr), 1.0)
        return np.asarray(np.fft.irfft(spec * np.exp(-0.5 * (np.log2(f / fc) / octaves) ** 2), n=len(x)))

    def highpass(self, x: F64, fc: float, order: float = 2.0) -> F64:
        spec = np.fft.rfft(x)
        f = np.maximum(np.fft.rfftfreq(len(x), 1.0 / self.sr), 1.0)
        return np.asarray(np.fft.irfft(spec * _hp(f, fc, order), n=len(x)))

    def lowpass(self, x: F64, fc: float, order: float = 2.0) -> F64:
        spec = np.fft.rfft(x)
        f = np.fft.rfftfreq(len(x), 1.0 / self.sr)
        return np.asarray(np.fft.irfft(spec / np.sqrt(1.0 + (f / fc) ** (2 * order)), n=len(x)))

    def click(self, t: F64, fc: float, tau: float = 0.002) -> F64:
        return self.bandpass_noise(t, fc, 1.0) * self.decay(t, tau)

    # -- instruments -------------------------------------------------------

    def kick(self, f0: float, f1: float, tau: float, click: float) -> F64:
        t = self.t(min(1.2, 6 * tau))
        body = self.sweep(t, f0, f1, 0.04) * self.decay(t, tau)
        return body + click * self.click(t, 3000.0, 0.003)

    def tom(self, f: float, tau: float) -> F64:
        t = self.t(min(0.9, 5 * tau))
        body = self.sweep(t, f * 1.35, f, 0.05) * self.decay(t, tau)
        skin = 0.25 * self.bandpass_noise(t, 2.0 * f, 1.0) * self.decay(t, 0.03)
        return body + 0.4 * np.sin(2.0 * np.pi * 1.5 * f * t) * self.decay(t, tau * 0.4) + skin

    def snare(self, f: float, tone: float, tau: float, bright: float) -> F64:
        t = self.t(0.5)
        drum = (np.sin(2.0 * np.pi * f * t) + 0.5 * np.sin(2.0 * np.pi * 1.78 * f * t)) * self.decay(t, 0.05)
        wires = self.noise(len(t), lambda fr: _hp(fr, 900.0, 2.0) / np.sqrt(1.0 + (fr / bright) ** 2))
        return tone * drum + wires * self.decay(t, tau)

    def clap(self) -> F64:
        t = self.t(0.4)
        n = self.bandpass_noise(t, 1400.0, 0.8)
        env = np.zeros_like(t)
        for k, start in enumerate((0.0, 0.011, 0.022, 0.031)):
            env += (t >= start) * np.exp(-np.maximum(t - start, 0.0) / (0.006 if k < 3 else 0.09))
        return n * env

    def hat(self, tau: float, length: float) -> F64:
        t = self.t(length)
        x = self.highpass(self.metal(t, 1.0), 7000.0, 3.0) + 0.6 * self.highpass_noise(t, 8000.0)
        return x * self.decay(t, tau)

    def cymbal(self, tau: float, length: float, fc: float, scale: float) -> F64:
        t = self.t(length)
        x = self.highpass(self.metal(t, scale), fc, 2.0) + 0.8 * self.highpass_noise(t, fc * 1.2)
        swell = 1.0 - 0.6 * np.exp(-t / 0.02)
        return x * self.decay(t, tau) * swell

    def ride(self, scale: float) -> F64:
        t = self.t(1.5)
        ping = self.bells(t, [3200 * scale, 4500 * scale, 5900 * scale], [0.5, 0.3, 0.2], [0.5, 0.4, 0.3])
        wash = self.highpass(self.metal(t, 1.8 * scale), 5000.0, 2.0) * 0.5 + 0.4 * self.highpass_noise(t, 6000.0)
        return ping + wash * self.decay(t, 0.8)

    def bell(self, base: float, ratios: list[float], tau: float, length: float) -> F64:
        t = self.t(length)
        amps = [1.0 / (1 + 0.6 * i) for i in range(len(ratios))]
        return self.bells(t, [base * r for r in ratios], amps, [tau / (1 + 0.5 * i) for i in range(len(ratios))])

    def hand(self, f: float, tau: float, slap: float = 0.3) -> F64:
        t = self.t(min(1.0, 6 * tau))
        body = self.sweep(t, f * 1.15, f, 0.02) * self.decay(t, tau)
        return body + slap * self.click(t, 2500.0, 0.004)

    def shaker(self, tau: float, attack: float, fc: float) -> F64:
        t = self.t(max(0.15, 6 * tau))
        env = (1.0 - np.exp(-t / attack)) * self.decay(t, tau)
        return self.highpass_noise(t, fc) * env

    def whistle(self, length: float) -> F64:
        t = self.t(length)
        f = 2300.0 * (1 + 0.015 * np.sin(2.0 * np.pi * 30.0 * t))
        phase = 2.0 * np.pi * np.cumsum(f) / self.sr
        env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (length - t) / 0.03)
        return np.asarray(np.sin(phase) * env + 0.05 * self.bandpass_noise(t, 2300.0, 0.5) * env)

    def guiro(self, length: float) -> F64:
        t = self.t(length)
        rate = 45.0
        pulses = np.maximum(0.0, np.sin(2.0 * np.pi * rate * t)) ** 6
        env = np.minimum(1.0, (length - t) / 0.02)
        return np.asarray(self.bandpass_noise(t, 3000.0, 0.8) * pulses * env)

    def cuica(self, length: float, rise: bool) -> F64:
        t = self.t(length)
        f = 500.0 + (350.0 * np.sin(np.pi * t / length) if rise else -150.0 * t / length)
        phase = 2.0 * np.pi * np.cumsum(f) / self.sr
        env = np.minimum(1.0, t / 0.01) * np.minimum(1.0, (length - t) / 0.03)
        return np.asarray((np.sin(phase) + 0.3 * np.sin(2 * phase)) * env)

    def vibraslap(self) -> F64:
        t = self.t(0.9)
        rattles = np.maximum(0.0, np.sin(2.0 * np.pi * 28.0 * t)) ** 12
        return np.asarray(self.bandpass_noise(t, 3500.0, 0.6) * rattles * self.decay(t, 0.3))

    def tambourine(self) -> F64:
        t = self.t(0.45)
        jingles = self.bells(t, [5100, 6300, 7400, 8800], [0.4, 0.3, 0.3, 0.2], [0.15, 0.12, 0.1, 0.08])
        return (jingles + self.highpass_noise(t, 7000.0)) * self.decay(t, 0.12)

    def bell_tree(self) -> F64:
        t = self.t(1.4)
        out = np.zeros_like(t)
        for i in range(12):
            start = i * 0.045
            f = 5200.0 * 2.0 ** (-i / 14.0)
            tt = np.maximum(t - start, 0.0)
            out += (t >= start) * np.sin(2 * np.pi * f * tt) * np.exp(-tt / 0.4) * 0.4
        return out

    def castanets(self) -> F64:
        t = self.t(0.12)
        return self.click(t, 1800.0, 0.006) + np.roll(self.click(t, 2000.0, 0.005), int(0.025 * self.sr)) * 0.7


def _hp(f: F64, fc: float, order: float) -> F64:
    x = (f / fc) ** order
    return np.asarray(x / np.sqrt(1.0 + x * x), dtype=np.float64)


#: key -> (name, level dB, pan offset, exclusive class)
KIT: Final[dict[int, tuple[str, float, float, int]]] = {
    27: ("High Q", -6, 0.0, 0),
    28: ("Slap", -6, 0.0, 0),
    29: ("Scratch Push", -8, 0.0, 0),
    30: ("Scratch Pull", -8, 0.0, 0),
    31: ("Sticks", -6, 0.0, 0),
    32: ("Square Click", -10, 0.0, 0),
    33: ("Metronome Click", -8, 0.0, 0),
    34: ("Metronome Bell", -8, 0.0, 0),
    35: ("Acoustic Bass Drum", 2, 0.0, 0),
    36: ("Bass Drum 1", 2, 0.0, 0),
    37: ("Side Stick", -4, 0.0, 0),
    38: ("Acoustic Snare", 0, 0.0, 0),
    39: ("Hand Clap", -3, 0.05, 0),
    40: ("Electric Snare", 0, 0.0, 0),
    41: ("Low Floor Tom", 0, -0.3, 0),
    42: ("Closed Hi-Hat", -7, 0.25, _HAT),
    43: ("High Floor Tom", 0, -0.2, 0),
    44: ("Pedal Hi-Hat", -9, 0.25, _HAT),
    45: ("Low Tom", 0, -0.1, 0),
    46: ("Open Hi-Hat", -7, 0.25, _HAT),
    47: ("Low-Mid Tom", 0, 0.0, 0),
    48: ("Hi-Mid Tom", 0, 0.1, 0),
    49: ("Crash Cymbal 1", -6, 0.3, 0),
    50: ("High Tom", 0, 0.2, 0),
    51: ("Ride Cymbal 1", -8, -0.3, 0),
    52: ("Chinese Cymbal", -7, -0.35, 0),
    53: ("Ride Bell", -6, -0.3, 0),
    54: ("Tambourine", -8, 0.2, 0),
    55: ("Splash Cymbal", -7, 0.2, 0),
    56: ("Cowbell", -6, 0.15, 0),
    57: ("Crash Cymbal 2", -6, -0.25, 0),
    58: ("Vibraslap", -6, 0.2, 0),
    59: ("Ride Cymbal 2", -8, -0.25, 0),
    60: ("Hi Bongo", -3, 0.25, 0),
    61: ("Low Bongo", -3, 0.2, 0),
    62: ("Mute Hi Conga", -3, -0.2, 0),
    63: ("Open Hi Conga", -3, -0.2, 0),
    64: ("Low Conga", -3, -0.25, 0),
    65: ("High Timbale", -4, 0.15, 0),
    66: ("Low Timbale", -4, 0.1, 0),
    67: ("High Agogo", -6, -0.2, 0),
    68: ("Low Agogo", -6, -0.2, 0),
    69: ("Cabasa", -8, 0.3, 0),
    70: ("Maracas", -8, -0.3, 0),
    71: ("Short Whistle", -10, 0.35, _WHISTLE),
    72: ("Long Whistle", -10, 0.35, _WHISTLE),
    73: ("Short Guiro", -6, 0.3, _GUIRO),
    74: ("Long Guiro", -6, 0.3, _GUIRO),
    75: ("Claves", -6, 0.2, 0),
    76: ("Hi Wood Block", -5, 0.25, 0),
    77: ("Low Wood Block", -5, 0.25, 0),
    78: ("Mute Cuica", -6, -0.2, _CUICA),
    79: ("Open Cuica", -6, -0.2, _CUICA),
    80: ("Mute Triangle", -9, 0.35, _TRIANGLE),
    81: ("Open Triangle", -9, 0.35, _TRIANGLE),
    82: ("Shaker", -8, 0.3, 0),
    83: ("Jingle Bell", -8, 0.2, 0),
    84: ("Bell Tree", -8, 0.1, 0),
    85: ("Castanets", -6, 0.15, 0),
    86: ("Mute Surdo", 0, -0.1, 0),
    87: ("Open Surdo", 0, -0.1, 0),
}


def _sound(g: _Gen, key: int) -> F64:  # noqa: C901 - a table in code
    t = g.t
    if key == 27:
        return g.sweep(t(0.06), 1400.0, 500.0, 0.015) * g.decay(t(0.06), 0.015)
    if key == 28:
        return g.bandpass_noise(t(0.08), 2000.0, 0.7) * g.decay(t(0.08), 0.012)
    if key in (29, 30):
        tt = t(0.18)
        wob = np.abs(np.sin(np.pi * tt / 0.18 * (3 if key == 29 else 2)))
        return g.bandpass_noise(tt, 1200.0 if key == 29 else 900.0, 0.7) * wob * g.decay(tt, 0.08)
    if key == 31:
        return g.click(t(0.06), 3200.0, 0.008)
    if key == 32:
        tt = t(0.03)
        return np.sign(np.sin(2 * np.pi * 1500.0 * tt)) * g.decay(tt, 0.004)
    if key == 33:
        tt = t(0.05)
        return np.sin(2 * np.pi * 2500.0 * tt) * g.decay(tt, 0.008)
    if key == 34:
        return g.bell(2300.0, [1, 2.4, 3.9], 0.25, 0.6)
    if key == 35:
        return g.kick(110.0, 48.0, 0.3, 0.25)
    if key == 36:
        return g.kick(160.0, 55.0, 0.22, 0.4)
    if key == 37:
        tt = t(0.08)
        return (np.sin(2 * np.pi * 420 * tt) * 0.6 + g.bandpass_noise(tt, 1800.0, 0.5)) * g.decay(tt, 0.015)
    if key == 38:
        return g.snare(185.0, 0.7, 0.14, 9000.0)
    if key == 39:
        return g.clap()
    if key == 40:
        return g.snare(230.0, 0.5, 0.1, 12000.0)
    toms = {41: (78.0, 0.35), 43: (92.0, 0.32), 45: (108.0, 0.3), 47: (126.0, 0.27), 48: (146.0, 0.25),
            50: (170.0, 0.22)}  # fmt: skip
    if key in toms:
        return g.tom(*toms[key])
    if key == 42:
        return g.hat(0.035, 0.25)
    if key == 44:
        return g.hat(0.05, 0.3) * 0.8
    if key == 46:
        return g.hat(0.3, 0.9)
    if key == 49:
        return g.cymbal(0.8, 2.0, 4000.0, 1.3)
    if key == 57:
        return g.cymbal(0.9, 2.2, 4500.0, 1.45)
    if key == 51:
        return g.ride(1.0)
    if key == 59:
        return g.ride(1.12)
    if key == 52:
        return g.cymbal(0.6, 1.5, 2500.0, 1.1) * (1 + 0.3 * g.bandpass_noise(t(1.5), 3000.0, 0.5))
    if key == 53:
        return g.bell(2100.0, [1, 1.52, 2.37, 3.1], 0.7, 1.5)
    if key == 54:
        return g.tambourine()
    if key == 55:
        return g.cymbal(0.35, 1.2, 5000.0, 1.6)
    if key == 56:
        tt = t(0.4)
        x = np.sign(np.sin(2 * np.pi * 587 * tt)) + np.sign(np.sin(2 * np.pi * 845 * tt))
        return g.bandpass(x, 900.0, 0.8) * (0.3 * g.decay(tt, 0.2) + 0.7 * g.decay(tt, 0.02))
    if key == 58:
        return g.vibraslap()
    hands = {60: (420.0, 0.08, 0.3), 61: (310.0, 0.1, 0.3), 62: (340.0, 0.035, 0.5), 63: (330.0, 0.2, 0.3),
             64: (230.0, 0.25, 0.3), 86: (70.0, 0.12, 0.2), 87: (70.0, 0.5, 0.2)}  # fmt: skip
    if key in hands:
        return g.hand(*hands[key])
    if key in (65, 66):
        f = 520.0 if key == 65 else 390.0
        tt = t(0.8)
        shell = g.bells(tt, [f, f * 2.3, f * 3.9], [1.0, 0.4, 0.2], [0.25, 0.15, 0.1])
        return shell + 0.4 * g.click(tt, 3000.0, 0.004)
    if key in (67, 68):
        return g.bell(900.0 if key == 67 else 660.0, [1, 2.32, 3.7], 0.3, 0.8)
    if key == 69:
        return g.shaker(0.07, 0.012, 5000.0)
    if key == 70:
        return g.shaker(0.04, 0.004, 6000.0)
    if key in (71, 72):
        return g.whistle(0.15 if key == 71 else 0.55)
    if key in (73, 74):
        return g.guiro(0.12 if key == 73 else 0.4)
    if key == 75:
        tt = t(0.2)
        return np.sin(2 * np.pi * 2500.0 * tt) * g.decay(tt, 0.035)
    if key in (76, 77):
        f = 1000.0 if key == 76 else 760.0
        tt = t(0.2)
        return g.bells(tt, [f, f * 2.6], [1.0, 0.3], [0.04, 0.02]) + 0.2 * g.click(tt, 3000.0, 0.003)
    if key in (78, 79):
        return g.cuica(0.12 if key == 78 else 0.35, key == 79)
    if key in (80, 81):
        tau = 0.1 if key == 80 else 1.1
        return g.bell(4400.0, [1, 2.23, 3.1, 4.05], tau, min(1.8, tau * 5))
    if key == 82:
        return g.shaker(0.06, 0.015, 6500.0)
    if key == 83:
        tt = t(0.7)
        jingles = g.bells(tt, [3700, 4900, 6100, 7300], [0.4, 0.35, 0.3, 0.25], [0.3, 0.25, 0.2, 0.15])
        return jingles * (1 + 0.5 * np.sin(2 * np.pi * 18 * tt))
    if key == 84:
        return g.bell_tree()
    if key == 85:
        return g.castanets()
    raise KeyError(key)


def build_kit(pool: PoolBuilder, sample_rate: int) -> dict[int, Patch]:
    """Synthesize the kit into ``pool``; return the drum patches by key.

    Samples are trimmed where they fall below -80 dB of their peak, then
    stored two to a row range (layers a and b), longest with longest.
    """
    g = _Gen(sample_rate)
    fade_in = max(2, int(0.0004 * sample_rate))
    fade_out = int(0.005 * sample_rate)  # the shortest taper
    sounds: list[tuple[int, F64]] = []
    for key in KIT:
        x = np.asarray(_sound(g, key), dtype=np.float64)
        peak = float(np.max(np.abs(x)))
        if peak > 0:
            x /= peak
        loud = np.flatnonzero(np.abs(x) > 1e-4)
        x = x[: max(fade_in + fade_out, int(loud[-1]) + 1 if len(loud) else 0)].copy()
        x[:fade_in] *= np.linspace(0.0, 1.0, fade_in, endpoint=False)
        # Whatever still rings at the sample's end dies away over its last 30 %, not at a cut.
        taper = max(fade_out, int(0.3 * len(x)))
        x[-taper:] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, taper))
        sounds.append((key, x))
    sounds.sort(key=lambda ks: len(ks[1]), reverse=True)
    kit: dict[int, Patch] = {}
    for k in range(0, len(sounds), 2):
        pair = sounds[k : k + 2]
        a = pair[0][1]
        b = pair[1][1] if len(pair) > 1 else np.zeros(1)
        base = pool.add_one_shots(a, b)
        for layer, (key, x) in enumerate(pair):
            name, level_db, pan, exclusive = KIT[key]
            kit[key] = _drum_patch(name, base, len(x), level_db, pan, exclusive, layer)
    return kit


def _drum_patch(name: str, base: int, length: int, level_db: float, pan: float, exclusive: int, layer: int) -> Patch:
    w = 1.0 if layer == 0 else 0.0
    return Patch(
        name=name,
        one_shot=True,
        bases=(base,),
        lengths=(length,),
        cycles=1.0,
        attack=0.0,
        decay=1.0,
        sustain=1.0,
        fade=math.inf,
        release=DRUM_RELEASE,
        vel_sens=0.9,
        bright_vel=(w, w),
        sus_bright=(w, w),
        bright_tau=math.inf,
        vib_rate=0.0,
        vib_depth=0.0,
        vib_delay=0.0,
        trem_depth=0.0,
        pitch_env=0.0,
        pitch_tau=1.0,
        key_decay=0.0,
        gain=VOICE_GAIN * 2.0 * 10.0 ** (level_db / 20.0),
        chorus=0.0,
        reverb=0.25,
        pan=pan,
        exclusive=exclusive,
        ignore_note_off=True,
        layer=layer,
    )


def kit_keys() -> list[int]:
    """The keys the kit has a sound for."""
    return sorted(KIT)
