"""Unpacker: one buffer in, one event per MIDI message out, all or nothing."""

from __future__ import annotations

import struct
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxfd.core.allocator import Allocator, AllocatorExhausted
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE
from mxfd.core.mxf import KSState
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import BadBufferError, encode_buffer
from tests.core.helpers import Recorder, Seen, chain_of

NOTE_ON = b"\x90\x3c\x7f"
NOTE_OFF = b"\x80\x3c\x00"


def record(cb: int, group: int, delta: int, flags: int, data: bytes) -> bytes:
    raw = struct.pack("<IIqI", cb, group, delta, flags) + data
    return raw + bytes(-len(raw) % 8)


@pytest.fixture
def alloc() -> Iterator[Allocator]:
    a = Allocator(pool_size=16, buffer_size=32, debug=True)
    yield a
    assert a.is_idle(), a.counters()


@pytest.fixture
def sink() -> Recorder:
    return Recorder()


@pytest.fixture
def unpacker(alloc: Allocator, sink: Recorder) -> Unpacker:
    u = Unpacker(alloc)
    u.connect_output(sink)
    return u


def test_each_record_becomes_one_event_passed_on_as_one_chain(unpacker: Unpacker, sink: Recorder) -> None:
    start, data = encode_buffer([(1000, 1, NOTE_ON), (1500, 2, b"\xc0\x05"), (2000, 1, NOTE_OFF)])
    assert unpacker.unpack(data, start) == 3
    assert len(sink.chains) == 1
    assert [(s.pres_time, s.channel_group, s.data) for s in sink.chains[0]] == [
        (1000, 1, NOTE_ON),
        (1500, 2, b"\xc0\x05"),
        (2000, 1, NOTE_OFF),
    ]
    assert all(s.flags == EVENT_COMPLETE for s in sink.seen)


def test_presentation_time_is_the_start_time_plus_rt_delta(unpacker: Unpacker, sink: Recorder) -> None:
    data = record(3, 1, 0, 1, NOTE_ON) + record(3, 1, 250, 1, NOTE_OFF) + record(1, 1, -50, 1, b"\xf8")
    unpacker.unpack(data, 10_000_000)
    assert [s.pres_time for s in sink.seen] == [10_000_000, 10_000_250, 9_999_950]


def test_the_channel_group_is_carried_up_to_a_ushort(unpacker: Unpacker, sink: Recorder) -> None:
    unpacker.unpack(record(3, 0xFFFF, 0, 1, NOTE_ON) + record(3, 0, 0, 1, NOTE_ON), 0)
    assert [s.channel_group for s in sink.seen] == [0xFFFF, 0]


def test_structured_length_comes_from_the_status_byte_not_cbevent(unpacker: Unpacker, sink: Recorder) -> None:
    # Wine writes every structured event as a 3-byte DWORD; extra bytes are padding.
    data = (
        record(3, 1, 0, 1, b"\xc0\x05\x00")
        + record(3, 1, 0, 1, b"\xf8\x00\x00")
        + record(4, 1, 0, 1, b"\x90\x3c\x40\x00")
        + record(3, 1, 0, 1, b"\xd0\x30\x00")
        + record(2, 1, 0, 1, b"\xf3\x01")
        + record(1, 1, 0, 1, b"\xf6")
    )
    unpacker.unpack(data, 0)
    assert sink.messages == [b"\xc0\x05", b"\xf8", b"\x90\x3c\x40", b"\xd0\x30", b"\xf3\x01", b"\xf6"]


def test_a_structured_record_too_short_for_its_status_is_malformed(unpacker: Unpacker, sink: Recorder) -> None:
    data = record(3, 1, 0, 1, NOTE_ON) + record(2, 1, 0, 1, b"\x90\x3c")
    with pytest.raises(BadBufferError) as info:
        unpacker.unpack(data, 0)
    assert info.value.offset == 24
    assert "needs 3" in info.value.reason
    assert sink.chains == []


def test_a_status_byte_inside_a_structured_message_is_malformed(unpacker: Unpacker, sink: Recorder) -> None:
    with pytest.raises(BadBufferError) as info:
        unpacker.unpack(record(3, 1, 0, 1, b"\x90\x3c\x90"), 0)
    assert info.value.offset == 22
    assert sink.chains == []


