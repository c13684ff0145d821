"""``mxfd render IN.mid OUT.wav``: offline rendering through the daemon's own render path.

Theory of operation
-------------------
Nothing here is a shortcut: the file travels exactly as a client's music
does in the daemon.  mido reads the file; its messages get presentation
times on an offline master clock (the file's time 0 is reference time 0)
and are packed into DMUS_EVENTHEADER buffers (:func:`mxfd.encode_buffer`),
which the :class:`~mxfd.core.unpacker.Unpacker` turns into kernel events
for the :class:`~mxfd.core.sequencer.Sequencer`; the sequencer releases
them one block ahead (the synth's schedule pre-fetch) to the
:class:`~mxfd.synth.Synth`, which renders into KS frames from a
:class:`~mxfd.core.frames.DefaultFrameAllocator`; each frame is converted
and appended to the WAV file.  Time is driven by the sample count: before
each block, the master time is the time of the block's first sample.

Buffers are fed a second ahead of the render position, so memory stays
bounded whatever the file's size; if the stream's allocator runs dry the
buffer simply waits for the next block (back-pressure).

The output is written to a temporary file beside the target and renamed
over it only when complete, so a failed or interrupted render never leaves
half a file where a good one was.  The WAV lasts the file's whole length
(to its last end-of-track) and continues until the last release and effect
tail have died away, so it ends in silence.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Optional

import numpy as np
import numpy.typing as npt

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.clock import UNITS_PER_SECOND, ManualClock
from mxfd.core.frames import FILE_64_BYTE_ALIGNMENT, AllocatorFraming, DefaultFrameAllocator
from mxfd.core.sequencer import Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import MAX_EVENT_SIZE, encode_buffer

#: Records per DMUS_EVENTHEADER buffer, and the longest time span one buffer covers.
RECORDS_PER_BUFFER = 128
BUFFER_SPAN = UNITS_PER_SECOND // 10
#: How far ahead of the render position buffers are unpacked.
LOOKAHEAD = UNITS_PER_SECOND
#: Longest tail rendered after the file's end before giving up waiting for silence.
MAX_TAIL_SECONDS = 60.0


class RenderError(Exception):
    """A one-line, user-facing reason the render cannot proceed."""


@dataclass
class Song:
    """A MIDI file flattened to timed messages on the master clock."""

    buffers: list[tuple[int, bytes]]  # (start_time, DMUS_EVENTHEADER data), in time order
    length: float  # seconds, to the last end-of-track
    events: int
    skipped: int  # messages too long for a record


def load_song(path: str) -> Song:
    """Read ``path`` with mido and pack its messages into render buffers."""
    import mido

    if not os.path.exists(path):
        raise RenderError(f"{path}: no such file")
    if os.path.isdir(path):
        raise RenderError(f"{path}: is a directory")
    if os.path.getsize(path) == 0:
        raise RenderError(f"{path}: empty file, not a MIDI file")
    try:
        mid = mido.MidiFile(path)
    except Exception as exc:  # mido raises many types for corrupt input; each becomes one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RenderError(f"{path}: not a valid MIDI file ({reason})") from None
    if mid.type == 2:
        raise RenderError(f"{path}: type 2 (asynchronous) MIDI files are not supported")
    if mid.ticks_per_beat <= 0:
        raise RenderError(f"{path}: invalid division (ticks per beat {mid.ticks_per_beat})")
    timed, length, skipped = _timed_messages(mid)
    if not timed:
        raise RenderError(f"{path}: contains no MIDI events")
    return Song(_pack(timed), length, len(timed), skipped)


def _timed_messages(mid: Any) -> tuple[list[tuple[int, int, bytes]], float, int]:
    """(pres_time_100ns, channel_group, bytes) for every message, and the length in seconds.

    Tracks are merged by tick (ties in track order, as mido merges); tempo
    changes from any track apply to all; a track's MIDI port (meta 0x21)
    selects its channel group (port p -> group p + 1).
    """
    tracks = mid.tracks
    tpb = int(mid.ticks_per_beat)
    raw: list[tuple[int, int, int, int, bytes]] = []
    tempos: list[tuple[int, int]] = []
    end_tick = 0
    skipped = 0
    for ti, track in enumerate(tracks):
        tick = 0
        port = 0
        for si, msg in enumerate(track):
            tick += msg.time
            if msg.is_meta:
                if msg.type == "set_tempo":
                    tempos.append((tick, msg.tempo))
                elif msg.type == "midi_port":
                    port = msg.port
                continue
            data = bytes(msg.bytes())
            if not data or len(data) > MAX_EVENT_SIZE:
                skipped += 1
                continue
            raw.append((tick, ti, si, port + 1, data))
        end_tick = max(end_tick, tick)
    raw.sort(key=lambda r: (r[0], r[1], r[2]))
    tempos.sort(key=lambda tt: tt[0])
    # Tick -> seconds, piecewise by tempo (microseconds per beat; 500000 until the first change).
    marks: list[tuple[int, float, int]] = [(0, 0.0, 500000)]
    for tick, tempo in tempos:
        t0, s0, tp = marks[-1]
        marks.append((tick, s0 + (tick - t0) * tp / (tpb * 1e6), tempo))

    def seconds(tick: int) -> float:
        lo, hi = 0, len(marks) - 1
        while lo < hi:
            mid_ = (lo + hi + 1) // 2
            if marks[mid_][0] <= tick:
                lo = mid_
            else:
                hi = mid_ - 1
        t0, s0, tp = marks[lo]
        return s0 + (tick - t0) * tp / (tpb * 1e6)

    timed = [(round(seconds(tick) * UNITS_PER_SECOND), group, data) for tick, _, _, group, data in raw]
    return timed, seconds(end_tick), skipped


def _pack(timed: list[tuple[int, int, bytes]]) -> list[tuple[int, bytes]]:
    """Cut the timed messages into DMUS_EVENTHEADER buffers, as a client would send them."""
    buffers: list[tuple[int, bytes]] = []
    k = 0
    n = len(timed)
    while k < n:
        start = timed[k][0]
        end = k
        size = 0
        while end < n and end - k < RECORDS_PER_BUFFER and timed[end][0] - start < BUFFER_SPAN:
            size += 24 + len(timed[end][2])
            if size > 512 * 1024 and end > k:
                break
            end += 1
        buffers.append(encode_buffer(timed[k:end]))
        k = end
    return buffers


# ---------------------------------------------------------------------------
# WAV output


class WavWriter:
    """Streams a stereo WAV: 16- or 24-bit PCM or 32-bit IEEE float; sizes patched on close."""

    FORMATS = {"pcm16": (1, 2), "pcm24": (1, 3), "float": (3, 4)}

    def __init__(self, f: BinaryIO, sample_rate: int, fmt: str, max_frames: int) -> None:
        if fmt not in self.FORMATS:
            raise ValueError(f"unknown sample format {fmt!r}")
        self.f = f
        self.fmt = fmt
        self.tag, self.width = self.FORMATS[fmt]
        self.rate = sample_rate
        self.frames = 0
        self._i32 = np.zeros((max_frames, 2), dtype=np.int32)
        self._f = np.zeros((max_frames, 2), dtype=np.float32)
        self._i16 = np.zeros((max_frames, 2), dtype=np.int16)
        self._write_header(0)

    def _write_header(self, frames: int) -> None:
        block_align = 2 * self.width
        data_size = frames * block_align
        if self.tag == 3:
            fmt_chunk = struct.pack("<HHIIHHH", 3, 2, self.rate, self.rate * block_align, block_align, 32, 0)
            fact = b"fact" + struct.pack("<II", 4, frames)
        else:
            fmt_chunk = struct.pack("<HHIIHH", 1, 2, self.rate, self.rate * block_align, block_align, 8 * self.width)
            fact = b""
        riff_size = 4 + 8 + len(fmt_chunk) + len(fact) + 8 + data_size
        header = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        header += b"fmt " + struct.pack("<I", len(fmt_chunk)) + fmt_chunk + fact
        header += b"data" + struct.pack("<I", data_size)
        self.f.seek(0)
        self.f.write(header)

    def write(self, audio: npt.NDArray[np.float32]) -> None:
        """Append float32 ``(n, 2)`` frames, converted to the file's format."""
        n = audio.shape[0]
        if self.fmt == "float":
            self.f.write(audio.tobytes())
        elif self.fmt == "pcm16":
            f = self._f[:n]
            np.clip(audio, -1.0, 1.0, out=f)
            np.multiply(f, 32767.0, out=f)
            np.rint(f, out=f)
            i16 = self._i16[:n]
            np.copyto(i16, f, casting="unsafe")
            self.f.write(i16.tobytes())
        else:
            f = self._f[:n]
            np.clip(audio, -1.0, 1.0, out=f)
            i32 = self._i32[:n]
            np.multiply(f, 8388607.0, out=f)
            np.rint(f, out=f)
            np.copyto(i32, f, casting="unsafe")
            self.f.write(i32.view(np.uint8).reshape(n * 2, 4)[:, :3].tobytes())
        self.frames += n

    def close(self) -> None:
        if self.frames * 2 * self.width % 2:
            self.f.write(b"\0")  # RIFF chunks are word aligned
        self._write_header(self.frames)
        self.f.flush()


