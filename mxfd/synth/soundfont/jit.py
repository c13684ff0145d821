"""The mark for functions the compiled voice engine runs: ``numba.njit(nogil=True, cache=True)``.

Zone lookup, unit conversions and modulator source mapping are written in
the subset of Python that numba compiles (scalars, numpy arrays, ``math``;
no Python objects) and call one another only through functions carrying
this mark, so every marked function, and every call between them, is
compiled (lazily, at its first call, then from numba's cache) and the
voice engine (:mod:`mxfd.synth.engine`) calls them from its own compiled
code.
"""

from __future__ import annotations

from typing import Callable, TypeVar, cast

import numba

F = TypeVar("F", bound=Callable[..., object])


def compiled(f: F) -> F:
    """Mark ``f`` as part of the compiled path (see the module docstring)."""
    return cast(F, numba.njit(nogil=True, cache=True)(f))
