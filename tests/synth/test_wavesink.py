"""The wave sink: master time <-> sample position, re-anchoring and the 1/100 software PLL."""

from __future__ import annotations

import pytest

from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.synth.wavesink import DEFAULT_RESYNC_THRESHOLD, PLL_GAIN, WaveSink


def test_identity_mapping_before_any_sync_puts_time_zero_at_sample_zero() -> None:
    sink = WaveSink(48000)
    assert sink.ref_to_sample(0) == 0
    assert sink.ref_to_sample(UNITS_PER_SECOND) == 48000
    assert sink.sample_to_ref(48000) == UNITS_PER_SECOND


def test_ref_to_sample_rounds_to_the_nearest_sample() -> None:
    sink = WaveSink(48000)
    one_sample = UNITS_PER_SECOND / 48000  # 208.33 units
    assert sink.ref_to_sample(round(10 * one_sample + 100)) == 10
    assert sink.ref_to_sample(round(10 * one_sample + 110)) == 11


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_sample_to_ref_and_back_is_identity(rate: int) -> None:
    sink = WaveSink(rate)
    sink.sync_to_master(123_456_789, 1_000, start=True)
    for sample in (0, 1, 999, 1000, 1001, 48000 * 3600, 2**40):
        assert sink.ref_to_sample(sink.sample_to_ref(sample)) == sample


def test_start_sync_anchors_the_sample_at_the_master_time() -> None:
    sink = WaveSink(48000)
    sink.sync_to_master(5 * UNITS_PER_SECOND, 777, start=True)
    assert sink.ref_to_sample(5 * UNITS_PER_SECOND) == 777
    assert sink.ref_to_sample(6 * UNITS_PER_SECOND) == 777 + 48000
    assert sink.sample_to_ref(777) == 5 * UNITS_PER_SECOND


def test_a_sync_corrects_one_hundredth_of_the_measured_error() -> None:
    sink = WaveSink(48000)
    sink.sync_to_master(0, 0, start=True)
    # The device says sample 48000 plays 1 ms later than the mapping thinks.
    err = 10_000
    sink.sync_to_master(UNITS_PER_SECOND + err, 48000)
    assert sink.last_error == pytest.approx(err)
    assert sink.offset == pytest.approx(err * PLL_GAIN)
    assert sink.sample_to_ref(48000) == UNITS_PER_SECOND + round(err * PLL_GAIN)


def test_steady_drift_is_followed_without_accumulating_error() -> None:
    """A device clock 100 ppm fast, synced every 20 ms for an hour: the error stays bounded."""
    rate = 48000
    sink = WaveSink(rate)
    sink.sync_to_master(0, 0, start=True)
    period = rate // 50
    worst = 0.0
    for k in range(1, 180_000):
        sample = k * period
        true_ref = round(sample * UNITS_PER_SECOND / rate * (1 + 100e-6))
        sink.sync_to_master(true_ref, sample)
        if k > 5000:
            worst = max(worst, abs(sink.last_error))
    # Steady state error = drift per sync / gain = 2 us / 0.01 = 200 us; it must not grow.
    assert worst < 2_100
    assert sink.resyncs == 1


def test_one_late_callback_moves_the_mapping_by_only_a_hundredth() -> None:
    sink = WaveSink(48000)
    sink.sync_to_master(0, 0, start=True)
    before = sink.sample_to_ref(96000)
    sink.sync_to_master(2 * UNITS_PER_SECOND + 50_000, 96000)  # 5 ms jitter
    assert abs(sink.sample_to_ref(96000) - before) <= 500


def test_a_huge_error_reanchors_instead_of_slewing() -> None:
    sink = WaveSink(48000)
    sink.sync_to_master(0, 0, start=True)
    jump = DEFAULT_RESYNC_THRESHOLD * 3
    sink.sync_to_master(UNITS_PER_SECOND + jump, 48000)
    assert sink.resyncs == 2
    assert sink.ref_to_sample(UNITS_PER_SECOND + jump) == 48000


def test_invalid_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        WaveSink(0)
