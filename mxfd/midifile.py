"""Standard MIDI files, read strictly: the one loader of ``mxfd play`` and ``mxfd render``.

Theory of operation
-------------------
:func:`read_midi_file` reads the whole file and walks it once, chunk by
chunk and event by event, keeping the byte offset it is at.  Anything that
does not follow the Standard MIDI File 1.0 layout stops the walk with a
:class:`MidiFileError` whose one line says where (track and byte offset) and
what was expected there: a file that ends early says where it ends and how
many bytes the chunk still needed.  Both commands call this one function, so
the same bad file gets the same message and the same exit status from each.

Time: with a metrical division (ticks per quarter note) a tick lasts
``tempo / division`` microseconds, the tempo being the latest ``set_tempo``
at or before it on any track (500 000 µs until the first); with an SMPTE
division (negative frames per second, ticks per frame) a tick lasts
``1 / (fps × ticks per frame)`` seconds whatever the tempo (29 means 29.97
drop-frame).  Times are computed in integers from the tick count, so they
never drift with the length of a file.  Format 0 and 1 tracks are merged by
tick (ties in track order); the tracks of a format 2 file are independent
patterns and play one after the other.  A track's ``midi_port`` meta event
selects the channel group of the events after it (port p -> group p + 1).

SysEx: an ``F0`` event is one message; one that does not end in ``F7`` is
continued by the ``F7`` packets after it on its track and joined into one
message at the ``F0``'s time.  A message longer than a DMUS_EVENTHEADER
record holds (:data:`~mxfd.core.wire.MAX_EVENT_SIZE`) becomes consecutive
records with the same time, as docs/protocol.md allows and as the capture
side chunks a long SysEx: the first starts with ``F0``, the last ends with
``F7``.  What a standard MIDI file may hold but the render path cannot play
(an ``F7`` escape that is not a SysEx, a SysEx never ended, one with a
status byte inside) is left out and counted in :attr:`MidiSong.skipped`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.midi import DATA_LENGTH
from mxfd.core.wire import MAX_CHANNEL_GROUP, MAX_EVENT_SIZE

#: Microseconds per quarter note until a file's first ``set_tempo`` (120 bpm).
DEFAULT_TEMPO: Final = 500_000
#: SMPTE frame rates a division may name, as (numerator, denominator) frames per second.
SMPTE_RATES: Final = {24: (24, 1), 25: (25, 1), 29: (30000, 1001), 30: (30, 1)}

_META_END_OF_TRACK: Final = 0x2F
_META_SET_TEMPO: Final = 0x51
_META_MIDI_PORT: Final = 0x21
_NAMES: Final = {
    0x8: "note off", 0x9: "note on", 0xA: "polyphonic pressure", 0xB: "control change",
    0xC: "program change", 0xD: "channel pressure", 0xE: "pitch bend",
}


class MidiFileError(ValueError):
    """A MIDI file that cannot be read; the message is one line: ``cannot read PATH: reason``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass
class MidiSong:
    """A MIDI file flattened to timed records on one time line, ready to pack into buffers."""

    #: ``(time_100ns, channel_group, message)`` from the file's start, in play order; each
    #: message fits one record (1..MAX_EVENT_SIZE bytes; a long SysEx is several, same time).
    records: list[tuple[int, int, bytes]]
    #: Seconds from the start to the last end of track (or the last event, if later).
    length: float
    #: 0, 1 or 2.
    format: int
    #: The division as a reader would say it, e.g. "480 ticks per quarter note".
    division: str
    #: MIDI events read from the file (a split SysEx counts once).
    events: int = 0
    #: Messages left out, by reason.
    skipped: dict[str, int] = field(default_factory=dict)


def read_midi_file(path: str) -> MidiSong:
    """Read and flatten the standard MIDI file at ``path``; raises :class:`MidiFileError`."""
    try:
        if os.path.isdir(path):
            raise MidiFileError(path, "is a directory")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise MidiFileError(path, reason) from None
    return parse_midi(data, path)


