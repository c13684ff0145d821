"""Helpers shared by the core tests (h11 style: small functions, no magic)."""

from __future__ import annotations

import os
import tracemalloc
from typing import Callable, NamedTuple, Optional

import mxfd.core
from mxfd.core.allocator import Allocator
from mxfd.core.event import KernelEvent
from mxfd.core.mxf import MXF, KSState

#: tracemalloc filename pattern of the core's own code.
CORE_FILES = os.path.join(os.path.dirname(os.path.abspath(mxfd.core.__file__)), "*")


def core_growth(
    cycle: Callable[[int], None], warmup: int, cycles: int, files: str = CORE_FILES
) -> tuple[int, list[str]]:
    """Net bytes still allocated by mxfd/core code (or the code ``files`` matches) after ``cycles`` more cycles."""
    only_core = [tracemalloc.Filter(True, files)]
    tracemalloc.start()
    try:
        for i in range(warmup):
            cycle(i)
        before = tracemalloc.take_snapshot().filter_traces(only_core)
        for i in range(warmup, warmup + cycles):
            cycle(i)
        after = tracemalloc.take_snapshot().filter_traces(only_core)
    finally:
        tracemalloc.stop()
    diff = [d for d in after.compare_to(before, "lineno") if d.size_diff or d.count_diff]
    return sum(d.size_diff for d in diff), [str(d) for d in diff[:10]]


# -- render path helpers ------------------------------------------------------


class Seen(NamedTuple):
    """What a sink saw of one event (a copy: the event itself goes back to its pool)."""

    pres_time: int
    channel_group: int
    flags: int
    data: bytes
    byte_position: int


def snapshot(evt: Optional[KernelEvent]) -> list[Seen]:
    """Copy a ``next_evt`` chain into :class:`Seen` records, in chain order."""
    out: list[Seen] = []
    while evt is not None:
        out.append(Seen(evt.pres_time_100ns, evt.channel_group, evt.flags, evt.data, evt.byte_position))
        evt = evt.next_evt
    return out


class Recorder:
    """An MXF sink that records every chain it is given, then returns it to the allocator."""

    def __init__(self) -> None:
        self.chains: list[list[Seen]] = []
        self.states: list[KSState] = []

    def set_state(self, state: KSState) -> None:
        self.states.append(state)

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        if evt is None:
            return
        self.chains.append(snapshot(evt))
        evt.allocator.put_message(evt)

    def connect_output(self, sink: MXF) -> None:
        raise AssertionError("a recorder has no output")

    def disconnect_output(self, sink: Optional[MXF]) -> None:
        raise AssertionError("a recorder has no output")

    @property
    def seen(self) -> list[Seen]:
        """Every event seen, all chains flattened."""
        return [s for chain in self.chains for s in chain]

    @property
    def messages(self) -> list[bytes]:
        return [s.data for s in self.seen]

    def clear(self) -> None:
        self.chains.clear()


def chain_of(allocator: Allocator, *items: tuple[int, bytes]) -> KernelEvent:
    """Build a ``next_evt`` chain of ``(pres_time, data)`` events from ``allocator``."""
    head: Optional[KernelEvent] = None
    tail: Optional[KernelEvent] = None
    for t, data in items:
        e = allocator.make_event(data, t)
        if tail is None:
            head = e
        else:
            tail.next_evt = e
        tail = e
    assert head is not None
    return head


# -- capture path helpers -----------------------------------------------------


def raw_chain(
    allocator: Allocator, data: bytes, pres_time: int = 0, channel_group: int = 1, size: int = 8
) -> KernelEvent:
    """A miniport's burst: ``data`` as a chain of INCOMPLETE raw events of up to ``size`` bytes, one time stamp."""
    from mxfd.core.event import EVENT_INCOMPLETE

    assert data, "a burst has at least one byte"
    head: Optional[KernelEvent] = None
    tail: Optional[KernelEvent] = None
    for i in range(0, len(data), size):
        e = allocator.make_event(data[i : i + size], pres_time, channel_group, EVENT_INCOMPLETE)
        if tail is None:
            head = e
        else:
            tail.next_evt = e
        tail = e
    assert head is not None
    return head


def feed_bursts(
    sink: MXF, allocator: Allocator, bursts: list[tuple[int, bytes]], channel_group: int = 1, size: int = 8
) -> None:
    """Put each ``(pres_time, data)`` burst into ``sink`` as one raw chain."""
    for t, data in bursts:
        sink.put_message(raw_chain(allocator, data, t, channel_group, size))


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at the given offsets (duplicates and out-of-range cuts ignored); no empty pieces."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces = []
    prev = 0
    for c in points + [len(data)]:
        pieces.append(data[prev:c])
        prev = c
    return [p for p in pieces if p]


class Buffers:
    """A packer's consumer: keeps every ``(start_time, data)`` it is given.

    ``refuse`` makes it return False (a consumer that is behind) until cleared.
    """

    def __init__(self) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.refuse = False
        self.offered = 0

    def __call__(self, start_time: int, data: bytes) -> Optional[bool]:
        self.offered += 1
        if self.refuse:
            return False
        assert isinstance(data, bytes)
        self.got.append((start_time, data))
        return None

    def records(self) -> list[tuple[int, int, int, bytes]]:
        """Every record of every buffer, decoded: (pres_time, channel_group, flags, message)."""
        from mxfd.core.wire import decode_buffer

        return [r for start, data in self.got for r in decode_buffer(data, start)]

    def messages(self) -> list[bytes]:
        return [r[3] for r in self.records()]
