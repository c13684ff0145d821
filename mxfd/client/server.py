"""The daemon's side of the client socket: accept, check, serve every client from one loop.

Theory of operation
-------------------
:func:`start_server` binds a Unix stream socket (never TCP) with a listen
backlog of ``SOMAXCONN``, in a directory no other user can write to, and
serves it from one thread running a :mod:`selectors` event loop.

*The directory.*  The daemon's own directory (the default
``$XDG_RUNTIME_DIR/mxfd`` or ``/tmp/mxfd-UID``, any directory whose name
starts with ``mxfd``, and any it had to create) must be owned by the daemon's
uid: it is created 0700 (0710 and the configured group when one is granted
access), opened with ``O_NOFOLLOW`` and checked with ``fstat``, and its mode
is set on that descriptor.  A symlink, or a directory of another uid (what a
user who made ``/tmp/mxfd-1000`` first would leave), makes the daemon refuse
to start with one line; it never chmods a directory it does not own.  Any
other configured directory must belong to the daemon's uid or root and be
writable by nobody else, unless ``allow_shared_directory`` says otherwise.
The socket itself is 0600 (0660 with the group).

*Peers.*  Each accepted peer's credentials are read with ``SO_PEERCRED``; a
uid outside the allowed set (the daemon's own uid, ``allowed_uids`` and
members of the configured group) gets a refusal frame and is closed, and so
is a peer over ``max_clients`` (an error frame, code ``busy``).  File modes
keep strangers out; the uid check still holds if the modes are loosened.

*One loop.*  Every socket is non-blocking.  A client is a :class:`Session`:
a sans-I/O :class:`~mxfd.client.protocol.FrameDecoder` for what it sends and
a bounded output queue of encoded frames for what it is sent.  The loop
reads what is there, turns it into events and handles them in order, and
writes queued frames while the socket takes them.  Nothing blocks the loop
on one client, so idle and dripping connections cost a descriptor and a few
objects each, not a thread.

A session's states::

    HELLO --hello ok--> SERVING --EOF / error / server.close()--> CLOSED
      |                    |
      +--bad hello, or no  +--garbage (framing lost): error reply--> CLOSED
         whole hello by the deadline

The hello deadline (``HELLO_TIMEOUT``) counts from the accept, for the whole
hello: a peer dripping one byte a second is closed when it passes.

*Back-pressure* is still the loop not reading: when ``stream.submit``
reports the stream's allocator at its cap, the session keeps the buffer,
its socket leaves the read set, and every ``RETRY_INTERVAL`` the loop asks
``stream.wait_for_space(0)`` and submits the same buffer again; once it is
taken the session handles the frames already decoded and its socket is
selected for reading again.  Meanwhile the kernel's socket buffer fills and
the client's ``send`` blocks; nothing is dropped.  A session whose output
queue holds more than ``MAX_OUTPUT_BYTES`` (a client sending requests and
not reading the replies) is not read either, until the queue drains.

Per frame while SERVING:

* a MIDI buffer goes to the client's playback stream (opened on the first
  one).  A malformed buffer gets an ``error`` reply naming the problem, the
  byte offset and the buffer's ordinal; the stream validates whole before it
  applies anything, so the buffer is discarded whole and the session goes on;
* a control request has its fields checked (ids are integers or short
  strings, names and patterns bounded, patterns compiled with a guard) and
  gets its reply; an unknown or malformed request gets an ``error`` reply,
  one rate-limited log line, and the session goes on.  No reply echoes more
  than a clipped :func:`~mxfd.client.protocol.clip` of the peer's input, and
  a reply that still would not fit a frame is replaced by an ``error``;
* bytes that are not frames at all get one ``error`` reply (code
  ``garbage``) and the connection is closed (see :mod:`mxfd.client.protocol`).

Capture buffers arrive on daemon threads through the engine's subscription
callback, which only appends to the session's capture queue (bounded;
overflow is counted and announced with a ``dropped`` notice) and wakes the
loop through a pipe.  The loop moves them into the output queue as it
drains, as it does the frames of a ``history`` reply (produced lazily, the
session's requests not read until the last one is queued).

When a session ends for any reason its playback stream is closed (pending
events go back to the allocator, held notes and pedals are released) and its
subscription is cancelled.
"""

from __future__ import annotations

import collections
import errno
import grp
import importlib
import itertools
import logging
import math
import os
import re
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Protocol

from mxfd.client.client import default_socket_path, peer_credentials
from mxfd.client.protocol import (
    FLAG_HISTORY,
    MAX_CONTROL_SIZE,
    NEED_DATA,
    PROTOCOL_VERSION,
    BadFrame,
    Control,
    FrameDecoder,
    HelloRefused,
    MidiBuffer,
    ProtocolError,
    check_hello,
    clip,
    encode_buffer_frame,
    encode_control,
    error_reply,
    refusal,
)
from mxfd.core.allocator import AllocatorExhausted
from mxfd.core.wire import BadBufferError

log = logging.getLogger("mxfd.client.server")

# the regex parser the re module itself uses (it has no stub; its opcodes are its attributes)
_sre: Any = importlib.import_module("re._parser")

#: Seconds a new peer has for its whole hello, from the accept.
HELLO_TIMEOUT = 10.0
#: Connections served at once (hellos included); more are refused with a ``busy`` error.
MAX_CLIENTS = 2048
#: Capture buffers queued for one client before new ones are dropped (and counted).
MAX_CAPTURE_BACKLOG = 8192
#: Encoded bytes queued for one client before its requests are no longer read.
MAX_OUTPUT_BYTES = 1 << 20
#: Below this many queued bytes, capture and history frames are moved into the output queue.
REFILL_BYTES = 256 * 1024
#: How often a client stopped by back-pressure has its buffer offered again.
RETRY_INTERVAL = 0.005
#: Longest history a client may ask for, seconds.
MAX_HISTORY_SECONDS = 300.0
#: Longest file name a client may give in ``open`` (it is only shown in ``mxfd status``).
MAX_FILE_NAME = 200
#: Longest client name (the hello's ``client``), characters.
MAX_NAME = 64
#: Longest request type, and longest string id.
MAX_TYPE = 32
MAX_ID = 64
#: Longest subscribe or history pattern, characters.
MAX_PATTERN = 256
#: Largest integer id (what a JSON number round-trips exactly as a 64-bit integer).
MAX_INT_ID = (1 << 63) - 1
#: Clients listed in full in ``status``; the ``clients`` request pages through the rest.
MAX_LISTED_CLIENTS = 32
#: Log lines about one client's bad input: a burst, then one per interval (the rest counted).
LOG_BURST = 5
LOG_INTERVAL = 10.0
#: The same for all peers together.
SERVER_LOG_BURST = 50
#: Seconds a closing session's last frames (a refusal, a garbage error) wait for the peer to read them.
CLOSE_LINGER = 5.0
#: Refused peers kept half-open at once so they can read why (see ``Server._turn_away``).
MAX_TURNED_AWAY = 64
#: Bytes read from one client per pass of the loop.
READ_SIZE = 262144


