"""The master section: effect returns, stereo mix-down and the output limiter.

Theory of operation
-------------------
The voices render into four buses per chunk (left, right, chorus send,
reverb send).  The master section adds the effect returns to the dry pair
and writes interleaved float32 frames.

Headroom comes from gain staging plus a soft limiter.  A forte note at the
GM default volume peaks around -14 dBFS, so ordinary music never touches
the limiter; when many loud notes add up (64 forte notes do), a peak
limiter brings the chunk under the ceiling: its gain drops at once to what
the chunk's peak needs (ramped across the chunk, so it never steps) and
recovers with a 150 ms time constant.  Because the gain ramps from its old
value, the first samples of a chunk with a sudden peak could still exceed
the ceiling; a soft clipper (tanh knee above -1 dBFS, never reaching 0 dBFS)
catches them, so the output never clips.  All work is on preallocated
``(2, m)`` arrays.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from mxfd.synth.effects import Chorus, Reverb

#: Where the limiter starts acting (-1 dBFS) and the soft clipper's knee.
CEILING: Final = 10.0 ** (-1.0 / 20.0)
#: Limiter recovery time constant (seconds).
RECOVERY_TAU: Final = 0.15


class Master:
    """Effect returns, limiter and interleaving for chunks of up to ``max_chunk`` frames."""

    def __init__(self, sample_rate: int, max_chunk: int, effects: bool = True) -> None:
        self.sample_rate = sample_rate
        self.max_chunk = max_chunk
        self.effects = effects
        self.reverb = Reverb(sample_rate, max_chunk) if effects else None
        self.chorus = Chorus(sample_rate, max_chunk) if effects else None
        self._mix = np.zeros(2 * max_chunk, dtype=np.float32)
        self._abs = np.zeros(2 * max_chunk, dtype=np.float32)
        self._sign = np.zeros(2 * max_chunk, dtype=np.float32)
        self._big = np.zeros(2 * max_chunk, dtype=np.bool_)
        self._ramp = (np.arange(1, max_chunk + 1, dtype=np.float32) / max_chunk).astype(np.float32)
        self._gramp = np.zeros(max_chunk, dtype=np.float32)
        self.gain = 1.0
        #: Chunks in which the limiter reduced gain, and in which the soft clipper acted.
        self.limited = 0
        self.clipped = 0
        self.peak = 0.0

    @property
    def tail_active(self) -> bool:
        """True while the effects still ring (a render may stop only after this)."""
        return bool(self.reverb is not None and self.reverb.active) or bool(
            self.chorus is not None and self.chorus.active
        )

    def process(self, bus: npt.NDArray[np.float32], out: npt.NDArray[np.float32]) -> None:
        """Mix the ``(4, m)`` bus into ``out`` (``(m, 2)`` float32 frames)."""
        m = bus.shape[1]
        mix = self._mix[: 2 * m].reshape(2, m)
        np.copyto(mix, bus[0:2])
        if self.reverb is not None:
            self.reverb.process(bus[3], mix)
        if self.chorus is not None:
            self.chorus.process(bus[2], mix)
        a = self._abs[: 2 * m].reshape(2, m)
        np.abs(mix, out=a)
        peak = float(a.max())
        g0 = self.gain
        needed = CEILING / peak if peak > CEILING else 1.0
        if needed < g0:
            g1 = needed
            self.limited += 1
        else:
            g1 = g0 + (1.0 - g0) * (1.0 - math.exp(-m / (RECOVERY_TAU * self.sample_rate)))
            if g1 > 0.99999:
                g1 = 1.0
        if g0 != 1.0 or g1 != 1.0:
            ramp = self._gramp[:m]
            np.multiply(self._ramp[:m], (g1 - g0) * self.max_chunk / m, out=ramp)
            np.add(ramp, g0, out=ramp)
            np.multiply(mix[0], ramp, out=mix[0])  # row by row: a broadcast would allocate
            np.multiply(mix[1], ramp, out=mix[1])
            peak *= max(g0, g1)
        self.gain = g1
        if peak > CEILING:
            self._soft_clip(mix, a)
        if peak > self.peak:
            self.peak = peak
        np.copyto(out.T, mix)

    def _soft_clip(self, mix: npt.NDArray[np.float32], a: npt.NDArray[np.float32]) -> None:
        """Above the ceiling, bend the signal toward full scale along a tanh knee (never reaching it)."""
        self.clipped += 1
        m = mix.shape[1]
        knee = 1.0 - CEILING
        over = a
        np.abs(mix, out=over)
        big = self._big[: 2 * m].reshape(2, m)
        np.greater(over, CEILING, out=big)
        np.subtract(over, CEILING, out=over)
        np.multiply(over, 1.0 / knee, out=over)
        np.tanh(over, out=over)
        np.multiply(over, knee, out=over)
        np.add(over, CEILING, out=over)
        sign = self._sign[: 2 * m].reshape(2, m)
        np.sign(mix, out=sign)
        np.multiply(over, sign, out=over)
        np.copyto(mix, over, where=big)

    def reset(self) -> None:
        self.gain = 1.0
        if self.reverb is not None:
            self.reverb.reset()
        if self.chorus is not None:
            self.chorus.reset()
