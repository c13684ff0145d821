"""A small engine for server tests, built from the real transport core.

``CoreEngine`` keeps the daemon's ``Engine`` contract (playback streams,
capture subscriptions, history, status) with real parts: each playback stream
is a real :class:`Allocator` → :class:`Unpacker` → :class:`Sequencer`; the
synth is replaced by a sink that records what it is given and returns the
events.  Time is a :class:`ManualClock`, moved by the tests, so nothing here
depends on how busy the machine is.  The real engine is exercised end to end
in ``tests/e2e/test_client.py``.

Both engines keep one contract, :class:`mxfd.client.server.EngineLike`, and
mypy checks it (``_keeps_the_contract`` below; this file is in mypy's
``files``).  What the contract cannot say in types is shared code: history
is the daemon's own :class:`~mxfd.daemon.router.History` ring.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import threading
import time
from typing import Any, Callable, Iterator, Optional

from mxfd.client.protocol import NEED_DATA, FrameDecoder, encode_control, make_hello
from mxfd.client.server import EngineLike
from mxfd.core.allocator import Allocator
from mxfd.core.clock import ManualClock
from mxfd.core.event import KernelEvent
from mxfd.core.mxf import KSState
from mxfd.core.sequencer import Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.daemon.router import History

LATENCY = 50_000  # 5 ms


class Rendered:
    """The synth's stand-in: records (stream, pres_time, group, data) and returns events."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, bytes]] = []
        self.lock = threading.Lock()

    def sink_for(self, stream: "CoreStream") -> "_Sink":
        return _Sink(self, stream)


class _Sink:
    def __init__(self, rendered: Rendered, stream: "CoreStream") -> None:
        self.rendered = rendered
        self.stream = stream

    def set_state(self, state: object) -> None:
        pass

    def connect_output(self, sink: object) -> None:
        raise NotImplementedError

    def disconnect_output(self, sink: object) -> None:
        raise NotImplementedError

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        head = evt
        with self.rendered.lock:
            while evt is not None:
                self.rendered.events.append((self.stream.name, evt.pres_time_100ns, evt.channel_group, evt.data))
                evt = evt.next_evt
        if head is not None:
            head.allocator.put_message(head)
        self.stream.space.set()


class CoreStream:
    def __init__(self, engine: "CoreEngine", name: str, group: int, pool: int, cap: int) -> None:
        self.engine = engine
        self.name = name
        self.channel_group = group
        self.allocator = Allocator(pool_size=pool, max_pool_size=cap)
        self.unpacker = Unpacker(self.allocator)
        self.sequencer = Sequencer(self.allocator)
        self.unpacker.connect_output(self.sequencer)
        self.sequencer.connect_output(engine.rendered.sink_for(self))
        self.space = threading.Event()
        self.closed = False
        self.released_on_close = 0

    def submit(self, data: bytes, start_time: int) -> int:
        self.space.clear()
        return self.unpacker.unpack(data, start_time)

    def wait_for_space(self, timeout: float) -> bool:
        return self.space.wait(timeout)

    def pending(self) -> int:
        return self.sequencer.held

    def close(self) -> None:
        self.released_on_close = self.sequencer.held
        self.sequencer.set_state(KSState.STOP)
        self.closed = True
        self.space.set()
        self.engine.closed_streams.append(self)


class Subscription:
    def __init__(self, engine: "CoreEngine", callback: Callable[[str, int, bytes], None], pattern: Optional[str]):
        self.engine = engine
        self.callback = callback
        self.rx = re.compile(pattern) if pattern is not None else None

    def close(self) -> None:
        with self.engine.lock:
            if self in self.engine.subscriptions:
                self.engine.subscriptions.remove(self)


