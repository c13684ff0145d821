"""Many and slow clients: ``status`` round trips while 1000 idle and 100 dripping connections are open.

Starts a private ``jackd -d dummy`` and a real ``mxfd run`` on it (as
``bench_client.py`` does), then measures ``status`` round trips from a fresh
client each time (connect, hello, status, close: what ``mxfd status`` does)
three times: with no other connection; with ``--idle`` connections that said
hello and then nothing; and with ``--drip`` more that send their hello one
byte at a time, one byte every 0.2 s (they are turned away at the hello
deadline, and are replaced as they go).  The daemon's open descriptors,
threads and RSS are read from ``/proc`` before, during and after.

Run: ``.venv/bin/python benchmarks/bench_connections.py [--idle 1000] [--drip 100] [--requests 200]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_client import start_daemon  # noqa: E402
from mxfd.client import Client  # noqa: E402
from mxfd.client.protocol import encode_control, make_hello  # noqa: E402
from tests.jackserver import JackServer  # noqa: E402


def footprint(pid: int) -> tuple[int, int, float]:
    """Open descriptors, threads and RSS (MiB) of ``pid``."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return fds, threads, rss / 1024


def status_round_trips(sock: str, n: int) -> tuple[float, float, float]:
    """Median, p99 and max milliseconds of connect + hello + status + close."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        with Client(sock, name="bench-status", timeout=5.0) as c:
            c.status()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))], times[-1]


class Drippers:
    """``count`` connections that send a hello one byte every ``interval`` seconds, replaced when turned away."""

    def __init__(self, sock: str, count: int, interval: float = 0.2) -> None:
        self.path = sock
        self.hello = encode_control(make_hello("bench-drip", 1))
        self.peers: list[tuple[socket.socket, int]] = [self._connect() for _ in range(count)]
        self.interval = interval
        self.done = threading.Event()
        self.turned_away = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _connect(self) -> tuple[socket.socket, int]:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        s.setblocking(False)
        return s, 0

    def _run(self) -> None:
        while not self.done.wait(self.interval):
            for i, (s, sent) in enumerate(self.peers):
                try:
                    s.send(self.hello[sent % len(self.hello) : sent % len(self.hello) + 1])
                    self.peers[i] = (s, sent + 1)
                except OSError:  # the hello deadline passed: the daemon closed it
                    s.close()
                    self.turned_away += 1
                    self.peers[i] = self._connect()

    def close(self) -> None:
        self.done.set()
        self.thread.join()
        for s, _ in self.peers:
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--idle", type=int, default=1000, help="idle connections (hello said, then nothing)")
    ap.add_argument("--drip", type=int, default=100, help="connections dripping their hello a byte at a time")
    ap.add_argument("--requests", type=int, default=200, help="status round trips per row")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    root = tempfile.mkdtemp(prefix="mxfd-bench-conn-")
    os.chmod(root, 0o700)
    server = JackServer.start_free("mxfd-bench")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    proc = None
    try:
        proc, sock = start_daemon(root)
        print(f"mxfd connections: python {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}; {args.idle} idle + {args.drip} dripping connections\n")
        print(f"{'open connections':34}{'status median ms':>18}{'p99 ms':>9}{'max ms':>9}"
              f"{'daemon fds':>12}{'threads':>9}{'RSS MiB':>9}")

        def row(label: str) -> None:
            median, p99, worst = status_round_trips(sock, args.requests)
            fds, threads, rss = footprint(proc.pid)
            print(f"{label:34}{median:18.2f}{p99:9.2f}{worst:9.2f}{fds:12d}{threads:9d}{rss:9.1f}")

        row("none")
        idle = []
        for _ in range(args.idle):
            c = Client(sock, name="bench-idle", timeout=10.0)
            idle.append(c)
        row(f"{args.idle} idle")
        drippers = Drippers(sock, args.drip)
        time.sleep(1.0)
        row(f"{args.idle} idle + {args.drip} dripping")
        drippers.close()
        for c in idle:
            c.close()
        time.sleep(1.0)
        row("none again (all closed)")
        print(f"\ndripping connections turned away at the hello deadline meanwhile: {drippers.turned_away}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
