"""The compiler's pages, given back once everything compiled is loaded.

numba's compiler is LLVM, one 170 MB library (llvmlite's ``libllvmlite.so``).
Loading it faults in about 55 MiB of its code and read-only data (the
static initialisers spread across the library, and the kernel mapping the
pages around each fault), which then stay in the process's resident set.
Once start-up has loaded every compiled function, none of that code runs
again: in the daemon a compile after READY is the exception, and the
compile watch (:mod:`mxfd.daemon.compile_watch`) says each one.

Those pages are unmodified copies of the file, so the daemon (after READY)
and ``mxfd render`` (once its synth is built and first sounds) unmap them
(``madvise(MADV_DONTNEED)``) and loses nothing: a page touched again is
mapped back from the page cache, where the pages stay.  Only mappings that
cannot be written and hold no copied-on-write page qualify (a relocated
read-only segment holds such copies, and unmapping those would lose the
relocations).
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from dataclasses import dataclass
from typing import Final, Iterator

log = logging.getLogger(__name__)

#: The file name of the compiler library whose pages are given back.
COMPILER_LIBRARY: Final = "libllvmlite.so"
MADV_DONTNEED: Final = 4


@dataclass(frozen=True)
class Mapping:
    """One mapping of ``/proc/PID/smaps``: what :func:`reclaimable` needs of it."""

    start: int
    end: int
    perms: str
    path: str
    rss_kib: int
    anonymous_kib: int


#: A mapping's first line: "7f..-7f.. r-xp 00365000 fe:00 5324866    /path" (the path may be absent).
_HEADER: Final = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)$", re.M)
_RSS: Final = re.compile(r"^Rss: +(\d+) kB", re.M)
_ANONYMOUS: Final = re.compile(r"^Anonymous: +(\d+) kB", re.M)


def parse_smaps(text: str, path_contains: str = "") -> Iterator[Mapping]:
    """The mappings of an smaps listing, in order; only those whose path contains ``path_contains``."""
    headers = list(_HEADER.finditer(text))
    for n, h in enumerate(headers):
        if path_contains not in h.group(4):
            continue
        end = headers[n + 1].start() if n + 1 < len(headers) else len(text)
        rss = _RSS.search(text, h.end(), end)
        anonymous = _ANONYMOUS.search(text, h.end(), end)
        yield Mapping(int(h.group(1), 16), int(h.group(2), 16), h.group(3), h.group(4).strip(),
                      int(rss.group(1)) if rss else 0, int(anonymous.group(1)) if anonymous else 0)  # fmt: skip


def reclaimable(mappings: Iterator[Mapping], library: str = COMPILER_LIBRARY) -> list[Mapping]:
    """``library``'s resident mappings that cannot be written and hold only the file's own pages."""
    return [
        m
        for m in mappings
        if os.path.basename(m.path) == library and "w" not in m.perms and m.anonymous_kib == 0 and m.rss_kib
    ]


def _own_mappings(path_contains: str = COMPILER_LIBRARY) -> Iterator[Mapping]:
    with open("/proc/self/smaps", encoding="utf-8", errors="replace") as fh:
        return parse_smaps(fh.read(), path_contains)


def release_compiler_pages() -> int:
    """Unmap the compiler library's clean resident pages from this process; the KiB given back.

    Returns 0 where there is nothing to give back (no smaps, no such library); a refusal of
    ``madvise`` is logged and the rest still go.
    """
    try:
        targets = reclaimable(_own_mappings())
    except OSError as exc:
        log.info("resident pages: /proc/self/smaps unreadable (%s); the compiler's pages stay", exc)
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    given = 0
    for m in targets:
        if libc.madvise(m.start, m.end - m.start, MADV_DONTNEED) == 0:
            given += m.rss_kib  # all of a mapping's pages go: none is locked or copied
        else:
            err = ctypes.get_errno()
            log.warning("resident pages: madvise of %s at %#x failed: %s", m.path, m.start, os.strerror(err))
    return given
