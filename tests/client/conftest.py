"""Fixtures of the server tests: the real core behind the engine contract, a private socket directory, a server."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from mxfd.client.server import Server, ServerConfig, start_server
from tests.client.helpers import CoreEngine, socket_dir


@pytest.fixture
def engine() -> CoreEngine:
    return CoreEngine()


@pytest.fixture
def sockdir() -> Iterator[str]:
    with socket_dir() as d:
        yield d


@pytest.fixture
def server(engine: CoreEngine, sockdir: str) -> Iterator[Server]:
    s = start_server(engine, ServerConfig(socket=os.path.join(sockdir, "mxfd", "mxfd.sock")))
    yield s
    s.close()
