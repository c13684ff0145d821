"""``Timeline``: the one place that knows both clocks, the master clock and the output's frames.

Theory of operation
-------------------
Every event carries a presentation time on the master clock (100 ns
units); the synth renders in sample positions, and the audio output plays
frames.  The output reports its clock every few cycles (``on_sync``): the
master time at which a sample leaves the device.  The synth's wave sink
follows those reports with its PLL (re-anchored, not slewed, after a start
or a step: an xrun moved the frames against the clock), and the timeline
keeps from the latest report the *output map*, ``(synth sample, its master
time, device latency)``, one tuple swapped whole so the JACK reader's
thread reads it without a lock, to stamp input at its frame
(:meth:`Timeline.stamp`).

The *thru latencies* follow from the pipeline's depth: the periods queued
ahead of the device plus the device's own latency, and for input stamped on
arrival one period more (:func:`thru_latency_frames`).  The device's latency
is what its reports measure; for :data:`SETTLE_SYNCS` reports after a start
the timeline asks for it again and keeps the most it was told, since a
stream reopened on JACK reports none of its own until its ports are
connected, and a figure short of the truth makes every event late.

Nothing here does I/O: the engine passes the wave sink and a function that
reads the output's latency.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.daemon.config import Config

#: Clock reports after the output (re)starts that read its ports and latency again: a stream
#: reopened on JACK (PipeWire's quantum changed) reports no latency of its own until its ports
#: are connected, and no port until it knows its name.
SETTLE_SYNCS = 64


class WaveSink(Protocol):
    """The synth's side of the clock: its PLL from master time to sample positions."""

    def sync_to_master(self, ref_time: int, sample_position: int, start: bool = False) -> None: ...

    def sample_to_ref(self, sample_position: int) -> int: ...


def thru_latency_frames(config: Config, device_frames: int = 0, *, frame_accurate: bool = False) -> int:
    """The render latency in frames: the configured fixed value, or the pipeline depth.

    The depth is the frames queued ahead of the device (``periods``) and the
    device's own output latency (``device_frames``, known once it plays),
    plus the margin.  Events stamped on arrival (rtmidi, raw devices,
    clients) need one period more: one may arrive just after the frame it
    belongs in was rendered.  Events stamped at their frame on the output's
    clock (the JACK reader) do not: the render waits for their cycle.
    """
    a = config.audio
    if config.thru.latency_ms is not None:
        return max(1, round(config.thru.latency_ms * a.rate / 1000))
    periods = a.periods if frame_accurate else a.periods + 1
    return periods * a.period + device_frames + round(config.thru.margin_ms * a.rate / 1000)


class Timeline:
    """The master clock to output frame map, and the thru latencies it implies."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.rate = config.audio.rate
        #: The synth's sample position less the output's (they differ after a reopen).
        self.pos_offset = 0
        self.device_frames = 0
        self.device_100ns = 0
        #: Input stamped on arrival, and input stamped at its frame: frames and master-clock units.
        self.render_latency_frames = 0
        self.render_latency_100ns = 0
        self.frame_latency_frames = 0
        self.frame_latency_100ns = 0
        #: (synth sample, its master time, device latency) of the latest report; None until one.
        self.out_map: Optional[tuple[int, int, int]] = None
        self._start = True
        self._settle_syncs = 0
        self._settled_frames = -1
        self.set_latency(0)

    def reconfigure(self, config: Config) -> bool:
        """A reloaded config (its rate, periods or thru may differ); True if a latency changed."""
        self.config = config
        self.rate = config.audio.rate
        return self.set_latency(self.device_frames)

    def set_latency(self, device_frames: int) -> bool:
        """Fix the thru latencies for a device of ``device_frames`` latency; True if they changed."""
        self.device_frames = device_frames
        self.device_100ns = device_frames * UNITS_PER_SECOND // self.rate
        frames = thru_latency_frames(self.config, device_frames)
        exact = thru_latency_frames(self.config, device_frames, frame_accurate=True)
        changed = (frames, exact) != (self.render_latency_frames, self.frame_latency_frames)
        self.render_latency_frames = frames
        self.render_latency_100ns = frames * UNITS_PER_SECOND // self.rate
        self.frame_latency_frames = exact
        self.frame_latency_100ns = exact * UNITS_PER_SECOND // self.rate
        return changed

    def restart(self) -> None:
        """The output (re)started, or its clock mapping stepped: the next report re-anchors."""
        self._start = True
        self.out_map = None

    def on_sync(
        self,
        ref_time: int,
        sample_position: int,
        step: bool,
        wave_sink: WaveSink,
        read_device_frames: Callable[[], Optional[int]],
    ) -> bool:
        """The output's clock report; True if the thru latencies changed.

        ``read_device_frames`` reads the output's latency (and whatever else
        the caller follows of it) while the output settles; None: no output.
        """
        start, self._start = self._start, False
        synth_position = sample_position + self.pos_offset
        wave_sink.sync_to_master(ref_time, synth_position, start=start or step)
        changed = False
        if start:
            self._settle_syncs = SETTLE_SYNCS
            self._settled_frames = -1
        if self._settle_syncs > 0:
            frames = read_device_frames()
            if frames is not None:
                self._settle_syncs -= 1
                # The most measured since the start: one frame long costs nothing, one short is late.
                if frames > self._settled_frames:
                    self._settled_frames = frames
                    changed = self.set_latency(frames)
        # One tuple, swapped whole: JACK's thread reads it without a lock.
        self.out_map = (synth_position, wave_sink.sample_to_ref(synth_position), self.device_100ns)
        return changed

    def shift(self, samples: int) -> None:
        """A new synth took over whose sample positions are ``samples`` ahead of the old one's."""
        m = self.out_map
        if m is not None:
            self.out_map = (m[0] + samples, m[1], m[2])

    def stamp(self, played: int) -> Optional[int]:
        """Master time at which output position ``played`` left mxfd (before the device's latency)."""
        m = self.out_map
        if m is None:
            return None
        return m[1] + (played + self.pos_offset - m[0]) * UNITS_PER_SECOND // self.rate - m[2]

    def thru_latency_ms(self, pin_period: Optional[int]) -> dict[str, Optional[float]]:
        """Key to sound at mxfd's output: JACK input (``frame_accurate``), other input
        (``on_arrival``), and, on the JACK pin (``pin_period`` frames a cycle), JACK input the
        reader plays through the pin, heard one period after its frame (``through_pin``)."""
        return {
            "frame_accurate": round(self.frame_latency_100ns / 10_000, 3),
            "on_arrival": round(self.render_latency_100ns / 10_000, 3),
            "through_pin": round(pin_period * 1000 / self.rate, 3) if pin_period else None,
        }


__all__ = ["SETTLE_SYNCS", "Timeline", "WaveSink", "thru_latency_frames"]
