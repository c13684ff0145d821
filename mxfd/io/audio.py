"""``AudioOutput``: the audio output pin, with PortAudio in a worker process that may die.

Theory of operation
-------------------
Three parties, two processes::

    daemon process                                   worker process (audio_worker.py)
    ──────────────                                   ──────────────────────────────
    render thread ── render(frame, pos) ──▶ frame ─▶ shared-memory ring ─▶ PortAudio callback ─▶ device
         ▲                                                                        │
         └──────────────── one byte per frame played (notify socket) ◀──────────────┘
    supervisor thread: starts the worker, reads its status, restarts it with back-off

*Why a process.*  PortAudio lists host APIs only at initialisation, and its
JACK host API aborts the process on terminate after the server has died
(DESIGN.md).  So PortAudio never loads in the daemon: a worker process owns
it, and when the sound server goes away the worker exits and a fresh one
(which initialises PortAudio anew and so sees a server started later) is
started in its place.

*Frames.*  The pin brings its own frame allocator (KSALLOCATOR_DISPATCH's
role), :class:`~mxfd.io.shm_frames.SharedFrameAllocator`: ``framing.frames``
= ``periods + 1`` frames of ``period × channels`` float32 in one
shared-memory segment, 64-byte aligned, with a
:class:`~mxfd.io.shm_frames.FrameRing` in front.  The stream's allocator can
be read and assigned (KSPROPERTY_STREAM_ALLOCATOR's role).  With its own
allocator the pin renders straight into shared memory (zero copy); with an
assigned allocator (e.g. a :class:`~mxfd.core.frames.DefaultFrameAllocator`
built from :attr:`AudioOutput.framing`) it renders into that allocator's
frame and copies it into a shared frame (KS's split/copy scheme), since the
worker can only see the segment.  ``allocator = None`` restores the pin's own.

*Pacing.*  The device paces everything.  Each callback plays the oldest
queued frame and writes one byte to the notify socket; the render thread,
which sleeps in ``readv`` on it, frees the played frame, renders the next
one and queues it, keeping ``periods`` frames queued.  If nothing is queued
when the callback runs it plays silence and counts an underrun.  The added
latency is ``periods × period`` samples (queue) on top of the device's own
output latency.  In steady state the loop allocates no GC-tracked objects:
frames, their float32 views and the read buffer are made once.

*Scheduling.*  The render thread is part of the real-time chain: a frame late
by more than the queue is an underrun.  So it asks for ``SCHED_FIFO`` at the
lowest real-time priority (:data:`RENDER_RT_PRIORITY`) where the system
allows it (root, ``CAP_SYS_NICE`` or an ``RLIMIT_RTPRIO`` from the audio
group): above every ordinary thread, so a busy process does not keep it
waiting after its wake-up, and below a real-time sound server's own threads
(jackd -R gives itself 10 and its clients 5).  It also holds the GIL that
the daemon's JACK MIDI reader, a real-time thread on a real-time server,
needs in every cycle; an ordinary thread preempted while holding it made
that reader miss its cycle.  Where real-time scheduling is not allowed the
thread runs as an ordinary one, and ``status()`` says which
(``render_scheduling``).

*Degraded.*  While no worker plays (no device, server gone, worker
restarting) the render thread keeps the sample clock running from a timer
at the nominal rate and *discards* what it renders, so the synth keeps
consuming its events (they are never held indefinitely) and ``on_sync`` keeps
the wave sink's clock mapping fed.  When a worker reports ready, the render
thread switches back to device pacing; sample positions continue where they
were (the mapping to master time steps, see ``on_sync``).

*State machine* (supervisor thread)::

    stopped ─start()─▶ degraded ──worker ready──▶ running
                          ▲                          │
                          └── worker exits / dies / stalls (restart after back-off:
                              0.25 s doubling to 5 s, reset after 5 s of running),
                              or reopen() replaces it (no back-off: the JACK
                              server's period changed)

Any worker failure, including SIGABRT, is just a child's exit status to the
daemon.  The render thread learns it from end of file on the notify socket
(or from the supervisor shutting that socket down once it has reaped the
worker); only then does it take back the frames the worker never played.
The worker cannot outlive the daemon (pipe-EOF lifeline and
PR_SET_PDEATHSIG), and ``stop()`` reaps it and unlinks the segment.

*on_sync(ref_time, sample_position, step).*  "Sample ``sample_position``
leaves the device at about master time ``ref_time``" (100 ns units,
``mxfd.core.clock.master_time``'s clock).  While running it is derived, every
:data:`SYNC_INTERVAL` frames, from the frames the callback just played: when
the callback started (``CLOCK_MONOTONIC``, read as it starts) less the
duration of the frames before it, the least of the interval (the callback
least delayed by the GIL and the trampoline), through a
:class:`~mxfd.core.cycle_clock.CycleClock`, plus PortAudio's latency report
(``outputBufferDacTime − currentTime``; JACK: the playback port's latency).
Not PortAudio's stream time itself: under JACK it is ``jack_frame_time``,
whose filter an xrun resets and which then takes seconds to converge.
``step`` is set after an xrun or an underrun moved the frames against the
clock.  Its error is the latency report's plus the residual callback entry
delay (tens of µs); it does not see latency added after the JACK port (e.g.
a USB DAC's FIFO beyond what the driver reports).  While degraded it is the
timer's nominal time plus the queue latency (``periods × period``):
self-consistent, but no sound is made.  The mapping steps when the state
changes; ``on_state`` is called first, so a wave sink can reset its PLL there.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Final, Optional, Union

import numpy as np
import numpy.typing as npt

from mxfd.core.clock import ReferenceTime
from mxfd.core.cycle_clock import NS_PER_SECOND, CycleClock
from mxfd.core.frames import (
    FILE_64_BYTE_ALIGNMENT,
    KSALLOCATOR_OPTIONF_SYSTEM_MEMORY,
    AllocatorFraming,
    AudioView,
    Frame,
    FrameAllocator,
    frame_as_audio,
)
from mxfd.io.base import OWN_CLIENT_PATTERN, PlayedRing
from mxfd.io.sched import RT_PRIORITY, make_realtime
from mxfd.io.shm_frames import FrameRing, SharedFrameAllocator

log = logging.getLogger(__name__)

#: ``render(frame, sample_position)``: fill ``frame`` (float32, (period, channels)).
RenderCallback = Callable[[AudioView, int], None]
#: ``on_sync(ref_time, sample_position, step)``: ``step`` asks to re-anchor the mapping there, not to slew.
SyncCallback = Callable[[ReferenceTime, int, bool], None]
#: ``on_state(state, message)``.
StateCallback = Callable[[str, str], None]

RUNNING: Final = "running"
DEGRADED: Final = "degraded"
STOPPED: Final = "stopped"

#: Frames between ``on_sync`` calls (about 21 ms at 128 frames, 48 kHz).
SYNC_INTERVAL: Final = 8
#: Restart back-off: first delay, cap, and how long a worker must run to reset it.
BACKOFF_MIN_S: Final = 0.25
BACKOFF_MAX_S: Final = 5.0
STABLE_S: Final = 5.0
#: A worker that has not reported within this long is killed.
START_TIMEOUT_S: Final = 10.0
#: A running worker that plays no frame for this long is killed (a hung server).
STALL_TIMEOUT_S: Final = 2.0
#: While degraded, the render thread wakes every this many periods.
DEGRADED_BATCH: Final = 4
#: Wake-up latencies kept for :meth:`AudioOutput.wake_latencies_ns`.
WAKE_HISTORY: Final = 1 << 16
#: SCHED_FIFO priority the render thread asks for.
RENDER_RT_PRIORITY: Final = RT_PRIORITY

_WORKER_PATH: Final = os.path.join(os.path.dirname(os.path.abspath(__file__)), "audio_worker.py")
#: No callback's phase seen yet in the sync interval.
NO_PHASE: Final = 1 << 62
_EXIT_MEANING: Final = {0: "stopped", 2: "could not open the device", 3: "the stream died", 4: "bad configuration"}


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc} ({_EXIT_MEANING.get(rc, 'unexpected')})"


def announce_state(state: str, message: str, changed: bool, news: bool, on_state: Optional[StateCallback]) -> None:
    """Say an audio pin's new state once (both pins): the log line, then ``on_state`` if it changed."""
    if state == DEGRADED and message != "starting" and (changed or news):
        log.warning("audio output degraded (sound is discarded, retrying): %s", message)
    elif state == RUNNING and changed:
        log.info("audio output running: %s", message)
    if changed and on_state is not None:
        try:
            on_state(state, message)
        except Exception:
            log.exception("on_state callback failed")