def test_unstructured_data_up_to_the_buffer_size_is_one_complete_event(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator
) -> None:
    short = b"\xf0\x7e\xf7"
    full = b"\xf0" + bytes(alloc.buffer_size - 2) + b"\xf7"
    start, data = encode_buffer([(0, 1, short), (0, 1, full)])
    assert unpacker.unpack(data, start) == 2
    assert sink.messages == [short, full]
    assert [s.flags for s in sink.seen] == [EVENT_COMPLETE, EVENT_COMPLETE]


def test_long_unstructured_data_is_split_into_incomplete_chunks_with_one_time_stamp(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator
) -> None:
    size = alloc.buffer_size
    sysex = b"\xf0" + bytes(i & 0x7F for i in range(2 * size + 5)) + b"\xf7"  # 2 full chunks + 7 bytes
    start, data = encode_buffer([(777, 3, sysex)])
    assert unpacker.unpack(data, start) == 3
    chunks = sink.chains[0]
    assert [len(c.data) for c in chunks] == [size, size, 7]
    assert [c.flags for c in chunks] == [EVENT_INCOMPLETE, EVENT_INCOMPLETE, EVENT_COMPLETE]
    assert {c.pres_time for c in chunks} == {777}
    assert {c.channel_group for c in chunks} == {3}
    assert b"".join(c.data for c in chunks) == sysex


def test_data_of_an_exact_multiple_of_the_buffer_size_has_no_empty_last_chunk(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator
) -> None:
    raw = bytes(range(2 * alloc.buffer_size))
    start, data = encode_buffer([(0, 1, raw)])
    assert unpacker.unpack(data, start) == 2
    assert [c.flags for c in sink.seen] == [EVENT_INCOMPLETE, EVENT_COMPLETE]
    assert b"".join(sink.messages) == raw


def test_raw_unstructured_bytes_pass_as_they_are(unpacker: Unpacker, sink: Recorder) -> None:
    unpacker.unpack(record(5, 1, 0, 0, b"\x3c\x40\x3e\x40\xf8"), 0)  # running-status data, a clock byte
    assert sink.messages == [b"\x3c\x40\x3e\x40\xf8"]


def test_byte_position_is_the_records_end_in_the_input_stream(unpacker: Unpacker, sink: Recorder) -> None:
    start, first = encode_buffer([(0, 1, NOTE_ON), (1, 1, b"\xf0" + bytes(10) + b"\xf7")])  # 24 + 32 bytes
    unpacker.unpack(first, start)
    start, second = encode_buffer([(2, 1, NOTE_OFF)])
    unpacker.unpack(second, start)
    assert [s.byte_position for s in sink.seen] == [24, 56, 80]
    assert unpacker.byte_position == 80


def test_byte_position_of_leading_chunks_is_their_own_end(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator
) -> None:
    size = alloc.buffer_size
    raw = bytes(2 * size + 1)
    start, data = encode_buffer([(0, 1, raw)])
    unpacker.unpack(data, start)
    assert [s.byte_position for s in sink.seen] == [20 + size, 20 + 2 * size, len(data)]


def test_a_buffer_without_trailing_padding_ends_its_last_record(unpacker: Unpacker, sink: Recorder) -> None:
    data = record(3, 1, 0, 1, NOTE_ON) + struct.pack("<IIqI", 1, 1, 0, 1) + b"\xf8"
    unpacker.unpack(data, 0)
    assert [s.byte_position for s in sink.seen] == [24, 45]
    assert unpacker.byte_position == 45


def test_byte_position_restarts_on_stop(unpacker: Unpacker, sink: Recorder) -> None:
    start, data = encode_buffer([(0, 1, NOTE_ON)])
    unpacker.unpack(data, start)
    unpacker.set_state(KSState.STOP)
    unpacker.set_state(KSState.RUN)
    unpacker.unpack(data, start)
    assert [s.byte_position for s in sink.seen] == [24, 24]


def test_an_empty_buffer_gives_no_events(unpacker: Unpacker, sink: Recorder) -> None:
    assert unpacker.unpack(b"", 0) == 0
    assert sink.chains == []
    assert unpacker.buffers == 1


# -- all or nothing ---------------------------------------------------------------------


