"""Reverb and chorus on the send buses, compiled: per-sample loops over preallocated state arrays.

Theory of operation
-------------------
Each effect is a Python owner of a few numpy arrays (its delay lines and a
small ``float64`` state vector) and a compiled ``process`` function that
takes those arrays, so compiled callers (the master section, and through it
the real-time audio callback, where no Python may run) reach the effect
with no Python object in between.  The loops run per sample, as the
originals do; nothing is allocated after construction.

Reverb: Freeverb (Jezar's public-domain design, the one FluidSynth's
reverb grew from): eight parallel feedback combs per side, each with the
one-pole damping low-pass inside its loop, into four allpasses in series;
the right side's delays are a little longer, for width.

Chorus: the mono send feeds a delay line read at two delays (left and
right), swept by slow sine LFOs in quadrature, with linear interpolation,
which detunes the copy against the dry signal.

Both count the frames since their input was last above :data:`SILENCE` and
report ``active`` until their tail has died; once it has, ``process``
returns at once (an idle daemon renders no effect), and offline rendering
knows when the sound has ended.
"""

from __future__ import annotations

import math
from typing import Final

import numba
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Freeverb's tunings at 44.1 kHz.
COMB_TUNING: Final = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_TUNING: Final = (556, 441, 341, 225)
STEREO_SPREAD: Final = 23
ROOM_FEEDBACK: Final = 0.82
DAMP: Final = 0.3
ALLPASS_FEEDBACK: Final = 0.5
REVERB_INPUT: Final = 0.016
#: Below this level (peak of a chunk's input) an effect counts as silent.
SILENCE: Final = 1e-7
#: Below this a recursive state is flushed to zero (no denormals in a dying tail).
_TINY: Final = 1e-20

# Reverb state vector
_R_QUIET = 0  # frames since the input was last above SILENCE
_R_TAIL = 1  # frames after which the tail counts as dead
_R_WET = 2
_R_N = 3

# Chorus state vector
_C_QUIET = 0
_C_TAIL = 1
_C_W = 2  # write position
_C_PHASE = 3  # LFO phase (radians)
_C_PHASE_INCR = 4  # per sample
_C_BASE = 5  # base delay (samples)
_C_DEPTH = 6  # sweep depth (samples)
_C_LEVEL = 7
_C_N = 8


@numba.njit(nogil=True, cache=True)
def _peak(x: F32, m: int) -> float:
    p = 0.0
    for i in range(m):
        a = abs(x[i])
        if a > p:
            p = a
    return p


@numba.njit(nogil=True, cache=True)
def reverb_process(  # type: ignore[no-untyped-def]
    send, out, m, combs, comb_len, comb_pos, comb_store, allpasses, ap_len, ap_pos, state
):
    """Add the reverb of ``send[:m]`` to ``out[:, :m]`` (``(2, >= m)`` float32); False once the tail is dead."""
    if _peak(send, m) > SILENCE:
        state[_R_QUIET] = 0.0
    elif state[_R_QUIET] >= state[_R_TAIL]:
        return False
    else:
        state[_R_QUIET] += m
    wet = state[_R_WET]
    feedback = ROOM_FEEDBACK
    damp1 = DAMP
    damp2 = 1.0 - DAMP
    for i in range(m):
        x = send[i] * REVERB_INPUT
        for side in range(2):
            acc = 0.0
            for c in range(side * 8, side * 8 + 8):
                p = comb_pos[c]
                y = combs[c, p]
                store = y * damp2 + comb_store[c] * damp1
                if abs(store) < _TINY:
                    store = 0.0
                comb_store[c] = store
                combs[c, p] = x + store * feedback
                p += 1
                comb_pos[c] = 0 if p == comb_len[c] else p
                acc += y
            for a in range(side * 4, side * 4 + 4):
                p = ap_pos[a]
                buffered = allpasses[a, p]
                allpasses[a, p] = acc + buffered * ALLPASS_FEEDBACK
                acc = buffered - acc
                p += 1
                ap_pos[a] = 0 if p == ap_len[a] else p
            out[side, i] += acc * wet
    return True


