"""The shared-memory frame allocator and the frame ring (no devices needed)."""

from __future__ import annotations

import mmap
import os
from typing import Iterator

import numpy as np
import pytest

from mxfd.core.frames import (
    FILE_64_BYTE_ALIGNMENT,
    FILE_256_BYTE_ALIGNMENT,
    AllocatorFraming,
    DefaultFrameAllocator,
    FrameAllocator,
    FrameAllocatorError,
)
from mxfd.io.shm_frames import SHM_DIR, FrameRing, SharedFrameAllocator


def framing(frames: int = 3, frame_size: int = 1024, alignment: int = FILE_64_BYTE_ALIGNMENT) -> AllocatorFraming:
    return AllocatorFraming(frames=frames, frame_size=frame_size, file_alignment=alignment)


@pytest.fixture
def alloc() -> Iterator[SharedFrameAllocator]:
    a = SharedFrameAllocator(framing(), control_size=FrameRing.control_size(3))
    try:
        yield a
    finally:
        a.delete()


def segment_path(a: SharedFrameAllocator) -> str:
    return os.path.join(SHM_DIR, a.name)


def map_segment(a: SharedFrameAllocator) -> mmap.mmap:
    """Map the segment the way the worker does: by name, outside multiprocessing."""
    fd = os.open(segment_path(a), os.O_RDWR)
    try:
        return mmap.mmap(fd, a.size)
    finally:
        os.close(fd)


def test_shared_allocator_speaks_the_frame_allocator_protocol(alloc: SharedFrameAllocator) -> None:
    assert isinstance(alloc, FrameAllocator)
    assert alloc.framing == framing()


def test_frames_have_the_framing_size_and_alignment() -> None:
    a = SharedFrameAllocator(framing(frames=4, frame_size=1000, alignment=FILE_256_BYTE_ALIGNMENT), control_size=100)
    try:
        frames = [a.allocate() for _ in range(4)]
        for f in frames:
            assert f is not None
            assert f.nbytes == 1000 and f.dtype == np.uint8
            assert f.ctypes.data % 256 == 0
        assert a.frame_stride == 1024
        assert a.frames_offset % 256 == 0 and a.frames_offset >= 100
    finally:
        del frames, f
        a.delete()


def test_allocate_returns_none_at_the_frame_limit_and_counts_it(alloc: SharedFrameAllocator) -> None:
    got = [alloc.allocate() for _ in range(3)]
    assert all(f is not None for f in got)
    assert alloc.allocate() is None
    assert alloc.refused == 1
    assert alloc.allocated == 3 and alloc.high_water == 3
    assert alloc.status().allocated_frames == 3


def test_freed_frames_are_reused(alloc: SharedFrameAllocator) -> None:
    f = alloc.allocate()
    assert f is not None
    alloc.free(f)
    assert alloc.allocate() is f
    assert alloc.allocated == 1


def test_freeing_a_foreign_frame_is_refused(alloc: SharedFrameAllocator) -> None:
    other = DefaultFrameAllocator(framing())
    f = other.allocate()
    assert f is not None
    with pytest.raises(FrameAllocatorError, match="does not belong"):
        alloc.free(f)
    with pytest.raises(FrameAllocatorError, match="does not belong"):
        alloc.free(np.zeros(1024, dtype=np.uint8))


def test_freeing_a_frame_twice_is_refused(alloc: SharedFrameAllocator) -> None:
    f = alloc.allocate()
    assert f is not None
    alloc.free(f)
    with pytest.raises(FrameAllocatorError, match="twice"):
        alloc.free(f)


def test_a_framing_without_a_frame_count_is_refused() -> None:
    with pytest.raises(ValueError, match="frames > 0"):
        SharedFrameAllocator(framing(frames=0))


def test_reinitialising_with_frames_out_is_refused(alloc: SharedFrameAllocator) -> None:
    f = alloc.allocate()
    assert f is not None
    with pytest.raises(FrameAllocatorError, match="outstanding"):
        alloc.initialize(framing(frames=5))


