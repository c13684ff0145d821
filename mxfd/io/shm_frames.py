"""KS frames in shared memory: a frame allocator and a frame ring another process can map.

Theory of operation
-------------------
The audio output pin plays through PortAudio in a worker process (PortAudio
must be able to die with the sound server; see ``mxfd.io.audio``).  The
daemon renders, the worker plays, and the frames have to be memory both can
see.  So the pin brings its own allocator (KSALLOCATOR_DISPATCH's role):
:class:`SharedFrameAllocator` lays its frames in one
``multiprocessing.shared_memory`` segment, created by ``initialize`` from the
framing and unlinked by ``delete``.  It speaks the same
:class:`~mxfd.core.frames.FrameAllocator` protocol as the default allocator:
``allocate`` hands out a free frame (a ``uint8`` numpy view into the segment)
or ``None`` at once when ``framing.frames`` are out; ``free`` takes it back;
a foreign frame or a double free raises
:class:`~mxfd.core.frames.FrameAllocatorError`.  The segment cannot grow once
another process has mapped it, so the framing must name a frame count.

The segment starts with a control area, then the frames, each at
``frames_offset + i * frame_stride`` and aligned to the framing's alignment
(the mapping is page aligned, so offset alignment is address alignment).

:class:`FrameRing` lays a single-producer, single-consumer queue of frame
*indices* over the control area.  The daemon publishes a rendered frame by
writing its index (and sample position) into slot ``write % slots`` and then
advancing ``write``; the worker plays slot ``read % slots``, stamps the slot
with its timing, and then advances ``read``.  Each counter has exactly one
writer and lives on its own cache line; each is an aligned 8-byte store, so
the other side never sees it torn.  Ordering: x86-64 keeps stores in program
order, and the wake-up that follows every ``read`` advance is a system call
(a full barrier), so a reader that sees a counter move also sees the slot
written before it.  On weakly ordered CPUs (ARM) that is not enough, so both
sides put a fence between a frame and its slot's fields and the counter that
publishes them (and between reading a counter and reading what it
publishes): the release and re-acquire of a lock the thread holds, a
store-release followed by a load-acquire, which are not reordered (about
50 ns; Python has no bare fence).  A
slot's worker-written fields are rewritten only after the daemon has
republished that slot, i.e. after it has read them.

The worker does not import mxfd (that would import the whole daemon): it gets
the layout as a plain dict (:meth:`FrameRing.layout`) and maps the segment
by name under ``/dev/shm``, outside ``multiprocessing``'s resource tracker,
so a dying worker never unlinks the daemon's segment.  The daemon's
``SharedMemory`` is registered with that tracker, which unlinks the segment
if the daemon itself is killed.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from multiprocessing import shared_memory
from typing import Final, Optional

import numpy as np

from mxfd.core.frames import (
    AllocatorFraming,
    FrameAllocatorError,
    FramePool,
)
from mxfd.io.base import PlayedRing

log = logging.getLogger(__name__)

#: Where POSIX shared memory objects appear on Linux (shm_overview(7)).
SHM_DIR: Final = "/dev/shm"

_CACHE_LINE: Final = 64
_names = itertools.count()


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


class SharedFrameAllocator(FramePool):
    """KSALLOCATOR_DISPATCH over one shared-memory segment.

    Parameters
    ----------
    framing:
        When given, ``initialize(framing)`` is called at once (as
        :class:`~mxfd.core.frames.DefaultFrameAllocator` does).
    control_size:
        Bytes reserved at the start of the segment for the caller (a
        :class:`FrameRing`'s control area); see :attr:`control`.
    name_prefix:
        The segment is ``/dev/shm/<name_prefix>-<pid>-<n>``.

    Counters: ``allocated`` (frames out now), ``high_water``, ``refused``
    (allocate at the limit).
    """

    def __init__(
        self,
        framing: Optional[AllocatorFraming] = None,
        *,
        control_size: int = 0,
        name_prefix: str = "mxfd-frames",
    ) -> None:
        if control_size < 0:
            raise ValueError(f"control_size must not be negative, got {control_size}")
        super().__init__()
        self._control_size = control_size
        self._name_prefix = name_prefix
        self._framing: Optional[AllocatorFraming] = None
        self._shm: Optional[shared_memory.SharedMemory] = None
        self._frames_offset = 0
        self._stride = 0
        if framing is not None:
            self.initialize(framing)

    # -- KSALLOCATOR_DISPATCH -------------------------------------------------

    def initialize(self, framing: AllocatorFraming) -> None:
        """Create the segment for ``framing`` (InitializeAllocator); replaces an idle one."""
        if framing.frames == 0:
            raise ValueError(
                "a shared-memory allocator needs framing.frames > 0: the segment cannot grow once it is mapped"
            )
        align = framing.alignment
        frames_offset = _round_up(max(self._control_size, 0), max(align, _CACHE_LINE))
        stride = _round_up(framing.frame_size, align)
        size = frames_offset + stride * framing.frames
        with self._lock:
            if self._shm is not None:
                if self.allocated:
                    raise FrameAllocatorError(f"{self.allocated} frames are still outstanding")
                self._release()
            name = f"{self._name_prefix}-{os.getpid()}-{next(_names)}"
            shm = shared_memory.SharedMemory(name=name, create=True, size=size)
            buf = shm.buf
            assert buf is not None
            # A fresh segment is zero-filled by the kernel; nothing to clear.
            self._clear()
            self._add_frames(
                [
                    np.frombuffer(buf, dtype=np.uint8, count=framing.frame_size, offset=frames_offset + i * stride)
                    for i in range(framing.frames)
                ]
            )
            self._shm = shm
            self._framing = framing
            self._frames_offset = frames_offset
            self._stride = stride

    def delete(self) -> None:
        """Unmap and unlink the segment (DeleteAllocator).  Frames still out become invalid."""
        with self._lock:
            self._release()

    def _replenish(self) -> bool:
        # The segment cannot grow once the worker has mapped it: at the limit, refuse.
        if self._shm is None:
            raise FrameAllocatorError("the allocator is not initialised (or was deleted)")
        return False

    # -- properties (ALLOCATORFRAMING, STREAMALLOCATOR_STATUS) ---------------

    @property
    def framing(self) -> AllocatorFraming:
        """The framing the segment was built for."""
        if self._framing is None:
            raise FrameAllocatorError("the allocator is not initialised")
        return self._framing

    # -- what the other process needs -------------------------------------------

    @property
    def name(self) -> str:
        """The segment's name (``/dev/shm/<name>``)."""
        if self._shm is None:
            raise FrameAllocatorError("the allocator is not initialised")
        return self._shm.name

    @property
    def size(self) -> int:
        """The segment's size in bytes."""
        if self._shm is None:
            raise FrameAllocatorError("the allocator is not initialised")
        return self._shm.size

    @property
    def frames_offset(self) -> int:
        """Offset of frame 0 in the segment."""
        return self._frames_offset

    @property
    def frame_stride(self) -> int:
        """Distance between frames: the frame size rounded up to the alignment."""
        return self._stride

    @property
    def control(self) -> memoryview:
        """The caller's control area at the start of the segment."""
        if self._shm is None or self._shm.buf is None:
            raise FrameAllocatorError("the allocator is not initialised")
        return self._shm.buf[: self._control_size]

    # -- internals ---------------------------------------------------------------

    def _release(self) -> None:
        shm = self._shm
        self._shm = None
        self._framing = None
        self._clear()
        if shm is None:
            return
        try:
            shm.unlink()
        except FileNotFoundError:
            log.warning("shared-memory segment %s was already unlinked", shm.name)
        _lingering.append(shm)
        _close_lingering()


#: Segments unlinked while someone still held one of their frames; closed once they can be.
_lingering: list[shared_memory.SharedMemory] = []


def _close_lingering() -> None:
    for shm in list(_lingering):
        try:
            shm.close()
        except BufferError:
            # A frame is still referenced somewhere.  The name is gone already,
            # so nothing leaks past this process; retried at the next delete.
            log.warning("shared-memory segment %s unlinked while frames are still referenced", shm.name)
        else:
            _lingering.remove(shm)


class FrameRing:
    """A single-producer, single-consumer ring of frame indices in a control area.

    Producer (daemon): :meth:`publish`; consumer (worker): reads slot
    ``read % slots``, writes the timing fields, advances ``read``.  Only the
    fields below exist; the worker learns their offsets from :meth:`layout`.
    """

    #: Counters, each on its own cache line: (name, byte offset).
    COUNTERS: Final = {
        "write": 1 * _CACHE_LINE,  # frames published (daemon writes)
        "read": 2 * _CACHE_LINE,  # frames played (worker writes)
        "underruns": 2 * _CACHE_LINE + 8,  # callbacks with nothing ready (worker)
        "xruns": 2 * _CACHE_LINE + 16,  # PortAudio output_underflow flags (worker)
        "callbacks": 2 * _CACHE_LINE + 24,  # callbacks run (worker)
        "mismatched": 2 * _CACHE_LINE + 32,  # callbacks whose size was not the period (worker)
    }
    #: Per-slot fields (int64 each), one 64-byte line per slot.
    SLOT_FIELDS: Final = (
        "frame",  # frame index in the segment (daemon)
        "position",  # sample position of the frame's first sample (daemon)
        "cb_ns",  # CLOCK_MONOTONIC ns when the callback took the frame (worker)
        "current_ns",  # PortAudio stream time then (timeInfo.currentTime), ns (worker)
        "dac_ns",  # PortAudio stream time the first sample is played (outputBufferDacTime), ns (worker)
    )
    _SLOTS_OFFSET: Final = 3 * _CACHE_LINE
    _SLOT_STRIDE: Final = _CACHE_LINE
    _MAGIC: Final = 0x6D78_6664_5249_4E47  # "mxfdRING"
    _VERSION: Final = 1

    def __init__(self, control: memoryview, slots: int) -> None:
        if slots < 1:
            raise ValueError(f"a ring needs at least one slot, got {slots}")
        if len(control) < self.control_size(slots):
            raise ValueError(f"the control area holds {len(control)} bytes, {self.control_size(slots)} needed")
        self.slots = slots
        self._fence = threading.Lock()
        self._fence.acquire()  # held: _full_fence releases and re-acquires it
        self._control = control
        self._q = control.cast("q")
        q = self._q
        self._write = self.COUNTERS["write"] // 8
        self._read = self.COUNTERS["read"] // 8
        self._underruns = self.COUNTERS["underruns"] // 8
        self._xruns = self.COUNTERS["xruns"] // 8
        self._callbacks = self.COUNTERS["callbacks"] // 8
        self._mismatched = self.COUNTERS["mismatched"] // 8
        self._slot0 = self._SLOTS_OFFSET // 8
        self._slot_q = self._SLOT_STRIDE // 8
        q[0] = self._MAGIC
        q[1] = self._VERSION
        q[2] = slots

    @classmethod
    def control_size(cls, slots: int) -> int:
        """Bytes of control area a ring of ``slots`` needs."""
        return cls._SLOTS_OFFSET + slots * cls._SLOT_STRIDE

    def layout(self) -> dict[str, int]:
        """Byte offsets of every field, for a process that does not import mxfd."""
        out = dict(self.COUNTERS)
        out["slots"] = self.slots
        out["slots_offset"] = self._SLOTS_OFFSET
        out["slot_stride"] = self._SLOT_STRIDE
        for k, name in enumerate(self.SLOT_FIELDS):
            out[f"slot_{name}"] = 8 * k
        out["magic"] = self._MAGIC
        return out

    def played_ring(self, segment: str) -> PlayedRing:
        """This ring's played position as a reader in another thread finds it in ``segment`` (mapped alone)."""
        return PlayedRing(
            name=segment,
            words=self.control_size(self.slots) // 8,
            read=self._read,
            slot0=self._slot0,
            slot_stride=self._slot_q,
            slots=self.slots,
        )

    # -- producer side -----------------------------------------------------------------

    @property
    def write(self) -> int:
        return int(self._q[self._write])

    def _full_fence(self) -> None:
        # Store-release then load-acquire: nothing moves across the pair.
        self._fence.release()
        self._fence.acquire()

    @property
    def read(self) -> int:
        """Frames the consumer has taken (for statistics; the producer uses :meth:`consumed`)."""
        return int(self._q[self._read])

    def consumed(self) -> int:
        """Frames the consumer has taken, fenced so their slots' timing fields can be read.

        Producer thread only (the fence is a lock that thread holds).
        """
        r = int(self._q[self._read])
        self._full_fence()
        return r

    def publish(self, frame_index: int, position: int) -> None:
        """Queue frame ``frame_index`` (first sample ``position``); the caller checked there is room.

        Producer thread only.
        """
        q = self._q
        w = q[self._write]
        base = self._slot(w)
        q[base] = frame_index
        q[base + 1] = position
        self._full_fence()  # the frame and its slot are visible before the counter says so
        q[self._write] = w + 1

    def retract(self) -> int:
        """Take back every unplayed frame (only when no consumer is attached); return how many."""
        q = self._q
        n = int(q[self._write] - q[self._read])
        q[self._write] = q[self._read]
        return n

    def _slot(self, n: int) -> int:
        return self._slot0 + (n % self.slots) * self._slot_q

    def slot_frame(self, n: int) -> int:
        """Frame index held by the ``n``-th published frame (until its slot is reused)."""
        return int(self._q[self._slot(n)])

    def slot_position(self, n: int) -> int:
        """Sample position of the ``n``-th published frame."""
        return int(self._q[self._slot(n) + 1])

    def slot_cb_ns(self, n: int) -> int:
        """When the consumer took the ``n``-th frame (CLOCK_MONOTONIC ns)."""
        return int(self._q[self._slot(n) + 2])

    def slot_current_ns(self, n: int) -> int:
        """The consumer's stream time (ns) when it took the ``n``-th frame."""
        return int(self._q[self._slot(n) + 3])

    def slot_dac_ns(self, n: int) -> int:
        """The consumer's stream time (ns) at which the ``n``-th frame's first sample is played."""
        return int(self._q[self._slot(n) + 4])

    @property
    def underruns(self) -> int:
        return int(self._q[self._underruns])

    @property
    def xruns(self) -> int:
        return int(self._q[self._xruns])

    @property
    def callbacks(self) -> int:
        return int(self._q[self._callbacks])

    @property
    def mismatched(self) -> int:
        return int(self._q[self._mismatched])

    def release(self) -> None:
        """Drop the views of the control area, so the segment can be closed."""
        self._q.release()
        self._control.release()


__all__ = ["SHM_DIR", "FrameRing", "SharedFrameAllocator"]
