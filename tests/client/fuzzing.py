"""Hostile frames for the client socket, and the check that a server answered each one by the rules.

Shared by the hypothesis fuzz test over a real :class:`~mxfd.client.server.Server`
(``tests/client/test_server_fuzz.py``) and the seeded one against a real
``mxfd run`` (``tests/e2e/test_client.py``).

A :class:`Case` is bytes on the wire and what docs/protocol.md says must
come back, worked out from the bytes by the documented rules (not by the
server's decoder):

* ``request``: a sound control header whose length is the payload sent: exactly
  one reply (an ``error`` of code ``bad-request``/``unknown-request``, or the
  request's own reply type), and the session goes on;
* ``buffer``: a sound buffer header whose length is the payload sent: no reply,
  or one ``bad-buffer``/``buffer-too-large`` error naming the buffer's ordinal
  (and, for a malformed buffer, the offset and reason of its first problem);
  the session goes on;
* ``framing``: a header the rules call garbage: exactly one ``garbage`` error
  (fatal, at the case's stream offset), then the connection is closed;
* ``raw``: anything else (a header whose length is not what follows, a partial
  header): whatever comes back is well formed, a fatal error is the last thing
  sent, and the connection ends within the time limit.

:func:`run_session` sends cases over one connection, each followed by a
``time`` request (the *sentinel*) whose reply shows the session went on, and
checks every answer as it reads it: every control frame is a known reply or
notice, every error is short and of a code bad input may earn (never
``internal``), and every status is one ``mxfd status`` can print
(:func:`check_status_prints`).  Cases after which the stream cannot be
predicted end the session: the peer half-closes and reads to the end.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from mxfd.client.commands import format_status, format_status_full
from mxfd.client.protocol import (
    FLAG_HISTORY,
    FRAME_HEADER,
    FRAME_HEADER_SIZE,
    KIND_BUFFER,
    KIND_CONTROL,
    MAX_BUFFER_PAYLOAD,
    MAX_CONTROL_SIZE,
    MAX_SKIPPABLE,
    START_TIME,
    SYNC,
    MidiBuffer,
    encode_control,
    make_hello,
)
from mxfd.core.midi import DATA_LENGTH
from mxfd.core.wire import (
    DMUS_EVENT_STRUCTURED,
    EVENT_HEADER_SIZE,
    HEADER,
    BadBufferError,
    encode_buffer,
    iter_records,
)
from tests.client.helpers import RawPeer
from tests.fuzzing import mutate

#: How long one case may take, from its first byte sent to its last answer read.
CASE_SECONDS = 2.0
#: The reply each request type gets when it is answered.
REPLY_TYPE = {
    "status": "status",
    "clients": "clients",
    "time": "time",
    "sync": "synced",
    "open": "opened",
    "stop": "stopped",
    "subscribe": "subscribed",
    "unsubscribe": "unsubscribed",
    "panic": "panicked",
    "history": "history",
}
#: Error codes bad input may earn; ``internal`` and ``reply-too-large`` mean a server bug.
INPUT_ERRORS = {"bad-request", "unknown-request", "bad-buffer", "buffer-too-large", "garbage"}
#: Notices a subscribed session may get at any time.
NOTICES = {"source", "dropped"}
#: Largest error frame: the reason and anything echoed are clipped.
MAX_ERROR_FRAME = 1024


# -- cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Bytes to send and which rule they fall under (see the module docstring)."""

    kind: str
    data: bytes
    #: For ``request``: the payload as standard JSON reads it (None when it does not parse).
    message: Any = None
    #: For ``buffer``: the start time's 8 bytes were there, and the DMUS_EVENTHEADER data.
    timed: bool = False
    buffer: bytes = b""

    @property
    def ends_session(self) -> bool:
        return self.kind in ("framing", "raw")


def frame(kind: int, payload: bytes, flags: int = 0, source: int = 0, length: Optional[int] = None) -> bytes:
    """A frame as sent, header fields as given (no checks: the point is to send what a client should not)."""
    n = len(payload) if length is None else length
    return FRAME_HEADER.pack(SYNC, kind, flags, source, n) + payload


