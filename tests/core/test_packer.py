"""The packer: kernel events in, DMUS_EVENTHEADER buffers out, completed promptly."""

from __future__ import annotations

import logging
from typing import Iterator, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxfd.core.allocator import Allocator
from mxfd.core.capture import CaptureSink
from mxfd.core.clock import UNITS_PER_MS, ManualClock
from mxfd.core.event import EVENT_INCOMPLETE, KernelEvent
from mxfd.core.mxf import KSState
from mxfd.core.packer import Packer
from mxfd.core.wire import DMUS_EVENT_STRUCTURED, EVENT_HEADER_SIZE, HEADER, decode_buffer, event_size
from tests.core.helpers import Buffers, Recorder, chain_of, raw_chain

STRUCTURED = DMUS_EVENT_STRUCTURED


class Rig:
    """A packer on a debug allocator with a manual clock, delivering to a :class:`Buffers`."""

    def __init__(self, buffer_size: Optional[int] = None, queue_size: int = 8, alloc_buffer: int = 4096) -> None:
        self.alloc = Allocator(buffer_size=alloc_buffer, debug=True)
        self.clock = ManualClock(1_000_000)
        self.buffers = Buffers()
        self.packer = Packer(self.alloc, self.buffers, buffer_size=buffer_size, queue_size=queue_size, clock=self.clock)

    def put(self, *items: tuple[int, bytes]) -> None:
        self.packer.put_message(chain_of(self.alloc, *items))


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    assert r.alloc.is_idle(), r.alloc.counters()


# -- records ---------------------------------------------------------------------------


def test_each_event_becomes_one_record_that_decode_buffer_reads_back(rig: Rig) -> None:
    rig.put((100, b"\x90\x3c\x64"), (105, b"\xc0\x05"), (120, b"\xf8"), (130, b"\xf0\x7e\x7f\x09\x01\xf7"))
    rig.packer.flush()
    assert rig.buffers.records() == [
        (100, 1, STRUCTURED, b"\x90\x3c\x64"),
        (105, 1, STRUCTURED, b"\xc0\x05"),
        (120, 1, STRUCTURED, b"\xf8"),
        (130, 1, 0, b"\xf0\x7e\x7f\x09\x01\xf7"),
    ]


@pytest.mark.parametrize(
    ("message", "flags"),
    [
        ("90 3c 64", STRUCTURED),
        ("b0 07 7f", STRUCTURED),
        ("c0 05", STRUCTURED),
        ("e0 00 40", STRUCTURED),
        ("f1 23", STRUCTURED),
        ("f2 01 02", STRUCTURED),
        ("f6", STRUCTURED),
        ("f8", STRUCTURED),
        ("fe", STRUCTURED),
        ("f0 7e f7", 0),
        ("f0 43 10 4c 00 00 7e 00 f7", 0),
        ("f7", 0),
    ],
)
def test_channel_common_and_realtime_records_are_structured_and_sysex_is_not(
    rig: Rig, message: str, flags: int
) -> None:
    rig.put((0, bytes.fromhex(message)))
    rig.packer.flush()
    assert rig.buffers.records() == [(0, 1, flags, bytes.fromhex(message))]


def test_a_short_event_that_is_not_one_whole_message_is_unstructured(rig: Rig) -> None:
    rig.put((0, b"\x90\x3c"), (0, b"\x3c\x64"), (0, b"\x90\x3c\x64\x00"))
    rig.packer.flush()
    assert [r[2] for r in rig.buffers.records()] == [0, 0, 0]


def test_rt_delta_is_relative_to_the_first_records_time_and_may_be_negative(rig: Rig) -> None:
    rig.put((5000, b"\xf8"), (4000, b"\x90\x3c\x64"), (9000, b"\xfa"))
    rig.packer.flush()
    ((start, data),) = rig.buffers.got
    assert start == 5000
    deltas = [HEADER.unpack_from(data, off)[2] for off in (0, 24, 48)]
    assert deltas == [0, -1000, 4000]


def test_channel_groups_are_kept(rig: Rig) -> None:
    e = rig.alloc.make_event(b"\x90\x3c\x64", 0, channel_group=7)
    rig.packer.put_message(e)
    rig.packer.flush()
    assert rig.buffers.records() == [(0, 7, STRUCTURED, b"\x90\x3c\x64")]


