"""Shared fixtures.  End-to-end tests start one JACK server per run."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from tests.jackserver import JackServer


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A running ``jackd -d dummy`` (48 kHz, period 128) under a private name.

    ``JACK_DEFAULT_SERVER`` is set for the whole run, so rtmidi, JACK-Client,
    PortAudio and any ``mxfd run`` subprocess all talk to this server.
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