def buffer_frame(start: int, data: bytes) -> bytes:
    return frame(KIND_BUFFER, START_TIME.pack(start) + data)


def classify(data: bytes) -> Case:
    """The case ``data`` is, by the header rules of docs/protocol.md ("Frames" and "Errors")."""
    if len(data) < FRAME_HEADER_SIZE:
        return Case("framing" if data[:2] != SYNC[: len(data[:2])] else "raw", data)
    sync, kind, flags, source, length = FRAME_HEADER.unpack_from(data)
    body = data[FRAME_HEADER_SIZE:]
    if sync != SYNC:
        return Case("framing", data)
    if kind == KIND_CONTROL:
        if flags or source or length > MAX_CONTROL_SIZE:
            return Case("framing", data)
        if length != len(body):
            return Case("raw", data)
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            message = None
        return Case("request", data, message=message)
    if kind == KIND_BUFFER:
        if flags & ~FLAG_HISTORY or length > MAX_SKIPPABLE:
            return Case("framing", data)
        if length != len(body) or length > MAX_BUFFER_PAYLOAD:
            return Case("raw", data)
        timed = length >= START_TIME.size
        return Case("buffer", data, timed=timed, buffer=body[START_TIME.size :] if timed else b"")
    return Case("framing", data)


# -- the seeded mutator ----------------------------------------------------------------

#: Values a field may be set to: the edges of every integer width the wire uses.
EDGES = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, (1 << 63) - 1, -(1 << 63), -1)


def mutate_buffer(data: bytes, rng: random.Random) -> bytes:
    """A DMUS_EVENTHEADER buffer with a record field set to an edge value, or its bytes mutated."""
    b = bytearray(data)
    offsets = []
    off = 0
    while off + EVENT_HEADER_SIZE <= len(b):  # the records of the valid buffer it started as
        offsets.append(off)
        off += (EVENT_HEADER_SIZE + HEADER.unpack_from(b, off)[0] + 7) & ~7
    if not offsets or rng.random() < 0.5:
        return mutate(bytes(b), rng)
    at = rng.choice(offsets)
    name = rng.choice(("cbEvent", "dwChannelGroup", "rtDelta", "dwFlags", "status"))
    value = rng.choice(EDGES)
    if name == "rtDelta":
        struct.pack_into("<q", b, at + 8, max(-(1 << 63), min(value, (1 << 63) - 1)))
    elif name == "status":
        if at + EVENT_HEADER_SIZE < len(b):
            b[at + EVENT_HEADER_SIZE] = value & 0xFF
    else:
        pos = {"cbEvent": 0, "dwChannelGroup": 4, "dwFlags": 16}[name]
        struct.pack_into("<I", b, at + pos, value & 0xFFFFFFFF)
    return bytes(b)


def mutate_header(data: bytes, rng: random.Random) -> bytes:
    """A frame with one header field set to an edge value (or a header byte mutated); the payload kept."""
    head = bytearray(data[:FRAME_HEADER_SIZE])
    rest = data[FRAME_HEADER_SIZE:]
    n = len(rest)
    choice = rng.randrange(6)
    if choice == 0:
        head[0:2] = bytes(rng.choice((b"MY", b"mx", b"\x00\x00", b"XM", b"M\x00")))
    elif choice == 1:
        head[2] = rng.choice((KIND_CONTROL, KIND_BUFFER, 0, ord("j"), ord("b"), 0xFF, rng.randrange(256)))
    elif choice == 2:
        head[3] = rng.choice((1, 2, 0x80, 0xFF))
    elif choice == 3:
        struct.pack_into("<I", head, 4, rng.choice((1, 0xFFFFFFFF, rng.randrange(1 << 32))))
    elif choice == 4:
        length = rng.choice((0, 1, 7, 8, max(0, n - 1), n + 1, n + 100, MAX_CONTROL_SIZE, MAX_CONTROL_SIZE + 1,
                             MAX_BUFFER_PAYLOAD + 1, MAX_SKIPPABLE, MAX_SKIPPABLE + 1, 0xFFFFFFFF))
        struct.pack_into("<I", head, 8, length)
    else:
        head = bytearray(mutate(bytes(head), rng, edits=2))
    return bytes(head) + rest


