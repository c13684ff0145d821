"""KS frames: KSALLOCATOR_FRAMING, the default frame allocator, status and audio views."""

from __future__ import annotations

import struct
import threading
from typing import Iterator, Optional

import numpy as np
import pytest

from mxfd.core.frames import (
    FILE_32_BYTE_ALIGNMENT,
    FILE_64_BYTE_ALIGNMENT,
    FILE_128_BYTE_ALIGNMENT,
    FILE_256_BYTE_ALIGNMENT,
    FILE_512_BYTE_ALIGNMENT,
    FILE_BYTE_ALIGNMENT,
    FILE_LONG_ALIGNMENT,
    FILE_OCTA_ALIGNMENT,
    FILE_QUAD_ALIGNMENT,
    FILE_WORD_ALIGNMENT,
    KSALLOCATOR_OPTIONF_COMPATIBLE,
    KSALLOCATOR_OPTIONF_SYSTEM_MEMORY,
    KSALLOCATOR_OPTIONF_VALID,
    KSALLOCATOR_REQUIREMENTF_FRAME_INTEGRITY,
    KSALLOCATOR_REQUIREMENTF_INPLACE_MODIFIER,
    KSALLOCATOR_REQUIREMENTF_MUST_ALLOCATE,
    KSALLOCATOR_REQUIREMENTF_PREFERENCES_ONLY,
    KSALLOCATOR_REQUIREMENTF_SYSTEM_MEMORY,
    AllocatorFraming,
    DefaultFrameAllocator,
    Frame,
    FrameAllocator,
    FrameAllocatorError,
    NonPagedPool,
    PagedPool,
    StreamAllocatorStatus,
    frame_as_audio,
)

ALL_ALIGNMENTS = [
    FILE_BYTE_ALIGNMENT,
    FILE_WORD_ALIGNMENT,
    FILE_LONG_ALIGNMENT,
    FILE_QUAD_ALIGNMENT,
    FILE_OCTA_ALIGNMENT,
    FILE_32_BYTE_ALIGNMENT,
    FILE_64_BYTE_ALIGNMENT,
    FILE_128_BYTE_ALIGNMENT,
    FILE_256_BYTE_ALIGNMENT,
    FILE_512_BYTE_ALIGNMENT,
    0xFFF,
]


@pytest.fixture
def frames() -> Iterator[DefaultFrameAllocator]:
    a = DefaultFrameAllocator(AllocatorFraming(4, 1024, FILE_64_BYTE_ALIGNMENT))
    yield a
    assert a.is_idle(), a.status()


# -- KSALLOCATOR_FRAMING --------------------------------------------------------------


def test_flag_and_alignment_constants_have_the_header_values() -> None:
    assert KSALLOCATOR_REQUIREMENTF_INPLACE_MODIFIER == 0x1
    assert KSALLOCATOR_REQUIREMENTF_SYSTEM_MEMORY == 0x2
    assert KSALLOCATOR_REQUIREMENTF_FRAME_INTEGRITY == 0x4
    assert KSALLOCATOR_REQUIREMENTF_MUST_ALLOCATE == 0x8
    assert KSALLOCATOR_REQUIREMENTF_PREFERENCES_ONLY == 0x80000000
    assert (KSALLOCATOR_OPTIONF_COMPATIBLE, KSALLOCATOR_OPTIONF_SYSTEM_MEMORY, KSALLOCATOR_OPTIONF_VALID) == (1, 2, 3)
    assert ALL_ALIGNMENTS[:10] == [0x0, 0x1, 0x3, 0x7, 0xF, 0x1F, 0x3F, 0x7F, 0xFF, 0x1FF]
    assert (NonPagedPool, PagedPool) == (0, 1)


def test_framing_packs_to_24_bytes_in_the_ks_h_field_order() -> None:
    f = AllocatorFraming(8, 4096, FILE_QUAD_ALIGNMENT, options_flags=0x3, pool_type=PagedPool)
    raw = f.pack()
    assert len(raw) == AllocatorFraming.SIZE == 24
    assert struct.unpack("<IIIIII", raw) == (0x3, PagedPool, 8, 4096, 7, 0)  # options, pool, frames, size, align, 0


