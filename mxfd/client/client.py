"""``Client``: talk to a running mxfd daemon over its local socket.

Theory of operation
-------------------
One :class:`Client` is one connection, used from one thread.  It sends the
hello when it connects and keeps a :class:`~mxfd.client.protocol.FrameDecoder`
for what the daemon sends back.  Everything the daemon sends is one of:

* a reply to a request (it carries the request's ``"id"``),
* an error about a buffer the client sent (``"buffer"`` gives its ordinal,
  counted from 1 on this connection), kept in :attr:`Client.errors`,
* a capture buffer (after :meth:`Client.subscribe`), kept until
  :meth:`Client.receive` takes it, with the ``"source"`` notices that name
  each capture source first.

Before the hello the client reads the listening process's credentials
(``SO_PEERCRED``) and talks only to a daemon run by the user itself (or by
root when ``trust_root`` says so): a socket path another user managed to
take over gets a refusal, not a conversation.

MIDI buffers are sent without waiting for an answer.  While a send is
blocked (the daemon stops reading a client whose stream's pool is full: that
is its back-pressure), the client keeps reading what the daemon sends, so
the two can never wait on each other.
"""

from __future__ import annotations

import collections
import os
import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Collection, Iterable, Optional

from mxfd.client.protocol import (
    NEED_DATA,
    BadFrame,
    Control,
    FrameDecoder,
    HelloRefused,
    MidiBuffer,
    ProtocolError,
    encode_buffer_frame,
    encode_control,
    make_hello,
)
from mxfd.core.wire import MAX_BUFFER_SIZE, encode_buffer, event_size

#: Socket file name inside the runtime directory.
SOCKET_NAME = "mxfd.sock"
#: How long :meth:`Client.reload` waits for its answer: a soundfont is loaded meanwhile.
RELOAD_TIMEOUT = 60.0


def default_socket_path() -> str:
    """``$XDG_RUNTIME_DIR/mxfd/mxfd.sock`` (``/tmp/mxfd-UID/mxfd.sock`` without a runtime dir).

    The same rule as the daemon's config default, so both ends meet.
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "mxfd", SOCKET_NAME)
    return os.path.join("/tmp", f"mxfd-{os.getuid()}", SOCKET_NAME)


class ClientError(RuntimeError):
    """The daemon could not be reached or the connection broke."""


_PEERCRED = struct.Struct("3i")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a connected Unix socket."""
    pid, uid, gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    return pid, uid, gid


def trusted_daemon_uids(trust_root: bool = False) -> frozenset[int]:
    """The uids a client talks to: its own (and root's with ``trust_root``)."""
    uids = {os.getuid(), os.geteuid()}
    if trust_root:
        uids.add(0)
    return frozenset(uids)


def check_daemon(sock: socket.socket, path: str, trusted: Collection[int]) -> int:
    """The daemon's pid, or :class:`ClientError` when the socket's server runs under a uid not in ``trusted``."""
    pid, uid, _gid = peer_credentials(sock)
    if uid not in trusted:
        mine = " or ".join(str(u) for u in sorted(trusted))
        raise ClientError(
            f"{path} is served by uid {uid} (pid {pid}), not by uid {mine}: refusing to talk to it "
            "(another user's process holds the socket path)"
        )
    return pid


