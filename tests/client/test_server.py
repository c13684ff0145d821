"""The socket server: permissions, peer check, hello, playback, errors, back-pressure, capture."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
from typing import Any

import pytest

from mxfd.client import Client, ClientError, HelloRefused, ServerError
from mxfd.client.protocol import encode_buffer_frame, encode_control
from mxfd.client.server import Server, ServerConfig, ServerSetupError, start_server
from mxfd.core.wire import encode_buffer
from tests.client.helpers import CoreEngine, RawPeer, wait_for

NOTE_ON = bytes([0x90, 60, 100])
NOTE_OFF = bytes([0x80, 60, 0])
SECOND = 10_000_000





def notes(t0: int, n: int, step: int = 10_000) -> list[tuple[int, int, bytes]]:
    return [(t0 + i * step, 1, NOTE_ON if i % 2 == 0 else NOTE_OFF) for i in range(n)]


def all_idle(engine: CoreEngine) -> bool:
    return all(s.allocator.is_idle() for s in engine.streams)


# -- the socket -------------------------------------------------------------------------


def test_the_socket_is_0600_in_a_0700_directory(server: Server) -> None:
    assert stat.S_ISSOCK(os.stat(server.path).st_mode)
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode) == 0o700


def test_a_configured_group_gets_0660_and_a_traversable_directory(engine: CoreEngine, sockdir: str) -> None:
    path = os.path.join(sockdir, "mxfd", "mxfd.sock")
    with start_server(engine, ServerConfig(socket=path, group="nogroup")) as s:
        st = os.stat(s.path)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == s.gid
        d = os.stat(os.path.dirname(path))
        assert stat.S_IMODE(d.st_mode) == 0o710 and d.st_gid == s.gid


def test_an_unknown_group_is_refused_with_its_name(engine: CoreEngine, sockdir: str) -> None:
    with pytest.raises(ServerSetupError, match="no such group 'no-such-group-x'"):
        start_server(engine, ServerConfig(socket=os.path.join(sockdir, "s"), group="no-such-group-x"))


def test_a_stale_socket_is_replaced_but_a_live_one_is_not(engine: CoreEngine, sockdir: str) -> None:
    path = os.path.join(sockdir, "mxfd.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()
    with start_server(engine, ServerConfig(socket=path)):
        with pytest.raises(ServerSetupError, match=rf"another mxfd daemon \(pid {os.getpid()}\) is listening"):
            start_server(engine, ServerConfig(socket=path))
        with Client(path) as c:
            assert c.welcome["type"] == "welcome"
    assert not os.path.exists(path)


def test_a_file_in_the_way_is_left_alone(engine: CoreEngine, sockdir: str) -> None:
    path = os.path.join(sockdir, "precious")
    with open(path, "w") as f:
        f.write("keep me")
    with pytest.raises(ServerSetupError, match="not a socket"):
        start_server(engine, ServerConfig(socket=path))
    assert open(path).read() == "keep me"


def test_the_config_section_is_read_from_the_daemon_config_object(sockdir: str) -> None:
    from mxfd.daemon.config import ClientConfig, Config

    cfg = Config(client=ClientConfig(socket=os.path.join(sockdir, "x.sock"), group=None, allowed_uids=[1234]))
    sc = ServerConfig.from_config(cfg)
    assert sc.socket == os.path.join(sockdir, "x.sock") and sc.allowed_uids == (1234,)


def run_as(uid: int, fn: Any) -> int:
    """Run ``fn()`` in a forked child under ``uid``; its return value is the exit code."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(uid)
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_another_user_cannot_reach_the_socket(server: Server) -> None:
    def try_connect() -> int:
        try:
            Client(server.path, timeout=2.0)
        except ClientError as e:
            return 0 if "permission denied" in str(e) else 1
        return 2

    assert run_as(65534, try_connect) == 0


