"""Sample data (the sdta list) memory-mapped from the file, and the sample headers checked against it.

Theory of operation
-------------------
``smpl`` holds every sample of the font as 16-bit little-endian words, one
after another, each followed by at least 46 zero words; ``sm24`` (SoundFont
2.04) holds one more low byte per word for 24-bit samples.  Both are numpy
views straight onto the ``mmap`` of the file: nothing is copied or read at
load, the kernel pages in only what a voice plays, so resident memory grows
with the samples actually played, not with the file's size.

Each ``shdr`` record names a sample by its word offsets in ``smpl``.  They
are checked as FluidSynth does (``fluid_sample_validate`` and
``fluid_sample_sanitize_loop``): a ROM sample, unknown type flags, a zero
sample rate, an end past the data or a start not before the end make the
sample unusable (zones playing it are dropped); reversed loop points are
swapped and loop points outside ``[start, data end]`` are moved to the
sample's start or end.  Loop points a little past the sample's end are kept,
as FluidSynth keeps them: the 46 guard words are there for that.  Each fix
is counted.

SF3 files (the sftools/MuseScore extension, sample type bit 0x10) hold Ogg
Vorbis streams instead, with ``start``/``end`` as byte offsets and loop
points relative to the decoded sample.  They are decoded at load with
``soundfile`` (libsndfile, which PyPI's wheels ship with Vorbis) into one
in-memory array laid out like ``smpl`` (each sample followed by 46 zero
frames), so the voice engine sees the same kind of data either way.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final, Optional

import numpy as np
import numpy.typing as npt

from mxfd.synth.soundfont.errors import LoadReport, SoundFontError
from mxfd.synth.soundfont.records import Hydra, record_name
from mxfd.synth.soundfont.riff import Buffer, RiffLayout

# sample types (section 7.10, and SF3's Vorbis flag)
MONO: Final = 1
RIGHT: Final = 2
LEFT: Final = 4
LINKED: Final = 8
OGG_VORBIS: Final = 0x10
ROM: Final = 0x8000
_CHANNEL_FLAGS: Final = MONO | RIGHT | LEFT
_KNOWN_FLAGS: Final = _CHANNEL_FLAGS | LINKED | OGG_VORBIS | ROM

#: Zero words the spec requires after each sample; interpolation and loops may read into them.
GUARD_FRAMES: Final = 46
#: Original key used for a sample whose header says 255 ("unpitched") or another illegal value.
UNPITCHED_KEY: Final = 60

I16 = npt.NDArray[np.int16]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Samples:
    """The sample headers as arrays indexed by sample id (the shdr record index), and the data they point into.

    Offsets are frames into :attr:`data`; ``end`` and ``loop_end`` are one past the last frame, as in the
    spec.  ``usable[i]`` is False for a sample zones must not play; ``link[i]`` is the validated stereo
    partner (-1 for none).
    """

    names: tuple[str, ...]
    start: I64
    end: I64
    loop_start: I64
    loop_end: I64
    rate: I64
    original_key: I64
    correction: I64  # pitch correction in cents
    link: I64
    type: I64
    usable: npt.NDArray[np.bool_]
    data: I16  # 16-bit words (a view onto the file's mmap for SF2)
    low: Optional[U8]  # sm24 low bytes, or None
    compressed: bool  # decoded from SF3 Ogg Vorbis at load

    def __len__(self) -> int:
        return len(self.names)

    def frames(self, sample: int, start: Optional[int] = None, end: Optional[int] = None) -> npt.NDArray[np.float32]:
        """Frames ``[start, end)`` (default: all) of ``sample`` as float32 in [-1, 1), with sm24's low bytes if any."""
        a = int(self.start[sample]) if start is None else start
        b = int(self.end[sample]) if end is None else end
        words = self.data[a:b].astype(np.int32)
        if self.low is not None:
            return ((words << 8) | self.low[a:b]).astype(np.float32) / np.float32(1 << 23)
        return words.astype(np.float32) / np.float32(1 << 15)


