"""A real headless PipeWire, the desktop's sound server, for end-to-end tests.

One rig per test run: a D-Bus session bus (wireplumber exits at once without
one), ``pipewire``, ``wireplumber`` and ``pipewire-pulse`` in a private runtime
directory (0700) with a home of their own, and a null sink as the speakers.
The graph runs at 48 kHz with the quantum forced to 128
(``clock.force-quantum``), where a desktop would have 1024.

Nothing reaches the rig by accident: a PipeWire client finds it only through
:meth:`PipeWireRig.env` (``PIPEWIRE_RUNTIME_DIR``, ``PULSE_SERVER``, the
session bus), and a JACK client only through :meth:`PipeWireRig.jack_env`,
which adds what ``pw-jack`` sets (PipeWire's libjack first on
``LD_LIBRARY_PATH``) and drops ``JACK_DEFAULT_SERVER`` (the jackd tests' server
name).  The library path counts when a process starts, so JACK clients on
PipeWire are subprocesses: the test process itself keeps jackd2's libjack for
the jackd tests.

Every process of the rig dies with the test process (``PR_SET_PDEATHSIG``,
as :mod:`tests.jackserver` does), and :meth:`PipeWireRig.stop` ends them
and removes the runtime directory.  :meth:`PipeWireRig.restart` kills
pipewire and wireplumber hard, as a crash would, and starts them again with
the same sink.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from tests.jackserver import die_with_parent

RATE = 48000
QUANTUM = 128
SINK = "mxfd-speakers"
#: Where ``pw-jack`` puts PipeWire's libjack (``/usr/${LIB}/pipewire-0.3/jack``); the library's
#: own path is the one to trust, so it is found rather than spelt out.
_PW_JACK_DIRS = ("/usr/lib/x86_64-linux-gnu/pipewire-0.3/jack", "/usr/lib/aarch64-linux-gnu/pipewire-0.3/jack",
                 "/usr/lib64/pipewire-0.3/jack", "/usr/lib/pipewire-0.3/jack")
PROGRAMS = ("dbus-daemon", "pipewire", "wireplumber", "pipewire-pulse", "pactl", "pw-metadata", "pw-jack")


def pw_jack_dir() -> str:
    """The folder of PipeWire's libjack, which ``pw-jack`` puts first on the library path."""
    for d in _PW_JACK_DIRS:
        if os.path.exists(os.path.join(d, "libjack.so.0")):
            return d
    raise RuntimeError("PipeWire's libjack not found: the test command installs pipewire-jack (make test)")