#: JSON values a request field may be set to: wrong types, edges, what a reply could not carry, deep, long.
HOSTILE_VALUES = (
    "NaN", "Infinity", "-1e999", "1" + "0" * 400, "-0", "1.5", "true", "null", '"x"', "[]", "{}",
    "[" * 40 + "]" * 40, '{"a":' * 40 + "1" + "}" * 40, json.dumps("é" * 300), json.dumps("(" * 300),
    json.dumps("(a+)+$"), *(str(v) for v in EDGES),
)


def mutate_request(message: dict[str, Any], rng: random.Random) -> bytes:
    """A request's JSON text with one field (its own, ``id``, ``type`` or a new one) set to a hostile value."""
    fields = {k: json.dumps(v) for k, v in message.items()}
    key = rng.choice([*fields, "id", "type", "seconds", "pattern", "limit", "x" * rng.randint(1, 40)])
    fields[key] = rng.choice(HOSTILE_VALUES)
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}").encode()


def seed_frames(now: int = 0) -> list[bytes]:
    """Valid frames to mutate: every request type with its usual fields, hellos, and buffers."""
    requests: list[dict[str, Any]] = [
        {"type": "status", "id": 1},
        {"type": "clients", "offset": 0, "limit": 32, "id": "c"},
        {"type": "time"},
        {"type": "sync", "id": 2},
        {"type": "open", "file": "song.mid"},
        {"type": "stop"},
        {"type": "subscribe", "pattern": "^test-kbd"},
        {"type": "subscribe", "pattern": None},
        {"type": "unsubscribe"},
        {"type": "panic", "id": 3},
        {"type": "history", "seconds": 1.5, "pattern": "kbd"},
        make_hello("fuzz", pid=1234),
    ]
    frames = [encode_control(r) for r in requests]
    later = now + 2_000_000  # 200 ms ahead: the notes sound, briefly
    for records in (
        [(later, 1, bytes([0x90, 60, 90])), (later + 500_000, 1, bytes([0x80, 60, 0]))],
        [(later, 1, bytes([0xC0, 19])), (later, 1, bytes([0xB0, 7, 100])), (later, 1, bytes([0xE0, 0, 64]))],
        [(later, 1, bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7])), (later, 2, bytes([0xF8]))],
        [(later, 1, bytes([0xF0, 0x43]) + bytes(range(40)) + bytes([0xF7])), (later + 1, 1, bytes([0xFE]))],
    ):
        start, data = encode_buffer(records)
        frames.append(buffer_frame(start, data))
    return frames


def mutated_frame(seeds: Sequence[bytes], rng: random.Random, framing_share: float = 0.05) -> bytes:
    """One seed frame, mutated: most often its payload (a request's field or bytes, a buffer's record
    fields or bytes; the header's length kept true), sometimes
    its header or into bytes that are no frame (``framing_share`` of the cases together)."""
    seed = rng.choice(seeds)
    kind = seed[2]
    payload = seed[FRAME_HEADER_SIZE:]
    r = rng.random()
    if r < framing_share / 2:
        return mutate_header(seed, rng)
    if r < framing_share:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
    if r < 0.2:
        return seed  # valid frames too: what a mutated one follows must still work
    if kind == KIND_BUFFER:
        start, data = payload[: START_TIME.size], payload[START_TIME.size :]
        if rng.random() < 0.2:
            start = START_TIME.pack(rng.choice(EDGES[-3:] + (0, rng.randrange(-(1 << 63), 1 << 63))))
        if rng.random() < 0.1:
            return frame(KIND_BUFFER, mutate(payload, rng))  # the start time too
        return frame(KIND_BUFFER, start + mutate_buffer(data, rng))
    if rng.random() < 0.5:
        return frame(KIND_CONTROL, mutate_request(json.loads(payload), rng))
    return frame(KIND_CONTROL, mutate(payload, rng))


