"""No request breaks a session, every reply fits a frame, and many or slow clients cannot stall the server."""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from mxfd.client import Client, ClientError
from mxfd.client.protocol import FRAME_HEADER, KIND_CONTROL, MAX_CONTROL_SIZE, SYNC, encode_control, make_hello
from mxfd.client.server import (
    LOG_BURST,
    MAX_LISTED_CLIENTS,
    MAX_NAME,
    SERVER_LOG_BURST,
    Server,
    ServerConfig,
    bind_server,
    start_server,
)
from tests.client.helpers import CoreEngine, RawPeer, wait_for

NOTE_ON = bytes([0x90, 60, 100])
NOTE_OFF = bytes([0x80, 60, 0])





def control(payload: bytes) -> bytes:
    """A control frame carrying ``payload`` as it is (encode_control would refuse the hostile ones)."""
    return FRAME_HEADER.pack(SYNC, KIND_CONTROL, 0, 0, len(payload)) + payload


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE = {
    "NaN id": b'{"type": "time", "id": NaN}',
    "Infinity id": b'{"type": "time", "id": Infinity}',
    "-Infinity id": b'{"type": "time", "id": -Infinity}',
    "1e999 id": b'{"type": "time", "id": 1e999}',
    "float id": b'{"type": "time", "id": 1.5}',
    "huge integer id": b'{"type": "time", "id": 1000000000000000000000000000000}',
    "4400-digit id": b'{"type": "time", "id": ' + b"7" * 4400 + b"}",
    "list id": b'{"type": "time", "id": [1, 2]}',
    "long string id": json.dumps({"type": "time", "id": "i" * 1000}).encode(),
    "boolean id": b'{"type": "time", "id": true}',
    "JSON nested 1000 deep": nested(1000).encode(),
    "a field nested 1000 deep": ('{"type": "status", "x": ' + nested(1000) + "}").encode(),
    "subscribe pattern of 1000 (": json.dumps({"type": "subscribe", "pattern": "(" * 1000}).encode(),
    "history pattern of 1000 (": json.dumps({"type": "history", "seconds": 1, "pattern": "(" * 1000}).encode(),
    "subscribe pattern of 200 (": json.dumps({"type": "subscribe", "pattern": "(" * 200}).encode(),
    "exponential pattern": json.dumps({"type": "subscribe", "pattern": "(a+)+$"}).encode(),
    "exponential alternation": json.dumps({"type": "history", "seconds": 1, "pattern": "(a|aa)*$"}).encode(),
    "pattern not a string": json.dumps({"type": "subscribe", "pattern": ["x"] * 5000}).encode(),
    "33 KB type": json.dumps({"type": "t" * 33_000}).encode(),
    "64 KB type": json.dumps({"type": "t" * (MAX_CONTROL_SIZE - 20)}).encode(),
    "NaN seconds": b'{"type": "history", "seconds": NaN}',
    "huge seconds": b'{"type": "history", "seconds": 1e308}',
    "offset not a number": json.dumps({"type": "clients", "offset": "x" * 30_000}).encode(),
}


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_request_gets_a_bad_request_reply_and_the_session_goes_on(
    server: Server, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    peer = RawPeer(server.path)
    assert peer.hello()["type"] == "welcome"
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="mxfd.client.server"):
        peer.send(control(payload))
        reply = peer.read()
        assert isinstance(reply, dict), reply
        assert reply["type"] == "error" and reply["code"] == "bad-request", reply
        assert len(encode_control(reply)) < 1024  # nothing unbounded echoed
        assert "id" not in reply or isinstance(reply["id"], int)
        peer.send(encode_control({"type": "time", "id": 7}))
        assert peer.read()["id"] == 7  # the session goes on
    lines = [r for r in caplog.records if r.name == "mxfd.client.server" and "bad" in r.getMessage()]
    assert len(lines) == 1
    assert len(lines[0].getMessage()) < 400 and lines[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    peer.close()
    assert server.internal_errors == 0


def test_a_hostile_hello_is_refused_in_a_frame_that_fits(server: Server) -> None:
    peer = RawPeer(server.path)
    peer.send(encode_control({"type": "h" * 60_000, "protocol": 1}))
    reply = peer.read()
    assert reply["type"] == "refused" and len(reply["reason"]) < 200
    assert peer.read() is None


def test_bad_requests_are_logged_a_few_lines_per_client_not_one_each(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    with Client(server.path) as c, caplog.at_level(logging.INFO, logger="mxfd.client.server"):
        caplog.clear()
        for _ in range(100):
            with pytest.raises(Exception, match="unknown-request"):
                c.request("nonsense")
        assert c.time()
    lines = [r for r in caplog.records if "bad request" in r.getMessage()]
    assert 1 <= len(lines) <= LOG_BURST + 1
    assert server.bad_requests == 100


def test_many_connections_cannot_flood_the_log_either(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    peers = [RawPeer(server.path) for _ in range(30)]
    with caplog.at_level(logging.INFO, logger="mxfd.client.server"):
        for p in peers:
            assert p.hello()["type"] == "welcome"
        caplog.clear()
        for p in peers:
            for _ in range(LOG_BURST):
                p.send(encode_control({"type": "nonsense"}))
        for p in peers:
            assert all(p.read()["code"] == "unknown-request" for _ in range(LOG_BURST))
    lines = [r for r in caplog.records if "bad request" in r.getMessage()]
    assert SERVER_LOG_BURST <= len(lines) <= SERVER_LOG_BURST + 2
    for p in peers:
        p.close()


# -- replies that fit ---------------------------------------------------------------------


def test_a_40000_character_name_is_cut_to_64(server: Server) -> None:
    with Client(server.path, name="n" * 40_000) as c:
        (me,) = c.status()["clients"]["list"]
        assert me["name"] == "n" * MAX_NAME + f"-{c.welcome['client_id']}"


def test_an_open_label_of_any_characters_cannot_break_or_forge_mxfd_status(server: Server) -> None:
    # found by tests/client/test_server_fuzz.py: a lone surrogate made `mxfd status` end in a
    # UnicodeEncodeError traceback, and a newline could forge a line of its report
    label = "song\ud800.mid\nmxfd-play-9 (pid 1): playing \x1b[31mforged"
    with Client(server.path, name="labels") as c:
        c.request("open", file=label)
        (me,) = c.status()["clients"]["list"]
        assert me["file"] == "song?.mid?mxfd-play-9 (pid 1): playing ?[31mforged"
        done = subprocess.run([sys.executable, "-m", "mxfd", "status", "--socket", server.path],
                              capture_output=True, timeout=30)
    assert done.returncode == 0 and done.stderr == b"", done.stderr[-400:]
    out = done.stdout.decode()
    shown = f"  labels-{c.welcome['client_id']} (pid {os.getpid()}): playing {me['file']}"
    assert [line for line in out.splitlines() if "playing" in line] == [shown], out


def test_status_fits_with_300_clients_and_clients_pages_through_them_all(server: Server) -> None:
    peers = []
    try:
        for i in range(300):
            p = RawPeer(server.path)
            p.sock.sendall(encode_control(make_hello("x" * 200 + str(i))))
            assert p.read()["type"] == "welcome"
            peers.append(p)
        with Client(server.path, name="y" * 1000) as c:
            clients = c.status()["clients"]
            assert clients["connected"] == 301
            assert len(clients["list"]) == MAX_LISTED_CLIENTS and clients["unlisted"] == 301 - MAX_LISTED_CLIENTS
            ids: list[int] = []
            while True:
                page = c.request("clients", offset=len(ids), limit=MAX_LISTED_CLIENTS)
                assert page["total"] == 301
                if not page["clients"]:
                    break
                ids += [e["id"] for e in page["clients"]]
            assert len(set(ids)) == 301
    finally:
        for p in peers:
            p.close()


def test_a_reply_that_cannot_be_encoded_becomes_an_error(server: Server, engine: CoreEngine) -> None:
    engine.register_status("broken", lambda: {"value": float("nan"), "big": "z" * MAX_CONTROL_SIZE})
    with Client(server.path) as c:
        with pytest.raises(Exception, match="could not be encoded"):
            c.status()
        assert c.time()


# -- many and slow clients ---------------------------------------------------------------


def raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_the_hello_deadline_is_for_the_whole_hello_not_each_read(engine: CoreEngine, sockdir: str) -> None:
    cfg = ServerConfig(socket=os.path.join(sockdir, "s"), hello_timeout=0.5)
    with start_server(engine, cfg) as server:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(server.path)
        hello = encode_control(make_hello("drip"))
        t0 = time.monotonic()
        closed_after = None
        for byte in hello[:-1]:  # one byte every 0.1 s: each read is quick, the whole hello is not
            try:
                s.send(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - t0
                break
            s.settimeout(0.1)
            try:
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except TimeoutError:
                pass
        s.close()
        assert closed_after is not None and 0.4 < closed_after < 1.5
        assert server.hello_timeouts == 1


def test_connections_over_the_cap_are_refused_with_an_error_frame(engine: CoreEngine, sockdir: str) -> None:
    with start_server(engine, ServerConfig(socket=os.path.join(sockdir, "s"), max_clients=3)) as server:
        held = [Client(server.path) for _ in range(3)]
        extra = RawPeer(server.path)
        reply = extra.read()
        assert reply["type"] == "error" and reply["code"] == "busy" and reply["fatal"] is True
        assert extra.read() is None
        for _ in range(3):  # a client that sends its hello at once still reads why (no reset first)
            with pytest.raises(ClientError, match="turned the connection away: the daemon serves at most 3 clients"):
                Client(server.path)
        held.pop().close()
        assert wait_for(lambda: len(server.sessions) == 2)
        with Client(server.path) as again:
            assert again.time()
        for c in held:
            c.close()
        assert server.refused_busy == 4


def test_200_simultaneous_connects_wait_in_the_backlog(engine: CoreEngine, sockdir: str) -> None:
    raise_fd_limit(1024)
    server = bind_server(engine, ServerConfig(socket=os.path.join(sockdir, "s")))
    socks = []
    try:
        for _ in range(200):  # nobody accepts yet: only the listen backlog holds them
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect(server.path)  # BlockingIOError here once the backlog is full
            socks.append(s)
        server.serve()
        for s in socks:
            s.setblocking(True)
            s.sendall(encode_control(make_hello("burst")))
        for s in socks:
            s.settimeout(5.0)
            assert b"welcome" in s.recv(4096)
    finally:
        for s in socks:
            s.close()
        server.close()


def test_1000_idle_and_100_dripping_connections_do_not_slow_status_or_playback(sockdir: str) -> None:
    raise_fd_limit(4096)
    engine = CoreEngine(clock=lambda: time.monotonic_ns() // 100)
    cfg = ServerConfig(socket=os.path.join(sockdir, "s"), max_clients=2000, hello_timeout=4.0)
    with start_server(engine, cfg) as server:
        fds0, threads0 = open_fds(), threading.active_count()
        idle = []
        hello = encode_control(make_hello("idle"))
        for _ in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(server.path)
            s.sendall(hello)
            idle.append(s)
        for s in idle:
            s.settimeout(5.0)
            assert b"welcome" in s.recv(4096)
        drip_hello = encode_control(make_hello("drip"))
        drippers = []
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(server.path)
            s.send(drip_hello[:1])
            drippers.append(s)
        stop = threading.Event()

        def drip() -> None:
            for i in range(1, len(drip_hello) - 1):
                for s in drippers:
                    try:
                        s.send(drip_hello[i : i + 1])
                    except OSError:
                        pass  # closed by the hello deadline: what the test waits for
                if stop.wait(0.2):
                    return

        dripper = threading.Thread(target=drip)
        dripper.start()
        try:
            assert wait_for(lambda: len(server.sessions) == 1100)
            assert threading.active_count() <= threads0 + 1  # the dripper: no thread per connection
            with Client(server.path, name="status") as c, Client(server.path, name="keyboard") as kbd:
                times = []
                for _ in range(10):
                    t0 = time.perf_counter()
                    st = c.status()
                    times.append(time.perf_counter() - t0)
                    assert st["clients"]["connected"] == 1102
                    now = engine.clock()
                    kbd.play([(now, 1, NOTE_ON), (now + 1, 1, NOTE_OFF)])
                    t0 = time.perf_counter()
                    kbd.sync()
                    times.append(time.perf_counter() - t0)
                assert max(times) < 0.1, times
                assert kbd.sync()["events"] == 20
            # the drippers are still mid-hello: the deadline closes them all
            assert wait_for(lambda: server.hello_timeouts == 100, 10.0)
        finally:
            stop.set()
            dripper.join()
            for s in idle + drippers:
                s.close()
        assert wait_for(lambda: not server.sessions, 10.0)
        assert wait_for(lambda: open_fds() == fds0, 5.0), (open_fds(), fds0)
        assert threading.active_count() == threads0


def test_a_peer_that_never_reads_its_last_frames_is_closed_anyway(
    server: Server, engine: CoreEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mxfd.client.server as server_module

    monkeypatch.setattr(server_module, "CLOSE_LINGER", 0.5)
    engine.register_status("pad", lambda: {"x": "p" * 4000})
    peer = RawPeer(server.path)
    assert peer.hello()["type"] == "welcome"
    # 400 KB of replies the peer never reads, then garbage: the error reply stays queued behind them
    peer.send(encode_control({"type": "status"}) * 100 + b"garbage!" * 2)
    assert wait_for(lambda: server.protocol_errors == 1)
    assert len(server.sessions) == 1
    assert wait_for(lambda: not server.sessions, 3.0)
    peer.close()


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_memory_and_descriptors_come_back_after_rounds_of_connections(engine: CoreEngine, sockdir: str) -> None:
    raise_fd_limit(2048)
    with start_server(engine, ServerConfig(socket=os.path.join(sockdir, "s"))) as server:
        fds0 = open_fds()
        after = []
        for _ in range(4):
            socks = []
            for _ in range(500):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(server.path)
                s.sendall(encode_control(make_hello("round")) + encode_control({"type": "status", "id": 1}))
                socks.append(s)
            for s in socks:
                s.settimeout(5.0)
                s.recv(65536)
            for s in socks:
                s.close()
            assert wait_for(lambda: not server.sessions, 10.0)
            assert wait_for(lambda: open_fds() == fds0, 5.0)
            after.append(rss_kib())
        # the first round may grow the heap; later rounds must not keep growing it
        assert max(after[1:]) - after[0] < 2048, after


def test_a_session_that_raises_ends_alone_and_the_server_goes_on(
    server: Server, engine: CoreEngine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str) -> Any:
        raise RuntimeError("synth on fire")

    monkeypatch.setattr(engine, "open_playback_stream", broken)
    with Client(server.path) as c:
        with pytest.raises(Exception, match="internal: the open request failed: RuntimeError"):
            c.open_playback()
        assert c.time()
    assert server.internal_errors == 1
    (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "synth on fire" in line.getMessage() and line.exc_info is None


@pytest.mark.parametrize("pattern", ["^kbd", "Keystation|nanoKEY", "kbd.*out$", "(foo|bar):out", "(a|b)+", "(x{2}){3}"])
def test_ordinary_patterns_pass_the_pattern_guard(server: Server, pattern: str) -> None:
    with Client(server.path) as c:
        assert c.subscribe(pattern)["pattern"] == pattern