def test_records_are_qword_aligned_with_zero_padding(rig: Rig) -> None:
    rig.put((0, b"\xf8"), (0, b"\xc0\x05"), (0, b"\xf0" + bytes(10) + b"\xf7"), (0, b"\x90\x3c\x64"))
    rig.packer.flush()
    ((_, data),) = rig.buffers.got
    assert len(data) == 24 + 24 + event_size(12) + 24
    off = 0
    for n in (1, 2, 12, 3):
        assert data[off + EVENT_HEADER_SIZE + n : off + event_size(n)] == bytes(event_size(n) - EVENT_HEADER_SIZE - n)
        off += event_size(n)


def test_a_sysex_chunk_chain_becomes_one_record_per_chunk() -> None:
    r = Rig(alloc_buffer=16)
    sink = CaptureSink(r.alloc)
    sink.connect_output(r.packer)
    sysex = b"\xf0" + bytes(range(40)) + b"\xf7"
    sink.put_message(raw_chain(r.alloc, sysex, 77))
    r.packer.flush()
    records = r.buffers.records()
    assert [len(m) for *_, m in records] == [16, 16, 10]
    assert {t for t, *_ in records} == {77}
    assert all(flags == 0 for _, _, flags, _ in records)
    assert b"".join(m for *_, m in records) == sysex
    assert r.alloc.is_idle()


def test_used_events_go_back_to_the_allocator(rig: Rig) -> None:
    rig.put((0, b"\x90\x3c\x64"), (1, b"\xf0" + bytes(100) + b"\xf7"))
    assert rig.alloc.is_idle()  # before the buffer is even complete


def test_used_events_go_to_the_connected_output_instead(rig: Rig) -> None:
    out = Recorder()
    rig.packer.connect_output(out)
    rig.put((3, b"\x90\x3c\x64"), (4, b"\xf8"))
    assert out.messages == [b"\x90\x3c\x64", b"\xf8"]


def test_events_without_bytes_are_dropped_and_counted(rig: Rig) -> None:
    e = rig.alloc.get_message()  # cb_event 0
    e.next_evt = rig.alloc.make_event(b"\xf8", 0)
    rig.packer.put_message(e)
    rig.packer.flush()
    assert rig.buffers.messages() == [b"\xf8"]
    assert rig.packer.bad_events == 1


# -- completion ----------------------------------------------------------------------------


def test_a_buffer_completes_when_the_next_record_does_not_fit() -> None:
    r = Rig(buffer_size=event_size(4096))
    r.put(*[(i, b"\x90\x3c\x64") for i in range(200)])  # 200 * 24 bytes > 4120
    assert [len(d) for _, d in r.buffers.got] == [171 * 24]
    assert r.packer.completed_full == 1
    r.packer.flush()
    assert len(r.buffers.records()) == 200
    assert r.buffers.got[1][0] == 171  # the next buffer starts at its own first record
    assert r.alloc.is_idle()


def test_a_record_that_fills_the_buffer_exactly_still_goes_in() -> None:
    r = Rig(buffer_size=event_size(16) + 24, alloc_buffer=16)
    r.packer.put_message(r.alloc.make_event(b"\xf0" + bytes(14) + b"\xf7", 0))
    r.put((0, b"\xf8"))
    assert r.buffers.got == []
    r.put((0, b"\xf8"))
    assert len(r.buffers.got) == 1 and len(r.buffers.records()) == 2
    r.packer.flush()
    assert r.alloc.is_idle()


def test_a_buffer_completes_on_put_once_its_first_record_is_1ms_old(rig: Rig) -> None:
    rig.put((0, b"\xf8"))
    rig.clock.advance(UNITS_PER_MS - 1)
    rig.put((0, b"\xf8"))
    assert rig.buffers.got == []
    rig.clock.advance(1)
    rig.put((0, b"\xfa"))
    assert rig.buffers.messages() == [b"\xf8", b"\xf8", b"\xfa"]
    assert rig.packer.completed_timeout == 1


