"""``KernelEvent``: DMUS_KERNEL_EVENT, the unit every MXF node passes on.

Theory of operation
-------------------
An event is a small mutable record owned by exactly one party at a time.  It
is taken from its stream's :class:`~mxfd.core.allocator.Allocator`, filled,
handed down the graph with ``put_message`` (ownership moves with it) and
finally returned to the allocator.  Events are never created on hot paths:
each one is built once, when its pool is filled, and reused forever.

The bytes of an event live in one of two places, decided by ``cb_event``
exactly as in the original: up to :data:`INLINE_CAPACITY` (8, ``sizeof(PBYTE)``
on x64) bytes sit in the event's own inline array (``uData.abData``); longer
data sits in a fixed-size buffer from the allocator (``uData.pbData``).  A
*package* event (``PACKAGE_EVENT`` flag) carries a chain of events to be
handled atomically in ``package_evt`` instead of data.

Hot paths read the bytes without copying through :attr:`KernelEvent.buf`
(the backing ``bytearray``; only the first ``cb_event`` bytes count).
:attr:`KernelEvent.data` returns a fresh ``bytes`` copy for convenience.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Optional

if TYPE_CHECKING:
    from mxfd.core.allocator import Allocator

#: DMUS_KEF_EVENT_COMPLETE: the whole message is in this event.
EVENT_COMPLETE: Final = 0x0000
#: DMUS_KEF_EVENT_INCOMPLETE: raw bytes, or a message that continues in the next event.
EVENT_INCOMPLETE: Final = 0x0001
#: DMUS_KEF_PACKAGE_EVENT: ``package_evt`` heads a chain to handle atomically.
PACKAGE_EVENT: Final = 0x0002

#: Bytes held inline (``sizeof(PBYTE)`` on x64).
INLINE_CAPACITY: Final = 8
#: ``sizeof(DMUS_KERNEL_EVENT)`` on x64, written to ``cb_struct``.
KERNEL_EVENT_SIZE: Final = 40
#: kBytePositionNone: this event has no meaningful byte position.
BYTE_POSITION_NONE: Final = 0xFFFF_FFFF_FFFF_FFFF


class KernelEvent:
    """One DMUS_KERNEL_EVENT.  Get it from an allocator; never construct it.

    Attributes mirror the original fields in Python form: ``reserved``,
    ``cb_struct``, ``cb_event``, ``channel_group``, ``flags``,
    ``pres_time_100ns``, ``byte_position``, ``next_evt`` and ``package_evt``.
    """

    __slots__ = (
        "reserved",
        "cb_struct",
        "cb_event",
        "channel_group",
        "flags",
        "pres_time_100ns",
        "byte_position",
        "next_evt",
        "package_evt",
        "inline",
        "buffer",
        "_allocator",
        "_pooled",
    )

    def __init__(self, allocator: "Allocator") -> None:
        self.reserved = 0
        self.cb_struct = KERNEL_EVENT_SIZE
        self.cb_event = 0
        self.channel_group = 0
        self.flags = EVENT_COMPLETE
        self.pres_time_100ns = 0
        self.byte_position = 0
        self.next_evt: Optional[KernelEvent] = None
        self.package_evt: Optional[KernelEvent] = None
        #: uData.abData: the inline bytes.
        self.inline = bytearray(INLINE_CAPACITY)
        #: uData.pbData: an allocator buffer, present only while cb_event > 8.
        self.buffer: Optional[bytearray] = None
        self._allocator = allocator
        self._pooled = True

    # -- data ---------------------------------------------------------------

    @property
    def buf(self) -> bytearray:
        """The backing array of the event bytes (first ``cb_event`` count)."""
        b = self.buffer
        return self.inline if b is None else b

    @property
    def data(self) -> bytes:
        """A copy of the ``cb_event`` event bytes."""
        b = self.buffer
        if b is None:
            return bytes(self.inline[: self.cb_event])
        return bytes(b[: self.cb_event])

    @property
    def is_short(self) -> bool:
        """SHORT_EVT: the data fits inline."""
        return self.cb_event <= INLINE_CAPACITY

    @property
    def is_package(self) -> bool:
        """PACKAGE_EVT: ``package_evt`` heads a chain."""
        return bool(self.flags & PACKAGE_EVENT)

    @property
    def is_incomplete(self) -> bool:
        """INCOMPLETE_EVT: raw bytes, or the message continues in the next event."""
        return bool(self.flags & EVENT_INCOMPLETE)

    @property
    def allocator(self) -> "Allocator":
        """The allocator this event belongs to (and must return to)."""
        return self._allocator

    def set_data(self, src: bytes | bytearray | memoryview, start: int = 0, end: int = -1) -> None:
        """Copy ``src[start:end]`` into the event, taking a buffer if it is over 8 bytes.

        Raises ``ValueError`` when the data exceeds the allocator's buffer size
        (a larger message must travel as a chain of INCOMPLETE chunks) and
        :class:`~mxfd.core.allocator.AllocatorExhausted` when no buffer is left.
        """
        if end < 0:
            end = len(src)
        n = end - start
        if n <= INLINE_CAPACITY:
            if self.buffer is not None:
                self._allocator.put_buffer(self.buffer)
                self.buffer = None
            self.inline[0:n] = src[start:end] if n else b""
        else:
            if n > self._allocator.buffer_size:
                raise ValueError(
                    f"{n} event bytes exceed the allocator's buffer size "
                    f"{self._allocator.buffer_size}; send them as INCOMPLETE chunks"
                )
            if self.buffer is None:
                self.buffer = self._allocator.get_buffer()
            self.buffer[0:n] = src[start:end]
        self.cb_event = n

    def set_short(self, status: int, data1: int = 0, data2: int = 0, length: int = 3) -> None:
        """Fill a short message in place (no intermediate ``bytes``)."""
        inline = self.inline
        inline[0] = status
        inline[1] = data1
        inline[2] = data2
        self.cb_event = length

    def chain_length(self) -> int:
        """Number of events in the ``next_evt`` chain starting here."""
        n = 0
        e: Optional[KernelEvent] = self
        while e is not None:
            n += 1
            e = e.next_evt
        return n

    def __repr__(self) -> str:
        if self._pooled:
            return "<KernelEvent (in pool)>"
        return (
            f"<KernelEvent t={self.pres_time_100ns} group={self.channel_group} "
            f"flags={self.flags:#x} data={self.data.hex(' ')}>"
        )
