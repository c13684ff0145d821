"""The client socket protocol: framing, the versioned hello, garbage."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxfd.client.protocol import (
    FLAG_HISTORY,
    FRAME_HEADER_SIZE,
    MAX_CONTROL_SIZE,
    MAX_ECHO,
    MAX_JSON_DEPTH,
    NEED_DATA,
    PROTOCOL_VERSION,
    BadFrame,
    Control,
    FrameDecoder,
    FrameEncoder,
    HelloRefused,
    MidiBuffer,
    ProtocolError,
    check_hello,
    clip,
    encode_buffer_frame,
    encode_control,
    make_hello,
    refusal,
)
from mxfd.core.wire import MAX_BUFFER_SIZE, encode_buffer

NOTE_ON = bytes([0x90, 60, 100])


def decode_all(data: bytes, chunk: int | None = None) -> list[Any]:
    d = FrameDecoder()
    out: list[Any] = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        d.receive_data(piece)
        while (ev := d.next_event()) is not NEED_DATA:
            out.append(ev)
    return out


def a_buffer(n: int = 3, t0: int = 12345) -> tuple[int, bytes]:
    return encode_buffer([(t0 + i * 100, 1, NOTE_ON) for i in range(n)])


# -- framing ----------------------------------------------------------------------------


def test_a_control_frame_round_trips() -> None:
    msg = {"type": "status", "id": 7}
    assert decode_all(encode_control(msg)) == [Control(msg)]


def test_a_buffer_frame_carries_the_start_time_and_the_exact_buffer_bytes() -> None:
    start, data = a_buffer()
    frame = encode_buffer_frame(start, data)
    assert len(frame) == FRAME_HEADER_SIZE + 8 + len(data)
    assert frame[FRAME_HEADER_SIZE : FRAME_HEADER_SIZE + 8] == struct.pack("<q", start)
    assert frame[FRAME_HEADER_SIZE + 8 :] == data
    assert decode_all(frame) == [MidiBuffer(start, data)]


def test_negative_start_times_survive() -> None:
    _, data = a_buffer()
    assert decode_all(encode_buffer_frame(-5, data)) == [MidiBuffer(-5, data)]


def test_capture_frames_carry_source_and_history_flag() -> None:
    start, data = a_buffer()
    (ev,) = decode_all(encode_buffer_frame(start, data, source=3, flags=FLAG_HISTORY))
    assert ev == MidiBuffer(start, data, 3, FLAG_HISTORY) and ev.history


def test_the_encoder_sends_events_as_frames() -> None:
    start, data = a_buffer()
    enc = FrameEncoder()
    wire = enc.send(Control({"type": "time"})) + enc.send(MidiBuffer(start, data))
    assert decode_all(wire) == [Control({"type": "time"}), MidiBuffer(start, data)]


def test_frames_split_at_every_byte_decode_the_same() -> None:
    start, data = a_buffer(5)
    wire = encode_control({"type": "hello", "protocol": 1}) + encode_buffer_frame(start, data) + encode_control(
        {"type": "sync"}
    )
    whole = decode_all(wire)
    assert len(whole) == 3
    assert decode_all(wire, chunk=1) == whole


@given(
    st.lists(
        st.one_of(
            st.builds(lambda t, n: ("B", t, n), st.integers(-(2**40), 2**40), st.integers(1, 20)),
            st.builds(lambda k: ("J", k), st.text(max_size=30)),
        ),
        max_size=8,
    ),
    st.lists(st.integers(1, 64), min_size=1, max_size=50),
)
def test_any_fragmentation_of_a_frame_stream_gives_the_same_events(items: list[Any], cuts: list[int]) -> None:
    wire = b""
    expected: list[Any] = []
    for item in items:
        if item[0] == "B":
            start, data = encode_buffer([(item[1] + i, 1, NOTE_ON) for i in range(item[2])])
            wire += encode_buffer_frame(start, data)
            expected.append(MidiBuffer(start, data))
        else:
            msg = {"type": "x", "text": item[1]}
            wire += encode_control(msg)
            expected.append(Control(msg))
    d = FrameDecoder()
    got: list[Any] = []
    pos = 0
    i = 0
    while pos < len(wire):
        n = cuts[i % len(cuts)]
        i += 1
        d.receive_data(wire[pos : pos + n])
        pos += n
        while (ev := d.next_event()) is not NEED_DATA:
            got.append(ev)
    assert got == expected
    assert d.stream_offset == len(wire)


def test_encoding_refuses_what_the_daemon_would_discard() -> None:
    with pytest.raises(ValueError, match="type"):
        encode_control({"id": 1})
    with pytest.raises(ValueError, match="exceeds"):
        encode_buffer_frame(0, bytes(MAX_BUFFER_SIZE + 8))
    with pytest.raises(ValueError, match="exceeds"):
        encode_control({"type": "x", "pad": "a" * MAX_CONTROL_SIZE})


# -- frames that are delimited but unusable: an error, and the stream goes on ----------------


def control_frame(payload: bytes) -> bytes:
    return struct.pack("<2sBBII", b"MX", ord("J"), 0, 0, len(payload)) + payload


def test_a_control_frame_that_is_not_json_is_a_bad_frame_and_the_next_frame_decodes() -> None:
    wire = control_frame(b"{not json") + encode_control({"type": "time"})
    bad, good = decode_all(wire)
    assert isinstance(bad, BadFrame) and bad.kind == "control" and "not JSON" in bad.reason
    assert good == Control({"type": "time"})


@pytest.mark.parametrize(
    ("payload", "words"),
    [(b"\xff\xfe", "not UTF-8"), (b"[1, 2]", "not an object"), (b'{"id": 1}', "no string 'type'")],
)
def test_unusable_control_payloads_are_named(payload: bytes, words: str) -> None:
    (bad,) = decode_all(control_frame(payload))
    assert isinstance(bad, BadFrame) and words in bad.reason


def deep(n: int) -> bytes:
    return b'{"type": "t", "x": ' + b"[" * (n - 1) + b"]" * (n - 1) + b"}"


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b'{"type": "t", "id": NaN}', "NaN is not a number"),
        (b'{"type": "t", "id": -Infinity}', "-Infinity is not a number"),
        (b'{"type": "t", "id": 1e999}', "'1e999' is out of range"),
        (deep(MAX_JSON_DEPTH + 1), f"nested more than {MAX_JSON_DEPTH} deep"),
        (b"[" * 60_000, f"nested more than {MAX_JSON_DEPTH} deep"),
        (b'{"type": "t", "id": ' + b"9" * 5000 + b"}", "digits"),
    ],
)
def test_json_no_reply_could_carry_is_a_bad_frame_and_the_next_frame_decodes(payload: bytes, words: str) -> None:
    bad, good = decode_all(control_frame(payload) + encode_control({"type": "time"}))
    assert isinstance(bad, BadFrame) and words in bad.reason and len(bad.reason) < 200
    assert good == Control({"type": "time"})


def test_json_at_the_depth_limit_and_brackets_inside_strings_are_accepted() -> None:
    (at_limit,) = decode_all(control_frame(deep(MAX_JSON_DEPTH)))
    assert isinstance(at_limit, Control)
    text = json.dumps({"type": "t", "name": "[{" * 1000 + '\\"]'})
    (in_string,) = decode_all(control_frame(text.encode()))
    assert in_string == Control(json.loads(text))


def test_clip_cuts_what_may_be_echoed() -> None:
    assert clip("x" * 1000) == repr("x" * 1000)[:MAX_ECHO - 1] + "…"
    assert clip([1, 2]) == "[1, 2]"


def test_a_buffer_frame_without_a_start_time_is_a_bad_frame() -> None:
    wire = struct.pack("<2sBBII", b"MX", ord("B"), 0, 0, 3) + b"abc" + encode_control({"type": "time"})
    bad, good = decode_all(wire)
    assert isinstance(bad, BadFrame) and bad.kind == "buffer" and "start time" in bad.reason
    assert good == Control({"type": "time"})


@pytest.mark.parametrize("chunk", [None, 1000, 65536])
def test_an_oversized_buffer_is_skipped_whole_without_being_held(chunk: int | None) -> None:
    size = MAX_BUFFER_SIZE + 4096
    wire = struct.pack("<2sBBII", b"MX", ord("B"), 0, 0, 8 + size) + bytes(8 + size) + encode_control({"type": "ok"})
    d = FrameDecoder()
    got: list[Any] = []
    pieces = [wire] if chunk is None else [wire[i : i + chunk] for i in range(0, len(wire), chunk)]
    most = 0
    for piece in pieces:
        d.receive_data(piece)
        most = max(most, d.buffered)
        while (ev := d.next_event()) is not NEED_DATA:
            got.append(ev)
    bad, good = got
    assert isinstance(bad, BadFrame) and bad.offset == 0 and f"{size} bytes exceeds" in bad.reason
    assert good == Control({"type": "ok"})
    if chunk is not None:
        assert most < 2 * chunk + FRAME_HEADER_SIZE
    assert d.stream_offset == len(wire)


# -- garbage: framing is lost, the decoder says where and stays broken ---------------------


@pytest.mark.parametrize(
    ("wire", "words"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "sync"),
        (struct.pack("<2sBBII", b"MX", ord("Q"), 0, 0, 0), "unknown frame kind"),
        (struct.pack("<2sBBII", b"MX", ord("J"), 1, 0, 2) + b"{}", "nonzero flags"),
        (struct.pack("<2sBBII", b"MX", ord("B"), 0x80, 0, 8) + bytes(8), "unknown flags"),
        (struct.pack("<2sBBII", b"MX", ord("J"), 0, 0, MAX_CONTROL_SIZE + 1), "exceeds"),
        (struct.pack("<2sBBII", b"MX", ord("B"), 0, 0, 0xFFFFFFFF), "absurd"),
    ],
)
def test_garbage_raises_a_protocol_error_naming_the_problem(wire: bytes, words: str) -> None:
    d = FrameDecoder()
    d.receive_data(wire)
    with pytest.raises(ProtocolError, match=words) as e:
        d.next_event()
    assert e.value.offset == 0
    with pytest.raises(ProtocolError):
        d.next_event()


def test_garbage_is_noticed_on_its_first_bytes() -> None:
    d = FrameDecoder()
    d.receive_data(b"\x00")
    with pytest.raises(ProtocolError, match="sync"):
        d.next_event()


def test_a_protocol_error_gives_the_stream_offset_of_the_bad_frame() -> None:
    good = encode_control({"type": "time"})
    d = FrameDecoder()
    d.receive_data(good + b"garbage-garbage")
    assert d.next_event() == Control({"type": "time"})
    with pytest.raises(ProtocolError) as e:
        d.next_event()
    assert e.value.offset == len(good)


# -- the hello ----------------------------------------------------------------------------


def test_the_current_hello_is_accepted() -> None:
    assert check_hello(make_hello("test")) == PROTOCOL_VERSION


@pytest.mark.parametrize("version", [0, 2, 99])
def test_an_unsupported_version_is_refused_in_words(version: int) -> None:
    with pytest.raises(HelloRefused, match=f"protocol version {version} is not supported.*speaks version 1"):
        check_hello(make_hello("old", version))


@pytest.mark.parametrize(
    ("msg", "words"),
    [({"type": "status"}, "expected a hello first"), ({"type": "hello"}, "integer 'protocol'"),
     ({"type": "hello", "protocol": "1"}, "integer"), ({"type": "hello", "protocol": True}, "integer")],
)
def test_a_missing_or_malformed_hello_is_refused(msg: dict[str, Any], words: str) -> None:
    with pytest.raises(HelloRefused, match=words):
        check_hello(msg)


def test_a_refusal_lists_the_supported_versions() -> None:
    r = refusal("nope")
    assert r == {"type": "refused", "reason": "nope", "supported": [PROTOCOL_VERSION]}
