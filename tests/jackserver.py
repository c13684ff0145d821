"""A real JACK server with the dummy driver, for end-to-end tests.

One server per test run, under its own name (``JACK_DEFAULT_SERVER``), so
tests never touch a user's sound server and parallel runs never collide.
``restart()`` kills and restarts it, for the sound-server-restart tests.

Runs take the first free name of a few (:meth:`JackServer.start_free`)
rather than a new one each: JACK's registry holds at most eight servers, and
it frees the entry of a server that died without stopping (a killed test
run) only when a server of the same name starts.  Fresh names would fill it
up, and then no server starts at all ("Too many servers already active").

The server runs in real-time mode (``-R``, jackd's default), so its thread and
every client's process thread are SCHED_FIFO where the system allows it and
are not kept waiting behind the test run's own busy processes (Python
subprocesses starting up on a two-core machine).  A server that is not allowed
real-time scheduling says so in its log and runs as with ``--no-realtime``.
Without it, clients miss their cycles (xruns) several times a second while a
test starts a subprocess, and across such xruns JACK itself loses and repeats
MIDI events: a plain JACK-Client reader of the test keyboard sees them too.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import time
from typing import Any, Optional, Sequence

import jack

RATE = 48000
PERIOD = 128


#: Names ``<prefix>-0`` ... a test run may take (parallel runs each take one).
NAME_SLOTS = 4

_PR_SET_PDEATHSIG = 1
# Looked up now: between fork and exec (a threaded parent) the child should do as little as it can.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """``preexec_fn``: the child gets SIGKILL when the test process dies, so nothing outlives a crashed run."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class JackServer:
    """``jackd -R -d dummy`` under a private server name, or another ``driver`` (its ``-d`` and arguments)."""

    def __init__(self, name: str, rate: int = RATE, period: int = PERIOD, driver: Sequence[str] = ()) -> None:
        self.name = name
        self.rate = rate
        self.period = period
        self.driver = list(driver) or ["dummy", "-r", str(rate), "-p", str(period)]
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.log_path = f"/tmp/{name}.jackd.log"

    @classmethod
    def start_free(cls, prefix: str, **kw: Any) -> "JackServer":
        """Start a server under the first name ``<prefix>-<n>`` no running server has (``kw``: the constructor's)."""
        for n in range(NAME_SLOTS):
            server = cls(f"{prefix}-{n}", **kw)
            if server.running():
                continue
            open(server.log_path, "wb").close()
            try:
                server.start()
            except RuntimeError:
                with open(server.log_path, errors="replace") as f:
                    if "already active" in f.read():  # another run took the name meanwhile
                        continue
                raise
            return server
        raise RuntimeError(f"JACK servers {prefix}-0 ... {prefix}-{NAME_SLOTS - 1} all run: too many test runs at once")

    def running(self) -> bool:
        """True when a server of this name answers."""
        try:
            c = jack.Client("mxfd-test-probe", no_start_server=True, servername=self.name)
        except jack.JackError:
            return False
        c.close()
        return True

    def start(self, timeout: float = 10.0) -> None:
        jackd = shutil.which("jackd")
        if jackd is None:
            raise RuntimeError("jackd not found: the test command installs jackd2 (make test)")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [jackd, "-R", "-n", self.name, "-d", *self.driver],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jackd exited with {self.proc.returncode}; see {self.log_path}")
            if self.running():
                return
            time.sleep(0.05)
        raise RuntimeError(f"jackd did not come up in {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """Kill the server hard, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()
