"""A stack of SoundFonts played as one font: each bank:program comes from the first font that has it.

Theory of operation
-------------------
FluidSynth looks every preset up through its stack of loaded fonts.  The
voice engine reads one set of zone tables and one array of sample words, so
:func:`stack_soundfonts` makes the stack into one :class:`SoundFont`:

* *Presets.*  The union of the members' (bank, program) keys, sorted as one
  font's are; each from the first member that has it.  Its voice zones are
  copied in preset order and renumbered, its key slots (the CSR index
  :func:`~mxfd.synth.soundfont.zones.select_voice_zones` walks) come from
  the member's, and the members' modulator pools are laid end to end.  The
  drum kits (bank 128) stack the same way, and the engine's fallback to
  bank 0 for a missing bank runs over the whole stack, after every member
  was asked, as FluidSynth's does.
* *Sample words.*  One contiguous span of address space, reserved first,
  in which each member's ``smpl`` chunk is mapped from its file again with
  ``MAP_FIXED``, at a page boundary plus the chunk's offset within its page
  (so the words keep their 2-byte alignment).  The samples stay memory
  mapped: resident memory grows with what is played, as with one font, and
  the member's own mapping is no longer read.  A member whose words are not
  a file's pages (SF3, decoded at load; a font read from bytes; a file
  changed on disk since it was loaded) is copied into anonymous pages in its
  place.  Its zones' sample offsets move by its base in the span.
* *24-bit samples.*  sm24's low bytes go with the words index for index, and
  one page alignment cannot suit both arrays, so where any member has them
  they are copied into one array (zero bytes, which the kernel does not
  back, for the members without): half the size of that member's ``smpl``.

Reading never leaves a member's pages: the engine reads inside each voice's
window, which ends at most at the sample's 46 guard words.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import weakref
from dataclasses import dataclass
from typing import Final, Optional, Sequence

import numpy as np
import numpy.typing as npt

from mxfd.synth.soundfont.errors import LoadReport
from mxfd.synth.soundfont.font import SoundFont
from mxfd.synth.soundfont.sample_data import Samples
from mxfd.synth.soundfont.zones import KEYS, ZoneTables

PAGE: Final = mmap.PAGESIZE
_PROT_NONE: Final = 0
_MAP_FAILED: Final = ctypes.c_void_p(-1).value
_MAP_NORESERVE: Final = getattr(mmap, "MAP_NORESERVE", 0x4000)
_MAP_FIXED: Final = 0x10  # Linux; the mmap module has no name for it

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)


def _mapped(address: Optional[int]) -> int:
    """``mmap``'s result, or OSError with errno."""
    if address is None or address == _MAP_FAILED:
        _raise("mmap")
    assert address is not None
    return address


def _done(result: int, what: str) -> None:
    if result != 0:
        _raise(what)


