"""The daemon's side of the client socket: accept, check, serve each client.

Theory of operation
-------------------
:func:`start_server` binds a Unix stream socket (never TCP) in a directory
only the daemon's user can enter (0700; 0710 and the configured group when
one is granted access), sets the socket to 0600 (0660 with the group) and
starts one accepting thread.  Each accepted peer's credentials are read with
``SO_PEERCRED``; a uid outside the allowed set (the daemon's own uid, the
configured ``allowed_uids`` and members of the configured group) gets a
refusal frame and is closed.  File modes keep strangers out; the uid check
still holds if the modes are loosened by mistake.

Each client gets one :class:`Session` with a reader thread.  A thread per
client is deliberate: back-pressure is simply the reader *not reading*.
When ``stream.submit`` reports the stream's allocator at its cap, the reader
waits on ``stream.wait_for_space`` and retries the same buffer; meanwhile the
kernel's socket buffer fills and the client's own ``send`` blocks.  Nothing
is dropped, and no other client or live input waits, because every client
has its own playback stream, allocator and thread.

A session's states::

    HELLO --hello ok--> SERVING --EOF / error / server.close()--> CLOSED
      |                    |
      +--bad hello-------->+--garbage (framing lost): error reply--> CLOSED

Per frame while SERVING:

* a MIDI buffer goes to the client's playback stream (opened on the first
  one).  A malformed buffer gets an ``error`` reply naming the problem, the
  byte offset and the buffer's ordinal; the stream validates whole before it
  applies anything, so the buffer is discarded whole and the session goes on;
* a control request gets its reply (``status``, ``time``, ``sync``, ``open``,
  ``stop``, ``subscribe``, ``unsubscribe``, ``history``); an unknown or malformed
  request gets an ``error`` reply and the session goes on;
* bytes that are not frames at all get one ``error`` reply (code
  ``garbage``) and the connection is closed (see :mod:`mxfd.client.protocol`).

Capture buffers arrive on daemon threads through the engine's subscription
callback, which only appends to the session's outgoing queue (bounded;
overflow is counted and announced with a ``dropped`` notice) and wakes the
session's writer thread.  Replies and capture frames share one send lock, so
frames never interleave.

When a session ends for any reason its playback stream is closed (pending
events go back to the allocator, held notes and pedals are released) and its
subscription is cancelled.
"""

from __future__ import annotations

import collections
import grp
import itertools
import logging
import os
import re
import socket
import stat
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from mxfd.client.client import default_socket_path
from mxfd.client.protocol import (
    FLAG_HISTORY,
    NEED_DATA,
    PROTOCOL_VERSION,
    BadFrame,
    Control,
    FrameDecoder,
    HelloRefused,
    MidiBuffer,
    ProtocolError,
    check_hello,
    encode_buffer_frame,
    encode_control,
    error_reply,
    refusal,
)
from mxfd.core.allocator import AllocatorExhausted
from mxfd.core.wire import BadBufferError

log = logging.getLogger("mxfd.client.server")

#: Seconds a new peer has to send its hello.
HELLO_TIMEOUT = 10.0
#: Capture buffers queued for one client before new ones are dropped (and counted).
MAX_CAPTURE_BACKLOG = 8192
#: How often a blocked reader looks up from ``wait_for_space`` to see if it should stop.
SPACE_POLL = 0.25
#: Longest history a client may ask for, seconds.
MAX_HISTORY_SECONDS = 300.0

_PEERCRED = struct.Struct("3i")


# -- what the server needs from the engine ------------------------------------------


class PlaybackStream(Protocol):
    channel_group: int

    def submit(self, data: bytes, start_time: int) -> int: ...

    def wait_for_space(self, timeout: float) -> bool: ...

    def pending(self) -> int: ...

    def close(self) -> None: ...


class Subscription(Protocol):
    def close(self) -> None: ...


