"""RIFF chunk walking for SoundFont 2 files: the ``sfbk`` form and its INFO, sdta and pdta lists.

Theory of operation
-------------------
A SoundFont is one RIFF chunk of form ``sfbk`` holding three LIST chunks:
``INFO`` (version and names), ``sdta`` (the sample data: ``smpl``, 16-bit,
and optionally ``sm24``, the low bytes of 24-bit samples) and ``pdta`` (the
"hydra": nine chunks of fixed-size records).  :func:`walk` reads only chunk
headers from a buffer (in practice an ``mmap`` of the file), checks every
size against what is there and returns where each chunk's data lies, so the
sample data is never read or copied here.  Every defect is a
:class:`~mxfd.synth.soundfont.errors.SoundFontError` naming the file and the
chunk; nothing here raises anything else on bad input.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from typing import Final, Optional

from mxfd.synth.soundfont.errors import SoundFontError

# The nine pdta chunks, in the order SoundFont 2.04 section 7 gives them.
HYDRA_CHUNKS: Final = ("phdr", "pbag", "pmod", "pgen", "inst", "ibag", "imod", "igen", "shdr")

_HEADER = struct.Struct("<4sI")

#: What the parsers read from: the file's mmap in practice, bytes in tests.
Buffer = bytes | bytearray | memoryview | mmap.mmap


@dataclass(frozen=True)
class Span:
    """Where one chunk's data lies in the file: ``offset`` of its first data byte and ``size`` in bytes."""

    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class RiffLayout:
    """The chunks of one SoundFont file, located but not read."""

    version: tuple[int, int]
    info: dict[str, bytes] = field(default_factory=dict)
    smpl: Optional[Span] = None
    sm24: Optional[Span] = None
    hydra: dict[str, Span] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return _text(self.info.get("INAM", b""))


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("latin-1").strip()


def _fourcc(raw: bytes) -> str:
    """A chunk id as text; a garbled one as its bytes' repr, so a message stays one printable line."""
    if all(0x20 <= c < 0x7F for c in raw):
        return raw.decode("ascii")
    return repr(bytes(raw))


def _chunks(buf: Buffer, start: int, end: int, path: str, parent: str) -> list[tuple[str, Span]]:
    """The chunks between ``start`` and ``end``, each size checked against ``end``."""
    out: list[tuple[str, Span]] = []
    pos = start
    while pos < end:
        if end - pos < _HEADER.size:
            raise SoundFontError(
                path, parent, f"truncated: {end - pos} stray bytes at offset {pos}, too few for a chunk header"
            )
        raw_id, size = _HEADER.unpack_from(buf, pos)
        cid = _fourcc(raw_id)
        data = pos + _HEADER.size
        if size > end - data:
            raise SoundFontError(
                path,
                f"{parent}/{cid}",
                f"truncated: chunk claims {size} bytes at offset {data}, only {end - data} there",
            )
        out.append((cid, Span(data, size)))
        # RIFF pads odd-sized chunks to an even length; a missing pad byte at the very end is tolerated.
        pos = min(data + size + (size & 1), end)
    return out


def walk(buf: Buffer, path: str) -> RiffLayout:
    """Locate the chunks of the SoundFont in ``buf`` (the whole file); raise SoundFontError on any defect."""
    n = len(buf)
    if n < 12:
        raise SoundFontError(path, "RIFF", f"truncated: the file is {n} bytes, too short for a RIFF header")
    raw_id, riff_size = _HEADER.unpack_from(buf, 0)
    if raw_id != b"RIFF":
        raise SoundFontError(path, "RIFF", f"not a RIFF file (starts with {bytes(raw_id)!r})")
    form = bytes(buf[8:12])
    if form != b"sfbk":
        raise SoundFontError(path, "RIFF", f"RIFF form is {form!r}, not b'sfbk': not a SoundFont")
    if riff_size > n - 8:
        raise SoundFontError(path, "RIFF", f"truncated: the RIFF chunk claims {riff_size} bytes, the file has {n - 8}")
    lists: dict[str, Span] = {}
    for cid, span in _chunks(buf, 12, 8 + riff_size, path, "sfbk"):
        if cid != "LIST":
            continue  # unknown top-level chunks are allowed by RIFF and ignored
        if span.size < 4:
            raise SoundFontError(path, "sfbk/LIST", f"truncated: a LIST chunk of {span.size} bytes has no list type")
        kind = _fourcc(bytes(buf[span.offset : span.offset + 4]))
        lists.setdefault(kind, Span(span.offset + 4, span.size - 4))
    for kind in ("INFO", "sdta", "pdta"):
        if kind not in lists:
            raise SoundFontError(path, f"LIST {kind}", f"missing: the file has no {kind} list")

    info: dict[str, bytes] = {}
    version: Optional[tuple[int, int]] = None
    for cid, span in _chunks(buf, lists["INFO"].offset, lists["INFO"].end, path, "INFO"):
        raw = bytes(buf[span.offset : span.end])
        if cid == "ifil":
            if span.size != 4:
                raise SoundFontError(path, "INFO/ifil", f"version chunk is {span.size} bytes, not 4")
            major, minor = struct.unpack("<HH", raw)
            version = (major, minor)
        info.setdefault(cid, raw)
    if version is None:
        raise SoundFontError(path, "INFO/ifil", "missing: the file has no version chunk")
    if version[0] not in (2, 3):
        raise SoundFontError(path, "INFO/ifil", f"SoundFont version {version[0]}.{version[1]} is not 2.x or 3.x")

    smpl: Optional[Span] = None
    sm24: Optional[Span] = None
    for cid, span in _chunks(buf, lists["sdta"].offset, lists["sdta"].end, path, "sdta"):
        if cid == "smpl" and smpl is None:
            smpl = span
        elif cid == "sm24" and sm24 is None:
            sm24 = span

    hydra: dict[str, Span] = {}
    for cid, span in _chunks(buf, lists["pdta"].offset, lists["pdta"].end, path, "pdta"):
        if cid in HYDRA_CHUNKS:
            hydra.setdefault(cid, span)
    for cid in HYDRA_CHUNKS:
        if cid not in hydra:
            raise SoundFontError(path, f"pdta/{cid}", "missing: the preset data has no such chunk")
    return RiffLayout(version=version, info=info, smpl=smpl, sm24=sm24, hydra=hydra)
