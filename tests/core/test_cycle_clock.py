"""CycleClock: the least phase of a callback's readings is its cycles' schedule."""

from __future__ import annotations

import random

import pytest

from mxfd.core.cycle_clock import MOVED_AFTER, PHASES, SETTLE_REPORTS, CycleClock

RATE = 48_000
N = 128
CYCLE_NS = N * 1_000_000_000 // RATE  # 2 666 666 ns
EVERY = 8  # cycles between reports


def schedule(k: int, origin: int = 5_000_000_000) -> tuple[int, int]:
    """(scheduled start ns, first frame) of the k-th report."""
    frame = k * EVERY * N
    return origin + frame * 1_000_000_000 // RATE, frame


def test_the_least_phase_drops_the_wake_up_jitter() -> None:
    clock = CycleClock(RATE)
    rng = random.Random(1)
    for k in range(200):
        at, frame = schedule(k)
        delay = 20_000 + int(rng.expovariate(1 / 30_000))  # 20 µs at least, a long tail
        est = clock.report(at + delay, frame, N, xruns=0)
    assert abs(est.start_ns - (at + 20_000)) < 2_000  # the least delay, within 2 µs
    assert not est.step and clock.steps == 0


def test_a_late_wake_up_alone_changes_nothing() -> None:
    clock = CycleClock(RATE)
    for k in range(10):
        at, frame = schedule(k)
        est = clock.report(at + 5_000 + (2_000_000 if k == 7 else 0), frame, N, xruns=0)
        assert est.start_ns == at + 5_000 and not est.step


def test_an_xrun_moves_the_schedule_at_once_and_asks_to_re_anchor_while_it_settles() -> None:
    clock = CycleClock(RATE)
    for k in range(20):
        at, frame = schedule(k)
        clock.report(at + 5_000, frame, N, xruns=0)
    moved = 1_100_000  # less than half a cycle: a slewing mapping would carry it for seconds
    steps = []
    for k in range(20, 40):
        at, frame = schedule(k)
        est = clock.report(at + moved + 5_000, frame, N, xruns=1)
        assert est.start_ns == at + moved + 5_000
        steps.append(est.step)
    assert steps == [True] * SETTLE_REPORTS + [False] * (20 - SETTLE_REPORTS)
    assert clock.steps == 1


def test_a_run_of_late_reports_is_a_moved_schedule_even_unannounced() -> None:
    clock = CycleClock(RATE)
    for k in range(20):
        at, frame = schedule(k)
        clock.report(at, frame, N, xruns=0)
    late = []
    for k in range(20, 20 + MOVED_AFTER):
        at, frame = schedule(k)
        est = clock.report(at + CYCLE_NS, frame, N, xruns=0)
        late.append(est.start_ns - at)
    assert late == [0] * (MOVED_AFTER - 1) + [CYCLE_NS]
    assert est.step and clock.steps == 1


def test_an_earlier_schedule_is_taken_at_once() -> None:
    clock = CycleClock(RATE)
    at, frame = schedule(0)
    clock.report(at + 900_000, frame, N, xruns=0)  # the first report woke late
    at, frame = schedule(1)
    assert clock.report(at, frame, N, xruns=0).start_ns == at


def test_old_phases_leave_the_window() -> None:
    clock = CycleClock(RATE)
    at, frame = schedule(0)
    clock.report(at - 50_000, frame, N, xruns=0)  # an outlier early (a clock adjusted): forgotten in time
    for k in range(1, PHASES + 1):
        at, frame = schedule(k)
        est = clock.report(at, frame, N, xruns=0)
    assert est.start_ns == at


def test_reset_forgets_the_frames_of_a_closed_stream() -> None:
    clock = CycleClock(RATE)
    at, frame = schedule(50)
    clock.report(at, frame, N, xruns=0)
    clock.reset()
    assert clock.report(at + 123, 0, N, xruns=0).start_ns == at + 123


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        CycleClock(0)