# -- what the server needs from the engine ------------------------------------------


class AllocatorLike(Protocol):
    @property
    def in_use(self) -> int: ...


class PlaybackStreamLike(Protocol):
    """A client's playback stream (``mxfd.daemon.streams.PlaybackStream``)."""

    @property
    def channel_group(self) -> int: ...

    @property
    def allocator(self) -> AllocatorLike: ...

    def submit(self, data: bytes, start_time: int) -> int: ...

    def wait_for_space(self, timeout: float) -> bool: ...

    def pending(self) -> int: ...

    def close(self) -> None: ...


class SubscriptionLike(Protocol):
    def close(self) -> None: ...


CaptureCallback = Callable[[str, int, bytes], None]


class EngineLike(Protocol):
    """The engine contract the server serves (``mxfd.daemon.engine.Engine`` keeps it)."""

    @property
    def render_latency_100ns(self) -> int: ...

    def clock(self) -> int: ...

    def open_playback_stream(self, name: str) -> PlaybackStreamLike: ...

    def subscribe_capture(self, callback: CaptureCallback, pattern: Optional[str] = None) -> SubscriptionLike: ...

    def history(self, seconds: float) -> list[tuple[str, int, bytes]]: ...

    def status(self) -> dict[str, Any]: ...

    def register_status(self, name: str, fn: Callable[[], dict[str, Any]]) -> None: ...

    def panic(self, timeout: float = 1.0) -> dict[str, Any]: ...

    def request_reload(self, done: Callable[[dict[str, Any]], None]) -> None: ...


# -- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """The ``[client]`` section: socket path, optional group, extra allowed uids, limits."""

    socket: str = field(default_factory=default_socket_path)
    group: Optional[str] = None
    allowed_uids: tuple[int, ...] = ()
    max_clients: int = MAX_CLIENTS
    allow_shared_directory: bool = False
    hello_timeout: float = HELLO_TIMEOUT

    @classmethod
    def from_config(cls, config: Any) -> "ServerConfig":
        """Read the daemon's config: an object or mapping with a ``client`` section, or the section itself."""
        if config is None:
            return cls()
        if isinstance(config, ServerConfig):
            return config
        section = _get(config, "client", None)
        if section is None:
            section = config
        path = _get(section, "socket", None) or default_socket_path()
        group = _get(section, "group", None) or None
        uids = tuple(int(u) for u in (_get(section, "allowed_uids", None) or ()))
        return cls(
            socket=os.path.expanduser(str(path)),
            group=group,
            allowed_uids=uids,
            max_clients=int(_get(section, "max_clients", MAX_CLIENTS)),
            allow_shared_directory=bool(_get(section, "allow_shared_directory", False)),
            hello_timeout=float(_get(section, "hello_timeout", HELLO_TIMEOUT)),
        )


