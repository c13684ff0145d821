"""No frame breaks the server: fuzzed control frames, buffers and garbage each get a clean answer.

Hypothesis generates sessions of hostile frames (random JSON in every request
type's fields, mutated DMUS_EVENTHEADER buffers, broken headers and raw bytes)
and sends them to a real :class:`~mxfd.client.server.Server` over the real
transport core (``CoreEngine``).  Each case must get what docs/protocol.md
says (see ``tests/client/fuzzing.py``) within ``CASE_SECONDS``, the server
must log a few short lines at most, and afterwards a fresh client's
``status`` answers, every session is gone, every stream's allocator is idle
and the process's descriptors and threads are back where they were.

The runs are derandomized: CI sees the same examples every time.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import socket
import struct
import threading
from typing import Any, Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxfd.client import Client
from mxfd.client.protocol import (
    FRAME_HEADER_SIZE,
    KIND_BUFFER,
    KIND_CONTROL,
    MAX_CONTROL_SIZE,
    NEED_DATA,
    FrameDecoder,
    encode_control,
    make_hello,
)
from mxfd.client.server import LOG_BURST, ServerConfig, start_server
from mxfd.core.wire import encode_buffer
from tests.client.fuzzing import (
    CASE_SECONDS,
    REPLY_TYPE,
    Answered,
    Case,
    buffer_frame,
    check_status_prints,
    classify,
    frame,
    mutate_buffer,
    mutate_header,
    mutate_request,
    run_session,
    seed_frames,
)
from tests.client.helpers import CoreEngine, socket_dir, wait_for
from tests.fuzzing import mutate

#: Lines one fuzzed session may log: connected, disconnected, the garbage warning, events returned
#: at the close, the pool-full note and a burst of bad-input lines; and the status client meanwhile
#: connected and disconnected.
MAX_LOG_LINES = LOG_BURST + 7
MAX_LOG_LINE = 400

FUZZ = settings(max_examples=120, deadline=None, derandomize=True, database=None)


# -- the server under test ----------------------------------------------------------------


#: Capture sources the engine's history and subscribers see.
INPUTS = ("test-kbd:out", "pads:out", "Keystation 49:port 0")
NOTE = bytes([0x90, 60, 99])


class Fuzzed:
    """A server on the core engine, with three capture buffers in its history ring to replay."""

    def __init__(self, path: str) -> None:
        self.engine = CoreEngine()
        for i, name in enumerate(INPUTS):
            start, data = encode_buffer([(self.engine.clock() - 1000 + i, 1, NOTE)])
            self.engine.capture(name, start, data)
        self.server = start_server(self.engine, ServerConfig(socket=path))
        # Earlier tests' garbage may hold descriptors (a font's memory map) that a later collection
        # closes mid-test: counted after a collection, the count is this module's own.
        gc.collect()
        self.fds = len(os.listdir("/proc/self/fd"))
        self.threads = threading.active_count()

    def check(self, caplog: pytest.LogCaptureFixture, play: Callable[[], list[Answered]]) -> list[Answered]:
        """Run one fuzzed session, then check the server is as healthy as before it."""
        server, engine = self.server, self.engine
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="mxfd.client.server"):
            answered = play()
            assert wait_for(lambda: not server.sessions, CASE_SECONDS, 0.001), server.sessions
        lines = [r for r in caplog.records if r.name == "mxfd.client.server"]
        assert len(lines) <= MAX_LOG_LINES, [r.getMessage() for r in lines]
        for r in lines:
            assert r.levelno < logging.ERROR and r.exc_info is None, r.getMessage()
            assert len(r.getMessage()) < MAX_LOG_LINE and "\n" not in r.getMessage(), r.getMessage()
        assert server.internal_errors == 0
        assert all(s.closed and s.allocator.is_idle() for s in engine.streams)
        with Client(server.path, timeout=CASE_SECONDS) as c:
            assert c.status()["clients"]["connected"] == 1
        assert wait_for(lambda: not server.sessions, CASE_SECONDS, 0.001)
        return answered

    def close(self) -> None:
        self.server.close()
        assert self.server._thread is not None and not self.server._thread.is_alive()


@pytest.fixture(scope="module")
def fuzzed() -> Iterator[Fuzzed]:
    with socket_dir() as d:
        f = Fuzzed(os.path.join(d, "mxfd", "mxfd.sock"))
        try:
            yield f
        finally:
            f.close()


@pytest.fixture
def healthy(fuzzed: Fuzzed) -> Iterator[Fuzzed]:
    """The module's server, checked after the test: descriptors and threads back to where they were."""
    yield fuzzed
    assert wait_for(lambda: len(os.listdir("/proc/self/fd")) == fuzzed.fds, CASE_SECONDS)
    assert threading.active_count() == fuzzed.threads


