"""Sequencer: time order, stability, prefetch, pass-through, states, late events."""

from __future__ import annotations

import random
import threading
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mxfd
from mxfd.core.allocator import Allocator
from mxfd.core.event import EVENT_COMPLETE, EVENT_INCOMPLETE
from mxfd.core.mxf import KSState
from mxfd.core.sequencer import DONT_HOLD_FOR_SEQUENCING, Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import encode_buffer
from tests.core.helpers import Recorder, chain_of

MS = 10_000


@pytest.fixture
def alloc() -> Iterator[Allocator]:
    a = Allocator(pool_size=32, buffer_size=16, debug=True)
    yield a
    assert a.is_idle(), a.counters()


@pytest.fixture
def sink() -> Recorder:
    return Recorder()


@pytest.fixture
def seq(alloc: Allocator, sink: Recorder) -> Sequencer:
    s = Sequencer(alloc)
    s.connect_output(sink)
    return s


def put(seq: Sequencer, alloc: Allocator, *times: int) -> None:
    """Put one chain whose events carry ``times`` and data naming their time."""
    seq.put_message(chain_of(alloc, *[(t, tag(t)) for t in times]))


def tag(t: int, n: int = 0) -> bytes:
    return bytes([0xB0, t % 128, n % 128])


def times(sink: Recorder) -> list[int]:
    return [s.pres_time for s in sink.seen]


# -- order -------------------------------------------------------------------------


def test_events_leave_in_presentation_time_order_whatever_the_arrival_order(
    seq: Sequencer, sink: Recorder, alloc: Allocator
) -> None:
    put(seq, alloc, 50, 10, 40)
    put(seq, alloc, 30, 20)
    assert seq.held == 5
    assert seq.release(100) == 5
    assert times(sink) == [10, 20, 30, 40, 50]


def test_equal_times_keep_arrival_order(seq: Sequencer, sink: Recorder, alloc: Allocator) -> None:
    seq.put_message(chain_of(alloc, (10, tag(10, 1)), (5, tag(5, 1)), (10, tag(10, 2))))
    seq.put_message(chain_of(alloc, (10, tag(10, 3)), (5, tag(5, 2))))
    seq.put_message(chain_of(alloc, (10, tag(10, 4))))
    seq.release(10)
    assert sink.messages == [tag(5, 1), tag(5, 2), tag(10, 1), tag(10, 2), tag(10, 3), tag(10, 4)]


def test_release_hands_down_everything_due_as_one_chain(seq: Sequencer, sink: Recorder, alloc: Allocator) -> None:
    put(seq, alloc, 10, 20, 30, 40)
    assert seq.release(25) == 2
    assert [[s.pres_time for s in c] for c in sink.chains] == [[10, 20]]
    assert seq.held == 2
    assert seq.release(25) == 0  # nothing more due: no empty chain is sent
    assert len(sink.chains) == 1
    assert seq.release(40) == 2
    assert [[s.pres_time for s in c] for c in sink.chains] == [[10, 20], [30, 40]]


def test_an_event_is_due_exactly_at_its_presentation_time(seq: Sequencer, sink: Recorder, alloc: Allocator) -> None:
    put(seq, alloc, 100)
    assert seq.release(99) == 0
    assert seq.release(100) == 1


def test_late_events_play_at_once_and_are_counted(seq: Sequencer, sink: Recorder, alloc: Allocator) -> None:
    put(seq, alloc, 10, 20, 500)
    assert seq.release(400) == 2
    assert times(sink) == [10, 20]
    assert seq.late == 2
    seq.release(500)
    assert seq.late == 2  # on time is not late


def test_a_buffer_overlapping_queued_events_merges_in_order(seq: Sequencer, sink: Recorder, alloc: Allocator) -> None:
    put(seq, alloc, *range(0, 100, 10))
    put(seq, alloc, *range(5, 100, 10))
    put(seq, alloc, 3, 3, 97)
    seq.release(1000)
    assert times(sink) == sorted([*range(0, 100, 10), *range(5, 100, 10), 3, 3, 97])


