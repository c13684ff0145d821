"""The port watcher: wanted ports are connected, vanished ones closed, returning ones reconnected."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterator, Optional

import pytest

from mxfd.io.base import BackendUnavailable, CaptureTarget, Wake
from mxfd.io.hotplug import Hotplug
from mxfd.io.midi_in import JackMidiBackend
from tests.e2e.ears import wait_until
from tests.io.test_midi_in import FrameSender, Target
from tests.jackserver import JackServer

# -- a scripted backend: the watcher's logic without a MIDI system ---------------------------


class Handle:
    def __init__(self, name: str) -> None:
        self.name = name


class ScriptedBackend:
    """A MIDI system whose ports, availability and failures the test sets."""

    kind = "scripted"
    notifies = True
    frame_accurate = False
    client_name = "mxfd"

    def __init__(self) -> None:
        self.ports: list[str] = []
        self.available = True
        self.is_alive = False
        self.refuse: set[str] = set()
        #: ports whose connection was dropped since they were opened (plugged in again)
        self.replaced: set[str] = set()
        self.opened: dict[str, Handle] = {}
        self.virtual: Optional[Handle] = None
        self.closes = 0

    @property
    def alive(self) -> bool:
        return self.is_alive

    def open(self) -> None:
        if not self.available:
            raise BackendUnavailable("not there")
        self.is_alive = True

    def close(self) -> None:
        self.is_alive = False
        self.opened.clear()
        self.virtual = None
        self.closes += 1

    def list_sources(self) -> list[str]:
        return list(self.ports)

    def open_source(self, name: str, target: CaptureTarget) -> Handle:
        if name in self.refuse:
            raise RuntimeError("busy")
        h = self.opened[name] = Handle(name)
        return h

    def reconnect_dropped(self, handle: Any) -> bool:
        if handle.name not in self.replaced or handle.name in self.refuse:
            return False
        self.replaced.discard(handle.name)
        return True

    def close_source(self, handle: Any) -> None:
        self.replaced.discard(handle.name)
        if handle is self.virtual:
            self.virtual = None
        else:
            del self.opened[handle.name]

    def open_virtual(self, port: str, target: CaptureTarget) -> Handle:
        self.virtual = Handle(f"mxfd:{port}")
        return self.virtual


class Streams:
    """The engine's side: a target per opened source, and which were closed."""

    def __init__(self) -> None:
        self.open: dict[str, Target] = {}
        self.closed: list[str] = []
        self._names: dict[int, str] = {}

    def open_stream(self, name: str, backend: object = None) -> Target:
        t = Target()
        self.open[name] = t
        self._names[id(t)] = name
        return t

    def close_stream(self, target: CaptureTarget) -> None:
        name = self._names.pop(id(target))
        del self.open[name]
        self.closed.append(name)


def watcher(backend: Any, streams: Streams, wants: Any = lambda n: True, **kw: Any) -> Hotplug:
    """A watcher over ``backend``; new ports connect on the next pass unless ``new_port_grace`` says otherwise."""
    kw.setdefault("new_port_grace", 0.0)
    return Hotplug(
        [backend],
        Wake(),
        wants=wants,
        open_stream=streams.open_stream,
        close_stream=streams.close_stream,
        **kw,
    )


def test_every_wanted_port_is_opened_with_a_stream_of_its_own() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out", "pads:out", "pads:out2", "synth:out"]
    h = watcher(b, s, wants=lambda n: not n.startswith("synth"))
    h.reconcile()
    assert sorted(b.opened) == ["kbd:out", "pads:out", "pads:out2"]
    assert sorted(s.open) == ["kbd:out", "mxfd:in", "pads:out", "pads:out2"]
    assert b.virtual is not None


def test_a_vanished_port_is_closed_and_its_stream_after_it() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out", "pads:out"]
    h = watcher(b, s)
    h.reconcile()
    b.ports = ["pads:out"]
    h.reconcile()
    assert list(b.opened) == ["pads:out"]
    assert s.closed == ["kbd:out"]
    b.ports = ["pads:out", "kbd:out"]
    h.reconcile()
    assert sorted(b.opened) == ["kbd:out", "pads:out"]


