"""``MiniportSink``: what every synth miniport does as an MXF sink, whatever renders its voices.

Theory of operation
-------------------
Events arrive with ``put_message`` from any thread (MIDI input, client
sockets, the sequencer) as ``next_evt`` chains; each chain is appended to a
``deque`` (atomic, lock-free) and nothing else happens on the caller's
thread, as ddksynth queues work for its worker.  The render thread, under
``_lock`` (held otherwise only by rare control calls), calls
:meth:`_drain`: package events go back to their allocator and their
contents are unpacked; every other event is placed at
``wave_sink.ref_to_sample(pres_time)`` in a pending list ordered by sample
(stable, so equal times keep their order), an event already in the past at
the block start (counted late).  The subclass renders its block from that
list, applying each event at its own sample, and returns each applied
event to its own allocator.

STOP returns every event held (:meth:`_flush_events`) and silences every
voice (the subclass's ``_sound_off_all``).
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import TYPE_CHECKING, Final, Optional, Protocol

import numpy as np
import numpy.typing as npt

from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.event import PACKAGE_EVENT, KernelEvent
from mxfd.core.mxf import KSState
from mxfd.synth.wavesink import WaveSink

if TYPE_CHECKING:
    from mxfd.core.frames import Frame

#: Bytes of a SysEx message a synth keeps: enough to recognise the GM, GS and XG resets.
SYSEX_KEEP: Final = 32


def is_reset_sysex(m: bytearray, n: int) -> bool:
    """``m[:n]`` is GM System On / GM2 On (F0 7E dd 09 01|03 F7), GS Reset or XG System On, any device id."""
    if n < 6 or m[0] != 0xF0 or m[n - 1] != 0xF7:
        return False
    if n == 6 and m[1] == 0x7E and m[3] == 0x09 and m[4] in (0x01, 0x03):
        return True
    if n == 11 and m[1] == 0x41 and m[3] == 0x42 and m[4] == 0x12 and m[5:10] == b"\x40\x00\x7f\x00\x41":
        return True
    return n == 9 and m[1] == 0x43 and (m[2] & 0xF0) == 0x10 and m[3:8] == b"\x4c\x00\x00\x7e\x00"


class MXFSink(Protocol):
    """Where :meth:`MiniportSink.hand_over` gives its events (another synth)."""

    def put_message(self, evt: Optional[KernelEvent]) -> None: ...


class FrameSource(Protocol):
    """What :meth:`MiniportSink.render_frame` needs of a KS frame allocator."""

    def allocate(self) -> Optional[Frame]: ...


class MiniportSink:
    """The MXF sink side of a synth miniport: event intake, scheduling by sample, states and KS frames."""

    def __init__(self, sample_rate: int, block_frames: int) -> None:
        if not 8000 <= sample_rate <= 192000:
            raise ValueError(f"sample rate must be 8000..192000 Hz, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.wave_sink = WaveSink(self.sample_rate)
        self.state = KSState.RUN
        self._block = int(block_frames)
        self._inbox: deque[KernelEvent] = deque()
        self._lock = threading.Lock()
        self._pending: list[KernelEvent] = []
        self._pending_at: list[int] = []
        self._head = 0
        self._sample = 0
        # A SysEx arriving as a chain of chunks: its first bytes (enough to recognise a reset), how many
        # bytes came, whose it is (an allocator) and its time, for the subclass's parser.
        self._sysex = bytearray(SYSEX_KEEP)
        self._sysex_len = 0
        self._sysex_owner: object = None
        self._sysex_time = 0
        self.events_applied = 0
        self.late_events = 0
        self.frames_rendered = 0
        self.frames_refused = 0

    # -- what a subclass renders with ----------------------------------------------------

    def render(self, out: npt.NDArray[np.float32]) -> None:
        """Render the next ``len(out)`` frames into ``out`` (float32, shape (n, 2))."""
        raise NotImplementedError

    def _sound_off_all(self) -> None:
        """Silence every voice within a few ms (called under ``_lock``)."""
        raise NotImplementedError

    # -- timing --------------------------------------------------------------------------

    @property
    def schedule_prefetch(self) -> int:
        """How far ahead of its presentation time the synth wants an event (100 ns): one block."""
        return -(-self._block * UNITS_PER_SECOND // self.sample_rate)

    @property
    def block_frames(self) -> int:
        return self._block

    @property
    def sample_position(self) -> int:
        """The next sample :meth:`render` will produce."""
        return self._sample

    # -- MXF -----------------------------------------------------------------------------

    def set_state(self, state: KSState) -> None:
        """RUN plays; PAUSE/ACQUIRE hold new events; STOP silences and returns every event."""
        state = KSState(state)
        with self._lock:
            self.state = state
            if state is KSState.STOP:
                self._flush_events()
                self._sound_off_all()

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Take a chain of events (any thread).  Ownership passes to the synth."""
        if evt is None:
            return
        if self.state is KSState.STOP:
            return_chain(evt)
            return
        self._inbox.append(evt)

    def connect_output(self, sink: object) -> None:
        """Accepted and ignored: a synth is the end of the MIDI graph (as in ddksynth)."""

    def disconnect_output(self, sink: object = None) -> None:
        """Accepted and ignored."""

    def all_sound_off(self) -> None:
        """Silence every voice within a few ms (daemon shutdown)."""
        with self._lock:
            self._sound_off_all()

    def release_all(self) -> None:
        """Release every note and pedal of every channel group."""
        raise NotImplementedError

    def hand_over(self, successor: MXFSink) -> None:
        """Another synth takes over (a bank swap): it gets every event not yet applied, and every note here is released.

        The events keep their presentation times, so they sound at the same samples on
        ``successor`` when its wave sink follows the same clock.  What sounds here goes on
        sounding through its release, for as long as this synth is still rendered.
        """
        with self._lock:
            while self._inbox:
                successor.put_message(self._inbox.popleft())
            for k in range(self._head, len(self._pending)):
                successor.put_message(self._pending[k])
            self._pending.clear()
            self._pending_at.clear()
            self._head = 0
            self._sysex_len = 0
            self._sysex_owner = None
        self.release_all()

    # -- KS frames -----------------------------------------------------------------------

    def render_frame(self, frame_allocator: FrameSource) -> Optional[Frame]:
        """Render the next frame from ``frame_allocator`` (a KS frame of float32 stereo).

        Returns the frame, or ``None`` (counted) when the allocator has none free.
        """
        frame = frame_allocator.allocate()
        if frame is None:
            self.frames_refused += 1
            return None
        audio_view = getattr(frame_allocator, "audio_view", None)
        if audio_view is not None:
            view = audio_view(frame, 2)
        else:
            view = frame.view(np.float32).reshape(-1, 2)
        self.render(view)
        self.frames_rendered += 1
        return frame

    # -- scheduling (render thread, under _lock) -----------------------------------------

    def _drain(self, block_start: int) -> None:
        inbox = self._inbox
        while inbox:
            e: Optional[KernelEvent] = inbox.popleft()
            while e is not None:
                nxt = e.next_evt
                e.next_evt = None
                if e.flags & PACKAGE_EVENT:
                    pkg = e.package_evt
                    e.package_evt = None
                    e.allocator.put_message(e)
                    if pkg is not None:
                        inbox.appendleft(pkg)
                else:
                    self._schedule(e, block_start)
                e = nxt

    def _schedule(self, e: KernelEvent, block_start: int) -> None:
        at = self.wave_sink.ref_to_sample(e.pres_time_100ns)
        if at < block_start:
            at = block_start
            self.late_events += 1
        pa = self._pending_at
        if not pa or at >= pa[-1]:
            pa.append(at)
            self._pending.append(e)
        else:
            k = bisect.bisect_right(pa, at, self._head)
            pa.insert(k, at)
            self._pending.insert(k, e)

    def _flush_events(self) -> None:
        while self._inbox:
            return_chain(self._inbox.popleft())
        for k in range(self._head, len(self._pending)):
            self._pending[k].allocator.put_message(self._pending[k])
        self._pending.clear()
        self._pending_at.clear()
        self._head = 0
        self._sysex_len = 0
        self._sysex_owner = None


def return_chain(evt: Optional[KernelEvent]) -> None:
    """Give every event of a chain back to its own allocator."""
    while evt is not None:
        nxt = evt.next_evt
        evt.next_evt = None
        evt.allocator.put_message(evt)
        evt = nxt
