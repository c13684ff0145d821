"""``Allocator``: IAllocatorMXF, the per-stream pool of events and data buffers.

Theory of operation
-------------------
Each stream owns one allocator, as in the original.  It is pre-filled when
it is created (it never starts empty) and is the last stop of every event:
``put_message`` takes back an event together with its whole ``next_evt``
chain, any package chain it carries and any data buffer it holds.

Events come out zeroed (zero on *get*, as the original does), so a recycled
event never leaks old data to its next user.  When the free list runs dry
the pool grows in steps up to ``max_pool_size``; at the cap ``get_message``
raises :class:`AllocatorExhausted` and counts it, which callers turn into
back-pressure (stop reading a socket, hold a device) rather than dropping.
:meth:`Allocator.available` lets them check before they start, so a buffer is
never half-applied.

Ownership is checked on every put: an event from another allocator, an
object that is not an event, or an event put twice raises
:class:`AllocatorError`.  With ``debug=True`` returned events are also
poisoned, and a write to an event after it was put back (use-after-put) is
detected when the event is next handed out.

Steady state allocates nothing: the free lists are Python lists whose
capacity stays put once warmed up.

Events cross threads inside one stream (a socket thread unpacks, the render
thread returns them), so get and put hold a short lock: an uncontended
``threading.Lock`` costs tens of nanoseconds and allocates nothing.
"""

from __future__ import annotations

import threading
from typing import Final, Optional

from mxfd.core.event import (
    EVENT_COMPLETE,
    INLINE_CAPACITY,
    KERNEL_EVENT_SIZE,
    KernelEvent,
)
from mxfd.core.mxf import KSState

#: Default size of the data buffers (ReactOS returns PAGE_SIZE).
DEFAULT_BUFFER_SIZE: Final = 4096
#: Largest buffer size: ``GetBufferSize`` returns a USHORT.
MAX_BUFFER_SIZE: Final = 0xFFFF

_POISON: Final = -0x5EED


class AllocatorError(RuntimeError):
    """An event or buffer was returned that the allocator does not own now."""


class AllocatorExhausted(RuntimeError):
    """The pool is at its cap and has nothing free: apply back-pressure."""


