"""The JACK test server itself comes up and carries audio between clients."""

import jack
import pytest

from tests.jackserver import JackServer

pytestmark = pytest.mark.e2e


def test_dummy_server_runs_clients(jack_server: JackServer) -> None:
    c = jack.Client("mxfd-test-client", no_start_server=True, servername=jack_server.name)
    try:
        assert c.samplerate == jack_server.rate
        assert c.blocksize == jack_server.period
    finally:
        c.close()
