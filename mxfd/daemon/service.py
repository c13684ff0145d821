"""``mxfd run``: the daemon in the foreground, as systemd starts it.

Theory of operation
-------------------
The main thread loads the config (flags override the file), builds the
engine, claims the client socket (a second daemon stops here, naming the
first one's pid, before it opens audio or keyboards; ``--no-clients`` runs
without the socket), starts the engine, serves the socket, and then only waits:
for a signal, for the watchdog interval, or for a state change to report.
Everything else runs on the engine's threads.

Life cycle and what systemd hears (``sd_notify``, a datagram to
``$NOTIFY_SOCKET``; no library needed)::

    start ─▶ devices opened (or found missing: degraded) ─▶ READY=1, STATUS=...
      │                                                        │
      │   SIGHUP or a client's reload request: RELOADING=1,    │
      │     config re-read and applied, bank swapped ──────────┤ (a bad file is refused, the old one kept)
      │   state change: STATUS=running|degraded: ... ──────────┤
      │   every WATCHDOG_USEC/2: WATCHDOG=1 ───────────────────┤
      ▼                                                        ▼
    SIGTERM/SIGINT: STOPPING=1; clients closed; inputs closed; pending events returned;
                    all sound off; device closed; exit 0

Signal handlers only set flags and wake the main thread; the work happens
in the main loop, outside the handler.  A client's ``reload`` request does
the same through :meth:`Daemon.request_reload`, and is answered with what
the reload did once the main loop has done it.  Between wake-ups the main
loop also lets go of the synths and fonts a bank swap retired, so the audio
thread never frees them.  Logs go to stderr, one line per
record; under journald (``$JOURNAL_STREAM``) each line carries the ``<N>``
priority prefix journald reads and no time stamp of its own.

Threads started by the daemon must not meet the garbage collector in the
middle of a period, so start-up ends with ``gc.freeze()`` (everything built so
far is never scanned again), and the interpreter's switch interval is
shortened so JACK's process thread gets the GIL back quickly.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from mxfd.daemon.bank import BankError, describe_bank
from mxfd.daemon.config import Config, ConfigError, apply_overrides, load
from mxfd.io.base import is_mxfd_port

if TYPE_CHECKING:
    from mxfd.client.server import EngineLike, Server

log = logging.getLogger("mxfd")

#: How long a thread waiting for the GIL lets the holder run (default 5 ms, longer than a period).
SWITCH_INTERVAL_S = 0.0005
#: Longest wait for the audio device before reporting READY (degraded if it is not there yet).
AUDIO_START_TIMEOUT_S = 1.2
#: Longest wait for the first hot-plug pass before reporting READY.
MIDI_START_TIMEOUT_S = 0.6


# -- sd_notify ----------------------------------------------------------------------------


class Notifier:
    """``sd_notify(3)`` over a plain AF_UNIX datagram socket; silent when not under systemd."""

    def __init__(self, environ: Optional[dict[str, str]] = None) -> None:
        env = os.environ if environ is None else environ
        addr = env.get("NOTIFY_SOCKET", "")
        self.address: Optional[str] = None
        if addr.startswith("@"):
            self.address = "\0" + addr[1:]  # abstract namespace
        elif addr.startswith("/"):
            self.address = addr
        self._sock: Optional[socket.socket] = None
        #: Messages dropped because the receiver's queue was full.
        self.dropped = 0
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        self.watchdog_s: Optional[float] = None
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_s = int(usec) / 1e6

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        sock, addr = self._sock, self.address
        if sock is None or addr is None:
            return False
        try:
            # Never block the main loop on a receiver that is not reading.
            sock.sendto("\n".join(lines).encode(), socket.MSG_DONTWAIT, addr)
        except BlockingIOError:
            self.dropped += 1
            log.debug("sd_notify: the receiver's queue is full; %s dropped", lines[0])
            return False
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# -- logging --------------------------------------------------------------------------------

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class _JournalFormatter(logging.Formatter):
    """``<priority>logger: message``: journald takes the level from the prefix."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prio = _PRIORITY.get(record.levelno, 6)
        return "\n".join(f"<{prio}>{line}" for line in text.splitlines())