def _raise(what: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


class _Span:
    """Address space holding the stack's words; unmapped when the last array over it goes."""

    def __init__(self, size: int) -> None:
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE
        self.address = _mapped(_libc.mmap(None, size, _PROT_NONE, flags, -1, 0))
        self.size = size
        weakref.finalize(self, _libc.munmap, self.address, size)

    def map_file(self, offset: int, length: int, fd: int, file_offset: int) -> None:
        """Map ``length`` bytes of the file from ``file_offset`` (page-aligned) at ``offset`` in the span."""
        at = self.address + offset
        _mapped(_libc.mmap(at, length, mmap.PROT_READ, mmap.MAP_PRIVATE | _MAP_FIXED, fd, file_offset))
        # As load_soundfont's own mapping: voices touch samples here and there, read-ahead would waste.
        _libc.madvise(at, length, mmap.MADV_RANDOM)

    def copy_in(self, offset: int, data: npt.NDArray[np.int16]) -> None:
        """Fresh anonymous pages at ``offset`` holding ``data``, then made read-only."""
        length = _round_up(data.nbytes)
        at = self.address + offset
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_FIXED
        _mapped(_libc.mmap(at, length, mmap.PROT_READ | mmap.PROT_WRITE, flags, -1, 0))
        ctypes.memmove(at, data.ctypes.data, data.nbytes)
        _done(_libc.mprotect(at, length, mmap.PROT_READ), "mprotect")

    def words(self) -> npt.NDArray[np.int16]:
        raw = (ctypes.c_int16 * (self.size // 2)).from_address(self.address)
        raw._span = self  # type: ignore[attr-defined]  # the span lives while an array over it does
        out: npt.NDArray[np.int16] = np.frombuffer(memoryview(raw).cast("B"), np.int16)
        out.flags.writeable = False
        return out


def _round_up(n: int) -> int:
    return -(-n // PAGE) * PAGE


@dataclass(frozen=True)
class _Placement:
    """Where a member's words go: the span offset of its first page, and its in-page start (bytes)."""

    offset: int
    delta: int
    length: int  # bytes of pages
    file_offset: int  # page-aligned offset in its file; -1: copied

    @property
    def base(self) -> int:
        """The member's word 0 as an index into the stack's words."""
        return (self.offset + self.delta) // 2


def _mappable(font: SoundFont) -> bool:
    """Whether the font's words are still its file's pages (so they can be mapped again, not copied)."""
    smpl = font.layout.smpl
    st = font.file_status
    if font.samples.compressed or smpl is None or st is None or smpl.offset % 2:
        return False
    try:
        now = os.stat(font.path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) == (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )


def _place(fonts: Sequence[SoundFont]) -> tuple[list[_Placement], int]:
    placements: list[_Placement] = []
    offset = 0
    for font in fonts:
        nbytes = font.samples.data.nbytes
        smpl = font.layout.smpl
        if _mappable(font) and smpl is not None:
            delta = smpl.offset % PAGE
            p = _Placement(offset, delta, _round_up(delta + nbytes), smpl.offset - delta)
        else:
            p = _Placement(offset, 0, _round_up(nbytes), -1)
        placements.append(p)
        offset += max(p.length, PAGE)
    return placements, offset


def _stack_words(fonts: Sequence[SoundFont]) -> tuple[npt.NDArray[np.int16], list[int]]:
    placements, size = _place(fonts)
    span = _Span(size)
    for font, p in zip(fonts, placements, strict=True):
        if p.file_offset < 0:
            if font.samples.data.nbytes:
                span.copy_in(p.offset, np.ascontiguousarray(font.samples.data))
            continue
        with open(font.path, "rb") as fh:
            span.map_file(p.offset, p.length, fh.fileno(), p.file_offset)
    return span.words(), [p.base for p in placements]


def _stack_low(fonts: Sequence[SoundFont], bases: list[int], n: int) -> Optional[npt.NDArray[np.uint8]]:
    if all(f.samples.low is None for f in fonts):
        return None
    low = np.zeros(n, np.uint8)  # calloc: pages nobody writes stay unbacked
    for font, base in zip(fonts, bases, strict=True):
        if font.samples.low is not None:
            low[base : base + len(font.samples.low)] = font.samples.low
    low.flags.writeable = False
    return low


def _stack_samples(fonts: Sequence[SoundFont]) -> tuple[Samples, list[int], list[int]]:
    """The members' samples as one; also each member's first sample id and first word."""
    words, bases = _stack_words(fonts)
    firsts = list(np.cumsum([0] + [len(f.samples) for f in fonts[:-1]]).tolist())

    def cat(name: str, shift: Optional[list[int]] = None) -> npt.NDArray[np.int64]:
        parts = []
        for i, f in enumerate(fonts):
            a = getattr(f.samples, name).astype(np.int64)
            parts.append(a + shift[i] if shift is not None else a)
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    link = np.concatenate(
        [np.where(f.samples.link >= 0, f.samples.link + firsts[i], -1) for i, f in enumerate(fonts)]
    ).astype(np.int64)
    samples = Samples(
        names=tuple(n for f in fonts for n in f.samples.names),
        start=cat("start", bases),
        end=cat("end", bases),
        loop_start=cat("loop_start", bases),
        loop_end=cat("loop_end", bases),
        rate=cat("rate"),
        original_key=cat("original_key"),
        correction=cat("correction"),
        link=link,
        type=cat("type"),
        usable=np.concatenate([f.samples.usable for f in fonts]),
        data=words,
        low=_stack_low(fonts, bases, len(words)),
        compressed=any(f.samples.compressed for f in fonts),
    )
    return samples, firsts, bases


#: ZoneTables fields indexed by voice zone, copied as they are.
_ZONE_FIELDS: Final = (
    "generators", "sample_mode", "root_key", "pitch_correction", "tuning", "attenuation",
    "exclusive_class", "sample_rate", "key_lo", "key_hi", "vel_lo", "vel_hi", "mod_count",
)  # fmt: skip
_MOD_FIELDS: Final = ("mod_src", "mod_dest", "mod_amount", "mod_amount_src", "mod_transform")


def _stack_tables(
    fonts: Sequence[SoundFont], firsts: list[int], bases: list[int]
) -> tuple[ZoneTables, list[str]]:
    # which member (and its preset index) answers each key: the first that has it
    source: dict[int, tuple[int, int]] = {}
    for m, font in enumerate(fonts):
        for p, key in enumerate(font.tables.preset_key.tolist()):
            source.setdefault(key, (m, p))
    keys = sorted(source)
    mod_bases = np.cumsum([0] + [len(f.tables.mod_src) for f in fonts[:-1]]).tolist()

    zone_parts: list[tuple[int, npt.NDArray[np.int64]]] = []  # (member, its zone ids) per preset, in order
    key_counts: list[npt.NDArray[np.int64]] = []
    key_zones: list[npt.NDArray[np.int64]] = []
    vz_first = [0]
    names: list[str] = []
    for key in keys:
        m, p = source[key]
        t = fonts[m].tables
        a, b = int(t.vz_first[p]), int(t.vz_first[p + 1])
        zone_parts.append((m, np.arange(a, b, dtype=np.int64)))
        slots = t.key_index[p * KEYS : (p + 1) * KEYS + 1]
        key_counts.append(np.diff(slots))
        # a preset's key slots name its own zones only: renumber them into the new order
        key_zones.append(t.key_zones[slots[0] : slots[-1]].astype(np.int64) - a + vz_first[-1])
        vz_first.append(vz_first[-1] + b - a)
        names.append(fonts[m].presets[p].name)

    def zones(name: str) -> npt.NDArray[np.generic]:
        parts = [getattr(fonts[m].tables, name)[ids] for m, ids in zone_parts]
        return np.concatenate(parts) if parts else getattr(fonts[0].tables, name)[:0]

    def shifted(name: str, by: list[int]) -> npt.NDArray[np.int64]:
        parts = [getattr(fonts[m].tables, name)[ids].astype(np.int64) + by[m] for m, ids in zone_parts]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    sample = shifted("sample", firsts).astype(np.int32)
    link = np.concatenate(
        [np.where((s := fonts[m].tables.link_sample[ids]) >= 0, s + firsts[m], -1) for m, ids in zone_parts]
        or [np.zeros(0, np.int32)]
    ).astype(np.int32)
    key_index = np.zeros(len(keys) * KEYS + 1, np.int64)
    if keys:
        np.cumsum(np.concatenate(key_counts), out=key_index[1:])
    preset = np.repeat(np.arange(len(keys), dtype=np.int32), np.diff(vz_first))
    fields = {name: zones(name) for name in _ZONE_FIELDS}
    tables = ZoneTables(
        preset_key=np.array(keys, np.int64),
        vz_first=np.array(vz_first, np.int64),
        key_index=key_index,
        key_zones=(np.concatenate(key_zones) if key_zones else np.zeros(0, np.int64)).astype(np.int32),
        sample=sample,
        start=shifted("start", bases),
        end=shifted("end", bases),
        loop_start=shifted("loop_start", bases),
        loop_end=shifted("loop_end", bases),
        link_sample=link,
        preset=preset,
        mod_first=shifted("mod_first", mod_bases).astype(np.int32),
        **{name: np.concatenate([getattr(f.tables, name) for f in fonts]) for name in _MOD_FIELDS},
        **fields,  # type: ignore[arg-type]
    )
    return tables, names


class FontStack(SoundFont):
    """Several SoundFonts as one (:func:`stack_soundfonts`); ``members`` in the order they are searched."""

    def __init__(self, members: Sequence[SoundFont]) -> None:
        samples, firsts, bases = _stack_samples(members)
        tables, names = _stack_tables(members, firsts, bases)
        report = LoadReport(members[0].path)
        for font in members:
            report.merge(font.report)
        top = members[0]
        super().__init__(top.path, top.layout, top.hydra, samples, tables, names, report)
        self.members: tuple[SoundFont, ...] = tuple(members)

    @property
    def name(self) -> str:
        return " + ".join(font.name for font in self.members)


def stack_soundfonts(fonts: Sequence[SoundFont]) -> SoundFont:
    """One font playing each bank:program from the first of ``fonts`` that has it (the font itself if only one)."""
    if not fonts:
        raise ValueError("a stack needs at least one font")
    if len(fonts) == 1:
        return fonts[0]
    return FontStack(fonts)


__all__ = ["FontStack", "stack_soundfonts"]
