"""DMUS_EVENTHEADER buffers: the one wire format between clients and the daemon.

A buffer (the payload of an "IRP") is a run of records, each a 20-byte
little-endian header followed by its event bytes and padded so the next
record starts on an 8-byte (QWORD) boundary::

    offset 0   cbEvent         DWORD   unrounded number of event bytes
    offset 4   dwChannelGroup  DWORD
    offset 8   rtDelta         LONGLONG  100 ns, from the buffer's start time
    offset 16  dwFlags         DWORD   DMUS_EVENT_STRUCTURED (1) or 0
    offset 20  data            cbEvent bytes, then padding to QWORD

An event's presentation time is ``start_time + rtDelta``; the start time
travels beside the buffer (``KSSTREAM_HEADER.PresentationTime``'s role).

Validation is all-or-nothing: :func:`validate_buffer` walks a whole buffer and
raises :class:`BadBufferError` naming the byte offset of the first problem
before anyone acts on a single record.
"""

from __future__ import annotations

import struct
from typing import Final, Iterable, Iterator, Sequence

from mxfd.core.midi import KIND_CHANNEL, KIND_COMMON, KIND_REALTIME, KIND_UNDEFINED, STATUS_KIND

#: sizeof(DMUS_EVENTHEADER)
EVENT_HEADER_SIZE: Final = 20
#: DMUS_EVENT_STRUCTURED: parsable channel, system common or real-time data.
DMUS_EVENT_STRUCTURED: Final = 0x00000001
#: Flags a record may carry.
VALID_FLAGS: Final = DMUS_EVENT_STRUCTURED
#: Largest event a record may carry (cbEvent of a kernel event is a USHORT).
MAX_EVENT_SIZE: Final = 0xFFFF
#: Largest buffer accepted (a buffer typically holds < 200 ms of data).
MAX_BUFFER_SIZE: Final = 1 << 20
#: Largest channel group (usChannelGroup is a USHORT).
MAX_CHANNEL_GROUP: Final = 0xFFFF
#: Largest structured event: a short message stored in a DWORD.
MAX_STRUCTURED_SIZE: Final = 4

HEADER: Final = struct.Struct("<IIqI")

#: A record as ``encode_buffer`` takes it: (pres_time_100ns, channel_group, message).
Record = tuple[int, int, bytes]
#: A record as ``decode_buffer`` returns it: (pres_time_100ns, channel_group, flags, message).
DecodedRecord = tuple[int, int, int, bytes]