def test_another_user_is_refused_by_uid_even_when_the_modes_are_loosened(server: Server) -> None:
    os.chmod(os.path.dirname(server.path), 0o755)
    os.chmod(server.path, 0o666)

    def try_connect() -> int:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5.0)
        s.connect(server.path)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
        return 0 if b'"refused"' in data and b"uid 65534 is not allowed" in data else 1

    assert run_as(65534, try_connect) == 0
    assert server.refused_peers == 1


def test_an_allowed_uid_is_let_in(engine: CoreEngine, sockdir: str) -> None:
    path = os.path.join(sockdir, "mxfd", "mxfd.sock")
    with start_server(engine, ServerConfig(socket=path, allowed_uids=(65534,))) as s:
        os.chmod(os.path.dirname(path), 0o755)
        os.chmod(path, 0o666)

        def try_connect() -> int:
            with Client(path, timeout=5.0, trust_root=True) as c:  # this daemon runs as root
                return 0 if c.time()[1] == engine.render_latency_100ns else 1

        assert run_as(65534, try_connect) == 0
        assert s.refused_peers == 0


# -- the hello ---------------------------------------------------------------------------


def test_a_client_gets_a_welcome_with_the_clock_and_latency(server: Server, engine: CoreEngine) -> None:
    with Client(server.path, name="t") as c:
        assert c.welcome["protocol"] == 1
        assert c.welcome["now"] == engine.clock()
        assert c.welcome["render_latency_100ns"] == engine.render_latency_100ns


def test_an_old_client_gets_a_clear_refusal(server: Server) -> None:
    peer = RawPeer(server.path)
    reply = peer.hello(version=0)
    assert reply["type"] == "refused"
    assert "protocol version 0 is not supported; this daemon speaks version 1" in reply["reason"]
    assert peer.read() is None  # closed after the refusal
    assert server.refused_hellos == 1


def test_a_peer_that_skips_the_hello_is_refused(server: Server) -> None:
    peer = RawPeer(server.path)
    peer.send(encode_buffer_frame(*encode_buffer(notes(0, 2))))
    assert "expected a hello first" in peer.read()["reason"]
    assert peer.read() is None


def test_a_peer_that_is_not_an_mxfd_client_is_refused(server: Server) -> None:
    peer = RawPeer(server.path)
    peer.send(b"GET / HTTP/1.1\r\n\r\n")
    reply = peer.read()
    assert reply["type"] == "refused" and "not an mxfd client" in reply["reason"]


