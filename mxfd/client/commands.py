"""``mxfd play``, ``mxfd record``, ``mxfd status`` and ``mxfd panic``: the daemon's clients on the command line.

Theory of operation
-------------------
``play`` turns a MIDI file into ``(seconds, message)`` pairs with mido's
tempo-aware iteration (every tempo change honoured), fixes time zero a little
after the daemon's render latency on its master clock, and then streams with
a bounded look-ahead: every few tens of milliseconds it sends, as DMUS_EVENTHEADER
buffers, the events due within the next :data:`LOOKAHEAD` seconds and no
more, so a long file never sits in the daemon whole and Ctrl-C is heard at
once.  On Ctrl-C it asks the daemon to ``stop`` (queued events dropped, this
client's held notes and pedals released); at the end it waits until the last
event has played before it disconnects (a disconnect drops what is queued).

``record`` subscribes to the capture buffers of the inputs (or asks for the
daemon's history ring with ``--last``), decodes them, and writes a type 1
standard MIDI file: a tempo track, then one track per source, ticks at
:data:`RECORD_PPQN` per quarter note at 120 bpm computed from each event's
arrival time stamp (absolute, so rounding never accumulates).  SysEx is
kept whole, reassembled from its chunks; clock, active sensing and system
common messages have no place in a standard MIDI file and are counted and
reported, not silently dropped.  Ctrl-C ends the recording and the file is
still written completely (to a temporary name, then renamed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, TextIO

from mxfd.client.client import Captured, Client, ClientError, ServerError
from mxfd.client.protocol import HelloRefused
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.wire import DMUS_EVENT_STRUCTURED, BadBufferError, decode_buffer

#: How far ahead of its time an event is sent, seconds.
LOOKAHEAD = 0.5
#: How often ``play`` tops the daemon up, seconds.
TOP_UP = 0.05
#: Extra delay before a file's first event, on top of the render latency, seconds.
LEAD = 0.1
#: Ticks per quarter note in recorded files (≥ 960; at 120 bpm a tick is 0.26 ms).
RECORD_PPQN = 1920
#: Tempo of recorded files: 120 bpm (µs per quarter note).
RECORD_TEMPO = 500_000
#: How long ``record`` keeps reading after it stops, for buffers still on their way, seconds.
RECORD_DRAIN = 0.05


def main(args: argparse.Namespace) -> int:
    """Run ``mxfd play``, ``mxfd record``, ``mxfd status`` or ``mxfd panic``."""
    try:
        if args.command == "play":
            return play(args)
        if args.command == "record":
            return record(args)
        if args.command == "status":
            return status(args)
        if args.command == "panic":
            return panic(args)
    except (ClientError, HelloRefused, ServerError) as e:
        print(f"mxfd {args.command}: {e}", file=sys.stderr)
        return 1
    raise ValueError(f"not a client command: {args.command}")


# -- play ---------------------------------------------------------------------------------


def load_midi(path: str) -> tuple[list[tuple[float, bytes]], float]:
    """``(seconds, message bytes)`` for every MIDI message of the file, and its length in seconds."""
    import mido

    mid = mido.MidiFile(path)
    events: list[tuple[float, bytes]] = []
    now = 0.0
    for msg in mid:  # merged tracks, times in seconds with every tempo change applied
        now += msg.time
        if not msg.is_meta:
            events.append((now, bytes(msg.bytes())))
    return events, now


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


def play(args: argparse.Namespace) -> int:
    try:
        events, length = load_midi(args.file)
    except (OSError, ValueError, EOFError, TypeError) as e:
        print(f"mxfd play: cannot read {args.file}: {e}", file=sys.stderr)
        return 2
    if not events:
        print(f"mxfd play: {args.file} has no MIDI events", file=sys.stderr)
        return 0
    progress = _Progress(f"mxfd play {os.path.basename(args.file)}")
    with Client(args.socket, name="mxfd-play") as client:
        client.open_playback()
        clock = _DaemonClock(client)
        t0 = clock() + clock.latency + int(LEAD * UNITS_PER_SECOND)
        span = max(length, events[-1][0])
        loop_len = int(span * UNITS_PER_SECOND) if args.loop and span > 0 else 0
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
                    pres = base + int(round(events[i][0] * UNITS_PER_SECOND))
                    if pres > horizon:
                        break
                    batch.append((pres, 1, events[i][1]))
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
        mid.save(tmp)
        os.replace(tmp, path)


def record(args: argparse.Namespace) -> int:
    rec = Recording()
    pattern: Optional[str] = args.port
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as e:
            print(f"mxfd record: bad --port pattern {pattern!r}: {e}", file=sys.stderr)
            return 2
    with Client(args.socket, name="mxfd-record") as client:
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
    _finish(rec, args.out)
    return 0


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


def _finish(rec: Recording, out: str) -> None:
    with _Interrupt():  # a second Ctrl-C must not cut the file short
        rec.write(out)
    sources = ", ".join(f"{name} ({len(ev)})" for name, ev in rec.tracks.items()) or "nothing was played"
    print(f"mxfd record: wrote {out}: {rec.events} events; {sources}", file=sys.stderr)
    for why, n in sorted(rec.skipped.items()):
        print(f"mxfd record: left out {n} message(s): {why} (no place in a standard MIDI file)", file=sys.stderr)


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
    with Client(args.socket, name="mxfd-panic") as client:
        reply = client.panic()
    if not reply.get("applied"):
        print("mxfd panic: asked, but the daemon's render thread did not apply it within 1 s", file=sys.stderr)
        return 1
    print(f"all notes and sound off ({reply.get('voices')} voice(s) were sounding)")
    return 0


# -- status ------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> int:
    with Client(args.socket, name="mxfd-status") as client:
        st = client.status()
    if args.json:
        json.dump(st, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_status(st))
    # like systemctl: 0 when all is well, 3 when the daemon runs degraded
    return 0 if st.get("state") == "running" else 3


def format_status(st: dict[str, Any]) -> str:
    """The status report as indented text, the state first."""
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
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".")
    if v is None:
        return "-"
    return str(v)


__all__ = ["Recording", "captures_to_file", "format_status", "load_midi", "main", "panic", "play", "record", "status"]
