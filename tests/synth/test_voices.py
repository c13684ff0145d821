"""The voice engine: polyphony and stealing, click-free starts/ends/steals, no allocation in steady state."""

from __future__ import annotations

import tracemalloc

import numpy as np

from mxfd.core.allocator import Allocator
from mxfd.synth.voices import FADE, RELEASE
from tests.synth.helpers import (
    RATE,
    cc,
    make_synth,
    mono,
    note_off,
    note_on,
    notes_of,
    program,
    render,
    send,
)

ORGAN = 19
PAD = 89
OCARINA = 79
PIANO = 0


# -- polyphony and stealing ------------------------------------------------------


def test_stealing_keeps_the_voice_count_at_the_limit() -> None:
    s, a = make_synth(polyphony=8), Allocator()
    send(s, a, 0.0, program(0, ORGAN))
    for k in range(20):
        send(s, a, 0.01 * k, note_on(0, 40 + k, 100))
    counts = []
    for _ in range(30):
        render(s, 0.01)
        counts.append(s.stats()["voices"])
    assert max(counts) == 8
    assert counts[-1] == 8
    assert s.stats()["stolen"] == 12
    assert s.voices.n <= s.voices.capacity


def test_a_drum_hit_is_never_stolen_while_a_released_voice_remains() -> None:
    s, a = make_synth(polyphony=8), Allocator()
    send(s, a, 0.0, program(0, PAD), note_on(9, 49, 127))  # a crash rings for seconds
    for k in range(7):
        send(s, a, 0.01, note_on(0, 50 + k, 100))
        send(s, a, 0.02, note_off(0, 50 + k))  # pad release is long: these keep sounding
    render(s, 0.1)
    drum_channel = s.channels.slot_of(1) * 16 + 9
    assert sum(1 for c, _, st in notes_of(s) if c != drum_channel and st == RELEASE) == 7
    for k in range(7):
        send(s, a, 0.1 + 0.005 * k, note_on(1, 70 + k, 100))
    render(s, 0.1)
    sounding = [(c, n) for c, n, st in notes_of(s) if st != FADE]
    assert (drum_channel, 49) in sounding
    assert s.stats()["stolen"] == 7
    assert s.stats()["voices"] == 8


def test_released_voices_are_stolen_before_held_ones() -> None:
    s, a = make_synth(polyphony=4), Allocator()
    send(s, a, 0.0, program(0, PAD), note_on(0, 60, 100), note_on(0, 62, 100), note_on(0, 64, 100))
    send(s, a, 0.0, note_on(0, 65, 100))
    send(s, a, 0.1, note_off(0, 62))
    send(s, a, 0.2, note_on(0, 67, 100))
    render(s, 0.3)
    sounding = sorted(n for _, n, st in notes_of(s) if st != FADE)
    assert sounding == [60, 64, 65, 67]


def test_the_newest_note_is_protected_from_stealing() -> None:
    s, a = make_synth(polyphony=4), Allocator()
    send(s, a, 0.0, program(0, ORGAN))
    for k, t in enumerate((0.0, 0.1, 0.2, 0.38)):
        send(s, a, t, note_on(0, 60 + k, 100))
    send(s, a, 0.4, note_on(0, 72, 100))
    render(s, 0.45)
    sounding = sorted(n for _, n, st in notes_of(s) if st != FADE)
    assert 63 in sounding and 72 in sounding
    assert len(sounding) == 4


def test_a_stolen_voice_fades_out_within_a_few_milliseconds() -> None:
    s, a = make_synth(polyphony=2), Allocator()
    send(s, a, 0.0, program(0, ORGAN), note_on(0, 60, 100), note_on(0, 64, 100))
    send(s, a, 0.2, note_on(0, 67, 100))
    render(s, 0.2 + 64 / RATE)
    assert s.stats()["fading"] == 1
    render(s, 0.015)
    assert s.stats()["fading"] == 0 and s.voices.n == 2


def test_a_burst_beyond_twice_the_polyphony_still_plays_every_new_note() -> None:
    s, a = make_synth(polyphony=4), Allocator()
    send(s, a, 0.0, program(0, ORGAN), *[note_on(0, 30 + k, 100) for k in range(40)])
    render(s, 0.05)
    st = s.stats()
    assert st["voices"] == 4
    assert sorted(n for _, n, stg in notes_of(s) if stg != FADE) == [66, 67, 68, 69]


# -- clicks -------------------------------------------------------------------


