"""KS frames: ``AllocatorFraming`` (KSALLOCATOR_FRAMING) and frame allocators.

Theory of operation
-------------------
An audio pin moves its data in *frames*: contiguous blocks whose size, count
and memory alignment the pin states in its framing (KSALLOCATOR_FRAMING).
The synth renders into a frame, the audio output plays it and frees it, and
the frame is handed out again: audio memory is allocated once, never per
period.

:class:`AllocatorFraming` is the 24-byte structure itself, validated the way
ReactOS validates an allocator create request (no zero frame size, no option
bits beyond the defined ones) plus the default allocator's alignment rule
(a FILE_*_ALIGNMENT mask, ``2**k - 1``, at most a page).

:class:`FrameAllocator` is the shape of KSALLOCATOR_DISPATCH (initialize,
delete, allocate, free), so a pin can bring its own allocator, for example
one over shared memory.  :class:`DefaultFrameAllocator` plays
KsCreateDefaultAllocator's part: frames of ``frame_size`` bytes in system
memory, as numpy ``uint8`` arrays whose data address meets the alignment.
All frames come from one over-allocated block, offset to the alignment and
cut into views when the allocator is initialised; ``allocate`` hands out a
free view and ``free`` takes it back, so steady state allocates nothing.
Like the direct (function-table) interface, ``allocate`` returns ``None``
at once when ``frames`` are outstanding; ``frames == 0`` ("no requirement")
lets the pool grow on demand instead.  A frame the allocator did not hand
out, or one freed twice, raises :class:`FrameAllocatorError`.

Frames are not zeroed on allocate (KS frames are not): a renderer overwrites
the whole frame.  :meth:`DefaultFrameAllocator.audio_view` gives a cached
float32 ``(samples, channels)`` view of a frame, so the render loop writes
audio into it with ``out=`` and no copy.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Final, Optional, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

#: A frame: ``frame_size`` bytes of audio memory.
Frame = npt.NDArray[np.uint8]
#: A frame seen as interleaved float32 audio, shape (samples, channels).
AudioView = npt.NDArray[np.float32]

# KSALLOCATOR_FRAMING.RequirementsFlags (when a pin states what it needs).
KSALLOCATOR_REQUIREMENTF_INPLACE_MODIFIER: Final = 0x00000001
KSALLOCATOR_REQUIREMENTF_SYSTEM_MEMORY: Final = 0x00000002
KSALLOCATOR_REQUIREMENTF_FRAME_INTEGRITY: Final = 0x00000004
KSALLOCATOR_REQUIREMENTF_MUST_ALLOCATE: Final = 0x00000008
KSALLOCATOR_REQUIREMENTF_PREFERENCES_ONLY: Final = 0x80000000
# KSALLOCATOR_FRAMING.OptionsFlags (when an allocator is created).
KSALLOCATOR_OPTIONF_COMPATIBLE: Final = 0x00000001
KSALLOCATOR_OPTIONF_SYSTEM_MEMORY: Final = 0x00000002
KSALLOCATOR_OPTIONF_VALID: Final = 0x00000003
#: Every flag bit a framing may carry (options, requirements, preferences-only).
KSALLOCATOR_FLAGS_KNOWN: Final = 0x8000000F

# FILE_*_ALIGNMENT: masks, alignment - 1.
FILE_BYTE_ALIGNMENT: Final = 0x0
FILE_WORD_ALIGNMENT: Final = 0x1
FILE_LONG_ALIGNMENT: Final = 0x3
FILE_QUAD_ALIGNMENT: Final = 0x7
FILE_OCTA_ALIGNMENT: Final = 0xF
FILE_32_BYTE_ALIGNMENT: Final = 0x1F
FILE_64_BYTE_ALIGNMENT: Final = 0x3F
FILE_128_BYTE_ALIGNMENT: Final = 0x7F
FILE_256_BYTE_ALIGNMENT: Final = 0xFF
FILE_512_BYTE_ALIGNMENT: Final = 0x1FF
#: Largest alignment mask the default allocator accepts (PAGE_SIZE - 1).
MAX_FILE_ALIGNMENT: Final = 0xFFF

# POOL_TYPE: meaningless in user space (all memory is alike) but carried faithfully.
NonPagedPool: Final = 0
PagedPool: Final = 1
NonPagedPoolMustSucceed: Final = 2
DontUseThisType: Final = 3
NonPagedPoolCacheAligned: Final = 4
PagedPoolCacheAligned: Final = 5
NonPagedPoolCacheAlignedMustS: Final = 6
POOL_TYPES: Final = frozenset(range(7))

_ULONG_MAX: Final = 0xFFFF_FFFF
_FRAMING: Final = struct.Struct("<IIIIII")
_STATUS: Final = struct.Struct("<IIIIIIII")


class FrameAllocatorError(RuntimeError):
    """A frame was freed that the allocator does not have out now."""


@dataclass(frozen=True, slots=True)
class AllocatorFraming:
    """KSALLOCATOR_FRAMING: how many frames, how big, how aligned.

    ``frames`` is the number of frames that may be outstanding at once (0: no
    requirement); ``frame_size`` the size of each in bytes; ``file_alignment``
    a FILE_*_ALIGNMENT mask (alignment - 1).  ``options_flags`` doubles as
    RequirementsFlags (a union in the original).
    """

    frames: int
    frame_size: int
    file_alignment: int
    options_flags: int = KSALLOCATOR_OPTIONF_SYSTEM_MEMORY
    pool_type: int = NonPagedPool
    reserved: int = 0

    #: sizeof(KSALLOCATOR_FRAMING)
    SIZE = 24

    def __post_init__(self) -> None:
        for name in ("frames", "frame_size", "file_alignment", "options_flags", "pool_type", "reserved"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= _ULONG_MAX:
                raise ValueError(f"{name} must be an integer in 0..{_ULONG_MAX:#x}, got {value!r}")
        if self.frame_size == 0:
            raise ValueError("frame_size must not be 0")
        mask = self.file_alignment
        if mask & (mask + 1) or mask > MAX_FILE_ALIGNMENT:
            raise ValueError(
                f"file_alignment must be a FILE_*_ALIGNMENT mask (2**k - 1, at most {MAX_FILE_ALIGNMENT:#x}), "
                f"got {mask:#x}"
            )
        if self.options_flags & ~KSALLOCATOR_FLAGS_KNOWN:
            raise ValueError(
                f"options_flags has unknown bits {self.options_flags & ~KSALLOCATOR_FLAGS_KNOWN:#x} "
                f"(known: {KSALLOCATOR_FLAGS_KNOWN:#x})"
            )
        if self.pool_type not in POOL_TYPES:
            raise ValueError(f"pool_type must be a POOL_TYPE (0..6), got {self.pool_type}")
        if self.reserved != 0:
            raise ValueError(f"reserved must be 0, got {self.reserved}")

    @property
    def requirements_flags(self) -> int:
        """The same word read as RequirementsFlags (the original's union)."""
        return self.options_flags

    @property
    def alignment(self) -> int:
        """The alignment in bytes (``file_alignment + 1``)."""
        return self.file_alignment + 1

    def pack(self) -> bytes:
        """The 24-byte little-endian KSALLOCATOR_FRAMING."""
        return _FRAMING.pack(
            self.options_flags, self.pool_type, self.frames, self.frame_size, self.file_alignment, self.reserved
        )

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> AllocatorFraming:
        """Read a KSALLOCATOR_FRAMING (exactly 24 bytes); validates like the constructor."""
        if len(data) != cls.SIZE:
            raise ValueError(f"a KSALLOCATOR_FRAMING is {cls.SIZE} bytes, got {len(data)}")
        options, pool, frames, size, alignment, reserved = _FRAMING.unpack(data)
        return cls(frames, size, alignment, options_flags=options, pool_type=pool, reserved=reserved)


@dataclass(frozen=True, slots=True)
class StreamAllocatorStatus:
    """KSSTREAMALLOCATOR_STATUS: the framing and the frames allocated now."""

    framing: AllocatorFraming
    allocated_frames: int
    reserved: int = 0

    #: sizeof(KSSTREAMALLOCATOR_STATUS)
    SIZE = 32

    def pack(self) -> bytes:
        """The 32-byte little-endian KSSTREAMALLOCATOR_STATUS."""
        f = self.framing
        return _STATUS.pack(
            f.options_flags,
            f.pool_type,
            f.frames,
            f.frame_size,
            f.file_alignment,
            f.reserved,
            self.allocated_frames,
            self.reserved,
        )


@runtime_checkable
class FrameAllocator(Protocol):
    """KSALLOCATOR_DISPATCH: what a pin needs of a frame allocator.

    ``allocate`` returns a frame or ``None`` at once when none is available
    (it never blocks: it runs on the render thread); ``free`` takes back a
    frame ``allocate`` returned.
    """

    def initialize(self, framing: AllocatorFraming) -> None: ...

    def delete(self) -> None: ...

    def allocate(self) -> Optional[Frame]: ...

    def free(self, frame: Frame) -> None: ...

    @property
    def framing(self) -> AllocatorFraming: ...


class FramePool:
    """The bookkeeping every frame allocator shares: which frames exist and which are out.

    A subclass creates the frames (system memory, shared memory, ...) and adds
    them with :meth:`_add_frames`; :meth:`_replenish` says what happens when
    none is free (grow, refuse, or raise).  Everything else, ``allocate``,
    ``free``, ownership checks, counters and cached audio views, is here, so
    every allocator detects a foreign or double-freed frame the same way.
    Counters: ``allocated`` (outstanding now), ``high_water``, ``refused``
    (allocate found none), ``total`` (frames created).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: list[Frame] = []
        self._index: dict[int, int] = {}
        self._out = bytearray()
        self._free: list[int] = []
        self._views: dict[int, list[Optional[AudioView]]] = {}
        self.high_water = 0
        self.refused = 0

    # -- what a subclass provides ---------------------------------------------

    @property
    def framing(self) -> AllocatorFraming:  # pragma: no cover - abstract
        raise NotImplementedError

    def _replenish(self) -> bool:
        """Called under the lock when no frame is free: add frames and return True, or return False."""
        return False

    def _add_frames(self, frames: list[Frame]) -> None:
        first = len(self._frames)
        for k, frame in enumerate(frames):
            self._index[id(frame)] = first + k
        self._frames.extend(frames)
        self._out.extend(bytes(len(frames)))
        # Hand out low indices first, so a small working set stays warm in cache.
        self._free[:0] = range(first + len(frames) - 1, first - 1, -1)

    def _clear(self) -> None:
        self._frames = []
        self._index = {}
        self._out = bytearray()
        self._free = []
        self._views = {}

    # -- KSALLOCATOR_DISPATCH: allocate and free ------------------------------

    def allocate(self) -> Optional[Frame]:
        """Return a free frame, or ``None`` at once when none can be had."""
        with self._lock:
            free = self._free
            if not free and not self._replenish():
                self.refused += 1
                return None
            i = free.pop()
            self._out[i] = 1
            n = len(self._frames) - len(free)
            if n > self.high_water:
                self.high_water = n
            return self._frames[i]

    def free(self, frame: Frame) -> None:
        """Take back a frame from :meth:`allocate`."""
        with self._lock:
            i = self.index_of(frame)
            if not self._out[i]:
                raise FrameAllocatorError("frame freed twice")
            self._out[i] = 0
            self._free.append(i)

    # -- ownership, counters, views -------------------------------------------

    def index_of(self, frame: Frame) -> int:
        """The frame's index in this allocator; a foreign frame raises."""
        i = self._index.get(id(frame))
        if i is None or self._frames[i] is not frame:
            raise FrameAllocatorError("frame does not belong to this allocator")
        return i

    def frame(self, index: int) -> Frame:
        """The frame at ``index`` (the inverse of :meth:`index_of`)."""
        return self._frames[index]

    def owns(self, frame: Frame) -> bool:
        """True if ``frame`` is one of this allocator's frames."""
        i = self._index.get(id(frame))
        return i is not None and self._frames[i] is frame

    @property
    def allocated(self) -> int:
        """Frames handed out and not yet freed."""
        return len(self._frames) - len(self._free)

    @property
    def total(self) -> int:
        """Frames created."""
        return len(self._frames)

    def is_idle(self) -> bool:
        """True when every frame is back."""
        return self.allocated == 0

    def status(self) -> StreamAllocatorStatus:
        """KSSTREAMALLOCATOR_STATUS: the framing and the frames out now."""
        return StreamAllocatorStatus(self.framing, self.allocated)

    def audio_view(self, frame: Frame, channels: int) -> AudioView:
        """``frame`` as float32 ``(samples, channels)`` audio, no copy.

        The view is made once per frame and channel count and then returned
        from a cache, so the render loop can ask for it every period.
        """
        i = self.index_of(frame)
        views = self._views.get(channels)
        if views is None:
            views = self._views[channels] = [None] * len(self._frames)
        elif len(views) < len(self._frames):
            views.extend([None] * (len(self._frames) - len(views)))
        v = views[i]
        if v is None:
            v = views[i] = frame_as_audio(frame, channels)
        return v


class DefaultFrameAllocator(FramePool):
    """KsCreateDefaultAllocator's allocator: aligned system-memory frames, reused."""

    def __init__(self, framing: AllocatorFraming) -> None:
        super().__init__()
        self._framing = framing
        self._blocks: list[npt.NDArray[np.uint8]] = []
        self._live = False
        self.initialize(framing)

    # -- KSALLOCATOR_DISPATCH -------------------------------------------------

    def initialize(self, framing: AllocatorFraming) -> None:
        """(Re)build the pool for ``framing``; no frame may be outstanding."""
        if not framing.options_flags & KSALLOCATOR_OPTIONF_SYSTEM_MEMORY:
            raise ValueError("the default allocator serves system memory: options_flags needs SYSTEM_MEMORY")
        with self._lock:
            if self._live and self.allocated:
                raise FrameAllocatorError(f"{self.allocated} frames are still outstanding")
            self._clear()
            self._blocks = []
            self._framing = framing
            self._live = True
            if framing.frames:
                self._grow(framing.frames)

    def delete(self) -> None:
        """Release every frame (DeleteAllocator); frames still out become foreign."""
        with self._lock:
            self._clear()
            self._blocks = []
            self._live = False

    @property
    def framing(self) -> AllocatorFraming:
        """The framing this allocator meets (ALLOCATORFRAMING's answer)."""
        return self._framing

    # -- pool ------------------------------------------------------------------

    def _replenish(self) -> bool:
        if not self._live:
            raise FrameAllocatorError("the allocator was deleted")
        if self._framing.frames:
            return False
        self._grow(max(2, len(self._frames) // 2))
        return True

    def _grow(self, n: int) -> None:
        framing = self._framing
        size = framing.frame_size
        align = framing.alignment
        stride = (size + align - 1) & ~(align - 1)
        block = np.empty(stride * n + align - 1, dtype=np.uint8)
        skew = -block.ctypes.data % align
        self._add_frames([block[skew + k * stride : skew + k * stride + size] for k in range(n)])
        self._blocks.append(block)


def frame_as_audio(frame: Frame, channels: int) -> AudioView:
    """View a frame as interleaved float32 audio of shape ``(samples, channels)``, no copy."""
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    width = 4 * channels
    if frame.nbytes % width:
        raise ValueError(f"a {frame.nbytes}-byte frame does not hold whole {channels}-channel float32 samples")
    view: AudioView = frame.view(np.float32).reshape(-1, channels)
    return view
