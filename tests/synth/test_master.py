"""Output headroom: gain staging plus a soft limiter; 64 forte notes never clip."""

from __future__ import annotations

import numpy as np

from mxfd.core.allocator import Allocator
from mxfd.synth.master import CEILING
from tests.synth.helpers import cc, make_synth, note_on, program, render, send


def test_sixty_four_forte_notes_do_not_clip() -> None:
    s, a = make_synth(effects=True), Allocator()
    progs = [0, 19, 30, 48, 56, 61, 81, 62]
    send(s, a, 0.0, *[program(c, progs[c]) for c in range(8)], *[cc(c, 7, 127) for c in range(8)])
    send(s, a, 0.01, *[note_on(k % 8, 36 + k, 127) for k in range(64)])
    out = render(s, 1.5)
    assert s.stats()["notes_sounding"] == 64
    assert np.max(np.abs(out)) < 1.0
    pcm16 = np.rint(np.clip(out, -1, 1) * 32767)
    assert np.count_nonzero(np.abs(pcm16) >= 32767) == 0
    assert s.stats()["limited_chunks"] > 0  # the soft limiter did the work


def test_one_forte_note_is_left_alone_by_the_limiter() -> None:
    s, a = make_synth(effects=True), Allocator()
    send(s, a, 0.0, program(0, 0), note_on(0, 60, 127))
    out = render(s, 1.0)
    assert 0.05 < np.max(np.abs(out)) < CEILING
    assert s.stats()["limited_chunks"] == 0


def test_the_limiter_recovers_after_a_loud_passage() -> None:
    s, a = make_synth(effects=False), Allocator()
    send(s, a, 0.0, *[program(c, 19) for c in range(8)], *[cc(c, 7, 127) for c in range(8)])
    send(s, a, 0.0, *[note_on(k % 8, 40 + k, 127) for k in range(48)])
    send(s, a, 0.3, *[cc(c, 120, 0) for c in range(8)])
    send(s, a, 1.5, note_on(0, 60, 100))
    render(s, 2.0)
    assert s.master.gain > 0.99
