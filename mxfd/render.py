"""``mxfd render IN.mid OUT``: offline rendering through the daemon's own render path.

Theory of operation
-------------------
Nothing here is a shortcut: the file travels exactly as a client's music
does in the daemon.  :mod:`mxfd.midifile` reads the file (the loader
``mxfd play`` uses too); its messages get presentation
times on an offline master clock (the file's time 0 is reference time 0)
and are packed into DMUS_EVENTHEADER buffers (:func:`mxfd.encode_buffer`),
which the :class:`~mxfd.core.unpacker.Unpacker` turns into kernel events
for the :class:`~mxfd.core.sequencer.Sequencer`; the sequencer releases
them one block ahead (the synth's schedule pre-fetch) to the
:class:`~mxfd.synth.Synth`, which renders into KS frames from a
:class:`~mxfd.core.frames.DefaultFrameAllocator`; each frame is converted
and appended to the output file.  Time is driven by the sample count: before
each block, the master time is the time of the block's first sample.

Buffers are fed a second ahead of the render position, so memory stays
bounded whatever the file's size; if the stream's allocator runs dry the
buffer simply waits for the next block (back-pressure).

The output's extension chooses its format: WAV is written here, FLAC, Ogg
Vorbis and MP3 by libsndfile (the soundfile package); integer samples are
made here for both, so a FLAC holds the very samples of the WAV.  Before
anything is rendered, the file's length is checked against
``--max-seconds`` (a corrupt delta time can ask for days) and the expected
size against the free space.  The output is written to a temporary file
beside the target and renamed over it only when complete, so a failed or
interrupted render (Ctrl-C, SIGTERM, SIGHUP) never leaves half a file where
a good one was.  The output lasts the file's whole length
(to its last end-of-track) and continues until the last release and effect
tail have died away, so it ends in silence.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, BinaryIO, Optional, Sequence, TypeVar

import numpy as np
import numpy.typing as npt

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.clock import UNITS_PER_SECOND, ManualClock
from mxfd.core.frames import FILE_64_BYTE_ALIGNMENT, AllocatorFraming, DefaultFrameAllocator
from mxfd.core.sequencer import Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import MAX_BUFFER_SIZE, encode_buffer, event_size
from mxfd.limits import DEFAULT_MAX_RENDER_SECONDS, MAX_POLYPHONY, RENDER_BLOCK
from mxfd.midifile import MidiFileError, read_midi_file
from mxfd.synth.resident import release_compiler_pages

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
    """A MIDI file as render buffers on the master clock."""

    buffers: list[tuple[int, bytes]]  # (start_time, DMUS_EVENTHEADER data), in time order
    length: float  # seconds, to the last end-of-track
    events: int
    skipped: int  # messages the render path cannot play (see mxfd.midifile)


def load_song(path: str) -> Song:
    """Read ``path`` with the shared loader and pack its records into render buffers.

    Raises :class:`~mxfd.midifile.MidiFileError` for a file that cannot be read.
    """
    song = read_midi_file(path)
    return Song(_pack(song.records), song.length, song.events, sum(song.skipped.values()))


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
            size += event_size(len(timed[end][2]))
            if size > MAX_BUFFER_SIZE // 2 and end > k:
                break
            end += 1
        buffers.append(encode_buffer(timed[k:end]))
        k = end
    return buffers


# ---------------------------------------------------------------------------
# Output: WAV written here, FLAC, Ogg Vorbis and MP3 through libsndfile


@dataclass(frozen=True)
class OutputFormat:
    """A file format ``mxfd render`` writes, chosen by the output's extension."""

    name: str  # as a message says it
    container: str  # libsndfile's format name; "WAV" is written by WavWriter
    subtypes: dict[str, str]  # --format -> libsndfile subtype; empty: the format's own coding
    bytes_per_second: Optional[int]  # upper estimate for compressed formats; None: PCM size
    rates: Optional[frozenset[int]] = None  # sample rates it can hold; None: any


#: Output formats by file name extension.
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    ".wav": OutputFormat("WAV", "WAV", {"pcm16": "PCM_16", "pcm24": "PCM_24", "float": "FLOAT"}, None),
    ".flac": OutputFormat("FLAC", "FLAC", {"pcm16": "PCM_16", "pcm24": "PCM_24"}, None),
    ".ogg": OutputFormat("Ogg Vorbis", "OGG", {}, 64_000),
    ".oga": OutputFormat("Ogg Vorbis", "OGG", {}, 64_000),
    ".mp3": OutputFormat(
        "MP3", "MP3", {}, 40_000, frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
    ),
}
IntT = TypeVar("IntT", np.int16, np.int32)