class ServerError(RuntimeError):
    """The daemon answered a request with an error; ``reply`` is the whole reply."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(f"{reply.get('code', 'error')}: {reply.get('reason', reply)}")
        self.reply = reply


@dataclass(frozen=True)
class Captured:
    """A completed capture buffer: where it came from, when it starts, its bytes."""

    source: str
    start_time: int
    data: bytes
    history: bool = False


class Client:
    """A connection to the daemon's socket.

    >>> with Client() as c:                       # doctest: +SKIP
    ...     now, latency = c.time()
    ...     c.play([(now + latency + 1_000_000, 1, bytes([0x90, 69, 100]))])
    """

    def __init__(
        self,
        path: Optional[str] = None,
        name: str = "mxfd-client",
        timeout: float = 10.0,
        *,
        trust_root: bool = False,
        trusted_uids: Optional[Collection[int]] = None,
    ) -> None:
        self.path = path or default_socket_path()
        self.name = name
        self.timeout = timeout
        #: Errors the daemon sent about buffers (not replies to requests).
        self.errors: list[dict[str, Any]] = []
        #: Notices the daemon sent unasked (``"dropped"`` and the like).
        self.notices: list[dict[str, Any]] = []
        #: Buffers sent so far (error replies name them by this ordinal).
        self.buffers_sent = 0
        self._decoder = FrameDecoder()
        self._replies: dict[int, dict[str, Any]] = {}
        self._captured: collections.deque[Captured] = collections.deque()
        self._history: Optional[list[Captured]] = None
        self._sources: dict[int, str] = {}
        self._next_id = 1
        self._closed = False
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(self.path)
        except FileNotFoundError:
            self._sock.close()
            raise ClientError(f"no daemon socket at {self.path}: is `mxfd run` running?") from None
        except ConnectionRefusedError:
            self._sock.close()
            raise ClientError(f"nothing listens on {self.path}: the daemon is not running") from None
        except PermissionError:
            self._sock.close()
            raise ClientError(f"permission denied on {self.path}: the daemon belongs to another user") from None
        except OSError as e:
            self._sock.close()
            raise ClientError(f"cannot connect to {self.path}: {e}") from None
        trusted = trusted_daemon_uids(trust_root) if trusted_uids is None else frozenset(trusted_uids)
        try:
            #: The daemon's pid (from the socket's credentials).
            self.daemon_pid = check_daemon(self._sock, self.path, trusted)
        except BaseException:
            self._sock.close()
            raise
        self._sock.setblocking(False)
        try:
            self._send_bytes(encode_control(make_hello(name, pid=os.getpid())))
            reply = self._wait(lambda: self._welcome, timeout)
        except BaseException:
            self._sock.close()
            raise
        if reply.get("type") == "refused":
            self._sock.close()
            raise HelloRefused(str(reply.get("reason")))
        if reply.get("type") == "error":
            self._sock.close()
            raise ClientError(f"the daemon at {self.path} turned the connection away: {reply.get('reason')}")
        #: The daemon's welcome: protocol, server, client_id, now, render_latency_100ns.
        self.welcome = reply

    _welcome: Optional[dict[str, Any]] = None

    # -- plumbing ------------------------------------------------------------

    def fileno(self) -> int:
        return self._sock.fileno()

    def _poll(self, events: int, timeout: Optional[float]) -> int:
        """The socket's ready events (poll, not select: a process may hold descriptors past 1024)."""
        p = select.poll()
        p.register(self._sock, events)
        ready = p.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999)))
        return ready[0][1] if ready else 0

    def _recv_some(self, timeout: Optional[float]) -> bool:
        """Read what is there (waiting up to ``timeout``); False when nothing came."""
        if timeout is None or timeout > 0:
            if not self._poll(select.POLLIN, timeout) & (select.POLLIN | select.POLLHUP | select.POLLERR):
                return False
        try:
            data = self._sock.recv(262144)
        except BlockingIOError:
            return False
        except OSError as e:
            raise ClientError(f"connection to the daemon broke: {e}") from None
        if not data:
            self._closed = True
            raise ClientError("the daemon closed the connection")
        self._decoder.receive_data(data)
        self._drain_events()
        return True

    def _drain_events(self) -> None:
        while True:
            try:
                ev = self._decoder.next_event()
            except ProtocolError as e:
                raise ClientError(f"garbled data from the daemon: {e}") from None
            if ev is NEED_DATA:
                return
            if isinstance(ev, Control):
                self._on_control(ev.message)
            elif isinstance(ev, MidiBuffer):
                item = Captured(self._sources.get(ev.source, f"source-{ev.source}"), ev.start_time, ev.data, ev.history)
                if ev.history and self._history is not None:
                    self._history.append(item)
                else:
                    self._captured.append(item)
            elif isinstance(ev, BadFrame):
                self.notices.append({"type": "bad-frame", "reason": ev.reason})

    def _on_control(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        rid = msg.get("id")
        if self._welcome is None and (kind in ("welcome", "refused") or (kind == "error" and msg.get("fatal"))):
            self._welcome = msg  # an error before the welcome: the daemon turned this connection away
        elif kind == "source":
            self._sources[int(msg["source"])] = str(msg["name"])
        elif isinstance(rid, int):
            self._replies[rid] = msg
        elif kind == "error":
            self.errors.append(msg)
        else:
            self.notices.append(msg)

    def _wait(self, ready: Any, timeout: Optional[float]) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            value = ready()
            if value is not None:
                return value
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise ClientError(f"no answer from the daemon within {timeout} s")
            self._recv_some(left)

    def _send_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self._sock.send(view)
            except BlockingIOError:
                n = 0
            except OSError as e:
                raise ClientError(f"connection to the daemon broke: {e}") from None
            view = view[n:]
            if view:
                # the daemon is not reading (back-pressure): keep reading its side meanwhile
                if self._poll(select.POLLIN | select.POLLOUT, None) & (select.POLLIN | select.POLLHUP):
                    self._recv_some(0)

    # -- requests ------------------------------------------------------------

    def request(self, kind: str, timeout: Optional[float] = None, **fields: Any) -> dict[str, Any]:
        """Send a control request and wait for its reply; an error reply raises :class:`ServerError`."""
        rid = self._next_id
        self._next_id += 1
        self._send_bytes(encode_control({"type": kind, "id": rid, **fields}))
        reply: dict[str, Any] = self._wait(lambda: self._replies.pop(rid, None), timeout or self.timeout)
        if reply.get("type") == "error":
            raise ServerError(reply)
        return reply

    def status(self) -> dict[str, Any]:
        """The daemon's status report (what ``mxfd status --json`` prints)."""
        status: dict[str, Any] = self.request("status")["status"]
        return status

    def time(self) -> tuple[int, int]:
        """``(now, render_latency)`` on the daemon's master clock, 100 ns units."""
        r = self.request("time")
        return int(r["now"]), int(r["render_latency_100ns"])

    def sync(self) -> dict[str, Any]:
        """Wait until the daemon has taken every buffer sent so far; its counters for this client."""
        return self.request("sync")

    def open_playback(self, file: Optional[str] = None) -> int:
        """Have the daemon build this client's playback stream now; returns its channel group.

        The first buffer does this anyway; a player that asks first keeps the
        moment it takes out of its timing.  ``file`` names what is played, for
        ``mxfd status``.
        """
        fields: dict[str, Any] = {} if file is None else {"file": file}
        return int(self.request("open", **fields)["channel_group"])

    def stop(self) -> dict[str, Any]:
        """Drop everything still queued for playback and release this client's notes."""
        return self.request("stop")

    def panic(self) -> dict[str, Any]:
        """All notes and sound off on every channel group (not only this client's): ``applied``, ``voices``."""
        return self.request("panic")

    def reload(self, timeout: float = RELOAD_TIMEOUT) -> dict[str, Any]:
        """Have the daemon re-read its config and soundfont, as SIGHUP does.

        Answered once it is done: ``ok``, ``bank`` (the one playing now), ``bank_changed``
        and ``error`` (why the config or the soundfont was refused, the running one kept; or None).
        """
        return self.request("reload", timeout=timeout)

    # -- playback ------------------------------------------------------------

    def send_buffer(self, start_time: int, data: bytes | bytearray | memoryview) -> int:
        """Send one DMUS_EVENTHEADER buffer; returns its ordinal on this connection."""
        frame = encode_buffer_frame(start_time, data)
        self._send_bytes(frame)
        self.buffers_sent += 1
        if self._sock.fileno() >= 0:
            self._recv_some(0)
        return self.buffers_sent

    def play(self, records: Iterable[tuple[int, int, bytes]]) -> int:
        """Send ``(pres_time_100ns, channel_group, message)`` records, packed into as few buffers as fit.

        Returns the number of buffers sent.  Channel group 1 is this client's own group.
        """
        sent = 0
        batch: list[tuple[int, int, bytes]] = []
        size = 0
        for rec in records:
            need = event_size(len(rec[2]))
            if batch and size + need > MAX_BUFFER_SIZE:
                self.send_buffer(*encode_buffer(batch))
                sent += 1
                batch, size = [], 0
            batch.append(rec)
            size += need
        if batch:
            self.send_buffer(*encode_buffer(batch))
            sent += 1
        return sent

    # -- capture -------------------------------------------------------------

    def subscribe(self, pattern: Optional[str] = None) -> dict[str, Any]:
        """Receive the capture buffers of every input whose name matches ``pattern`` (None: all)."""
        return self.request("subscribe", pattern=pattern)

    def unsubscribe(self) -> dict[str, Any]:
        return self.request("unsubscribe")

    def receive(self, timeout: Optional[float] = None) -> Optional[Captured]:
        """The next capture buffer, waiting up to ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._captured:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            self._recv_some(left)
        return self._captured.popleft()

    def history(self, seconds: float) -> list[Captured]:
        """The last ``seconds`` (≤ 300) of captured input, oldest first."""
        self._history = []
        try:
            self.request("history", seconds=seconds, timeout=max(self.timeout, 60.0))
            return self._history
        finally:
            self._history = None

    # -- lifetime ------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (the daemon closes this client's stream: queued events dropped, notes released)."""
        if self._sock.fileno() >= 0:
            self._sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = [
    "Captured",
    "Client",
    "ClientError",
    "ServerError",
    "check_daemon",
    "default_socket_path",
    "peer_credentials",
    "trusted_daemon_uids",
]
