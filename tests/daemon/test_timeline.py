"""The timeline: both clocks' map, stamps on the output's clock, and thru latencies that follow the device."""

from __future__ import annotations

from typing import Optional

from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.daemon.config import Config
from mxfd.daemon.timeline import SETTLE_SYNCS, Timeline, thru_latency_frames

RATE = 48000
T0 = 10 * UNITS_PER_SECOND


def at(frames: int) -> int:
    return T0 + frames * UNITS_PER_SECOND // RATE


class Sink:
    """A wave sink that is exactly on the reports: sample ``p`` is at the master time last reported for it."""

    def __init__(self) -> None:
        self.anchor = (0, T0)
        self.starts = 0

    def sync_to_master(self, ref_time: int, sample_position: int, start: bool = False) -> None:
        self.anchor = (sample_position, ref_time)
        self.starts += start

    def sample_to_ref(self, sample_position: int) -> int:
        return self.anchor[1] + (sample_position - self.anchor[0]) * UNITS_PER_SECOND // RATE


def test_the_device_latency_is_the_most_measured_while_the_output_settles() -> None:
    t, sink = Timeline(Config()), Sink()
    said: list[Optional[int]] = [0, 128, 127]
    base = thru_latency_frames(Config(), frame_accurate=True)
    for i in range(3):
        t.on_sync(at(1024 * i), 1024 * i, False, sink, lambda: said.pop(0))
    assert t.frame_latency_frames == base + 128  # the 0 before its port was connected, the 127 after: not kept
    t.restart()  # a new stream: its own latency, smaller or not
    t.on_sync(at(4096), 0, False, sink, lambda: 64)
    assert t.frame_latency_frames == base + 64


def test_the_output_is_asked_only_while_it_settles() -> None:
    t, sink = Timeline(Config()), Sink()
    asked = 0

    def read() -> int:
        nonlocal asked
        asked += 1
        return 128

    for i in range(SETTLE_SYNCS + 10):
        t.on_sync(at(1024 * i), 1024 * i, False, sink, read)
    assert asked == SETTLE_SYNCS
    assert sink.starts == 1


def test_without_an_output_the_settling_waits_for_one() -> None:
    t, sink = Timeline(Config()), Sink()
    for i in range(SETTLE_SYNCS):
        t.on_sync(at(1024 * i), 1024 * i, False, sink, lambda: None)
    t.on_sync(at(0), 0, False, sink, lambda: 128)
    assert t.device_frames == 128


def test_a_step_re_anchors_the_wave_sink() -> None:
    t, sink = Timeline(Config()), Sink()
    t.on_sync(at(0), 0, False, sink, lambda: 0)
    t.on_sync(at(1024), 1024, True, sink, lambda: 0)
    t.on_sync(at(2048), 2048, False, sink, lambda: 0)
    assert sink.starts == 2


def test_a_stamp_is_the_master_time_a_position_left_mxfd_before_the_devices_latency() -> None:
    t, sink = Timeline(Config()), Sink()
    assert t.stamp(0) is None  # no report yet
    t.on_sync(at(960), 960, False, sink, lambda: 48)  # whole milliseconds: the sums are exact
    assert t.stamp(1440) == at(1440 - 48)
    t.pos_offset = 48  # the synth is 48 samples ahead of the output's positions (a reopen)
    assert t.stamp(1392) == at(1440 - 48)
    t.shift(96)  # a new synth whose samples are 96 ahead took over
    t.pos_offset += 96  # as the next render finds it: an output position keeps its time
    assert t.stamp(1392) == at(1440 - 48)
    t.restart()
    assert t.stamp(1392) is None


def test_through_the_pin_jack_input_is_heard_one_period_after_its_frame() -> None:
    t = Timeline(Config())
    assert t.thru_latency_ms(128)["through_pin"] == 2.667
    assert t.thru_latency_ms(None)["through_pin"] is None
