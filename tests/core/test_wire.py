"""DMUS_EVENTHEADER buffers: the exact Windows layout, and every malformed case refused whole."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mxfd.core.wire import (
    DMUS_EVENT_STRUCTURED,
    EVENT_HEADER_SIZE,
    MAX_BUFFER_SIZE,
    BadBufferError,
    decode_buffer,
    encode_buffer,
    event_size,
    iter_records,
    qword_align,
    structured_flag,
    validate_buffer,
)

NOTE_ON = b"\x90\x3c\x7f"
NOTE_OFF = b"\x80\x3c\x00"


def record(cb: int, group: int, delta: int, flags: int, data: bytes, pad: bool = True) -> bytes:
    """One record written by hand, independently of encode_buffer."""
    raw = struct.pack("<IIqI", cb, group, delta, flags) + data
    if pad:
        raw += bytes(-len(raw) % 8)
    return raw


def bad(data: bytes) -> BadBufferError:
    with pytest.raises(BadBufferError) as info:
        validate_buffer(data)
    with pytest.raises(BadBufferError):
        decode_buffer(data, 0)
    return info.value


# -- layout ---------------------------------------------------------------------


def test_the_header_is_20_little_endian_bytes_cbevent_group_rtdelta_flags() -> None:
    assert EVENT_HEADER_SIZE == 20
    start, data = encode_buffer([(1000, 2, NOTE_ON)])
    assert start == 1000
    assert data[:20] == bytes.fromhex("03000000" "02000000" "0000000000000000" "01000000")
    assert data[20:23] == NOTE_ON
    assert data[23:] == b"\x00"  # padding to the QWORD boundary


def test_two_3_byte_structured_events_take_48_bytes_as_on_windows() -> None:
    _, data = encode_buffer([(0, 1, NOTE_ON), (0, 1, NOTE_OFF)])
    assert len(data) == 48 == 2 * event_size(3)
    assert data == record(3, 1, 0, 1, NOTE_ON) + record(3, 1, 0, 1, NOTE_OFF)


def test_every_record_starts_on_a_qword_boundary() -> None:
    sysex = b"\xf0" + bytes(range(9)) + b"\xf7"  # 11 bytes: 20 + 11 = 31 -> 32
    _, data = encode_buffer([(0, 1, sysex), (5, 1, b"\xf8"), (6, 1, NOTE_ON)])
    offsets = [off for off, *_ in iter_records(data)]
    assert offsets == [0, 32, 56]
    assert all(off % 8 == 0 for off in offsets)
    assert len(data) == 80


def test_qword_align_and_event_size_follow_the_macros() -> None:
    assert [qword_align(n) for n in (0, 1, 7, 8, 9, 23, 24)] == [0, 8, 8, 8, 16, 24, 24]
    assert event_size(1) == event_size(4) == 24
    assert event_size(5) == 32
    assert event_size(12) == 32 and event_size(13) == 40


def test_rt_delta_is_relative_to_the_first_records_time() -> None:
    start, data = encode_buffer([(10_000, 1, NOTE_ON), (12_500, 1, NOTE_OFF), (9_000, 1, b"\xf8")])
    assert start == 10_000
    deltas = [delta for _, _, _, delta, _ in iter_records(data)]
    assert deltas == [0, 2_500, -1_000]


def test_decode_gives_absolute_times_from_the_buffer_start_time() -> None:
    _, data = encode_buffer([(0, 1, NOTE_ON), (2_500, 7, NOTE_OFF)])
    assert decode_buffer(data, 50_000) == [
        (50_000, 1, DMUS_EVENT_STRUCTURED, NOTE_ON),
        (52_500, 7, DMUS_EVENT_STRUCTURED, NOTE_OFF),
    ]


def test_channel_common_and_real_time_are_structured_and_sysex_is_not() -> None:
    for msg in (NOTE_ON, b"\xc0\x05", b"\xf2\x00\x10", b"\xf6", b"\xf8", b"\xfe", b"\xf4"):
        assert structured_flag(msg) == DMUS_EVENT_STRUCTURED
    for msg in (b"\xf0\x7e\x7f\xf7", b"\xf7", b"\x3c\x40", b""):
        assert structured_flag(msg) == 0
    _, data = encode_buffer([(0, 1, b"\xf0\x7e\xf7")])
    assert data[16:20] == b"\x00\x00\x00\x00"


def test_an_empty_record_list_encodes_to_an_empty_buffer() -> None:
    assert encode_buffer([]) == (0, b"")
    assert decode_buffer(b"", 123) == []
    assert validate_buffer(b"") == 0


def test_a_buffer_may_end_right_after_its_last_events_data() -> None:
    data = record(3, 1, 0, 1, NOTE_ON) + record(1, 1, 0, 1, b"\xf8", pad=False)
    assert len(data) == 45
    assert decode_buffer(data, 0)[1] == (0, 1, 1, b"\xf8")


def test_windows_style_structured_records_with_extra_bytes_decode_as_written() -> None:
    # Wine packs a program change as a DWORD with cbEvent 3: the wire keeps the 3 bytes.
    data = record(3, 1, 0, 1, b"\xc0\x05\x00")
    assert decode_buffer(data, 0) == [(0, 1, 1, b"\xc0\x05\x00")]


# -- encoding refuses what cannot be sent ------------------------------------------


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([(0, 1, b"")], "1..65535"),
        ([(0, 1, bytes(0x10000))], "1..65535"),
        ([(0, 0x10000, NOTE_ON)], "channel group"),
        ([(0, -1, NOTE_ON)], "channel group"),
        ([(0, 1, b"\x90\x3c\x40\x00\x00")], "not a short message"),
        ([(0, 1, b"\xf0" + bytes(0xFFFE))] * 17, "buffer limit"),
    ],
)
def test_encode_refuses_records_the_wire_cannot_carry(records: list[tuple[int, int, bytes]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_buffer(records)


# -- malformed buffers: one error type, naming the byte offset ---------------------


def test_bad_buffer_error_is_a_value_error_with_the_offset() -> None:
    err = BadBufferError(24, "why")
    assert isinstance(err, ValueError)
    assert err.offset == 24 and err.reason == "why"
    assert "byte 24" in str(err)


def test_a_truncated_header_is_refused_at_its_offset() -> None:
    err = bad(record(3, 1, 0, 1, NOTE_ON) + bytes(10))
    assert err.offset == 24
    assert "truncated header" in str(err) and "byte 24" in str(err)


def test_cbevent_past_the_end_is_refused_at_its_record() -> None:
    err = bad(record(3, 1, 0, 1, NOTE_ON) + record(100, 1, 0, 0, b"\xf0\x01\x02\x03", pad=False))
    assert err.offset == 24
    assert "past the end" in err.reason


def test_a_length_that_ends_inside_the_padding_is_refused_as_misaligned() -> None:
    data = record(1, 1, 0, 1, b"\xf8") + record(1, 1, 0, 1, b"\xf8", pad=False) + b"\x00"
    assert len(data) == 46  # the second record's data ends at 45; its padding would end at 48
    err = bad(data)
    assert err.offset == 45
    assert "misaligned" in err.reason


def test_a_zero_length_event_is_refused() -> None:
    err = bad(record(3, 1, 0, 1, NOTE_ON) + record(0, 1, 0, 0, b"", pad=False) + bytes(4))
    assert err.offset == 24
    assert "zero-length" in err.reason


@pytest.mark.parametrize("cb", [0x10000, 0x7FFF_FFFF, 0xFFFF_FFFF])
def test_absurd_event_sizes_are_refused(cb: int) -> None:
    err = bad(record(cb, 1, 0, 0, b"\xf0\x00\x00\x00"))
    assert err.offset == 0
    assert "exceeds" in err.reason


def test_an_absurdly_large_buffer_is_refused_before_parsing() -> None:
    err = bad(bytes(MAX_BUFFER_SIZE + 8))
    assert err.offset == 0
    assert "limit" in err.reason


def test_unknown_flags_are_refused_at_the_flags_field() -> None:
    err = bad(record(3, 1, 0, 1, NOTE_ON) + record(3, 1, 0, 0x2, NOTE_ON))
    assert err.offset == 24 + 16
    assert "unknown flags" in err.reason


def test_a_channel_group_beyond_a_ushort_is_refused() -> None:
    err = bad(record(3, 0x10000, 0, 1, NOTE_ON))
    assert err.offset == 4
    assert "channel group" in err.reason


def test_a_structured_event_without_a_status_byte_is_refused() -> None:
    err = bad(record(3, 1, 0, 1, NOTE_ON) + record(2, 1, 0, 1, b"\x3c\x40"))
    assert err.offset == 24 + 20
    assert "data byte" in err.reason


def test_structured_sysex_and_oversized_structured_events_are_refused() -> None:
    assert bad(record(3, 1, 0, 1, b"\xf0\x01\xf7")).offset == 20
    assert bad(record(3, 1, 0, 1, b"\xf7\x00\x00")).offset == 20
    err = bad(record(5, 1, 0, 1, b"\x90\x3c\x40\x00\x00"))
    assert err.offset == 0
    assert "structured event of 5 bytes" in err.reason


def test_nothing_of_a_malformed_buffer_is_returned() -> None:
    good = record(3, 1, 0, 1, NOTE_ON) * 3
    with pytest.raises(BadBufferError):
        decode_buffer(good + bytes(4), 0)  # the last record is fine, the tail is not


# -- property: encode then decode is the identity --------------------------------------

channel_message = st.one_of(
    st.builds(
        lambda s, c, a, b: bytes([s | c, a, b]),
        st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0xE0]),
        st.integers(0, 15),
        st.integers(0, 127),
        st.integers(0, 127),
    ),
    st.builds(
        lambda s, c, a: bytes([s | c, a]), st.sampled_from([0xC0, 0xD0]), st.integers(0, 15), st.integers(0, 127)
    ),
)
system_message = st.sampled_from([b"\xf1\x10", b"\xf2\x00\x40", b"\xf3\x05", b"\xf6", b"\xf8", b"\xfa", b"\xfe"])
sysex = st.binary(max_size=300).map(lambda body: b"\xf0" + bytes(b & 0x7F for b in body) + b"\xf7")
raw_bytes = st.binary(min_size=1, max_size=40).filter(lambda m: not structured_flag(m))
any_message = st.one_of(channel_message, system_message, sysex, raw_bytes)
records = st.lists(
    st.tuples(st.integers(-(2**40), 2**40), st.integers(0, 0xFFFF), any_message), max_size=40
)


@settings(max_examples=200, deadline=None)
@given(records)
def test_encode_then_decode_is_the_identity(recs: list[tuple[int, int, bytes]]) -> None:
    start, data = encode_buffer(recs)
    assert len(data) % 8 == 0
    assert decode_buffer(data, start) == [(t, g, structured_flag(m), m) for t, g, m in recs]
    assert validate_buffer(data) == len(recs)


@settings(max_examples=200, deadline=None)
@given(records, st.integers(0, 2**40))
def test_decoding_any_start_time_shifts_every_event_alike(recs: list[tuple[int, int, bytes]], base: int) -> None:
    start, data = encode_buffer(recs)
    assert [r[0] for r in decode_buffer(data, base)] == [t - start + base for t, _, _ in recs]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_either_decode_or_raise_bad_buffer_error(data: bytes) -> None:
    try:
        decoded = decode_buffer(data, 0)
    except BadBufferError as err:
        assert 0 <= err.offset <= len(data)
    else:
        assert len(decoded) == validate_buffer(data)