def test_hello_refused_is_raised_by_the_client(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import mxfd.client.client as client_module

    monkeypatch.setattr(client_module, "make_hello", lambda name, **kw: {"type": "hello", "protocol": 7})
    with pytest.raises(HelloRefused, match="version 7"):
        Client(server.path)


# -- requests ------------------------------------------------------------------------------


def test_time_gives_the_master_clock_and_the_render_latency(server: Server, engine: CoreEngine) -> None:
    with Client(server.path) as c:
        engine.manual.advance(123)
        assert c.time() == (engine.clock(), engine.render_latency_100ns)


def test_status_includes_the_servers_own_part(server: Server) -> None:
    with Client(server.path, name="stat") as c:
        st = c.status()
        assert st["state"] == "running"
        assert st["clients"]["connected"] == 1
        assert st["clients"]["list"][0]["name"].startswith("stat-")


def test_an_unknown_request_is_an_error_and_the_connection_goes_on(server: Server) -> None:
    with Client(server.path) as c:
        with pytest.raises(ServerError, match="unknown request type 'frobnicate'"):
            c.request("frobnicate")
        assert c.time()


def test_a_control_frame_that_is_not_json_is_an_error_and_the_connection_goes_on(server: Server) -> None:
    peer = RawPeer(server.path)
    assert peer.hello()["type"] == "welcome"
    peer.send(struct.pack("<2sBBII", b"MX", ord("J"), 0, 0, 5) + b"{nope")
    err = peer.read()
    assert err["type"] == "error" and err["code"] == "bad-request" and "not JSON" in err["reason"]
    peer.send(encode_control({"type": "time", "id": 1}))
    assert peer.read()["type"] == "time"


# -- playback --------------------------------------------------------------------------------


def test_buffers_reach_the_synth_at_their_presentation_times(server: Server, engine: CoreEngine) -> None:
    t0 = engine.clock() + SECOND
    with Client(server.path) as c:
        c.play(notes(t0, 4))
        synced = c.sync()
        assert synced["events"] == 4 and synced["pending"] == 4
        engine.tick(SECOND + 15_000)
        assert [e[1] for e in engine.rendered.events] == [t0, t0 + 10_000]
        engine.tick(SECOND)
        assert [(e[1], e[3]) for e in engine.rendered.events] == [(t, m) for t, _, m in notes(t0, 4)]
        assert c.sync()["pending"] == 0
    assert all_idle(engine)


MALFORMED = {
    "truncated": lambda data: data[:-9],
    "misaligned": lambda data: data[:23] + data[24:],  # first record unpadded: the next starts off-QWORD
    "bogus size": lambda data: struct.pack("<I", 0xFFFF) + data[4:],
    "zero size": lambda data: struct.pack("<I", 0) + data[4:],
    "structured sysex": lambda data: data[:20] + b"\xf0\x01\x02\xf7" + data[24:],
}


@pytest.mark.parametrize("how", sorted(MALFORMED))
def test_a_malformed_buffer_gets_an_error_with_its_offset_and_is_discarded_whole(
    server: Server, engine: CoreEngine, how: str
) -> None:
    t0 = engine.clock()
    start, good = encode_buffer(notes(t0, 3))
    with Client(server.path) as c:
        c.send_buffer(start, MALFORMED[how](good))
        c.send_buffer(start, good)
        synced = c.sync()
        assert synced["bad_buffers"] == 1 and synced["events"] == 3
        (err,) = c.errors
        assert err["code"] == "bad-buffer" and err["buffer"] == 1
        assert isinstance(err["offset"], int) and err["reason"]
        engine.tick(SECOND)
    assert len(engine.rendered.events) == 3
    assert all_idle(engine)


def test_an_oversized_buffer_gets_an_error_and_the_connection_goes_on(server: Server, engine: CoreEngine) -> None:
    peer = RawPeer(server.path)
    peer.hello()
    size = (1 << 20) + 64
    peer.send(struct.pack("<2sBBII", b"MX", ord("B"), 0, 0, 8 + size) + bytes(8 + size))
    err = peer.read()
    assert err["code"] == "bad-buffer" and "exceeds" in err["reason"] and err["offset"] == 0
    peer.send(encode_control({"type": "sync", "id": 1}))
    assert peer.read()["bad_buffers"] == 1


def test_garbage_gets_an_error_and_the_connection_is_closed(server: Server, engine: CoreEngine) -> None:
    peer = RawPeer(server.path)
    peer.hello()
    peer.send(encode_buffer_frame(*encode_buffer(notes(engine.clock() + SECOND, 2))))
    peer.send(b"\xde\xad\xbe\xef" * 8)
    err = peer.read()
    assert err["type"] == "error" and err["code"] == "garbage" and err["fatal"]
    assert peer.read() is None
    assert wait_for(lambda: server.status()["connected"] == 0)
    assert engine.closed_streams and engine.closed_streams[0].released_on_close == 2
    assert all_idle(engine)
    with Client(server.path) as c:  # the daemon goes on
        assert c.time()


def test_a_client_that_disconnects_has_its_stream_closed(server: Server, engine: CoreEngine) -> None:
    c = Client(server.path)
    c.play(notes(engine.clock() + SECOND, 6))
    c.sync()
    c.close()
    assert wait_for(lambda: len(engine.closed_streams) == 1)
    assert engine.closed_streams[0].released_on_close == 6
    assert all_idle(engine)


def test_open_builds_the_stream_before_the_first_buffer(server: Server, engine: CoreEngine) -> None:
    with Client(server.path) as c:
        group = c.open_playback()
        assert len(engine.streams) == 1 and engine.streams[0].channel_group == group
        c.play(notes(engine.clock(), 2))
        assert c.sync()["channel_group"] == group and len(engine.streams) == 1


def test_open_names_what_the_client_plays_for_status_and_keeps_it_short(server: Server) -> None:
    from mxfd.client.server import MAX_FILE_NAME

    with Client(server.path, name="mxfd-play") as c, Client(server.path, name="long") as d:
        c.open_playback("song.mid")
        d.open_playback("x" * 10_000)
        by_name = {s["name"]: s for s in c.status()["clients"]["list"]}
    assert by_name["mxfd-play-1"]["file"] == "song.mid"
    assert by_name["long-2"]["file"] == "x" * MAX_FILE_NAME


def test_stop_drops_what_is_queued_and_the_next_buffer_opens_a_new_stream(server: Server, engine: CoreEngine) -> None:
    with Client(server.path) as c:
        c.play(notes(engine.clock() + SECOND, 4))
        assert c.stop()["discarded"] == 4
        c.play(notes(engine.clock(), 2))
        c.sync()
        assert len(engine.streams) == 2
        engine.tick(SECOND)
    assert len(engine.rendered.events) == 2


def test_a_full_pool_stops_reading_that_client_and_nothing_is_lost(sockdir: str) -> None:
    engine = CoreEngine(pool=16, cap=32)
    with start_server(engine, ServerConfig(socket=os.path.join(sockdir, "s"))) as server:
        t0 = engine.clock() + SECOND
        total = 400
        heavy = Client(server.path, name="heavy")
        # a small socket buffer, so the kernel cannot absorb what the daemon stops reading
        heavy._sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sent = threading.Event()

        def stream_all() -> None:
            for i in range(0, total, 8):  # 8 events a buffer, 2 ms apart, far more than the pool holds
                heavy.play(notes(t0 + i * 20_000, 8, 20_000))
            sent.set()

        writer = threading.Thread(target=stream_all)
        writer.start()
        assert wait_for(lambda: server.sessions and server.sessions[0].backpressure_waits > 0)
        assert not sent.is_set()
        # another client plays on meanwhile
        with Client(server.path, name="light") as light:
            light.play(notes(engine.clock(), 2))
            assert light.sync()["events"] == 2
        # time passes: the held events play, space frees, the heavy client is read again
        done = threading.Event()

        def clock_runs() -> None:
            while not done.is_set():
                engine.tick(20_000)
                done.wait(0.001)

        ticker = threading.Thread(target=clock_runs)
        ticker.start()
        try:
            writer.join(10)
            assert sent.is_set()
            assert heavy.sync()["events"] == total
        finally:
            done.set()
            ticker.join()
        engine.tick(100 * SECOND)
        assert sum(1 for e in engine.rendered.events if e[0].startswith("heavy")) == total
        times = [e[1] for e in engine.rendered.events if e[0].startswith("heavy")]
        assert times == sorted(times)
        heavy.close()
    assert all_idle(engine)


def test_a_buffer_larger_than_the_pool_is_refused_rather_than_waited_for(sockdir: str) -> None:
    engine = CoreEngine(pool=4, cap=8)
    with start_server(engine, ServerConfig(socket=os.path.join(sockdir, "s"))) as server:
        with Client(server.path) as c:
            c.play(notes(engine.clock(), 20))
            c.sync()
            (err,) = c.errors
            assert err["code"] == "bad-buffer" and "can ever hold" in err["reason"]


# -- capture -----------------------------------------------------------------------------------


def test_a_subscriber_receives_capture_buffers_with_their_source(server: Server, engine: CoreEngine) -> None:
    start, data = encode_buffer(notes(engine.clock(), 2))
    with Client(server.path) as c:
        c.subscribe()
        engine.capture("kbd:out", start, data)
        engine.capture("other:out", start + 5, data)
        a = c.receive(5.0)
        b = c.receive(5.0)
        assert a is not None and b is not None
        assert (a.source, a.start_time, a.data) == ("kbd:out", start, data)
        assert (b.source, b.start_time) == ("other:out", start + 5)


def test_a_pattern_limits_the_sources(server: Server, engine: CoreEngine) -> None:
    start, data = encode_buffer(notes(engine.clock(), 2))
    with Client(server.path) as c:
        c.subscribe("^kbd")
        engine.capture("other:out", start, data)
        engine.capture("kbd:out", start, data)
        got = c.receive(5.0)
        assert got is not None and got.source == "kbd:out"
        assert c.receive(0.05) is None


def test_a_bad_pattern_is_an_error(server: Server) -> None:
    with Client(server.path) as c:
        with pytest.raises(ServerError, match="bad pattern"):
            c.subscribe("(")


def test_history_replays_the_ring(server: Server, engine: CoreEngine) -> None:
    start, data = encode_buffer(notes(engine.clock(), 2))
    engine.capture("kbd:out", start, data)
    engine.capture("kbd:out", start + 100, data)
    with Client(server.path) as c:
        got = c.history(120)
        want = [("kbd:out", start, True), ("kbd:out", start + 100, True)]
        assert [(g.source, g.start_time, g.history) for g in got] == want
        with pytest.raises(ServerError, match="seconds"):
            c.history(301)


def test_a_subscriber_that_reads_too_slowly_is_told_what_it_missed(
    server: Server, engine: CoreEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mxfd.client.server as server_module

    monkeypatch.setattr(server_module, "MAX_CAPTURE_BACKLOG", 4)
    start, data = encode_buffer([(engine.clock(), 1, bytes([0xF0]) + bytes(4000) + bytes([0xF7]))])
    with Client(server.path) as c:
        c._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.subscribe()
        for _ in range(200):  # far more than the socket and the backlog hold while nobody reads
            engine.capture("kbd:out", start, data)
        session = server.sessions[0]
        assert session.capture_dropped > 0
        received = 0
        while c.receive(0.5) is not None:
            received += 1
        assert received + session.capture_dropped == 200
        dropped = [n for n in c.notices if n["type"] == "dropped"]
        assert dropped and sum(n["buffers"] for n in dropped) == session.capture_dropped
        assert c.status()["clients"]["list"][0]["capture_dropped"] == session.capture_dropped


def test_a_subscriber_that_goes_away_is_unsubscribed(server: Server, engine: CoreEngine) -> None:
    c = Client(server.path)
    c.subscribe()
    assert len(engine.subscriptions) == 1
    c.close()
    assert wait_for(lambda: not engine.subscriptions)


# -- stopping ----------------------------------------------------------------------------------


def test_closing_the_server_closes_every_client_and_removes_the_socket(engine: CoreEngine, sockdir: str) -> None:
    server = start_server(engine, ServerConfig(socket=os.path.join(sockdir, "s")))
    clients = [Client(server.path) for _ in range(3)]
    for c in clients:
        c.play(notes(engine.clock() + SECOND, 2))
        c.sync()
    server.close()
    assert len(engine.closed_streams) == 3
    assert not os.path.exists(server.path)
    assert all_idle(engine)
    for c in clients:
        with pytest.raises(ClientError):
            c.time()
        c.close()


def test_a_reload_request_is_answered_when_the_daemon_has_done_it_and_the_loop_serves_on(
    server: Server, engine: CoreEngine
) -> None:
    with Client(server.path, name="reloader") as c, Client(server.path, name="other") as other:
        reply = c.reload()
        assert other.time()  # the loop was never held up
    assert reply == {
        "type": "reloaded", "id": reply["id"], "ok": True, "config": "/test.toml", "bank": "built-in GM",
        "bank_changed": False, "error": None,
    }  # fmt: skip
    assert engine.reloads == 1