class PipeWireRig:
    """pipewire + wireplumber + pipewire-pulse on a private session bus, with a null sink."""

    def __init__(self, rate: int = RATE, quantum: int = QUANTUM) -> None:
        missing = [p for p in PROGRAMS if shutil.which(p) is None]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not found: the test command installs PipeWire (make test)")
        self.rate = rate
        self.quantum = quantum
        self.root = Path(tempfile.mkdtemp(prefix="mxfd-pw-"))
        self.runtime = self.root / "run"
        self.runtime.mkdir(mode=0o700)
        self.home = self.root / "home"
        self.home.mkdir()
        self.bus = f"unix:path={self.root / 'bus'}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sink_module: Optional[str] = None

    # -- environments ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The environment of a PipeWire (or PulseAudio, or ALSA-through-PipeWire) client of this rig."""
        env = {k: v for k, v in os.environ.items() if k != "JACK_DEFAULT_SERVER"}
        env.update(
            PIPEWIRE_RUNTIME_DIR=str(self.runtime),
            PULSE_SERVER=f"unix:{self.runtime / 'pulse' / 'native'}",
            DBUS_SESSION_BUS_ADDRESS=self.bus,
        )
        return env

    def jack_env(self) -> dict[str, str]:
        """As :meth:`env`, plus what ``pw-jack`` sets: a JACK client started with it talks to this PipeWire."""
        env = self.env()
        old = env.get("LD_LIBRARY_PATH")
        env["LD_LIBRARY_PATH"] = pw_jack_dir() + (f":{old}" if old else "")
        return env

    def _server_env(self) -> dict[str, str]:
        env = self.env()
        env.update(
            XDG_RUNTIME_DIR=str(self.runtime),
            HOME=str(self.home),
            XDG_STATE_HOME=str(self.home / "state"),
            XDG_CONFIG_HOME=str(self.home / "config"),
        )
        return env

    # -- life cycle -----------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(
            argv, env=self._server_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        log.close()

    def _run(self, *argv: str, timeout: float = 10.0) -> str:
        out = subprocess.run(argv, env=self._server_env(), capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} exited with {p.returncode} while waiting for {what}; "
                                       f"see {self.root / (name + '.log')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"PipeWire rig: {what} not there after {timeout} s; logs in {self.root}")
            time.sleep(0.05)

    def _pulse_answers(self) -> bool:
        return subprocess.run(["pactl", "info"], env=self._server_env(), capture_output=True,
                              timeout=10).returncode == 0

    def _sink_graph_ready(self) -> bool:
        return SINK in subprocess.run(["pactl", "list", "short", "sinks"], env=self._server_env(),
                                      capture_output=True, text=True, timeout=10).stdout

    def _sink_is_default(self) -> bool:
        env = self._server_env()
        subprocess.run(["pactl", "set-default-sink", SINK], env=env, capture_output=True, timeout=10)
        return subprocess.run(["pactl", "get-default-sink"], env=env, capture_output=True, text=True,
                              timeout=10).stdout.strip() == SINK

    def start(self, timeout: float = 15.0) -> None:
        if "dbus" not in self.procs:
            self._spawn("dbus", ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.bus}"])
            self._wait("the session bus", lambda: (self.root / "bus").exists(), timeout)
        self._start_sound(timeout)

    def _start_sound(self, timeout: float) -> None:
        self._spawn("pipewire", ["pipewire"])
        self._wait("pipewire's socket", lambda: (self.runtime / "pipewire-0").exists(), timeout)
        self._spawn("wireplumber", ["wireplumber"])
        self._spawn("pipewire-pulse", ["pipewire-pulse"])
        self._wait("pipewire-pulse", self._pulse_answers, timeout)
        self.sink_module = self._run(
            "pactl", "load-module", "module-null-sink", f"sink_name={SINK}",
            f"rate={self.rate}", "channels=2", f"sink_properties=device.description={SINK}",
        ).strip()
        self._wait("the null sink", self._sink_graph_ready, timeout)
        # pipewire-pulse keeps the default in wireplumber's "default" metadata: until wireplumber
        # has made it, set-default-sink answers "Not supported".
        self._wait("the null sink as the default", self._sink_is_default, timeout)
        self.set_quantum(self.quantum)

    def set_quantum(self, quantum: int) -> None:
        """Force the graph's quantum (what a desktop's ``pw-metadata`` does); clients see a new buffer size."""
        self._run("pw-metadata", "-n", "settings", "0", "clock.force-rate", str(self.rate))
        self._run("pw-metadata", "-n", "settings", "0", "clock.force-quantum", str(quantum))
        self.quantum = quantum

    def _end(self, name: str, sig: int) -> None:
        p = self.procs.pop(name, None)
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    def kill_sound(self) -> None:
        """Kill pipewire and wireplumber hard, as a crash would (pipewire-pulse loses its server and goes too)."""
        for name in ("wireplumber", "pipewire", "pipewire-pulse"):
            self._end(name, signal.SIGKILL)
        for leftover in ("pipewire-0", "pipewire-0.lock", "pipewire-0-manager", "pipewire-0-manager.lock"):
            (self.runtime / leftover).unlink(missing_ok=True)

    def restart(self, timeout: float = 15.0) -> None:
        """Kill pipewire and wireplumber and start them again, sink and quantum as before."""
        self.kill_sound()
        self._start_sound(timeout)

    def stop(self) -> None:
        for name in ("pipewire-pulse", "wireplumber", "pipewire", "dbus"):
            self._end(name, signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
