"""The daemon's streams: one capture stream per input, one render stream per thru or client.

Theory of operation
-------------------
Each stream owns its allocator, as in the original, and events never cross
streams; buffers do.

A :class:`CaptureStream` is one input source (a keyboard port, the virtual
port, a raw device): adapter → allocator event → :class:`CaptureSink` →
:class:`Packer`.  The adapter calls :meth:`CaptureStream.capture` for every
message or raw chunk and :meth:`CaptureStream.flush` after each batch, so
the packer completes a buffer per batch and live input is passed on at once.
Completed buffers go to the engine (recorders, the history ring, thru).
Every event of a source carries the source's own channel group, so the
synth can later release exactly the notes that source left held.

A :class:`RenderStream` is :class:`Unpacker` → (:class:`GroupMap`) →
:class:`Sequencer` → the synth.  Thru streams take the capture buffers of
one source with the fixed render latency added to their start time; a
:class:`PlaybackStream` takes a client's buffers, remapping every channel
group to the stream's own (a client's group 1 is its own group), so one
client can never hold or release another's notes.  The render thread calls
:meth:`RenderStream.release` each period; nothing else touches the synth
from a stream.

Capture runs in the adapter's thread (JACK's process thread for JACK
sources), so it allocates nothing per event beyond what the core does and
never blocks: a full pool drops the message and counts it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.capture import CaptureSink
from mxfd.core.event import EVENT_INCOMPLETE, KernelEvent
from mxfd.core.mxf import MXF, KSState, MXFNode
from mxfd.core.packer import Packer
from mxfd.core.sequencer import Sequencer
from mxfd.core.unpacker import Unpacker

if TYPE_CHECKING:
    from mxfd.io.base import MidiBytes

log = logging.getLogger(__name__)

#: Events each capture stream's allocator starts with (a burst of a dense chord plus pedal).
CAPTURE_POOL = 256
#: Events a thru stream starts with: what can be in flight during the render latency.
THRU_POOL = 256
#: Events a client's playback stream starts with; it may grow to 64 times this.
PLAYBACK_POOL = 1024

BufferSink = Callable[["CaptureStream", int, bytes], None]


class CaptureStream:
    """One input source: allocator → capture sink → packer → ``on_buffer``."""

    def __init__(self, name: str, channel_group: int, on_buffer: BufferSink, *, pool_size: int = CAPTURE_POOL) -> None:
        self.name = name
        self.channel_group = channel_group
        self.allocator = Allocator(pool_size)
        self.sink = CaptureSink(self.allocator)
        self.packer = Packer(self.allocator, self._on_buffer)
        self.sink.connect_output(self.packer)
        self._on_buffer_cb = on_buffer
        self._buffer_size = self.allocator.buffer_size
        #: The source's thru stream, or None when thru is off for it.
        self.thru: Optional[RenderStream] = None
        #: Stamped at each event's frame on the output's clock (plays a period sooner).
        self.frame_accurate = False
        #: The first synth channel its reader plays it on straight through the JACK pin (then
        #: :attr:`thru` is None), or None.
        self.direct_thru_base: Optional[int] = None
        #: Messages (or raw chunks) taken, and dropped for want of events.
        self.events = 0
        self.dropped = 0
        self.closed = False

    def capture(self, data: "MidiBytes", start: int, end: int, pres_time: int, flags: int) -> None:
        """Take ``data[start:end]``; a message over the buffer size goes in as raw chunks."""
        n = end - start
        if n > self._buffer_size:
            # A huge SysEx: the capture sink's byte rules turn raw chunks back
            # into one message travelling as a chain of chunk events.
            step = self._buffer_size
            for i in range(start, end, step):
                self._put(data, i, min(i + step, end), pres_time, EVENT_INCOMPLETE)
            return
        self._put(data, start, end, pres_time, flags)

    def _put(self, data: "MidiBytes", start: int, end: int, pres_time: int, flags: int) -> None:
        alloc = self.allocator
        try:
            e = alloc.get_message()
        except AllocatorExhausted:
            self.dropped += 1
            return
        try:
            e.set_data(data, start, end)
        except AllocatorExhausted:
            alloc.put_message(e)
            self.dropped += 1
            return
        e.pres_time_100ns = pres_time
        e.channel_group = self.channel_group
        e.flags = flags
        self.events += 1
        self.sink.put_message(e)

    def flush(self) -> None:
        self.packer.flush()

    def _on_buffer(self, start_time: int, data: bytes) -> None:
        self._on_buffer_cb(self, start_time, data)

    def close(self) -> None:
        """Complete the last buffer and stop; later input is returned to the pool."""
        self.closed = True
        self.sink.set_state(KSState.STOP)
        self.packer.set_state(KSState.STOP)

    def counters(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "dropped": self.dropped,
            "allocator": self.allocator.counters(),
            "capture": self.sink.counters(),
            "packer": self.packer.counters(),
        }


class GroupMap(MXFNode):
    """Sets every event's channel group to the stream's own on its way through."""

    def __init__(self, allocator: Allocator, channel_group: int) -> None:
        super().__init__(allocator)
        self.channel_group = channel_group

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        group = self.channel_group
        e = evt
        while e is not None:
            e.channel_group = group
            e = e.next_evt
        self._output.put_message(evt)


class RenderStream:
    """Buffers in, events out to the synth in time order: unpacker → sequencer → synth."""

    def __init__(
        self,
        name: str,
        channel_group: int,
        synth: MXF,
        *,
        remap_groups: bool,
        schedule_prefetch: int = 0,
        pool_size: int = THRU_POOL,
    ) -> None:
        self.name = name
        self.channel_group = channel_group
        self.allocator = Allocator(pool_size)
        self.unpacker = Unpacker(self.allocator)
        self.sequencer = Sequencer(self.allocator, schedule_prefetch)
        if remap_groups:
            self.group_map: Optional[GroupMap] = GroupMap(self.allocator, channel_group)
            self.unpacker.connect_output(self.group_map)
            self.group_map.connect_output(self.sequencer)
        else:
            self.group_map = None
            self.unpacker.connect_output(self.sequencer)
        self.sequencer.connect_output(synth)
        self._lock = threading.Lock()
        #: Buffers refused for want of events (thru only: clients wait instead).
        self.dropped = 0
        self.closed = False
        #: Called after each buffer taken: the JACK pin's feeder, asleep while nothing is to feed, wakes.
        self.on_submit: Optional[Callable[[], None]] = None

    def submit(self, data: bytes, start_time: int) -> int:
        """Unpack one buffer (validated whole first); returns the number of events.

        Raises :class:`~mxfd.core.wire.BadBufferError` or
        :class:`~mxfd.core.allocator.AllocatorExhausted`, with nothing applied.
        """
        with self._lock:
            n = self.unpacker.unpack(data, start_time)
        if self.on_submit is not None:
            self.on_submit()
        return n

    def release(self, until: int) -> int:
        """Pass every event due by ``until`` to the synth (the render thread calls this)."""
        return self.sequencer.release(until)

    def pending(self) -> int:
        """Events still queued in the sequencer."""
        return self.sequencer.held

    def stop(self) -> None:
        """Return every pending event to the allocator; later buffers are discarded."""
        with self._lock:
            self.closed = True
            self.unpacker.set_state(KSState.STOP)
            self.sequencer.set_state(KSState.STOP)

    def counters(self) -> dict[str, Any]:
        return {
            "channel_group": self.channel_group,
            "pending": self.pending(),
            "dropped": self.dropped,
            "allocator": self.allocator.counters(),
            "unpacker": self.unpacker.counters(),
            "sequencer": self.sequencer.counters(),
        }


class PlaybackStream(RenderStream):
    """A client's render stream (what ``engine.open_playback_stream`` returns)."""

    def __init__(
        self,
        name: str,
        channel_group: int,
        synth: MXF,
        on_close: Callable[["PlaybackStream"], None],
        *,
        schedule_prefetch: int = 0,
        pool_size: int = PLAYBACK_POOL,
    ) -> None:
        super().__init__(
            name, channel_group, synth, remap_groups=True, schedule_prefetch=schedule_prefetch, pool_size=pool_size
        )
        self._on_close = on_close
        # Resume a blocked client once an eighth of the largest pool is free again.
        self._space = max(1, self.allocator.max_pool_size // 8)

    def wait_for_space(self, timeout: float) -> bool:
        """Block until the allocator has room again (or ``timeout`` seconds pass)."""
        deadline = time.monotonic() + timeout
        alloc = self.allocator
        while alloc.available() < self._space:
            if self.closed:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.005))
        return True

    def close(self) -> None:
        """Return pending events; the engine releases this stream's held notes and pedals."""
        if not self.closed:
            self._on_close(self)


__all__ = ["CaptureStream", "GroupMap", "PlaybackStream", "RenderStream"]
