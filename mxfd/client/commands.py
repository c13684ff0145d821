"""``mxfd play``, ``record``, ``status``, ``panic`` and ``reload``: the daemon's clients on the command line.

Theory of operation
-------------------
``play`` reads a MIDI file with the loader ``mxfd render`` uses too
(:mod:`mxfd.midifile`: every tempo change honoured, SMPTE time, a long SysEx
split into records), fixes time zero a little
after the daemon's render latency on its master clock, and then streams with
a bounded look-ahead: every few tens of milliseconds it sends, as DMUS_EVENTHEADER
buffers, the events due within the next :data:`LOOKAHEAD` seconds and no
more, so a long file never sits in the daemon whole and Ctrl-C is heard at
once.  On Ctrl-C it asks the daemon to ``stop`` (queued events dropped, this
client's held notes and pedals released); at the end it waits until the last
event has played before it disconnects (a disconnect drops what is queued).
Before any of that it reads the daemon's status: with its audio output down
nothing would be heard, and ``play`` says why and refuses unless ``--force``.

``record`` subscribes to the capture buffers of the inputs (or asks for the
daemon's history ring with ``--last``), decodes them, and writes a type 1
standard MIDI file: a tempo track, then one track per source, ticks at
``--ppq`` (:data:`RECORD_PPQN`) per quarter note at ``--bpm``
(:data:`RECORD_BPM`) computed from each event's arrival time stamp
(absolute, so rounding never accumulates).  SysEx is
kept whole, reassembled from its chunks; clock, active sensing and system
common messages have no place in a standard MIDI file and are counted and
reported, not silently dropped.  Ctrl-C ends the recording and the file is
still written completely (to a temporary name, then renamed).  The output
path is checked before anything is recorded; if the file still cannot be
written at the end (its directory went away, the disk filled up), the take
goes to a fresh file in ``$XDG_RUNTIME_DIR`` (else ``/tmp``) and ``record``
says where: a take is never lost for want of a path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, TextIO

from mxfd.client.client import Captured, Client, ClientError, ServerError
from mxfd.client.protocol import HelloRefused
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.wire import DMUS_EVENT_STRUCTURED, BadBufferError, decode_buffer
from mxfd.midifile import MidiFileError, read_midi_file

#: How far ahead of its time an event is sent, seconds.
LOOKAHEAD = 0.5
#: How often ``play`` tops the daemon up, seconds.
TOP_UP = 0.05
#: Extra delay before a file's first event, on top of the render latency, seconds.
LEAD = 0.1
#: Ticks per quarter note in recorded files by default (≥ 960; at 120 bpm a tick is 0.26 ms).
RECORD_PPQN = 1920
#: Tempo of recorded files by default, beats per minute.
RECORD_BPM = 120.0
#: The same tempo as a standard MIDI file has it, µs per quarter note.
RECORD_TEMPO = round(60_000_000 / RECORD_BPM)
#: How long ``record`` keeps reading after it stops, for buffers still on their way, seconds.
RECORD_DRAIN = 0.05


def main(args: argparse.Namespace) -> int:
    """Run ``mxfd play``, ``mxfd record``, ``mxfd status``, ``mxfd panic`` or ``mxfd reload``."""
    from mxfd.daemon.config import ConfigError

    try:
        if args.command == "play":
            return play(args)
        if args.command == "record":
            return record(args)
        if args.command == "status":
            return status(args)
        if args.command == "panic":
            return panic(args)
        if args.command == "reload":
            return reload(args)
    except (ClientError, HelloRefused, ServerError) as e:
        print(f"mxfd {args.command}: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:
        print(f"mxfd {args.command}: config error: {e}", file=sys.stderr)
        return 2
    raise ValueError(f"not a client command: {args.command}")


def socket_path(args: argparse.Namespace) -> str:
    """The daemon's socket: ``--socket``, else ``[client] socket`` of the config (``--config`` or the default file).

    A bad config file raises :class:`~mxfd.daemon.config.ConfigError`; a
    missing default file just means the default socket.
    """
    if getattr(args, "socket", None):
        return str(args.socket)
    from mxfd.daemon.config import load

    return load(getattr(args, "config", None)).client.socket


# -- play ---------------------------------------------------------------------------------


class _Progress:
    """A one-line progress display on a terminal (nothing when stderr is not one)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label = label
        self.stream = stream
        self.enabled = stream.isatty()
        self._last = 0.0

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        t = time.monotonic()
        if force or t - self._last >= 0.2:
            self._last = t
            self.stream.write(f"\r{self.label}: {text}\x1b[K")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _bar(done: float, total: float, width: int = 30) -> str:
    frac = 0.0 if total <= 0 else min(1.0, max(0.0, done / total))
    n = int(frac * width)
    return "[" + "#" * n + "-" * (width - n) + "]"