class BadBufferError(ValueError):
    """A malformed DMUS_EVENTHEADER buffer.  ``offset`` is where it went wrong."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"bad buffer at byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


def qword_align(n: int) -> int:
    """QWORD_ALIGN: round ``n`` up to a multiple of 8."""
    return (n + 7) & ~7


def event_size(cb_event: int) -> int:
    """DMUS_EVENT_SIZE: bytes a record with ``cb_event`` data bytes takes."""
    return (EVENT_HEADER_SIZE + cb_event + 7) & ~7


_STRUCTURED_KINDS: Final = frozenset((KIND_CHANNEL, KIND_COMMON, KIND_REALTIME, KIND_UNDEFINED))
_PADDING: Final = tuple(bytes(k) for k in range(8))


def structured_flag(message: bytes | bytearray | memoryview) -> int:
    """DMUS_EVENT_STRUCTURED for channel, common and real-time messages; 0 otherwise."""
    kind = STATUS_KIND[message[0]] if len(message) else 0
    return DMUS_EVENT_STRUCTURED if kind in _STRUCTURED_KINDS else 0


def iter_records(data: bytes | bytearray | memoryview) -> Iterator[tuple[int, int, int, int, int]]:
    """Walk a buffer, validating as it goes.

    Yields ``(offset, cb_event, channel_group, rt_delta, flags)`` for each
    record; the event bytes are ``data[offset + 20 : offset + 20 + cb_event]``.
    Raises :class:`BadBufferError` at the first malformed record, so callers
    that must not half-apply a buffer run :func:`validate_buffer` first.
    """
    used = len(data)
    if used > MAX_BUFFER_SIZE:
        raise BadBufferError(0, f"buffer of {used} bytes exceeds the {MAX_BUFFER_SIZE}-byte limit")
    off = 0
    while off < used:
        if off + EVENT_HEADER_SIZE > used:
            raise BadBufferError(
                off, f"truncated header: {used - off} bytes left, a header needs {EVENT_HEADER_SIZE}"
            )
        cb, group, delta, flags = HEADER.unpack_from(data, off)
        if cb == 0:
            raise BadBufferError(off, "zero-length event")
        if cb > MAX_EVENT_SIZE:
            raise BadBufferError(off, f"cbEvent {cb} exceeds the {MAX_EVENT_SIZE}-byte event limit")
        end = off + EVENT_HEADER_SIZE + cb
        if end > used:
            raise BadBufferError(
                off, f"cbEvent {cb} runs past the end of the buffer ({used - off - EVENT_HEADER_SIZE} bytes left)"
            )
        if group > MAX_CHANNEL_GROUP:
            raise BadBufferError(off + 4, f"channel group {group} exceeds {MAX_CHANNEL_GROUP}")
        if flags & ~VALID_FLAGS:
            raise BadBufferError(off + 16, f"unknown flags {flags:#x}")
        if flags & DMUS_EVENT_STRUCTURED:
            status = data[off + EVENT_HEADER_SIZE]
            if status < 0x80:
                raise BadBufferError(off + EVENT_HEADER_SIZE, f"structured event starts with data byte {status:#04x}")
            if status == 0xF0 or status == 0xF7:
                raise BadBufferError(off + EVENT_HEADER_SIZE, "SysEx must be sent unstructured")
            if cb > MAX_STRUCTURED_SIZE:
                raise BadBufferError(off, f"structured event of {cb} bytes (at most {MAX_STRUCTURED_SIZE})")
        yield off, cb, group, delta, flags
        nxt = qword_align(end)
        if nxt > used and used != end:
            raise BadBufferError(
                end, f"buffer ends inside the padding of the record at {off} (misaligned length {used})"
            )
        off = nxt


def validate_buffer(data: bytes | bytearray | memoryview) -> int:
    """Check a whole buffer; return its record count or raise :class:`BadBufferError`."""
    n = 0
    for _ in iter_records(data):
        n += 1
    return n


def encode_buffer(records: Iterable[Record] | Sequence[Record]) -> tuple[int, bytes]:
    """Pack ``(pres_time_100ns, channel_group, message)`` records into one buffer.

    The first record's time becomes the buffer's start time (as packing into an
    empty IDirectMusicBuffer does); each record stores its offset from it.
    Channel, system common and real-time messages are marked structured,
    everything else (SysEx, raw bytes) unstructured.  Returns
    ``(start_time, data)``; an empty input gives ``(0, b"")``.
    """
    out = bytearray()
    start = None
    for pres_time, group, message in records:
        if start is None:
            start = pres_time
        n = len(message)
        if not 0 < n <= MAX_EVENT_SIZE:
            raise ValueError(f"message of {n} bytes: records carry 1..{MAX_EVENT_SIZE} bytes")
        if not 0 <= group <= MAX_CHANNEL_GROUP:
            raise ValueError(f"channel group {group} outside 0..{MAX_CHANNEL_GROUP}")
        flags = structured_flag(message)
        if flags and n > MAX_STRUCTURED_SIZE:
            raise ValueError(f"a {n}-byte message starting {message[0]:#04x} is not a short message")
        out += HEADER.pack(n, group, pres_time - start, flags)
        out += message
        out += _PADDING[-(EVENT_HEADER_SIZE + n) & 7]  # every record starts on a QWORD, so pad this one
    if len(out) > MAX_BUFFER_SIZE:
        raise ValueError(f"{len(out)} bytes exceed the {MAX_BUFFER_SIZE}-byte buffer limit")
    return (start if start is not None else 0), bytes(out)


def decode_buffer(data: bytes | bytearray | memoryview, start_time: int) -> list[DecodedRecord]:
    """Unpack a buffer into ``(pres_time_100ns, channel_group, flags, message)``.

    The whole buffer is validated first: a malformed one raises
    :class:`BadBufferError` and yields nothing.
    """
    validate_buffer(data)
    out: list[DecodedRecord] = []
    for off, cb, group, delta, flags in iter_records(data):
        body = off + EVENT_HEADER_SIZE
        out.append((start_time + delta, group, flags, bytes(data[body : body + cb])))
    return out
