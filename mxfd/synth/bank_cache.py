"""The built-in bank, built once and kept on disk: later starts map it instead of computing it.

Building the bank (the wavetables of 128 programs and the drum kit, about
34 MB) takes about a second, and every daemon and every render did it at
start.  :func:`load_or_build` keeps a built bank under
``$XDG_CACHE_HOME/mxfd`` (``~/.cache/mxfd``), named by a hash of the sources
that build it, the numpy version and the sample rate, so an edit or an
upgrade builds it anew: the pool as a ``.npy`` file, memory-mapped read-only
on later starts (its pages are read as voices play them), and the patches as
JSON beside it (plain numbers and names: nothing in the cache is executed).
Both are written to temporary names and renamed, so a reader never sees half
a file.  A cache that cannot be read or written is a miss, said at the debug
level, and the bank is built as before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Final, Optional

import numpy as np

from mxfd.synth.bank import Bank, Patch
from mxfd.synth.soundfont.zone_cache import cache_dir

log = logging.getLogger(__name__)

#: Bumped when the files' layout changes.
FORMAT: Final = 1
_SOURCES: Final = ("bank.py", "drums.py", "tables.py", "bank_cache.py")
_TUPLES: Final = frozenset(f.name for f in dataclasses.fields(Patch) if "tuple" in str(f.type))


def bank_key(sample_rate: int) -> str:
    """The name of the bank's files: what builds it, hashed, and the rate."""
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(f"{FORMAT} {np.__version__}".encode())
    for name in _SOURCES:
        h.update((here / name).read_bytes())
    return f"builtin-{sample_rate}-{h.hexdigest()[:16]}"


def _patch_from(d: dict[str, Any]) -> Patch:
    fields: dict[str, Any] = {k: tuple(v) if k in _TUPLES else v for k, v in d.items()}
    return Patch(**fields)


def load(sample_rate: int, directory: Optional[Path] = None) -> Optional[Bank]:
    """The bank kept for ``sample_rate``, its pool memory-mapped; None when there is none to use."""
    where = directory or cache_dir()
    key = bank_key(sample_rate)
    try:
        parts = json.loads((where / f"{key}.json").read_text(encoding="utf-8"))
        pool = np.load(where / f"{key}.npy", mmap_mode="r", allow_pickle=False)
        programs = tuple(_patch_from(p) for p in parts["programs"])
        drums = tuple(None if p is None else _patch_from(p) for p in parts["drums"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("the built-in bank's cache in %s is unusable (%s): building it", where, exc)
        return None
    if pool.dtype != np.complex128 or len(programs) != 128 or len(drums) != 128:
        log.debug("the built-in bank's cache in %s does not fit: building it", where)
        return None
    return Bank.of(sample_rate, programs, drums, pool)


def save(bank: Bank, directory: Optional[Path] = None) -> bool:
    """Keep ``bank`` for later starts; False (said at the debug level) when it cannot be written."""
    where = directory or cache_dir()
    key = bank_key(bank.sample_rate)
    parts = {
        "programs": [dataclasses.asdict(p) for p in bank.programs],
        "drums": [None if p is None else dataclasses.asdict(p) for p in bank.drums],
    }
    try:
        where.mkdir(parents=True, exist_ok=True)
        for suffix, write in ((".npy", lambda f: np.save(f, bank.pool, allow_pickle=False)),
                              (".json", lambda f: f.write(json.dumps(parts).encode()))):  # fmt: skip
            fd, tmp = tempfile.mkstemp(dir=where, prefix=f".{key}", suffix=suffix)
            try:
                with os.fdopen(fd, "wb") as f:
                    write(f)
                os.replace(tmp, where / f"{key}{suffix}")
            except BaseException:
                os.unlink(tmp)
                raise
    except OSError as exc:
        log.debug("cannot keep the built-in bank in %s (%s): it is built at every start", where, exc)
        return False
    return True


def load_or_build(sample_rate: int) -> Bank:
    """The built-in bank for ``sample_rate``: from the cache, else built (and kept for the next start)."""
    bank = load(sample_rate)
    if bank is not None:
        return bank
    bank = Bank(sample_rate)
    save(bank)
    return bank


__all__ = ["FORMAT", "bank_key", "cache_dir", "load", "load_or_build", "save"]
