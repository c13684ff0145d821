"""A font's voice zone tables kept on disk, so that a later load does not resolve its presets again.

Resolving every preset into voice zones (:func:`.zones.build_tables`) is
Python over every zone of the file: about 0.2 s for TimGM6mb or FluidR3_GM,
most of a load and a fifth of ``mxfd render``'s start (a font under
1 MiB resolves in milliseconds and is not kept).  The tables depend
only on the file's bytes and on the code that resolves them, so they are
kept in ``$XDG_CACHE_HOME/mxfd/zones/`` under a name made of the file's
identity (real path, size, modification time, inode) and a hash of this
package's source.  A file changed in place gets a new name (and the old
one is deleted when the new one is written); a cache file
that cannot be read is built again (and replaced); a cache that cannot be
written costs the 0.2 s at every load and nothing else.  What resolving the
presets fixed in the file (its :class:`~.errors.LoadReport` entries) is
kept with the tables, so a load from the cache reports the same counters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np

from mxfd.synth.soundfont.errors import LoadReport
from mxfd.synth.soundfont.zones import ZoneTables

log = logging.getLogger(__name__)

#: Bumped when the file's layout changes.
FORMAT = 1
#: Smaller fonts resolve in milliseconds and are not kept (nor are the many a test suite writes).
MIN_FONT_BYTES = 1 << 20
_FIELDS = tuple(f.name for f in dataclasses.fields(ZoneTables))


def cache_dir() -> Path:
    """Where mxfd keeps what it builds once: ``$XDG_CACHE_HOME/mxfd``, or ``~/.cache/mxfd``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mxfd"


_source_digest: Optional[str] = None


def _source_hash() -> str:
    global _source_digest
    if _source_digest is None:
        here = Path(__file__).resolve().parent
        h = hashlib.sha256(f"{FORMAT} {np.__version__}".encode())
        for path in sorted(here.glob("*.py")):
            h.update(path.name.encode())
            h.update(path.read_bytes())
        _source_digest = h.hexdigest()
    return _source_digest


def cache_path(path: str, st: os.stat_result, directory: Optional[Path] = None) -> Optional[Path]:
    """The cache file of the font at ``path``, whose open file's status is ``st`` (a file changed since has another).

    The name is the real path's hash, then the hash of the file's identity and of this package's source.
    None for a font under :data:`MIN_FONT_BYTES`.
    """
    if st.st_size < MIN_FONT_BYTES:
        return None
    real = os.path.realpath(path)
    identity = f"{_source_hash()} {real} {st.st_size} {st.st_mtime_ns} {st.st_ino} {st.st_dev}"
    name = f"{_digest(real)}-{_digest(identity)}.npz"
    return (directory or cache_dir()) / "zones" / name


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load(where: Path, report: LoadReport) -> Optional[tuple[ZoneTables, list[str]]]:
    """The tables and preset names kept at ``where``, their fixes added to ``report``; None if not there."""
    try:
        with np.load(where, allow_pickle=False) as z:
            tables = ZoneTables(**{name: z[name] for name in _FIELDS})
            names = [str(n) for n in z["names"]]
            kept = json.loads(str(z["report"]))
    except FileNotFoundError:
        return None
    except Exception as exc:  # damaged or from another layout: built again and replaced
        log.warning("zone cache %s unusable (%s): resolving the presets again", where, exc)
        return None
    fixed = LoadReport(report.path)
    fixed.counts.update(kept["counts"])
    fixed.warnings.extend(f"{report.path}: {w}" for w in kept["warnings"])  # the path the font is loaded by
    report.merge(fixed)
    return tables, names


def save(where: Path, tables: ZoneTables, names: list[str], fixed: LoadReport) -> None:
    """Keep ``tables``, ``names`` and what ``fixed`` counted at ``where`` (written whole, then renamed)."""
    arrays = {name: getattr(tables, name) for name in _FIELDS}
    prefix = f"{fixed.path}: "
    warnings = [w[len(prefix) :] if w.startswith(prefix) else w for w in fixed.warnings]
    report = json.dumps({"counts": dict(fixed.counts), "warnings": warnings})
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        tmp = where.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, names=np.array(names, dtype=str), report=np.array(report), **arrays)
        os.replace(tmp, where)
        font = where.name.split("-", 1)[0]
        for old in where.parent.glob(f"{font}-*.npz"):  # the same file as it was, or read by older code
            if old != where:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot keep the zone tables in %s (%s): the presets are resolved at every load", where.parent, exc)