def test_reinitialising_an_idle_allocator_replaces_the_segment(alloc: SharedFrameAllocator) -> None:
    old = segment_path(alloc)
    alloc.initialize(framing(frames=5))
    assert not os.path.exists(old)
    assert os.path.exists(segment_path(alloc))
    assert sum(alloc.allocate() is not None for _ in range(6)) == 5


def test_delete_unlinks_the_segment() -> None:
    a = SharedFrameAllocator(framing())
    path = segment_path(a)
    assert os.path.exists(path)
    a.delete()
    assert not os.path.exists(path)
    with pytest.raises(FrameAllocatorError):
        a.allocate()


def test_another_mapping_sees_what_is_written_into_a_frame(alloc: SharedFrameAllocator) -> None:
    f = alloc.allocate()
    assert f is not None
    audio = alloc.audio_view(f, channels=2)
    assert audio.shape == (128, 2) and audio.dtype == np.float32
    audio[:] = np.arange(256, dtype=np.float32).reshape(128, 2)
    mm = map_segment(alloc)
    try:
        i = alloc.index_of(f)
        assert alloc.frame(i) is f
        seen = np.frombuffer(mm, dtype=np.float32, count=256, offset=alloc.frames_offset + i * alloc.frame_stride)
        assert np.array_equal(seen, np.arange(256, dtype=np.float32))
        del seen
    finally:
        mm.close()


def test_audio_views_are_cached_per_frame(alloc: SharedFrameAllocator) -> None:
    f = alloc.allocate()
    assert f is not None
    assert alloc.audio_view(f, 2) is alloc.audio_view(f, 2)


def test_ring_publishes_frames_in_order_through_the_slots(alloc: SharedFrameAllocator) -> None:
    ring = FrameRing(alloc.control, 3)
    try:
        for n in range(7):
            ring.publish(n % 3, 128 * n)
            assert ring.write == n + 1
            assert ring.slot_frame(n) == n % 3
            assert ring.slot_position(n) == 128 * n
        assert ring.read == 0
        assert ring.retract() == 7
        assert ring.write == ring.read == 0
    finally:
        ring.release()


def test_ring_layout_lets_a_process_without_mxfd_play_the_queue(alloc: SharedFrameAllocator) -> None:
    ring = FrameRing(alloc.control, 3)
    lay = ring.layout()
    mm = map_segment(alloc)
    q = memoryview(mm).cast("q")
    try:
        assert q[0] == lay["magic"]
        ring.publish(2, 4096)
        # The consumer's side, by offsets only: take the slot, stamp it, advance read.
        r = q[lay["read"] // 8]
        assert q[lay["write"] // 8] == r + 1
        base = (lay["slots_offset"] + (r % lay["slots"]) * lay["slot_stride"]) // 8
        assert q[base + lay["slot_frame"] // 8] == 2
        assert q[base + lay["slot_position"] // 8] == 4096
        q[base + lay["slot_cb_ns"] // 8] = 111
        q[base + lay["slot_current_ns"] // 8] = 222
        q[base + lay["slot_dac_ns"] // 8] = 333
        q[lay["underruns"] // 8] = 5
        q[lay["read"] // 8] = r + 1
        assert ring.read == 1
        assert (ring.slot_cb_ns(0), ring.slot_current_ns(0), ring.slot_dac_ns(0)) == (111, 222, 333)
        assert ring.underruns == 5
    finally:
        q.release()
        mm.close()
        ring.release()


def test_ring_counters_sit_on_separate_cache_lines() -> None:
    c = FrameRing.COUNTERS
    assert c["write"] // 64 != c["read"] // 64
    assert all(c["read"] // 64 == c[k] // 64 for k in ("underruns", "xruns", "callbacks", "mismatched"))


def test_ring_refuses_a_control_area_too_small(alloc: SharedFrameAllocator) -> None:
    with pytest.raises(ValueError, match="control area"):
        FrameRing(alloc.control[:64], 3)
