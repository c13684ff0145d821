"""The client's side of the trust boundary: it talks only to a daemon of its own user (or root, when told)."""

from __future__ import annotations

import os
import socket
import sys
import textwrap
from typing import Iterator

import pytest

from mxfd.client import Client, ClientError
from mxfd.client.client import check_daemon
from tests.client.helpers import socket_dir

OTHER_UID = 65534

# a listener that drops to another uid before it binds: what a user holding the socket path runs
FAKE_DAEMON = textwrap.dedent(
    """
    import os, socket, sys
    from mxfd.client.protocol import encode_control
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(sys.argv[1]); s.listen(8)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        c.sendall(encode_control({"type": "welcome", "protocol": 1, "server": "mxfd", "client_id": 1,
                                  "now": 0, "render_latency_100ns": 0}))
    """
)


@pytest.fixture
def fake_daemon() -> Iterator[str]:
    import subprocess

    with socket_dir() as d:
        os.chmod(d, 0o777)  # the other uid binds here
        path = os.path.join(d, "mxfd.sock")
        proc = subprocess.Popen([sys.executable, "-c", FAKE_DAEMON, path], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            yield path
        finally:
            proc.kill()
            proc.wait()


def test_a_daemon_run_by_another_user_is_refused(fake_daemon: str) -> None:
    with pytest.raises(ClientError, match=rf"served by uid {OTHER_UID} \(pid \d+\), not by uid 0: refusing"):
        Client(fake_daemon, timeout=5.0)


def test_the_same_listener_is_talked_to_once_its_uid_is_trusted(fake_daemon: str) -> None:
    # the refusal above is the uid check, not anything else about the fake
    with Client(fake_daemon, timeout=5.0, trusted_uids=(OTHER_UID,)) as c:
        assert c.welcome["server"] == "mxfd"


def test_the_peer_check_names_the_uid_it_found() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert check_daemon(a, "x", {os.geteuid()}) == os.getpid()
        found = rf"x is served by uid {os.geteuid()} \(pid {os.getpid()}\), not by uid 4242"
        with pytest.raises(ClientError, match=found):
            check_daemon(a, "x", {4242})