def test_a_port_replugged_between_two_passes_is_closed_and_opened_again_by_the_next_pass() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out", "pads:out"]
    h = watcher(b, s)
    h.reconcile()
    first = b.opened["kbd:out"]
    b.replaced.add("kbd:out")  # same name, a new port: what it held before is released
    h.reconcile()
    assert s.closed == []  # connected again; still there on the next pass, it is the keyboard back
    h.reconcile()
    assert s.closed == ["kbd:out"]
    assert sorted(b.opened) == ["kbd:out", "pads:out"] and b.opened["kbd:out"] is not first
    h.reconcile()
    assert s.closed == ["kbd:out"]


@pytest.mark.parametrize("refused", [True, False])
def test_a_port_whose_connection_dropped_and_that_then_vanishes_is_closed_as_gone(refused: bool) -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out"]
    h = watcher(b, s)
    h.reconcile()
    b.replaced.add("kbd:out")
    if refused:
        b.refuse.add("kbd:out")  # its client went inactive (netJACK's master stopped): the port is going
    # else PipeWire drops the links of a port it is about to remove, and takes a connection meanwhile
    h.reconcile()
    assert s.closed == []
    b.ports = []
    h.reconcile()
    assert s.closed == ["kbd:out"] and b.opened == {}


def test_a_new_port_waits_its_grace_so_a_program_can_connect_it_to_mxfd_in_itself() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out"]
    h = watcher(b, s, new_port_grace=0.05)
    h.reconcile()
    assert list(b.opened) == ["kbd:out"]  # there when the system came up: at once
    b.ports = ["kbd:out", "app:out", "pads:out"]
    h.reconcile()
    assert list(b.opened) == ["kbd:out"]
    b.ports = ["kbd:out", "pads:out"]  # app connected itself to mxfd:in: no longer a source to connect
    time.sleep(0.06)
    h.reconcile()
    assert sorted(b.opened) == ["kbd:out", "pads:out"]
    assert "app:out" not in s.open


def test_ports_present_when_a_system_comes_back_connect_at_once() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out"]
    h = watcher(b, s, retry_interval=0.0, new_port_grace=60.0)
    h.reconcile()
    b.is_alive = False  # the server died and came back with its clients
    h.reconcile()
    assert list(b.opened) == ["kbd:out"]
    assert s.closed == ["kbd:out", "mxfd:in"]


def test_a_port_that_fails_to_open_is_retried_on_later_passes() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out"]
    b.refuse = {"kbd:out"}
    h = watcher(b, s)
    h.reconcile()
    assert b.opened == {} and "kbd:out" not in s.open
    assert h.status()[0]["failed"] == {"kbd:out": "busy"}
    b.refuse = set()
    h.reconcile()
    assert list(b.opened) == ["kbd:out"]
    assert h.status()[0]["failed"] == {}


def test_a_lost_system_closes_every_source_and_is_reopened_when_back() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out"]
    h = watcher(b, s, retry_interval=0.0)
    h.reconcile()
    b.is_alive = False  # the server died
    b.available = False
    h.reconcile()
    assert sorted(s.closed) == ["kbd:out", "mxfd:in"]
    assert b.closes == 1
    assert h.status()[0]["up"] is False
    h.reconcile()  # still not there
    b.available = True
    h.reconcile()
    assert list(b.opened) == ["kbd:out"] and b.virtual is not None
    assert h.lost == 1


def test_a_missing_system_is_said_once_its_retries_are_silent_and_its_return_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    b, s = ScriptedBackend(), Streams()
    b.available = False
    h = watcher(b, s, retry_interval=0.0)
    with caplog.at_level(logging.INFO, logger="mxfd.io.hotplug"):
        for _ in range(5):
            h.reconcile()
        b.available = True
        h.reconcile()
        h.reconcile()
        b.is_alive = False  # lost, and back at the next pass
        h.reconcile()
        h.reconcile()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "scripted: not there; retrying every 0.0 s",
        "scripted: MIDI system back",
        "scripted: input port mxfd:in is open",
        "scripted: MIDI system gone; closing its 0 sources",
        "scripted: MIDI system back",
        "scripted: input port mxfd:in is open",
    ], lines


def test_new_rules_apply_on_the_next_pass() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out", "pads:out"]
    h = watcher(b, s)
    h.reconcile()
    h.update(wants=lambda n: n == "kbd:out", virtual_port=None)
    h.reconcile()
    assert list(b.opened) == ["kbd:out"]
    assert b.virtual is None
    assert sorted(s.closed) == ["mxfd:in", "pads:out"]