@numba.njit(nogil=True, cache=True)
def chorus_process(send, out, m, line, state):  # type: ignore[no-untyped-def]
    """Add the chorus of ``send[:m]`` to ``out[:, :m]``; False once the tail is dead."""
    incr = state[_C_PHASE_INCR]
    if _peak(send, m) > SILENCE:
        state[_C_QUIET] = 0.0
    elif state[_C_QUIET] >= state[_C_TAIL]:
        state[_C_PHASE] = (state[_C_PHASE] + incr * m) % (2.0 * math.pi)
        return False
    else:
        state[_C_QUIET] += m
    size = line.shape[0]
    mask = size - 1
    w = np.int64(state[_C_W])
    phase = state[_C_PHASE]
    base = state[_C_BASE]
    depth = state[_C_DEPTH]
    level = state[_C_LEVEL]
    for i in range(m):
        line[w] = send[i]
        for side in range(2):
            delay = base + depth * math.sin(phase + side * (math.pi / 2.0))
            pos = w - delay
            fl = math.floor(pos)
            frac = pos - fl
            i0 = np.int64(fl) & mask
            a = line[i0]
            b = line[(i0 + 1) & mask]
            out[side, i] += (a + (b - a) * frac) * level
        w = (w + 1) & mask
        phase += incr
    state[_C_W] = w
    state[_C_PHASE] = phase % (2.0 * math.pi)
    return True


class Reverb:
    """Stereo Freeverb over a mono send; its arrays are what :func:`reverb_process` takes."""

    def __init__(self, sample_rate: int, max_chunk: int = 0) -> None:
        scale = sample_rate / 44100.0
        combs = [round(d * scale) for d in COMB_TUNING] + [round((d + STEREO_SPREAD) * scale) for d in COMB_TUNING]
        aps = [round(d * scale) for d in ALLPASS_TUNING] + [round((d + STEREO_SPREAD) * scale) for d in ALLPASS_TUNING]
        self.comb_len = np.array(combs, dtype=np.int64)
        self.comb_pos = np.zeros(16, dtype=np.int64)
        self.comb_store = np.zeros(16, dtype=np.float32)
        self.combs = np.zeros((16, max(combs)), dtype=np.float32)
        self.ap_len = np.array(aps, dtype=np.int64)
        self.ap_pos = np.zeros(8, dtype=np.int64)
        self.allpasses = np.zeros((8, max(aps)), dtype=np.float32)
        self.state = np.zeros(_R_N, dtype=np.float64)
        self.state[_R_TAIL] = 3.0 * sample_rate
        self.state[_R_QUIET] = self.state[_R_TAIL]
        self.state[_R_WET] = 1.0

    @property
    def active(self) -> bool:
        return bool(self.state[_R_QUIET] < self.state[_R_TAIL])

    @property
    def wet(self) -> float:
        return float(self.state[_R_WET])

    @wet.setter
    def wet(self, value: float) -> None:
        self.state[_R_WET] = value

    def reset(self) -> None:
        self.combs.fill(0.0)
        self.comb_store.fill(0.0)
        self.allpasses.fill(0.0)
        self.state[_R_QUIET] = self.state[_R_TAIL]

    def process(self, send: F32, out: F32) -> None:
        """Add the reverb of ``send`` (``(m,)``) to ``out`` (``(2, m)``)."""
        reverb_process(send, out, send.shape[0], self.combs, self.comb_len, self.comb_pos, self.comb_store,
                       self.allpasses, self.ap_len, self.ap_pos, self.state)


class Chorus:
    """Two swept, interpolated delay taps of a mono send (left and right); see :func:`chorus_process`."""

    BASE_DELAY: Final = 0.012
    DEPTH: Final = 0.004
    RATE: Final = 0.33
    LEVEL: Final = 0.6

    def __init__(self, sample_rate: int, max_chunk: int = 0) -> None:
        longest = int((self.BASE_DELAY + self.DEPTH) * sample_rate) + 4
        self.line = np.zeros(1 << longest.bit_length(), dtype=np.float32)
        self.state = np.zeros(_C_N, dtype=np.float64)
        self.state[_C_TAIL] = longest
        self.state[_C_QUIET] = longest
        self.state[_C_PHASE_INCR] = 2.0 * math.pi * self.RATE / sample_rate
        self.state[_C_BASE] = self.BASE_DELAY * sample_rate
        self.state[_C_DEPTH] = self.DEPTH * sample_rate
        self.state[_C_LEVEL] = self.LEVEL

    @property
    def active(self) -> bool:
        return bool(self.state[_C_QUIET] < self.state[_C_TAIL])

    def reset(self) -> None:
        self.line.fill(0.0)
        self.state[_C_QUIET] = self.state[_C_TAIL]

    def process(self, send: F32, out: F32) -> None:
        """Add the chorus of ``send`` (``(m,)``) to ``out`` (``(2, m)``)."""
        chorus_process(send, out, send.shape[0], self.line, self.state)
