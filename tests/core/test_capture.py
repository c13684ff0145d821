"""The capture sink: raw MIDI 1.0 bytes in, one complete message per event out."""

from __future__ import annotations

from typing import Iterator, Optional

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxfd.core.allocator import Allocator
from mxfd.core.capture import CaptureSink
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE, KernelEvent
from mxfd.core.midi import DATA_LENGTH
from mxfd.core.mxf import KSState
from tests.core.helpers import Recorder, Seen, feed_bursts, raw_chain, split

# -- helpers --------------------------------------------------------------------


class Rig:
    """A sink wired to a recorder, on a debug allocator that must end up idle."""

    def __init__(self, buffer_size: int = 4096, **alloc_args: int) -> None:
        self.alloc = Allocator(buffer_size=buffer_size, debug=True, **alloc_args)
        self.sink = CaptureSink(self.alloc)
        self.out = Recorder()
        self.sink.connect_output(self.out)

    def feed(self, *bursts: tuple[int, bytes], size: int = 8, group: int = 1) -> None:
        feed_bursts(self.sink, self.alloc, list(bursts), group, size)

    def bytes_in(self, data: bytes, t: int = 0) -> None:
        self.feed((t, data))

    @property
    def messages(self) -> list[bytes]:
        return self.out.messages

    @property
    def seen(self) -> list[Seen]:
        return self.out.seen

    def idle(self) -> bool:
        return self.alloc.is_idle()


@pytest.fixture
def rig() -> Iterator[Rig]:
    r = Rig()
    yield r
    assert r.idle(), r.alloc.counters()


def parse_whole(data: bytes, buffer_size: int = 4096) -> list[bytes]:
    r = Rig(buffer_size)
    if data:
        r.bytes_in(data)
    assert r.idle()
    return r.messages


def joined_sysex(seen: list[Seen]) -> list[bytes]:
    """Messages with SysEx chunk chains joined (real-time messages may sit between chunks)."""
    out: list[bytes] = []
    pending: list[bytes] = []
    for s in seen:
        if pending or s.flags & EVENT_INCOMPLETE:
            if s.data[0] >= 0xF8 and len(s.data) == 1:
                out.append(s.data)
                continue
            pending.append(s.data)
            if not s.flags & EVENT_INCOMPLETE:
                out.append(b"".join(pending))
                pending = []
        else:
            out.append(s.data)
    assert not pending, "a chunk chain was left open"
    return out


# -- complete messages and running status ---------------------------------------


