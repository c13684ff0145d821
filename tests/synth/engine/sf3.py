"""An SF3 made from an SF2, for the tests: every sample coded as its own Ogg Vorbis stream (as sf3convert does).

SF3 keeps SF2's structure; only the sample data changes: ``smpl`` holds the
Ogg streams one after the other, each sample header's start and end are the
byte offsets of its stream, its loop points count frames from the decoded
sample's start, and its type has the Ogg Vorbis bit (0x10); ``ifil`` says 3.1.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import soundfile

from mxfd.synth.soundfont.riff import walk

_SHDR = struct.Struct("<20sIIIIIBbHH")
OGG_VORBIS = 0x10


def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, chunks: list[bytes]) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def sf2_to_sf3(sf2: bytes, quality: float = 0.8) -> bytes:
    """The SF3 of ``sf2`` (its 24-bit low bytes, if any, are dropped: Vorbis has no place for them)."""
    layout = walk(sf2, "<sf2>")
    assert layout.smpl is not None
    words = np.frombuffer(sf2, np.int16, layout.smpl.size // 2, layout.smpl.offset)
    shdr = layout.hydra["shdr"]
    records = [_SHDR.unpack_from(sf2, shdr.offset + k * _SHDR.size) for k in range(shdr.size // _SHDR.size)]
    streams = bytearray()
    headers = bytearray()
    for k, (name, start, end, loop_start, loop_end, rate, pitch, correction, link, kind) in enumerate(records):
        if k == len(records) - 1:  # the terminal record
            headers += _SHDR.pack(name, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            break
        out = io.BytesIO()
        soundfile.write(out, words[start:end], rate, format="OGG", subtype="VORBIS", compression_level=1 - quality)
        at = len(streams)
        streams += out.getvalue()
        headers += _SHDR.pack(
            name, at, len(streams), loop_start - start, loop_end - start, rate, pitch, correction, link,
            kind | OGG_VORBIS,
        )  # fmt: skip
    info = [_chunk(b"ifil", struct.pack("<HH", 3, 1))]
    info += [_chunk(cid.encode(), raw) for cid, raw in layout.info.items() if cid != "ifil"]
    hydra = []
    for cid in ("phdr", "pbag", "pmod", "pgen", "inst", "ibag", "imod", "igen"):
        span = layout.hydra[cid]
        hydra.append(_chunk(cid.encode(), bytes(sf2[span.offset : span.end])))
    hydra.append(_chunk(b"shdr", bytes(headers)))
    body = b"sfbk" + _list(b"INFO", info) + _list(b"sdta", [_chunk(b"smpl", bytes(streams))]) + _list(b"pdta", hydra)
    return b"RIFF" + struct.pack("<I", len(body)) + body