# -- checking the answers -------------------------------------------------------------------------


@dataclass
class Answered:
    """What came back for one case."""

    case: Case
    replies: list[dict[str, Any]] = field(default_factory=list)  # control frames before the sentinel's reply
    history_buffers: int = 0
    went_on: bool = False  # the sentinel got its reply
    closed: bool = False
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        """A word for what happened (the tests check the fuzzing reached every kind)."""
        if self.replies and self.replies[-1]["type"] == "error":
            return self.replies[-1]["code"]
        if self.replies:
            return self.replies[-1]["type"]
        return "taken" if self.went_on else "closed"


class SessionBroken(AssertionError):
    """The server broke a rule; the message names the case."""


def _valid_id(rid: object) -> bool:
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return abs(rid) < 1 << 63
    return isinstance(rid, str) and len(rid) <= 64


def _well_formed(msg: Any, case: Case) -> dict[str, Any]:
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise SessionBroken(f"not a control message: {msg!r} (case {case!r:.300})")
    if msg["type"] == "error":
        size = len(encode_control(msg))
        if msg.get("code") not in INPUT_ERRORS or not isinstance(msg.get("reason"), str) or size > MAX_ERROR_FRAME:
            raise SessionBroken(f"bad error reply ({size} bytes): {msg!r:.400} (case {case!r:.300})")
        if msg.get("fatal") and msg["code"] != "garbage":
            raise SessionBroken(f"a fatal error that is not garbage: {msg!r}")
    elif msg["type"] not in set(REPLY_TYPE.values()) | NOTICES:
        raise SessionBroken(f"an unexpected message: {msg!r:.400} (case {case!r:.300})")
    return msg


def _check_request(a: Answered) -> None:
    case = a.case
    if not a.went_on or len(a.replies) != 1:
        raise SessionBroken(f"a request must get exactly one reply and the session go on: {a!r:.600}")
    (reply,) = a.replies
    msg = case.message
    sent_type = msg.get("type") if isinstance(msg, dict) else None
    sent_id = msg.get("id") if isinstance(msg, dict) else None
    if reply["type"] == "error":
        if reply["code"] not in ("bad-request", "unknown-request"):
            raise SessionBroken(f"a request got a {reply['code']} error: {a!r:.600}")
        if "id" in reply and (not _valid_id(sent_id) or reply["id"] != sent_id):
            raise SessionBroken(f"an error carries an id the request did not: {a!r:.600}")
        return
    if reply["type"] != REPLY_TYPE.get(str(sent_type)):
        raise SessionBroken(f"a {sent_type!r:.40} request got a {reply['type']!r} reply: {a!r:.600}")
    if sent_id is not None and reply.get("id") != sent_id:
        raise SessionBroken(f"the reply does not carry the request's id: {a!r:.600}")
    if reply["type"] == "status":
        check_status_prints(reply["status"])
    if reply["type"] == "history" and reply["buffers"] != a.history_buffers:
        raise SessionBroken(f"history counted {reply['buffers']} buffers and sent {a.history_buffers}")