def parse_midi(data: bytes, path: str = "<bytes>") -> MidiSong:
    """Flatten a standard MIDI file held in ``data``; ``path`` names it in errors."""
    return _Parser(data, path).song()


def split_message(message: bytes) -> list[bytes]:
    """``message`` cut into pieces that each fit one record (a long SysEx becomes chunks)."""
    if len(message) <= MAX_EVENT_SIZE:
        return [message]
    return [message[k : k + MAX_EVENT_SIZE] for k in range(0, len(message), MAX_EVENT_SIZE)]


@dataclass
class _Track:
    """One track's events as (tick, channel_group, message), tempo changes, and its end tick."""

    events: list[tuple[int, int, bytes]] = field(default_factory=list)
    tempos: list[tuple[int, int]] = field(default_factory=list)
    end: int = 0


class _Parser:
    def __init__(self, data: bytes, path: str) -> None:
        self.data = data if type(data) is bytes else bytes(data)  # a slice of it is then a message
        self.path = path
        self.skipped: dict[str, int] = {}

    def fail(self, reason: str) -> MidiFileError:
        return MidiFileError(self.path, reason)

    def song(self) -> MidiSong:
        data = self.data
        size = len(data)
        if size == 0:
            raise self.fail("empty file (0 bytes), not a MIDI file")
        if data[:4] != b"MThd"[: min(4, size)]:
            raise self.fail(f"not a MIDI file: it starts with {data[:4]!r}, a MIDI file starts with b'MThd'")
        if size < 14:
            raise self.fail(f"the file ends at byte {size}, inside its header (MThd needs 14 bytes)")
        header_len = int.from_bytes(data[4:8], "big")
        if header_len < 6:
            raise self.fail(f"header length {header_len} at byte 4 (MThd holds at least 6 bytes)")
        fmt = int.from_bytes(data[8:10], "big")
        ntracks = int.from_bytes(data[10:12], "big")
        division = int.from_bytes(data[12:14], "big")
        if fmt > 2:
            raise self.fail(f"unknown format {fmt} at byte 8 (0, 1 or 2)")
        if ntracks == 0:
            raise self.fail("its header announces no tracks (byte 10)")
        units_per_tick = self._division(division)
        pos = 8 + header_len
        if pos > size:
            raise self.fail(f"the file ends at byte {size}, inside its header ({header_len} bytes announced at byte 4)")
        tracks: list[_Track] = []
        alien: list[str] = []
        while len(tracks) < ntracks:
            if pos >= size:
                also = f" (and {', '.join(alien)}, not a track)" if alien else ""
                raise self.fail(
                    f"the file ends at byte {size} after {len(tracks)} of the {ntracks} tracks its header announces"
                    + also
                )
            if pos + 8 > size:
                raise self.fail(
                    f"the file ends at byte {size}, inside the chunk header of track {len(tracks) + 1}"
                    f" ({pos + 8 - size} of its 8 bytes missing)"
                )
            chunk_id = data[pos : pos + 4]
            length = int.from_bytes(data[pos + 4 : pos + 8], "big")
            body = pos + 8
            if chunk_id != b"MTrk":
                # Alien chunks are skipped, as the standard asks; named if the tracks then run short.
                alien.append(f"a {chunk_id!r} chunk at byte {pos}")
                pos = body + length
                continue
            if body + length > size:
                raise self.fail(
                    f"the file ends at byte {size}, inside track {len(tracks) + 1}: its chunk at byte {pos}"
                    f" announces {length} bytes, {size - body} are there"
                )
            tracks.append(self._track(len(tracks) + 1, body, body + length))
            pos = body + length
        return self._flatten(fmt, tracks, units_per_tick, division)

    def _division(self, division: int) -> tuple[int, int] | None:
        """100 ns units per tick as (numerator, denominator) for SMPTE time; None for metrical."""
        if division & 0x8000:
            fps = 256 - (division >> 8)
            ticks_per_frame = division & 0xFF
            if fps not in SMPTE_RATES:
                raise self.fail(f"SMPTE division at byte 12 with {fps} frames per second (24, 25, 29 or 30)")
            if ticks_per_frame == 0:
                raise self.fail("SMPTE division at byte 12 with 0 ticks per frame")
            num, den = SMPTE_RATES[fps]
            return UNITS_PER_SECOND * den, num * ticks_per_frame
        if division == 0:
            raise self.fail("division 0 at byte 12 (ticks per quarter note must be at least 1)")
        return None

    def _vlq(self, pos: int, end: int, what: str, track: int) -> tuple[int, int]:
        """A variable-length quantity at ``pos``: (value, position after it)."""
        value = 0
        for k in range(4):
            if pos + k >= end:
                raise self.fail(f"track {track} ends at byte {end} inside {what} that starts at byte {pos}")
            b = self.data[pos + k]
            value = (value << 7) | (b & 0x7F)
            if not b & 0x80:
                return value, pos + k + 1
        raise self.fail(f"track {track}, byte {pos}: {what} longer than 4 bytes")

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def _track(self, number: int, pos: int, end: int) -> _Track:
        data = self.data
        out = _Track()
        events = out.events
        tick = 0
        group = 1
        running = 0
        sysex: tuple[int, bytearray] | None = None  # an F0 message waiting for its F7 packets
        while pos < end:
            b = data[pos]
            if b < 0x80:  # most delta times are one byte
                tick += b
                pos += 1
            else:
                delta, pos = self._vlq(pos, end, "a delta time", number)
                tick += delta
            if pos >= end:
                raise self.fail(f"track {number} ends at byte {end} after a delta time, where an event was expected")
            at = pos
            status = data[pos]
            if status == 0xFF:
                if pos + 1 >= end:
                    raise self.fail(f"track {number} ends at byte {end} inside the meta event at byte {at}")
                kind = data[pos + 1]
                length, pos = self._vlq(pos + 2, end, "a meta event's length", number)
                if pos + length > end:
                    raise self.fail(
                        f"track {number}, byte {at}: meta event {kind:#04x} of {length} bytes runs past the"
                        f" track's end at byte {end}"
                    )
                body = data[pos : pos + length]
                pos += length
                if kind == _META_END_OF_TRACK:
                    break
                if kind == _META_SET_TEMPO:
                    if length != 3:
                        raise self.fail(f"track {number}, byte {at}: set tempo with {length} data bytes (3 expected)")
                    out.tempos.append((tick, int.from_bytes(body, "big")))
                elif kind == _META_MIDI_PORT and length >= 1:
                    group = min(body[0] + 1, MAX_CHANNEL_GROUP)
                continue
            if status in (0xF0, 0xF7):
                length, pos = self._vlq(pos + 1, end, "a SysEx length", number)
                if pos + length > end:
                    raise self.fail(
                        f"track {number}, byte {at}: SysEx of {length} bytes runs past the track's end at byte {end}"
                    )
                body = data[pos : pos + length]
                pos += length
                running = 0  # SysEx cancels running status
                if status == 0xF0:
                    if sysex is not None:
                        self._skip("SysEx without its end (F7)")
                    sysex = (tick, bytearray(b"\xf0" + body))
                elif sysex is not None:
                    sysex[1].extend(body)  # the next packet of a SysEx sent in parts
                elif body[:1] == b"\xf0":
                    sysex = (tick, bytearray(body))  # a whole SysEx sent as an escape
                else:
                    self._skip("F7 escape that is not a SysEx")
                    continue
                if sysex[1][-1:] == b"\xf7":
                    t0, msg = sysex
                    sysex = None
                    if max(msg[1:-1], default=0) >= 0x80:
                        self._skip("SysEx with a status byte inside")
                    else:
                        out.events.append((t0, group, bytes(msg)))
                continue
            if sysex is not None:
                self._skip("SysEx without its end (F7)")
                sysex = None
            if status >= 0xF0:
                raise self.fail(f"track {number}, byte {at}: status {status:#04x} has no place in a MIDI file")
            if status >= 0x80:
                running = status
                pos += 1
            elif not running:
                raise self.fail(f"track {number}, byte {at}: data byte {status:#04x} with no status before it")
            need = DATA_LENGTH[running]
            if pos + need > end:
                raise self.fail(
                    f"track {number} ends at byte {end} inside the {_NAMES[running >> 4]} at byte {at}"
                    f" ({need} data bytes expected)"
                )
            body = data[pos : pos + need]
            if max(body) >= 0x80:
                k = next(k for k, b in enumerate(body) if b >= 0x80)
                raise self.fail(
                    f"track {number}, byte {pos + k}: {_NAMES[running >> 4]} data byte {body[k]:#04x}"
                    " (data bytes are below 0x80)"
                )
            # with its status byte in the file the message is one slice of it; under running status, two
            message = data[at : pos + need] if at + 1 == pos else bytes((running,)) + body
            pos += need
            events.append((tick, group, message))
        if sysex is not None:
            self._skip("SysEx without its end (F7)")
        out.end = tick
        return out

    def _flatten(
        self, fmt: int, tracks: list[_Track], smpte: tuple[int, int] | None, division: int
    ) -> MidiSong:
        tempos: list[tuple[int, int, int]] = []  # (tick, track, tempo)
        end_tick = 0
        offsets: list[int] = []  # each track's first tick
        for ti, track in enumerate(tracks):
            offsets.append(end_tick if fmt == 2 else 0)  # format 2: independent patterns, one after the other
            tempos.extend((tick + offsets[ti], ti, tempo) for tick, tempo in track.tempos)
            end_tick = max(end_tick, track.end + offsets[ti])
        ordered: list[tuple[int, int, bytes]]  # (tick, group, message) in time order, ties in track order
        if len(tracks) == 1:
            ordered = tracks[0].events  # a track's events are in time order already
        else:
            raw = [  # (tick, track, order, group, message)
                (tick + offsets[ti], ti, si, group, msg)
                for ti, track in enumerate(tracks)
                for si, (tick, group, msg) in enumerate(track.events)
            ]
            raw.sort()  # (tick, track, order) is unique: the group and message are never compared
            ordered = [(tick, group, msg) for tick, _, _, group, msg in raw]
        if not ordered:
            left = f" ({sum(self.skipped.values())} left out)" if self.skipped else ""
            raise self.fail(f"no MIDI events in its {len(tracks)} track(s){left}")
        if smpte is not None:
            num, den = smpte
            fps = 256 - (division >> 8)
            label = f"SMPTE {'29.97' if fps == 29 else fps} fps, {division & 0xFF} ticks per frame"

            def units(tick: int) -> int:
                return (tick * num + den // 2) // den
        else:
            label = f"{division} ticks per quarter note"
            tempos.sort(key=lambda t: (t[0], t[1]))
            # Tempo segments as (start tick, tick x µs/quarter accumulated before it, tempo).
            marks: list[tuple[int, int, int]] = [(0, 0, DEFAULT_TEMPO)]
            for tick, _, tempo in tempos:
                t0, acc, tp = marks[-1]
                marks.append((tick, acc + (tick - t0) * tp, tempo))
            k = 0

            def units(tick: int) -> int:
                # Called with non-decreasing ticks (events, then the end): the segment only moves on.
                nonlocal k
                while k + 1 < len(marks) and marks[k + 1][0] <= tick:
                    k += 1
                t0, acc, tp = marks[k]
                micro_ticks = acc + (tick - t0) * tp  # µs x division
                return (micro_ticks * 10 + division // 2) // division

        records: list[tuple[int, int, bytes]] = []
        last = -1
        t = 0
        for tick, group, msg in ordered:
            if tick != last:  # a chord's notes share their tick
                t = units(tick)
                last = tick
            if len(msg) <= MAX_EVENT_SIZE:
                records.append((t, group, msg))
            else:
                records.extend((t, group, piece) for piece in split_message(msg))
        end = max(units(end_tick), records[-1][0])
        return MidiSong(records, end / UNITS_PER_SECOND, fmt, label, len(ordered), self.skipped)


__all__ = ["MidiFileError", "MidiSong", "parse_midi", "read_midi_file", "split_message"]
