"""The client socket protocol, sans-I/O: frames in, frames out, no sockets here.

Theory of operation
-------------------
A connection carries *frames*.  Every frame starts with a 12-byte
little-endian header::

    offset 0   sync    2 bytes   b"MX"
    offset 2   kind    u8        b"J" control (JSON) | b"B" MIDI buffer
    offset 3   flags   u8        FLAG_HISTORY on buffers replayed from the ring, else 0
    offset 4   source  u32       capture source id on buffers from the daemon, else 0
    offset 8   length  u32       payload bytes that follow

A control payload is one UTF-8 JSON object with a ``"type"`` key (at most
:data:`MAX_CONTROL_SIZE` bytes, nested at most :data:`MAX_JSON_DEPTH` deep,
numbers finite: ``NaN``, ``Infinity`` and ``1e999`` are refused, since no
reply could carry them back).  A buffer payload is the buffer's start
time (int64 REFERENCE_TIME, the role of ``KSSTREAM_HEADER.PresentationTime``)
followed by exactly one DMUS_EVENTHEADER buffer in the Windows byte layout
(:mod:`mxfd.core.wire`), at most :data:`~mxfd.core.wire.MAX_BUFFER_SIZE` bytes.

The first frame a client sends is the *hello*, ``{"type": "hello",
"protocol": N, ...}``; its shape never changes between versions, so a daemon
can always read it and refuse a version it does not speak in words
(``{"type": "refused", ...}``) rather than misreading what follows.

:class:`FrameDecoder` follows h11's model: feed it bytes with
``receive_data`` and pull events with ``next_event`` until it says
:data:`NEED_DATA`.  Two kinds of trouble are told apart:

* A frame whose header is sound but whose payload is unusable (JSON that does
  not parse, a buffer frame too short to hold its start time, a buffer larger
  than the limit) comes out as a :class:`BadFrame` event.  The frame's bytes
  are consumed (an oversized payload is skipped as it arrives, never held),
  so the stream stays in step and the connection can go on.
* Bytes that are not a frame header at all (wrong sync, unknown kind,
  reserved bits set, an absurd length) mean the stream has lost its framing.
  There is no way to find the next frame boundary with certainty inside
  binary payloads, so the decoder raises :class:`ProtocolError` and stays
  broken: the peer replies with an error and closes the connection.  This
  is the documented choice (close, not resynchronise).

DMUS_EVENTHEADER buffers are *not* validated here: the playback stream
validates each one whole before applying any of it.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any, Final, NoReturn, Union

from mxfd.core.wire import MAX_BUFFER_SIZE

#: The protocol version this module speaks.
PROTOCOL_VERSION: Final = 1
#: Versions a daemon built from this module accepts.
SUPPORTED_VERSIONS: Final = (1,)

SYNC: Final = b"MX"
KIND_CONTROL: Final = 0x4A  # "J"
KIND_BUFFER: Final = 0x42  # "B"
#: Buffer frame flag: replayed from the daemon's capture history, not live.
FLAG_HISTORY: Final = 0x01
VALID_FLAGS: Final = FLAG_HISTORY

FRAME_HEADER: Final = struct.Struct("<2sBBII")
FRAME_HEADER_SIZE: Final = FRAME_HEADER.size  # 12
START_TIME: Final = struct.Struct("<q")

#: Largest control payload.
MAX_CONTROL_SIZE: Final = 1 << 16
#: Deepest nesting of arrays and objects a control payload may have.
MAX_JSON_DEPTH: Final = 32
#: Longest repr of peer-supplied input that goes back into a reply or a log line.
MAX_ECHO: Final = 64
#: Largest buffer payload: start time plus the largest buffer.
MAX_BUFFER_PAYLOAD: Final = START_TIME.size + MAX_BUFFER_SIZE
#: Oversized buffer frames up to this length are skipped (an error, the
#: connection lives on); a longer length is taken as garbage.
MAX_SKIPPABLE: Final = 1 << 26


def clip(value: Any, limit: int = MAX_ECHO) -> str:
    """``repr(value)``, cut to ``limit`` characters: what may be echoed of a peer's input."""
    text = repr(value)
    if len(text) > limit:
        return text[: limit - 1] + "…"
    return text


