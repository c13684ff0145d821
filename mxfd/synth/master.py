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
catches them, so the output never clips.

The whole section is one compiled call per chunk (:func:`master_process`)
over preallocated arrays: the effects' delay lines and state vectors, a
``(2, max_chunk)`` mix buffer and the limiter's state vector, so the
real-time audio callback can run it with no Python in between.
"""

from __future__ import annotations

import math
from typing import Any, Final

import numba
import numpy as np
import numpy.typing as npt

from mxfd.synth.effects import Chorus, Reverb, chorus_process, reverb_process

#: Where the limiter starts acting (-1 dBFS) and the soft clipper's knee.
CEILING: Final = 10.0 ** (-1.0 / 20.0)
#: Limiter recovery time constant (seconds).
RECOVERY_TAU: Final = 0.15

# limiter state vector
L_GAIN = 0
L_LIMITED = 1  # chunks in which the limiter reduced gain
L_CLIPPED = 2  # chunks in which the soft clipper acted
L_PEAK = 3  # highest peak seen (before the clipper)
L_RATE = 4
L_REVERB_TAIL = 5  # 1.0 while the reverb rings, as the last chunk left it
L_CHORUS_TAIL = 6
L_N = 7


@numba.njit(nogil=True, cache=True)
def master_process(  # type: ignore[no-untyped-def]
    bus, out, m, mix, lim, reverb_on, combs, comb_len, comb_pos, comb_store, allpasses, ap_len, ap_pos, rstate,
    chorus_on, line, cstate,
):
    """Mix the ``(4, >= m)`` bus (left, right, chorus send, reverb send) into ``out[:m]`` (``(m, 2)`` float32)."""
    for c in range(2):
        for i in range(m):
            mix[c, i] = bus[c, i]
    if reverb_on:
        on = reverb_process(bus[3], mix, m, combs, comb_len, comb_pos, comb_store, allpasses, ap_len, ap_pos, rstate)
        lim[L_REVERB_TAIL] = 1.0 if on else 0.0
    if chorus_on:
        lim[L_CHORUS_TAIL] = 1.0 if chorus_process(bus[2], mix, m, line, cstate) else 0.0
    peak = 0.0
    for c in range(2):
        for i in range(m):
            a = abs(mix[c, i])
            if a > peak:
                peak = a
    g0 = lim[L_GAIN]
    needed = CEILING / peak if peak > CEILING else 1.0
    if needed < g0:
        g1 = needed
        lim[L_LIMITED] += 1
    else:
        g1 = g0 + (1.0 - g0) * (1.0 - math.exp(-m / (RECOVERY_TAU * lim[L_RATE])))
        if g1 > 0.99999:
            g1 = 1.0
    if g0 != 1.0 or g1 != 1.0:
        step = (g1 - g0) / m
        for c in range(2):
            for i in range(m):
                mix[c, i] *= g0 + step * (i + 1)
        peak *= max(g0, g1)
    lim[L_GAIN] = g1
    if peak > lim[L_PEAK]:
        lim[L_PEAK] = peak
    if peak > CEILING:
        # Above the ceiling, bend the signal toward full scale along a tanh knee (never reaching it).
        lim[L_CLIPPED] += 1
        knee = 1.0 - CEILING
        for c in range(2):
            for i in range(m):
                x = mix[c, i]
                a = abs(x)
                if a > CEILING:
                    y = CEILING + knee * math.tanh((a - CEILING) / knee)
                    mix[c, i] = y if x > 0 else -y
    for i in range(m):
        out[i, 0] = mix[0, i]
        out[i, 1] = mix[1, i]


class Master:
    """Effect returns, limiter and interleaving for chunks of up to ``max_chunk`` frames.

    ``reverb`` and ``chorus`` may be set to None to leave an effect out.
    """

    def __init__(self, sample_rate: int, max_chunk: int, effects: bool = True) -> None:
        self.sample_rate = sample_rate
        self.max_chunk = max_chunk
        self.effects = effects
        self.reverb: Reverb | None = Reverb(sample_rate) if effects else None
        self.chorus: Chorus | None = Chorus(sample_rate) if effects else None
        # What the compiled call takes when an effect is left out (never read: its flag is off).
        self._no_reverb = self.reverb or Reverb(8)
        self._no_chorus = self.chorus or Chorus(8)
        self._mix = np.zeros((2, max_chunk), dtype=np.float32)
        self.lim = np.zeros(L_N, dtype=np.float64)
        self.lim[L_GAIN] = 1.0
        self.lim[L_RATE] = sample_rate

    @property
    def gain(self) -> float:
        """The limiter's gain now (1.0 when it is not acting)."""
        return float(self.lim[L_GAIN])

    @property
    def limited(self) -> int:
        return int(self.lim[L_LIMITED])

    @property
    def clipped(self) -> int:
        return int(self.lim[L_CLIPPED])

    @property
    def peak(self) -> float:
        return float(self.lim[L_PEAK])

    @property
    def tail_active(self) -> bool:
        """True while the effects still ring (a render may stop only after this)."""
        return bool(self.reverb is not None and self.reverb.active) or bool(
            self.chorus is not None and self.chorus.active
        )

    def arguments(self) -> tuple[Any, ...]:
        """What :func:`master_process` takes after ``(bus, out, m)``, as this section is configured now."""
        r = self.reverb or self._no_reverb
        c = self.chorus or self._no_chorus
        return (
            self._mix, self.lim, self.reverb is not None, r.combs, r.comb_len, r.comb_pos, r.comb_store,
            r.allpasses, r.ap_len, r.ap_pos, r.state, self.chorus is not None, c.line, c.state,
        )  # fmt: skip

    def process(self, bus: npt.NDArray[np.float64], out: npt.NDArray[np.float32]) -> None:
        """Mix the ``(4, m)`` bus into ``out`` (``(m, 2)`` float32 frames)."""
        master_process(bus, out, bus.shape[1], *self.arguments())

    def reset(self) -> None:
        self.lim[L_GAIN] = 1.0
        if self.reverb is not None:
            self.reverb.reset()
        if self.chorus is not None:
            self.chorus.reset()