def test_each_message_comes_out_as_its_own_complete_event(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 80 3c 00 b0 07 7f c0 05 e0 00 40"))
    assert rig.messages == [bytes.fromhex(h) for h in ("90 3c 64", "80 3c 00", "b0 07 7f", "c0 05", "e0 00 40")]
    assert all(s.flags == EVENT_COMPLETE for s in rig.seen)
    assert rig.sink.messages == 5


def test_running_status_repeats_the_last_channel_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 3e 64 40 00"))
    assert rig.messages == [bytes.fromhex(h) for h in ("90 3c 64", "90 3e 64", "90 40 00")]


def test_running_status_works_for_one_data_byte_messages(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("c0 01 02 03 d1 40 41"))
    assert rig.messages == [bytes.fromhex(h) for h in ("c0 01", "c0 02", "c0 03", "d1 40", "d1 41")]


def test_running_status_persists_across_raw_events_and_calls(rig: Rig) -> None:
    rig.feed((0, b"\xb0\x07"), (1, b"\x64\x0a"), (2, b"\x40"), (3, b"\x01\x02"))
    assert rig.messages == [bytes.fromhex(h) for h in ("b0 07 64", "b0 0a 40", "b0 01 02")]
    assert rig.sink.running_status == 0xB0


def test_a_new_channel_status_replaces_running_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 80 3c 00 3e 00"))
    assert rig.messages[-1] == bytes.fromhex("80 3e 00")


# -- real-time bytes ------------------------------------------------------------


def test_realtime_bytes_between_messages_come_out_at_once_in_order(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("f8 90 3c 64 fa f8 3e 64 fc"))
    assert rig.messages == [bytes.fromhex(h) for h in ("f8", "90 3c 64", "fa", "f8", "90 3e 64", "fc")]


def test_a_realtime_byte_inside_a_message_comes_out_first_and_leaves_the_message_intact(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 f8 3c fe 64"))
    assert rig.messages == [b"\xf8", b"\xfe", bytes.fromhex("90 3c 64")]
    assert rig.sink.truncated == 0


def test_a_realtime_byte_inside_a_running_status_message_keeps_running_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 3e f8 64 40 f8 00"))
    assert rig.messages == [bytes.fromhex(h) for h in ("90 3c 64", "f8", "90 3e 64", "f8", "90 40 00")]


def test_realtime_bytes_inside_sysex_come_out_and_leave_the_sysex_intact(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("f0 43 f8 10 4c fe 00 f7"))
    assert rig.messages == [b"\xf8", b"\xfe", bytes.fromhex("f0 43 10 4c 00 f7")]
    assert rig.sink.sysex == 1


def test_every_realtime_byte_f8_to_ff_is_a_one_byte_message_defined_or_not(rig: Rig) -> None:
    rig.bytes_in(bytes(range(0xF8, 0x100)))
    assert rig.messages == [bytes([b]) for b in range(0xF8, 0x100)]
    assert rig.sink.realtime == 8


def test_realtime_bytes_do_not_clear_running_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("b0 01 02 f8 ff 03 04"))
    assert rig.messages == [bytes.fromhex(h) for h in ("b0 01 02", "f8", "ff", "b0 03 04")]


# -- system common ----------------------------------------------------------------


def test_system_common_messages_have_their_lengths(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("f1 23 f2 01 02 f3 05 f6"))
    assert rig.messages == [bytes.fromhex(h) for h in ("f1 23", "f2 01 02", "f3 05", "f6")]


@pytest.mark.parametrize("common", ["f1 23", "f2 01 02", "f3 05", "f6"])
def test_system_common_clears_running_status(rig: Rig, common: str) -> None:
    rig.bytes_in(bytes.fromhex(f"90 3c 64 {common} 3e 64"))
    assert rig.messages == [bytes.fromhex("90 3c 64"), bytes.fromhex(common)]
    assert rig.sink.stray == 2
    assert rig.sink.running_status == 0


def test_sysex_clears_running_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 f0 7e f7 3e 64"))
    assert rig.messages == [bytes.fromhex("90 3c 64"), bytes.fromhex("f0 7e f7")]
    assert rig.sink.stray == 2


def test_an_eox_outside_sysex_is_dropped_counted_and_clears_running_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 f7 3e 64"))
    assert rig.messages == [bytes.fromhex("90 3c 64")]
    assert rig.sink.stray_eox == 1
    assert rig.sink.stray == 2


@pytest.mark.parametrize("undefined", [0xF4, 0xF5])
def test_undefined_f4_f5_are_dropped_counted_and_clear_running_status(rig: Rig, undefined: int) -> None:
    rig.bytes_in(bytes([0x90, 0x3C, 0x64, undefined, 0x3E, 0x64]))
    assert rig.messages == [bytes.fromhex("90 3c 64")]
    assert rig.sink.undefined == 1
    assert rig.sink.stray == 2


# -- bad input: stray and truncated -----------------------------------------------


def test_stray_data_bytes_without_running_status_are_dropped_and_counted(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("01 02 03 90 3c 64"))
    assert rig.messages == [bytes.fromhex("90 3c 64")]
    assert rig.sink.stray == 3


@pytest.mark.parametrize(
    ("data", "out"),
    [
        ("90 f6", "f6"),
        ("90 3c f6", "f6"),
        ("e0 00 80 3c 00", "80 3c 00"),
        ("c0 90 3c 64", "90 3c 64"),
        ("f2 01 f6", "f6"),
        ("f1 f6", "f6"),
        ("b0 07 f0 01 f7", "f0 01 f7"),
    ],
)
def test_a_status_byte_ends_the_message_in_progress_which_is_dropped_and_counted(rig: Rig, data: str, out: str) -> None:
    rig.bytes_in(bytes.fromhex(data))
    assert rig.messages == [bytes.fromhex(out)]
    assert rig.sink.truncated == 1


def test_a_truncated_message_under_running_status_is_counted(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 3e 80 3e 00"))
    assert rig.messages == [bytes.fromhex("90 3c 64"), bytes.fromhex("80 3e 00")]
    assert rig.sink.truncated == 1


# -- SysEx ---------------------------------------------------------------------------


def test_sysex_split_across_many_fragments_comes_out_whole_with_the_f0_time(rig: Rig) -> None:
    body = bytes(range(0x00, 0x60))
    sysex = b"\xf0" + body + b"\xf7"
    pieces = split(sysex, list(range(1, len(sysex), 3)))
    rig.feed(*[(100 + i, p) for i, p in enumerate(pieces)])
    assert rig.messages == [sysex]
    assert rig.seen[0].pres_time == 100
    assert rig.sink.sysex == 1 and rig.sink.messages == 1


def test_a_short_sysex_sits_inline_like_any_short_event(rig: Rig) -> None:
    shapes: list[tuple[bool, bool]] = []

    class Peek(Recorder):
        def put_message(self, evt: Optional[KernelEvent]) -> None:
            assert evt is not None
            shapes.append((evt.buffer is None, evt.is_short))
            super().put_message(evt)

    peek = Peek()
    rig.sink.disconnect_output()
    rig.sink.connect_output(peek)
    rig.bytes_in(bytes.fromhex("f0 7e 7f 09 01 f7"))
    assert peek.messages == [bytes.fromhex("f0 7e 7f 09 01 f7")]
    assert shapes == [(True, True)]


def test_a_64k_sysex_travels_as_a_chain_of_chunks_with_one_time_stamp() -> None:
    r = Rig(buffer_size=4096, pool_size=64)
    sysex = b"\xf0" + bytes(i & 0x7F for i in range(65536 - 2)) + b"\xf7"
    r.feed(*[(1000 + i, p) for i, p in enumerate(split(sysex, list(range(0, len(sysex), 1000))))], size=8)
    seen = r.seen
    assert len(seen) == 16
    assert [s.flags for s in seen] == [EVENT_INCOMPLETE] * 15 + [EVENT_COMPLETE]
    assert {s.pres_time for s in seen} == {1000}
    assert all(len(s.data) == 4096 for s in seen)
    assert b"".join(s.data for s in seen) == sysex
    assert r.sink.sysex == 1 and r.sink.sysex_chunks == 16
    assert r.idle()


@pytest.mark.parametrize("length", [63, 64, 65, 128, 129])
def test_sysex_around_the_buffer_size_splits_exactly_at_it(length: int) -> None:
    r = Rig(buffer_size=64)
    sysex = b"\xf0" + bytes(length - 2) + b"\xf7"
    r.bytes_in(sysex)
    sizes = [len(s.data) for s in r.seen]
    assert sum(sizes) == length and all(n == 64 for n in sizes[:-1]) and 0 < sizes[-1] <= 64
    assert [s.flags for s in r.seen][-1] == EVENT_COMPLETE
    assert r.idle()


def test_a_sysex_cut_before_any_chunk_went_out_is_dropped_and_counted(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("f0 43 10 90 3c 64"))
    assert rig.messages == [bytes.fromhex("90 3c 64")]
    assert rig.sink.truncated == 1
    assert rig.sink.sysex == 0


def test_a_sysex_cut_after_chunks_went_out_ends_with_a_complete_chunk_without_eox() -> None:
    r = Rig(buffer_size=16)
    r.bytes_in(b"\xf0" + bytes(40) + b"\x90\x3c\x64")
    chunks = [s for s in r.seen if s.data[0] != 0x90]
    assert [s.flags for s in chunks] == [EVENT_INCOMPLETE, EVENT_INCOMPLETE, EVENT_COMPLETE]
    assert b"".join(s.data for s in chunks) == b"\xf0" + bytes(40)
    assert r.messages[-1] == bytes.fromhex("90 3c 64")
    assert r.sink.truncated == 1
    assert r.idle()


def test_realtime_bytes_may_come_between_the_chunks_of_one_sysex() -> None:
    r = Rig(buffer_size=16)
    sysex = b"\xf0" + bytes(range(30)) + b"\xf7"
    r.bytes_in(sysex[:20] + b"\xf8" + sysex[20:])
    assert joined_sysex(r.seen) == [b"\xf8", sysex]
    assert r.idle()


# -- time stamps and channel groups ----------------------------------------------------


def test_a_message_takes_the_time_of_the_raw_event_holding_its_status_byte(rig: Rig) -> None:
    rig.feed((10, b"\x90"), (20, b"\x3c"), (30, b"\x64\xf8"))
    assert [(s.pres_time, s.data) for s in rig.seen] == [(10, bytes.fromhex("90 3c 64")), (30, b"\xf8")]


def test_under_running_status_a_message_takes_the_time_of_its_first_data_byte(rig: Rig) -> None:
    rig.feed((10, b"\x90\x3c\x64\x3e"), (20, b"\x64\x40"), (30, b"\x00"))
    assert [s.pres_time for s in rig.seen] == [10, 10, 20]


def test_each_raw_event_of_a_chain_keeps_its_own_time(rig: Rig) -> None:
    head = raw_chain(rig.alloc, bytes.fromhex("90 3c 64 3e"), 5)
    head.next_evt = raw_chain(rig.alloc, bytes.fromhex("64 f8"), 7)
    rig.sink.put_message(head)
    assert [(s.pres_time, s.data) for s in rig.seen] == [
        (5, bytes.fromhex("90 3c 64")),
        (5, bytes.fromhex("90 3e 64")),
        (7, b"\xf8"),
    ]


def test_a_message_takes_the_channel_group_of_the_raw_event_holding_its_first_byte(rig: Rig) -> None:
    rig.feed((0, b"\x90\x3c"), group=3)
    rig.feed((0, b"\x64\xf8"), group=4)
    assert [(s.channel_group, s.data) for s in rig.seen] == [(3, bytes.fromhex("90 3c 64")), (4, b"\xf8")]


# -- COMPLETE events, chains, states ---------------------------------------------------


def test_complete_events_pass_through_unchanged_and_in_order(rig: Rig) -> None:
    head = raw_chain(rig.alloc, bytes.fromhex("90 3c 64 f8"), 1)
    done = rig.alloc.make_event(bytes.fromhex("b0 07 7f"), 2, channel_group=9)
    head.next_evt = done
    done.next_evt = raw_chain(rig.alloc, bytes.fromhex("3e 64"), 3)
    rig.sink.put_message(head)
    assert [(s.pres_time, s.channel_group, s.data) for s in rig.seen] == [
        (1, 1, bytes.fromhex("90 3c 64")),
        (1, 1, b"\xf8"),
        (2, 9, bytes.fromhex("b0 07 7f")),
        (3, 1, bytes.fromhex("90 3e 64")),
    ]
    assert rig.sink.passthrough == 1


def test_a_single_complete_event_passes_through_as_it_is(rig: Rig) -> None:
    e = rig.alloc.make_event(b"\xf0" + bytes(20) + b"\xf7", 42, channel_group=2)
    rig.sink.put_message(e)
    assert rig.seen == [Seen(42, 2, EVENT_COMPLETE, b"\xf0" + bytes(20) + b"\xf7", 0)]
    assert rig.sink.passthrough == 1 and rig.sink.messages == 0


def test_a_whole_burst_goes_downstream_as_one_chain(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 3e 64 f8 b0 07 7f"))
    assert len(rig.out.chains) == 1 and len(rig.out.chains[0]) == 4


def test_a_burst_with_no_complete_message_sends_nothing(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c"))
    assert rig.out.chains == []
    rig.bytes_in(b"\x64")
    assert rig.messages == [bytes.fromhex("90 3c 64")]


def test_raw_events_longer_than_8_bytes_are_parsed_too(rig: Rig) -> None:
    rig.feed((0, bytes.fromhex("90 3c 64 3e 64 40 64 b0 07 7f 0a 40")), size=12)
    assert rig.messages == [bytes.fromhex(h) for h in ("90 3c 64", "90 3e 64", "90 40 64", "b0 07 7f", "b0 0a 40")]


def test_put_message_of_none_does_nothing(rig: Rig) -> None:
    rig.sink.put_message(None)
    assert rig.out.chains == []


def test_stop_resets_the_parser_and_running_status(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("90 3c 64 3e"))
    rig.sink.set_state(KSState.STOP)
    rig.sink.set_state(KSState.RUN)
    rig.bytes_in(bytes.fromhex("64 40 64"))
    assert rig.messages == [bytes.fromhex("90 3c 64")]
    assert rig.sink.running_status == 0
    assert rig.sink.truncated == 1 and rig.sink.stray == 3


def test_events_given_while_stopped_go_back_to_the_allocator_and_are_counted(rig: Rig) -> None:
    rig.sink.set_state(KSState.STOP)
    rig.bytes_in(bytes(range(0x90, 0x90 + 20)))
    assert rig.out.chains == []
    assert rig.sink.discarded == 3


def test_stop_ends_a_sysex_chain_already_under_way_with_a_complete_chunk() -> None:
    r = Rig(buffer_size=16)
    r.bytes_in(b"\xf0" + bytes(20))
    assert [s.flags for s in r.seen] == [EVENT_INCOMPLETE]
    r.sink.set_state(KSState.STOP)
    assert [s.flags for s in r.seen] == [EVENT_INCOMPLETE, EVENT_COMPLETE]
    assert b"".join(r.messages) == b"\xf0" + bytes(20)
    assert r.sink.truncated == 1
    assert r.idle()


def test_pause_and_acquire_still_parse(rig: Rig) -> None:
    for state in (KSState.PAUSE, KSState.ACQUIRE):
        rig.sink.set_state(state)
        rig.bytes_in(b"\xf8")
    assert rig.messages == [b"\xf8", b"\xf8"]


def test_an_exhausted_allocator_loses_messages_and_counts_them() -> None:
    alloc = Allocator(pool_size=4, max_pool_size=4, debug=True)
    sink = CaptureSink(alloc)
    out = Recorder()
    sink.connect_output(out)
    sink.put_message(raw_chain(alloc, b"\xf8" * 16))  # 2 raw events in, 16 messages wanted, 4 events in all
    assert out.messages == [b"\xf8"] * 4
    assert sink.lost == 12 and sink.messages == 4
    assert alloc.is_idle()


def test_counters_are_attributes_and_a_dict(rig: Rig) -> None:
    rig.bytes_in(bytes.fromhex("01 90 3c f8 64 f0 01 f7 f4 f7 90 c0"))
    c = rig.sink.counters()
    assert c == {k: getattr(rig.sink, k) for k in c}
    assert (c["messages"], c["realtime"], c["sysex"], c["stray"], c["undefined"], c["stray_eox"]) == (3, 1, 1, 1, 1, 1)
    assert c["truncated"] == 1 and c["raw_events"] == 2 and c["raw_bytes"] == 12


# -- mido: where MIDI 1.0 wins -------------------------------------------------------------


def mido_messages(data: bytes) -> list[bytes]:
    p = mido.Parser()
    p.feed(data)
    return [bytes(m.bytes()) for m in p]


def test_running_status_is_midi_1_0_where_mido_drops_the_data_bytes() -> None:
    data = bytes.fromhex("90 3c 64 3e 64")
    assert mido_messages(data) == [bytes.fromhex("90 3c 64")]
    assert parse_whole(data) == [bytes.fromhex("90 3c 64"), bytes.fromhex("90 3e 64")]


def test_a_realtime_byte_inside_a_message_is_midi_1_0_where_mido_loses_the_message() -> None:
    data = bytes.fromhex("90 3c f8 64")
    assert mido_messages(data) == [b"\xf8"]
    assert parse_whole(data) == [b"\xf8", bytes.fromhex("90 3c 64")]


# -- properties ----------------------------------------------------------------------------

#: Streams biased towards MIDI: any byte, whole messages, running-status data pairs, SysEx
#: brackets and real time, in any order (so also cut and stray).
midi_streams = st.lists(
    st.one_of(
        st.binary(min_size=1, max_size=1),
        st.sampled_from([b"\x90\x3c\x64", b"\xb0\x07", b"\xc0", b"\xf0", b"\xf7", b"\xf8", b"\xf2", b"\xf6"]),
        st.binary(min_size=2, max_size=2).map(lambda b: bytes(x & 0x7F for x in b)),
    ),
    max_size=120,
).map(b"".join)
#: Fragment lengths, used in turn to cut a stream.
fragment_sizes = st.lists(st.integers(1, 10), min_size=1, max_size=40)


def cut(data: bytes, sizes: list[int]) -> list[int]:
    """Cut offsets that split ``data`` into fragments of the given sizes, used in turn."""
    offsets = []
    pos = 0
    i = 0
    while pos < len(data):
        pos += sizes[i % len(sizes)]
        offsets.append(pos)
        i += 1
    return offsets


def reference(data: bytes) -> list[tuple[int, bytes]]:
    """MIDI 1.0 byte rules the plain way: (offset of the first byte, message) for each message."""
    out: list[tuple[int, bytes]] = []
    running = 0
    cur: Optional[bytearray] = None
    first = need = 0
    for i, b in enumerate(data):
        if b >= 0xF8:
            out.append((i, bytes([b])))
        elif b >= 0x80:
            if b == 0xF7 and cur is not None and cur[0] == 0xF0:
                out.append((first, bytes(cur) + b"\xf7"))
            cur = None
            running = b if b < 0xF0 else 0
            if b < 0xF0 or b in (0xF0, 0xF1, 0xF2, 0xF3):
                cur, first, need = bytearray([b]), i, (DATA_LENGTH[b] if b != 0xF0 else -1)
            elif b == 0xF6:
                out.append((i, b"\xf6"))
        elif cur is not None or running:
            if cur is None:
                cur, first, need = bytearray([running]), i, DATA_LENGTH[running]
            cur.append(b)
            if len(cur) == need + 1:
                out.append((first, bytes(cur)))
                cur = None
    return out


def parse_fragments(data: bytes, cuts: list[int], buffer_size: int = 4096) -> tuple[list[bytes], list[Seen]]:
    """Feed ``data`` cut at ``cuts``, fragment i stamped i; return the fragments and what came out."""
    r = Rig(buffer_size)
    pieces = split(data, cuts)
    r.feed(*list(enumerate(pieces)), size=3)
    assert r.idle(), r.alloc.counters()
    return pieces, r.seen


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=midi_streams, sizes=fragment_sizes)
def test_any_fragmentation_gives_the_same_messages_as_feeding_it_whole(data: bytes, sizes: list[int]) -> None:
    _, whole = parse_fragments(data, [])
    _, pieces = parse_fragments(data, cut(data, sizes))
    assert [(s.data, s.flags) for s in pieces] == [(s.data, s.flags) for s in whole]


@settings(max_examples=200, deadline=None)
@given(data=midi_streams, sizes=fragment_sizes)
def test_any_fragmentation_gives_the_same_chunks_when_sysex_outgrows_the_buffer(data: bytes, sizes: list[int]) -> None:
    _, whole = parse_fragments(data, [], buffer_size=9)
    _, pieces = parse_fragments(data, cut(data, sizes), buffer_size=9)
    assert [(s.data, s.flags) for s in pieces] == [(s.data, s.flags) for s in whole]


@settings(max_examples=300, deadline=None)
@given(data=midi_streams, sizes=fragment_sizes)
def test_messages_and_first_byte_time_stamps_follow_the_midi_1_0_rules(data: bytes, sizes: list[int]) -> None:
    pieces, seen = parse_fragments(data, cut(data, sizes))
    owner = [i for i, p in enumerate(pieces) for _ in p]  # the fragment holding each byte
    assert [(s.pres_time, s.data) for s in seen] == [(owner[i], m) for i, m in reference(data)]


@st.composite
def without_running_status(draw: st.DrawFn) -> bytes:
    """Messages each with their own status byte; real time only between them; no F4/F5/F9/FD."""
    out = bytearray()
    running = False
    data_byte = st.integers(0, 0x7F)
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["channel", "common", "sysex", "realtime", "stray", "cut"]))
        if kind == "channel":
            status = draw(st.integers(0x80, 0xEF))
            out += bytes([status] + [draw(data_byte) for _ in range(DATA_LENGTH[status])])
            running = True
        elif kind == "common":
            status = draw(st.sampled_from([0xF1, 0xF2, 0xF3, 0xF6]))
            out += bytes([status] + [draw(data_byte) for _ in range(DATA_LENGTH[status])])
            running = False
        elif kind == "sysex":
            out += b"\xf0" + bytes(draw(st.lists(data_byte, max_size=20))) + b"\xf7"
            running = False
        elif kind == "realtime":
            out.append(draw(st.sampled_from([0xF8, 0xFA, 0xFB, 0xFC, 0xFE, 0xFF])))
        elif kind == "stray" and not running:
            out += bytes(draw(st.lists(data_byte, min_size=1, max_size=3)))
        elif kind == "cut":
            # A message cut short by a tune request (which also clears running status).
            out += draw(st.sampled_from([b"\x90", b"\x90\x3c", b"\xe0\x01", b"\xf2\x01", b"\xf0\x01"])) + b"\xf6"
            running = False
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(data=without_running_status(), sizes=fragment_sizes)
def test_without_running_status_or_mid_message_realtime_it_agrees_with_mido(data: bytes, sizes: list[int]) -> None:
    _, seen = parse_fragments(data, cut(data, sizes))
    assert [s.data for s in seen] == mido_messages(data)


@settings(max_examples=300, deadline=None)
@given(data=midi_streams, sizes=fragment_sizes, buffer_size=st.sampled_from([9, 16, 4096]))
def test_no_event_is_ever_lost_or_duplicated(data: bytes, sizes: list[int], buffer_size: int) -> None:
    r = Rig(buffer_size)
    for p in split(data, cut(data, sizes)):
        r.bytes_in(p)
    r.sink.set_state(KSState.STOP)  # ends any SysEx chain under way
    assert r.idle(), r.alloc.counters()  # every raw and output event back; a double put would have raised
    sink = r.sink
    assert sink.raw_bytes == len(data)
    assert len(r.seen) == sink.messages - sink.sysex + sink.sysex_chunks
    assert not any(s.flags & EVENT_INCOMPLETE for s in r.seen[-1:])