def test_a_malformed_buffer_raises_and_applies_nothing(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator
) -> None:
    good = record(3, 1, 0, 1, NOTE_ON) + record(16, 1, 0, 0, b"\xf0" + bytes(14) + b"\xf7")
    with pytest.raises(BadBufferError) as info:
        unpacker.unpack(good + record(3, 1, 0, 0x80, NOTE_OFF), 0)
    assert info.value.offset == len(good) + 16
    assert sink.chains == []
    assert alloc.in_use == 0 and alloc.buffers_in_use == 0
    assert unpacker.bad_buffers == 1
    assert unpacker.byte_position == 0
    assert unpacker.events == 0


def test_back_pressure_when_the_allocator_cannot_supply_the_events(sink: Recorder) -> None:
    alloc = Allocator(pool_size=2, max_pool_size=3, buffer_size=16)
    unpacker = Unpacker(alloc)
    unpacker.connect_output(sink)
    held = chain_of(alloc, (0, b"\xf8"))
    start, data = encode_buffer([(0, 1, NOTE_ON), (1, 1, NOTE_OFF), (2, 1, b"\xf8")])
    with pytest.raises(AllocatorExhausted, match="needs 3 events"):
        unpacker.unpack(data, start)
    assert sink.chains == []
    assert alloc.in_use == 1  # only what the test holds
    assert alloc.exhausted == 0  # refused before taking anything
    assert unpacker.back_pressure == 1
    alloc.put_message(held)
    assert unpacker.unpack(data, start) == 3  # the same buffer, retried, goes through whole
    assert len(sink.chains) == 1 and len(sink.chains[0]) == 3
    assert alloc.is_idle()


def test_back_pressure_when_data_buffers_run_out(sink: Recorder) -> None:
    alloc = Allocator(pool_size=8, buffer_size=16, buffer_pool_size=1, max_buffers=2)
    unpacker = Unpacker(alloc)
    unpacker.connect_output(sink)
    held = alloc.get_buffer()
    start, data = encode_buffer([(0, 1, bytes(12)), (0, 1, bytes(12))])
    with pytest.raises(AllocatorExhausted, match="data buffers"):
        unpacker.unpack(data, start)
    assert sink.chains == []
    assert alloc.in_use == 0 and alloc.buffers_in_use == 1
    alloc.put_buffer(held)
    assert unpacker.unpack(data, start) == 2
    assert alloc.is_idle()