class AudioOutput:
    """The audio output pin: renders through ``render`` and plays on a PortAudio device.

    Parameters
    ----------
    render:
        ``render(frame, sample_position)``, called on the pin's render thread
        for every period; fill all of ``frame`` (float32, ``(period,
        channels)``), whose first sample is ``sample_position`` on the pin's
        sample clock (0 at ``start()``).  An exception is logged and counted,
        and the period is played as silence.
    device:
        ``None`` for PortAudio's default output, a name substring, or an index.
    rate, period, channels:
        Stream format; ``period`` is the PortAudio block size.
    periods:
        Frames queued ahead of the device: latency (``periods × period``)
        against safety from underruns.
    client_name:
        The JACK client name (ports ``<client_name>:out_0`` …).
    on_sync:
        ``on_sync(ref_time, sample_position)``, see the module docstring.
    on_state:
        ``on_state(state, message)`` on every state change (supervisor thread).
    """

    def __init__(
        self,
        render: RenderCallback,
        *,
        device: Union[None, int, str] = None,
        rate: int = 48000,
        period: int = 128,
        channels: int = 2,
        periods: int = 2,
        client_name: str = "mxfd-out",
        on_sync: Optional[SyncCallback] = None,
        on_state: Optional[StateCallback] = None,
    ) -> None:
        if rate <= 0 or period <= 0 or channels <= 0:
            raise ValueError(f"rate, period and channels must be positive, got {rate}, {period}, {channels}")
        if periods < 1:
            raise ValueError(f"periods must be at least 1, got {periods}")
        self._render = render
        self.device = device
        self.rate = rate
        self.period = period
        self.channels = channels
        self.periods = periods
        self.client_name = client_name
        self._on_sync = on_sync
        self._on_state = on_state
        self._framing = AllocatorFraming(
            frames=periods + 1,  # `periods` queued + the one being rendered
            frame_size=period * channels * 4,
            file_alignment=FILE_64_BYTE_ALIGNMENT,
            options_flags=KSALLOCATOR_OPTIONF_SYSTEM_MEMORY,
        )
        self._own = SharedFrameAllocator(
            control_size=FrameRing.control_size(self._framing.frames), name_prefix="mxfd-audio"
        )
        self._allocator: FrameAllocator = self._own
        self._ring: Optional[FrameRing] = None
        self._played_ring: Optional[PlayedRing] = None
        self._state = STOPPED
        self._state_lock = threading.Lock()
        self._message = ""
        self._stopping = threading.Event()
        self._first_outcome = threading.Event()
        self._link_lock = threading.Lock()
        self._pending_link: Optional[socket.socket] = None
        self._render_thread: Optional[threading.Thread] = None
        self._supervisor: Optional[threading.Thread] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._lifeline: Optional[int] = None
        self._worker_info: dict[str, Any] = {}
        # render-thread state
        self._position = 0
        self._freed = 0
        self._rbufs = [bytearray(4096)]
        self._foreign_views: dict[int, tuple[Frame, AudioView]] = {}
        self._foreign_for: Optional[FrameAllocator] = None
        self._sync_countdown = SYNC_INTERVAL
        self._min_phase_ns = NO_PHASE
        self.clock = CycleClock(rate)
        self._device_latency_ns: Optional[int] = None  # measured from the played frames' stamps; 0 is a value
        self._wake_ns = np.zeros(WAKE_HISTORY, dtype=np.int64)
        self._wakes = 0
        # counters
        self.restarts = 0
        # Why the running worker is to be replaced at once (reopen()), or None.
        self._reopen_reason: Optional[str] = None
        self.render_errors = 0
        self.refused_frames = 0
        self.degraded_frames = 0
        self.last_error = ""
        #: How the render thread is scheduled: "SCHED_FIFO <priority>" or "normal (<why>)".
        self.render_scheduling = "not started"
        # ring counters of earlier start()/stop() cycles
        self._past = {"underruns": 0, "xruns": 0, "callbacks": 0, "played": 0}

    # -- public API -----------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``'running'`` (a device plays), ``'degraded'`` (none does; rendering goes on) or ``'stopped'``."""
        return self._state

    @property
    def framing(self) -> AllocatorFraming:
        """The pin's framing (KSPROPERTY_CONNECTION_ALLOCATORFRAMING): frames, size, alignment."""
        return self._framing

    @property
    def allocator(self) -> FrameAllocator:
        """The stream's frame allocator (KSPROPERTY_STREAM_ALLOCATOR); the pin's own by default."""
        return self._allocator

    @allocator.setter
    def allocator(self, allocator: Optional[FrameAllocator]) -> None:
        if allocator is None:
            allocator = self._own
        elif allocator is not self._own:
            theirs = allocator.framing
            if theirs.frame_size < self._framing.frame_size:
                raise ValueError(
                    f"the allocator's frames are {theirs.frame_size} bytes; this pin needs "
                    f"{self._framing.frame_size} ({self.period} frames × {self.channels} channels × float32)"
                )
        # One reference swap: the render thread picks it up at its next period.
        self._allocator = allocator

    @property
    def underruns(self) -> int:
        """Periods played as silence because no frame was ready, plus PortAudio output underflows."""
        c = self._counters()
        return c["underruns"] + c["xruns"]

    @property
    def sample_position(self) -> int:
        """The next sample position to be rendered."""
        return self._position

    def played_position(self) -> Optional[int]:
        """Sample position of the frame the device took last (any thread); None unless running.

        A JACK client ordered after the pin's ports reads, in its own process
        callback, the position being played in the same cycle.
        """
        ring = self._ring
        if ring is None or self._state != RUNNING:
            return None
        n = ring.read
        return ring.slot_position(n - 1) if n > 0 else None

    def played_ring(self) -> Optional[PlayedRing]:
        """Where another thread's compiled code can read the position being played (between start and stop)."""
        return self._played_ring

    @property
    def worker_pid(self) -> Optional[int]:
        """The PortAudio worker's process id, while one exists."""
        proc = self._proc
        return None if proc is None else proc.pid

    @property
    def shm_name(self) -> Optional[str]:
        """The frames' shared-memory segment (``/dev/shm/<name>``) while started."""
        return self._own.name if self._ring is not None else None

    def _counters(self) -> dict[str, int]:
        """The worker-side counters, summed over every start() since construction."""
        past = self._past
        ring = self._ring
        if ring is None:
            return dict(past)
        return {
            "underruns": past["underruns"] + ring.underruns,
            "xruns": past["xruns"] + ring.xruns,
            "callbacks": past["callbacks"] + ring.callbacks,
            "played": past["played"] + ring.read,
        }

    def status(self) -> dict[str, Any]:
        """Everything ``mxfd status`` shows about audio output.

        ``underruns`` = ``ring_underruns`` (a callback found no frame queued:
        the render side was late) + ``xruns`` (PortAudio's output_underflow:
        the server itself missed a cycle), both counted from each stream's
        first played frame on.  ``device_latency_s`` is PortAudio's
        ``outputBufferDacTime - currentTime`` for the latest played frame (on
        JACK the playback port's latency) and ``latency_frames`` what the
        queue adds on top (``periods × period``).  ``clock_steps`` counts the
        times the clock mapping re-anchored instead of slewing (an xrun, or the
        callbacks' schedule moved: see :mod:`mxfd.core.cycle_clock`).
        ``message`` says why the state is what it is; ``last_error`` why the
        last worker ended.
        """
        c = self._counters()
        f = self._framing
        info = self._worker_info
        return {
            "device": info.get("device", self.device),
            "hostapi": info.get("hostapi"),
            "ports": list(info.get("ports", [])),
            "rate": self.rate,
            "period": self.period,
            "periods": self.periods,
            "channels": self.channels,
            "latency_frames": self.periods * self.period,
            "device_latency_s": (
                self._device_latency_ns / 1e9 if self._device_latency_ns is not None else info.get("latency")
            ),
            "framing": {"frames": f.frames, "frame_size": f.frame_size, "alignment": f.alignment},
            "allocator": type(self._allocator).__name__,
            "state": self._state,
            "message": self._message,
            "underruns": c["underruns"] + c["xruns"],
            "ring_underruns": c["underruns"],
            "xruns": c["xruns"],
            "callbacks": c["callbacks"],
            "frames_played": c["played"],
            "degraded_frames": self.degraded_frames,
            "render_errors": self.render_errors,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "worker_pid": self.worker_pid,
            "render_scheduling": self.render_scheduling,
            "worker_scheduling": info.get("callback_scheduling"),
            "clock_steps": self.clock.steps,
        }

    def wake_latencies_ns(self) -> npt.NDArray[np.int64]:
        """Recent render-thread wake-up latencies: callback's notify → render thread running (ns)."""
        n = min(self._wakes, WAKE_HISTORY)
        return self._wake_ns[:n].copy()

    def start(self, timeout: float = 5.0) -> None:
        """Create the frames, start rendering and the worker; wait up to ``timeout`` for the device.

        Returns with ``state`` ``'running'``, or ``'degraded'`` (with a logged
        reason) if the device could not be opened yet; the pin keeps trying.
        """
        if self._state != STOPPED:
            raise RuntimeError("AudioOutput is already started")
        self._own.initialize(self._framing)
        self._ring = FrameRing(self._own.control, self._framing.frames)
        self._played_ring = self._ring.played_ring(self._own.name)
        self._stopping.clear()
        self._first_outcome.clear()
        self._position = 0
        self._freed = 0
        self._set_state(DEGRADED, "starting")
        self._render_thread = threading.Thread(target=self._render_main, name="mxfd-audio-render", daemon=True)
        self._render_thread.start()
        self._supervisor = threading.Thread(target=self._supervise, name="mxfd-audio-supervisor", daemon=True)
        self._supervisor.start()
        self._first_outcome.wait(timeout)

    def reopen(self, reason: str) -> None:
        """Replace the running worker with a new one at once, its stream opened afresh (any thread).

        For a sound server whose period changed: PortAudio keeps playing
        ``period``-frame blocks into the new server period through a buffer of
        its own, whose delay it set up for the old one.
        """
        if self._state == RUNNING:
            self._reopen_reason = reason

    def stop(self) -> None:
        """Close the device, stop the worker and the threads, unlink the shared memory."""
        if self._state == STOPPED and self._supervisor is None:
            return
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(10.0)
            if self._supervisor.is_alive():
                log.error("audio supervisor did not stop in 10 s")
            self._supervisor = None
        if self._render_thread is not None:
            self._render_thread.join(5.0)
            if self._render_thread.is_alive():
                log.error("audio render thread did not stop in 5 s (is render() blocking?)")
            self._render_thread = None
        self._foreign_views.clear()
        if self._ring is not None:
            self._past = self._counters()
            self._ring.release()
            self._ring = None
            self._played_ring = None
        self._own.delete()
        self._allocator = self._own
        self._set_state(STOPPED, "stopped")

    def __enter__(self) -> AudioOutput:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------

    def _set_state(self, state: str, message: str) -> None:
        with self._state_lock:
            changed = state != self._state
            news = message != self._message
            self._state = state
            self._message = message
        announce_state(state, message, changed, news, self._on_state)

    # -- render thread ---------------------------------------------------------------------

    def _render_main(self) -> None:
        self.render_scheduling = make_realtime("audio render thread", RENDER_RT_PRIORITY)
        while not self._stopping.is_set():
            with self._link_lock:
                link = self._pending_link
                self._pending_link = None
            if link is None:
                self._run_degraded()
            else:
                self._run_linked(link)

    def _render_one(self, publish: bool) -> bool:
        """Render the next period; queue it for the worker or (degraded) discard it.

        Returns False if no shared frame was free (impossible while the queue
        is bounded by the framing; counted, and the period is skipped).
        """
        own = self._own
        alloc = self._allocator
        pos = self._position
        frame = own.allocate()
        if frame is None:
            self.refused_frames += 1
            self._position = pos + self.period
            return False
        out = own.audio_view(frame, self.channels)
        if alloc is own:
            self._call_render(out, pos)
        else:
            theirs = alloc.allocate()
            if theirs is None:
                self.refused_frames += 1
                self._call_render(out, pos)
            else:
                view = self._foreign_view(alloc, theirs)
                self._call_render(view, pos)
                np.copyto(out, view)
                alloc.free(theirs)
        self._position = pos + self.period
        if publish:
            assert self._ring is not None
            self._ring.publish(own.index_of(frame), pos)
        else:
            own.free(frame)
            self.degraded_frames += 1
        return True

    def _call_render(self, out: AudioView, pos: int) -> None:
        try:
            self._render(out, pos)
        except Exception as e:
            self.render_errors += 1
            if self.render_errors == 1 or self.render_errors % 1000 == 0:
                log.exception("render() failed (%d times so far); the period plays as silence", self.render_errors)
            self.last_error = f"render() failed: {e!r}"
            out.fill(0.0)

    def _foreign_view(self, alloc: FrameAllocator, frame: Frame) -> AudioView:
        if alloc is not self._foreign_for:
            self._foreign_views.clear()
            self._foreign_for = alloc
        hit = self._foreign_views.get(id(frame))
        if hit is not None and hit[0] is frame:
            return hit[1]
        view = frame_as_audio(frame[: self._framing.frame_size], self.channels)
        self._foreign_views[id(frame)] = (frame, view)
        return view

    def _reap(self, ring: FrameRing) -> None:
        """Free the frames the worker has played; feed on_sync from their timing."""
        read = ring.consumed()
        own = self._own
        while self._freed < read:
            n = self._freed
            own.free(own.frame(ring.slot_frame(n)))
            position = ring.slot_position(n)
            phase = ring.slot_cb_ns(n) - position * NS_PER_SECOND // self.rate
            if phase < self._min_phase_ns:
                self._min_phase_ns = phase
            self._sync_countdown -= 1
            if self._sync_countdown <= 0:
                self._sync_countdown = SYNC_INTERVAL
                self._device_latency_ns = ring.slot_dac_ns(n) - ring.slot_current_ns(n)
                # An underrun (a silent period) or an xrun moves the frames against the clock.
                moves = ring.underruns + ring.xruns
                start = self.clock.report(self._min_phase_ns + position * NS_PER_SECOND // self.rate, position,
                                          self.period, moves)
                if self._on_sync is not None:
                    self._emit_sync((start.start_ns + self._device_latency_ns) // 100, position, start.step)
                self._min_phase_ns = NO_PHASE
            self._freed = n + 1

    def _emit_sync(self, ref_time: int, position: int, step: bool = False) -> None:
        assert self._on_sync is not None
        try:
            self._on_sync(ref_time, position, step)
        except Exception:
            log.exception("on_sync callback failed")

    def _fill(self, ring: FrameRing) -> None:
        while True:
            self._reap(ring)
            if ring.write - self._freed >= self.periods or not self._render_one(publish=True):
                return

    def _run_linked(self, link: socket.socket) -> None:
        """Device-paced rendering until the worker goes away (end of file on ``link``)."""
        fd = link.fileno()
        ring = self._ring
        assert ring is not None
        self._min_phase_ns = NO_PHASE
        self._sync_countdown = SYNC_INTERVAL
        self.clock.reset()  # a new stream: its counters and frames start again
        rbufs = self._rbufs
        wake = self._wake_ns
        try:
            self._fill(ring)
            while True:
                n = os.readv(fd, rbufs)
                if n == 0:
                    break
                read = ring.consumed()
                if read > 0:
                    wake[self._wakes % WAKE_HISTORY] = time.monotonic_ns() - ring.slot_cb_ns(read - 1)
                    self._wakes += 1
                self._fill(ring)
        except Exception:
            log.exception("audio render loop failed; restarting the worker")
            self.last_error = "render loop failed (see log)"
            proc = self._proc
            if proc is not None:
                proc.kill()
            while os.readv(fd, rbufs):  # the ring is the worker's until it is gone
                pass
        finally:
            with self._link_lock:
                link.close()
            # The worker is gone (end of file), so nobody else touches the ring:
            # take back what it never played.
            own = self._own
            for n in range(ring.consumed(), ring.write):
                own.free(own.frame(ring.slot_frame(n)))
            ring.retract()
            self._freed = ring.read

    def _run_degraded(self) -> None:
        """Timer-paced rendering into the void while no device plays."""
        period_ns = self.period * 1_000_000_000 // self.rate
        queue_ns = self.periods * period_ns
        due = time.monotonic_ns()
        countdown = SYNC_INTERVAL
        while not self._stopping.is_set() and self._pending_link is None:
            now = time.monotonic_ns()
            if now - due > 1_000_000_000:  # asleep for a second (suspend?): do not catch up in a burst
                due = now
            while due <= now:
                pos = self._position
                self._render_one(publish=False)
                countdown -= 1
                if countdown <= 0:
                    countdown = SYNC_INTERVAL
                    if self._on_sync is not None:
                        self._emit_sync((due + queue_ns) // 100, pos)
                due += period_ns
            self._stopping.wait((due - time.monotonic_ns() + (DEGRADED_BATCH - 1) * period_ns) / 1e9)

    # -- supervisor thread ------------------------------------------------------------------

    def _supervise(self) -> None:
        backoff = BACKOFF_MIN_S
        first = True
        while not self._stopping.is_set():
            if not first:
                self.restarts += 1
            first = False
            began = time.monotonic()
            try:
                ran, message = self._run_worker()
            except Exception as e:  # e.g. fork failed: keep the daemon up, try again later
                log.exception("could not run the audio worker")
                ran, message = 0.0, f"could not start the audio worker: {e!r}"
            self.last_error = message
            if self._stopping.is_set():
                break
            if ran >= STABLE_S:
                backoff = BACKOFF_MIN_S
            self._set_state(DEGRADED, message)
            self._first_outcome.set()
            if message.startswith("audio worker killed: reopening"):
                continue  # asked for (reopen()): no back-off
            log.debug("audio worker ended after %.1f s: %s; retrying in %.2f s", time.monotonic() - began,
                      message, backoff)
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)
        self._first_outcome.set()

    def _worker_config(self, notify_w: int, status_w: int, life_r: int) -> dict[str, Any]:
        own = self._own
        ring = self._ring
        assert ring is not None
        return {
            "parent_pid": os.getpid(),
            "shm": own.name,
            "size": own.size,
            "layout": ring.layout(),
            "frames_offset": own.frames_offset,
            "frame_stride": own.frame_stride,
            "frame_count": self._framing.frames,
            "rate": self.rate,
            "period": self.period,
            "channels": self.channels,
            "device": self.device,
            "client_name": self.client_name,
            "own_clients": OWN_CLIENT_PATTERN,
            "notify_fd": notify_w,
            "status_fd": status_w,
            "lifeline_fd": life_r,
        }

    def _run_worker(self) -> tuple[float, str]:
        """Run one worker to its end; return (seconds it ran ready, why it ended)."""
        # A socket pair, not a pipe, for the wake-ups: the supervisor can shut
        # down the render thread's end once the worker is reaped, so the
        # render thread wakes up even if some other fork holds the worker's end.
        notify, worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        status_r, status_w = os.pipe()
        life_r, life_w = os.pipe()
        cfg = self._worker_config(worker_end.fileno(), status_w, life_r)
        env = dict(os.environ)
        env["JACK_NO_START_SERVER"] = "1"  # never start a sound server as a side effect
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", _WORKER_PATH, json.dumps(cfg)],
                pass_fds=(worker_end.fileno(), status_w, life_r),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=env,
            )
        except BaseException:
            notify.close()
            worker_end.close()
            for fd in (status_r, status_w, life_r, life_w):
                os.close(fd)
            raise
        worker_end.close()
        os.close(status_w)
        os.close(life_r)
        self._proc = proc
        self._lifeline = life_w
        assert proc.stderr is not None
        err_fd = proc.stderr.fileno()
        link_owned = True  # until the render thread adopts `notify`
        ready_at: Optional[float] = None
        error: Optional[str] = None
        stderr_tail: list[str] = []
        status_buf = b""
        err_buf = b""
        open_fds = [status_r, err_fd]
        started = time.monotonic()
        last_read = -1
        last_progress = started
        stop_sent = False
        deadline = 0.0
        killed: Optional[str] = None
        ring = self._ring
        assert ring is not None
        try:
            while open_fds:
                if self._stopping.is_set() and not stop_sent:
                    stop_sent = True
                    try:
                        os.write(life_w, b"q")
                    except OSError:
                        pass  # the worker is already gone; its exit status follows
                    deadline = time.monotonic() + 3.0
                if stop_sent and time.monotonic() > deadline and killed is None:
                    killed = "it did not stop within 3 s"
                    proc.kill()
                readable, _, _ = select.select(open_fds, [], [], 0.1)
                for fd in readable:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        open_fds.remove(fd)
                        continue
                    if fd == status_r:
                        status_buf += chunk
                        while b"\n" in status_buf:
                            line, status_buf = status_buf.split(b"\n", 1)
                            msg = self._parse_status(line)
                            if msg.get("event") == "ready" and ready_at is None:
                                ready_at = time.monotonic()
                                last_progress = ready_at
                                self._worker_info = msg
                                with self._link_lock:
                                    self._pending_link = notify
                                link_owned = False
                                ports = ", ".join(msg.get("ports", [])) or "no JACK ports"
                                self._set_state(
                                    RUNNING,
                                    f"{msg.get('device')!r} on {msg.get('hostapi')} at {msg.get('rate'):g} Hz, "
                                    f"period {self.period} ({ports})",
                                )
                                self._first_outcome.set()
                                scheduling = str(msg.get("callback_scheduling"))
                                log.log(logging.INFO if scheduling.startswith("normal") else logging.DEBUG,
                                        "audio worker's callback thread: %s", scheduling)
                            elif msg.get("event") == "error":
                                error = str(msg.get("message"))
                    else:
                        err_buf += chunk
                        while b"\n" in err_buf:
                            line, err_buf = err_buf.split(b"\n", 1)
                            text = line.decode(errors="replace").rstrip()
                            if text:
                                log.debug("audio worker: %s", text)
                                stderr_tail.append(text)
                                del stderr_tail[:-5]
                now = time.monotonic()
                if killed is None and not stop_sent:
                    reopen = self._reopen_reason
                    if reopen is not None and ready_at is not None:
                        self._reopen_reason = None
                        killed = f"reopening: {reopen}"
                        proc.kill()
                    elif ready_at is None and now - started > START_TIMEOUT_S:
                        killed = f"it did not open the device within {START_TIMEOUT_S:g} s"
                        proc.kill()
                    elif ready_at is not None:
                        read = ring.read
                        if read != last_read:
                            last_read = read
                            last_progress = now
                        elif now - last_progress > STALL_TIMEOUT_S:
                            killed = f"the stream stalled (no period played for {STALL_TIMEOUT_S:g} s)"
                            proc.kill()
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()
            os.close(status_r)
            os.close(life_w)
            self._lifeline = None
            self._proc = None
            if link_owned:
                notify.close()
            else:
                with self._link_lock:
                    if self._pending_link is notify:  # never adopted: still ours to close
                        self._pending_link = None
                        notify.close()
                    elif notify.fileno() != -1:  # adopted: the worker is reaped, wake the render thread
                        try:
                            notify.shutdown(socket.SHUT_RDWR)
                        except OSError as e:
                            log.debug("shutting down the audio wake-up socket: %s", e)
        ran = 0.0 if ready_at is None else time.monotonic() - ready_at
        if self._stopping.is_set() and rc == 0:
            return ran, "stopped"
        if killed is not None:
            return ran, f"audio worker killed: {killed}"
        if error is not None:
            return ran, error if rc in _EXIT_MEANING else f"{error} (worker {_describe_exit(rc)})"
        why = f"audio worker ended: {_describe_exit(rc)}"
        if stderr_tail:
            why += f"; its last output: {stderr_tail[-1]}"
        return ran, why

    @staticmethod
    def _parse_status(line: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(line)
        except ValueError:
            log.warning("audio worker sent a malformed status line: %r", line[:200])
            return {}
        if not isinstance(msg, dict):
            log.warning("audio worker sent a malformed status line: %r", line[:200])
            return {}
        return msg


__all__ = ["DEGRADED", "RUNNING", "STOPPED", "AudioOutput", "RenderCallback", "StateCallback", "SyncCallback"]