def _sm24(buf: Buffer, layout: RiffLayout, smpl_bytes: int, report: LoadReport) -> Optional[U8]:
    span = layout.sm24
    if span is None:
        return None
    if layout.version < (2, 4):
        report.fix(
            "sm24_ignored",
            "sdta/sm24",
            None,
            f"sm24 in a version {layout.version[0]}.{layout.version[1]} file; ignored",
        )
        return None
    half = smpl_bytes // 2
    half += half % 2  # the chunk is padded to an even size
    if span.size != half:
        report.fix("sm24_ignored", "sdta/sm24", None, f"{span.size} bytes, not half of smpl ({half}); ignored")
        return None
    return np.frombuffer(buf, dtype=np.uint8, count=smpl_bytes // 2, offset=span.offset)


def _decode_vorbis(
    buf: Buffer, layout: RiffLayout, hydra: Hydra, path: str, report: LoadReport
) -> tuple[I16, I64, I64, I64, I64]:
    """Decode every Vorbis sample; its new (data, start, end, loop_start, loop_end) laid out like smpl."""
    try:
        import soundfile
    except ImportError as exc:  # pragma: no cover - soundfile is a dependency
        raise SoundFontError(path, "sdta/smpl", f"SF3 (Ogg Vorbis) samples need the soundfile package: {exc}") from exc
    assert layout.smpl is not None
    smpl = layout.smpl
    shdr = hydra.shdr[:-1]
    n = len(shdr)
    pieces: list[npt.NDArray[np.int16]] = []
    start = np.zeros(n, np.int64)
    end = np.zeros(n, np.int64)
    loop_start = np.zeros(n, np.int64)
    loop_end = np.zeros(n, np.int64)
    pos = 0
    guard = np.zeros(GUARD_FRAMES, np.int16)
    for i, rec in enumerate(shdr):
        kind = int(rec["type"])
        a, b = int(rec["start"]), int(rec["end"])
        if kind & OGG_VORBIS:
            if b > smpl.size or a >= b:
                # left zero-length: the validation below reports it
                start[i] = end[i] = pos
                continue
            raw = bytes(buf[smpl.offset + a : smpl.offset + b])
            try:
                pcm, _ = soundfile.read(io.BytesIO(raw), dtype="int16", always_2d=True)
            except Exception as exc:  # libsndfile reports bad streams with its own exception types
                report.fix(
                    "sample_unusable",
                    "pdta/shdr",
                    i,
                    f"sample {record_name(bytes(rec['name']))!r}: "
                    f"its Ogg Vorbis data does not decode ({exc}); sample ignored",
                )
                start[i] = end[i] = pos
                continue
            frames = np.ascontiguousarray(pcm[:, 0])
            start[i], end[i] = pos, pos + len(frames)
            loop_start[i] = pos + int(rec["loop_start"])
            loop_end[i] = pos + int(rec["loop_end"])
        else:
            # an uncompressed sample in an SF3 file keeps its 16-bit words (offsets in words)
            words = np.frombuffer(buf, np.int16, count=smpl.size // 2, offset=smpl.offset)
            if b > len(words) or a >= b:
                start[i] = end[i] = pos
                continue
            frames = words[a:b]
            start[i], end[i] = pos, pos + (b - a)
            loop_start[i] = pos + int(rec["loop_start"]) - a
            loop_end[i] = pos + int(rec["loop_end"]) - a
        pieces += [frames, guard]
        pos += len(frames) + GUARD_FRAMES
    data = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
    return data.astype(np.int16, copy=False), start, end, loop_start, loop_end


def read_samples(buf: Buffer, layout: RiffLayout, hydra: Hydra, path: str, report: LoadReport) -> Samples:
    """Map the sample data and check every sample header against it."""
    shdr = hydra.shdr[:-1]  # without the terminal EOS
    n = len(shdr)
    names = tuple(record_name(bytes(r)) for r in shdr["name"])
    kind = shdr["type"].astype(np.int64)
    compressed = bool(np.any(kind & OGG_VORBIS)) if n else False
    if layout.smpl is None:
        if n:
            raise SoundFontError(path, "sdta/smpl", f"missing: {n} samples are declared and there is no sample data")
        e = np.zeros(0, np.int64)
        return Samples((), e, e, e, e, e, e, e, e, e, np.zeros(0, np.bool_), np.zeros(0, np.int16), None, False)
    smpl = layout.smpl
    low: Optional[U8] = None
    if compressed:
        data, start, end, loop_start, loop_end = _decode_vorbis(buf, layout, hydra, path, report)
    else:
        if smpl.size % 2:
            report.fix("odd_sample_data", "sdta/smpl", None, f"{smpl.size} bytes, an odd count; last byte ignored")
        data = np.frombuffer(buf, dtype="<i2", count=smpl.size // 2, offset=smpl.offset)
        low = _sm24(buf, layout, smpl.size, report)
        start = shdr["start"].astype(np.int64)
        end = shdr["end"].astype(np.int64)
        loop_start = shdr["loop_start"].astype(np.int64)
        loop_end = shdr["loop_end"].astype(np.int64)
    data_end = len(data)

    rate = shdr["rate"].astype(np.int64)
    original_key = shdr["original_key"].astype(np.int64)
    correction = shdr["correction"].astype(np.int64)
    link = shdr["link"].astype(np.int64)
    usable = np.ones(n, np.bool_)
    loop_start = loop_start.copy()
    loop_end = loop_end.copy()

    for i in range(n):
        name = names[i]
        k = int(kind[i])
        what = f"sample {name!r}"
        if k & ROM:
            usable[i] = False
            report.fix("sample_unusable", "pdta/shdr", i, f"{what} is in ROM; sample ignored")
            continue
        if k & ~_KNOWN_FLAGS:
            usable[i] = False
            report.fix("sample_unusable", "pdta/shdr", i, f"{what} has unknown type flags {k:#06x}; sample ignored")
            continue
        if not k & _CHANNEL_FLAGS:
            kind[i] = k = MONO | (k & ~_CHANNEL_FLAGS)
            report.fix("sample_type", "pdta/shdr", i, f"{what} is neither mono, left nor right; taken as mono")
        a, b = int(start[i]), int(end[i])
        if b > data_end:
            usable[i] = False
            report.fix(
                "sample_unusable",
                "pdta/shdr",
                i,
                f"{what} ends at {b}, past the {data_end} frames of sample data; sample ignored",
            )
            continue
        if a >= b:
            usable[i] = False
            report.fix("sample_unusable", "pdta/shdr", i, f"{what} is empty (start {a}, end {b}); sample ignored")
            continue
        if rate[i] <= 0:
            usable[i] = False
            report.fix("sample_unusable", "pdta/shdr", i, f"{what} has sample rate 0; sample ignored")
            continue
        if original_key[i] > 127:
            original_key[i] = UNPITCHED_KEY
        ls, le = int(loop_start[i]), int(loop_end[i])
        if ls > le:
            ls, le = le, ls
            report.fix("loop_fixed", "pdta/shdr", i, f"{what} has its loop points reversed; swapped")
        if ls < a or ls > data_end:
            report.fix("loop_fixed", "pdta/shdr", i, f"{what}: loop start {ls} outside [{a}, {data_end}]; moved to {a}")
            ls = a
        if le < a or le > data_end:
            report.fix("loop_fixed", "pdta/shdr", i, f"{what}: loop end {le} outside [{a}, {data_end}]; moved to {b}")
            le = b
        loop_start[i], loop_end[i] = ls, le

    unlinked: list[int] = []
    for i in range(n):
        k = int(kind[i])
        if not usable[i] or not k & (LEFT | RIGHT):
            link[i] = -1
            continue
        j = int(link[i])
        partner = RIGHT if k & LEFT else LEFT
        if not (0 <= j < n and usable[j] and int(kind[j]) & partner):
            unlinked.append(i)
            link[i] = -1
    if unlinked:
        # Common (FluidR3_GM leaves every link at 0) and harmless: FluidSynth plays each side on its own anyway.
        first = unlinked[0]
        report.count("stereo_link", len(unlinked) - 1)
        report.fix(
            "stereo_link",
            "pdta/shdr",
            first,
            f"{len(unlinked)} left/right samples have no usable partner "
            f"(the first: {names[first]!r}); each is played alone",
        )
    return Samples(
        names,
        start,
        end,
        loop_start,
        loop_end,
        rate,
        original_key,
        correction,
        link,
        kind,
        usable,
        data,
        low,
        compressed,
    )