def test_framing_defaults_to_system_memory_from_the_non_paged_pool() -> None:
    f = AllocatorFraming(2, 512, FILE_LONG_ALIGNMENT)
    assert f.options_flags == KSALLOCATOR_OPTIONF_SYSTEM_MEMORY
    assert f.requirements_flags == f.options_flags  # the original's union
    assert f.pool_type == NonPagedPool
    assert f.reserved == 0
    assert f.alignment == 4


def test_framing_unpacks_what_it_packs() -> None:
    f = AllocatorFraming(3, 960, FILE_OCTA_ALIGNMENT, options_flags=0x80000002, pool_type=4)
    assert AllocatorFraming.unpack(f.pack()) == f
    assert AllocatorFraming.unpack(bytearray(f.pack())) == f


def test_framing_unpack_needs_exactly_24_bytes() -> None:
    with pytest.raises(ValueError, match="24 bytes"):
        AllocatorFraming.unpack(bytes(23))
    with pytest.raises(ValueError, match="24 bytes"):
        AllocatorFraming.unpack(bytes(25))


def test_framing_zero_frames_means_no_requirement() -> None:
    assert AllocatorFraming(0, 64, FILE_BYTE_ALIGNMENT).frames == 0


def test_framing_with_a_zero_frame_size_is_refused() -> None:
    with pytest.raises(ValueError, match="frame_size"):
        AllocatorFraming(4, 0, FILE_LONG_ALIGNMENT)


@pytest.mark.parametrize("mask", ALL_ALIGNMENTS)
def test_every_file_alignment_mask_up_to_a_page_is_accepted(mask: int) -> None:
    assert AllocatorFraming(1, 64, mask).file_alignment == mask


@pytest.mark.parametrize("mask", [2, 4, 6, 0x10, 0x3E, 0x1FFF, 0xFFFF_FFFF])
def test_alignment_that_is_not_a_mask_up_to_a_page_is_refused(mask: int) -> None:
    with pytest.raises(ValueError, match="file_alignment"):
        AllocatorFraming(1, 64, mask)


@pytest.mark.parametrize("flags", [0x10, 0x40, 0x100, 0x4000_0000])
def test_unknown_option_bits_are_refused(flags: int) -> None:
    with pytest.raises(ValueError, match="options_flags"):
        AllocatorFraming(1, 64, 0, options_flags=flags | KSALLOCATOR_OPTIONF_SYSTEM_MEMORY)


def test_every_defined_flag_is_accepted() -> None:
    f = AllocatorFraming(1, 64, 0, options_flags=0x8000000F)
    assert f.options_flags == 0x8000000F