# -- strategies: JSON ----------------------------------------------------------------------------


class Raw(str):
    """JSON text put into a payload as it is: what ``json.dumps`` would never write."""


class Obj(tuple[tuple[str, Any], ...]):
    """A JSON object as (key, value) pairs: keys may repeat, as a peer may send them."""


#: Numbers JSON's grammar (or Python's reader) takes that a reply could not carry, and their neighbours.
HOSTILE_NUMBERS = (
    "NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1e-999", "-0", "-0.0", "1" + "0" * 400, "7" * 4400,
    "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
    "1.5", "1E+2", "0.1e-7", "300", "300.0000001", "1e2",
)
PATTERNS = (
    "^test-kbd", "kbd", "(a+)+$", "(a|aa)*$", "(x{2}){3}", "(", "[", ")", "\\", "x{99999}", "a{1,1000000}",
    "(?P<n>a)(?P=n)", "(?<=a)b", "(?i)KBD", ".*" * 60, "[^]]", "(?(1)a|b)", "\x00", "(?P<a>", "é+",
)
USUAL: dict[str, tuple[tuple[str, Any], ...]] = {
    "history": (("seconds", 1.5), ("pattern", "kbd")),
    "clients": (("offset", 1), ("limit", 5)),
    "subscribe": (("pattern", "^test-kbd"),),
    "open": (("file", "song.mid"),),
    "time": (("id", 5),),
}
FIELDS = ("id", "id", "offset", "limit", "seconds", "pattern", "file", "client", "protocol", "pid", "type")
TYPES = (*sorted(REPLY_TYPE), *sorted(REPLY_TYPE), "hello", "", "nonsense", "t" * 33, "Status", "status\x00", "s" * 32)


def to_json(v: Any) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, Obj):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(x)}" for k, x in v) + "}"
    if isinstance(v, list):
        return "[" + ",".join(to_json(x) for x in v) + "]"
    return json.dumps(v)


def nest(value: Any, depth: int, objects: bool) -> Raw:
    inner = to_json(value)
    if objects:
        return Raw('{"a":' * depth + inner + "}" * depth)
    return Raw("[" * depth + inner + "]" * depth)


long_strings = st.builds(
    lambda c, n: c * n, st.characters(), st.sampled_from((33, 64, 65, 201, 257, 1000, 20_000, 66_000))
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 400),
    st.integers(),
    st.integers(-(1 << 70), 1 << 70),
    st.floats(-1.0, 400.0),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=16),
    long_strings,
    st.sampled_from(HOSTILE_NUMBERS).map(Raw),
)