def stderr_is_journal() -> bool:
    """True when stderr is connected to journald (systemd sets ``JOURNAL_STREAM=dev:ino``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


def setup_logging(level: str, verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level.upper()))
    # The compiler's own debug records are its trace of every pass (thousands of lines a function):
    # a daemon's debug log is about the daemon.
    logging.getLogger("numba").setLevel(max(root.level, logging.INFO))


# -- the daemon ---------------------------------------------------------------------------------


def _on_off(value: Optional[str]) -> Optional[bool]:
    return None if value is None else value == "on"


def load_config(args: argparse.Namespace) -> Config:
    """The config file with ``mxfd run``'s flags applied over it (:class:`ConfigError` if either is bad)."""
    config = load(getattr(args, "config", None))
    return apply_overrides(
        config,
        midi_api=getattr(args, "midi_api", None),
        audio_device=getattr(args, "audio_device", None),
        audio_pin=getattr(args, "audio_pin", None),
        rate=getattr(args, "rate", None),
        period=getattr(args, "period", None),
        soundfont=getattr(args, "soundfont", None),
        gain=getattr(args, "gain", None),
        reverb=_on_off(getattr(args, "reverb", None)),
        chorus=_on_off(getattr(args, "chorus", None)),
    )


def describe(engine: Any) -> str:
    """The one-line STATUS= text."""
    inputs = [i for i in engine.inputs() if i["connected"] and not is_mxfd_port(i["name"])]
    audio = engine.audio.status() if engine.audio is not None else {}
    text = f"{engine.state}: {len(inputs)} MIDI source(s), audio {audio.get('state', 'none')}"
    if audio.get("state") == "degraded" and audio.get("message"):
        text += f" ({audio['message']})"
    return text


class SocketTaken(Exception):
    """The client socket cannot be claimed; the daemon must not start (one line says why)."""


def claim_client_socket(engine: "EngineLike", config: Config) -> "Server":
    """The client socket server, bound but not yet serving: before audio and keyboards are opened,
    so a second daemon stops here instead of sounding everything twice.  Raises :class:`SocketTaken`."""
    from mxfd.client.server import DaemonRunning, ServerSetupError, bind_server

    try:
        return bind_server(engine, config)
    except DaemonRunning as exc:
        raise SocketTaken(
            f"mxfd is already running (pid {exc.pid}, socket {exc.path}); not starting a second daemon "
            "(use --no-clients to run one without the socket anyway)"
        ) from None
    except (ServerSetupError, OSError) as exc:
        raise SocketTaken(f"client socket {config.client.socket}: {exc}; not starting (or use --no-clients)") from None