def _check_buffer(a: Answered, ordinal: int) -> None:
    case = a.case
    if not a.went_on or len(a.replies) > 1:
        raise SessionBroken(f"a buffer gets at most one error and the session goes on: {a!r:.600}")
    expected: Optional[BadBufferError] = None
    if not case.timed:
        expected = BadBufferError(0, "no start time")
    else:
        expected = first_problem(case.buffer)
    if not a.replies:
        if expected is not None:
            raise SessionBroken(f"a malformed buffer was taken without an error ({expected}): {case!r:.300}")
        return
    (err,) = a.replies
    if err["type"] != "error" or err["code"] not in ("bad-buffer", "buffer-too-large") or err["buffer"] != ordinal:
        raise SessionBroken(f"buffer {ordinal} got {err!r:.300} (case {case!r:.300})")
    if expected is None:
        if err["offset"] != 0:  # only "more than the pool can ever hold", which is about the whole buffer
            raise SessionBroken(f"a valid buffer was refused at offset {err['offset']}: {err!r:.300}")
    elif err["code"] != "bad-buffer" or err["offset"] != expected.offset or (
        case.timed and err["reason"] != expected.reason
    ):
        raise SessionBroken(f"buffer {ordinal}: expected bad-buffer at {expected.offset} ({expected.reason}), "
                            f"got {err!r:.300}")


def first_problem(data: bytes) -> Optional[BadBufferError]:
    """The first thing wrong with a buffer for a playback stream, record by record: the wire rules
    (:func:`~mxfd.core.wire.iter_records`), and that a structured record holds one whole short
    message (docs/protocol.md, "Errors"): not too short for its status, no status byte among its
    data bytes.  Capture buffers may carry such records (a device sent them), so the wire rules
    alone take them; a playback stream refuses them."""
    try:
        for off, cb, _group, _delta, flags in iter_records(data):
            if not flags & DMUS_EVENT_STRUCTURED:
                continue
            body = off + EVENT_HEADER_SIZE
            n = DATA_LENGTH[data[body]]
            if cb <= n:
                return BadBufferError(off, f"structured event of {cb} bytes; status {data[body]:#04x} needs {n + 1}")
            for at in range(body + 1, body + 1 + n):
                if data[at] & 0x80:
                    return BadBufferError(at, f"status byte {data[at]:#04x} inside a structured message")
    except BadBufferError as e:
        return e
    return None


def check_status_prints(st: dict[str, Any]) -> None:
    """What ``mxfd status`` (and ``--verbose``) would print of ``st`` is printable lines of UTF-8:
    nothing a client sent may break the command or forge a line of it."""
    clients = st.get("clients", {}).get("list", [])
    labels = [c.get(k) for c in clients for k in ("name", "file") if isinstance(c.get(k), str)]
    if not all(label.isprintable() for label in labels):  # "cut to ... printable characters" (docs/protocol.md)
        raise SessionBroken(f"a client's name or file label is not printable: {labels!r:.600}")
    for text in (format_status(st), format_status_full(st)):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise SessionBroken(f"mxfd status could not print the status: {e}: {text!r:.600}") from None
        bad = [line for line in text.splitlines() if not line.isprintable()]
        if bad:
            raise SessionBroken(f"mxfd status would print control characters: {bad!r:.600}")


def run_session(
    path: str,
    cases: Sequence[Case],
    timeout: float = CASE_SECONDS,
    meanwhile: Optional[Callable[[], None]] = None,
    split: Optional[random.Random] = None,
) -> list[Answered]:
    """Send ``cases`` over one new connection, each followed by the sentinel, and check every answer.

    A case that ends the session must be the last.  ``meanwhile`` is called
    before the last case, while the session holds what the others left (a
    stream, a subscription, a label).  With ``split``, each case goes out in
    up to four pieces cut where that random says, a moment apart, so frames
    arrive in parts.  Returns what came back for each case; raises
    :class:`SessionBroken` (an AssertionError) naming the first rule the
    server broke.
    """
    for c in cases[:-1]:
        assert not c.ends_session, "only the last case may end the session"
    peer = RawPeer(path)
    try:
        hello = encode_control(make_hello("fuzz"))
        peer.send(hello)
        welcome = peer.read()
        if not isinstance(welcome, dict) or welcome.get("type") != "welcome":
            raise SessionBroken(f"no welcome: {welcome!r}")
        offset = len(hello)
        buffers = 0
        subscribed = False
        out = []
        for i, case in enumerate(cases):
            last = i == len(cases) - 1
            if last and meanwhile is not None:
                meanwhile()
            if case.kind == "buffer":
                buffers += 1
            a = _exchange(peer, case, f"fuzz-{i}", last, timeout, subscribed, split)
            out.append(a)
            if case.kind == "request":
                _check_request(a)
                answer = a.replies[0]["type"]
                subscribed = answer == "subscribed" or (subscribed and answer != "unsubscribed")
            elif case.kind == "buffer":
                _check_buffer(a, buffers)
            elif case.kind == "framing":
                if a.went_on or len(a.replies) != 1 or not a.closed:
                    raise SessionBroken(f"garbage must get one error and a close: {a!r:.600}")
                err = a.replies[0]
                if err["type"] != "error" or err["code"] != "garbage" or err.get("fatal") is not True:
                    raise SessionBroken(f"garbage got {err!r:.300}")
                if err["offset"] != offset:
                    raise SessionBroken(f"garbage at stream byte {offset} reported at {err['offset']}")
            offset += len(case.data) + len(_sentinel(f"fuzz-{i}"))
        return out
    finally:
        peer.close()