def test_poll_completes_a_due_buffer_and_next_deadline_says_when(rig: Rig) -> None:
    assert rig.packer.next_deadline() is None
    rig.put((0, b"\xf8"))
    deadline = rig.packer.next_deadline()
    assert deadline == rig.clock.now + UNITS_PER_MS
    assert rig.packer.poll(deadline - 1) is False
    assert rig.buffers.got == []
    assert rig.packer.poll(deadline) is True
    assert rig.buffers.messages() == [b"\xf8"]
    assert rig.packer.next_deadline() is None


def test_poll_reads_the_clock_when_not_told_the_time(rig: Rig) -> None:
    rig.put((0, b"\xf8"))
    rig.clock.advance(UNITS_PER_MS)
    assert rig.packer.poll() is True


def test_live_input_is_not_held_back_waiting_for_a_full_buffer(rig: Rig) -> None:
    rig.put((0, b"\x90\x3c\x64"))
    rig.clock.advance(UNITS_PER_MS)
    rig.packer.poll()
    assert rig.buffers.messages() == [b"\x90\x3c\x64"]
    assert rig.packer.completed_full == 0


def test_flush_completes_the_current_buffer(rig: Rig) -> None:
    rig.put((0, b"\x90\x3c\x64"))
    rig.packer.flush()
    assert rig.buffers.messages() == [b"\x90\x3c\x64"]
    assert rig.packer.completed_flush == 1


def test_flush_of_an_empty_buffer_delivers_nothing(rig: Rig) -> None:
    rig.packer.flush()
    assert rig.buffers.offered == 0


def test_stop_completes_the_current_buffer_and_later_events_go_back_counted(rig: Rig) -> None:
    rig.put((0, b"\x90\x3c\x64"))
    rig.packer.set_state(KSState.STOP)
    assert rig.buffers.messages() == [b"\x90\x3c\x64"]
    assert rig.packer.completed_stop == 1
    rig.put((0, b"\xf8"), (0, b"\xf8"))
    rig.packer.flush()
    assert rig.buffers.messages() == [b"\x90\x3c\x64"]
    assert rig.packer.discarded == 2


def test_it_always_has_a_buffer_to_fill(rig: Rig) -> None:
    for i in range(50):
        rig.put((i, b"\xf8"))
        rig.packer.flush()
    assert len(rig.buffers.got) == 50


# -- a consumer that falls behind ------------------------------------------------------------


def test_a_refused_buffer_is_queued_and_drain_delivers_the_queue_in_order(rig: Rig) -> None:
    rig.buffers.refuse = True
    for i in range(3):
        rig.put((i, bytes([0xF8 + i])))
        rig.packer.flush()
    assert rig.packer.queued == 3 and rig.buffers.got == []
    rig.buffers.refuse = False
    assert rig.packer.drain() == 3
    assert rig.buffers.messages() == [b"\xf8", b"\xf9", b"\xfa"]
    assert rig.packer.queued == 0 and rig.packer.refused >= 3


def test_queued_buffers_are_offered_again_before_a_new_one(rig: Rig) -> None:
    rig.buffers.refuse = True
    rig.put((0, b"\xf8"))
    rig.packer.flush()
    rig.buffers.refuse = False
    rig.put((1, b"\xfa"))
    rig.packer.flush()
    assert rig.buffers.messages() == [b"\xf8", b"\xfa"]


def test_poll_offers_queued_buffers_again(rig: Rig) -> None:
    rig.buffers.refuse = True
    rig.put((0, b"\xf8"))
    rig.packer.flush()
    rig.buffers.refuse = False
    rig.packer.poll()
    assert rig.buffers.messages() == [b"\xf8"]


def test_a_full_queue_drops_the_oldest_buffer_and_counts_buffers_and_events() -> None:
    r = Rig(queue_size=2)
    r.buffers.refuse = True
    for i in range(5):
        r.put(*[(i, b"\xf8")] * (i + 1))
        r.packer.flush()
    assert r.packer.queued == 2
    assert r.packer.dropped_buffers == 3 and r.packer.dropped_events == 1 + 2 + 3
    r.buffers.refuse = False
    r.packer.drain()
    assert [start for start, _ in r.buffers.got] == [3, 4]
    assert r.packer.events == 15
    assert r.alloc.is_idle()


