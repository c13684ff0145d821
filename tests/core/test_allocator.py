"""Allocator (IAllocatorMXF): pre-filled pool, zeroed events, growth, cap, returns, misuse."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxfd.core.allocator import DEFAULT_BUFFER_SIZE, Allocator, AllocatorError, AllocatorExhausted
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE, PACKAGE_EVENT, KernelEvent
from mxfd.core.mxf import MXF, KSState


@pytest.fixture
def alloc() -> Iterator[Allocator]:
    a = Allocator(pool_size=8, buffer_size=64, debug=True)
    yield a
    assert a.is_idle(), a.counters()


def dirty(e: KernelEvent) -> None:
    e.reserved = 7
    e.cb_struct = 99
    e.channel_group = 5
    e.flags = EVENT_INCOMPLETE
    e.pres_time_100ns = 123
    e.byte_position = 456
    e.set_data(b"\x90\x3c\x40")


# -- the pool -----------------------------------------------------------------


def test_the_pool_is_pre_filled_at_creation() -> None:
    a = Allocator(pool_size=16)
    assert a.free == 16
    assert a.in_use == 0
    assert a.total == 16
    assert a.grown == 0
    assert a.buffers_free == 2  # pool_size // 8
    assert a.is_idle()


def test_defaults_match_the_original_page_sized_buffers() -> None:
    a = Allocator()
    assert a.buffer_size == DEFAULT_BUFFER_SIZE == 4096
    assert a.max_pool_size == 64 * a.pool_size


def test_get_message_returns_a_zeroed_event_even_after_reuse() -> None:
    a = Allocator(pool_size=1)
    e = a.get_message()
    dirty(e)
    a.put_message(e)
    again = a.get_message()
    assert again is e  # reused, never rebuilt
    assert again.reserved == 0
    assert again.cb_struct == 40
    assert again.cb_event == 0
    assert again.channel_group == 0
    assert again.flags == EVENT_COMPLETE
    assert again.pres_time_100ns == 0
    assert again.byte_position == 0
    assert again.next_evt is None and again.package_evt is None and again.buffer is None
    a.put_message(again)


def test_get_buffer_returns_a_zeroed_buffer_of_the_constant_size(alloc: Allocator) -> None:
    b = alloc.get_buffer()
    assert len(b) == alloc.buffer_size == 64
    b[:] = b"\xff" * 64
    alloc.put_buffer(b)
    b2 = alloc.get_buffer()
    assert b2 is b
    assert b2 == bytearray(64)
    alloc.put_buffer(b2)


def test_the_pool_grows_when_dry_up_to_its_cap() -> None:
    a = Allocator(pool_size=4, max_pool_size=10)
    events = [a.get_message() for _ in range(10)]
    assert a.total == 10
    assert a.grown >= 1
    assert a.free == 0
    assert a.available() == 0
    for e in events:
        a.put_message(e)
    assert a.is_idle()


def test_exhaustion_at_the_cap_raises_and_is_counted() -> None:
    a = Allocator(pool_size=2, max_pool_size=3)
    events = [a.get_message() for _ in range(3)]
    with pytest.raises(AllocatorExhausted, match="cap 3"):
        a.get_message()
    with pytest.raises(AllocatorExhausted):
        a.get_message()
    assert a.exhausted == 2
    assert a.counters()["exhausted"] == 2
    for e in events:
        a.put_message(e)
    a.put_message(a.get_message())  # usable again once events come back
    assert a.is_idle()


def test_available_tells_callers_in_advance_for_back_pressure() -> None:
    a = Allocator(pool_size=2, max_pool_size=5)
    assert a.available() == 5
    e = a.get_message()
    assert a.available() == 4
    a.put_message(e)
    assert a.available() == 5


def test_buffer_pool_grows_to_its_cap_then_raises_exhausted() -> None:
    a = Allocator(pool_size=8, buffer_size=16, buffer_pool_size=1, max_buffers=2)
    assert a.buffers_available() == 2
    b1, b2 = a.get_buffer(), a.get_buffer()
    with pytest.raises(AllocatorExhausted, match="buffer pool"):
        a.get_buffer()
    assert a.exhausted == 1
    a.put_buffer(b1)
    a.put_buffer(b2)
    assert a.is_idle()


def test_counters_report_free_in_use_high_water_and_grown() -> None:
    a = Allocator(pool_size=2, max_pool_size=8, buffer_size=16)
    events = [a.get_message() for _ in range(5)]
    c = a.counters()
    assert c["in_use"] == 5 == a.in_use
    assert c["free"] == a.free == a.total - 5
    assert c["high_water"] == 5 == a.high_water
    assert c["grown"] == a.grown >= 1
    assert c["max"] == 8
    assert c["buffer_size"] == 16
    for e in events[:3]:
        a.put_message(e)
    assert a.in_use == 2
    assert a.high_water == 5  # a high-water mark does not fall
    for e in events[3:]:
        a.put_message(e)


# -- returning events ------------------------------------------------------------


def test_put_message_takes_back_the_whole_next_evt_chain(alloc: Allocator) -> None:
    head = alloc.get_message()
    e = head
    for _ in range(4):
        e.next_evt = alloc.get_message()
        e = e.next_evt
    assert alloc.in_use == 5
    alloc.put_message(head)
    assert alloc.in_use == 0


def test_put_message_takes_back_package_chains_recursively(alloc: Allocator) -> None:
    outer = alloc.get_message()
    outer.flags = PACKAGE_EVENT
    inner = alloc.get_message()
    inner.next_evt = alloc.get_message()
    inner.next_evt.set_data(bytes(20))  # with a data buffer
    nested = alloc.get_message()
    nested.flags = PACKAGE_EVENT
    nested.package_evt = alloc.get_message()
    inner.next_evt.next_evt = nested
    outer.package_evt = inner
    outer.next_evt = alloc.get_message()
    assert alloc.in_use == 6 and alloc.buffers_in_use == 1
    alloc.put_message(outer)
    assert alloc.is_idle()


def test_put_message_copes_with_a_package_whose_chain_was_taken(alloc: Allocator) -> None:
    outer = alloc.get_message()
    outer.flags = PACKAGE_EVENT  # flagged as a package, but package_evt is None
    alloc.put_message(outer)
    assert (alloc.in_use, alloc.free) == (0, alloc.total)
    # Back in the pool and handed out again: it was taken back, not dropped.
    assert alloc.get_message() is outer
    alloc.put_message(outer)


def test_put_message_takes_back_data_buffers(alloc: Allocator) -> None:
    e = alloc.make_event(bytes(range(30)), 0)
    assert alloc.buffers_in_use == 1
    alloc.put_message(e)
    assert alloc.buffers_in_use == 0


def test_put_message_of_none_is_a_no_op(alloc: Allocator) -> None:
    held = alloc.get_message()
    before = alloc.counters()
    alloc.put_message(None)
    assert alloc.counters() == before
    alloc.put_message(held)


# -- misuse is detected -------------------------------------------------------------


def test_double_put_is_detected(alloc: Allocator) -> None:
    e = alloc.get_message()
    alloc.put_message(e)
    with pytest.raises(AllocatorError, match="double put"):
        alloc.put_message(e)


def test_double_put_is_detected_without_debug_too() -> None:
    a = Allocator(pool_size=2)
    e = a.get_message()
    a.put_message(e)
    with pytest.raises(AllocatorError, match="double put"):
        a.put_message(e)


def test_an_event_from_another_allocator_is_refused(alloc: Allocator) -> None:
    other = Allocator(pool_size=2)
    e = other.get_message()
    with pytest.raises(AllocatorError, match="another allocator"):
        alloc.put_message(e)
    other.put_message(e)


def test_an_object_that_is_not_an_event_is_refused(alloc: Allocator) -> None:
    with pytest.raises(AllocatorError, match="not a KernelEvent"):
        alloc.put_message("note on")  # type: ignore[arg-type]


def test_use_after_put_is_detected_in_debug_mode() -> None:
    a = Allocator(pool_size=1, debug=True)
    e = a.get_message()
    a.put_message(e)
    e.pres_time_100ns = 42  # a write after ownership went back
    with pytest.raises(AllocatorError, match="use after put"):
        a.get_message()


def test_a_chain_linked_onto_a_returned_event_is_detected_in_debug_mode() -> None:
    a = Allocator(pool_size=2, debug=True)
    e, f = a.get_message(), a.get_message()
    a.put_message(e)
    e.next_evt = f
    with pytest.raises(AllocatorError, match="use after put"):
        a.get_message()


def test_buffers_returned_twice_or_foreign_are_refused(alloc: Allocator) -> None:
    b = alloc.get_buffer()
    alloc.put_buffer(b)
    with pytest.raises(AllocatorError, match="double put"):
        alloc.put_buffer(b)
    with pytest.raises(AllocatorError, match="another allocator"):
        alloc.put_buffer(bytearray(alloc.buffer_size))


# -- make_event ----------------------------------------------------------------------


def test_make_event_gets_and_fills_an_event_in_one_call(alloc: Allocator) -> None:
    e = alloc.make_event(b"\x90\x3c\x40", 5000)
    assert e.data == b"\x90\x3c\x40"
    assert e.cb_event == 3
    assert e.pres_time_100ns == 5000
    assert e.channel_group == 1  # the default group
    assert e.flags == EVENT_COMPLETE
    assert e.buffer is None
    alloc.put_message(e)


def test_make_event_sets_group_and_flags(alloc: Allocator) -> None:
    e = alloc.make_event(b"\xf0\x01", 7, channel_group=3, flags=EVENT_INCOMPLETE)
    assert (e.channel_group, e.flags) == (3, EVENT_INCOMPLETE)
    alloc.put_message(e)


def test_make_event_over_8_bytes_takes_a_buffer(alloc: Allocator) -> None:
    sysex = b"\xf0" + bytes(range(10)) + b"\xf7"
    e = alloc.make_event(sysex, 0)
    assert e.buffer is not None
    assert e.data == sysex
    assert alloc.buffers_in_use == 1
    alloc.put_message(e)


def test_make_event_up_to_the_buffer_size_and_not_beyond(alloc: Allocator) -> None:
    e = alloc.make_event(bytes(alloc.buffer_size), 0)
    assert e.cb_event == alloc.buffer_size
    alloc.put_message(e)
    with pytest.raises(ValueError, match="buffer size"):
        alloc.make_event(bytes(alloc.buffer_size + 1), 0)
    # The event taken for the failed call went back: the fixture checks the pool is idle.


def test_make_event_returns_its_event_when_no_buffer_is_left() -> None:
    a = Allocator(pool_size=4, buffer_size=16, buffer_pool_size=1, max_buffers=1)
    held = a.make_event(bytes(16), 0)
    with pytest.raises(AllocatorExhausted):
        a.make_event(bytes(16), 0)
    assert a.in_use == 1
    a.put_message(held)
    assert a.is_idle()


# -- construction and IMXF shape -----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pool_size": 0}, "pool_size"),
        ({"buffer_size": 8}, "buffer_size"),
        ({"buffer_size": 0x10000}, "buffer_size"),
        ({"pool_size": 8, "max_pool_size": 4}, "max_pool_size"),
        ({"buffer_pool_size": 4, "max_buffers": 2}, "max_buffers"),
    ],
)
def test_bad_allocator_parameters_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Allocator(**kwargs)


def test_the_allocator_is_an_mxf_and_the_end_of_every_graph(alloc: Allocator) -> None:
    assert isinstance(alloc, MXF)
    alloc.set_state(KSState.STOP)  # accepted, no effect
    with pytest.raises(AllocatorError, match="end of the graph"):
        alloc.connect_output(Allocator(pool_size=1))
    with pytest.raises(AllocatorError, match="end of the graph"):
        alloc.disconnect_output(None)


def test_gets_and_puts_from_two_threads_balance() -> None:
    a = Allocator(pool_size=64, buffer_size=16)
    errors: list[BaseException] = []

    def churn() -> None:
        try:
            for i in range(5000):
                e = a.make_event(bytes(12) if i % 7 == 0 else b"\x90\x3c\x40", i)
                a.put_message(e)
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=churn) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert a.is_idle()
    assert a.total <= 64  # two threads of one event each never needed growth


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 16)), max_size=80))
def test_counts_balance_under_any_sequence_of_gets_and_puts(ops: list[tuple[bool, int]]) -> None:
    a = Allocator(pool_size=4, max_pool_size=16, buffer_size=16, debug=True)
    held: list[KernelEvent] = []
    for get, size in ops:
        if get:
            try:
                held.append(a.make_event(bytes(size) or b"\xf8", 0))
            except AllocatorExhausted:
                assert a.available() == 0 or a.buffers_available() == 0
        elif held:
            a.put_message(held.pop(0))
        assert a.in_use == len(held)
        assert a.free + a.in_use == a.total <= a.max_pool_size
        assert a.buffers_in_use == sum(1 for e in held if e.buffer is not None)
    for e in held:
        a.put_message(e)
    assert a.is_idle()
