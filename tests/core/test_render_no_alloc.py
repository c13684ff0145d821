"""The render path allocates nothing in steady state (tracemalloc, filtered to mxfd/core)."""

from __future__ import annotations

from mxfd.core.allocator import Allocator
from mxfd.core.frames import FILE_64_BYTE_ALIGNMENT, AllocatorFraming, DefaultFrameAllocator
from mxfd.core.sequencer import Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import encode_buffer
from tests.core.helpers import core_growth

MS = 10_000
#: Times start high so every time stamp is an int of one size from the first cycle on.
EPOCH = 2**40


def render_buffers(buffer_size: int) -> list[tuple[int, bytes]]:
    """A few realistic render buffers: notes, controllers, a bend, short and long SysEx."""
    long_sysex = b"\xf0" + bytes(i & 0x7F for i in range(buffer_size + 20)) + b"\xf7"
    return [
        encode_buffer([(0, 1, b"\x90\x3c\x64"), (5 * MS, 1, b"\x90\x40\x64"), (10 * MS, 1, b"\x80\x3c\x00")]),
        encode_buffer([(0, 1, b"\xb0\x07\x64"), (0, 2, b"\xc0\x05"), (2 * MS, 1, b"\xe0\x00\x40")]),
        encode_buffer([(0, 1, b"\xf0\x43\x10\x4c\x00\x00\x7e\x00\xf7"), (1 * MS, 1, b"\x80\x40\x00")]),
        encode_buffer([(0, 1, long_sysex), (0, 1, b"\xf8"), (3 * MS, 1, b"\x90\x43\x50")]),
    ]


def test_unpack_sequence_release_cycles_leave_no_net_allocation_in_the_core() -> None:
    alloc = Allocator(pool_size=64, buffer_size=64)
    unpacker = Unpacker(alloc)
    sequencer = Sequencer(alloc)  # its output is the allocator: the miniport's last step
    unpacker.connect_output(sequencer)
    buffers = render_buffers(alloc.buffer_size)

    def cycle(i: int) -> None:
        start = EPOCH + i * MS
        delta, data = buffers[i & 3]
        unpacker.unpack(data, start + delta)
        sequencer.release(start - 8 * MS)  # keep a few buffers queued, as a real timer does

    growth, where = core_growth(cycle, warmup=2_000, cycles=100_000)
    assert growth <= 0, where
    assert sequencer.released > 300_000
    assert sequencer.held > 0
    sequencer.release(EPOCH * 2)
    assert alloc.is_idle()


def test_frame_allocate_and_free_cycles_leave_no_net_allocation_in_the_core() -> None:
    frames = DefaultFrameAllocator(AllocatorFraming(3, 128 * 2 * 4, FILE_64_BYTE_ALIGNMENT))
    out = [frames.allocate(), frames.allocate()]

    def cycle(i: int) -> None:
        # A double-buffered render loop: fill one frame, free the oldest.
        f = frames.allocate()
        assert f is not None
        audio = frames.audio_view(f, 2)
        audio[0, 0] = i
        old = out.pop(0)
        assert old is not None
        frames.free(old)
        out.append(f)

    growth, where = core_growth(cycle, warmup=100, cycles=100_000)
    assert growth <= 0, where
    for f in out:
        assert f is not None
        frames.free(f)
    assert frames.is_idle()
