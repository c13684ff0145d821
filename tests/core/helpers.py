"""Helpers shared by the core tests (h11 style: small functions, no magic)."""

from __future__ import annotations

from typing import NamedTuple, Optional

from mxfd.core.allocator import Allocator
from mxfd.core.event import KernelEvent
from mxfd.core.mxf import MXF, KSState

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