def test_events_put_between_releases_are_ordered_with_what_is_left(
    seq: Sequencer, sink: Recorder, alloc: Allocator
) -> None:
    put(seq, alloc, 10, 30, 50)
    seq.release(30)
    put(seq, alloc, 40, 20, 60)  # 20 is already late
    seq.release(1000)
    assert [[s.pres_time for s in c] for c in sink.chains] == [[10, 30], [20, 40, 50, 60]]


def test_incomplete_sysex_chunks_stay_together_and_in_order(alloc: Allocator, sink: Recorder) -> None:
    unpacker = Unpacker(alloc)
    seq = Sequencer(alloc)
    unpacker.connect_output(seq)
    seq.connect_output(sink)
    put(seq, alloc, 100, 100, 300)
    sysex = b"\xf0" + bytes(range(40)) + b"\xf7"  # three chunks of a 16-byte buffer
    start, data = encode_buffer([(200, 1, b"\x90\x3c\x40"), (100, 1, sysex), (100, 1, b"\xf8")])
    unpacker.unpack(data, start)
    put(seq, alloc, 100)
    seq.release(1000)
    seen = sink.seen
    first = next(i for i, s in enumerate(seen) if s.data.startswith(b"\xf0"))
    chunks = seen[first : first + 3]
    assert [s.flags for s in chunks] == [EVENT_INCOMPLETE, EVENT_INCOMPLETE, EVENT_COMPLETE]
    assert b"".join(s.data for s in chunks) == sysex
    assert [s.pres_time for s in seen] == [100, 100, 100, 100, 100, 100, 100, 200, 300]
    assert first == 2  # after the two events at 100 that came before it, before those after
    assert seen[5].data == b"\xf8" and seen[6].data == tag(100)


def test_a_long_chain_packed_out_of_order_is_sorted_stably(sink: Recorder) -> None:
    alloc = Allocator(pool_size=20_000, buffer_size=16)
    seq = Sequencer(alloc)
    seq.connect_output(sink)
    rnd = random.Random(7)
    put(seq, alloc, *range(0, 1000, 3))  # already queued, overlapping the chain below
    items = [(rnd.randrange(1000), i.to_bytes(3, "big")) for i in range(15_000)]
    seq.put_message(chain_of(alloc, *items))
    assert seq.release(10**6) == 15_000 + 334
    released = [(s.pres_time, s.data) for s in sink.seen]
    queued = [(t, tag(t)) for t in range(0, 1000, 3)]
    # Queued events come first among equal times, then the chain's in arrival order.
    assert released == sorted(queued + items, key=lambda x: x[0])
    assert alloc.is_idle()


# -- prefetch --------------------------------------------------------------------------


def test_prefetch_releases_events_that_far_ahead_of_their_time(
    seq: Sequencer, sink: Recorder, alloc: Allocator
) -> None:
    seq.schedule_prefetch = 5 * MS
    put(seq, alloc, 10 * MS, 20 * MS)
    assert seq.release(4 * MS) == 0
    assert seq.release(5 * MS) == 1  # 10 ms - 5 ms <= 5 ms
    assert seq.late == 0  # early by design, not late
    assert seq.next_due() == 15 * MS
    assert seq.release(15 * MS) == 1


def test_prefetch_can_be_given_at_construction_and_must_not_be_negative(alloc: Allocator) -> None:
    assert Sequencer(alloc, schedule_prefetch=123).schedule_prefetch == 123
    assert Sequencer(alloc).schedule_prefetch == 0
    with pytest.raises(ValueError, match="schedule_prefetch"):
        Sequencer(alloc, schedule_prefetch=-1)


