"""``MXF``: the IMXF protocol every transport node speaks, and ``KSState``.

Theory of operation
-------------------
A node is built with its stream's allocator, which is also its default
output: until ``connect_output`` names a sink, everything a node passes on
goes straight back to the pool, so an unconnected node can never leak.  A
node has one output (to fan out, split the stream), and ``put_message``
hands ownership of the event chain to the callee.

States follow KSSTATE.  Nodes are created in RUN, the state of a running pin,
so a freshly wired graph flows; ``set_state(KSState.STOP)`` makes a node
return whatever it holds to the allocator and discard what it is given.
Render-side nodes hold their data in ACQUIRE and PAUSE.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Optional, Protocol, runtime_checkable

if TYPE_CHECKING:
    from mxfd.core.allocator import Allocator
    from mxfd.core.event import KernelEvent


class KSState(IntEnum):
    """KSSTATE, with the original values."""

    STOP = 0
    ACQUIRE = 1
    PAUSE = 2
    RUN = 3


@runtime_checkable
class MXF(Protocol):
    """IMXF: what every node, sink and allocator offers."""

    def set_state(self, state: KSState) -> None: ...

    def put_message(self, evt: Optional["KernelEvent"]) -> None: ...

    def connect_output(self, sink: "MXF") -> None: ...

    def disconnect_output(self, sink: Optional["MXF"]) -> None: ...


class MXFNode:
    """Shared plumbing for transport nodes: allocator, state and one output."""

    def __init__(self, allocator: "Allocator") -> None:
        self.allocator = allocator
        self.state = KSState.RUN
        self._output: MXF = allocator

    @property
    def output(self) -> MXF:
        """Where ``put_message`` sends events on (the allocator by default)."""
        return self._output

    def connect_output(self, sink: MXF) -> None:
        """Send output to ``sink``; a node has one sink, so disconnect first."""
        if sink is None:
            raise ValueError("connect_output needs a sink")
        if self._output is not self.allocator and self._output is not sink:
            raise ValueError(
                f"{type(self).__name__} is already connected to {type(self._output).__name__}; "
                "disconnect it first"
            )
        self._output = sink

    def disconnect_output(self, sink: Optional[MXF] = None) -> None:
        """Revert output to the allocator (``sink`` must be the current one, or None)."""
        if sink is not None and sink is not self._output:
            raise ValueError(f"{type(sink).__name__} is not the output of {type(self).__name__}")
        self._output = self.allocator

    def set_state(self, state: KSState) -> None:
        self.state = KSState(state)

    def put_message(self, evt: Optional["KernelEvent"]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
