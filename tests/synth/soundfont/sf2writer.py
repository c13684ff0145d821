"""A small SoundFont 2 writer for tests: every field, and every defect, under the test's control.

Zones are given as raw (oper, amount) generator lists and raw modulator
records, so a test writes exactly the records it means, in the order it
means (a keyRange after another generator, a sampleID that is not last, an
unknown generator id, an absurd value).  ``build`` lays out the chunks and
can leave any of them out, drop a terminal record or corrupt a field.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import numpy.typing as npt

GUARD = 46

Gen = tuple[int, int]
Mod = tuple[int, int, int, int, int]  # src, dest, amount, amount_src, transform


def rng(lo: int, hi: int) -> int:
    """A keyRange/velRange amount (two bytes, low first) as the signed word the writer stores."""
    word = lo | (hi << 8)
    return word - 65536 if word >= 32768 else word


def key_range(lo: int, hi: int) -> Gen:
    return (43, rng(lo, hi))


def vel_range(lo: int, hi: int) -> Gen:
    return (44, rng(lo, hi))


def sample_id(i: int) -> Gen:
    return (53, i)


def instrument(i: int) -> Gen:
    return (41, i)


@dataclass
class Sample:
    name: str
    data: npt.NDArray[np.int16]
    rate: int = 44100
    key: int = 60
    correction: int = 0
    loop: tuple[int, int] = (0, 0)  # relative to the sample start
    type: int = 1
    link: int = 0
    # absolute overrides of the header fields (for bad offsets)
    start: Optional[int] = None
    end: Optional[int] = None
    loop_abs: Optional[tuple[int, int]] = None


@dataclass
class Zone:
    gens: list[Gen] = field(default_factory=list)
    mods: list[Mod] = field(default_factory=list)


@dataclass
class Instrument:
    name: str
    zones: list[Zone]


@dataclass
class Preset:
    name: str
    program: int
    zones: list[Zone]
    bank: int = 0


def tone(n: int = 200, amplitude: int = 10000) -> npt.NDArray[np.int16]:
    """A recognisable sample: a ramp, so any frame's value tells where it came from."""
    return (np.arange(n) % 100 * (amplitude // 100)).astype(np.int16)


def _chunk(cid: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return cid + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, chunks: Sequence[bytes]) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(s: str) -> bytes:
    return s.encode("latin-1")[:20].ljust(20, b"\0")


def build(
    presets: Sequence[Preset],
    instruments: Sequence[Instrument],
    samples: Sequence[Sample],
    *,
    version: tuple[int, int] = (2, 1),
    sm24: bool = False,
    omit: Sequence[str] = (),
    no_terminal: Sequence[str] = (),
    replace: Optional[dict[str, bytes]] = None,
    form: bytes = b"sfbk",
    info_name: str = "test font",
) -> bytes:
    """The bytes of a SoundFont file holding these presets, instruments and samples.

    ``omit`` leaves chunks out ("INFO", "sdta", "pdta", "ifil", "smpl", or a pdta chunk such as "pbag");
    ``no_terminal`` drops the terminal record of pdta chunks ("phdr", "inst", "shdr", "pgen", ...);
    ``replace`` gives the raw data of a chunk by name.
    """
    replace = replace or {}
    words: list[npt.NDArray[np.int16]] = []
    shdr = b""
    pos = 0
    for s in samples:
        start = pos if s.start is None else s.start
        end = pos + len(s.data) if s.end is None else s.end
        ls, le = s.loop_abs if s.loop_abs is not None else (pos + s.loop[0], pos + s.loop[1])
        shdr += _name(s.name) + struct.pack(
            "<IIIIIBbHH", start, end, ls, le, s.rate, s.key, s.correction, s.link, s.type
        )
        words += [s.data.astype("<i2"), np.zeros(GUARD, "<i2")]
        pos += len(s.data) + GUARD
    if "shdr" not in no_terminal:
        shdr += _name("EOS") + bytes(26)
    smpl = b"".join(w.tobytes() for w in words)

    def hydra_lists(owners: Sequence[Preset] | Sequence[Instrument], preset: bool) -> tuple[bytes, bytes, bytes, bytes]:
        hdr = bag = gen = mod = b""
        n_bag = n_gen = n_mod = 0
        for o in owners:
            if preset:
                assert isinstance(o, Preset)
                hdr += _name(o.name) + struct.pack("<HHHIII", o.program, o.bank, n_bag, 0, 0, 0)
            else:
                hdr += _name(o.name) + struct.pack("<H", n_bag)
            for z in o.zones:
                bag += struct.pack("<HH", n_gen, n_mod)
                n_bag += 1
                for oper, amount in z.gens:
                    gen += struct.pack("<Hh", oper, amount)
                    n_gen += 1
                for m in z.mods:
                    mod += struct.pack("<HHhHH", *m)
                    n_mod += 1
        h, b, g, m = ("phdr", "pbag", "pgen", "pmod") if preset else ("inst", "ibag", "igen", "imod")
        if h not in no_terminal:
            hdr += _name("EOP" if preset else "EOI") + (
                struct.pack("<HHHIII", 0, 0, n_bag, 0, 0, 0) if preset else struct.pack("<H", n_bag)
            )
        if b not in no_terminal:
            bag += struct.pack("<HH", n_gen, n_mod)
        if g not in no_terminal:
            gen += bytes(4)
        if m not in no_terminal:
            mod += bytes(10)
        return hdr, bag, mod, gen

    phdr, pbag, pmod, pgen = hydra_lists(presets, True)
    inst, ibag, imod, igen = hydra_lists(instruments, False)
    pdta_data = {
        "phdr": phdr,
        "pbag": pbag,
        "pmod": pmod,
        "pgen": pgen,
        "inst": inst,
        "ibag": ibag,
        "imod": imod,
        "igen": igen,
        "shdr": shdr,
    }
    pdta = [_chunk(k.encode(), replace.get(k, v)) for k, v in pdta_data.items() if k not in omit]

    info = []
    if "ifil" not in omit:
        info.append(_chunk(b"ifil", replace.get("ifil", struct.pack("<HH", *version))))
    info.append(_chunk(b"INAM", info_name.encode() + b"\0"))
    sdta = []
    if "smpl" not in omit:
        sdta.append(_chunk(b"smpl", replace.get("smpl", smpl)))
    if sm24:
        low = bytes((i * 7) & 0xFF for i in range(len(smpl) // 2))
        sdta.append(_chunk(b"sm24", replace.get("sm24", low)))
    body = b""
    if "INFO" not in omit:
        body += _list(b"INFO", info)
    if "sdta" not in omit:
        body += _list(b"sdta", sdta)
    if "pdta" not in omit:
        body += _list(b"pdta", pdta)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + form + body


def simple_font(**kw: object) -> bytes:
    """One preset (0:0 "Test") of one instrument zone playing one looped 200-frame sample."""
    samples = [Sample("tone", tone(), loop=(50, 150))]
    insts = [Instrument("inst", [Zone([sample_id(0)])])]
    presets = [Preset("Test", 0, [Zone([instrument(0)])])]
    return build(presets, insts, samples, **kw)  # type: ignore[arg-type]


def patch_record(data: bytes, chunk: str, index: int, field_name: str, value: int) -> bytes:
    """``data`` with one field of one pdta record changed (located with the parser under test's chunk walk)."""
    from mxfd.synth.soundfont.records import DTYPES
    from mxfd.synth.soundfont.riff import walk

    out = bytearray(data)
    span = walk(bytes(data), "patch").hydra[chunk]
    records = np.frombuffer(out, dtype=DTYPES[chunk], count=span.size // DTYPES[chunk].itemsize, offset=span.offset)
    records = records.copy()
    records[index][field_name] = value
    out[span.offset : span.end] = records.tobytes()
    return bytes(out)
