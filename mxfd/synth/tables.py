"""The sample pool: band-limited wavetables and one-shot samples in one array.

Theory of operation
-------------------
The voice engine reads every voice's signal with a single gather from one
flat pool, so all sound data lives in one array.  Each pool row holds four
float32 numbers, viewed as one ``complex128`` so a gather moves 16 bytes
per sample::

    row i = (a[i], a[i+1] - a[i], b[i], b[i+1] - b[i])

``a`` and ``b`` are two layers read at the same phase (a bright and a dark
version of a timbre); storing each value with its forward difference lets
the engine interpolate linearly (``a + da * frac``) from one gathered row
instead of two.

A *periodic* entry is one table of ``L`` rows (``L`` a power of two); the
engine wraps the phase with ``& (L - 1)``.  A table may hold ``K`` periods of
the note's fundamental, so partials at ratios ``j / K`` (bells, sub-octaves,
fifths) are exact.  Tables are built from a spectrum by an inverse real
FFT, so they contain exactly the partials given, and one table is made per
octave band of fundamental frequency (a mip level) holding only partials
that stay below the band limit at the top of the band (with a pitch-bend
margin): no partial aliases.

A *one-shot* entry (drums, effects) is a sample followed by a run of zero
rows, so a voice that runs past the end within a segment reads silence and
is freed at the next control update.

Identical tables are stored once.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
C128 = npt.NDArray[np.complex128]

#: Zero rows after each one-shot: more than any segment can overrun.
ONE_SHOT_PAD: Final = 1040


def table_from_spectrum(bins: npt.NDArray[np.int64], coefs: C128, length: int) -> F64:
    """One period (``length`` samples) holding ``coefs[i]`` at bin ``bins[i]``.

    The result is ``sum |c| cos(2π b n / L + arg c)``: coefficients are
    amplitudes, not FFT-scaled values.
    """
    spec = np.zeros(length // 2 + 1, dtype=np.complex128)
    np.add.at(spec, bins, coefs)
    spec[0] = 0.0
    out: F64 = np.fft.irfft(spec, n=length) * (length / 2.0)
    return out


def rows_for(a: npt.ArrayLike, b: npt.ArrayLike, periodic: bool) -> F32:
    """Pool rows (value, delta, value, delta) for layers ``a`` and ``b``."""
    a64 = np.asarray(a, dtype=np.float64)
    b64 = np.asarray(b, dtype=np.float64)
    rows = np.empty((len(a64), 4), dtype=np.float32)
    rows[:, 0] = a64
    rows[:, 2] = b64
    if periodic:
        rows[:, 1] = np.roll(a64, -1) - a64
        rows[:, 3] = np.roll(b64, -1) - b64
    else:
        rows[:-1, 1] = np.diff(a64)
        rows[:-1, 3] = np.diff(b64)
        rows[-1, 1] = -a64[-1]
        rows[-1, 3] = -b64[-1]
    return rows


class PoolBuilder:
    """Collects tables and samples; :meth:`build` returns the pool."""

    def __init__(self) -> None:
        self._parts: list[F32] = []
        self._size = 0
        self._seen: dict[bytes, int] = {}

    @property
    def size(self) -> int:
        return self._size

    def _append(self, rows: F32) -> int:
        key = hashlib.blake2b(rows.tobytes(), digest_size=16).digest()
        base = self._seen.get(key)
        if base is not None:
            return base
        base = self._size
        self._parts.append(rows)
        self._size += len(rows)
        self._seen[key] = base
        return base

    def add_periodic(self, a: F64, b: F64) -> int:
        """Add a table pair (same power-of-two length); return its first row."""
        n = len(a)
        if n & (n - 1) or len(b) != n:
            raise ValueError(f"periodic tables need one power-of-two length, got {n} and {len(b)}")
        return self._append(rows_for(a, b, periodic=True))

    def add_one_shots(self, a: F64, b: F64) -> int:
        """Add two one-shot samples side by side (layers a and b) followed by silence.

        One-shots have no bright/dark pair, so two of them share rows: a voice
        reads layer a or b with the other layer's gain at zero.
        """
        n = max(len(a), len(b)) + ONE_SHOT_PAD
        la = np.zeros(n)
        lb = np.zeros(n)
        la[: len(a)] = a
        lb[: len(b)] = b
        return self._append(rows_for(la, lb, periodic=False))

    def build(self) -> C128:
        """The pool as one complex128 array (each element one 16-byte row).

        Parts are copied in and dropped one by one, so building never holds
        the pool twice.
        """
        total = self._size + ONE_SHOT_PAD
        rows = np.zeros((total, 4), dtype=np.float32)
        at = 0
        parts = self._parts
        parts.reverse()
        while parts:
            part = parts.pop()
            rows[at : at + len(part)] = part
            at += len(part)
        self._seen.clear()
        pool: C128 = rows.view(np.complex128).reshape(-1)
        return pool