@pytest.mark.parametrize("prefetch", [DONT_HOLD_FOR_SEQUENCING, 2**63, 2**64 - 1, 2**70])
def test_a_huge_prefetch_passes_events_straight_through_unsorted(
    seq: Sequencer, sink: Recorder, alloc: Allocator, prefetch: int
) -> None:
    seq.schedule_prefetch = prefetch
    assert seq.pass_through
    put(seq, alloc, 10**12, 5, 10**6)
    assert [[s.pres_time for s in c] for c in sink.chains] == [[10**12, 5, 10**6]]
    assert seq.held == 0
    assert seq.next_due() is None


def test_a_prefetch_just_below_2_to_the_63_still_sequences(seq: Sequencer, alloc: Allocator) -> None:
    seq.schedule_prefetch = 2**63 - 1
    assert not seq.pass_through
    put(seq, alloc, 20, 10)
    assert seq.held == 2
    assert seq.release(0) == 2


def test_dont_hold_for_sequencing_has_the_original_value() -> None:
    assert DONT_HOLD_FOR_SEQUENCING == mxfd.DONT_HOLD_FOR_SEQUENCING == 0x8000000000000000


def test_pass_through_holds_in_pause_and_delivers_in_order_on_run(
    seq: Sequencer, sink: Recorder, alloc: Allocator
) -> None:
    seq.schedule_prefetch = DONT_HOLD_FOR_SEQUENCING
    seq.set_state(KSState.PAUSE)
    put(seq, alloc, 30, 10)
    put(seq, alloc, 20)
    assert sink.chains == []
    seq.set_state(KSState.RUN)
    assert [[s.pres_time for s in c] for c in sink.chains] == [[10, 20, 30]]
    put(seq, alloc, 5)
    assert times(sink) == [10, 20, 30, 5]


# -- states --------------------------------------------------------------------------


@pytest.mark.parametrize("state", [KSState.PAUSE, KSState.ACQUIRE])
def test_pause_and_acquire_hold_everything(seq: Sequencer, sink: Recorder, alloc: Allocator, state: KSState) -> None:
    put(seq, alloc, 10, 20)
    seq.set_state(state)
    put(seq, alloc, 15)
    assert seq.release(10**9) == 0
    assert seq.next_due() is None
    assert sink.chains == []
    assert seq.held == 3
    seq.set_state(KSState.RUN)
    assert seq.next_due() == 10
    assert seq.release(10**9) == 3  # became late while held: plays at once
    assert times(sink) == [10, 15, 20]
    assert seq.late == 3


def test_stop_flushes_everything_to_the_allocator(seq: Sequencer, sink: Recorder, alloc: Allocator) -> None:
    put(seq, alloc, 10, 20, 30)
    seq.release(10)
    seq.set_state(KSState.STOP)
    assert seq.held == 0
    assert seq.flushed == 2
    assert alloc.is_idle()
    assert times(sink) == [10]
    seq.set_state(KSState.RUN)
    assert seq.release(10**9) == 0


def test_while_stopped_what_it_is_given_is_discarded_and_counted(
    seq: Sequencer, sink: Recorder, alloc: Allocator
) -> None:
    seq.set_state(KSState.STOP)
    put(seq, alloc, 10, 20)
    assert seq.discarded == 2
    assert seq.held == 0
    assert alloc.is_idle()
    assert sink.chains == []


def test_stop_flushes_to_the_allocator_in_pass_through_pause_too(seq: Sequencer, alloc: Allocator) -> None:
    seq.schedule_prefetch = DONT_HOLD_FOR_SEQUENCING
    seq.set_state(KSState.PAUSE)
    put(seq, alloc, 1, 2)
    seq.set_state(KSState.STOP)
    assert seq.flushed == 2
    assert alloc.is_idle()


# -- timer support and counters ---------------------------------------------------------------