# ---------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal's stderr."""

    def __init__(self, stream: IO[str], total_seconds: float, enabled: bool) -> None:
        self.stream = stream
        self.total = max(total_seconds, 1e-9)
        self.enabled = enabled
        self.started = time.monotonic()
        self._last = 0.0

    def update(self, seconds: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        frac = min(1.0, seconds / self.total)
        width = 30
        filled = int(frac * width)
        elapsed = now - self.started
        speed = seconds / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r[{bar}] {frac * 100:5.1f}%  {seconds:7.1f} / {self.total:.1f} s  {speed:5.1f}x ")
        self.stream.flush()

    def done(self, message: str) -> None:
        if self.enabled:
            self.stream.write("\r" + message.ljust(72) + "\n")
            self.stream.flush()


@dataclass
class RenderResult:
    frames: int
    seconds: float
    wall: float
    stats: dict[str, object]


@dataclass(frozen=True)
class SynthChoice:
    """Which synth renders: ``soundfont`` is a file path, or None for the built-in bank."""

    soundfont: Optional[str] = None
    gain_db: float = 0.0
    reverb: bool = True
    chorus: bool = True


def choose_soundfont(value: Optional[str]) -> Optional[str]:
    """The font file for ``--soundfont VALUE`` (None: the system's GM font if any), or None for the built-in bank."""
    from mxfd.synth.soundfont import resolve_soundfont

    return resolve_soundfont(value)


def make_synth(choice: SynthChoice, rate: int, polyphony: int, block: int) -> Any:
    """The synth miniport for ``choice``; a font that cannot be loaded raises RenderError (one line)."""
    if choice.soundfont is None:
        from mxfd.synth import Synth

        synth = Synth(rate, polyphony=polyphony, block_frames=block, effects=choice.reverb or choice.chorus)
        if not choice.reverb:
            synth.master.reverb = None
        if not choice.chorus:
            synth.master.chorus = None
        return synth
    from mxfd.synth.engine import SoundFontSynth
    from mxfd.synth.soundfont import SoundFontError, load_soundfont

    try:
        font = load_soundfont(choice.soundfont)
    except SoundFontError as exc:
        raise RenderError(str(exc)) from None
    return SoundFontSynth(
        font,
        rate,
        polyphony=polyphony,
        block_frames=block,
        gain_db=choice.gain_db,
        reverb=choice.reverb,
        chorus=choice.chorus,
    )


def render_file(
    song: Song,
    out: BinaryIO,
    *,
    rate: int = 48000,
    block: int = 128,
    fmt: str = "pcm16",
    polyphony: int = 256,
    progress: Optional[Progress] = None,
    synth_choice: SynthChoice = SynthChoice(),
) -> RenderResult:
    """Render ``song`` to ``out`` (a seekable binary file) through the full render path."""
    started = time.monotonic()
    synth = make_synth(synth_choice, rate, polyphony, block)
    # The SoundFont engine applies --gain itself; the built-in synth's output is scaled here.
    post_gain = 10.0 ** (synth_choice.gain_db / 20.0) if synth_choice.soundfont is None else 1.0
    allocator = Allocator(pool_size=1024, max_pool_size=1024 * 64)
    unpacker = Unpacker(allocator)
    sequencer = Sequencer(allocator, schedule_prefetch=synth.schedule_prefetch)
    unpacker.connect_output(sequencer)
    sequencer.connect_output(synth)
    frames = DefaultFrameAllocator(AllocatorFraming(4, block * 8, FILE_64_BYTE_ALIGNMENT))
    sink = synth.wave_sink
    clock = ManualClock(0)  # the offline master clock: the file's time 0 is reference time 0
    sink.sync_to_master(clock(), 0, start=True)
    writer = WavWriter(out, rate, fmt, block)
    song_frames = round(song.length * rate)
    limit = song_frames + int(MAX_TAIL_SECONDS * rate)
    buffers = song.buffers
    nb = 0
    total = 0
    while total < limit:
        clock.now = sink.sample_to_ref(total)  # master time moves with the samples rendered
        now = clock()
        while nb < len(buffers) and buffers[nb][0] <= now + LOOKAHEAD:
            start, data = buffers[nb]
            try:
                unpacker.unpack(data, start)
            except AllocatorExhausted:
                break  # back-pressure: events are still in flight; try again next block
            nb += 1
        sequencer.release(now)
        frame = synth.render_frame(frames)
        if frame is None:
            raise RuntimeError("the frame allocator has no free frame")
        audio = frames.audio_view(frame, 2)
        if post_gain != 1.0:
            np.multiply(audio, post_gain, out=audio)
        n = min(block, limit - total)
        ended = nb >= len(buffers) and sequencer.held == 0 and synth.idle
        if ended:
            # The sound ended within this block: keep it up to its last non-zero frame,
            # or up to the file's end if that is later.
            loud = np.flatnonzero(np.any(audio[:n] != 0.0, axis=1))
            n = min(n, max(song_frames - total, int(loud[-1]) + 1 if len(loud) else 0))
        writer.write(audio[:n])
        frames.free(frame)
        total += n
        if progress is not None:
            progress.update(total / rate)
        if ended and total >= song_frames:
            break
    writer.close()
    return RenderResult(total, total / rate, time.monotonic() - started, synth.stats())


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def main(args: argparse.Namespace) -> int:
    """Run ``mxfd render`` with parsed ``args``; returns the exit status."""
    prog = "mxfd render"
    from mxfd.synth.voices import MAX_POLYPHONY

    if not 8000 <= args.rate <= 192000:
        print(f"{prog}: --rate must be 8000..192000 Hz, got {args.rate}", file=sys.stderr)
        return 2
    if args.polyphony > MAX_POLYPHONY:
        print(f"{prog}: --polyphony must be at most {MAX_POLYPHONY}, got {args.polyphony}", file=sys.stderr)
        return 2
    choice = SynthChoice(
        choose_soundfont(getattr(args, "soundfont", None)),
        getattr(args, "gain", 0.0),
        getattr(args, "reverb", "on") == "on",
        getattr(args, "chorus", "on") == "on",
    )
    try:
        song = load_song(args.input)
    except RenderError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    target = os.path.abspath(args.output)
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        print(f"{prog}: {args.output}: is a directory", file=sys.stderr)
        return 1
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(target) + ".", suffix=".part")
    except OSError as exc:
        print(f"{prog}: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    show = _stderr_is_terminal() and not args.no_progress
    progress = Progress(sys.stderr, song.length, show)
    ok = False
    try:
        with os.fdopen(fd, "w+b") as f:
            result = render_file(
                song,
                f,
                rate=args.rate,
                block=args.block,
                fmt=args.format,
                polyphony=args.polyphony,
                progress=progress,
                synth_choice=choice,
            )
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
        ok = True
    except KeyboardInterrupt:
        progress.done(f"{prog}: interrupted; {args.output} not written")
        return 130
    except RenderError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"\n{prog}: cannot write {args.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        if not ok:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    speed = result.seconds / result.wall if result.wall > 0 else 0.0
    progress.done(
        f"{prog}: wrote {args.output}: {result.seconds:.2f} s, {args.rate} Hz {args.format}"
        f" in {result.wall:.1f} s ({speed:.1f}x real time)"
    )
    return 0
