"""The timing tests' takes (``tests.calm``): what counts as undisturbed, and how long a take waits."""

from __future__ import annotations

import time

from tests import calm


def test_each_undisturbed_onset_pairs_with_the_nearest_undisturbed_one_before_it() -> None:
    # a mark 50 frames after onset 1 (within ``after``) and one 5 frames before onset 3 (within ``before``)
    onsets = [1000, 2000, 3000, 4000, 5000]
    assert calm.undisturbed_pairs(onsets, [2050, 3995], before=10, after=100) == {2: 0, 4: 2}


def test_marks_outside_every_onsets_window_disturb_nothing() -> None:
    assert calm.undisturbed_pairs([1000, 2000, 3000], [1500, 2600], before=10, after=100) == {1: 0, 2: 1}


def test_one_undisturbed_onset_gives_no_pair() -> None:
    assert calm.undisturbed_pairs([1000, 2000], [2000], before=10, after=10) == {}


def test_a_take_waits_for_quiet_no_longer_than_its_patience() -> None:
    count = iter(range(1_000_000))  # an xrun at every look: never quiet
    takes = calm.Takes(lambda: next(count), budget_s=0.0)
    t0 = time.monotonic()
    assert list(takes) == [0, 1]  # the least number of takes, whatever the budget
    assert time.monotonic() - t0 < 2 * calm.PATIENCE_S + 1.0
    assert takes.stormy == 2


def test_a_quiet_server_starts_a_take_after_one_quiet_spell() -> None:
    takes = calm.Takes(lambda: 0, budget_s=0.0, least=1)
    assert list(takes) == [0]
    assert calm.QUIET_S <= takes.waits[0] < calm.QUIET_S + 0.5