def test_next_due_is_the_earliest_due_time_or_none(seq: Sequencer, alloc: Allocator) -> None:
    assert seq.next_due() is None
    put(seq, alloc, 70, 30, 50)
    assert seq.next_due() == 30
    seq.schedule_prefetch = 10
    assert seq.next_due() == 20
    seq.release(20)
    assert seq.next_due() == 40
    seq.release(100)
    assert seq.next_due() is None


def test_counters_account_for_every_event(seq: Sequencer, alloc: Allocator) -> None:
    put(seq, alloc, 1, 2, 3, 4)
    seq.release(2)
    seq.set_state(KSState.STOP)
    put(seq, alloc, 5)
    c = seq.counters()
    assert c == {"held": 0, "received": 4, "released": 2, "late": 1, "flushed": 2, "discarded": 1}
    assert c["received"] == c["released"] + c["flushed"] + c["held"]


def test_put_message_of_none_is_a_no_op(seq: Sequencer) -> None:
    seq.put_message(None)
    assert seq.held == 0


# -- threads ------------------------------------------------------------------------------------


def test_puts_from_io_threads_and_releases_from_a_render_thread_lose_nothing() -> None:
    alloc = Allocator(pool_size=256, buffer_size=16)
    seq = Sequencer(alloc)
    sink = Recorder()
    seq.connect_output(sink)
    per_thread = 3000
    done = threading.Event()
    errors: list[BaseException] = []

    def producer(offset: int) -> None:
        try:
            for i in range(per_thread):
                while alloc.available() < 2:  # back-pressure: wait for the render thread
                    pass
                seq.put_message(chain_of(alloc, (i * 10 + offset, b"\xf8"), (i * 10 + offset + 5, b"\xfe")))
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    def renderer() -> None:
        now = 0
        while not done.is_set() or seq.held:
            now += 50
            seq.release(now)

    threads = [threading.Thread(target=producer, args=(k,)) for k in (0, 1)]
    render = threading.Thread(target=renderer)
    render.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    render.join()
    assert not errors
    assert len(sink.seen) == 2 * 2 * per_thread
    for chain in sink.chains:
        ts = [s.pres_time for s in chain]
        assert ts == sorted(ts)
    assert seq.received == seq.released == 4 * per_thread
    assert alloc.is_idle()


# -- property: what leaves is the stable sort of what came in ----------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.lists(st.integers(0, 50), min_size=1, max_size=30)),
        st.tuples(st.just("release"), st.integers(0, 60)),
        st.tuples(st.just("pause"), st.just(0)),
        st.tuples(st.just("run"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(0, 10))
def test_released_order_is_the_stable_time_order_and_nothing_is_lost(
    script: list[tuple[str, object]], prefetch: int
) -> None:
    alloc = Allocator(pool_size=16, buffer_size=16, debug=True)
    seq = Sequencer(alloc, schedule_prefetch=prefetch)
    sink = Recorder()
    seq.connect_output(sink)
    serial = 0
    held: list[tuple[int, int]] = []  # (time, serial) of what should be queued
    for op, arg in script:
        if op == "put":
            assert isinstance(arg, list)
            items = []
            for t in arg:
                items.append((t, serial.to_bytes(3, "big")))
                held.append((t, serial))
                serial += 1
            seq.put_message(chain_of(alloc, *items))
        elif op == "release":
            assert isinstance(arg, int)
            before = len(sink.seen)
            n = seq.release(arg)
            if seq.state is KSState.RUN:
                held.sort(key=lambda x: x[0])  # stable: serial order among equal times
                due = [h for h in held if h[0] - prefetch <= arg]
                assert n == len(due)
                assert [(s.pres_time, int.from_bytes(s.data, "big")) for s in sink.seen[before:]] == due
                held = held[len(due) :]
            else:
                assert n == 0
        elif op == "pause":
            seq.set_state(KSState.PAUSE)
        else:
            seq.set_state(KSState.RUN)
        assert seq.held == len(held)
    seq.set_state(KSState.STOP)
    assert alloc.is_idle()
    assert seq.received == seq.released + seq.flushed