def containers(kids: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(kids, max_size=4) | st.lists(st.tuples(st.text(max_size=6), kids), max_size=4).map(Obj)


values = st.recursive(scalars, containers, max_leaves=10)
field_values = st.one_of(
    values,
    st.sampled_from(PATTERNS),
    st.builds(nest, values, st.sampled_from((1, 31, 32, 33, 200, 1200)), st.booleans()),
)


@st.composite
def requests(draw: st.DrawFn) -> Obj:
    """A request object: mostly a known type (sometimes an odd one or none) and up to four fields,
    mostly the known ones, with hostile values."""
    pick = draw(st.integers(0, 9))
    if pick < 7:
        kind: Any = draw(st.sampled_from(TYPES))
    elif pick < 9:
        kind = draw(st.text(max_size=40))
    else:
        kind = draw(values)
    fields = draw(st.lists(st.tuples(st.sampled_from(FIELDS) | st.text(max_size=8), field_values), max_size=4))
    if draw(st.integers(0, 15)) == 7:
        return Obj(fields)  # no type at all
    # the fields the type takes, as a client sends them, mostly: the random ones then add to or override them
    usual = list(USUAL.get(kind, ())) if isinstance(kind, str) and draw(st.integers(0, 3)) else []
    if kind == "open" and draw(st.booleans()):
        usual = [("file", draw(st.text(max_size=30)))]  # a label of any characters, shown by mxfd status
    return Obj([("type", kind), *usual, *fields])


#: The control payloads of the seed frames the e2e mutator starts from.
SEED_REQUESTS = [f[FRAME_HEADER_SIZE:] for f in seed_frames() if f[2] == KIND_CONTROL]


@st.composite
def control_cases(draw: st.DrawFn) -> Case:
    """A control frame whose JSON body is hostile: a request built of hostile parts, any JSON value, or
    one of the seed requests (every type, its usual fields) with a field set to a hostile value;
    sometimes its bytes mutated as well (the header kept true)."""
    pick = draw(st.integers(0, 5))
    if pick < 2:
        rng = draw(st.randoms(use_true_random=True))
        payload = rng.choice(SEED_REQUESTS)
        if rng.random() < 0.7:
            payload = mutate_request(json.loads(payload), rng)
    else:
        value = draw(requests()) if pick < 5 else draw(values)
        payload = to_json(value).encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 3:
        payload = mutate(payload, draw(st.randoms(use_true_random=True)))
    return classify(frame(KIND_CONTROL, payload))


# -- strategies: buffers and headers -------------------------------------------------------------------

MESSAGES = (
    bytes([0x90, 60, 100]), bytes([0x80, 60, 0]), bytes([0x99, 36, 127]), bytes([0xB0, 64, 127]),
    bytes([0xB0, 121, 0]), bytes([0xC0, 5]), bytes([0xD0, 30]), bytes([0xA0, 60, 10]), bytes([0xE0, 0, 0x40]),
    bytes([0xF8]), bytes([0xFE]), bytes([0xFF]), bytes([0xF2, 1, 2]), bytes([0xF6]), bytes([0xF1, 5]),
    bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7]), bytes([0xF0, 0x43]) + bytes(range(100)) + bytes([0xF7]),
    bytes([0xF0, 1, 2, 3]), bytes([0xF7]), bytes([0x40, 0x7F]),
)
records = st.lists(
    st.tuples(st.integers(0, 10_000_000), st.integers(0, 0xFFFF) | st.just(1), st.sampled_from(MESSAGES)),
    max_size=10,
)
start_times = st.integers(-(1 << 63), (1 << 63) - 1) | st.integers(900_000_000, 1_100_000_000)


@st.composite
def buffer_cases(draw: st.DrawFn) -> Case:
    """A buffer frame made by ``encode_buffer``, then mutated (record fields set to edge values, bytes
    flipped, inserted or cut) 0 to 3 times; or a payload too short for a start time."""
    if draw(st.integers(0, 15)) == 0:
        return classify(frame(KIND_BUFFER, draw(st.binary(max_size=7))))
    _, data = encode_buffer(draw(records))
    rng = draw(st.randoms(use_true_random=True))
    for _ in range(draw(st.integers(0, 3))):
        data = mutate_buffer(data, rng)
    return classify(buffer_frame(draw(start_times), data))


@st.composite
def garbage_cases(draw: st.DrawFn) -> Case:
    """Bytes that are no frame, a frame whose header is mutated, or one whose length says more than is sent."""
    pick = draw(st.integers(0, 2))
    if pick == 0:
        return classify(draw(st.binary(min_size=1, max_size=48)))
    sound = draw(control_cases() | buffer_cases())
    if pick == 1:
        return classify(mutate_header(sound.data, draw(st.randoms(use_true_random=True))))
    head = bytearray(sound.data[:FRAME_HEADER_SIZE])
    length = len(sound.data) - FRAME_HEADER_SIZE + draw(st.integers(1, MAX_CONTROL_SIZE))
    struct.pack_into("<I", head, 8, length)  # the rest never comes: the end of the stream does
    return classify(bytes(head) + sound.data[FRAME_HEADER_SIZE:])


def sessions(middle: st.SearchStrategy[Case], last: st.SearchStrategy[Case]) -> st.SearchStrategy[list[Case]]:
    """Up to three cases the session must go on after, then one that may end it."""
    return st.builds(
        lambda xs, x: [*xs, x], st.lists(middle.filter(lambda c: not c.ends_session), max_size=3), last
    )


# -- the tests -------------------------------------------------------------------------------------