#: Bytes per stereo frame of each --format, for the free-space estimate.
FRAME_BYTES = {"pcm16": 4, "pcm24": 6, "float": 8}


def output_format(path: str) -> OutputFormat:
    """The format ``path``'s extension asks for; :class:`RenderError` if none is written."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in OUTPUT_FORMATS:
        known = ", ".join(OUTPUT_FORMATS)
        said = f"extension {ext!r}" if ext else "no extension"
        raise RenderError(f"{said}; mxfd render writes {known}")
    return OUTPUT_FORMATS[ext]


def expected_bytes(fmt: OutputFormat, sample_format: str, seconds: float, rate: int) -> int:
    """About how many bytes the output of ``seconds`` takes (PCM size for lossless formats)."""
    if fmt.bytes_per_second is not None:
        return int(seconds * fmt.bytes_per_second) + 4096
    return int(seconds * rate) * FRAME_BYTES[sample_format] + 4096


class AudioWriter:
    """Where rendered frames go: ``write`` float32 ``(n, 2)`` frames, then ``close``."""

    frames = 0

    def write(self, audio: npt.NDArray[np.float32]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SoundFileWriter(AudioWriter):
    """Streams stereo audio through libsndfile (the soundfile package): FLAC, Ogg Vorbis, MP3.

    libsndfile writes to the file descriptor itself, so a write error (a full
    disk) comes back as its error, never from inside a Python callback.
    """

    def __init__(self, f: BinaryIO, sample_rate: int, container: str, subtype: Optional[str], max_frames: int) -> None:
        import soundfile

        self._error = soundfile.LibsndfileError
        target: Any = f
        try:
            target = f.fileno()
        except (AttributeError, io.UnsupportedOperation):
            pass  # an in-memory file: libsndfile writes through its methods
        try:
            self._file = soundfile.SoundFile(
                target, "w", samplerate=sample_rate, channels=2, format=container, subtype=subtype, closefd=False
            )
        except self._error as exc:
            raise RenderError(f"libsndfile cannot write it: {exc.error_string}") from None
        self._subtype = subtype
        self._convert = SampleConverter(max_frames)
        self.frames = 0

    def write(self, audio: npt.NDArray[np.float32]) -> None:
        n = audio.shape[0]
        # Integer samples are made here, so a FLAC holds the very samples of the WAV of the same --format.
        data: npt.NDArray[Any]
        if self._subtype == "PCM_16":
            data = self._convert.pcm16(audio)
        elif self._subtype == "PCM_24":
            data = self._convert.pcm24(audio)
            np.left_shift(data, 8, out=data)  # libsndfile takes 24-bit samples in the top of an int32
        else:
            data = self._convert.clipped(audio)  # libsndfile wraps, not clips, what is over full scale
        try:
            self._file.write(data)
        except self._error as exc:
            raise RenderError(f"libsndfile: {exc.error_string}") from None
        self.frames += n

    def close(self) -> None:
        try:
            self._file.close()
        except self._error as exc:
            raise RenderError(f"libsndfile: {exc.error_string}") from None


class SampleConverter:
    """Float32 frames to the integer samples of pcm16 or pcm24, rounded and clipped one way for every format.

    Scratch arrays are sized once for ``max_frames``, so converting allocates nothing.
    """

    def __init__(self, max_frames: int) -> None:
        self._f = np.zeros((max_frames, 2), dtype=np.float32)
        self._i16 = np.zeros((max_frames, 2), dtype=np.int16)
        self._i32 = np.zeros((max_frames, 2), dtype=np.int32)

    def clipped(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        f = self._f[: audio.shape[0]]
        np.clip(audio, -1.0, 1.0, out=f)
        return f

    def pcm16(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
        return self._scaled(audio, 32767.0, self._i16)

    def pcm24(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.int32]:
        """24-bit values, in int32."""
        return self._scaled(audio, 8388607.0, self._i32)

    def _scaled(self, audio: npt.NDArray[np.float32], full_scale: float, into: npt.NDArray[IntT]) -> npt.NDArray[IntT]:
        f = self.clipped(audio)
        np.multiply(f, full_scale, out=f)
        np.rint(f, out=f)
        out = into[: audio.shape[0]]
        np.copyto(out, f, casting="unsafe")
        return out


class WavWriter(AudioWriter):
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
        self._convert = SampleConverter(max_frames)
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
            self.f.write(self._convert.pcm16(audio).tobytes())
        else:
            i32 = self._convert.pcm24(audio)
            self.f.write(i32.view(np.uint8).reshape(n * 2, 4)[:, :3].tobytes())
        self.frames += n

    def close(self) -> None:
        if self.frames * 2 * self.width % 2:
            self.f.write(b"\0")  # RIFF chunks are word aligned
        self._write_header(self.frames)
        self.f.flush()


def check_output(fmt: OutputFormat, sample_format: Optional[str], rate: int) -> None:
    """Whether ``fmt`` can hold ``sample_format`` (None: the default) at ``rate``; :class:`RenderError` if not."""
    if sample_format is not None and sample_format not in fmt.subtypes:
        if fmt.subtypes:
            raise RenderError(f"{fmt.name} holds {' or '.join(fmt.subtypes)} samples, not --format {sample_format}")
        raise RenderError(f"{fmt.name} has its own coding: --format is for WAV and FLAC")
    if fmt.rates is not None and rate not in fmt.rates:
        raise RenderError(f"{fmt.name} holds only {', '.join(map(str, sorted(fmt.rates)))} Hz, not --rate {rate}")
    if fmt.container != "WAV":
        try:
            import soundfile  # noqa: F401
        except (ImportError, OSError) as exc:  # OSError: soundfile found no libsndfile to load
            raise RenderError(f"{fmt.name} is written by the soundfile package, which did not load ({exc})") from None


def open_writer(
    out: BinaryIO, fmt: OutputFormat, sample_format: str, rate: int, max_frames: int
) -> AudioWriter:
    """A writer of ``fmt`` on the seekable file ``out`` (``sample_format`` is ignored where the format codes its own).

    Raises :class:`RenderError` if libsndfile cannot write it; :func:`check_output` says why beforehand.
    """
    if fmt.container == "WAV":
        return WavWriter(out, rate, sample_format, max_frames)
    return SoundFileWriter(out, rate, fmt.container, fmt.subtypes.get(sample_format), max_frames)


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


class BadSoundFont(RenderError):
    """The SoundFont chosen cannot be loaded (bad input, as a bad MIDI file is)."""


@dataclass(frozen=True)
class SynthChoice:
    """Which synth renders: ``soundfont`` is a file path, or None for the built-in bank."""

    soundfont: Optional[str] = None
    gain_db: float = 0.0
    reverb: bool = True
    chorus: bool = True
    font: Any = None  # ``soundfont`` already loaded (a SoundFont), or None to load it
    #: With more than one font: every font of the stack in the order it is searched (None: the built-in bank);
    #: ``soundfont`` is the first and ``font`` plays them all.
    stack: tuple[Optional[str], ...] = ()


def choose_soundfont(value: Optional[str]) -> Optional[str]:
    """The font file for ``--soundfont VALUE`` (None: the system's GM font if any), or None for the built-in bank."""
    from mxfd.synth.soundfont import resolve_soundfont

    return resolve_soundfont(value)


def load_font(path: str) -> Any:
    """The SoundFont at ``path``; :class:`BadSoundFont` (one line) for a file that cannot be loaded."""
    from mxfd.synth.soundfont import SoundFontError, load_soundfont

    try:
        return load_soundfont(path)
    except SoundFontError as exc:
        raise BadSoundFont(str(exc)) from None


def choice_font(choice: SynthChoice, rate: int) -> Any:
    """The font ``choice`` plays: the one already loaded, its file's, or the built-in bank's at ``rate``.

    The built-in bank is a SoundFont too (:mod:`mxfd.synth.builtin_font`), built once and then mapped
    from the cache; a file that cannot be loaded raises :class:`BadSoundFont` (one line).
    """
    if choice.font is not None:
        return choice.font
    if choice.soundfont is None:
        from mxfd.synth.builtin_font import builtin_soundfont

        return builtin_soundfont(rate)
    return load_font(choice.soundfont)


def stacked_choice(
    members: Sequence[tuple[Optional[str], Any]], gain_db: float, reverb: bool, chorus: bool
) -> SynthChoice:
    """The choice playing the loaded ``members`` (path or None for the built-in bank, font) as one stack."""
    from mxfd.synth.soundfont.stack import stack_soundfonts

    paths = tuple(path for path, _ in members)
    font = stack_soundfonts([font for _, font in members])
    return SynthChoice(paths[0], gain_db, reverb, chorus, font, paths if len(paths) > 1 else ())


def default_threads() -> int:
    """Render threads by default: two where this process may run on two CPUs or more, else one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return 2 if cpus >= 2 else 1


def make_synth(choice: SynthChoice, rate: int, polyphony: int, block: int, threads: int = 1) -> Any:
    """The synth miniport for ``choice``; a font that cannot be loaded raises RenderError (one line)."""
    from mxfd.synth.engine import SoundFontSynth

    return SoundFontSynth(
        choice_font(choice, rate),
        rate,
        polyphony=polyphony,
        block_frames=block,
        gain_db=choice.gain_db,
        reverb=choice.reverb,
        chorus=choice.chorus,
        threads=threads,
    )



def render_file(
    song: Song,
    out: BinaryIO,
    *,
    rate: int = 48000,
    block: int = RENDER_BLOCK,
    fmt: str = "pcm16",
    polyphony: int = 256,
    progress: Optional[Progress] = None,
    output: Optional[OutputFormat] = None,
    synth_choice: SynthChoice = SynthChoice(),
    threads: int = 1,
) -> RenderResult:
    """Render ``song`` to ``out`` (a seekable binary file) through the full render path.

    ``output`` is the file format (WAV when None); ``fmt`` its sample format; ``synth_choice`` the synth;
    ``threads`` 2 shares the voices with a second core (:mod:`mxfd.synth.engine.shared`).
    """
    started = time.monotonic()
    synth = make_synth(synth_choice, rate, polyphony, block, threads)
    release_compiler_pages()  # before the samples the first notes touch come in (mxfd.synth.resident)
    try:
        return _render(song, out, synth, rate, block, fmt, progress, output, started)
    finally:
        synth.close()


def _render(
    song: Song,
    out: BinaryIO,
    synth: Any,
    rate: int,
    block: int,
    fmt: str,
    progress: Optional[Progress],
    output: Optional[OutputFormat],
    started: float,
) -> RenderResult:
    allocator = Allocator(pool_size=1024, max_pool_size=1024 * 64)
    unpacker = Unpacker(allocator)
    sequencer = Sequencer(allocator, schedule_prefetch=synth.schedule_prefetch)
    unpacker.connect_output(sequencer)
    sequencer.connect_output(synth)
    frames = DefaultFrameAllocator(AllocatorFraming(4, block * 8, FILE_64_BYTE_ALIGNMENT))
    sink = synth.wave_sink
    clock = ManualClock(0)  # the offline master clock: the file's time 0 is reference time 0
    sink.sync_to_master(clock(), 0, start=True)
    writer = open_writer(out, output or OUTPUT_FORMATS[".wav"], fmt, rate, block)
    song_frames = round(song.length * rate)
    limit = song_frames + int(MAX_TAIL_SECONDS * rate)
    buffers = song.buffers
    nb = 0
    total = 0
    compiler_released = False
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
        if not compiler_released and not synth.idle:
            # Every compiled function the render calls is loaded by now (the first loads, and the
            # helper thread's start, map some of the compiler's pages back).
            release_compiler_pages()
            compiler_released = True
        audio = frames.audio_view(frame, 2)
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


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: stop rendering and clean up, as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated(signum)


def _said(progress: Progress, message: str) -> None:
    """``message`` on stderr, ending the progress line if one is drawn."""
    if progress.enabled:
        progress.done(message)
    else:
        print(message, file=sys.stderr)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds:.1f} s"


def main(args: argparse.Namespace) -> int:
    """Run ``mxfd render`` with parsed ``args``; returns the exit status.

    Exit status 2 for bad input (options, the MIDI file, the output's format),
    1 when the output cannot be written, 130 on Ctrl-C, 128 + n on signal n.
    With ``--out-dir`` every file is rendered in this one process (the font
    is loaded and the engine compiled once); a file that fails is reported
    and the others still render, and the status is 1 if any failed.
    """
    prog = "mxfd render"
    if not 8000 <= args.rate <= 192000:
        print(f"{prog}: --rate must be 8000..192000 Hz, got {args.rate}", file=sys.stderr)
        return 2
    if args.polyphony > MAX_POLYPHONY:
        print(f"{prog}: --polyphony must be at most {MAX_POLYPHONY}, got {args.polyphony}", file=sys.stderr)
        return 2
    entries = getattr(args, "soundfont", None) or [None]
    try:
        jobs = render_jobs(args.paths, getattr(args, "out_dir", None))
        # once for every file of a batch, and before any output is opened: a bad font is bad input
        members = []
        for path in map(choose_soundfont, entries):
            members.append((path, choice_font(SynthChoice(path), args.rate)))
        choice = stacked_choice(
            members,
            getattr(args, "gain", 0.0),
            getattr(args, "reverb", "on") == "on",
            getattr(args, "chorus", "on") == "on",
        )
    except RenderError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if len(jobs) == 1:
        return render_one(args, choice, *jobs[0])
    failed: list[str] = []
    for source, target in jobs:
        status = render_one(args, choice, source, target)
        if status >= 128:  # Ctrl-C or a signal: the whole batch stops
            return status
        if status:
            failed.append(source)
    done = len(jobs) - len(failed)
    print(f"{prog}: {done} of {len(jobs)} files rendered into {args.out_dir}"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def render_jobs(paths: list[str], out_dir: Optional[str]) -> list[tuple[str, str]]:
    """(MIDI file, output) pairs: ``IN.mid OUT``, or with ``out_dir`` each ``IN.mid`` to ``out_dir/NAME.wav``.

    Raises :class:`RenderError` for a call that names no job, or two inputs that would write one output.
    """
    if out_dir is None:
        if len(paths) != 2:
            raise RenderError("give IN.mid OUT, or --out-dir DIR and the MIDI files to render")
        return [(paths[0], paths[1])]
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise RenderError(f"--out-dir {out_dir}: not a directory")
    jobs: dict[str, str] = {}
    for path in paths:
        target = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0] + ".wav")
        if target in jobs:
            raise RenderError(f"{jobs[target]} and {path} would both be written to {target}")
        jobs[target] = path
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"--out-dir {out_dir}: {exc.strerror or exc}") from None
    return [(source, target) for target, source in jobs.items()]


def render_one(args: argparse.Namespace, choice: SynthChoice, source: str, destination: str) -> int:
    """Render ``source`` to ``destination`` with the options of ``args``; the exit status of this one file."""
    prog = "mxfd render"
    max_seconds = getattr(args, "max_seconds", None) or DEFAULT_MAX_RENDER_SECONDS
    sample_format = getattr(args, "format", None)
    try:
        output = output_format(destination)
        check_output(output, sample_format, args.rate)
    except RenderError as exc:
        print(f"{prog}: cannot write {destination}: {exc}", file=sys.stderr)
        return 2
    if sample_format is None:
        sample_format = "pcm16"
    try:
        song = load_song(source)
    except MidiFileError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if song.length > max_seconds:
        print(
            f"{prog}: {source} lasts {_hours(song.length)}, longer than --max-seconds {max_seconds:g}"
            f" ({_hours(max_seconds)}); give a larger --max-seconds to render it",
            file=sys.stderr,
        )
        return 2
    target = os.path.abspath(destination)
    directory = os.path.dirname(target)
    if os.path.isdir(target):
        print(f"{prog}: cannot write {destination}: is a directory", file=sys.stderr)
        return 1
    need = expected_bytes(output, sample_format, song.length + 1.0, args.rate)
    try:
        st = os.statvfs(directory)
    except OSError as exc:
        print(f"{prog}: cannot write {destination}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    free = st.f_bavail * st.f_frsize
    if need > free:
        print(
            f"{prog}: cannot write {destination}: {_hours(song.length)} of {output.name} needs about"
            f" {need / 1e6:.1f} MB and {directory} has {free / 1e6:.1f} MB free",
            file=sys.stderr,
        )
        return 1
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(target) + ".", suffix=".part")
    except OSError as exc:
        print(f"{prog}: cannot write {destination}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    show = _stderr_is_terminal() and not args.no_progress
    progress = Progress(sys.stderr, song.length, show)
    ok = False
    handlers: dict[int, Any] = {}
    try:
        if threading.current_thread() is threading.main_thread():  # only there can handlers be set
            handlers = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)}
        with os.fdopen(fd, "w+b") as f:
            result = render_file(
                song,
                f,
                rate=args.rate,
                block=args.block,
                fmt=sample_format,
                polyphony=args.polyphony,
                progress=progress,
                output=output,
                synth_choice=choice,
                threads=getattr(args, "threads", None) or default_threads(),
            )
        # Renamed into place, never synced: no reader sees a part-written file, and a render that a power
        # cut loses is rendered again (syncing a 30 s render's 6 MB took a tenth of its start-up).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
        ok = True
    except KeyboardInterrupt:
        _said(progress, f"{prog}: interrupted; {destination} not written")
        return 130
    except _Terminated as exc:
        _said(progress, f"{prog}: terminated by signal {exc.signum}; {destination} not written")
        return 128 + exc.signum
    except BadSoundFont as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except RenderError as exc:
        print(f"\n{prog}: cannot write {destination}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"\n{prog}: cannot write {destination}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        for sig, old in handlers.items():
            signal.signal(sig, old)
        if not ok:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
    speed = result.seconds / result.wall if result.wall > 0 else 0.0
    progress.done(
        f"{prog}: wrote {destination}: {result.seconds:.2f} s, {args.rate} Hz {output.name}"
        f"{' ' + sample_format if output.subtypes else ''} in {result.wall:.1f} s ({speed:.1f}x real time)"
    )
    return 0