class EngineLike(Protocol):
    render_latency_100ns: int

    def clock(self) -> int: ...

    def open_playback_stream(self, name: str) -> Any: ...

    def subscribe_capture(self, callback: Callable[[str, int, bytes], None], pattern: Optional[str] = None) -> Any: ...

    def history(self, seconds: float) -> list[tuple[str, int, bytes]]: ...

    def status(self) -> dict[str, Any]: ...

    def register_status(self, name: str, fn: Callable[[], dict[str, Any]]) -> None: ...


# -- configuration -------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """The ``[client]`` section: socket path, optional group, extra allowed uids."""

    socket: str = field(default_factory=default_socket_path)
    group: Optional[str] = None
    allowed_uids: tuple[int, ...] = ()

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
        return cls(socket=os.path.expanduser(str(path)), group=group, allowed_uids=uids)


def _get(obj: Any, key: str, default: Any) -> Any:
    if isinstance(obj, dict):
        return obj.get(key, default)
    return getattr(obj, key, default)


class ServerSetupError(RuntimeError):
    """The socket could not be set up (path in use, bad group, path too long...)."""


# -- one client ------------------------------------------------------------------------


class Session:
    """One connected client: its reader (and, once subscribed, writer) thread and its stream."""

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
        self.stream: Any = None
        self.subscription: Any = None
        self.pattern: Optional[str] = None
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
        self._send_lock = threading.Lock()
        self._sources: dict[str, int] = {}
        self._outq: collections.deque[tuple[str, int, bytes]] = collections.deque()
        self._cond = threading.Condition()
        self._writer: Optional[threading.Thread] = None
        self._closing = False
        self._finished = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"mxfd-client-{ident}", daemon=True)

    # -- sending ------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        self._send_frame(encode_control(message))

    def _send_frame(self, frame: bytes) -> None:
        with self._send_lock:
            self.sock.sendall(frame)

    def _source_id(self, name: str) -> int:
        """The id announcing ``name`` to this client; call with the send lock held."""
        sid = self._sources.get(name)
        if sid is None:
            sid = len(self._sources) + 1
            self._sources[name] = sid
            self.sock.sendall(encode_control({"type": "source", "source": sid, "name": name}))
        return sid

    def _send_capture(self, name: str, start: int, data: bytes, flags: int = 0) -> None:
        with self._send_lock:
            sid = self._source_id(name)
            self.sock.sendall(encode_buffer_frame(start, data, sid, flags))

    # -- the reader -----------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._handshake():
                self._serve()
        except OSError as e:
            if not self._closing:
                log.info("%s (pid %d): connection lost: %s", self.name, self.pid, e)
        except Exception:
            log.exception("%s (pid %d): session failed", self.name, self.pid)
        finally:
            self._finish()

    def _handshake(self) -> bool:
        self.sock.settimeout(HELLO_TIMEOUT)
        try:
            first = self._next_event()
        except ProtocolError as e:
            self.server.protocol_errors += 1
            self.send(refusal(f"not an mxfd client: {e.reason}"))
            return False
        except TimeoutError:
            log.info("%s (pid %d): no hello within %.0f s", self.name, self.pid, HELLO_TIMEOUT)
            return False
        if first is None:
            return False
        try:
            if not isinstance(first, Control):
                raise HelloRefused("expected a hello first, got a MIDI buffer")
            self.protocol = check_hello(first.message)
        except HelloRefused as e:
            self.server.refused_hellos += 1
            log.warning("%s (pid %d): refused: %s", self.name, self.pid, e.reason)
            self.send(refusal(e.reason))
            return False
        assert isinstance(first, Control)
        client = first.message.get("client")
        if isinstance(client, str) and client:
            self.name = f"{client}-{self.id}"
        self.sock.settimeout(None)
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
        return True

    def _next_event(self) -> Any:
        """The next event, reading as needed; None at end of stream."""
        while True:
            ev = self._decoder.next_event()
            if ev is not NEED_DATA:
                return ev
            data = self.sock.recv(262144)
            if not data:
                return None
            self._decoder.receive_data(data)

    def _serve(self) -> None:
        while not self._closing:
            try:
                ev = self._next_event()
            except ProtocolError as e:
                self.server.protocol_errors += 1
                log.warning("%s: %s; closing the connection", self.name, e)
                self.send(error_reply("garbage", e.reason, offset=e.offset, fatal=True))
                return
            if ev is None:
                return
            if isinstance(ev, MidiBuffer):
                self.buffers += 1
                self._play(ev)
            elif isinstance(ev, Control):
                self._request(ev.message)
            elif isinstance(ev, BadFrame):
                self._bad_frame(ev)

    def _bad_frame(self, ev: BadFrame) -> None:
        if ev.kind == "buffer":
            self.buffers += 1
            self.bad_buffers += 1
            self.server.bad_buffers += 1
            log.info("%s: buffer %d discarded: %s (byte %d)", self.name, self.buffers, ev.reason, ev.offset)
            self.send(error_reply("bad-buffer", ev.reason, offset=ev.offset, buffer=self.buffers))
        else:
            self.bad_requests += 1
            self.send(error_reply("bad-request", ev.reason, offset=ev.offset))

    def _play(self, ev: MidiBuffer) -> None:
        if self.stream is None:
            self.stream = self.engine.open_playback_stream(self.name)
        stream = self.stream
        refusals = 0
        while True:
            try:
                n = stream.submit(ev.data, ev.start_time)
            except BadBufferError as e:
                self.bad_buffers += 1
                self.server.bad_buffers += 1
                log.info("%s: buffer %d discarded: %s", self.name, self.buffers, e)
                self.send(error_reply("bad-buffer", e.reason, offset=e.offset, buffer=self.buffers))
                return
            except AllocatorExhausted as e:
                if stream.allocator.in_use == 0:
                    # an empty pool could not take it: it can never fit, waiting would hang
                    self.bad_buffers += 1
                    self.server.bad_buffers += 1
                    self.send(
                        error_reply("buffer-too-large", f"the stream's pool cannot hold this buffer: {e}",
                                    offset=0, buffer=self.buffers)
                    )
                    return
                if refusals == 0:
                    self.backpressure_waits += 1
                elif refusals == 1:
                    log.info("%s: stream pool full; not reading this client until it drains", self.name)
                refusals += 1
                # back-pressure: stop reading this client until its stream has room again
                while not stream.wait_for_space(SPACE_POLL):
                    if self._closing:
                        return
                if refusals > 1:
                    # room for some events but not yet for this buffer: let the render thread drain more
                    time.sleep(SPACE_POLL / 50)
                continue
            self.buffers_played += 1
            self.events += n
            return

    # -- requests -------------------------------------------------------------

    def _request(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        rid = msg.get("id")
        handler = _HANDLERS.get(kind)
        try:
            if handler is None:
                raise _BadRequest("unknown-request", f"unknown request type {kind!r}")
            reply = handler(self, msg)
        except _BadRequest as e:
            self.bad_requests += 1
            reply = error_reply(e.code, e.reason, request=kind)
        if reply is None:
            return
        if rid is not None:
            reply["id"] = rid
        self.send(reply)

    def _status(self, msg: dict[str, Any]) -> dict[str, Any]:
        return {"type": "status", "status": self.engine.status()}

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
        if pattern is not None:
            if not isinstance(pattern, str):
                raise _BadRequest("bad-request", f"'pattern' must be a string or null, not {pattern!r}")
            try:
                re.compile(pattern)
            except re.error as e:
                raise _BadRequest("bad-request", f"bad pattern {pattern!r}: {e}") from None
        if self.subscription is not None:
            self.subscription.close()
        self._start_writer()
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
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_HISTORY_SECONDS:
            limit = f"(0, {MAX_HISTORY_SECONDS:g}]"
            raise _BadRequest("bad-request", f"'seconds' must be a number in {limit}, not {seconds!r}")
        pattern = msg.get("pattern")
        rx = None
        if pattern is not None:
            try:
                rx = re.compile(str(pattern))
            except re.error as e:
                raise _BadRequest("bad-request", f"bad pattern {pattern!r}: {e}") from None
        n = 0
        for name, start, data in self.engine.history(float(seconds)):
            if rx is None or rx.search(name):
                self._send_capture(name, start, data, FLAG_HISTORY)
                n += 1
        return {"type": "history", "buffers": n}

    # -- capture -------------------------------------------------------------

    def _on_capture(self, source: str, start_time: int, data: bytes) -> None:
        """Engine callback (daemon threads): queue and return at once."""
        with self._cond:
            if len(self._outq) >= MAX_CAPTURE_BACKLOG:
                self.capture_dropped += 1
                self._dropped_unreported += 1
                return
            self._outq.append((source, start_time, data))
            self._cond.notify()

    def _start_writer(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name=f"mxfd-client-{self.id}-w", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._outq and not self._closing:
                        self._cond.wait()
                    if self._closing:
                        return
                    source, start, data = self._outq.popleft()
                    dropped, self._dropped_unreported = self._dropped_unreported, 0
                if dropped:
                    log.warning("%s: %d capture buffers dropped: the client reads too slowly", self.name, dropped)
                    self.send({"type": "dropped", "buffers": dropped, "total": self.capture_dropped})
                self._send_capture(source, start, data)
                self.capture_sent += 1
        except OSError as e:
            if not self._closing:
                log.info("%s: capture send failed: %s", self.name, e)

    # -- ending -----------------------------------------------------------------

    def close(self) -> None:
        """Ask the session to end (from another thread) and wait until it has."""
        self._closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected: the reader is on its way out anyway
        with self._cond:
            self._cond.notify_all()
        if threading.current_thread() is not self.thread and self.thread.is_alive():
            self.thread.join(5.0)
        self._finished.wait(5.0)

    def _finish(self) -> None:
        self._closing = True
        try:
            if self.subscription is not None:
                self.subscription.close()
                self.subscription = None
            if self.stream is not None:
                stream, self.stream = self.stream, None
                pending = stream.pending()
                stream.close()
                if pending:
                    log.info("%s: disconnected with %d events pending: returned, notes released", self.name, pending)
        finally:
            with self._cond:
                self._cond.notify_all()
            if self._writer is not None and self._writer is not threading.current_thread():
                try:
                    # a writer blocked on a client that no longer reads must be woken too
                    self.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the peer is gone already: the writer's send fails by itself
                self._writer.join(5.0)
            try:
                self.sock.close()
            finally:
                self.server._forget(self)
                self._finished.set()
                log.info("%s disconnected", self.name)

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
            "capture_sent": self.capture_sent,
            "capture_dropped": self.capture_dropped,
        }


class _BadRequest(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


_HANDLERS: dict[str, Callable[[Session, dict[str, Any]], Optional[dict[str, Any]]]] = {
    "status": Session._status,
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


# -- the server --------------------------------------------------------------------------


class Server:
    """The listening socket and its sessions.  Build it with :func:`start_server`."""

    def __init__(self, engine: Any, config: ServerConfig) -> None:
        self.engine = engine
        self.config = config
        self.path = config.socket
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
        self.refused_hellos = 0
        self.protocol_errors = 0
        self.bad_buffers = 0
        self._sessions: dict[int, Session] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._closing = False
        self._listener: Optional[socket.socket] = None
        self._inode: Optional[tuple[int, int]] = None
        self._thread: Optional[threading.Thread] = None

    # -- setup ----------------------------------------------------------------

    def start(self) -> None:
        path = self.path
        if len(os.fsencode(path)) >= 108:
            raise ServerSetupError(f"client.socket: path too long for a Unix socket ({len(path)} bytes): {path}")
        self._prepare_directory(os.path.dirname(path) or ".")
        self._remove_stale(path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            if self.gid is not None:
                os.chown(path, -1, self.gid)
            os.chmod(path, 0o660 if self.gid is not None else 0o600)
            sock.listen(64)
        except OSError as e:
            sock.close()
            raise ServerSetupError(f"cannot listen on {path}: {e}") from None
        st = os.stat(path)
        self._inode = (st.st_dev, st.st_ino)
        self._listener = sock
        self._thread = threading.Thread(target=self._accept_loop, name="mxfd-client-accept", daemon=True)
        self._thread.start()
        log.info("listening on %s (mode %s)", path, "0660" if self.gid is not None else "0600")

    def _prepare_directory(self, directory: str) -> None:
        mode = 0o710 if self.gid is not None else 0o700
        created = False
        if not os.path.isdir(directory):
            try:
                os.makedirs(directory, mode=0o700)
            except OSError as e:
                raise ServerSetupError(f"cannot create the socket directory {directory}: {e}") from None
            created = True
        st = os.stat(directory)
        ours = st.st_uid == self.uid and not st.st_mode & stat.S_ISVTX
        # only a directory that is the daemon's own (made here, or its "mxfd" dir) gets its mode set:
        # a socket configured into /tmp or a home directory must not chmod those
        if created or (ours and os.path.basename(os.path.normpath(directory)).startswith("mxfd")):
            if self.gid is not None:
                os.chown(directory, -1, self.gid)
            os.chmod(directory, mode)

    @staticmethod
    def _remove_stale(path: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(st.st_mode):
            raise ServerSetupError(f"client.socket: {path} exists and is not a socket; not touching it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            log.info("removing stale socket %s", path)
            os.unlink(path)
            return
        except OSError as e:
            raise ServerSetupError(f"client.socket: cannot probe {path}: {e}") from None
        finally:
            probe.close()
        raise ServerSetupError(f"client.socket: another daemon is listening on {path}")

    # -- accepting --------------------------------------------------------------

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        while not self._closing:
            try:
                sock, _ = listener.accept()
            except OSError as e:
                if self._closing:
                    return
                log.error("accept failed: %s", e)
                continue
            try:
                self._admit(sock)
            except Exception:
                log.exception("could not admit a client")
                sock.close()

    def _admit(self, sock: socket.socket) -> None:
        pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
        if not self.allowed(pid, uid, gid):
            self.refused_peers += 1
            log.warning("refused a client from uid %d (pid %d): not in the allowed set", uid, pid)
            try:
                sock.settimeout(1.0)
                sock.sendall(encode_control(refusal(f"uid {uid} is not allowed to use this daemon")))
            except OSError as e:
                log.info("could not send the refusal to pid %d: %s", pid, e)
            sock.close()
            return
        with self._lock:
            if self._closing:
                sock.close()
                return
            ident = next(self._ids)
            session = Session(self, sock, ident, pid, uid, gid)
            self._sessions[ident] = session
            self.accepted += 1
        session.thread.start()

    def allowed(self, pid: int, uid: int, gid: int) -> bool:
        """The peer check: its uid is allowed, or it belongs to the configured group."""
        if uid in self.allowed_uids:
            return True
        if self.gid is None:
            return False
        if gid == self.gid:
            return True
        return self.gid in _process_groups(pid)

    def _forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)

    # -- introspection ---------------------------------------------------------------

    @property
    def sessions(self) -> list[Session]:
        with self._lock:
            return list(self._sessions.values())

    def status(self) -> dict[str, Any]:
        """The server's part of ``mxfd status``."""
        sessions = self.sessions
        return {
            "socket": self.path,
            "connected": len(sessions),
            "accepted": self.accepted,
            "refused_peers": self.refused_peers,
            "refused_hellos": self.refused_hellos,
            "protocol_errors": self.protocol_errors,
            "bad_buffers": self.bad_buffers,
            "list": [s.info() for s in sessions],
        }

    # -- stopping ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting, close every client (its stream closed, notes released), remove the socket."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        listener = self._listener
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # never connected: close() below is enough to end accept()
            listener.close()
        if self._thread is not None:
            self._thread.join(5.0)
        for session in self.sessions:
            session.close()
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass  # someone removed it already; nothing to clean up

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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


def start_server(engine: Any, config: Any = None) -> Server:
    """Listen on the client socket and serve clients on ``engine``; returns the running :class:`Server`.

    ``config`` is the daemon's config (its ``client`` section is read), a
    :class:`ServerConfig`, or None for the defaults.
    """
    server = Server(engine, ServerConfig.from_config(config))
    server.start()
    register = getattr(engine, "register_status", None)
    if register is not None:
        register("clients", server.status)
    return server


__all__ = ["Server", "ServerConfig", "ServerSetupError", "Session", "start_server"]
