"""``JackPinOutput``: the daemon's audio output on the JACK-native pin (``[audio] pin = "jack"``).

Theory of operation
-------------------
The sound is rendered by :class:`~mxfd.io.jack_pin.JackPin`'s compiled
callback, in JACK's own cycle, from a
:class:`~mxfd.synth.engine.plane_synth.PlaneSynth`'s data plane.  What stays
in Python is the control plane's side of each cycle, on one *feeder* thread
(the event ring's one producer):

* the pin writes a byte to a non-blocking pipe at the end of every cycle;
  the feeder wakes on it, reads the plane's position (the first frame the
  next cycle renders) and calls ``feed(position)``: the engine releases its
  streams' events and writes those due in the next two periods into the
  ring.  A cycle of slack: a feeder late by up to a period changes nothing
  that is heard.
* every :data:`~mxfd.io.audio.SYNC_INTERVAL` cycles it reports the clock,
  ``on_sync(master time, frame, step)``, as the PortAudio pin does: the
  cycle's start on ``CLOCK_MONOTONIC`` (read inside the callback, least
  phase of the recent reports) plus the output latency of one period (JACK
  plays a cycle's buffer during the next one), against the cycle's first
  frame.  ``step`` says the cycles' schedule moved (an xrun): the engine
  re-anchors instead of slewing.
* while no server answers, or after it went away, the same thread renders
  the plane into the void on a timer (one consumer at a time: the pin is
  closed then), so events are consumed, control requests applied and the
  clock keeps going; it retries the server with a doubling backoff, like
  :class:`~mxfd.io.audio.AudioOutput`'s supervisor.  A server that shuts down
  (or a callback that stops coming for :data:`SILENT_S`) closes the client,
  and the next attempt reopens it: ports ``<client_name>:out_0``/``out_1``
  come back under the same names.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from typing import Any, Callable, Final, Optional

import numpy as np

from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.cycle_clock import CycleClock
from mxfd.io.audio import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    DEGRADED,
    RUNNING,
    STABLE_S,
    STOPPED,
    SYNC_INTERVAL,
    StateCallback,
    SyncCallback,
    announce_state,
)
from mxfd.io.base import PlayedRing, ThruQueue, close_fds
from mxfd.synth.engine import dataplane
from mxfd.synth.engine.dataplane import C_HIGH, C_LATE, C_POSITION, C_THRU_DROPS, P_DROPS
from mxfd.synth.engine.plane_synth import PlaneSynth

log = logging.getLogger(__name__)

# Typed Any: mypy cannot follow numba's types.
run_cycle: Any = dataplane.run_cycle

#: ``feed(position)``: the control plane's side of a cycle; True while it has events still to feed.
FeedCallback = Callable[[int], bool]
#: While the control plane has nothing to feed, the feeder is woken every this many cycles only
#: (171 ms at 48 kHz / 128), for the clock report: idle costs next to nothing;
#: :meth:`JackPinOutput.wake` brings it back at once.
IDLE_WAKE_EVERY: Final = 64
#: The feeder's longest sleep with no wake-up byte: how soon it sees a silent callback.
FEEDER_TIMEOUT_S: Final = 0.25
#: A running client whose callback has not come for this long counts as gone.
SILENT_S: Final = 1.0


class JackPinOutput:
    """Plays a :class:`PlaneSynth` through the JACK-native pin; the feeder thread drives ``feed``.

    The same face as :class:`~mxfd.io.audio.AudioOutput` to the engine:
    ``start``, ``stop``, ``state``, ``status`` and ``played_position``.
    """

    def __init__(
        self,
        synth: PlaneSynth,
        feed: FeedCallback,
        *,
        rate: int,
        period: int,
        client_name: str = "mxfd-out",
        servername: Optional[str] = None,
        on_sync: Optional[SyncCallback] = None,
        on_state: Optional[StateCallback] = None,
    ) -> None:
        from mxfd.io.jack_pin import JackPin

        self.synth = synth
        self.rate = rate
        self.period = period
        self.client_name = client_name
        self._feed = feed
        self._on_sync = on_sync
        self._on_state = on_state
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._gone = threading.Event()
        self._gone_reason = ""
        self.pin = JackPin(synth.plane, client_name=client_name, servername=servername, wake_fd=self._wake_w,
                           on_shutdown=self._on_shutdown)
        self._state = STOPPED
        self._message = ""
        self._stopping = threading.Event()
        self._first_outcome = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._void = np.zeros((2, max(period, 16)), np.float32)
        self._ports: list[str] = []
        self._jack_period = period
        #: What the latest clock report was read from ("callback wake-up" once the pin plays).
        self.sync_clock = "none yet"
        self.clock = CycleClock(rate)
        self._played_ring: Optional[PlayedRing] = None
        self._thru_queue: Optional[ThruQueue] = None
        self.restarts = 0
        self.feed_errors = 0
        self.late_feeds = 0
        self.last_error = ""

    # -- the engine's face ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``'running'`` (the pin plays on a server), ``'degraded'`` (none answers; retrying) or ``'stopped'``."""
        return self._state

    def start(self, timeout: float = 1.5) -> None:
        """Start the feeder, which opens the pin; wait up to ``timeout`` for the first attempt's outcome."""
        if self._state != STOPPED:
            raise RuntimeError("JackPinOutput is already started")
        self._stopping.clear()
        self._first_outcome.clear()
        self._set_state(DEGRADED, "starting")
        self._thread = threading.Thread(target=self._main, name="mxfd-pin-feeder", daemon=True)
        self._thread.start()
        self._first_outcome.wait(timeout)

    def stop(self) -> None:
        """Close the pin and stop the feeder (the engine silences the plane first)."""
        self._stopping.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(5.0)
            if self._thread.is_alive():
                log.error("the JACK pin's feeder did not stop in 5 s (is feed() blocking?)")
            self._thread = None
        self.pin.close()
        close_fds(self._wake_r, self._wake_w)
        self._wake_r = self._wake_w = -1
        self._set_state(STOPPED, "stopped")

    def played_position(self) -> Optional[int]:
        """The first frame of the cycle JACK runs now (for a JACK client ordered after the pin); None unless running."""
        if self._state != RUNNING:
            return None
        return self.pin.cycle_start()[1]

    def played_ring(self) -> PlayedRing:
        """The first frame the pin renders next, where a compiled JACK reader that runs before it reads it."""
        if self._played_ring is None:
            cons = self.synth.plane_arrays["cons"]
            self._played_ring = PlayedRing(name="", words=len(cons), read=C_POSITION, slot0=C_POSITION - 1,
                                           slot_stride=0, slots=1, address=int(cons.ctypes.data),
                                           keep=cons)  # fmt: skip
        return self._played_ring

    def thru_queue(self) -> ThruQueue:
        """The plane's thru queue, where such a reader puts what this cycle plays from its inputs."""
        if self._thru_queue is None:
            a = self.synth.plane_arrays
            thru, count, cons = a["thru"], a["thru_n"], a["cons"]
            self._thru_queue = ThruQueue(rows=len(thru), rows_address=int(thru.ctypes.data),
                                         count_address=int(count.ctypes.data),
                                         drops_address=int(cons.ctypes.data) + 8 * C_THRU_DROPS,
                                         keep=(thru, count, cons))  # fmt: skip
        return self._thru_queue

    def sync_port(self) -> Optional[str]:
        """The pin's port a JACK reader feeds to run before it in every cycle, while the pin plays."""
        return self.pin.sync_port if self._state == RUNNING else None

    def status(self) -> dict[str, Any]:
        """What ``mxfd status`` shows: the PortAudio pin's keys that apply, and the callback's own figures."""
        pin = self.pin.status()
        cons = self.synth.plane_arrays["cons"]
        period = self.pin.cycle_start()[2] or self._jack_period  # the last cycle's: the server may change it
        return {
            "pin": "jack",
            "device": f"JACK pin {self.client_name}",
            "hostapi": "JACK, compiled callback",
            "ports": list(self._ports),
            "rate": self.rate,
            "period": period,
            "latency_frames": 2 * period,
            "device_latency_s": period / self.rate,
            "state": self._state,
            "message": self._message,
            "overruns": pin["overruns"],
            "xruns": pin["xruns"],
            "callback_us": pin["callback_us"],
            "cycles": pin["cycles"],
            "ring": {
                "late": int(cons[C_LATE]),
                "high_water": int(cons[C_HIGH]),
                "drops": int(self.synth.plane_arrays["prod"][P_DROPS]),
            },
            "sync_clock": self.sync_clock,
            "clock_steps": self.clock.steps,
            "feed_errors": self.feed_errors,
            "late_feeds": self.late_feeds,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    # -- state ----------------------------------------------------------------------------

    def _set_state(self, state: str, message: str) -> None:
        changed = state != self._state
        news = message != self._message
        self._state = state
        self._message = message
        announce_state(state, message, changed, news, self._on_state)

    def _on_shutdown(self, reason: str) -> None:
        self._gone_reason = reason  # a JACK thread: a flag and a wake-up, no more
        self._gone.set()
        self.wake()

    # -- the feeder thread --------------------------------------------------------------------

    def _main(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._stopping.is_set():
            began = time.monotonic()
            message = self._play()
            self.last_error = message
            if self._stopping.is_set():
                break
            if time.monotonic() - began >= STABLE_S:
                backoff = BACKOFF_MIN_S
            self._set_state(DEGRADED, message)
            self._first_outcome.set()
            self._void_until(time.monotonic() + backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
            self.restarts += 1
        self._first_outcome.set()

    def _play(self) -> str:
        """Open the pin and feed it until the server goes away or the pin stops; why it ended."""
        import jack

        self._gone.clear()
        try:
            self.pin.open()
        except (jack.JackError, RuntimeError, OSError) as exc:
            return f"no JACK server answers ({exc})"
        client = self.pin.client
        self.clock.reset()  # a new client: its frames start again
        self._ports = self.pin.output_ports
        self._jack_period = int(client.blocksize)
        if self._jack_period > self.period:
            log.warning("JACK runs %d-frame periods, mxfd is set for %d: thru may be late by a period "
                        "(mxfd run --period %d)", self._jack_period, self.period, self._jack_period)
        self._set_state(RUNNING, f"JACK pin {client.name} ({client.samplerate} Hz, period {client.blocksize})")
        self._first_outcome.set()
        try:
            return self._feed_cycles()
        finally:
            self.pin.close()

    def wake(self) -> None:
        """Something arrived to be fed (any thread): feed it now, and every cycle until it is all fed."""
        try:
            os.write(self._wake_w, b"\x02")
        except (BlockingIOError, OSError):
            pass  # a full pipe wakes the feeder already; a closed one has no feeder to wake

    def _feed_cycles(self) -> str:
        synced_at: Optional[int] = None
        busy = True
        self.pin.set_wake_every(1)
        last_wake = time.monotonic()
        fd = self._wake_r
        while not self._stopping.is_set():
            if self._gone.is_set():
                return f"the JACK server went away ({self._gone_reason or 'no reason given'})"
            ready, _, _ = select.select([fd], [], [], FEEDER_TIMEOUT_S)
            now = time.monotonic()
            if not ready:
                if now - last_wake > SILENT_S:
                    return f"the JACK pin's callback has not run for {SILENT_S:g} s"
                continue
            last_wake = now
            try:
                woke = len(os.read(fd, 4096))
            except BlockingIOError:
                continue
            if woke > 1 and busy:
                self.late_feeds += 1  # cycles went by while this thread waited (for the GIL, mostly)
            position = self.synth.ring.position
            if busy != self._feed_once(position):
                busy = not busy
                self.pin.set_wake_every(1 if busy else IDLE_WAKE_EVERY)
            if self._on_sync is not None and (synced_at is None or position - synced_at >= SYNC_INTERVAL * self.period):
                synced_at = position
                self._sync()
        return "stopped"

    def _sync(self) -> None:
        assert self._on_sync is not None
        a = self.pin.cycle_start()
        b = self.pin.cycle_start()
        if a != b:  # a cycle began between the two reads: the fields may be torn; next time
            return
        start_ns, frame, length, _jack_frame = a
        if length <= 0:
            return
        # The callback's own readings, least phase first (mxfd.core.cycle_clock says why not JACK's).
        start = self.clock.report(start_ns, frame, length, self.pin.xruns)
        self.sync_clock = "callback wake-up"
        heard = start.start_ns // 100 + length * UNITS_PER_SECOND // self.rate  # JACK plays it a period later
        try:
            self._on_sync(heard, frame, start.step)
        except Exception:
            self.feed_errors += 1
            log.exception("on_sync failed")

    def _feed_once(self, position: int) -> bool:
        """Feed the cycle; whether there is more to feed (after a failure: yes, to try again next cycle)."""
        try:
            return self._feed(position)
        except Exception:
            self.feed_errors += 1
            if self.feed_errors & (self.feed_errors - 1) == 0:
                log.exception("feeding the JACK pin failed (%d times so far)", self.feed_errors)
            return True

    def _void_until(self, deadline: float) -> None:
        """Render the plane into the void on a timer while no server plays it (the pin is closed)."""
        n = self.period
        # The frame count as JACK's callback passes it (uint32): the one signature of run_cycle that
        # start-up compiled or loaded, so the first server restart does not compile another for seconds.
        frames = np.uint32(n)
        period_s = n / self.rate
        left, right = self._void[0, :n], self._void[1, :n]
        due = time.monotonic()
        countdown = 0
        while not self._stopping.is_set() and due < deadline:
            now = time.monotonic()
            if now - due > 1.0:
                due = now  # asleep for a second (suspend?): no catching up in a burst
            while due <= now:
                frame = self.synth.ring.position
                run_cycle(self.synth.plane, frames, left, right)
                self._feed_once(frame + n)
                countdown -= 1
                if countdown <= 0 and self._on_sync is not None:
                    countdown = SYNC_INTERVAL
                    try:
                        self._on_sync(int((due + period_s) * 1e7), frame, False)
                    except Exception:
                        self.feed_errors += 1
                        log.exception("on_sync failed")
                due += period_s
            self._stopping.wait(max(0.0, due - time.monotonic()) + 3 * period_s)

__all__ = ["FeedCallback", "JackPinOutput", "SILENT_S"]