class CoreEngine:
    """The Engine contract over the real core, with a manual clock (or the one given)."""

    def __init__(self, pool: int = 64, cap: int = 4096, clock: Optional[Callable[[], int]] = None) -> None:
        self.manual = ManualClock(1_000_000_000)
        self.clock: Callable[[], int] = clock if clock is not None else self.manual
        self.render_latency_100ns = LATENCY
        self.rendered = Rendered()
        self.streams: list[CoreStream] = []
        self.closed_streams: list[CoreStream] = []
        self.subscriptions: list[Subscription] = []
        self.ring = History(300.0)
        self.status_parts: dict[str, Callable[[], dict[str, Any]]] = {}
        self.panics = 0
        self.reloads = 0
        self.lock = threading.Lock()
        self.pool = pool
        self.cap = cap

    def open_playback_stream(self, name: str) -> CoreStream:
        with self.lock:
            s = CoreStream(self, name, len(self.streams) + 2, self.pool, self.cap)
            self.streams.append(s)
            return s

    def tick(self, delta: int = 0) -> int:
        """Move the clock and release what is due in every open stream."""
        if delta:
            self.manual.advance(delta)
        now = self.clock()
        n = 0
        for s in list(self.streams):
            if not s.closed:
                n += s.sequencer.release(now)
        return n

    def capture(self, source: str, start: int, data: bytes) -> None:
        """What the packer does with a completed buffer: ring, then subscribers."""
        with self.lock:
            self.ring.append(source, start, data)
            subs = list(self.subscriptions)
        for sub in subs:
            if sub.rx is None or sub.rx.search(source):
                sub.callback(source, start, data)

    def subscribe_capture(
        self, callback: Callable[[str, int, bytes], None], pattern: Optional[str] = None
    ) -> Subscription:
        sub = Subscription(self, callback, pattern)
        with self.lock:
            self.subscriptions.append(sub)
        return sub

    def history(self, seconds: float) -> list[tuple[str, int, bytes]]:
        return self.ring.since(seconds, self.clock())

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": "running", "render_latency_100ns": LATENCY}
        for name, fn in self.status_parts.items():
            out[name] = fn()
        return out

    def register_status(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        self.status_parts[name] = fn

    def panic(self, timeout: float = 1.0) -> dict[str, Any]:
        """Counted only: panic itself is tested against the real Engine (tests/client/test_commands.py)."""
        self.panics += 1
        return {"applied": True, "voices": 0}

    def request_reload(self, done: Callable[[dict[str, Any]], None]) -> None:
        """Answered from another thread, as the daemon's main loop answers."""
        self.reloads += 1
        report = {"ok": True, "config": "/test.toml", "bank": "built-in GM", "bank_changed": False, "error": None}
        threading.Thread(target=done, args=(report,)).start()


def _keeps_the_contract(engine: CoreEngine) -> EngineLike:
    return engine  # mypy refuses this line when CoreEngine drifts from the engine contract


# -- raw socket helpers ---------------------------------------------------------------


@contextlib.contextmanager
def socket_dir() -> Iterator[str]:
    """A short private directory for sockets (Unix socket paths are limited to 107 bytes)."""
    with tempfile.TemporaryDirectory(prefix="mx-t", dir="/tmp") as d:
        os.chmod(d, 0o755)  # other users may enter: only the daemon's own modes keep them out
        yield d


class RawPeer:
    """A socket speaking frames by hand, for what the Client class would never send."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(path)
        self.decoder = FrameDecoder()

    def hello(self, version: int = 1) -> dict[str, Any]:
        self.sock.sendall(encode_control(make_hello("raw", version)))
        reply: dict[str, Any] = self.read()
        return reply

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self) -> Any:
        """The next event; ``None`` at end of stream."""
        while True:
            ev = self.decoder.next_event()
            if ev is not NEED_DATA:
                return getattr(ev, "message", ev)
            data = self.sock.recv(65536)
            if not data:
                return None
            self.decoder.receive_data(data)

    def close(self) -> None:
        self.sock.close()


class Ticking:
    """Release due events in every stream of ``engine`` every millisecond, on a thread."""

    def __init__(self, engine: CoreEngine) -> None:
        self.engine = engine
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.wait(0.001):
            self.engine.tick()

    def __enter__(self) -> "Ticking":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


__all__ = ["CoreEngine", "RawPeer", "Ticking", "socket_dir", "wait_for"]