def test_a_race_past_the_availability_check_still_applies_nothing(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = chain_of(alloc, *[(0, b"\xf8")] * (alloc.max_pool_size - 1))
    monkeypatch.setattr(alloc, "available", lambda: 1000)  # another thread drains it after the check
    start, data = encode_buffer([(0, 1, NOTE_ON), (1, 1, NOTE_OFF)])
    with pytest.raises(AllocatorExhausted):
        unpacker.unpack(data, start)
    assert sink.chains == []
    assert alloc.in_use == alloc.max_pool_size - 1
    assert unpacker.back_pressure == 1
    alloc.put_message(taken)


def test_running_out_of_data_buffers_half_way_still_applies_nothing(
    sink: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    alloc = Allocator(pool_size=8, buffer_size=16, buffer_pool_size=1, max_buffers=2)
    unpacker = Unpacker(alloc)
    unpacker.connect_output(sink)
    held = alloc.get_buffer()
    monkeypatch.setattr(alloc, "buffers_available", lambda: 1000)  # drained after the check
    start, data = encode_buffer([(0, 1, NOTE_ON), (1, 1, bytes(12)), (2, 1, bytes(12)), (3, 1, NOTE_OFF)])
    with pytest.raises(AllocatorExhausted):
        unpacker.unpack(data, start)
    assert sink.chains == []
    alloc.put_buffer(held)
    assert alloc.is_idle()
    assert unpacker.back_pressure == 1
    assert unpacker.byte_position == 0


# -- states and counters --------------------------------------------------------------------


def test_when_stopped_buffers_are_validated_then_discarded_and_counted(
    unpacker: Unpacker, sink: Recorder
) -> None:
    unpacker.set_state(KSState.STOP)
    start, data = encode_buffer([(0, 1, NOTE_ON), (1, 1, NOTE_OFF)])
    assert unpacker.unpack(data, start) == 0
    assert unpacker.discarded == 2
    with pytest.raises(BadBufferError):
        unpacker.unpack(data + bytes(3), start)
    assert sink.chains == []


def test_when_stopped_put_message_returns_events_to_the_allocator(
    unpacker: Unpacker, sink: Recorder, alloc: Allocator
) -> None:
    unpacker.set_state(KSState.STOP)
    unpacker.put_message(chain_of(alloc, (0, NOTE_ON), (1, NOTE_OFF)))
    assert unpacker.discarded == 2
    assert sink.chains == []


@pytest.mark.parametrize("state", [KSState.ACQUIRE, KSState.PAUSE])
def test_the_unpacker_does_not_hold_in_acquire_or_pause(unpacker: Unpacker, sink: Recorder, state: KSState) -> None:
    unpacker.set_state(state)
    start, data = encode_buffer([(0, 1, NOTE_ON)])
    assert unpacker.unpack(data, start) == 1
    assert sink.messages == [NOTE_ON]  # holding is the sequencer's job


def test_put_message_passes_chains_on_and_ignores_none(unpacker: Unpacker, sink: Recorder, alloc: Allocator) -> None:
    unpacker.put_message(None)
    unpacker.put_message(chain_of(alloc, (0, NOTE_ON), (1, NOTE_OFF)))
    assert [len(c) for c in sink.chains] == [2]


def test_counters_count_buffers_events_and_refusals(unpacker: Unpacker) -> None:
    start, data = encode_buffer([(0, 1, NOTE_ON), (1, 1, NOTE_OFF)])
    unpacker.unpack(data, start)
    unpacker.unpack(data, start)
    with pytest.raises(BadBufferError):
        unpacker.unpack(b"\x00", 0)
    c = unpacker.counters()
    assert (c["buffers"], c["events"], c["bad_buffers"], c["back_pressure"], c["discarded"]) == (2, 4, 1, 0, 0)
    assert c["byte_position"] == 2 * len(data)


# -- property: unpacking gives back exactly what was encoded ----------------------------------

short_message = st.one_of(
    st.builds(
        lambda s, c, a, b: bytes([s | c, a, b]),
        st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0xE0]),
        st.integers(0, 15),
        st.integers(0, 127),
        st.integers(0, 127),
    ),
    st.builds(lambda s, a: bytes([s, a]), st.sampled_from([0xC3, 0xD9, 0xF1, 0xF3]), st.integers(0, 127)),
    st.sampled_from([b"\xf8", b"\xfa", b"\xfc", b"\xf6", b"\xf2\x01\x02"]),
)
long_message = st.binary(min_size=1, max_size=200).map(lambda b: b"\xf0" + bytes(x & 0x7F for x in b) + b"\xf7")


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10**9), st.integers(0, 0xFFFF), st.one_of(short_message, long_message)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 2**40),
)
def test_unpacking_gives_back_every_encoded_message(recs: list[tuple[int, int, bytes]], base: int) -> None:
    alloc = Allocator(pool_size=16, buffer_size=64, debug=True)
    sink = Recorder()
    unpacker = Unpacker(alloc)
    unpacker.connect_output(sink)
    start, data = encode_buffer(recs)
    n = unpacker.unpack(data, base)
    assert len(sink.chains) == 1
    assert n == len(sink.chains[0])
    # Rejoin chunks: an INCOMPLETE event continues in the next one.
    messages: list[tuple[int, int, bytes]] = []
    pending = b""
    for s in sink.seen:
        pending += s.data
        if not s.flags & EVENT_INCOMPLETE:
            messages.append((s.pres_time, s.channel_group, pending))
            pending = b""
    assert pending == b""
    assert messages == [(t - start + base, g, m) for t, g, m in recs]
    assert sink.seen[-1] == Seen(sink.seen[-1].pres_time, recs[-1][1], 0, sink.seen[-1].data, len(data))
    assert alloc.is_idle()


def test_a_buffer_larger_than_the_allocator_could_ever_hold_is_refused_as_bad(sink: Recorder) -> None:
    alloc = Allocator(pool_size=2, max_pool_size=3, buffer_size=16, buffer_pool_size=1, max_buffers=1)
    unpacker = Unpacker(alloc)
    unpacker.connect_output(sink)
    start, data = encode_buffer([(t, 1, NOTE_ON) for t in range(4)])
    with pytest.raises(BadBufferError, match="can ever hold"):
        unpacker.unpack(data, start)  # retrying would never help: not back-pressure
    start, data = encode_buffer([(0, 1, bytes(12)), (1, 1, bytes(12))])
    with pytest.raises(BadBufferError, match="can ever hold"):
        unpacker.unpack(data, start)
    assert (unpacker.bad_buffers, unpacker.back_pressure) == (2, 0)
    assert sink.chains == []
    assert alloc.is_idle()
