"""mxfd.client: talk to a running daemon over its local socket.

The importable client API::

    from mxfd.client import Client

    with Client(name="my-sequencer") as c:
        now, latency = c.time()                      # master clock, 100 ns units
        t = now + latency + 1_000_000                # 100 ms from now, after the render latency
        c.play([(t, 1, bytes([0x90, 69, 100])), (t + 5_000_000, 1, bytes([0x80, 69, 0]))])
        c.sync()                                     # the daemon has taken every buffer
        print(c.status()["state"])

The wire protocol is in :mod:`mxfd.client.protocol` (and ``docs/protocol.md``);
the daemon's side is :func:`mxfd.client.server.start_server`.
"""

from mxfd.client.client import Captured, Client, ClientError, ServerError, default_socket_path
from mxfd.client.protocol import PROTOCOL_VERSION, HelloRefused, ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "Captured",
    "Client",
    "ClientError",
    "HelloRefused",
    "ProtocolError",
    "ServerError",
    "default_socket_path",
]