class Daemon:
    """The running service: engine, client server and the main loop's flags."""

    def __init__(self, config: Config, args: argparse.Namespace, notifier: Notifier) -> None:
        self.config = config
        self.args = args
        self.notifier = notifier
        self.wakeup = threading.Event()
        self.stop_signal: Optional[int] = None
        self.reload_requested = False
        #: Callbacks of clients' reload requests, answered by the next reload (main thread).
        self._reload_waiters: list[Callable[[dict[str, Any]], None]] = []
        self._waiters_lock = threading.Lock()
        self.engine: Any = None
        self.server: Optional[Server] = None

    def request_reload(self, done: Callable[[dict[str, Any]], None]) -> None:
        """Reload as SIGHUP does (any thread); ``done(report)`` is called from the main thread when it is over."""
        with self._waiters_lock:
            self._reload_waiters.append(done)
        self.reload_requested = True
        self.wakeup.set()

    def _on_signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stop_signal = signum
        self.wakeup.set()

    def run(self) -> int:
        from mxfd.daemon.compile_watch import CompileWatch
        from mxfd.daemon.engine import Engine
        from mxfd.synth.resident import release_compiler_pages

        t0 = time.monotonic()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        server_name = os.environ.get("JACK_DEFAULT_SERVER") or "default"
        log.info(
            "starting (pid %d, config %s, JACK server %r)", os.getpid(), self.config.path or "built-in", server_name
        )
        try:
            self.engine = engine = Engine(self.config)
        except BankError as exc:
            log.error("config error: [synth] soundfont: %s", exc)
            self.notifier.notify(f"STATUS=soundfont not loaded: {exc}", "ERRNO=2")
            return 2
        engine.reloader = self.request_reload
        if getattr(self.args, "no_clients", False):
            log.warning("running without clients (--no-clients): mxfd play, record and status cannot reach it")
        else:
            try:
                self.server = claim_client_socket(engine, self.config)
            except SocketTaken as exc:
                log.error("%s", exc)
                self.notifier.notify(f"STATUS={exc}", "ERRNO=98")
                return 1
        engine.start(audio_timeout=AUDIO_START_TIMEOUT_S)
        engine.wait_ready(MIDI_START_TIMEOUT_S)
        if self.server is not None:
            self.server.serve()
            engine.register_status("clients", self.server.status)
            log.info("clients: listening on %s", self.server.path)
        gc.collect()
        gc.freeze()
        status = describe(engine)
        # Logged first: whoever hears READY=1 finds the line in the log already.
        log.info(
            "ready in %.2f s: %s; bank %s; thru latency %.2f ms (JACK input), %.2f ms (other input)",
            time.monotonic() - t0,
            status,
            describe_bank(engine.bank),
            engine.jack_thru_ms(),
            engine.render_latency_100ns / 10_000,
        )
        self.notifier.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
        watch = CompileWatch()
        watch.install()
        engine.register_status("compiler", watch.status)
        given_back = release_compiler_pages()
        if given_back:
            log.info("gave back %.0f MiB of the compiler's code pages", given_back / 1024)
        self._loop(status)
        return self._shutdown()

    def _loop(self, status: str) -> None:
        watchdog = self.notifier.watchdog_s
        interval = min(1.0, watchdog / 2) if watchdog else 1.0
        while self.stop_signal is None:
            self.wakeup.wait(interval)
            self.wakeup.clear()
            if self.stop_signal is not None:
                break
            if self.reload_requested:
                self.reload_requested = False
                self._reload()
            self.engine.collect_retired()
            if watchdog:
                self.notifier.notify("WATCHDOG=1")
            now = describe(self.engine)
            if now != status:
                status = now
                log.info("status: %s", status)
                self.notifier.notify(f"STATUS={status}")

    def _reload(self) -> dict[str, Any]:
        """Re-read the config and apply it; the report a client's reload request is answered with."""
        with self._waiters_lock:
            waiters, self._reload_waiters = self._reload_waiters, []
        self.notifier.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
        report: dict[str, Any] = {"ok": False, "config": self.config.path, "error": None}
        try:
            config = load_config(self.args)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", exc)
            report["error"] = f"config refused, the running one kept: {exc}"
        else:
            if config.client != self.config.client:
                log.warning("[client] settings take effect when mxfd is restarted; the socket stays as it is")
            flag = getattr(self.args, "soundfont", None)
            if flag is not None:
                log.info("mxfd run --soundfont %s wins over [synth] soundfont of the config", " ".join(flag))
            # No collection during a reload: loading a soundfont makes hundreds of thousands of objects, and
            # the collections they trigger (or a gc.unfreeze() and a full one) hold the GIL for tens of ms, a
            # gap in the sound.  What the reload makes is frozen as it is; what it drops is freed by reference
            # counting all the same (only garbage in cycles stays).
            gc.disable()
            try:
                bank = self.engine.reload(config)
                self.config = config
                report.update(ok=bank["error"] is None, config=config.path, bank=bank["bank"],
                              bank_changed=bank["changed"], error=bank["error"])
                log.info("config reloaded from %s", config.path or "built-in defaults")
            except Exception as exc:
                log.exception("reload failed")
                report["error"] = f"reload failed: {type(exc).__name__}: {exc}"
            finally:
                gc.freeze()
                gc.enable()
        report.setdefault("bank", self.engine.bank_name)
        self.notifier.notify("READY=1", f"STATUS={describe(self.engine)}")
        for done in waiters:
            try:
                done(report)
            except Exception:
                log.exception("answering a reload request failed")
        return report

    def _shutdown(self) -> int:
        sig = self.stop_signal
        name = signal.Signals(sig).name if sig is not None else "request"
        log.info("stopping (%s)", name)
        self.notifier.notify("STOPPING=1", "STATUS=stopping")
        if self.server is not None:
            try:
                self.server.close()
            except Exception:
                log.exception("closing the client server failed")
        self.engine.stop()
        log.info("stopped")
        self.notifier.close()
        return 0


def main(args: argparse.Namespace) -> int:
    """``mxfd run``: returns the exit status (0 after a clean stop, 2 for a bad config)."""
    setup_logging("info", getattr(args, "verbose", 0))
    try:
        config = load_config(args)
    except ConfigError as exc:
        log.error("config error: %s", exc)
        return 2
    setup_logging(config.log.level, getattr(args, "verbose", 0))
    notifier = Notifier()
    daemon = Daemon(config, args, notifier)
    try:
        return daemon.run()
    except Exception:
        log.exception("fatal error")
        notifier.notify("STATUS=failed", "ERRNO=1")
        if daemon.server is not None:
            try:
                daemon.server.close()
            except Exception:
                log.exception("closing the client socket after the fatal error failed")
        if daemon.engine is not None:
            try:
                daemon.engine.stop()
            except Exception:
                log.exception("stopping after the fatal error failed")
        return 1


__all__ = ["Daemon", "Notifier", "describe", "load_config", "main", "setup_logging", "stderr_is_journal"]
