"""mxfd: a MIDI device bridge daemon re-creating the DirectMusic kernel MIDI transport.

The public API, in the original's names mapped to Python:

Transport core (``mxfd.core``, no I/O)
    :class:`KernelEvent` (DMUS_KERNEL_EVENT) and its flags
    :data:`EVENT_COMPLETE`, :data:`EVENT_INCOMPLETE`, :data:`PACKAGE_EVENT`;
    :class:`Allocator` (IAllocatorMXF); :class:`MXF` (IMXF) and
    :class:`KSState`; :class:`Unpacker`, :class:`Sequencer`,
    :class:`CaptureSink`, :class:`Packer`; the DMUS_EVENTHEADER wire format
    :func:`encode_buffer`, :func:`decode_buffer`, :class:`BadBufferError`;
    KS framing :class:`AllocatorFraming` and :class:`DefaultFrameAllocator`;
    the master clock :func:`master_time`.

Synth miniport (``mxfd.synth``)
    :class:`Synth`.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from mxfd.core.allocator import Allocator, AllocatorError, AllocatorExhausted
from mxfd.core.capture import CaptureSink
from mxfd.core.clock import UNITS_PER_MS, UNITS_PER_SECOND, ManualClock, ReferenceTime, master_time
from mxfd.core.event import (
    BYTE_POSITION_NONE,
    EVENT_COMPLETE,
    EVENT_INCOMPLETE,
    INLINE_CAPACITY,
    PACKAGE_EVENT,
    KernelEvent,
)
from mxfd.core.frames import (
    AllocatorFraming,
    DefaultFrameAllocator,
    FrameAllocator,
    FrameAllocatorError,
    StreamAllocatorStatus,
    frame_as_audio,
)
from mxfd.core.mxf import MXF, KSState, MXFNode
from mxfd.core.packer import Packer
from mxfd.core.sequencer import DONT_HOLD_FOR_SEQUENCING, Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import DMUS_EVENT_STRUCTURED, BadBufferError, decode_buffer, encode_buffer

if _TYPE_CHECKING:
    from mxfd.synth import Synth

__version__ = "0.1.0"


#: Public names imported when first asked for: the synth brings numpy and numba, which a program using
#: only the transport core must not pay for (and the core must not import).
_LAZY = ("Synth",)


def __getattr__(name: str) -> object:
    if name == "Synth":
        from mxfd.synth import Synth

        globals()[name] = Synth
        return Synth
    raise AttributeError(f"module 'mxfd' has no attribute {name!r}")

__all__ = [
    "BYTE_POSITION_NONE",
    "DMUS_EVENT_STRUCTURED",
    "DONT_HOLD_FOR_SEQUENCING",
    "EVENT_COMPLETE",
    "EVENT_INCOMPLETE",
    "INLINE_CAPACITY",
    "MXF",
    "PACKAGE_EVENT",
    "UNITS_PER_MS",
    "UNITS_PER_SECOND",
    "Allocator",
    "AllocatorError",
    "AllocatorExhausted",
    "AllocatorFraming",
    "BadBufferError",
    "CaptureSink",
    "DefaultFrameAllocator",
    "FrameAllocator",
    "FrameAllocatorError",
    "KSState",
    "KernelEvent",
    "MXFNode",
    "ManualClock",
    "Packer",
    "ReferenceTime",
    "Sequencer",
    "StreamAllocatorStatus",
    "Synth",
    "Unpacker",
    "decode_buffer",
    "encode_buffer",
    "frame_as_audio",
    "master_time",
]