def _sentinel(rid: str) -> bytes:
    return encode_control({"type": "time", "id": rid})


def _exchange(
    peer: RawPeer, case: Case, rid: str, last: bool, timeout: float, subscribed: bool, split: Optional[random.Random]
) -> Answered:
    """Send one case and its sentinel; read until the sentinel's reply (and, for the last case, the end)."""
    a = Answered(case)
    t0 = time.monotonic()
    peer.sock.settimeout(timeout)
    data = case.data + _sentinel(rid)
    cuts = sorted(split.randrange(len(data)) for _ in range(split.randint(0, 3))) if split is not None else []
    try:
        for begin, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            if begin:
                time.sleep(0.0005)
            peer.send(data[begin:end])
        if last:
            peer.sock.shutdown(socket.SHUT_WR)
    except (BrokenPipeError, ConnectionResetError):
        if not case.ends_session:
            raise SessionBroken(f"the server closed the connection on {case!r:.300}") from None
    fatal = False
    while True:
        try:
            ev = peer.read()
        except ConnectionResetError:
            # Linux resets rather than ends a Unix stream closed with unread input: the
            # bytes after garbage, which the server rightly never reads
            if not fatal:
                raise SessionBroken(f"connection reset without a garbage error: {a!r:.600}") from None
            ev = None
        except TimeoutError:
            raise SessionBroken(f"no answer within {timeout} s: {a!r:.600}") from None
        if ev is None:
            a.closed = True
            if not last and not fatal:
                raise SessionBroken(f"the server closed the connection on {case!r:.300}")
            break
        if fatal:
            raise SessionBroken(f"more after a fatal error: {ev!r:.300}")
        if isinstance(ev, MidiBuffer):
            if ev.history:
                a.history_buffers += 1
            elif not subscribed:
                raise SessionBroken(f"a capture buffer for a session that did not subscribe: {ev!r:.200}")
            continue
        msg = _well_formed(ev, case)
        if msg["type"] in NOTICES:
            if msg["type"] == "dropped" and not subscribed:
                raise SessionBroken(f"a dropped notice for a session that did not subscribe: {msg!r}")
            continue
        if msg["type"] == "time" and msg.get("id") == rid:
            a.went_on = True
            if not last:
                break
            continue
        if a.went_on:
            raise SessionBroken(f"a reply after the sentinel's: {msg!r:.300}")
        a.replies.append(msg)
        fatal = bool(msg.get("fatal"))
    a.seconds = time.monotonic() - t0
    if a.seconds > timeout:
        raise SessionBroken(f"case took {a.seconds:.2f} s (limit {timeout} s): {a!r:.600}")
    return a


__all__ = [
    "CASE_SECONDS",
    "Answered",
    "Case",
    "SessionBroken",
    "buffer_frame",
    "check_status_prints",
    "classify",
    "frame",
    "mutate_buffer",
    "mutate_header",
    "mutate_request",
    "mutated_frame",
    "run_session",
    "seed_frames",
]
