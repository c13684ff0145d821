"""The port watcher: keeps the connected MIDI sources equal to the ports that are wanted.

Theory of operation
-------------------
One thread owns every backend (JACK or ALSA through rtmidi, raw devices) and
runs a reconcile pass whenever it is woken: by a backend's notification
(JACK port registration and connection, a raw device lost) or, for systems
without notifications, every ``poll_interval``.  A pass lists each
backend's ports, keeps those the config wants (:meth:`MidiConfig.wants`),
closes the sources whose port is gone or no longer wanted, and opens the new
ones, each into a capture stream of its own made by ``open_stream``.  So a
keyboard that is unplugged is closed cleanly (``close_stream`` releases what
it left held) and is connected again on the pass after it returns: within
milliseconds with notifications, within ``poll_interval`` without.  One that
returns before a pass saw it go (same name, a new port, the connection to
the old one dropped: the backend's ``reconnect_dropped`` connects it again)
is closed and opened anew by the next pass, so what it held is released;
one that is gone by then (PipeWire drops a port's links just before the
port) is closed as gone.

A backend whose system went away (the JACK server died) is closed with all
its sources and reopened every ``retry_interval`` until the system is back;
then the daemon's own input port is exposed again and the pass connects
everything anew.  Nothing here needs the daemon to restart.  The log says
so once each way ("JACK server gone", "no JACK server ...; retrying every
0.5 s", "JACK server back"); the retries in between are silent, and so is
libjack (:mod:`mxfd.io.jacklog`).

A port that appears while the backend is up is connected only once it has
been there for ``NEW_PORT_GRACE_S``: a program that connects itself to
mxfd's own input port does so a moment after registering its port, and
connecting it to a port of its own as well in that moment would play its
first notes twice, on two channel groups.  Ports present when a backend
comes up (the daemon's start, a server's return) are connected at once.

Sources that fail to open are logged once and retried on later passes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from mxfd.io.base import BackendUnavailable, CaptureTarget, MidiBackend, Wake

log = logging.getLogger(__name__)

#: After a notification, one more pass this much later (seconds).
RECHECK_S = 0.05
#: How long a new port is left for its program to connect it to mxfd's input port itself (seconds).
NEW_PORT_GRACE_S = 0.04


@dataclass
class _Open:
    handle: Any
    target: CaptureTarget


@dataclass
class _BackendState:
    up: bool = False
    retry_at: float = 0.0
    last_error: Optional[str] = None
    virtual: Optional[_Open] = None
    sources: dict[str, _Open] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: sources whose dropped connection was made again: reopened by the next pass if still there
    replugged: set[str] = field(default_factory=set)
    #: False until a pass has followed the backend since it came up: until then ports connect at once
    settled: bool = False
    #: when each wanted port not yet connected was first seen (its grace runs from there)
    first_seen: dict[str, float] = field(default_factory=dict)


class Hotplug:
    """Connects every wanted source of every backend and follows them as they come and go.

    ``open_stream(name, backend)`` returns the capture target for a new source and
    ``close_stream(target)`` closes it after its port is closed.  ``wants``
    decides from a port name whether to connect it.  ``virtual_port`` (e.g.
    ``"in"``) is exposed on each backend that has one; None for none.
    """

    def __init__(
        self,
        backends: Sequence[MidiBackend],
        wake: Wake,
        *,
        wants: Callable[[str], bool],
        open_stream: Callable[[str, MidiBackend], CaptureTarget],
        close_stream: Callable[[CaptureTarget], None],
        virtual_port: Optional[str] = "in",
        poll_interval: float = 0.25,
        retry_interval: float = 0.5,
        clock_sync_interval: float = 2.0,
        new_port_grace: float = NEW_PORT_GRACE_S,
    ) -> None:
        self.backends = list(backends)
        self.wake = wake
        self.wants = wants
        self.open_stream = open_stream
        self.close_stream = close_stream
        self.virtual_port = virtual_port
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.clock_sync_interval = clock_sync_interval
        self.new_port_grace = new_port_grace
        self._state = {id(b): _BackendState() for b in self.backends}
        self._lock = threading.RLock()
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._next_sync = 0.0
        self._recheck_at = 0.0
        #: Set after the first pass (whatever it found): the daemon may report READY.
        self.first_pass = threading.Event()
        #: Passes run, sources opened and closed, backends lost.
        self.passes = 0
        self.opened = 0
        self.closed = 0
        self.lost = 0

    # -- control -------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="mxfd-hotplug", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and close every source and backend."""
        self._stopping = True
        self.wake.set()
        t = self._thread
        if t is not None:
            t.join(5.0)
        self._thread = None
        with self._lock:
            for b in self.backends:
                self._shut(b, "stopping")

    def update(self, *, wants: Callable[[str], bool], virtual_port: Optional[str]) -> None:
        """New rules (SIGHUP): the next pass applies them."""
        with self._lock:
            self.wants = wants
            if virtual_port != self.virtual_port:
                self.virtual_port = virtual_port
                for b in self.backends:
                    st = self._state[id(b)]
                    if st.virtual is not None:
                        self._close(b, st.virtual)
                        st.virtual = None
                    if st.up:
                        self._open_virtual(b, st)
        self.wake.set()

    def status(self) -> list[dict[str, Any]]:
        """One entry per backend: whether it is up and what it has open."""
        out = []
        with self._lock:
            for b in self.backends:
                st = self._state[id(b)]
                out.append(
                    {
                        "backend": b.kind,
                        "up": st.up,
                        "error": st.last_error,
                        "virtual": st.virtual is not None,
                        "sources": sorted(st.sources),
                        "failed": dict(st.failed),
                    }
                )
        return out

    def connected(self) -> list[str]:
        with self._lock:
            return [n for b in self.backends for n in self._state[id(b)].sources]

    # -- the watcher thread ------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping:
            try:
                with self._lock:
                    self.reconcile()
            except Exception:
                log.exception("hot-plug pass failed; trying again")
            self.first_pass.set()
            if self._stopping:
                break
            if self.wake.wait(self._timeout()):
                # A notification can come just before the system's port list
                # changes (JACK announces an unregistration first): look again soon.
                self._recheck(time.monotonic() + RECHECK_S)

    def _recheck(self, at: float) -> None:
        """Run a pass at ``at`` at the latest."""
        self._recheck_at = at if not self._recheck_at else min(self._recheck_at, at)

    def _timeout(self) -> float:
        """Sleep until woken, or until the next poll, retry, recheck or clock sync."""
        t = self.clock_sync_interval
        if self._recheck_at:
            t = max(0.0, min(t, self._recheck_at - time.monotonic()))
            self._recheck_at = 0.0
        for b in self.backends:
            st = self._state[id(b)]
            if not st.up or st.failed:
                t = min(t, self.retry_interval)
            if not b.notifies:
                t = min(t, self.poll_interval)
            liveness = getattr(b, "liveness_interval", None)  # a system that may die without a word
            if liveness is not None and st.up:
                t = min(t, liveness)
        return t

    def reconcile(self) -> None:
        """One pass over every backend (the watcher thread calls this; tests may too)."""
        self.passes += 1
        now = time.monotonic()
        for b in self.backends:
            st = self._state[id(b)]
            if st.up and not b.alive:
                self.lost += 1
                log.warning("%s: %s gone; closing its %d sources", b.kind, getattr(b, "system", "MIDI system"),
                            len(st.sources))
                self._shut(b, "lost")
                st.last_error = "gone"  # so its return is reported, however soon it comes
            if not st.up:
                if now < st.retry_at:
                    continue
                try:
                    b.open()
                except BackendUnavailable as exc:
                    if st.last_error != str(exc):
                        log.warning("%s: %s; retrying every %.1f s", b.kind, exc, self.retry_interval)
                    st.last_error = str(exc)
                    st.retry_at = now + self.retry_interval
                    continue
                st.up = True
                if st.last_error is not None:
                    # Said once, as "gone" was: the retries in between were silent.
                    log.info("%s: %s back", b.kind, getattr(b, "system", "MIDI system"))
                st.last_error = None
                self._open_virtual(b, st)
            self._follow(b, st)
        if now >= self._next_sync:
            self._next_sync = now + self.clock_sync_interval
            for b in self.backends:
                sync = getattr(b, "sync_clock", None)
                if sync is not None and self._state[id(b)].up:
                    sync()
                report = getattr(b, "report_losses", None)  # input lost while the daemon stood still
                if report is not None:
                    report()

    def _follow(self, b: MidiBackend, st: _BackendState) -> None:
        names = b.list_sources()
        present = set(names)
        replugged = getattr(b, "reconnect_dropped", None)  # a port that went and came back between two passes
        for name in list(st.sources):
            if name not in present:
                why = "gone"
            elif not self.wants(name):
                why = "no longer wanted"
            elif name in st.replugged:
                why = "plugged in again"  # what it held before is released: its note-offs may be lost
            elif replugged is not None and replugged(st.sources[name].handle):
                # Connected again; the next pass tells a keyboard plugged in again (still there)
                # from one going away (PipeWire drops a port's links just before the port).
                st.replugged.add(name)
                self._recheck(time.monotonic() + RECHECK_S)
                continue
            else:
                continue
            st.replugged.discard(name)
            log.info("%s: %s: %s, closing", b.kind, name, why)
            self._close(b, st.sources.pop(name))
        for name in list(st.failed):
            if name not in present:
                del st.failed[name]
        for name in list(st.first_seen):
            if name not in present:
                del st.first_seen[name]
        now = time.monotonic()
        for name in names:
            if name in st.sources or not self.wants(name):
                continue
            if st.settled and name not in st.failed:
                ready_at = st.first_seen.setdefault(name, now) + self.new_port_grace
                if now < ready_at:
                    self._recheck(ready_at)  # its program may connect it to mxfd's input itself meanwhile
                    continue
            st.first_seen.pop(name, None)
            target = self.open_stream(name, b)
            try:
                handle = b.open_source(name, target)
            except Exception as exc:
                self.close_stream(target)
                if st.failed.get(name) != str(exc):
                    log.warning("%s: cannot connect %s: %s; will retry", b.kind, name, exc)
                st.failed[name] = str(exc)
                continue
            st.failed.pop(name, None)
            st.sources[name] = _Open(handle, target)
            self.opened += 1
            log.info("%s: connected %s", b.kind, name)
        st.settled = True

    def _open_virtual(self, b: MidiBackend, st: _BackendState) -> None:
        if self.virtual_port is None:
            return
        name = f"{getattr(b, 'client_name', 'mxfd')}:{self.virtual_port}"
        target = self.open_stream(name, b)
        try:
            handle = b.open_virtual(self.virtual_port, target)
        except Exception as exc:
            log.warning("%s: cannot open the input port %s: %s", b.kind, name, exc)
            handle = None
        if handle is None:
            self.close_stream(target)
            return
        st.virtual = _Open(handle, target)
        log.info("%s: input port %s is open", b.kind, getattr(handle, "name", name))

    def _close(self, b: MidiBackend, o: _Open) -> None:
        try:
            b.close_source(o.handle)
        except Exception:
            log.exception("%s: closing %s failed", b.kind, getattr(o.handle, "name", "?"))
        self.close_stream(o.target)
        self.closed += 1

    def _shut(self, b: MidiBackend, why: str) -> None:
        st = self._state[id(b)]
        for name in list(st.sources):
            self._close(b, st.sources.pop(name))
        if st.virtual is not None:
            self._close(b, st.virtual)
            st.virtual = None
        st.failed.clear()
        st.first_seen.clear()
        st.settled = False
        if st.up or why == "stopping":
            try:
                b.close()
            except Exception:
                log.exception("%s: close failed", b.kind)
        st.up = False


__all__ = ["Hotplug"]
