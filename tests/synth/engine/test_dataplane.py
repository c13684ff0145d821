"""The data plane: ring records and thru events play at their own frames, in order, with nothing allocated."""

from __future__ import annotations

import os

import numpy as np
import numpy.typing as npt

import mxfd.synth
from mxfd.synth.engine import dataplane as D
from mxfd.synth.engine.dataplane import MSG, SOUND_OFF, EventRing, hold_thru, new_dataplane, pack, run_cycle
from tests.core.helpers import core_growth
from tests.synth.engine.helpers import synth

PERIOD = 128
SYNTH_FILES = os.path.join(os.path.dirname(os.path.abspath(mxfd.synth.__file__)), "*")


class Plane:
    """A data plane over a TimGM6mb synth (effects off), rendered a cycle at a time like the callback does."""

    def __init__(self, chunk: int = PERIOD, ring_records: int = 64) -> None:
        self.synth = synth(block=chunk)
        self.dp, self.arrays = new_dataplane(
            self.synth.engine_state, self.synth.master, frames=chunk, groups=16, ring_records=ring_records
        )
        self.ring = EventRing(self.arrays)
        self.left = np.zeros(4096, np.float32)
        self.right = np.zeros(4096, np.float32)
        # square lead: sound from a note's first sample (the piano's sample starts with silence)
        assert self.ring.push(0, pack(MSG, 0, 2, 0xC0, 80, 0))

    def cycle(self, n: int = PERIOD) -> npt.NDArray[np.float32]:
        run_cycle(self.dp, n, self.left, self.right)
        return self.left[:n] + self.right[:n]

    def play(self, cycles: int, n: int = PERIOD) -> npt.NDArray[np.float32]:
        return np.concatenate([self.cycle(n) for _ in range(cycles)])

    def note(self, frame: int, key: int = 69, velocity: int = 100, base: int = 0) -> None:
        assert self.ring.push(frame, pack(MSG, base, 3, 0x90, key, velocity))

    @property
    def counters(self) -> npt.NDArray[np.int64]:
        return self.arrays["cons"]


def first_sound(x: npt.NDArray[np.float32]) -> int:
    hits = np.flatnonzero(np.abs(x) > 0.0)
    return int(hits[0]) if hits.size else -1


def test_a_ring_record_sounds_from_its_own_frame() -> None:
    for frame in (0, 1, 127, 128, 300, 1000):
        p = Plane()
        p.note(frame)
        assert first_sound(p.play(12)) == frame


def test_a_ring_record_sounds_from_its_frame_whatever_the_cycle_length() -> None:
    for n in (32, 100, 256, 1024):  # cycles longer than the engine's chunk are rendered chunk by chunk
        p = Plane(chunk=128)
        p.note(777)
        assert first_sound(p.play(4096 // n + 1, n)) == 777, n


def test_a_record_that_comes_late_plays_at_once_and_is_counted() -> None:
    p = Plane()
    p.play(4)
    p.note(10)  # rendered long ago
    x = p.cycle()
    assert first_sound(x) == 0
    assert p.counters[D.C_LATE] == 1


def test_records_are_applied_in_order() -> None:
    p = Plane()
    p.note(200)
    assert p.ring.push(260, pack(MSG, 0, 3, 0x80, 69, 0))
    assert p.ring.push(400, pack(MSG, 0, 3, 0xB0, 120, 0))  # all sound off: silent soon after
    x = p.play(40)
    assert first_sound(x) == 200
    assert not np.any(x[400 + 48 * 20 :])  # all sound off fades within a few ms
    assert p.counters[D.C_EVENTS] == 4  # with the program change


def test_sound_off_silences_every_group() -> None:
    p = Plane()
    p.note(0, base=0)
    p.note(0, key=60, base=16)
    assert p.ring.push(1000, pack(SOUND_OFF, 0, 0, 0, 0, 0))
    x = p.play(40)
    assert np.any(x[:1000])
    assert not np.any(x[1000 + 48 * 20 :])


def test_a_thru_event_plays_at_its_frame_in_the_cycle_it_came() -> None:
    for offset in (0, 5, 127):
        q = Plane()
        q.play(2)
        hold_thru(q.dp, offset, 0, np.array([0x90, 69, 100], np.uint8), 3)
        assert first_sound(q.cycle()) == offset
        assert q.counters[D.C_THRU] == 1
        assert q.arrays["thru_n"][0] == 0  # the queue is empty for the next cycle


def test_thru_events_and_ring_records_merge_by_frame() -> None:
    p = Plane()
    start = p.ring.position
    assert p.ring.push(start + 50, pack(MSG, 0, 3, 0x80, 69, 0))
    hold_thru(p.dp, 10, 0, np.array([0x90, 69, 100], np.uint8), 3)
    x = p.cycle()
    assert first_sound(x) == 10  # the note-on at 10 came first, then the ring's note-off at 50
    assert p.synth.arrays()["counters"][0] == 1


def test_a_full_ring_drops_the_record_and_counts_it() -> None:
    p = Plane(ring_records=4)
    assert all(p.ring.push(i, pack(MSG, 0, 3, 0xB0, 7, 100)) for i in range(3))
    assert not p.ring.push(5, pack(MSG, 0, 3, 0xB0, 7, 100))
    assert p.arrays["prod"][D.P_DROPS] == 1
    p.cycle()
    assert p.ring.push(5, pack(MSG, 0, 3, 0xB0, 7, 100))  # read records free their slots


def test_an_idle_cycle_writes_zeros() -> None:
    p = Plane()
    p.left.fill(1.0)
    p.right.fill(1.0)
    assert not np.any(p.cycle())


def test_cycles_allocate_nothing_in_steady_state() -> None:
    p = Plane(ring_records=1024)
    msg = np.array([0x90, 64, 90], np.uint8)

    def cycle(i: int) -> None:
        pos = p.ring.position
        p.ring.push(pos + 17, pack(MSG, 0, 3, 0x90 if i % 2 else 0x80, 60 + i % 12, 100))
        hold_thru(p.dp, i % PERIOD, 0, msg, 3)
        run_cycle(p.dp, PERIOD, p.left, p.right)

    growth, where = core_growth(cycle, 200, 2000, SYNTH_FILES)
    assert growth <= 0, where


def test_sound_off_keeps_its_place_among_the_events_of_its_cycle() -> None:
    p = Plane()
    assert p.ring.push(50, pack(SOUND_OFF, 0, 0, 0, 0, 0))
    assert p.ring.push(60, pack(MSG, 0, 2, 0xC0, 80, 0))  # the reset took the program: set it again
    p.note(100)  # after the sound off, in the same cycle: it sounds
    x = p.play(4)
    assert first_sound(x) == 100
    q = Plane()
    q.note(10)
    assert q.ring.push(50, pack(SOUND_OFF, 0, 0, 0, 0, 0))  # before it in the same cycle: silenced
    y = q.play(40)
    assert first_sound(y) == 10
    assert not np.any(y[50 + 48 * 20 :])