def jump_bound(x: np.ndarray, steady: slice) -> float:
    """Largest sample-to-sample step allowed near an event: the note's own plus 5% of its peak."""
    seg = x[steady]
    return float(np.max(np.abs(np.diff(seg))) + 0.05 * np.max(np.abs(seg)))


def near(x: np.ndarray, t: float, ms: float = 10.0) -> np.ndarray:
    k = round(t * RATE)
    w = round(ms / 1000 * RATE)
    return np.asarray(x[max(0, k - w) : k + w])


def test_no_click_at_note_on_and_note_off() -> None:
    """Near a note's start and end no step exceeds the note's own at full level (+5% of its peak)."""
    for prog in (PIANO, OCARINA, ORGAN, 33, 80, 48, 56):
        s, a = make_synth(), Allocator()
        attack = s.bank.programs[prog].attack
        send(s, a, 0.1, program(0, prog), note_on(0, 48, 127))
        send(s, a, 0.6, note_off(0, 48))
        x = mono(render(s, 1.2))
        after_attack = 0.1 + attack + 0.005
        bound_on = jump_bound(x, slice(round(after_attack * RATE), round((after_attack + 0.05) * RATE)))
        onset = x[round(0.09 * RATE) : round((0.1 + attack) * RATE) + 1]
        assert np.max(np.abs(np.diff(onset))) <= bound_on, prog
        bound_off = jump_bound(x, slice(round(0.55 * RATE), round(0.6 * RATE)))
        end = x[round(0.6 * RATE) - 1 : round(0.65 * RATE)]
        assert np.max(np.abs(np.diff(end))) <= bound_off, prog


def test_no_click_when_a_voice_is_stolen() -> None:
    s, a = make_synth(polyphony=1), Allocator()
    send(s, a, 0.0, program(0, ORGAN), note_on(0, 48, 127))
    send(s, a, 0.5, note_on(0, 48 + 12, 40))
    x = mono(render(s, 0.8))
    bound = jump_bound(x, slice(round(0.2 * RATE), round(0.45 * RATE)))
    assert np.max(np.abs(np.diff(near(x, 0.5)))) <= bound


def test_no_click_when_volume_and_pan_jump() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, ORGAN), note_on(0, 48, 127))
    send(s, a, 0.3, cc(0, 7, 10), cc(0, 10, 0))
    out = render(s, 0.6)
    for ch in (0, 1):
        x = out[:, ch].astype(np.float64)
        bound = jump_bound(x, slice(round(0.1 * RATE), round(0.29 * RATE)))
        assert np.max(np.abs(np.diff(near(x, 0.3)))) <= bound


def test_a_choked_hi_hat_does_not_click() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, note_on(9, 46, 127))
    send(s, a, 0.2, note_on(9, 44, 1))
    x = mono(render(s, 0.3))
    step = np.abs(np.diff(near(x, 0.2, 2.0)))
    assert step.max() <= np.abs(np.diff(x[round(0.1 * RATE) : round(0.19 * RATE)])).max()


# -- steady state allocates nothing ---------------------------------------------


def test_render_allocates_nothing_once_warmed_up() -> None:
    s, a = make_synth(effects=True), Allocator()
    send(s, a, 0.0, *[program(c, 16 + c) for c in range(8)])
    for k in range(64):
        send(s, a, 0.0, note_on(k % 8, 36 + k, 100))
    out = np.zeros((128, 2), dtype=np.float32)
    for _ in range(100):
        s.render(out)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            s.render(out)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert s.stats()["voices"] == 64
    # Nothing stays allocated; what a render call allocates and frees again (numpy's
    # iterator objects for strided views, result scalars) stays under a few KB.
    assert current - base < 1024
    assert peak - base < 8192


def test_applying_events_leaves_no_garbage_behind() -> None:
    s, a = make_synth(), Allocator()
    out = np.zeros((128, 2), dtype=np.float32)
    t = 0.0

    def cycle(k: int) -> None:
        nonlocal t
        send(s, a, t, note_on(0, 60 + k % 12, 100), cc(0, 7, 90 + k % 20))
        send(s, a, t + 0.001, note_off(0, 60 + k % 12))
        s.render(out)
        t += 128 / RATE

    for k in range(300):
        cycle(k)
    tracemalloc.start()
    try:
        for k in range(300):
            cycle(k)
        first = tracemalloc.get_traced_memory()[0]
        for k in range(600):
            cycle(k)
        second = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert second - first < 1024  # no growth: what is held (the pending list) is bounded
    assert a.in_use <= 4
