"""Writes a SoundFont 2.04 file from presets, instruments and samples described in Python.

The built-in bank is played by the SoundFont voice engine as a font of its
own (:mod:`mxfd.synth.builtin_font`); this module writes that font, and
tests write small fonts with it.  It writes what the loader reads and
nothing more: ``INFO`` (version, engine, name), the 16-bit samples, and the
nine ``pdta`` chunks with their terminal records.  Generators are written in
the order section 8.1.2 requires (key range first, then velocity range;
``instrument`` and ``sampleID`` last).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final, Sequence

import numpy as np
import numpy.typing as npt

from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.modulators import Modulator

#: Zero frames after each sample, as section 6.1 asks (interpolation reads past a sample's end).
SAMPLE_PAD: Final = 46
#: sfSampleType of a mono sample held in the file.
MONO_SAMPLE: Final = 1

Generators = Sequence[tuple[Gen, int]]


@dataclass(frozen=True)
class Sample:
    """A mono 16-bit sample; the loop is in frames from its first, end exclusive."""

    name: str
    data: npt.NDArray[np.int16]
    rate: int
    root_key: int = 60
    correction: int = 0  # cents, -128..127: the pitch to add when played at the root key
    loop: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Zone:
    """A zone: its generators and modulators; ``link`` names a sample (instrument zone) or an instrument."""

    generators: Generators = ()
    modulators: Sequence[Modulator] = ()
    link: int | None = None  # None: a global zone (it must come first)


@dataclass(frozen=True)
class Instrument:
    name: str
    zones: Sequence[Zone]


@dataclass(frozen=True)
class Preset:
    name: str
    bank: int
    program: int
    zones: Sequence[Zone]


@dataclass
class Font:
    name: str
    samples: list[Sample] = field(default_factory=list)
    instruments: list[Instrument] = field(default_factory=list)
    presets: list[Preset] = field(default_factory=list)


def _name(text: str) -> bytes:
    return text.encode("latin-1", "replace")[:20].ljust(20, b"\0")  # 20 characters: no terminator needed


def _chunk(cid: bytes, body: bytes) -> bytes:
    pad = b"\0" if len(body) % 2 else b""
    return cid + struct.pack("<I", len(body)) + body + pad


def _list(kind: bytes, chunks: Sequence[bytes]) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _order(generators: Generators) -> list[tuple[Gen, int]]:
    first = {Gen.KEY_RANGE: 0, Gen.VEL_RANGE: 1}
    return sorted(generators, key=lambda g: first.get(g[0], 2))


def _gen_record(gen: Gen, value: int) -> bytes:
    if gen in (Gen.KEY_RANGE, Gen.VEL_RANGE):
        lo, hi = value & 0xFF, value >> 8
        return struct.pack("<HBB", gen, lo, hi)
    if gen in (Gen.INSTRUMENT, Gen.SAMPLE_ID):
        return struct.pack("<HH", gen, value)
    return struct.pack("<Hh", gen, max(-32768, min(32767, value)))


def key_range(lo: int, hi: int) -> int:
    """The value of a keyRange or velRange generator."""
    return (max(0, min(127, hi)) << 8) | max(0, min(127, lo))


def _check_index(bags: int, mods: int, gens: int) -> None:
    if max(bags, mods, gens) > 0xFFFF:
        raise ValueError(
            f"too many zones ({bags}), modulators ({mods}) or generators ({gens}) for a SoundFont's 16-bit indices"
        )


def _zones(zones_of: Sequence[Sequence[Zone]], link_gen: Gen) -> tuple[bytes, bytes, bytes, list[int]]:
    """(bag, mod, gen chunk bodies, first bag of each list) for the zone lists of presets or instruments."""
    bags, mods, gens = bytearray(), bytearray(), bytearray()
    n_gens = n_mods = n_bags = 0
    firsts: list[int] = []
    for zones in zones_of:
        firsts.append(n_bags)
        for zone in zones:
            _check_index(n_bags, n_mods, n_gens)
            bags += struct.pack("<HH", n_gens, n_mods)
            n_bags += 1
            for m in zone.modulators:
                mods += struct.pack("<HHhHH", m.src, m.dest, int(m.amount), m.amount_src, m.transform)
                n_mods += 1
            for gen, value in _order(zone.generators):
                gens += _gen_record(gen, value)
                n_gens += 1
            if zone.link is not None:
                gens += _gen_record(link_gen, zone.link)
                n_gens += 1
    _check_index(n_bags, n_mods, n_gens)
    firsts.append(n_bags)
    bags += struct.pack("<HH", n_gens, n_mods)
    mods += bytes(10)
    gens += bytes(4)
    return bytes(bags), bytes(mods), bytes(gens), firsts


def soundfont_bytes(font: Font) -> bytes:
    """The whole SoundFont file for ``font``."""
    info = _list(b"INFO", [
        _chunk(b"ifil", struct.pack("<HH", 2, 4)),
        _chunk(b"isng", b"EMU8000\0"),
        _chunk(b"INAM", font.name.encode("latin-1", "replace") + b"\0"),
    ])  # fmt: skip
    pieces: list[bytes] = []
    headers = bytearray()
    at = 0
    for s in font.samples:
        n = len(s.data)
        pieces.append(np.ascontiguousarray(s.data, "<i2").tobytes() + bytes(2 * SAMPLE_PAD))
        loop_start, loop_end = (at + s.loop[0], at + s.loop[1]) if s.loop[1] > s.loop[0] else (at, at)
        headers += _name(s.name) + struct.pack(
            "<IIIIIBbHH", at, at + n, loop_start, loop_end, s.rate, s.root_key, s.correction, 0, MONO_SAMPLE
        )
        at += n + SAMPLE_PAD
    headers += _name("EOS") + bytes(26)
    sdta = _list(b"sdta", [_chunk(b"smpl", b"".join(pieces))])

    pbag, pmod, pgen, pfirst = _zones([p.zones for p in font.presets], Gen.INSTRUMENT)
    ibag, imod, igen, ifirst = _zones([i.zones for i in font.instruments], Gen.SAMPLE_ID)
    phdr = bytearray()
    for p, first in zip(font.presets, pfirst, strict=False):
        phdr += _name(p.name) + struct.pack("<HHHIII", p.program, p.bank, first, 0, 0, 0)
    phdr += _name("EOP") + struct.pack("<HHHIII", 0, 0, pfirst[-1], 0, 0, 0)
    inst = bytearray()
    for i, first in zip(font.instruments, ifirst, strict=False):
        inst += _name(i.name) + struct.pack("<H", first)
    inst += _name("EOI") + struct.pack("<H", ifirst[-1])
    pdta = _list(b"pdta", [
        _chunk(b"phdr", bytes(phdr)), _chunk(b"pbag", pbag), _chunk(b"pmod", pmod), _chunk(b"pgen", pgen),
        _chunk(b"inst", bytes(inst)), _chunk(b"ibag", ibag), _chunk(b"imod", imod), _chunk(b"igen", igen),
        _chunk(b"shdr", bytes(headers)),
    ])  # fmt: skip
    return _chunk(b"RIFF", b"sfbk" + info + sdta + pdta)