def _get(obj: Any, key: str, default: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class ServerSetupError(RuntimeError):
    """The socket could not be set up (path in use, unsafe directory, bad group, path too long...)."""


class DaemonRunning(ServerSetupError):
    """Another daemon answers on the socket; ``pid`` is its process (from ``SO_PEERCRED``)."""

    def __init__(self, path: str, pid: int) -> None:
        super().__init__(f"another mxfd daemon (pid {pid}) is listening on {path}")
        self.path = path
        self.pid = pid


# -- checking what a peer sends ---------------------------------------------------------


class _BadRequest(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _short(kind: str) -> str:
    """A request type as a reply may echo it."""
    return kind if len(kind) <= MAX_TYPE else kind[: MAX_TYPE - 1] + "…"


def _valid_id(rid: object) -> bool:
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -MAX_INT_ID <= rid <= MAX_INT_ID
    return isinstance(rid, str) and len(rid) <= MAX_ID


def printable_label(value: object, limit: int) -> Optional[str]:
    """A peer's string as it may be shown and logged: at most ``limit`` characters, each printable
    (a newline, an escape sequence or a lone surrogate would break ``mxfd status``: they become ``?``)."""
    if not isinstance(value, str) or not value:
        return None
    return "".join(c if c.isprintable() else "?" for c in value[:limit])


def client_name(value: object) -> Optional[str]:
    """A hello's ``client`` as it may be shown and logged: printable, at most :data:`MAX_NAME` characters."""
    return printable_label(value, MAX_NAME)


def _repeats_nest(items: Any, inside: bool) -> bool:
    """Whether a parsed pattern repeats something that can itself match in several ways."""
    for op, av in items:
        if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            lo, hi, body = av
            if inside and hi > 1 and lo != hi:  # a fixed count inside a repeat matches one way only
                return True
            if _repeats_nest(body, inside or hi > 1):
                return True
        elif op is _sre.BRANCH:
            if inside:
                return True
            if any(_repeats_nest(b, inside) for b in av[1]):
                return True
        elif op is _sre.SUBPATTERN:
            if _repeats_nest(av[-1], inside):
                return True
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            if _repeats_nest(av[1], inside):
                return True
        elif op is _sre.GROUPREF_EXISTS:
            if any(b is not None and _repeats_nest(b, inside) for b in av[1:]):
                return True
    return False


def compile_pattern(pattern: object) -> Optional[re.Pattern[str]]:
    """A subscribe/history pattern, checked: a string of at most :data:`MAX_PATTERN` characters
    that compiles and cannot backtrack exponentially (no repetition of a repetition or an
    alternative); None stays None.  Raises ``_BadRequest`` naming the problem."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise _BadRequest("bad-request", f"'pattern' must be a string or null, not {clip(pattern)}")
    if len(pattern) > MAX_PATTERN:
        raise _BadRequest("bad-request", f"'pattern' is {len(pattern)} characters; at most {MAX_PATTERN}")
    try:
        parsed = _sre.parse(pattern)
        if _repeats_nest(parsed.data, False):
            raise _BadRequest(
                "bad-request", f"bad pattern {clip(pattern)}: a repeated group that repeats or alternates "
                "inside can take exponential time; simplify it"
            )
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError, ValueError) as e:
        raise _BadRequest("bad-request", f"bad pattern {clip(pattern)}: {clip(str(e), 120)}") from None


class _LogBudget:
    """At most ``burst`` lines at once, then ``burst`` per ``LOG_INTERVAL``; the rest counted.

    A session's budget has the server's as ``parent``: many connections cannot flood the log either.
    """

    def __init__(self, burst: int = LOG_BURST, parent: Optional["_LogBudget"] = None) -> None:
        self.burst = float(burst)
        self.tokens = self.burst
        self.stamp = time.monotonic()
        self.suppressed = 0
        self.parent = parent

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.burst / LOG_INTERVAL)
        self.stamp = now

    def take(self) -> Optional[int]:
        """None when no line may be logged now; else how many were suppressed since the last one."""
        self._refill()
        if self.tokens < 1.0 or (self.parent is not None and self.parent.take() is None):
            self.suppressed += 1
            return None
        self.tokens -= 1.0
        n, self.suppressed = self.suppressed, 0
        return n


def _log_limited(budget: _LogBudget, level: int, msg: str, *args: object) -> None:
    suppressed = budget.take()
    if suppressed is None:
        return
    if suppressed:
        msg += " (%d more like it not logged)"
        args = (*args, suppressed)
    log.log(level, msg, *args)


# -- one client ------------------------------------------------------------------------


class Session:
    """One connected client: its decoder, its output queue, its stream and subscription.

    Every method except :meth:`_on_capture` runs on the server's loop thread.
    """

    def __init__(self, server: "Server", sock: socket.socket, ident: int, pid: int, uid: int, gid: int) -> None:
        self.server = server
        self.engine = server.engine
        self.sock = sock
        self.id = ident
        self.pid = pid
        self.uid = uid
        self.gid = gid
        self.name = f"client-{ident}"
        self.protocol = 0
        self.serving = False
        self.closed = False
        self.hello_deadline = time.monotonic() + server.hello_timeout
        self.stream: Optional[PlaybackStreamLike] = None
        self.subscription: Optional[SubscriptionLike] = None
        self.pattern: Optional[str] = None
        #: What the client says it plays (``open``'s ``file``), for ``mxfd status``.
        self.file: Optional[str] = None
        # counters
        self.buffers = 0  # buffer frames received (their ordinals)
        self.buffers_played = 0
        self.events = 0
        self.bad_buffers = 0
        self.bad_requests = 0
        self.backpressure_waits = 0
        self.capture_sent = 0
        self.capture_dropped = 0
        self._dropped_unreported = 0
        self._decoder = FrameDecoder()
        self._sources: dict[str, int] = {}
        self._out: collections.deque[memoryview] = collections.deque()
        self._out_bytes = 0
        self._close_when_sent = False
        self._held: Optional[MidiBuffer] = None  # the buffer waiting for room in the stream
        self._refusals = 0
        self._producer: Optional[Iterator[bytes]] = None
        self._producer_reply: Optional[dict[str, Any]] = None
        self._capq: collections.deque[tuple[str, int, bytes]] = collections.deque()
        self._cap_lock = threading.Lock()
        self._cap_signalled = False
        self._mask = 0
        self._log_budget = _LogBudget(parent=server._log_budget)

    # -- output ----------------------------------------------------------------

    def _queue(self, frame: bytes) -> None:
        self._out.append(memoryview(frame))
        self._out_bytes += len(frame)

    def send(self, message: dict[str, Any]) -> None:
        """Queue ``message``; one that cannot be encoded (too large, not JSON) becomes an ``error``."""
        try:
            frame = encode_control(message)
        except (ValueError, TypeError) as e:
            self.server.internal_errors += 1
            _log_limited(self._log_budget, logging.ERROR, "%s: a %s reply could not be sent: %s",
                         self.name, clip(message.get("type")), clip(str(e), 160))
            reply = error_reply("reply-too-large" if "exceeds" in str(e) else "internal",
                                f"the {clip(message.get('type'))} reply could not be encoded: {clip(str(e), 120)}")
            if "id" in message:
                reply["id"] = message["id"]
            frame = encode_control(reply)
        self._queue(frame)

    def _source_frames(self, name: str) -> bytes:
        """The ``source`` notice for ``name`` when this client has not had it yet."""
        if name in self._sources:
            return b""
        sid = len(self._sources) + 1
        self._sources[name] = sid
        return encode_control({"type": "source", "source": sid, "name": name})

    def _capture_frame(self, name: str, start: int, data: bytes, flags: int = 0) -> bytes:
        announce = self._source_frames(name)
        return announce + encode_buffer_frame(start, data, self._sources[name], flags)

    def flush(self) -> None:
        """Send what the socket takes now; refill from history and capture as the queue drains."""
        while True:
            while self._out:
                head = self._out[0]
                try:
                    n = self.sock.send(head)
                except (BlockingIOError, InterruptedError):
                    return
                self._out_bytes -= n
                if n == len(head):
                    self._out.popleft()
                else:
                    self._out[0] = head[n:]
                    return
            if self._close_when_sent:
                self.server._end(self, None)
                return
            if not self._refill():
                return

    def _refill(self) -> bool:
        """Move history and capture frames into the output queue; True when something was added."""
        added = False
        while self._out_bytes < REFILL_BYTES:
            if self._producer is not None:
                frame = next(self._producer, None)
                if frame is None:
                    self._producer = None
                    reply, self._producer_reply = self._producer_reply, None
                    if reply is not None:
                        self.send(reply)
                    self._handle_events()  # the requests behind the history request
                else:
                    self._queue(frame)
                added = True
                continue
            with self._cap_lock:
                item = self._capq.popleft() if self._capq else None
                dropped, self._dropped_unreported = self._dropped_unreported, 0
            if dropped:
                _log_limited(self._log_budget, logging.WARNING,
                             "%s: %d capture buffers dropped: the client reads too slowly", self.name, dropped)
                self.send({"type": "dropped", "buffers": dropped, "total": self.capture_dropped})
                added = True
            if item is None:
                break
            self._queue(self._capture_frame(*item))
            self.capture_sent += 1
            added = True
        return added

    # -- input ---------------------------------------------------------------------

    def readable(self) -> bool:
        """Whether the loop should read this client now (see the module's back-pressure notes)."""
        return (
            not self.closed
            and self._held is None
            and self._producer is None
            and not self._close_when_sent
            and self._out_bytes < MAX_OUTPUT_BYTES
        )

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            self.server._end(self, None)
            return
        self._decoder.receive_data(data)
        self._handle_events()

    def _handle_events(self) -> None:
        """Handle decoded events until the decoder needs data or the session must stop reading."""
        while not self.closed and self.readable():
            try:
                ev = self._decoder.next_event()
            except ProtocolError as e:
                self.server.protocol_errors += 1
                if not self.serving:
                    self.send(refusal(f"not an mxfd client: {e.reason}"))
                else:
                    log.warning("%s: %s; closing the connection", self.name, e)
                    self.send(error_reply("garbage", e.reason, offset=e.offset, fatal=True))
                self._close_after_send()
                return
            if ev is NEED_DATA:
                return
            if not self.serving:
                self._hello(ev)
            elif isinstance(ev, MidiBuffer):
                self.buffers += 1
                self._held = ev
                self._refusals = 0
                self._play()
            elif isinstance(ev, Control):
                self._request(ev.message)
            elif isinstance(ev, BadFrame):
                self._bad_frame(ev)

    def _close_after_send(self) -> None:
        """End the session once its last frames are out (or after ``CLOSE_LINGER`` if the peer does not read)."""
        self._close_when_sent = True
        self.server._lingering[self.id] = (time.monotonic() + CLOSE_LINGER, self)

    def _hello(self, first: object) -> None:
        try:
            if isinstance(first, BadFrame):
                raise HelloRefused(f"unreadable hello: {first.reason}")
            if not isinstance(first, Control):
                raise HelloRefused("expected a hello first, got a MIDI buffer")
            self.protocol = check_hello(first.message)
        except HelloRefused as e:
            self.server.refused_hellos += 1
            _log_limited(self.server._log_budget, logging.WARNING, "%s (pid %d): refused: %s",
                         self.name, self.pid, e.reason)
            self.send(refusal(e.reason))
            self._close_after_send()
            return
        name = client_name(first.message.get("client"))
        if name is not None:
            self.name = f"{name}-{self.id}"
        self.serving = True
        self.server._hello_done(self)
        self.send(
            {
                "type": "welcome",
                "protocol": PROTOCOL_VERSION,
                "server": "mxfd",
                "client_id": self.id,
                "now": self.engine.clock(),
                "render_latency_100ns": int(self.engine.render_latency_100ns),
            }
        )
        log.info("%s connected (pid %d, uid %d)", self.name, self.pid, self.uid)

    def _bad_frame(self, ev: BadFrame) -> None:
        if ev.kind == "buffer":
            self.buffers += 1
            self.bad_buffers += 1
            self.server.bad_buffers += 1
            _log_limited(self._log_budget, logging.INFO, "%s: buffer %d discarded: %s (byte %d)",
                         self.name, self.buffers, ev.reason, ev.offset)
            self.send(error_reply("bad-buffer", ev.reason, offset=ev.offset, buffer=self.buffers))
        else:
            self._bad_request_seen("control frame", ev.reason)
            self.send(error_reply("bad-request", ev.reason, offset=ev.offset))

    def _bad_request_seen(self, kind: str, reason: str) -> None:
        self.bad_requests += 1
        self.server.bad_requests += 1
        _log_limited(self._log_budget, logging.INFO, "%s: bad %s: %s", self.name, kind, clip(reason, 200))

    # -- playback --------------------------------------------------------------------

    def _play(self) -> None:
        """Offer the held buffer to the stream; it stays held (and the client unread) while the pool is full."""
        ev = self._held
        if ev is None:
            return
        if self.stream is None:
            self.stream = self.engine.open_playback_stream(self.name)
        stream = self.stream
        try:
            n = stream.submit(ev.data, ev.start_time)
        except BadBufferError as e:
            self._held = None
            self.bad_buffers += 1
            self.server.bad_buffers += 1
            _log_limited(self._log_budget, logging.INFO, "%s: buffer %d discarded: %s", self.name, self.buffers, e)
            self.send(error_reply("bad-buffer", e.reason, offset=e.offset, buffer=self.buffers))
            return
        except AllocatorExhausted as e:
            if stream.allocator.in_use == 0:
                # an empty pool could not take it: it can never fit, waiting would hang
                self._held = None
                self.bad_buffers += 1
                self.server.bad_buffers += 1
                self.send(
                    error_reply("buffer-too-large", f"the stream's pool cannot hold this buffer: {e}",
                                offset=0, buffer=self.buffers)
                )
                return
            if self._refusals == 0:
                self.backpressure_waits += 1
            elif self._refusals == 1:
                log.info("%s: stream pool full; not reading this client until it drains", self.name)
            self._refusals += 1
            self.server._blocked.add(self)
            return
        self._held = None
        self.server._blocked.discard(self)
        self.buffers_played += 1
        self.events += n

    def retry(self) -> None:
        """The loop's back-pressure tick: offer the held buffer again once the stream has room."""
        stream = self.stream
        if self._held is None or stream is None:
            self.server._blocked.discard(self)
            return
        if not stream.wait_for_space(0.0):
            return
        self._play()
        if self._held is None:
            self._handle_events()

    # -- requests -------------------------------------------------------------

    def _request(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        rid = msg.get("id")
        if not _valid_id(rid):
            reason = f"'id' must be an integer or a string of at most {MAX_ID} characters, not {clip(rid)}"
            self._bad_request_seen("request", reason)
            self.send(error_reply("bad-request", reason, request=_short(kind)))
            return
        handler = _HANDLERS.get(kind)
        try:
            if len(kind) > MAX_TYPE:
                raise _BadRequest("bad-request", f"request type of {len(kind)} characters; at most {MAX_TYPE}")
            if handler is None:
                raise _BadRequest("unknown-request", f"unknown request type {clip(kind, MAX_TYPE)}")
            reply = handler(self, msg)
        except _BadRequest as e:
            self._bad_request_seen("request", e.reason)
            reply = error_reply(e.code, e.reason, request=_short(kind))
        except Exception as e:  # a bug must cost this request, not the session: say so, once
            self.server.internal_errors += 1
            _log_limited(self._log_budget, logging.ERROR, "%s: %s request failed: %s: %s",
                         self.name, kind, type(e).__name__, clip(str(e), 200))
            log.debug("%s: %s request failed", self.name, kind, exc_info=True)
            reply = error_reply("internal", f"the {kind} request failed: {type(e).__name__}", request=kind)
        if reply is None:
            return
        if rid is not None:
            reply["id"] = rid
        if self._producer is not None:
            self._producer_reply = reply  # sent after the frames it counts
        else:
            self.send(reply)

    def _status(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"type": "status", "status": self.engine.status()}

    def _clients(self, msg: dict[str, Any]) -> dict[str, Any]:
        offset = msg.get("offset", 0)
        limit = msg.get("limit", MAX_LISTED_CLIENTS)
        for key, value in (("offset", offset), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _BadRequest("bad-request", f"{key!r} must be a whole number ≥ 0, not {clip(value)}")
        if not 1 <= limit <= MAX_LISTED_CLIENTS:
            raise _BadRequest("bad-request", f"'limit' must be from 1 to {MAX_LISTED_CLIENTS}, not {limit}")
        sessions = self.server.sessions
        page = [s.info() for s in sessions[offset : offset + limit]]
        return {"type": "clients", "total": len(sessions), "offset": offset, "clients": page}

    def _time(self, msg: dict[str, Any]) -> dict[str, Any]:
        latency = int(self.engine.render_latency_100ns)
        return {"type": "time", "now": self.engine.clock(), "render_latency_100ns": latency}

    def _sync(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "synced",
            "buffers": self.buffers,
            "buffers_played": self.buffers_played,
            "events": self.events,
            "bad_buffers": self.bad_buffers,
            "pending": self.stream.pending() if self.stream is not None else 0,
            "channel_group": self.stream.channel_group if self.stream is not None else None,
        }

    def _open(self, msg: dict[str, Any]) -> dict[str, Any]:
        # building a stream's pool takes a moment: a player asks for it before its timing starts
        file = printable_label(msg.get("file"), MAX_FILE_NAME)  # a label only: never opened, kept short
        if file is not None:
            self.file = file
        if self.stream is None:
            self.stream = self.engine.open_playback_stream(self.name)
        return {"type": "opened", "channel_group": self.stream.channel_group}

    def _stop(self, msg: dict[str, Any]) -> dict[str, Any]:
        discarded = 0
        if self.stream is not None:
            discarded = self.stream.pending()
            stream, self.stream = self.stream, None
            stream.close()
        return {"type": "stopped", "discarded": discarded}

    def _subscribe(self, msg: dict[str, Any]) -> dict[str, Any]:
        pattern = msg.get("pattern")
        compile_pattern(pattern)
        if self.subscription is not None:
            self.subscription.close()
        self.subscription = self.engine.subscribe_capture(self._on_capture, pattern)
        self.pattern = pattern
        return {"type": "subscribed", "pattern": pattern}

    def _unsubscribe(self, msg: dict[str, Any]) -> dict[str, Any]:
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        return {"type": "unsubscribed"}

    def _history(self, msg: dict[str, Any]) -> dict[str, Any]:
        seconds = msg.get("seconds")
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, (int, float))
            or not math.isfinite(seconds)
            or not 0 < seconds <= MAX_HISTORY_SECONDS
        ):
            limit = f"(0, {MAX_HISTORY_SECONDS:g}]"
            raise _BadRequest("bad-request", f"'seconds' must be a number in {limit}, not {clip(seconds)}")
        rx = compile_pattern(msg.get("pattern"))
        items = [item for item in self.engine.history(float(seconds)) if rx is None or rx.search(item[0])]
        self._producer = (self._capture_frame(name, start, data, FLAG_HISTORY) for name, start, data in items)
        return {"type": "history", "buffers": len(items)}

    # -- capture -------------------------------------------------------------

    def _on_capture(self, source: str, start_time: int, data: bytes) -> None:
        """Engine callback (daemon threads): queue, wake the loop once, return at once."""
        with self._cap_lock:
            if len(self._capq) >= MAX_CAPTURE_BACKLOG:
                self.capture_dropped += 1
                self._dropped_unreported += 1
                return
            self._capq.append((source, start_time, data))
            if self._cap_signalled:
                return
            self._cap_signalled = True
        self.server._wake(self)

    def _woken(self) -> None:
        with self._cap_lock:
            self._cap_signalled = False
        self.flush()

    # -- ending -----------------------------------------------------------------

    def close(self) -> None:
        """Ask the loop to end this session; returns at once (see :meth:`Server.close` to wait)."""
        self.server._call_soon(lambda: self.server._end(self, None))

    def _release(self) -> None:
        """Close the stream and subscription (loop thread; the session is already off the loop)."""
        if self.subscription is not None:
            self.subscription.close()
            self.subscription = None
        if self.stream is not None:
            stream, self.stream = self.stream, None
            pending = stream.pending()
            stream.close()
            if pending:
                log.info("%s: disconnected with %d events pending: returned, notes released", self.name, pending)

    def info(self) -> dict[str, Any]:
        stream = self.stream
        return {
            "id": self.id,
            "name": self.name,
            "pid": self.pid,
            "uid": self.uid,
            "protocol": self.protocol,
            "buffers": self.buffers,
            "buffers_played": self.buffers_played,
            "events": self.events,
            "bad_buffers": self.bad_buffers,
            "bad_requests": self.bad_requests,
            "backpressure_waits": self.backpressure_waits,
            "pending": stream.pending() if stream is not None else 0,
            "channel_group": stream.channel_group if stream is not None else None,
            "subscribed": self.subscription is not None,
            "pattern": self.pattern,
            "file": self.file,
            "capture_sent": self.capture_sent,
            "capture_dropped": self.capture_dropped,
        }


_HANDLERS: dict[str, Callable[[Session, dict[str, Any]], Optional[dict[str, Any]]]] = {
    "status": Session._status,
    "clients": Session._clients,
    "time": Session._time,
    "sync": Session._sync,
    "open": Session._open,
    "stop": Session._stop,
    "subscribe": Session._subscribe,
    "unsubscribe": Session._unsubscribe,
    "history": Session._history,
}


def _no_hello_again(session: Session, msg: dict[str, Any]) -> dict[str, Any]:
    raise _BadRequest("bad-request", "hello was already accepted on this connection")


_HANDLERS["hello"] = _no_hello_again


def _panic(session: Session, msg: dict[str, Any]) -> dict[str, Any]:
    """All notes and sound off on every channel group (every client's and keyboard's), for hanging notes."""
    result = session.engine.panic()
    return {"type": "panicked", "applied": bool(result["applied"]), "voices": result["voices"]}


_HANDLERS["panic"] = _panic

#: What a ``reloaded`` reply carries of the daemon's reload report.
RELOAD_FIELDS = ("ok", "config", "bank", "bank_changed", "error")


def _reload(session: Session, msg: dict[str, Any]) -> None:
    """Re-read the config as SIGHUP does; answered when the daemon's main loop has done it (the loop goes on)."""
    rid = msg.get("id")
    server = session.server

    def answer(report: dict[str, Any]) -> None:  # the daemon's main thread
        reply: dict[str, Any] = {"type": "reloaded", **{k: report.get(k) for k in RELOAD_FIELDS}}
        if rid is not None:
            reply["id"] = rid

        def send() -> None:  # the loop thread
            if not session.closed:
                session.send(reply)
                session.flush()

        server._call_soon(send)

    session.engine.request_reload(answer)


_HANDLERS["reload"] = _reload


# -- the server --------------------------------------------------------------------------


@dataclass
class _TurnedAway:
    """A refused peer's socket, half-closed, read and dropped until the peer closes or the deadline."""

    sock: socket.socket
    deadline: float
    fd: int = -1

    def __post_init__(self) -> None:
        self.fd = self.sock.fileno()


class Server:
    """The listening socket, its loop thread and its sessions.  Build it with :func:`start_server`
    (or :meth:`bind` then :meth:`serve`, to claim the socket before anything else starts)."""

    def __init__(self, engine: EngineLike, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.path = config.socket
        self.max_clients = config.max_clients
        self.hello_timeout = config.hello_timeout
        self.gid: Optional[int] = None
        if config.group:
            try:
                self.gid = grp.getgrnam(config.group).gr_gid
            except KeyError:
                raise ServerSetupError(f"client.group: no such group {config.group!r}") from None
        self.uid = os.geteuid()
        self.allowed_uids = frozenset({self.uid, *config.allowed_uids})
        self.accepted = 0
        self.refused_peers = 0
        self.refused_busy = 0
        self.refused_hellos = 0
        self.hello_timeouts = 0
        self.protocol_errors = 0
        self.bad_buffers = 0
        self.bad_requests = 0
        self.internal_errors = 0
        self._sessions: dict[int, Session] = {}
        self._hellos: dict[int, Session] = {}  # in accept order: the first has the nearest deadline
        self._blocked: set[Session] = set()
        self._lingering: dict[int, tuple[float, Session]] = {}  # in order of their deadlines
        self._turned_away: dict[int, _TurnedAway] = {}  # by descriptor, in order of their deadlines
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = False
        self._listener: Optional[socket.socket] = None
        self._inode: Optional[tuple[int, int]] = None
        self._thread: Optional[threading.Thread] = None
        self._selector: Optional[selectors.BaseSelector] = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._woken: set[Session] = set()
        self._calls: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_pending = False
        self._accept_paused_until = 0.0
        #: Log lines about bad input from all peers together (each session has its own as well).
        self._log_budget = _LogBudget(burst=SERVER_LOG_BURST)

    # -- setup ----------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve."""
        self.bind()
        self.serve()

    def bind(self) -> None:
        """Claim the socket: check the directory, replace a stale socket, bind and listen.

        Raises :class:`DaemonRunning` when another daemon answers there and
        :class:`ServerSetupError` for anything else that makes the path unsafe
        or unusable.  Peers that connect before :meth:`serve` wait in the backlog.
        """
        path = self.path
        if len(os.fsencode(path)) >= 108:
            raise ServerSetupError(f"client.socket: path too long for a Unix socket ({len(path)} bytes): {path}")
        self._prepare_directory(os.path.dirname(path) or ".")
        self._remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
            if self.gid is not None:
                os.chown(path, -1, self.gid)
            os.chmod(path, 0o660 if self.gid is not None else 0o600)
            sock.listen(socket.SOMAXCONN)
        except OSError as e:
            sock.close()
            raise ServerSetupError(f"cannot listen on {path}: {e}") from None
        sock.setblocking(False)
        st = os.stat(path)
        self._inode = (st.st_dev, st.st_ino)
        self._listener = sock
        _raise_fd_limit(self.max_clients + 64)

    def serve(self) -> None:
        """Start the loop thread on the bound socket."""
        listener = self._listener
        if listener is None:
            raise ServerSetupError("serve() before bind()")
        sel = selectors.DefaultSelector()
        sel.register(listener, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._selector = sel
        self._thread = threading.Thread(target=self._loop, name="mxfd-clients", daemon=True)
        self._thread.start()
        log.info("listening on %s (mode %s, at most %d clients)", self.path,
                 "0660" if self.gid is not None else "0600", self.max_clients)

    def _prepare_directory(self, directory: str) -> None:
        mode = 0o710 if self.gid is not None else 0o700
        own = os.path.basename(os.path.normpath(directory)).startswith("mxfd")
        created = False
        try:
            os.mkdir(directory, 0o700)
            created = True
        except FileExistsError:
            pass  # checked below, whoever made it
        except FileNotFoundError:
            try:
                os.makedirs(directory, mode=0o700)
                created = True
            except OSError as e:
                raise ServerSetupError(f"cannot create the socket directory {directory}: {e}") from None
        except OSError as e:
            raise ServerSetupError(f"cannot create the socket directory {directory}: {e}") from None
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                what = "a symlink" if os.path.islink(directory) else "not a directory"
                raise ServerSetupError(f"socket directory {directory} is {what}; refusing to use it") from None
            raise ServerSetupError(f"cannot open the socket directory {directory}: {e}") from None
        try:
            st = os.fstat(fd)
            perms = stat.S_IMODE(st.st_mode)
            if created or own:
                # the daemon's own directory: nobody else may own it, whatever its mode
                if st.st_uid != self.uid:
                    raise ServerSetupError(
                        f"socket directory {directory} belongs to uid {st.st_uid}, not to this daemon's "
                        f"uid {self.uid}: someone else made it; refusing to start (remove it, or set "
                        "XDG_RUNTIME_DIR or [client] socket)"
                    )
                if self.gid is not None and st.st_gid != self.gid:
                    os.fchown(fd, -1, self.gid)
                if perms != mode:
                    if not created:
                        log.warning("socket directory %s was mode %04o; setting %04o", directory, perms, mode)
                    os.fchmod(fd, mode)
            else:
                # a directory the config names (a home, /run/...): checked, never changed
                if st.st_uid not in (self.uid, 0):
                    raise ServerSetupError(
                        f"socket directory {directory} belongs to uid {st.st_uid}, not to this daemon's "
                        f"uid {self.uid} or root; refusing to use it"
                    )
                if perms & 0o022 and not self.config.allow_shared_directory:
                    raise ServerSetupError(
                        f"socket directory {directory} is mode {perms:04o}: other users could replace the "
                        "socket; refusing to use it (choose a private directory, or set [client] "
                        "allow_shared_directory = true)"
                    )
        finally:
            os.close(fd)

    @staticmethod
    def _remove_stale(path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ServerSetupError(f"client.socket: {path} exists and is not a socket; not touching it")
        pid = running_daemon(path)
        if pid is None:
            log.info("removing stale socket %s", path)
            os.unlink(path)
            return
        raise DaemonRunning(path, pid)

    # -- the loop ------------------------------------------------------------------

    def _loop(self) -> None:
        sel = self._selector
        assert sel is not None
        try:
            while not self._closing:
                try:
                    self._pass(sel)
                except Exception:  # a bug here must not end the socket for everyone: say so and go on
                    log.exception("client loop: unexpected error; serving on")
                    time.sleep(0.01)
        finally:
            self._shutdown()

    def _pass(self, sel: selectors.BaseSelector) -> None:
        """One pass of the loop: wait for what is ready, serve it, run the timers."""
        events = sel.select(self._timeout())
        for key, mask in events:
            data = key.data
            if data is None:
                if key.fileobj is self._listener:
                    self._accept()
                else:
                    self._drain_wakeups()
                continue
            if isinstance(data, _TurnedAway):
                self._discard_input(data)
                continue
            session: Session = data
            if session.closed:
                continue
            try:
                if mask & selectors.EVENT_READ and session.readable():
                    session.on_readable()
                if not session.closed:
                    session.flush()  # replies go out at once, without waiting for the next pass
            except OSError as e:
                self._end(session, e)
            except Exception as e:  # one client's failure ends that client, never the loop
                log.error("%s: session failed: %s: %s", session.name, type(e).__name__, clip(str(e), 200))
                log.debug("%s: session failed", session.name, exc_info=True)
                self._end(session, None)
            self._update(session)
        self._timers()

    def _timeout(self) -> Optional[float]:
        if self._blocked:
            return RETRY_INTERVAL
        timeout: Optional[float] = None
        if self._hellos:
            first = next(iter(self._hellos.values()))
            timeout = max(0.0, first.hello_deadline - time.monotonic())
        deadlines = []
        if self._lingering:
            deadlines.append(next(iter(self._lingering.values()))[0])
        if self._turned_away:
            deadlines.append(next(iter(self._turned_away.values())).deadline)
        for deadline in deadlines:
            left = max(0.0, deadline - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        if self._accept_paused_until:
            left = max(0.0, self._accept_paused_until - time.monotonic())
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    def _timers(self) -> None:
        now = time.monotonic()
        while self._hellos:
            first = next(iter(self._hellos.values()))
            if first.hello_deadline > now:
                break
            self.hello_timeouts += 1
            _log_limited(self._log_budget, logging.INFO, "%s (pid %d): no hello within %.0f s; closed",
                         first.name, first.pid, self.hello_timeout)
            self._end(first, None)
        while self._turned_away:
            entry = next(iter(self._turned_away.values()))
            if entry.deadline > now:
                break
            self._drop_turned_away(entry)
        while self._lingering:
            deadline, session = next(iter(self._lingering.values()))
            if deadline > now:
                break
            self._end(session, None)  # the peer does not read its refusal: no reason to keep it
        for session in list(self._blocked):
            try:
                session.retry()
                session.flush()
            except OSError as e:
                self._end(session, e)
            self._update(session)
        if self._accept_paused_until and now >= self._accept_paused_until:
            self._accept_paused_until = 0.0
            assert self._selector is not None and self._listener is not None
            self._selector.register(self._listener, selectors.EVENT_READ, None)

    def _update(self, session: Session) -> None:
        """Select the session's socket for what it can do now: read unless held back, write while output waits."""
        if session.closed:
            return
        mask = (selectors.EVENT_READ if session.readable() else 0) | (selectors.EVENT_WRITE if session._out else 0)
        if mask == session._mask:
            return
        sel = self._selector
        assert sel is not None
        if session._mask == 0:
            sel.register(session.sock, mask, session)
        elif mask == 0:
            sel.unregister(session.sock)
        else:
            sel.modify(session.sock, mask, session)
        session._mask = mask

    def _wake(self, session: Optional[Session] = None) -> None:
        """From any thread: have the loop flush ``session`` (and run queued calls) soon."""
        with self._lock:
            if session is not None:
                self._woken.add(session)
            if self._wake_pending or self._wake_w < 0:
                return
            self._wake_pending = True
            try:
                os.write(self._wake_w, b"!")
            except BlockingIOError:
                pass  # the pipe is full of wake-ups already: the loop will see them

    def _call_soon(self, fn: Callable[[], None]) -> None:
        with self._lock:
            self._calls.append(fn)
        self._wake()

    def _drain_wakeups(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass  # drained
        with self._lock:
            self._wake_pending = False
            woken, self._woken = self._woken, set()
            calls, self._calls = self._calls, collections.deque()
        for fn in calls:
            fn()
        for session in woken:
            if session.closed:
                continue
            try:
                session._woken()
            except OSError as e:
                self._end(session, e)
            self._update(session)

    # -- accepting --------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        for _ in range(64):  # a burst of connects must not starve the clients already here
            try:
                sock, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # out of descriptors: accept() would fail again at once; look again shortly
                    _log_limited(self._log_budget, logging.ERROR, "accept failed: %s; pausing for 0.1 s", e)
                    assert self._selector is not None
                    self._selector.unregister(listener)
                    self._accept_paused_until = time.monotonic() + 0.1
                    return
                log.error("accept failed: %s", e)
                return
            try:
                self._admit(sock)
            except OSError as e:
                log.info("could not admit a client: %s", e)
                sock.close()

    def _admit(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        pid, uid, gid = peer_credentials(sock)
        if not self.allowed(pid, uid, gid):
            self.refused_peers += 1
            _log_limited(self._log_budget, logging.WARNING,
                         "refused a client from uid %d (pid %d): not in the allowed set", uid, pid)
            self._turn_away(sock, refusal(f"uid {uid} is not allowed to use this daemon"))
            return
        if len(self._sessions) >= self.max_clients:
            self.refused_busy += 1
            _log_limited(self._log_budget, logging.WARNING,
                         "refused a client (pid %d): %d clients connected, the most [client] max_clients allows",
                         pid, len(self._sessions))
            self._turn_away(sock, error_reply(
                "busy", f"the daemon serves at most {self.max_clients} clients at once; try again later", fatal=True
            ))
            return
        with self._lock:
            ident = next(self._ids)
            session = Session(self, sock, ident, pid, uid, gid)
            self._sessions[ident] = session
            self.accepted += 1
        self._hellos[ident] = session
        self._update(session)

    def _turn_away(self, sock: socket.socket, message: dict[str, Any]) -> None:
        """Send one small frame to a peer that is not served, and close without losing that frame.

        Closing a Unix socket with the peer's hello still unread makes the peer's next read fail
        with ECONNRESET before it sees the frame.  So the socket is half-closed and what the peer
        sends is read and dropped until it closes (at most ``CLOSE_LINGER`` s, ``MAX_TURNED_AWAY``
        sockets at once; past that, the frame may be lost but nothing waits)."""
        try:
            sock.send(encode_control(message))
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            log.info("could not send the refusal: %s", e)
            sock.close()
            return
        if len(self._turned_away) >= MAX_TURNED_AWAY:
            sock.close()
            return
        assert self._selector is not None
        entry = _TurnedAway(sock, time.monotonic() + CLOSE_LINGER)
        self._turned_away[sock.fileno()] = entry
        self._selector.register(sock, selectors.EVENT_READ, entry)

    def _drop_turned_away(self, entry: "_TurnedAway") -> None:
        if self._turned_away.pop(entry.fd, None) is not None:
            if self._selector is not None:
                self._selector.unregister(entry.sock)
            entry.sock.close()

    def _discard_input(self, entry: "_TurnedAway") -> None:
        try:
            if entry.sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass  # reset by the peer: it is gone either way
        self._drop_turned_away(entry)

    def allowed(self, pid: int, uid: int, gid: int) -> bool:
        """The peer check: its uid is allowed, or it belongs to the configured group."""
        if uid in self.allowed_uids:
            return True
        if self.gid is None:
            return False
        if gid == self.gid:
            return True
        return self.gid in _process_groups(pid)

    def _hello_done(self, session: Session) -> None:
        self._hellos.pop(session.id, None)

    def _end(self, session: Session, error: Optional[OSError]) -> None:
        """Take ``session`` off the loop and release what it holds (loop thread)."""
        if session.closed:
            return
        session.closed = True
        if error is not None and not self._closing:
            log.info("%s (pid %d): connection lost: %s", session.name, session.pid, clip(str(error), 120))
        if session._mask and self._selector is not None:
            self._selector.unregister(session.sock)
            session._mask = 0
        self._hellos.pop(session.id, None)
        self._lingering.pop(session.id, None)
        self._blocked.discard(session)
        try:
            session._release()
        except Exception as e:
            log.error("%s: releasing its stream failed: %s: %s", session.name, type(e).__name__, e)
        finally:
            session.sock.close()
            with self._lock:
                self._sessions.pop(session.id, None)
                self._woken.discard(session)
            if session.serving:
                log.info("%s disconnected", session.name)

    # -- introspection ---------------------------------------------------------------

    @property
    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def status(self) -> dict[str, Any]:
        """The server's part of ``mxfd status``: counters and the first clients (``clients`` pages on)."""
        sessions = self.sessions
        return {
            "socket": self.path,
            "connected": len(sessions),
            "max_clients": self.max_clients,
            "accepted": self.accepted,
            "refused_peers": self.refused_peers,
            "refused_busy": self.refused_busy,
            "refused_hellos": self.refused_hellos,
            "hello_timeouts": self.hello_timeouts,
            "protocol_errors": self.protocol_errors,
            "bad_buffers": self.bad_buffers,
            "bad_requests": self.bad_requests,
            "internal_errors": self.internal_errors,
            "list": [s.info() for s in sessions[:MAX_LISTED_CLIENTS]],
            "unlisted": max(0, len(sessions) - MAX_LISTED_CLIENTS),
        }

    # -- stopping ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting, close every client (its stream closed, notes released), remove the socket."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self._thread is not None and self._thread is not threading.current_thread():
            self._wake()
            self._thread.join(10.0)
        elif self._thread is None:
            self._shutdown()

    def _shutdown(self) -> None:
        for session in self.sessions:
            self._end(session, None)
        for entry in list(self._turned_away.values()):
            self._drop_turned_away(entry)
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
            try:
                st = os.stat(self.path)
                if (st.st_dev, st.st_ino) == self._inode:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass  # someone removed it already; nothing to clean up
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        with self._lock:
            # under the lock: a capture callback still running must not write to a reused descriptor
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def running_daemon(path: str) -> Optional[int]:
    """The pid of the daemon answering on ``path`` (``SO_PEERCRED`` of a connection to it), or None."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
        return peer_credentials(probe)[0]
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except OSError as e:
        raise ServerSetupError(f"client.socket: cannot probe {path}: {e}") from None
    finally:
        probe.close()


def _raise_fd_limit(need: int) -> None:
    """Raise the soft descriptor limit towards ``need`` (up to the hard limit): each client holds one."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        want = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if want > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        if want < need:
            log.warning("descriptor limit %d is below the %d that [client] max_clients needs", want, need)


def _process_groups(pid: int) -> set[int]:
    """Supplementary groups of ``pid`` (SO_PEERCRED carries only the primary gid)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Groups:"):
                    return {int(g) for g in line.split()[1:]}
    except OSError as e:
        log.info("cannot read the groups of pid %d: %s", pid, e)
    return set()


def bind_server(engine: EngineLike, config: Any = None) -> Server:
    """Claim the client socket for ``engine`` without serving it yet (see :meth:`Server.bind`)."""
    server = Server(engine, ServerConfig.from_config(config))
    server.bind()
    return server


def start_server(engine: EngineLike, config: Any = None) -> Server:
    """Listen on the client socket and serve clients on ``engine``; returns the running :class:`Server`.

    ``config`` is the daemon's config (its ``client`` section is read), a
    :class:`ServerConfig`, or None for the defaults.
    """
    server = bind_server(engine, config)
    server.serve()
    engine.register_status("clients", server.status)
    return server


__all__ = [
    "MAX_CONTROL_SIZE",
    "DaemonRunning",
    "EngineLike",
    "PlaybackStreamLike",
    "Server",
    "ServerConfig",
    "ServerSetupError",
    "Session",
    "SubscriptionLike",
    "bind_server",
    "client_name",
    "compile_pattern",
    "printable_label",
    "running_daemon",
    "start_server",
]
