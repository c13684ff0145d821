"""``PlaneSynth``: the SoundFont miniport whose render happens in the audio callback, not in Python.

Theory of operation
-------------------
It is a :class:`~mxfd.synth.engine.synth.SoundFontSynth` on the control
plane's side only: events arrive as before (``put_message`` from any
thread, scheduled by sample on the wave sink's clock), but instead of
rendering blocks, :meth:`feed` writes the messages due before a frame into
its :class:`~mxfd.synth.engine.dataplane.DataPlane`'s event ring, each
stamped with its own frame; the callback (:mod:`mxfd.io.jack_pin`) renders
them there.  Feeding runs on one control-plane thread (the ring has one
producer), typically once a cycle, a cycle ahead of the callback.

What used to change the engine directly from the control plane (release a
vanished source's held notes, silence everything, another font) travels in
the same ring as records, so the callback, the only owner of the voice
arrays while it runs, applies them in order with the events around them.

*Another font* (:meth:`replace_font`): the new engine state is built here,
offered to the plane and swapped in by the callback at a :data:`BANK`
record; the old state retires there, sounding its held notes on.  Every
state is numbered by its offer (0: the first).  This side keeps each one
alive while the plane may still reach it (its engine, its retiring state,
its offered state), and lets go of the others in :meth:`collect_retired`,
on a control thread, only once they were already out of reach at the
previous call, so the callback never drops the last reference (which
would free memory in JACK's thread).  The master section is the plane's:
a font swapped in on the pin can turn reverb and chorus off, not on.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from mxfd.core.mxf import KSState
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.channels import CHANNELS_PER_GROUP
from mxfd.synth.engine.dataplane import (
    BANK,
    C_RETIRED,
    C_RETIRING,
    C_SWAPS,
    MSG,
    P_BANK,
    SOUND_OFF,
    EventRing,
    load_control_calls,
    new_dataplane,
    offer,
    pack,
)
from mxfd.synth.engine.synth import Retiring, SoundFontSynth
from mxfd.synth.soundfont.font import SoundFont

#: Records the event ring holds: ten periods of a 10 000-events-a-second stream, many times over.
RING_RECORDS: Final = 16384


class PlaneSynth(SoundFontSynth):
    """A SoundFont miniport whose events feed a data plane (see the module docstring)."""

    def __init__(self, font: SoundFont, sample_rate: int = 48000, **kwargs: Any) -> None:
        super().__init__(font, sample_rate, **kwargs)
        self.plane, self.plane_arrays = new_dataplane(
            self.engine_state, self.master, frames=self._chunk, groups=self._groups, ring_records=RING_RECORDS
        )
        self.ring = EventRing(self.plane_arrays)
        load_control_calls(self.plane, self.engine_state)
        #: every engine state the plane may reach, by the number of its offer (see the module docstring)
        self._states: dict[int, Retiring] = {0: Retiring(self.engine_state, self._a, self.font)}
        self._unreached: set[int] = set()

    # -- another font ----------------------------------------------------------------------------

    def replace_font(self, font: SoundFont, *, gain_db: float = 0.0, reverb: bool = True, chorus: bool = True) -> None:
        """Play ``font`` (at ``gain_db``) from the callback's next chunk on; held notes sound on from the old one.

        ``reverb`` and ``chorus`` can go off (no voice sends to them) but not on where the plane
        began without them: its master section is fixed.
        """
        state, arrays = self._new_state(font, gain_db, reverb and self.effects[0], chorus and self.effects[1])
        with self._lock:
            offer(self.plane, state)
            number = int(self.plane_arrays["prod"][P_BANK])
            self._states[number] = Retiring(state, arrays, font)
            self.engine_state, self._a, self.font = state, arrays, font
            self.ring.push(self.ring.position, pack(BANK, 0, 0, 0, 0, 0))

    def _reached(self) -> set[int]:
        cons, prod = self.plane_arrays["cons"], self.plane_arrays["prod"]
        return {int(cons[C_SWAPS]), int(cons[C_RETIRED]), int(prod[P_BANK])}

    @property
    def retiring_voices(self) -> int:
        """Voices still sounding from a replaced font."""
        cons = self.plane_arrays["cons"]
        if not cons[C_RETIRING]:
            return 0
        old = self._states.get(int(cons[C_RETIRED]))
        return int(old.arrays["counters"][L.K_SOUNDING]) if old is not None else 0

    def collect_retired(self) -> int:
        """Let go of the states the plane can no longer reach, as of the previous call too (a control thread)."""
        with self._lock:
            unreached = set(self._states) - self._reached()
            done = unreached & self._unreached
            self._unreached = unreached - done
            for number in done:
                del self._states[number]
        return len(done)

    def feed(self, until: int) -> None:
        """Queue every event due before frame ``until`` in the ring (the one feeding thread)."""
        with self._lock:
            position = self.ring.position
            self._sample = position
            if self.state is not KSState.RUN:
                return
            self._drain(position)
            pending, pending_at = self._pending, self._pending_at
            while self._head < len(pending_at) and pending_at[self._head] < until:
                at = pending_at[self._head]
                evt = pending[self._head]
                self._head += 1
                self._encode(evt, at, 0, RING_RECORDS)
                self.events_applied += 1
                evt.allocator.put_message(evt)
            if self._head > 64 and self._head * 2 > len(pending_at):
                del pending[: self._head]
                del pending_at[: self._head]
                self._head = 0

    def _put(self, offset: int, base: int, data: bytes | bytearray, start: int, length: int, row: int) -> int:
        # ``offset`` is the event's frame: the ring takes absolute frames
        b1 = data[start + 1] if length > 1 else 0
        b2 = data[start + 2] if length > 2 else 0
        self.ring.push(offset, pack(MSG, base, length, data[start], b1, b2))
        return row + 1

    def render(self, out: npt.NDArray[np.float32]) -> None:
        raise RuntimeError("a PlaneSynth is rendered by its data plane (mxfd.synth.engine.dataplane.run_cycle)")

    def thru_base(self, group: int) -> int:
        """The first channel ``group`` plays on, for input played straight into the plane's thru queue."""
        with self._lock:
            return self._slot(group) * CHANNELS_PER_GROUP

    def release_channel_group(self, group: int) -> None:
        """Release the notes and pedals of ``group``, in order with what the ring already holds."""
        slot = self._slots.get(group)
        if slot is None:
            return
        with self._lock:
            at = self.ring.position
            base = slot * CHANNELS_PER_GROUP
            for c in range(CHANNELS_PER_GROUP):
                for num in (64, 66, 123):
                    self.ring.push(at, pack(MSG, base, 3, 0xB0 | c, num, 0))

    def panic(self) -> int:
        """All sound off and controllers reset (CC 120, CC 121) on every channel, through the ring; voices sounding."""
        with self._lock:
            sounding = int(self._a["counters"][L.K_SOUNDING]) + self.retiring_voices
            at = self.ring.position
            for slot in sorted(set(self._slots.values())):
                base = slot * CHANNELS_PER_GROUP
                for c in range(CHANNELS_PER_GROUP):
                    for num in (120, 121):
                        self.ring.push(at, pack(MSG, base, 3, 0xB0 | c, num, 0))
        return sounding

    def _sound_off_all(self) -> None:
        self.ring.push(self.ring.position, pack(SOUND_OFF, 0, 0, 0, 0, 0))

    @property
    def has_pending(self) -> bool:
        """Events taken and not yet in the ring."""
        return self._head < len(self._pending_at) or bool(self._inbox)

    @property
    def idle(self) -> bool:
        ring_empty = int(self.plane_arrays["prod"][0]) == int(self.plane_arrays["cons"][0])
        return super().idle and ring_empty and not self.plane_arrays["cons"][C_RETIRING]
