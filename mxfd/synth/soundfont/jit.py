"""The mark for functions the compiled voice engine will run: today the identity, then ``numba.njit``.

Zone lookup, unit conversions and modulator source mapping are written in
the subset of Python that numba compiles (scalars, numpy arrays, ``math``;
no Python objects) and call one another only through functions carrying
this mark.  When numba becomes a dependency (mxfd issue 8, the voice
engine), this one definition turns into ``numba.njit(nogil=True,
cache=True)`` and every marked function, and every call between them, is
compiled; until then they run as plain Python and are tested as such.
"""

from __future__ import annotations

from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable[..., object])


def compiled(f: F) -> F:
    """Mark ``f`` as part of the compiled path (see the module docstring)."""
    return f