@pytest.mark.parametrize("pool_type", [7, 512])
def test_an_unknown_pool_type_is_refused(pool_type: int) -> None:
    with pytest.raises(ValueError, match="pool_type"):
        AllocatorFraming(1, 64, 0, pool_type=pool_type)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"frames": -1}, "frames"),
        ({"frames": 2**32}, "frames"),
        ({"frame_size": 2**32}, "frame_size"),
        ({"frame_size": 64.0}, "frame_size"),
        ({"reserved": 1}, "reserved"),
    ],
)
def test_fields_outside_a_ulong_or_a_nonzero_reserved_are_refused_by_name(
    kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {"frames": 1, "frame_size": 64, "file_alignment": 0, **kwargs}
    with pytest.raises(ValueError, match=field):
        AllocatorFraming(**args)  # type: ignore[arg-type]


def test_a_framing_is_an_immutable_value() -> None:
    f = AllocatorFraming(1, 64, 0)
    with pytest.raises(AttributeError):
        f.frames = 2  # type: ignore[misc]
    assert f == AllocatorFraming(1, 64, 0)
    assert hash(f) == hash(AllocatorFraming(1, 64, 0))


# -- the default frame allocator ------------------------------------------------------------


def test_frames_are_frame_size_uint8_arrays(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    assert f.dtype == np.uint8
    assert f.shape == (1024,)
    assert f.flags.c_contiguous and f.flags.writeable
    frames.free(f)


@pytest.mark.parametrize("mask", ALL_ALIGNMENTS)
@pytest.mark.parametrize("size", [1, 7, 100, 960, 4096])
def test_every_frames_address_meets_the_alignment(mask: int, size: int) -> None:
    a = DefaultFrameAllocator(AllocatorFraming(5, size, mask))
    got = [a.allocate() for _ in range(5)]
    for f in got:
        assert f is not None
        assert f.ctypes.data & mask == 0
        assert f.nbytes == size
    for f in got:
        assert f is not None
        a.free(f)


def test_frames_do_not_overlap(frames: DefaultFrameAllocator) -> None:
    got = [frames.allocate() for _ in range(4)]
    for i, f in enumerate(got):
        assert f is not None
        f[:] = i + 1
    for i, f in enumerate(got):
        assert f is not None
        assert np.all(f == i + 1)
        frames.free(f)


def test_at_most_frames_are_outstanding_then_allocate_returns_none(frames: DefaultFrameAllocator) -> None:
    got = [frames.allocate() for _ in range(4)]
    assert all(f is not None for f in got)
    assert frames.allocate() is None
    assert frames.allocate() is None
    assert frames.refused == 2
    assert frames.allocated == 4
    for f in got:
        assert f is not None
        frames.free(f)


def test_freed_frames_are_reused_not_reallocated(frames: DefaultFrameAllocator) -> None:
    first = frames.allocate()
    assert first is not None
    address = first.ctypes.data
    frames.free(first)
    again = frames.allocate()
    assert again is first
    assert again is not None and again.ctypes.data == address
    frames.free(again)
    assert frames.total == 4


def test_zero_frames_means_the_pool_grows_on_demand_and_is_reused() -> None:
    a = DefaultFrameAllocator(AllocatorFraming(0, 256, FILE_128_BYTE_ALIGNMENT))
    got = [a.allocate() for _ in range(10)]
    assert all(f is not None and f.ctypes.data % 128 == 0 for f in got)
    assert a.total >= 10
    total = a.total
    for f in got:
        assert f is not None
        a.free(f)
    for _ in range(100):
        f = a.allocate()
        assert f is not None
        a.free(f)
    assert a.total == total


def test_freeing_a_foreign_frame_is_refused(frames: DefaultFrameAllocator) -> None:
    with pytest.raises(FrameAllocatorError, match="does not belong"):
        frames.free(np.zeros(1024, dtype=np.uint8))
    other = DefaultFrameAllocator(frames.framing)
    f = other.allocate()
    assert f is not None
    with pytest.raises(FrameAllocatorError, match="does not belong"):
        frames.free(f)
    other.free(f)


def test_freeing_a_slice_of_a_frame_is_refused(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    with pytest.raises(FrameAllocatorError, match="does not belong"):
        frames.free(f[:])
    frames.free(f)


def test_freeing_a_frame_twice_is_refused(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    frames.free(f)
    with pytest.raises(FrameAllocatorError, match="twice"):
        frames.free(f)


def test_status_reports_the_framing_and_the_frames_out(frames: DefaultFrameAllocator) -> None:
    a, b = frames.allocate(), frames.allocate()
    status = frames.status()
    assert status == StreamAllocatorStatus(frames.framing, 2)
    raw = status.pack()
    assert len(raw) == StreamAllocatorStatus.SIZE == 32
    assert raw[:24] == frames.framing.pack()
    assert struct.unpack_from("<II", raw, 24) == (2, 0)
    assert frames.high_water == 2
    for f in (a, b):
        assert f is not None
        frames.free(f)
    assert frames.status().allocated_frames == 0


def test_the_framing_query_returns_the_framing_the_allocator_meets(frames: DefaultFrameAllocator) -> None:
    assert frames.framing == AllocatorFraming(4, 1024, FILE_64_BYTE_ALIGNMENT)


def test_the_default_allocator_needs_system_memory() -> None:
    with pytest.raises(ValueError, match="SYSTEM_MEMORY"):
        DefaultFrameAllocator(AllocatorFraming(2, 64, 0, options_flags=KSALLOCATOR_OPTIONF_COMPATIBLE))


def test_initialize_rebuilds_for_a_new_framing_once_all_frames_are_back(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    with pytest.raises(FrameAllocatorError, match="outstanding"):
        frames.initialize(AllocatorFraming(2, 512, FILE_32_BYTE_ALIGNMENT))
    frames.free(f)
    frames.initialize(AllocatorFraming(2, 512, FILE_32_BYTE_ALIGNMENT))
    g = frames.allocate()
    assert g is not None and g.nbytes == 512 and g.ctypes.data % 32 == 0
    assert frames.total == 2
    frames.free(g)


def test_after_delete_allocate_raises_and_old_frames_are_foreign(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    frames.delete()
    assert frames.is_idle()
    with pytest.raises(FrameAllocatorError, match="deleted"):
        frames.allocate()
    with pytest.raises(FrameAllocatorError, match="does not belong"):
        frames.free(f)
    frames.initialize(frames.framing)  # usable again
    g = frames.allocate()
    assert g is not None
    frames.free(g)


def test_the_default_allocator_has_the_ksallocator_dispatch_shape(frames: DefaultFrameAllocator) -> None:
    assert isinstance(frames, FrameAllocator)


class ListAllocator:
    """A pin's own allocator (say over shared memory): anything with the dispatch shape will do."""

    def __init__(self) -> None:
        self._framing = AllocatorFraming(1, 16, 0)
        self._pool: list[Frame] = []

    def initialize(self, framing: AllocatorFraming) -> None:
        self._framing = framing
        self._pool = [np.zeros(framing.frame_size, dtype=np.uint8) for _ in range(framing.frames)]

    def delete(self) -> None:
        self._pool = []

    def allocate(self) -> Optional[Frame]:
        return self._pool.pop() if self._pool else None

    def free(self, frame: Frame) -> None:
        self._pool.append(frame)

    @property
    def framing(self) -> AllocatorFraming:
        return self._framing


def test_a_pin_may_bring_its_own_frame_allocator() -> None:
    own: FrameAllocator = ListAllocator()
    assert isinstance(own, FrameAllocator)
    own.initialize(AllocatorFraming(1, 32, 0))
    f = own.allocate()
    assert f is not None and own.allocate() is None
    own.free(f)
    own.delete()


def test_frames_from_two_threads_balance() -> None:
    a = DefaultFrameAllocator(AllocatorFraming(3, 64, FILE_QUAD_ALIGNMENT))
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for _ in range(5000):
                f = a.allocate()
                if f is not None:
                    a.free(f)
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert a.is_idle()
    assert a.high_water <= 3


# -- audio views ----------------------------------------------------------------------------------


def test_a_frame_seen_as_float32_audio_shares_its_memory(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    audio = frames.audio_view(f, 2)
    assert audio.dtype == np.float32
    assert audio.shape == (128, 2)  # 1024 bytes = 128 stereo float32 samples
    assert np.shares_memory(audio, f)
    audio[3, 1] = 0.5
    assert f[3 * 8 + 4 : 3 * 8 + 8].view(np.float32)[0] == 0.5
    frames.free(f)


def test_audio_views_are_cached_per_frame_and_channel_count(frames: DefaultFrameAllocator) -> None:
    f = frames.allocate()
    assert f is not None
    v = frames.audio_view(f, 2)
    assert frames.audio_view(f, 2) is v
    assert frames.audio_view(f, 1).shape == (256, 1)
    frames.free(f)
    with pytest.raises(FrameAllocatorError):
        frames.audio_view(np.zeros(1024, dtype=np.uint8), 2)


def test_frame_as_audio_refuses_frames_that_do_not_hold_whole_samples() -> None:
    with pytest.raises(ValueError, match="whole 3-channel"):
        frame_as_audio(np.zeros(16, dtype=np.uint8), 3)
    with pytest.raises(ValueError, match="channels"):
        frame_as_audio(np.zeros(16, dtype=np.uint8), 0)
    assert frame_as_audio(np.zeros(24, dtype=np.uint8), 3).shape == (2, 3)