class ProtocolError(ValueError):
    """The byte stream is not a frame stream: framing is lost.

    ``offset`` counts bytes from the start of the connection's stream.
    """

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"protocol error at stream byte {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class HelloRefused(Exception):
    """The peer does not speak a protocol version we do (or skipped the hello)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- events --------------------------------------------------------------------


@dataclass(frozen=True)
class Control:
    """A JSON control frame (request, reply or notice)."""

    message: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.message.get("type", ""))


@dataclass(frozen=True)
class MidiBuffer:
    """A DMUS_EVENTHEADER buffer and its start time.

    ``source`` names the capture source (announced by a ``"source"`` control
    frame) on buffers from the daemon; it is 0 on buffers a client sends.
    """

    start_time: int
    data: bytes
    source: int = 0
    flags: int = 0

    @property
    def history(self) -> bool:
        return bool(self.flags & FLAG_HISTORY)


@dataclass(frozen=True)
class BadFrame:
    """A well-delimited frame whose payload is unusable; it was discarded whole.

    ``kind`` is ``"control"`` or ``"buffer"``; ``offset`` is the byte offset
    of the problem inside the payload (for buffers: inside the
    DMUS_EVENTHEADER data, as :class:`~mxfd.core.wire.BadBufferError` has it);
    ``stream_offset`` is where the frame starts in the connection's stream.
    """

    kind: str
    reason: str
    offset: int = 0
    stream_offset: int = 0


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: ``next_event`` returns this when it needs more bytes.
NEED_DATA: Final = _NeedData()

Event = Union[Control, MidiBuffer, BadFrame]


# -- encoding ------------------------------------------------------------------


def encode_control(message: dict[str, Any]) -> bytes:
    """One control frame carrying ``message`` (which must have a ``"type"``)."""
    if not isinstance(message.get("type"), str):
        raise ValueError(f"control messages need a string 'type': {message!r}")
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode()
    if len(payload) > MAX_CONTROL_SIZE:
        raise ValueError(f"control message of {len(payload)} bytes exceeds {MAX_CONTROL_SIZE}")
    return FRAME_HEADER.pack(SYNC, KIND_CONTROL, 0, 0, len(payload)) + payload


def encode_buffer_frame(
    start_time: int, data: bytes | bytearray | memoryview, source: int = 0, flags: int = 0
) -> bytes:
    """One buffer frame: ``data`` (a DMUS_EVENTHEADER buffer) starting at ``start_time``.

    Refuses a buffer over the size limit: the daemon would only discard it.
    """
    n = len(data)
    if n > MAX_BUFFER_SIZE:
        raise ValueError(f"buffer of {n} bytes exceeds the {MAX_BUFFER_SIZE}-byte limit")
    return b"".join(
        (FRAME_HEADER.pack(SYNC, KIND_BUFFER, flags, source, START_TIME.size + n), START_TIME.pack(start_time), data)
    )


class FrameEncoder:
    """Turns events into bytes to send (h11's ``Connection.send`` role)."""

    def send(self, event: Control | MidiBuffer) -> bytes:
        if isinstance(event, Control):
            return encode_control(event.message)
        return encode_buffer_frame(event.start_time, event.data, event.source, event.flags)


# -- decoding ------------------------------------------------------------------


class FrameDecoder:
    """Turns received bytes into events; see the module's theory of operation."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # parse position inside _buf
        self._consumed = 0  # stream offset of _buf[0]
        self._skip = 0  # payload bytes of an oversized frame still to drop
        self._error: ProtocolError | None = None

    @property
    def stream_offset(self) -> int:
        """Bytes of the stream fully parsed so far."""
        return self._consumed + self._pos

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf) - self._pos

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add received bytes (an empty ``data`` is ignored, not end-of-stream)."""
        if self._skip:
            n = min(self._skip, len(data))
            self._skip -= n
            self._consumed += n
            data = data[n:]
        if data:
            if self._pos and self._pos == len(self._buf):
                self._consumed += self._pos
                self._buf.clear()
                self._pos = 0
            self._buf += data

    def next_event(self) -> Event | _NeedData:
        """The next complete event, or :data:`NEED_DATA`.

        Raises :class:`ProtocolError` when framing is lost, and again on every
        later call: the connection must be closed.
        """
        if self._error is not None:
            raise self._error
        if self._skip:
            return NEED_DATA
        buf = self._buf
        pos = self._pos
        have = len(buf) - pos
        if have < FRAME_HEADER_SIZE:
            if have and buf[pos : pos + min(have, 2)] != SYNC[: min(have, 2)]:
                self._fail(pos, f"expected frame sync b'MX', got {bytes(buf[pos:pos + 2])!r}")
            self._compact()
            return NEED_DATA
        sync, kind, flags, source, length = FRAME_HEADER.unpack_from(buf, pos)
        frame_at = self._consumed + pos
        if sync != SYNC:
            self._fail(pos, f"expected frame sync b'MX', got {bytes(sync)!r}")
        if kind == KIND_CONTROL:
            if flags or source:
                self._fail(pos, "control frame with nonzero flags or source")
            if length > MAX_CONTROL_SIZE:
                self._fail(pos, f"control frame of {length} bytes exceeds {MAX_CONTROL_SIZE}")
        elif kind == KIND_BUFFER:
            if flags & ~VALID_FLAGS:
                self._fail(pos, f"buffer frame with unknown flags {flags:#x}")
            if length > MAX_BUFFER_PAYLOAD:
                if length > MAX_SKIPPABLE:
                    self._fail(pos, f"frame length {length} is absurd")
                return self._skip_oversized(length)
        else:
            self._fail(pos, f"unknown frame kind {kind:#04x}")
        end = pos + FRAME_HEADER_SIZE + length
        if len(buf) < end:
            self._compact()
            return NEED_DATA
        body = pos + FRAME_HEADER_SIZE
        self._pos = end
        with memoryview(buf) as view:
            if kind == KIND_CONTROL:
                return self._control(bytes(view[body:end]), frame_at)
            if length < START_TIME.size:
                return BadFrame("buffer", f"buffer frame of {length} bytes has no 8-byte start time", 0, frame_at)
            (start,) = START_TIME.unpack_from(view, body)
            return MidiBuffer(start, bytes(view[body + START_TIME.size : end]), source, flags)

    def _skip_oversized(self, length: int) -> BadFrame:
        frame_at = self._consumed + self._pos
        self._pos += FRAME_HEADER_SIZE
        take = min(length, len(self._buf) - self._pos)
        self._pos += take
        self._skip = length - take
        if self._skip:
            # everything buffered is consumed; receive_data drops the rest as it comes
            self._consumed += self._pos
            self._buf.clear()
            self._pos = 0
        else:
            self._compact()
        size = length - START_TIME.size
        return BadFrame("buffer", f"buffer of {size} bytes exceeds the {MAX_BUFFER_SIZE}-byte limit", 0, frame_at)

    @staticmethod
    def _control(payload: bytes, frame_at: int) -> Control | BadFrame:
        try:
            message = decode_json(payload.decode("utf-8"))
        except UnicodeDecodeError as e:
            return BadFrame("control", f"control payload is not UTF-8: {e.reason}", e.start, frame_at)
        except json.JSONDecodeError as e:
            return BadFrame("control", f"control payload is not JSON: {e.msg}", e.pos, frame_at)
        except ValueError as e:
            return BadFrame("control", f"control payload refused: {clip(str(e), 120)}", 0, frame_at)
        if not isinstance(message, dict):
            what = type(message).__name__
            return BadFrame("control", f"control payload is a JSON {what}, not an object", 0, frame_at)
        if not isinstance(message.get("type"), str):
            return BadFrame("control", "control message has no string 'type'", 0, frame_at)
        return Control(message)

    def _compact(self) -> None:
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._consumed += self._pos
            self._pos = 0

    def _fail(self, pos: int, reason: str) -> NoReturn:
        self._error = ProtocolError(self._consumed + pos, reason)
        raise self._error


# -- strict JSON ---------------------------------------------------------------

# a JSON string (skipped whole) or one bracket: all the depth scan needs to see
_JSON_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[{]|[\]}]')


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a reply could carry")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {clip(text, 24)} is out of range")
    return value