class _DaemonClock:
    """The daemon's master time, read once and then followed with the local monotonic clock."""

    def __init__(self, client: Client) -> None:
        t0 = time.monotonic_ns()
        now, self.latency = client.time()
        t1 = time.monotonic_ns()
        self.offset = now - (t0 + t1) // 200

    def __call__(self) -> int:
        return time.monotonic_ns() // 100 + self.offset


def why_silent(st: dict[str, Any]) -> Optional[str]:
    """Why the daemon whose status this is plays into silence (None: its audio output runs)."""
    audio = st.get("audio")
    if not isinstance(audio, dict):
        return None  # a daemon that reports no audio part at all: nothing to judge by
    state = audio.get("state")
    if state in (None, "running"):
        return None
    if state == "none":
        return "the daemon has no audio output"
    message = audio.get("message") or audio.get("last_error")
    return f"the daemon's audio output is {state}" + (f" ({message})" if message else "")


def play(args: argparse.Namespace) -> int:
    try:
        song = read_midi_file(args.file)
    except MidiFileError as e:
        print(f"mxfd play: {e}", file=sys.stderr)
        return 2
    events = song.records
    progress = _Progress(f"mxfd play {os.path.basename(args.file)}")
    with Client(socket_path(args), name="mxfd-play") as client:
        silence = why_silent(client.status())
        if silence is not None:
            if not args.force:
                print(f"mxfd play: nothing would be heard: {silence}; not playing (--force plays anyway)",
                      file=sys.stderr)
                return 3
            print(f"mxfd play: nothing will be heard: {silence}; playing anyway (--force)", file=sys.stderr)
        client.open_playback(os.path.basename(args.file))
        clock = _DaemonClock(client)
        t0 = clock() + clock.latency + int(LEAD * UNITS_PER_SECOND)
        span = song.length
        # A loop shorter than a top-up would put thousands of passes in one batch: 0.1 s at least.
        loop_len = int(max(span, 0.1) * UNITS_PER_SECOND) if args.loop and span > 0 else 0
        i = 0
        base = t0  # master time of the file's second zero, this pass
        last = t0
        with _Interrupt() as stop:
            while not stop.requested:
                horizon = clock() + clock.latency + int(LOOKAHEAD * UNITS_PER_SECOND)
                batch: list[tuple[int, int, bytes]] = []
                while True:
                    if i == len(events):
                        if not loop_len:
                            break
                        i = 0
                        base += loop_len
                    pres = base + events[i][0]
                    if pres > horizon:
                        break
                    batch.append((pres, 1, events[i][2]))
                    last = pres
                    i += 1
                if batch:
                    client.play(batch)
                played = (clock() - clock.latency - t0) / UNITS_PER_SECOND
                if loop_len:
                    progress.show(f"{played % span:6.1f} / {span:.1f} s (looping, Ctrl-C stops)")
                else:
                    progress.show(f"{min(played, span):6.1f} / {span:.1f} s {_bar(played, span)}")
                if (i == len(events) and not loop_len) or client.errors:
                    break
                time.sleep(TOP_UP)
            # wait until the last event has been rendered: a disconnect would drop what is queued
            end = last + clock.latency + int(0.05 * UNITS_PER_SECOND)
            while not stop.requested and not client.errors and clock() < end:
                progress.show(f"{span:6.1f} / {span:.1f} s {_bar(1, 1)}")
                time.sleep(TOP_UP)
            while not stop.requested and not client.errors and client.sync()["pending"]:
                time.sleep(0.01)
            if stop.requested:
                client.stop()
                progress.done()
                print("mxfd play: stopped, all notes off", file=sys.stderr)
                return 130
        progress.show(f"{span:6.1f} / {span:.1f} s {_bar(1, 1)}", force=True)
        progress.done()
        for err in client.errors:
            print(f"mxfd play: the daemon refused buffer {err.get('buffer')}: {err.get('reason')} "
                  f"(byte {err.get('offset')})", file=sys.stderr)
        return 1 if client.errors else 0


