"""Keep numba's on-disk cache of the engine consistent with its source.

numba's ``cache=True`` checks only the source file of the function it
loads, but a compiled function contains the functions it calls from
other modules: after an edit or an upgrade of one module, another module's
cached code could still hold the old version (the JACK pin's callback
holding an old layout of the data plane would write past its arrays).
:func:`check` hashes every source file the compiled engine, and the code
compiled with it, is built from (and the numba version);
when the hash differs from the one stored beside the cache, the engine's
cache files are deleted, so the next render compiles afresh (about a
minute) and stores a consistent cache.

:func:`load_without_registries` makes a warm start cheaper: numba
refreshes its whole compiler (every typing and lowering registry) before
it even looks in the cache, which only a compile needs.
"""

from __future__ import annotations

import glob
import hashlib
import os
from typing import Any, Final

_HERE = os.path.dirname(os.path.abspath(__file__))
_SYNTH = os.path.dirname(_HERE)
_PACKAGE = os.path.dirname(_SYNTH)
_SOUNDFONT = os.path.join(_SYNTH, "soundfont")
_IO = os.path.join(_PACKAGE, "io")
#: Compiled code outside the engine's and the soundfont package's folders, and what it is built from:
#: the master section and its effects, the JACK callbacks (the pin's holds the data plane's render).
_OTHER_SOURCES: Final = (
    os.path.join(_PACKAGE, "core", "midi.py"),
    os.path.join(_SYNTH, "master.py"),
    os.path.join(_SYNTH, "effects.py"),
    *(os.path.join(_IO, name) for name in ("jack_pin.py", "jack_reader.py", "jack_records.py", "libjack.py")),
)
#: The directories whose ``__pycache__`` hold compiled code of the engine or built with it.
CACHE_DIRS: Final = tuple(os.path.join(d, "__pycache__") for d in (_HERE, _SOUNDFONT, _SYNTH, _IO))
_STAMP: Final = os.path.join(CACHE_DIRS[0], "engine-source.sha256")


def source_hash() -> str:
    import numba

    h = hashlib.sha256(numba.__version__.encode())
    files = sorted(glob.glob(os.path.join(_HERE, "*.py"))) + sorted(glob.glob(os.path.join(_SOUNDFONT, "*.py")))
    for path in [*files, *_OTHER_SOURCES]:
        with open(path, "rb") as fh:
            h.update(os.path.basename(path).encode())
            h.update(fh.read())
    return h.hexdigest()


def check() -> bool:
    """Delete the engine's cached machine code if it was built from other sources; True if it did."""
    try:
        digest = source_hash()
        with open(_STAMP, encoding="ascii") as fh:
            if fh.read().strip() == digest:
                return False
    except FileNotFoundError:
        pass
    except OSError:
        return False  # an unreadable cache directory: numba decides on its own
    for directory in CACHE_DIRS:
        for path in glob.glob(os.path.join(directory, "*.nbi")) + glob.glob(os.path.join(directory, "*.nbc")):
            try:
                os.unlink(path)
            except OSError:
                pass
    try:
        os.makedirs(CACHE_DIRS[0], exist_ok=True)
        with open(_STAMP, "w", encoding="ascii") as fh:
            fh.write(digest + "\n")
    except OSError:
        pass
    return True


_lazy_loading = False


def load_without_registries() -> None:
    """Load cached machine code without first loading numba's compiler registries.

    Before every cache load numba refreshes its target context, which imports
    and installs every typing and lowering registry it has: at a warm start
    that was 0.15 s and 7 MiB of the daemon's, for code that only a compile
    runs.  Linking cached object code needs only numba's runtime (NRT), so a
    load here initialises that and reads the cache; on a miss numba's own
    load runs (with its refresh), and the compile that follows refreshes
    too.  If numba's cache class no longer has the shape this relies on,
    numba is left as it is.
    """
    global _lazy_loading
    if _lazy_loading:
        return
    from numba.core import caching
    from numba.core.runtime import nrt

    cache_class: Any = caching.Cache
    if not all(hasattr(cache_class, name) for name in ("load_overload", "_load_overload",
                                                         "_guard_against_spurious_io_errors")):
        return
    numba_load = cache_class.load_overload

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        nrt.rtsys.initialize(target_context)
        with self._guard_against_spurious_io_errors():
            loaded = self._load_overload(sig, target_context)
            if loaded is not None:
                return loaded
        return numba_load(self, sig, target_context)

    cache_class.load_overload = load_overload
    _lazy_loading = True
