"""Reverb and chorus on the send buses, computed a chunk at a time with numpy.

Theory of operation
-------------------
Recursive filters cannot be vectorised along time, except when every
feedback path is at least one chunk long: then a whole chunk's output
depends only on the input and on what earlier chunks wrote.  Both effects
are built that way, so they cost a few numpy calls per chunk whatever the
chunk size (up to the shortest delay).

Reverb: Freeverb's topology (Jezar's public-domain design): eight parallel
feedback combs per side (the right side's delays a little longer, for
width) into four allpasses in series.  The combs of both sides are one
``(16, R)`` ring buffer written at a common position, so reading all 16
delayed chunks is a single gather.  The damping low-pass that Freeverb runs
inside each comb loop (one pole, recursive per sample) is replaced by a
two-tap average of the delayed signal, which still makes highs die first.

Chorus: the mono send feeds a ring buffer read at two delays (left and
right) swept by slow LFOs in quadrature, with linear interpolation, which
detunes the copy against the dry signal.

Both keep track of when their input was last non-silent and report
``active`` until their tail has died, so the renderer can skip them when
idle and offline rendering knows when the sound has ended.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

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


class Reverb:
    """Stereo Freeverb-style reverb over a mono send, vectorised per chunk.

    Every array a chunk works on is a contiguous view of a flat buffer:
    ufuncs over strided 2-D slices allocate iterator buffers, copies do not.
    """

    def __init__(self, sample_rate: int, max_chunk: int) -> None:
        scale = sample_rate / 44100.0
        delays = [round(d * scale) for d in COMB_TUNING] + [round((d + STEREO_SPREAD) * scale) for d in COMB_TUNING]
        self._ap = [max(max_chunk, round(d * scale)) for d in ALLPASS_TUNING]
        if min(delays) < max_chunk + 1:
            raise ValueError(f"chunks of {max_chunk} frames are longer than the shortest reverb delay")
        self.max_chunk = mc = max_chunk
        size = 1 << int(max(delays) + max_chunk + 2).bit_length()
        self._size = size
        self._ring = np.zeros((16, size), dtype=np.float32)
        self._flat = self._ring.reshape(-1)
        k = np.arange(mc)
        # Ring position (before wrapping) of chunk sample k's delayed tap, per comb, and each comb's row offset.
        self._roff = np.ascontiguousarray(-np.asarray(delays)[:, None] + k[None, :]).astype(np.intp)
        self._rowbase = np.ascontiguousarray(np.broadcast_to((np.arange(16) * size)[:, None], (16, mc))).astype(
            np.intp
        )
        self._buf_i = np.zeros(16 * mc, dtype=np.intp)
        self._buf_j = np.zeros(16 * mc, dtype=np.intp)
        self._buf_t0 = np.zeros(16 * mc, dtype=np.float32)
        self._buf_t1 = np.zeros(16 * mc, dtype=np.float32)
        self._buf_y = np.zeros(16 * mc, dtype=np.float32)
        self._prev = np.zeros((16, 1), dtype=np.float32)  # each comb's last tap of the previous chunk
        self._summer = np.zeros((2, 16), dtype=np.float32)
        self._summer[0, :8] = 1.0
        self._summer[1, 8:] = 1.0
        self._buf_s = np.zeros(2 * mc, dtype=np.float32)
        self._w = 0
        apsize = 1 << int(max(self._ap) + max_chunk + 2).bit_length()
        self._ap_size = apsize
        self._ap_ring = [np.zeros((2, apsize), dtype=np.float32) for _ in self._ap]
        self._ap_w = 0
        self._buf_o = np.zeros(2 * mc, dtype=np.float32)
        self._buf_d = np.zeros(2 * mc, dtype=np.float32)
        self._tail = int(3.0 * sample_rate)
        self._quiet = self._tail
        self._abs = np.zeros(mc, dtype=np.float32)
        self.wet = 1.0

    @property
    def active(self) -> bool:
        return self._quiet < self._tail

    def reset(self) -> None:
        self._ring.fill(0.0)
        self._prev.fill(0.0)
        for r in self._ap_ring:
            r.fill(0.0)
        self._quiet = self._tail

    def process(self, send: F32, out: F32) -> None:
        """Add the reverb of ``send`` (``(m,)``) to ``out`` (``(2, m)``)."""
        m = send.shape[0]
        a = self._abs[:m]
        np.abs(send, out=a)
        if float(a.max()) > SILENCE:
            self._quiet = 0
        elif self._quiet >= self._tail:
            return
        else:
            self._quiet += m
        size = self._size
        w = self._w
        n = 16 * m
        idx = self._buf_i[:n].reshape(16, m)
        rows = self._buf_j[:n].reshape(16, m)
        np.copyto(idx, self._roff[:, :m])
        np.add(idx, w, out=idx)
        np.bitwise_and(idx, size - 1, out=idx)
        np.copyto(rows, self._rowbase[:, :m])
        np.add(idx, rows, out=idx)
        tap = self._buf_t0[:n].reshape(16, m)  # y[n - D]
        np.take(self._flat, idx, out=tap, mode="clip")
        tap1 = self._buf_t1[:n].reshape(16, m)  # y[n - D - 1]
        np.copyto(tap1[:, :1], self._prev)
        np.copyto(tap1[:, 1:], tap[:, :-1])
        np.copyto(self._prev, tap[:, -1:])
        # y[n] = in + g * ((1 - d) * y[n - D] + d * y[n - D - 1])
        y = self._buf_y[:n].reshape(16, m)
        np.multiply(tap, ROOM_FEEDBACK * (1.0 - DAMP), out=y)
        np.multiply(tap1, ROOM_FEEDBACK * DAMP, out=tap1)
        np.add(y, tap1, out=y)
        np.copyto(tap1, send)
        np.multiply(tap1, REVERB_INPUT, out=tap1)
        np.add(y, tap1, out=y)
        end = w + m
        if end <= size:
            self._ring[:, w:end] = y
        else:
            first = size - w
            self._ring[:, w:] = y[:, :first]
            self._ring[:, : m - first] = y[:, first:]
        self._w = end & (size - 1)
        s = self._buf_s[: 2 * m].reshape(2, m)
        np.matmul(self._summer, y, out=s)
        self._allpasses(s, m)
        if self.wet != 1.0:
            np.multiply(s, self.wet, out=s)
        np.add(out, s, out=out)

    def _allpasses(self, s: F32, m: int) -> None:
        size = self._ap_size
        w = self._ap_w
        d = self._buf_d[: 2 * m].reshape(2, m)
        o = self._buf_o[: 2 * m].reshape(2, m)
        for delay, ring in zip(self._ap, self._ap_ring, strict=True):
            r = (w - delay) & (size - 1)
            end = r + m
            if end <= size:
                np.copyto(d, ring[:, r:end])
            else:
                first = size - r
                np.copyto(d[:, :first], ring[:, r:])
                np.copyto(d[:, first:], ring[:, : m - first])
            # out = -in + buf[n - D]; buf[n] = in + g * buf[n - D]
            np.subtract(d, s, out=o)
            np.multiply(d, ALLPASS_FEEDBACK, out=d)
            np.add(d, s, out=d)
            wend = w + m
            if wend <= size:
                ring[:, w:wend] = d
            else:
                first = size - w
                ring[:, w:] = d[:, :first]
                ring[:, : m - first] = d[:, first:]
            np.copyto(s, o)
        self._ap_w = (w + m) & (size - 1)


class Chorus:
    """Two swept, interpolated delay taps of a mono send (left and right)."""

    BASE_DELAY: Final = 0.012
    DEPTH: Final = 0.004
    RATE: Final = 0.33
    LEVEL: Final = 0.6

    def __init__(self, sample_rate: int, max_chunk: int) -> None:
        self.sample_rate = sample_rate
        longest = int((self.BASE_DELAY + self.DEPTH) * sample_rate) + max_chunk + 4
        self._size = size = 1 << longest.bit_length()
        self._ring = np.zeros(size, dtype=np.float32)
        self._w = 0
        self._phase = 0.0
        self._k = np.arange(max_chunk, dtype=np.float32)
        self._max = max_chunk
        self._buf_pos = np.zeros(2 * max_chunk, dtype=np.float32)
        self._buf_fl = np.zeros(2 * max_chunk, dtype=np.float32)
        self._buf_i0 = np.zeros(2 * max_chunk, dtype=np.intp)
        self._buf_i1 = np.zeros(2 * max_chunk, dtype=np.intp)
        self._buf_a = np.zeros(2 * max_chunk, dtype=np.float32)
        self._buf_b = np.zeros(2 * max_chunk, dtype=np.float32)
        self._abs = np.zeros(max_chunk, dtype=np.float32)
        self._tail = longest
        self._quiet = longest
        self._offsets = np.array([[0.0], [math.pi / 2.0]])

    @property
    def active(self) -> bool:
        return self._quiet < self._tail

    def reset(self) -> None:
        self._ring.fill(0.0)
        self._quiet = self._tail

    def process(self, send: F32, out: F32) -> None:
        """Add the chorus of ``send`` (``(m,)``) to ``out`` (``(2, m)``)."""
        m = send.shape[0]
        a = self._abs[:m]
        np.abs(send, out=a)
        if float(a.max()) > SILENCE:
            self._quiet = 0
        elif self._quiet >= self._tail:
            self._phase = (self._phase + 2.0 * math.pi * self.RATE * m / self.sample_rate) % (2.0 * math.pi)
            return
        else:
            self._quiet += m
        size = self._size
        w = self._w
        end = w + m
        if end <= size:
            self._ring[w:end] = send
        else:
            first = size - w
            self._ring[w:] = send[:first]
            self._ring[: m - first] = send[first:]
        sr = self.sample_rate
        # Delays (in samples) at the chunk's start for both taps; the sweep is slow, so constant per chunk.
        ph = self._phase
        dl = (self.BASE_DELAY + self.DEPTH * math.sin(ph)) * sr
        dr = (self.BASE_DELAY + self.DEPTH * math.sin(ph + math.pi / 2.0)) * sr
        self._phase = (ph + 2.0 * math.pi * self.RATE * m / sr) % (2.0 * math.pi)
        pos = self._buf_pos[: 2 * m].reshape(2, m)
        np.add(self._k[:m], w - dl, out=pos[0])
        np.add(self._k[:m], w - dr, out=pos[1])
        fl = self._buf_fl[: 2 * m].reshape(2, m)
        np.floor(pos, out=fl)
        np.subtract(pos, fl, out=pos)  # pos is now the fraction
        i0 = self._buf_i0[: 2 * m].reshape(2, m)
        i1 = self._buf_i1[: 2 * m].reshape(2, m)
        np.copyto(i0, fl, casting="unsafe")
        np.bitwise_and(i0, size - 1, out=i0)
        np.add(i0, 1, out=i1)
        np.bitwise_and(i1, size - 1, out=i1)
        va = self._buf_a[: 2 * m].reshape(2, m)
        vb = self._buf_b[: 2 * m].reshape(2, m)
        np.take(self._ring, i0, out=va, mode="clip")
        np.take(self._ring, i1, out=vb, mode="clip")
        np.subtract(vb, va, out=vb)
        np.multiply(vb, pos, out=vb)
        np.add(va, vb, out=va)
        np.multiply(va, self.LEVEL, out=va)
        np.add(out, va, out=out)
        self._w = end & (size - 1)
