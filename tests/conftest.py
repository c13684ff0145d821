"""Shared fixtures.  End-to-end tests start one JACK server per run.

Only tests marked ``e2e`` may use JACK, so ``-m "not e2e"`` runs without jackd:
a test that requests :func:`jack_server` without the marker stops the run at
collection, and every other test runs with JACK pointed at a server that does
not exist (and may not be started), so JACK use the marker does not cover fails.
"""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.jackserver import JackServer
from tests.pipewire import PipeWireRig

pytest_plugins = ["pytester"]  # tests/test_e2e_marker.py runs the guard on a test file of its own

#: The server every test not marked e2e sees: none runs under this name.
NO_SERVER = "mxfd-test-no-jack-outside-e2e"


@pytest.hookimpl(tryfirst=True)  # before -m deselects, so every collected test is checked
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    unmarked = [
        item.nodeid
        for item in items
        if "jack_server" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests that use the JACK server must be marked e2e (pytest.mark.e2e): " + ", ".join(unmarked)
        )
    # A test talks to one JACK server: jackd's (in its own process) or PipeWire's (in subprocesses under pw-jack).
    wrong = [
        item.nodeid
        for item in items
        if "pipewire" in getattr(item, "fixturenames", ())
        and (item.get_closest_marker("pipewire") is None or "jack_server" in getattr(item, "fixturenames", ()))
    ]
    if wrong:
        raise pytest.UsageError(
            "tests that use the PipeWire rig must be marked pipewire (pytest.mark.pipewire) "
            "and not use the jackd server: " + ", ".join(wrong)
        )


@pytest.fixture(autouse=True)
def _jack_only_in_e2e(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("e2e") is not None:
        return
    monkeypatch.setenv("JACK_DEFAULT_SERVER", NO_SERVER)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")

    def refuse(self: JackServer, timeout: float = 10.0) -> None:
        raise RuntimeError(f"{request.node.nodeid} starts a JACK server but is not marked e2e")

    monkeypatch.setattr(JackServer, "start", refuse)


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A running ``jackd -d dummy`` (48 kHz, period 128) under a private name.

    ``JACK_DEFAULT_SERVER`` is set for the whole run, so rtmidi, JACK-Client,
    PortAudio and any ``mxfd run`` subprocess all talk to this server.
    Only for tests marked ``e2e`` (checked at collection).
    """
    server = JackServer.start_free("mxfd-test")
    old = os.environ.get("JACK_DEFAULT_SERVER")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    try:
        yield server
    finally:
        server.stop()
        if old is None:
            os.environ.pop("JACK_DEFAULT_SERVER", None)
        else:
            os.environ["JACK_DEFAULT_SERVER"] = old


@pytest.fixture(scope="session")
def pipewire() -> Iterator[PipeWireRig]:
    """A running headless PipeWire (pipewire, wireplumber, pipewire-pulse), a null sink, quantum 128 at 48 kHz.

    Its clients get :meth:`PipeWireRig.env` (PipeWire, PulseAudio, ALSA through
    pipewire-alsa) or :meth:`PipeWireRig.jack_env` (JACK, as under ``pw-jack``),
    always in subprocesses.  Only for tests marked ``pipewire`` (checked at collection).
    """
    rig = PipeWireRig()
    try:
        rig.start()
        yield rig
    finally:
        rig.stop()