def test_stop_closes_everything() -> None:
    b, s = ScriptedBackend(), Streams()
    b.ports = ["kbd:out"]
    h = watcher(b, s)
    h.start()
    assert h.first_pass.wait(2.0)
    h.stop()
    assert s.open == {}
    assert b.closes == 1


# -- on a real JACK server ---------------------------------------------------------------------


@pytest.fixture
def jack_watch(jack_server: JackServer) -> Iterator[tuple[Hotplug, Streams]]:
    streams = Streams()
    lock = threading.Lock()

    def open_stream(name: str, backend: object) -> Target:
        with lock:
            return streams.open_stream(name, backend)

    def close_stream(t: CaptureTarget) -> None:
        with lock:
            streams.close_stream(t)

    backend = JackMidiBackend(Wake(), client_name="mxfd-test-hp")
    h = Hotplug(
        [backend],
        backend.wake,
        wants=lambda n: n.startswith("test-hp"),
        open_stream=open_stream,
        close_stream=close_stream,
    )
    h.start()
    assert h.first_pass.wait(5.0)
    try:
        yield h, streams
    finally:
        h.stop()


def connects_within(h: Hotplug, port: str) -> float:
    """Seconds until the watcher has connected ``port``, measured from its JACK client's activation."""
    t0 = time.monotonic()
    assert wait_until(lambda: port in h.connected(), 5.0, interval=0.001)
    return time.monotonic() - t0


# The JACK backend wakes the watcher from its port-registration callback, so a port is connected
# "within milliseconds" (hotplug.py); 5 to 20 ms measured.  100 ms leaves room for a loaded
# machine and stays well under the 250 ms poll interval, which only a missed notification would need.
CONNECT_S = 0.1


@pytest.mark.e2e
def test_a_keyboard_is_connected_when_it_appears_and_reconnected_within_milliseconds(
    jack_watch: tuple[Hotplug, Streams],
) -> None:
    h, streams = jack_watch
    kbd = FrameSender("test-hp-kbd")
    try:
        assert connects_within(h, "test-hp-kbd:out") < CONNECT_S
        kbd.note_on(60)
        assert wait_until(lambda: len(streams.open["test-hp-kbd:out"].got) == 1, 2.0)
    finally:
        kbd.close()
    assert wait_until(lambda: "test-hp-kbd:out" in streams.closed, 1.0)
    kbd = FrameSender("test-hp-kbd")
    try:
        assert connects_within(h, "test-hp-kbd:out") < CONNECT_S
        kbd.note_on(62)
        assert wait_until(lambda: len(streams.open["test-hp-kbd:out"].got) == 1, 2.0)
    finally:
        kbd.close()


@pytest.mark.e2e
def test_a_keyboard_replugged_faster_than_a_pass_can_look_is_connected_again(
    jack_watch: tuple[Hotplug, Streams],
) -> None:
    h, streams = jack_watch
    kbd = FrameSender("test-hp-kbd")
    try:
        assert connects_within(h, "test-hp-kbd:out") < CONNECT_S
        first = streams.open["test-hp-kbd:out"]
        kbd.replug()  # JACK dropped the connection with the old port; the name is the same
        assert wait_until(lambda: "test-hp-kbd:out" in streams.closed, 1.0)
        assert wait_until(lambda: "test-hp-kbd:out" in h.connected(), 1.0)
        again = streams.open["test-hp-kbd:out"]
        assert again is not first
        kbd.note_on(62)
        assert wait_until(lambda: bytes([0x90, 62, 100]) in again.messages(), 2.0), again.messages()
    finally:
        kbd.close()


@pytest.mark.e2e
def test_a_program_that_connects_itself_to_mxfd_in_is_heard_once_not_also_on_a_port_of_its_own(
    jack_watch: tuple[Hotplug, Streams],
) -> None:
    h, streams = jack_watch
    app = FrameSender("test-hp-app")
    try:
        app.client.connect(app.port, "mxfd-test-hp:in")
        app.note_on(64)
        virtual = streams.open["mxfd-test-hp:in"]
        assert wait_until(lambda: bytes([0x90, 64, 100]) in virtual.messages(), 2.0)
        time.sleep(0.2)  # passes enough to have connected it, had it been taken for a keyboard
        assert "test-hp-app:out" not in h.connected()
        assert h.opened == 0 and "test-hp-app:out" not in streams.open
    finally:
        app.close()
