"""``WaveSink``: the sample clock of the synth, locked to the master clock.

Theory of operation
-------------------
This is ISynthSinkDMus's role.  The synth renders by sample position (a
64-bit count of frames since the stream started); every event carries a
presentation time on the master clock (``REFERENCE_TIME``, 100 ns).  The
sink maps one to the other::

    ref(sample) = anchor_ref + offset + (sample - anchor_sample) * 10**7 / rate

``sync_to_master(ref_time, sample_position, start=True)`` sets the anchor:
"sample ``sample_position`` is played at master time ``ref_time``" (the
original's ``SyncToMaster(rfTime, fStart=TRUE)`` on entering RUN).  Later
calls without ``start`` report the same kind of observation from the audio
device; the difference between where the device says the sample plays and
where the mapping puts it is the drift of the device clock against the
master clock.  Like ddksynth's software PLL, the sink corrects only 1/100
of the measured error per sync, so one late callback cannot make the
mapping jump, while a steady drift is followed without accumulating (the
error settles at ``100 ×`` the drift per sync interval).  An error larger
than ``resync_threshold`` means the stream was interrupted (an xrun, a
device restart), and a slow correction would take seconds to converge: the
sink re-anchors at once and counts it.

Sample positions are Python ints (64-bit in the original, unbounded here);
the offset is kept as a float of 100 ns units so fractional corrections
accumulate instead of rounding away.
"""

from __future__ import annotations

from typing import Final

from mxfd.core.clock import UNITS_PER_SECOND, ReferenceTime

#: Fraction of the measured error the PLL corrects per sync (ddksynth: 1/100).
PLL_GAIN: Final = 0.01
#: Errors beyond this (100 ns units; 100 ms) re-anchor instead of slewing.
DEFAULT_RESYNC_THRESHOLD: Final = 100 * 10_000


class WaveSink:
    """Maps master-clock time to sample position and back, following drift.

    Parameters
    ----------
    sample_rate:
        Frames per second of the stream.
    resync_threshold:
        An error (100 ns units) beyond which a sync re-anchors at once.
    """

    __slots__ = (
        "sample_rate",
        "resync_threshold",
        "_anchor_ref",
        "_anchor_sample",
        "_offset",
        "syncs",
        "resyncs",
        "last_error",
    )

    def __init__(self, sample_rate: int, *, resync_threshold: int = DEFAULT_RESYNC_THRESHOLD) -> None:
        if sample_rate <= 0:
            raise ValueError(f"sample rate must be positive, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.resync_threshold = resync_threshold
        self._anchor_ref = 0
        self._anchor_sample = 0
        self._offset = 0.0
        #: Syncs seen, and how many of them re-anchored (start or big error).
        self.syncs = 0
        self.resyncs = 0
        #: The last measured error (100 ns units): device time minus mapped time.
        self.last_error = 0.0

    @property
    def offset(self) -> float:
        """The PLL's accumulated correction, in 100 ns units."""
        return self._offset

    def ref_to_sample(self, ref: ReferenceTime) -> int:
        """RefTimeToSample: the sample position played at master time ``ref`` (rounded)."""
        delta = (ref - self._anchor_ref) - self._offset
        return self._anchor_sample + round(delta * self.sample_rate / UNITS_PER_SECOND)

    def sample_to_ref(self, sample: int) -> ReferenceTime:
        """SampleToRefTime: the master time at which ``sample`` is played (rounded)."""
        delta = (sample - self._anchor_sample) * UNITS_PER_SECOND / self.sample_rate
        return self._anchor_ref + round(delta + self._offset)

    def sync_to_master(self, ref_time: ReferenceTime, sample_position: int, start: bool = False) -> None:
        """Report that ``sample_position`` is (being) played at master time ``ref_time``.

        ``start=True`` re-anchors the mapping there (first sync after RUN);
        otherwise 1/100 of the error is corrected.
        """
        self.syncs += 1
        if start:
            self._anchor(ref_time, sample_position)
            return
        delta = (sample_position - self._anchor_sample) * UNITS_PER_SECOND / self.sample_rate
        error = ref_time - (self._anchor_ref + delta + self._offset)
        self.last_error = error
        if abs(error) > self.resync_threshold:
            self._anchor(ref_time, sample_position)
            return
        self._offset += error * PLL_GAIN

    def _anchor(self, ref_time: ReferenceTime, sample_position: int) -> None:
        self._anchor_ref = int(ref_time)
        self._anchor_sample = int(sample_position)
        self._offset = 0.0
        self.last_error = 0.0
        self.resyncs += 1

    def __repr__(self) -> str:
        return (
            f"<WaveSink {self.sample_rate} Hz anchor sample {self._anchor_sample} at {self._anchor_ref}"
            f" offset {self._offset:+.1f}>"
        )