def decode_json(text: str) -> Any:
    """``json.loads`` for peer input: at most :data:`MAX_JSON_DEPTH` deep, finite numbers only.

    Raises :class:`json.JSONDecodeError` for text that is not JSON and
    :class:`ValueError` for JSON refused here; never RecursionError.
    """
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        # enough brackets to be too deep: scan (in C, token by token) before the recursive parser sees it
        depth = 0
        for m in _JSON_NESTING.finditer(text):
            c = m.group()
            if c in "[{":
                depth += 1
                if depth > MAX_JSON_DEPTH:
                    raise ValueError(f"nested more than {MAX_JSON_DEPTH} deep (at character {m.start()})")
            elif c in "]}":
                depth -= 1
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


# -- the hello -------------------------------------------------------------------


def make_hello(client: str, version: int = PROTOCOL_VERSION, **extra: Any) -> dict[str, Any]:
    """The first message a client sends."""
    return {"type": "hello", "protocol": version, "client": client, **extra}


def check_hello(message: dict[str, Any], supported: tuple[int, ...] = SUPPORTED_VERSIONS) -> int:
    """The version a client's first message asks for, or :class:`HelloRefused` saying why not."""
    if message.get("type") != "hello":
        raise HelloRefused(f"expected a hello first, got a {clip(message.get('type'))} message")
    version = message.get("protocol")
    if not isinstance(version, int) or isinstance(version, bool):
        raise HelloRefused(f"hello without an integer 'protocol' version: {clip(version)}")
    if version not in supported:
        want = ", ".join(str(v) for v in supported)
        raise HelloRefused(f"protocol version {clip(version)} is not supported; this daemon speaks version {want}")
    return version


def refusal(reason: str) -> dict[str, Any]:
    """The daemon's answer to a hello it will not accept (or a peer it will not serve)."""
    return {"type": "refused", "reason": reason, "supported": list(SUPPORTED_VERSIONS)}


def error_reply(code: str, reason: str, **fields: Any) -> dict[str, Any]:
    """An error reply: ``code`` is machine-readable, ``reason`` says what went wrong."""
    return {"type": "error", "code": code, "reason": reason, **fields}


__all__ = [
    "FLAG_HISTORY",
    "FRAME_HEADER_SIZE",
    "MAX_BUFFER_PAYLOAD",
    "MAX_CONTROL_SIZE",
    "MAX_ECHO",
    "MAX_JSON_DEPTH",
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "BadFrame",
    "Control",
    "Event",
    "FrameDecoder",
    "FrameEncoder",
    "HelloRefused",
    "MidiBuffer",
    "ProtocolError",
    "check_hello",
    "clip",
    "decode_json",
    "encode_buffer_frame",
    "encode_control",
    "error_reply",
    "make_hello",
    "refusal",
]
