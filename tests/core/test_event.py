"""KernelEvent (DMUS_KERNEL_EVENT): fields, flags, inline versus buffer data."""

from __future__ import annotations

from typing import Iterator

import pytest

import mxfd
from mxfd.core.allocator import Allocator
from mxfd.core.event import (
    BYTE_POSITION_NONE,
    EVENT_COMPLETE,
    EVENT_INCOMPLETE,
    INLINE_CAPACITY,
    KERNEL_EVENT_SIZE,
    PACKAGE_EVENT,
)


@pytest.fixture
def alloc() -> Iterator[Allocator]:
    a = Allocator(pool_size=8, buffer_size=32, debug=True)
    yield a
    assert a.is_idle(), a.counters()


def test_flags_have_the_original_dmus_kef_values() -> None:
    assert (EVENT_COMPLETE, EVENT_INCOMPLETE, PACKAGE_EVENT) == (0x0000, 0x0001, 0x0002)
    assert (mxfd.EVENT_COMPLETE, mxfd.EVENT_INCOMPLETE, mxfd.PACKAGE_EVENT) == (0, 1, 2)


def test_inline_capacity_is_the_x64_pointer_size_and_cb_struct_the_x64_struct_size() -> None:
    assert INLINE_CAPACITY == mxfd.INLINE_CAPACITY == 8
    assert KERNEL_EVENT_SIZE == 40
    assert BYTE_POSITION_NONE == mxfd.BYTE_POSITION_NONE == 2**64 - 1


def test_event_has_the_dmus_kernel_event_fields(alloc: Allocator) -> None:
    e = alloc.get_message()
    assert e.reserved == 0
    assert e.cb_struct == KERNEL_EVENT_SIZE
    assert e.cb_event == 0
    assert e.channel_group == 0
    assert e.flags == EVENT_COMPLETE
    assert e.pres_time_100ns == 0
    assert e.byte_position == 0
    assert e.next_evt is None
    assert e.package_evt is None
    assert e.allocator is alloc
    alloc.put_message(e)


def test_events_have_slots_so_no_per_event_dict(alloc: Allocator) -> None:
    e = alloc.get_message()
    assert not hasattr(e, "__dict__")
    with pytest.raises(AttributeError):
        e.stray = 1  # type: ignore[attr-defined]
    alloc.put_message(e)


def test_data_up_to_8_bytes_is_held_inline(alloc: Allocator) -> None:
    e = alloc.get_message()
    e.set_data(b"\xf0\x01\x02\x03\x04\x05\x06\xf7")
    assert e.buffer is None
    assert e.is_short
    assert e.buf is e.inline
    assert e.data == b"\xf0\x01\x02\x03\x04\x05\x06\xf7"
    alloc.put_message(e)


def test_data_over_8_bytes_lives_in_an_allocator_buffer(alloc: Allocator) -> None:
    e = alloc.get_message()
    e.set_data(bytes(range(9)))
    assert e.buffer is not None
    assert len(e.buffer) == alloc.buffer_size
    assert alloc.buffers_in_use == 1
    assert not e.is_short
    assert e.buf is e.buffer
    assert e.data == bytes(range(9))
    alloc.put_message(e)
    assert alloc.buffers_in_use == 0


def test_shrinking_data_back_inline_returns_the_buffer(alloc: Allocator) -> None:
    e = alloc.get_message()
    e.set_data(bytes(20))
    assert alloc.buffers_in_use == 1
    e.set_data(b"\x90\x3c\x40")
    assert e.buffer is None
    assert alloc.buffers_in_use == 0
    assert e.data == b"\x90\x3c\x40"
    alloc.put_message(e)


def test_set_data_takes_a_slice_of_the_source(alloc: Allocator) -> None:
    e = alloc.get_message()
    e.set_data(b"xx\x90\x3c\x40yy", 2, 5)
    assert e.data == b"\x90\x3c\x40"
    e.set_data(memoryview(b"\x00" * 3 + bytes(range(12))), 3)
    assert e.data == bytes(range(12))
    alloc.put_message(e)


def test_set_data_larger_than_the_buffer_size_is_refused(alloc: Allocator) -> None:
    e = alloc.get_message()
    with pytest.raises(ValueError, match="INCOMPLETE chunks"):
        e.set_data(bytes(alloc.buffer_size + 1))
    assert e.cb_event == 0
    alloc.put_message(e)


def test_data_is_exactly_cb_event_bytes(alloc: Allocator) -> None:
    e = alloc.get_message()
    e.set_data(bytes(range(1, 17)))
    e.set_data(bytes(range(10)))
    assert e.cb_event == 10
    assert e.data == bytes(range(10))
    alloc.put_message(e)


def test_set_short_fills_a_short_message_in_place(alloc: Allocator) -> None:
    e = alloc.get_message()
    e.set_short(0x90, 60, 100)
    assert e.data == b"\x90\x3c\x64"
    e.set_short(0xC0, 5, length=2)
    assert e.data == b"\xc0\x05"
    e.set_short(0xF8, length=1)
    assert e.data == b"\xf8"
    alloc.put_message(e)


def test_flag_predicates_follow_the_macros(alloc: Allocator) -> None:
    e = alloc.get_message()
    assert not e.is_incomplete and not e.is_package
    e.flags = EVENT_INCOMPLETE
    assert e.is_incomplete and not e.is_package
    e.flags = PACKAGE_EVENT
    assert e.is_package and not e.is_incomplete
    alloc.put_message(e)


def test_chain_length_counts_the_next_evt_chain(alloc: Allocator) -> None:
    a, b, c = alloc.get_message(), alloc.get_message(), alloc.get_message()
    a.next_evt = b
    b.next_evt = c
    assert a.chain_length() == 3
    assert c.chain_length() == 1
    alloc.put_message(a)


def test_repr_shows_time_group_flags_and_data_or_pool_membership(alloc: Allocator) -> None:
    e = alloc.make_event(b"\x90\x3c\x40", 1234, channel_group=2)
    text = repr(e)
    assert "t=1234" in text and "group=2" in text and "90 3c 40" in text
    alloc.put_message(e)
    assert repr(e) == "<KernelEvent (in pool)>"