class Allocator:
    """A pre-filled, capped pool of :class:`KernelEvent` and data buffers.

    Parameters
    ----------
    pool_size:
        Events created up front.
    buffer_size:
        Size of each data buffer, constant for the allocator's life.
    max_pool_size:
        Hard cap on events; defaults to 64 × ``pool_size``.
    buffer_pool_size, max_buffers:
        Buffers created up front and their cap (defaults: ``pool_size // 8``
        and ``max_pool_size // 4``).
    debug:
        Poison returned events and detect writes to them after ``put``.
    """

    def __init__(
        self,
        pool_size: int = 256,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        *,
        max_pool_size: Optional[int] = None,
        buffer_pool_size: Optional[int] = None,
        max_buffers: Optional[int] = None,
        debug: bool = False,
    ) -> None:
        if pool_size < 1:
            raise ValueError(f"pool_size must be at least 1, got {pool_size}")
        if not INLINE_CAPACITY < buffer_size <= MAX_BUFFER_SIZE:
            raise ValueError(
                f"buffer_size must be in {INLINE_CAPACITY + 1}..{MAX_BUFFER_SIZE}, got {buffer_size}"
            )
        if max_pool_size is None:
            max_pool_size = pool_size * 64
        if max_pool_size < pool_size:
            raise ValueError(f"max_pool_size {max_pool_size} is below pool_size {pool_size}")
        if buffer_pool_size is None:
            buffer_pool_size = max(1, pool_size // 8)
        if max_buffers is None:
            max_buffers = max(buffer_pool_size, max_pool_size // 4)
        if max_buffers < buffer_pool_size:
            raise ValueError(f"max_buffers {max_buffers} is below buffer_pool_size {buffer_pool_size}")
        self._buffer_size = buffer_size
        self._lock = threading.Lock()
        self._zeros = bytes(buffer_size)
        self.pool_size = pool_size
        self.max_pool_size = max_pool_size
        self.max_buffers = max_buffers
        self.debug = debug
        self._free: list[KernelEvent] = []
        self._free_buffers: list[bytearray] = []
        self._buffer_ids: set[int] = set()
        self._buffers_out: set[int] = set()
        self.total = 0
        self.total_buffers = 0
        #: Events handed out at most at once.
        self.high_water = 0
        #: Times the event pool grew past its initial size.
        self.grown = 0
        #: Times a get failed at the cap.
        self.exhausted = 0
        self._grow(pool_size)
        self._grow_buffers(buffer_pool_size)
        self.grown = 0

    # -- counters ------------------------------------------------------------

    @property
    def buffer_size(self) -> int:
        """Size of the buffers ``get_buffer`` returns (GetBufferSize)."""
        return self._buffer_size

    @property
    def free(self) -> int:
        """Events in the pool now."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        """Events handed out and not yet returned."""
        return self.total - len(self._free)

    @property
    def buffers_free(self) -> int:
        return len(self._free_buffers)

    @property
    def buffers_in_use(self) -> int:
        return self.total_buffers - len(self._free_buffers)

    def available(self) -> int:
        """Events that ``get_message`` can still hand out, growth included."""
        return len(self._free) + (self.max_pool_size - self.total)

    def buffers_available(self) -> int:
        """Buffers that ``get_buffer`` can still hand out, growth included."""
        return len(self._free_buffers) + (self.max_buffers - self.total_buffers)

    def counters(self) -> dict[str, int]:
        """A snapshot of the counters, for status reports."""
        return {
            "free": self.free,
            "in_use": self.in_use,
            "high_water": self.high_water,
            "grown": self.grown,
            "exhausted": self.exhausted,
            "total": self.total,
            "max": self.max_pool_size,
            "buffers_free": self.buffers_free,
            "buffers_in_use": self.buffers_in_use,
            "buffer_size": self._buffer_size,
        }

    def is_idle(self) -> bool:
        """True when every event and buffer is back in the pool."""
        return self.in_use == 0 and self.buffers_in_use == 0

    # -- growth --------------------------------------------------------------

    def _grow(self, n: int) -> None:
        n = min(n, self.max_pool_size - self.total)
        for _ in range(n):
            e = KernelEvent(self)
            if self.debug:
                self._poison(e)
            self._free.append(e)
        self.total += n
        self.grown += 1

    def _grow_buffers(self, n: int) -> None:
        n = min(n, self.max_buffers - self.total_buffers)
        for _ in range(n):
            b = bytearray(self._buffer_size)
            self._buffer_ids.add(id(b))
            self._free_buffers.append(b)
        self.total_buffers += n

    # -- IAllocatorMXF -------------------------------------------------------

    def get_message(self) -> KernelEvent:
        """Return a zeroed event (GetMessage).

        Raises :class:`AllocatorExhausted` at the cap.
        """
        with self._lock:
            return self._get_message()

    def _get_message(self) -> KernelEvent:
        free = self._free
        if not free:
            if self.total >= self.max_pool_size:
                self.exhausted += 1
                raise AllocatorExhausted(
                    f"event pool exhausted: {self.total} events in use (cap {self.max_pool_size})"
                )
            self._grow(max(1, self.total // 2))
        e = free.pop()
        if self.debug:
            self._check_poison(e)
        e.reserved = 0
        e.cb_struct = KERNEL_EVENT_SIZE
        e.cb_event = 0
        e.channel_group = 0
        e.flags = EVENT_COMPLETE
        e.pres_time_100ns = 0
        e.byte_position = 0
        e._pooled = False
        in_use = self.total - len(free)
        if in_use > self.high_water:
            self.high_water = in_use
        return e

    def get_chain(self, n: int) -> KernelEvent:
        """Return ``n`` zeroed events linked by ``next_evt``, under one lock.

        The bulk form of ``get_message`` for hot paths (the capture sink takes
        its output events this way).  All or nothing: raises
        :class:`AllocatorExhausted` and takes none when ``n`` cannot be had.
        """
        if n < 1:
            raise ValueError(f"get_chain needs at least one event, got {n}")
        lock = self._lock
        lock.acquire()  # not ``with``: on a hot path the explicit pair costs half as much
        try:
            return self._get_chain(n)
        finally:
            lock.release()

    def exchange(self, evt: Optional[KernelEvent], n: int) -> Optional[KernelEvent]:
        """Take back ``evt`` (as ``put_message``), then return ``n`` events (as ``get_chain``).

        One lock for both halves, for a node that returns what it read and
        takes what it writes in the same breath (the capture sink).  ``n`` may
        be 0 (returns None).  ``evt`` is taken back even when the get half
        raises :class:`AllocatorExhausted`.
        """
        if n < 0:
            raise ValueError(f"exchange needs n >= 0, got {n}")
        lock = self._lock
        lock.acquire()
        try:
            if evt is not None:
                self._put_message(evt)
            return self._get_chain(n) if n else None
        finally:
            lock.release()

    def _get_chain(self, n: int) -> KernelEvent:
        free = self._free
        short = n - len(free)
        if short > 0:
            if self.total + short > self.max_pool_size:
                self.exhausted += 1
                raise AllocatorExhausted(
                    f"event pool exhausted: {n} events wanted, {self.available()} left (cap {self.max_pool_size})"
                )
            self._grow(max(short, self.total // 2))
        pop = free.pop
        debug = self.debug
        head: Optional[KernelEvent] = None
        for _ in range(n):
            e = pop()
            if debug:
                self._check_poison(e)
            e.reserved = 0
            e.cb_struct = KERNEL_EVENT_SIZE
            e.cb_event = 0
            e.channel_group = 0
            e.flags = EVENT_COMPLETE
            e.pres_time_100ns = 0
            e.byte_position = 0
            e._pooled = False
            e.next_evt = head
            head = e
        in_use = self.total - len(free)
        if in_use > self.high_water:
            self.high_water = in_use
        assert head is not None
        return head

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Take back ``evt``, its ``next_evt`` chain, packages and buffers."""
        lock = self._lock
        lock.acquire()
        try:
            self._put_message(evt)
        finally:
            lock.release()

    def _put_message(self, evt: Optional[KernelEvent]) -> None:
        while evt is not None:
            if type(evt) is not KernelEvent:
                raise AllocatorError(f"not a KernelEvent: {type(evt).__name__}")
            if evt._allocator is not self:
                raise AllocatorError("event belongs to another allocator")
            if evt._pooled:
                raise AllocatorError("event returned twice (double put)")
            nxt = evt.next_evt
            evt.next_evt = None
            pkg = evt.package_evt
            if pkg is not None:
                evt.package_evt = None
                self._put_message(pkg)
            buf = evt.buffer
            if buf is not None:
                evt.buffer = None
                self._put_buffer(buf)
            evt._pooled = True
            if self.debug:
                self._poison(evt)
            self._free.append(evt)
            evt = nxt

    def get_buffer(self) -> bytearray:
        """Return a zeroed buffer of ``buffer_size`` bytes (GetBuffer)."""
        with self._lock:
            return self._get_buffer()

    def _get_buffer(self) -> bytearray:
        free = self._free_buffers
        if not free:
            if self.total_buffers >= self.max_buffers:
                self.exhausted += 1
                raise AllocatorExhausted(
                    f"buffer pool exhausted: {self.total_buffers} buffers in use (cap {self.max_buffers})"
                )
            self._grow_buffers(max(1, self.total_buffers // 2))
        b = free.pop()
        b[:] = self._zeros  # same length: copies in place, allocates nothing
        self._buffers_out.add(id(b))
        return b

    def put_buffer(self, buf: bytearray) -> None:
        """Return a buffer taken with ``get_buffer`` (PutBuffer)."""
        with self._lock:
            self._put_buffer(buf)

    def _put_buffer(self, buf: bytearray) -> None:
        key = id(buf)
        if key not in self._buffers_out:
            if key in self._buffer_ids:
                raise AllocatorError("buffer returned twice (double put)")
            raise AllocatorError("buffer belongs to another allocator")
        self._buffers_out.discard(key)
        self._free_buffers.append(buf)

    def make_event(
        self,
        data: bytes | bytearray | memoryview,
        pres_time_100ns: int,
        channel_group: int = 1,
        flags: int = EVENT_COMPLETE,
    ) -> KernelEvent:
        """Get an event and fill it in one call (a buffer for data over 8 bytes)."""
        e = self.get_message()
        try:
            e.set_data(data)
        except BaseException:
            self.put_message(e)
            raise
        e.pres_time_100ns = pres_time_100ns
        e.channel_group = channel_group
        e.flags = flags
        return e

    # -- IMXF: the allocator is always the last destination ------------------

    def set_state(self, state: KSState) -> None:
        """Allocators have no state; accepted for the IMXF shape."""

    def connect_output(self, sink: object) -> None:
        raise AllocatorError("the allocator is the end of the graph and has no output")

    def disconnect_output(self, sink: object) -> None:
        raise AllocatorError("the allocator is the end of the graph and has no output")

    # -- debug ---------------------------------------------------------------

    @staticmethod
    def _poison(e: KernelEvent) -> None:
        e.cb_event = _POISON
        e.channel_group = _POISON
        e.flags = _POISON
        e.pres_time_100ns = _POISON

    @staticmethod
    def _check_poison(e: KernelEvent) -> None:
        if (
            e.cb_event != _POISON
            or e.channel_group != _POISON
            or e.flags != _POISON
            or e.pres_time_100ns != _POISON
            or e.next_evt is not None
            or e.buffer is not None
            or e.package_evt is not None
        ):
            raise AllocatorError("event was written after it was returned (use after put)")