# -- record ------------------------------------------------------------------------------


@dataclass
class Recording:
    """Decoded capture buffers, per source, ready to become a standard MIDI file."""

    tracks: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    _sysex: dict[str, tuple[int, bytearray]] = field(default_factory=dict)

    def add(self, source: str, start_time: int, data: bytes, until: Optional[int] = None) -> int:
        """Decode one capture buffer; returns the number of messages kept."""
        try:
            records = decode_buffer(data, start_time)
        except BadBufferError as e:
            self._skip(f"malformed capture buffer ({e})")
            return 0
        track = self.tracks.setdefault(source, [])
        kept = 0
        for pres, _group, flags, msg in records:
            if until is not None and pres > until:
                continue
            if flags & DMUS_EVENT_STRUCTURED:
                status = msg[0]
                if status >= 0xF8:
                    self._skip("real-time (clock, active sensing...)")
                elif status >= 0xF0:
                    self._skip("system common")
                elif max(msg[1:], default=0) >= 0x80:
                    self._skip("malformed (a data byte with bit 7 set)")
                else:
                    track.append((pres, bytes(msg)))
                    kept += 1
                continue
            # unstructured: SysEx, possibly in chunks (first chunk starts F0, last ends F7)
            pending = self._sysex.get(source)
            if msg[:1] == b"\xf0":
                if pending is not None:
                    self._skip("SysEx without its end (F7)")
                pending = (pres, bytearray(msg))
            elif pending is not None:
                pending[1].extend(msg)
            else:
                self._skip("stray SysEx continuation")
                continue
            if pending[1][-1:] == b"\xf7":
                self._sysex.pop(source, None)
                if max(pending[1][1:-1], default=0) >= 0x80:
                    self._skip("malformed SysEx (a byte with bit 7 set inside)")
                    continue
                track.append((pending[0], bytes(pending[1])))
                kept += 1
            else:
                self._sysex[source] = pending
        return kept

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    @property
    def events(self) -> int:
        return sum(len(t) for t in self.tracks.values())

    def write(self, path: str, ppqn: int = RECORD_PPQN, tempo: int = RECORD_TEMPO) -> None:
        """Write a type 1 standard MIDI file: a tempo track, then one track per source.

        Tick 0 is the first recorded event; every tick is computed from the
        absolute arrival time, so rounding never accumulates.
        """
        import mido

        mid = mido.MidiFile(type=1, ticks_per_beat=ppqn)
        meta = mido.MidiTrack()
        meta.append(mido.MetaMessage("track_name", name="mxfd record", time=0))
        meta.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
        meta.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
        meta.append(mido.MetaMessage("end_of_track", time=0))
        mid.tracks.append(meta)
        firsts = [t[0][0] for t in self.tracks.values() if t]
        t0 = min(firsts) if firsts else 0
        units_per_tick = tempo * 10 / ppqn  # tempo is µs per quarter; master time is 100 ns
        for source, events in self.tracks.items():
            if not events:
                continue
            track = mido.MidiTrack()
            track.append(mido.MetaMessage("track_name", name=source, time=0))
            prev = 0
            for pres, msg in sorted(events, key=lambda e: e[0]):  # stable: equal times keep arrival order
                tick = int(round((pres - t0) / units_per_tick))
                track.append(mido.Message.from_bytes(msg, time=tick - prev))
                prev = tick
            track.append(mido.MetaMessage("end_of_track", time=0))
            mid.tracks.append(track)
        tmp = f"{path}.part"
        try:
            mid.save(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a half-written .part is nobody's file
            raise


def tempo_of(bpm: float) -> int:
    """A tempo in beats per minute as a standard MIDI file has it: µs per quarter note."""
    return int(round(60_000_000 / bpm))


def output_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot take a recording (None: it can), found before anything is recorded."""
    if os.path.isdir(path):
        return f"{path} is a directory; name a file in it, e.g. {os.path.join(path, 'take.mid')}"
    if path.endswith(os.sep):
        return f"{path} ends in {os.sep}: name a file, e.g. {path}take.mid"
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        return f"no directory {folder} to write {os.path.basename(path)} in"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write in {folder} (permission denied)"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"cannot overwrite {path} (permission denied)"
    return None


def record(args: argparse.Namespace) -> int:
    rec = Recording()
    problem = output_problem(args.out)
    if problem is not None:
        print(f"mxfd record: {problem}", file=sys.stderr)
        return 2
    pattern: Optional[str] = args.port
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            print(f"mxfd record: bad --port pattern {pattern!r}: {e}", file=sys.stderr)
            return 2
    with Client(socket_path(args), name="mxfd-record") as client:
        if args.last is not None:
            if args.last > 300:
                print("mxfd record: --last is at most 300 seconds (the daemon keeps 5 minutes)", file=sys.stderr)
                return 2
            if args.seconds is not None:
                print("mxfd record: --last and --seconds do not go together", file=sys.stderr)
                return 2
            for cap in client.history(args.last):
                if pattern is None or re.search(pattern, cap.source):
                    rec.add(cap.source, cap.start_time, cap.data)
        else:
            _record_live(client, rec, pattern, args.seconds)
    return _finish(rec, args.out, ppqn=args.ppq, tempo=tempo_of(args.bpm))


def _record_live(client: Client, rec: Recording, pattern: Optional[str], seconds: Optional[float]) -> None:
    progress = _Progress("mxfd record")
    client.subscribe(pattern)
    now, _ = client.time()
    started = time.monotonic()
    until = now + int(seconds * UNITS_PER_SECOND) if seconds is not None else None
    end = started + seconds if seconds is not None else None
    with _Interrupt() as stop:
        while not stop.requested and (end is None or time.monotonic() < end):
            wait = 0.2 if end is None else max(0.0, min(0.2, end - time.monotonic()))
            cap = client.receive(wait)
            if cap is not None:
                rec.add(cap.source, cap.start_time, cap.data, until)
            elapsed = time.monotonic() - started
            progress.show(f"{elapsed:6.1f} s, {rec.events} events from {len(rec.tracks)} source(s) (Ctrl-C stops)")
        if stop.requested:
            until = client.time()[0]
        # buffers stamped before the end may still be on their way (the packer completes within 1 ms)
        drain_end = time.monotonic() + RECORD_DRAIN
        while (left := drain_end - time.monotonic()) > 0:
            cap = client.receive(left)
            if cap is not None:
                rec.add(cap.source, cap.start_time, cap.data, until)
    progress.done()


class _Interrupt:
    """Turn Ctrl-C (and SIGTERM) into a flag the loops check between whole frames.

    A KeyboardInterrupt raised in the middle of a send would leave half a
    frame on the socket; a flag lets the command stop between frames and
    still talk to the daemon (``stop``) or finish its file.
    """

    requested = False

    def _handler(self, signum: int, frame: object) -> None:
        self.requested = True

    def __enter__(self) -> "_Interrupt":
        self._old = {}
        if threading.current_thread() is threading.main_thread():  # only there can handlers be set
            self._old = {sig: signal.signal(sig, self._handler) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def fallback_path() -> str:
    """A new, empty file for a take its own path refused: in ``$XDG_RUNTIME_DIR``, else ``/tmp``."""
    folder = os.environ.get("XDG_RUNTIME_DIR") or ""
    if not os.path.isdir(folder):
        folder = tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix=time.strftime("mxfd-record-%Y%m%d-%H%M%S-"), suffix=".mid", dir=folder)
    os.close(fd)
    return path


def _finish(rec: Recording, out: str, ppqn: int = RECORD_PPQN, tempo: int = RECORD_TEMPO) -> int:
    """Write the take to ``out``, or to a fallback file when that fails; the exit status."""
    status = 0
    with _Interrupt():  # a second Ctrl-C must not cut the file short
        try:
            rec.write(out, ppqn, tempo)
        except OSError as e:
            print(f"mxfd record: cannot write {out}: {e.strerror or e}", file=sys.stderr)
            status = 1
            try:
                out = fallback_path()
                rec.write(out, ppqn, tempo)
            except OSError as e2:
                print(f"mxfd record: the take is lost: no fallback file either: {e2}", file=sys.stderr)
                return 1
            print(f"mxfd record: the take is saved in {out} instead", file=sys.stderr)
    sources = ", ".join(f"{name} ({len(ev)})" for name, ev in rec.tracks.items()) or "nothing was played"
    print(f"mxfd record: wrote {out}: {rec.events} events; {sources}", file=sys.stderr)
    for why, n in sorted(rec.skipped.items()):
        print(f"mxfd record: left out {n} message(s): {why} (no place in a standard MIDI file)", file=sys.stderr)
    return status


def captures_to_file(captures: Iterable[Captured], out: str) -> Recording:
    """Write capture buffers (from :meth:`Client.history` or :meth:`Client.receive`) to ``out``."""
    rec = Recording()
    for cap in captures:
        rec.add(cap.source, cap.start_time, cap.data)
    rec.write(out)
    return rec


# -- panic ------------------------------------------------------------------------------


def panic(args: argparse.Namespace) -> int:
    """All notes and sound off in the daemon now: 0 once done, 1 if its render thread did not get to it."""
    with Client(socket_path(args), name="mxfd-panic") as client:
        reply = client.panic()
    if not reply.get("applied"):
        print("mxfd panic: asked, but the daemon's render thread did not apply it within 1 s", file=sys.stderr)
        return 1
    print(f"all notes and sound off ({reply.get('voices')} voice(s) were sounding)")
    return 0


# -- reload ------------------------------------------------------------------------------


def reload(args: argparse.Namespace) -> int:
    """Have the daemon re-read its config and soundfont: 0 when all of it took, 1 when something was refused."""
    with Client(socket_path(args), name="mxfd-reload") as client:
        reply = client.reload()
    if reply.get("error"):
        print(f"mxfd reload: {reply['error']}; bank in use: {reply.get('bank')}", file=sys.stderr)
        return 1
    said = "loaded" if reply.get("bank_changed") else "unchanged"
    print(f"reloaded {reply.get('config') or 'the built-in defaults'}; bank {said}: {reply.get('bank')}")
    return 0


# -- status ------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    with Client(socket_path(args), name="mxfd-status") as client:
        st = client.status()
        own = client.welcome.get("client_id")
    if args.json:
        json.dump(st, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    elif args.verbose:
        sys.stdout.write(format_status_full(st, own))
    else:
        sys.stdout.write(format_status(st, own))
    # like systemctl: 0 when all is well, 3 when the daemon runs degraded
    return 0 if st.get("state") == "running" else 3


def format_status(st: dict[str, Any], own_id: Optional[int] = None) -> str:
    """The status report on one screen: state, audio, bank, keyboards, clients, underruns and drops.

    ``own_id`` is the asking connection's client id: it is not listed.
    """
    from mxfd.io.base import is_mxfd_port

    lines = []
    head = [f"pid {st['pid']}"] if "pid" in st else []
    if isinstance(st.get("uptime_s"), (int, float)):
        head.append(f"up {_duration(st['uptime_s'])}")
    lines.append(f"state: {st.get('state', '?')}" + (f" ({', '.join(head)})" if head else ""))

    audio = st.get("audio")
    if isinstance(audio, dict):
        lines.extend(_audio_lines(audio, st))
    for backend in st.get("midi", []):
        if isinstance(backend, dict) and not backend.get("up", True):
            lines.append(f"midi: {backend.get('backend', '?')} is down: {backend.get('error') or 'no reason given'}")
    bank = st.get("bank")
    if isinstance(bank, dict):
        bank = bank.get("name")
    if bank:
        info = st.get("bank_info")
        info = info if isinstance(info, dict) else {}
        name = info.get("name")
        line = f"bank: {bank}" + (f" ({name})" if name and name != bank else "")
        if info.get("reload_error"):
            line += f"; the last reload kept it: {info['reload_error']}"
        lines.append(line)

    keyboards = [i for i in st.get("inputs", []) if i.get("connected") and not is_mxfd_port(str(i.get("name")))]
    if keyboards:
        lines.append(f"keyboards: {len(keyboards)} connected")
        for k in keyboards:
            counts = [f"{k.get('events', 0)} events"]
            if k.get("dropped"):
                counts.append(f"{k['dropped']} dropped")
            if k.get("thru") is False:
                counts.append("thru off")
            lines.append(f"  {k.get('name')} ({', '.join(counts)})")
    else:
        lines.append("keyboards: none connected")

    lost = st.get("input_lost")
    if isinstance(lost, dict) and lost.get("stalls"):
        ago = lost.get("last_s_ago")
        when = f", last {_duration(ago)} ago" if isinstance(ago, (int, float)) else ""
        lines.append(f"input lost: {lost['stalls']} stall(s), {lost.get('ms', 0):g} ms of MIDI{when} "
                     "(a hanging note lost its note-off: `mxfd panic`)")

    clients = _other_clients(st, own_id)
    if clients:
        lines.append(f"clients: {len(clients)}")
        lines.extend(f"  {_client_line(c)}" for c in clients)
    else:
        lines.append("clients: none")

    drops = [f"{k.replace('_', ' ')} {v}" for k, v in (st.get("events", {}).get("dropped") or {}).items() if v]
    drops += [f"capture to {c.get('name')} {c['capture_dropped']}" for c in clients if c.get("capture_dropped")]
    if isinstance(audio, dict) and "underruns" in audio:
        parts = [f"underruns: {audio['underruns']}"]
        if audio["underruns"]:
            parts[0] += f" ({audio.get('ring_underruns', 0)} late renders, {audio.get('xruns', 0)} server xruns)"
        lines.append(", ".join(parts) + f"; dropped: {', '.join(drops) or 'none'}")
    else:
        lines.append(f"dropped: {', '.join(drops) or 'none'}")
    return "\n".join(lines) + "\n"


def _audio_lines(audio: dict[str, Any], st: dict[str, Any]) -> list[str]:
    state = audio.get("state")
    if state == "none":
        return ["audio: none (this daemon has no audio output)"]
    name = str(audio.get("device", "?"))
    if audio.get("hostapi"):
        name += f" ({audio['hostapi']})"
    facts = [name]
    rate = audio.get("rate")
    if rate:
        facts.append(f"{rate} Hz")
        if audio.get("period"):
            facts.append(f"period {audio['period']} ({_ms(audio['period'] / rate * 1000)})")
    if isinstance(st.get("render_latency_ms"), (int, float)):
        facts.append(f"latency {_ms(st['render_latency_ms'])}")
    extra = []
    times = audio.get("callback_us")
    if isinstance(times, dict):
        extra.append(f"  {audio.get('pin', '?')} pin callback: p50 {times.get('p50')} µs, p99 {times.get('p99')} µs, "
                     f"max {times.get('max')} µs; overruns {audio.get('overruns', 0)}, xruns {audio.get('xruns', 0)}")
    if state == "running":
        return ["audio: " + ", ".join(facts), *extra]
    why = audio.get("message") or audio.get("last_error") or "no reason given"
    return [f"audio: {state}, nothing is heard: {why}", "  wanted: " + ", ".join(facts), *extra]


def _other_clients(st: dict[str, Any], own_id: Optional[int]) -> list[dict[str, Any]]:
    clients = st.get("clients")
    if not isinstance(clients, dict):
        return []
    return [c for c in clients.get("list", []) if isinstance(c, dict) and (own_id is None or c.get("id") != own_id)]


def _client_line(c: dict[str, Any]) -> str:
    doing = []
    if c.get("file"):
        doing.append(f"playing {c['file']}")
    elif c.get("channel_group") is not None or c.get("buffers"):
        doing.append("playing")
    if c.get("subscribed"):
        doing.append("recording " + (f"inputs matching {c['pattern']!r}" if c.get("pattern") else "every input"))
    counts = []
    if c.get("events"):
        counts.append(f"{c['events']} events")
    if c.get("pending"):
        counts.append(f"{c['pending']} queued")
    if c.get("bad_buffers"):
        counts.append(f"{c['bad_buffers']} bad buffers")
    pid = f" (pid {c['pid']})" if "pid" in c else ""
    line = f"{c.get('name', '?')}{pid}: {' and '.join(doing) or 'connected'}"
    return line + (f", {', '.join(counts)}" if counts else "")


def _ms(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") + " ms"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


def format_status_full(st: dict[str, Any], own_id: Optional[int] = None) -> str:
    """Every counter of the status report as indented text, the state first (``mxfd status --verbose``)."""
    st = dict(st)
    if isinstance(st.get("clients"), dict):
        st["clients"] = {**st["clients"], "list": _other_clients(st, own_id)}
        if own_id is not None and isinstance(st["clients"].get("connected"), int):
            st["clients"]["connected"] -= 1  # the asking connection is not one of them
    lines = [f"state: {st.get('state', '?')}"]
    for key in sorted(st, key=_status_order):
        if key != "state":
            _format(key, st[key], 0, lines)
    return "\n".join(lines) + "\n"


_ORDER = ("state", "inputs", "audio", "render_latency", "allocators", "voices", "events", "clients")


def _status_order(key: str) -> tuple[int, str]:
    for i, prefix in enumerate(_ORDER):
        if key.startswith(prefix):
            return (i, key)
    return (len(_ORDER), key)


def _format(key: str, value: Any, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    label = key.replace("_", " ")
    if isinstance(value, dict):
        if all(not isinstance(v, (dict, list)) for v in value.values()) and len(value) <= 8:
            inner = ", ".join(f"{k.replace('_', ' ')} {_scalar(v)}" for k, v in value.items())
            lines.append(f"{pad}{label}: {inner or '-'}")
            return
        lines.append(f"{pad}{label}:")
        for k, v in value.items():
            _format(str(k), v, depth + 1, lines)
    elif isinstance(value, list):
        lines.append(f"{pad}{label}: {len(value) if value else 'none'}")
        for n, item in enumerate(value, 1):
            if isinstance(item, dict):
                # a list of records: each under its name (or its first field)
                key_field = next((k for k in ("name", "id", "backend") if k in item), None)
                name = str(item[key_field]) if key_field is not None else f"#{n}"
                rest = {k: v for k, v in item.items() if k != key_field}
                _format(name, rest, depth + 1, lines)
            else:
                lines.append(f"{pad}  - {_scalar(item)}")
    else:
        lines.append(f"{pad}{label}: {_scalar(value)}")


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    if v is None:
        return "-"
    return str(v)


__all__ = [
    "Recording",
    "captures_to_file",
    "fallback_path",
    "format_status",
    "format_status_full",
    "main",
    "output_problem",
    "panic",
    "play",
    "reload",
    "record",
    "socket_path",
    "status",
    "tempo_of",
    "why_silent",
]