def test_a_consumer_that_raises_is_counted_logged_and_keeps_its_buffer(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def broken(start: int, data: bytes) -> None:
        calls.append(start)
        if len(calls) == 1:
            raise RuntimeError("consumer broke")

    rig.packer._on_buffer = broken
    rig.put((0, b"\xf8"))
    with caplog.at_level(logging.ERROR, logger="mxfd.core.packer"):
        rig.packer.flush()
    assert rig.packer.consumer_errors == 1 and rig.packer.queued == 1
    assert "consumer broke" in caplog.text
    rig.packer.drain()
    assert calls == [0, 0] and rig.packer.queued == 0


def test_counters_are_attributes_and_a_dict(rig: Rig) -> None:
    rig.put((0, b"\xf8"), (1, b"\x90\x3c\x64"))
    rig.packer.flush()
    c = rig.packer.counters()
    assert (c["events"], c["buffers"], c["delivered"], c["completed_flush"]) == (2, 1, 1, 1)
    assert all(c[k] == getattr(rig.packer, k) for k in c if k not in ("queued", "pending_events"))


# -- construction and wiring ------------------------------------------------------------------


def test_default_wiring_needs_only_the_allocator_and_a_callback() -> None:
    alloc = Allocator(debug=True)
    got: list[tuple[int, bytes]] = []
    packer = Packer(alloc, lambda start, data: got.append((start, data)))
    sink = CaptureSink(alloc)
    sink.connect_output(packer)
    sink.put_message(raw_chain(alloc, b"\x90\x3c\x64\x3e\x64", 1234))
    packer.flush()
    assert decode_buffer(got[0][1], got[0][0]) == [
        (1234, 1, STRUCTURED, b"\x90\x3c\x64"),
        (1234, 1, STRUCTURED, b"\x90\x3e\x64"),
    ]
    assert alloc.is_idle()


def test_a_buffer_that_cannot_hold_the_allocators_largest_event_is_refused() -> None:
    alloc = Allocator(buffer_size=4096)
    with pytest.raises(ValueError, match="buffer_size"):
        Packer(alloc, lambda s, d: None, buffer_size=4096)
    assert Packer(alloc, lambda s, d: None).buffer_size >= event_size(4096)


def test_put_message_of_none_does_nothing(rig: Rig) -> None:
    rig.packer.put_message(None)
    rig.packer.flush()
    assert rig.buffers.offered == 0


# -- properties --------------------------------------------------------------------------------

messages = st.one_of(
    st.tuples(st.integers(0x80, 0xEF), st.integers(0, 127), st.integers(0, 127)).map(
        lambda m: bytes(m[: 2 if m[0] & 0xF0 in (0xC0, 0xD0) else 3])
    ),
    st.integers(0xF8, 0xFF).map(lambda b: bytes([b])),
    st.lists(st.integers(0, 127), max_size=200).map(lambda d: b"\xf0" + bytes(d) + b"\xf7"),
)


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1, 16), messages), min_size=1, max_size=60),
    chain_sizes=st.lists(st.integers(1, 8), min_size=1, max_size=10),
    buffer_size=st.sampled_from([None, 256, 512]),
)
def test_packed_buffers_decode_back_to_the_events_given(
    items: list[tuple[int, int, bytes]], chain_sizes: list[int], buffer_size: Optional[int]
) -> None:
    alloc = Allocator(buffer_size=64, debug=True)
    got = Buffers()
    packer = Packer(alloc, got, buffer_size=buffer_size, clock=ManualClock())
    i = k = 0
    while i < len(items):
        n = chain_sizes[k % len(chain_sizes)]
        head: Optional[KernelEvent] = None
        tail: Optional[KernelEvent] = None
        for t, group, msg in items[i : i + n]:
            for j in range(0, len(msg), 64):  # longer than the allocator's buffer: chunks
                part = msg[j : j + 64]
                e = alloc.make_event(part, t, group, EVENT_INCOMPLETE if j + 64 < len(msg) else 0)
                if tail is None:
                    head = e
                else:
                    tail.next_evt = e
                tail = e
        packer.put_message(head)
        i += n
        k += 1
    packer.flush()
    assert alloc.is_idle()
    expected = [(t, g, m[j : j + 64]) for t, g, m in items for j in range(0, len(m), 64)]
    assert [(t, g, m) for t, g, _, m in got.records()] == expected
    for start, data in got.got:
        assert decode_buffer(data, start)[0][0] == start  # the first record has rtDelta 0
