"""Measures for comparing a render with FluidSynth's: onset, fundamental, RMS envelope, level, centroid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soundfile

F = npt.NDArray[np.float64]


def read_mono(path: str) -> tuple[F, int]:
    data, rate = soundfile.read(path, dtype="float64", always_2d=True)
    return data.mean(axis=1), int(rate)


def onset(x: F, rate: int) -> float:
    """Seconds to the first sample above -20 dB of the peak (a font sample's own first millisecond may lie below)."""
    peak = float(np.abs(x).max())
    if peak == 0.0:
        return float("nan")
    return float(np.flatnonzero(np.abs(x) >= peak * 0.1)[0]) / rate


def frames_db(x: F, rate: int, frame_s: float = 0.010) -> F:
    n = int(rate * frame_s)
    k = len(x) // n
    rms = np.sqrt(np.mean(x[: k * n].reshape(k, n) ** 2, axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-12))


def level_db(x: F) -> float:
    return float(20.0 * np.log10(max(float(np.sqrt(np.mean(x**2))), 1e-12)))


def centroid(x: F, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    return float((spec * freqs).sum() / max(spec.sum(), 1e-30))


def _peak(x: F, rate: int, start: float, span: float, lo: float, hi: float) -> float:
    """The frequency of the strongest spectral peak in ``[lo, hi]`` Hz over ``span`` s from ``start``."""
    a = int(start * rate)
    seg = x[a : a + int(span * rate)]
    n = 1 << 20
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n))
    freqs = np.fft.rfftfreq(n, 1.0 / rate)
    idx = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    k = int(idx[np.argmax(spec[idx])])
    y0, y1, y2 = np.log(spec[k - 1 : k + 2] + 1e-30)
    den = y0 - 2 * y1 + y2
    d = 0.5 * (y0 - y2) / den if den != 0 else 0.0
    return float((k + d) * rate / n)


def pitch_ratio(ours: F, theirs: F, rate: int, t_ours: float, t_theirs: float, span: float = 0.3) -> float:
    """Our strongest partial below 5 kHz against the same partial of theirs (their peak within 5 %)."""
    f = _peak(ours, rate, t_ours + 0.05, span, 20.0, 5000.0)
    g = _peak(theirs, rate, t_theirs + 0.05, span, f / 1.05, f * 1.05)
    return f / g


@dataclass
class Comparison:
    onset_ms: float
    pitch_ratio: float  # ours / theirs
    envelope_db: float  # mean |difference| over frames where theirs is above -60 dBFS
    level_db: float  # ours - theirs
    centroid_ratio: float

    def failures(self, pitched: bool) -> list[str]:
        out = []
        if not abs(self.onset_ms) <= 1.0:
            out.append(f"onset {self.onset_ms:+.2f} ms")
        if pitched and not abs(self.pitch_ratio - 1.0) <= 0.003:
            out.append(f"pitch ratio {self.pitch_ratio:.4f}")
        if not self.envelope_db <= 3.0:
            out.append(f"envelope {self.envelope_db:.2f} dB")
        if not abs(self.level_db) <= 3.0:
            out.append(f"level {self.level_db:+.2f} dB")
        if not abs(self.centroid_ratio - 1.0) <= 0.10:
            out.append(f"centroid ratio {self.centroid_ratio:.3f}")
        return out


def compare(ours_path: str, theirs_path: str, pitched: bool = True) -> Comparison:
    ours, rate = read_mono(ours_path)
    theirs, rate2 = read_mono(theirs_path)
    assert rate == rate2
    n = min(len(ours), len(theirs))
    ours, theirs = ours[:n], theirs[:n]
    t_ours, t_theirs = onset(ours, rate), onset(theirs, rate)
    pitch = 1.0
    if pitched:
        pitch = pitch_ratio(ours, theirs, rate, t_ours, t_theirs)
    eo, et = frames_db(ours, rate), frames_db(theirs, rate)
    loud = et > -60.0
    env = float(np.mean(np.abs(eo[loud] - et[loud]))) if loud.any() else 0.0
    return Comparison(
        (t_ours - t_theirs) * 1000.0,
        pitch,
        env,
        level_db(ours) - level_db(theirs),
        centroid(ours, rate) / centroid(theirs, rate),
    )