def fuzz_sessions(healthy: Fuzzed, caplog: pytest.LogCaptureFixture, cases: st.SearchStrategy[list[Case]]) -> set[str]:
    """Run the seed corpus as one session (every request type and buffer, as a client sends them),
    then the strategy's sessions; the outcomes the fuzzing saw, to check it reached what it aims at.

    Which examples Hypothesis draws depends on the modules loaded (it mixes in constants found in
    them), so the tests ask it only for outcomes it reaches nearly always; the corpus has the rest."""
    corpus = [classify(f) for f in seed_frames(healthy.engine.clock())]
    seen = {a.outcome for a in healthy.check(caplog, lambda: run_session(healthy.server.path, corpus))}
    assert seen == {*REPLY_TYPE.values(), "bad-request", "taken"}, seen  # the hello again is the bad request
    outcomes: set[str] = set()

    @FUZZ
    @given(cases, st.randoms(use_true_random=True))
    def run(session: list[Case], rng: random.Random) -> None:
        def meanwhile() -> None:
            # what the session holds shows in status, and status still prints; a capture buffer
            # goes to the session if it subscribed (with whatever pattern it got through)
            with Client(healthy.server.path, timeout=CASE_SECONDS) as c:
                check_status_prints(c.status())
            engine = healthy.engine
            engine.capture(rng.choice(INPUTS), engine.clock(), encode_buffer([(engine.clock(), 1, NOTE)])[1])

        played = lambda: run_session(  # noqa: E731
            healthy.server.path, session, meanwhile=meanwhile, split=rng if rng.random() < 0.3 else None
        )
        for a in healthy.check(caplog, played):
            outcomes.add(a.outcome)

    run()
    return outcomes


def test_fuzz_control_frames_each_get_one_reply_and_the_session_goes_on(
    healthy: Fuzzed, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = fuzz_sessions(healthy, caplog, sessions(control_cases(), control_cases()))
    assert {"bad-request", "unknown-request"} <= outcomes, outcomes


def test_fuzz_mutated_buffers_are_played_or_refused_whole_with_one_error(
    healthy: Fuzzed, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = fuzz_sessions(healthy, caplog, sessions(buffer_cases() | control_cases(), buffer_cases()))
    assert {"bad-buffer", "taken"} <= outcomes, outcomes
    assert sum(s.released_on_close for s in healthy.engine.closed_streams) > 0  # some were queued, then returned


def test_fuzz_garbage_and_broken_headers_get_one_error_then_a_close(
    healthy: Fuzzed, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes = fuzz_sessions(healthy, caplog, sessions(control_cases() | buffer_cases(), garbage_cases()))
    assert {"garbage", "closed"} <= outcomes, outcomes


def hello_exchange(path: str, data: bytes) -> list[dict[str, Any]]:
    """Send ``data`` as the first frame, then a ``time`` request, and half-close; what came back."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(CASE_SECONDS)
    s.connect(path)
    got: list[dict[str, Any]] = []
    try:
        try:
            s.sendall(data + encode_control({"type": "time", "id": "after"}))
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed already: the refusal is still to be read
        decoder = FrameDecoder()
        while True:
            ev = decoder.next_event()
            if ev is NEED_DATA:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    assert got and got[0]["type"] == "refused", got  # closed with our bytes unread, after saying why
                    return got
                if not chunk:
                    return got
                decoder.receive_data(chunk)
                continue
            msg = getattr(ev, "message", None)
            assert isinstance(msg, dict), ev
            got.append(msg)
    finally:
        s.close()


def test_fuzz_a_mutated_hello_is_welcomed_or_refused_in_one_frame(
    healthy: Fuzzed, caplog: pytest.LogCaptureFixture
) -> None:
    seed = encode_control(make_hello("fuzz", pid=99))
    outcomes: set[str] = set()

    @FUZZ
    @given(st.randoms(use_true_random=True), st.booleans())
    def run(rng: random.Random, header: bool) -> None:
        data = mutate_header(seed, rng) if header else mutate(seed, rng)

        def play() -> list[Answered]:
            got = hello_exchange(healthy.server.path, data)
            kinds = [m["type"] for m in got]
            if kinds[:1] == ["refused"]:
                assert len(got) == 1 and len(got[0]["reason"]) < 200 and got[0]["supported"] == [1], got
            elif kinds[:1] == ["welcome"]:
                # then the time request's reply, or (a hello cut short) whatever its tail makes, ending in garbage
                rest = got[1:]
                assert rest and (kinds[-1] == "time" or rest[-1].get("code") == "garbage"), got
                assert all(m["type"] in ("time", "error") and len(encode_control(m)) < 1024 for m in rest), got
            else:
                assert kinds == [], got  # a length past what was sent: the end came first
            outcomes.add(kinds[0] if kinds else "closed")
            return []

        healthy.check(caplog, play)

    run()
    assert {"welcome", "refused"} <= outcomes, outcomes
