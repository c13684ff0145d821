"""``SoundFontSynth``: the compiled engine in the synth miniport's role (an MXF sink rendering KS frames).

Theory of operation
-------------------
It plays the same part as :class:`mxfd.synth.Synth`, on the same
:class:`~mxfd.synth.sink.MiniportSink` (event intake from any thread, a
pending list ordered by sample, states and KS frames).  Per block, the events due in it are written into
the engine's preallocated event arrays (offset, channel group, bytes; a
raw run with running status split by :mod:`mxfd.core.midi`'s table; a GM,
GS or XG reset SysEx becomes a System Reset of its group) and one compiled
call (:func:`~mxfd.synth.engine.block.render_block`) renders the block with
every event at its own sample.  The master section (effect returns and
the safety limiter) is :class:`~mxfd.synth.master.Master`, skipped when
nothing sounds.

Channel groups are mapped to slots of 16 channels on first use, up to
``groups`` slots; messages for further groups play on the last slot and
are counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from mxfd.core import midi
from mxfd.core.event import EVENT_INCOMPLETE, KernelEvent
from mxfd.core.mxf import KSState
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.block import render_block
from mxfd.synth.engine.channels import CHANNELS_PER_GROUP, SYSTEM_RESET, reset_all, reset_group
from mxfd.synth.master import Master
from mxfd.synth.miniport import Synth
from mxfd.synth.sink import SYSEX_KEEP, MiniportSink
from mxfd.synth.soundfont.font import SoundFont

if TYPE_CHECKING:
    pass

#: FluidSynth's default synth.gain: a font sounds as loud here as there.
FLUIDSYNTH_GAIN: Final = 0.2


class SoundFontSynth(MiniportSink):
    """The synth miniport playing a SoundFont through the compiled voice engine."""

    def __init__(
        self,
        font: SoundFont,
        sample_rate: int = 48000,
        *,
        polyphony: int = 256,
        block_frames: int = 128,
        gain_db: float = 0.0,
        reverb: bool = True,
        chorus: bool = True,
        groups: int = 16,
        events_per_block: int = 512,
    ) -> None:
        super().__init__(sample_rate, block_frames)
        self.font = font
        self.polyphony = int(polyphony)
        self._chunk = max(int(block_frames), 16)
        gain = FLUIDSYNTH_GAIN * 10.0 ** (gain_db / 20.0)
        self.engine_state, self._a = L.new_state(
            font,
            voices=self.polyphony,
            channels=groups * CHANNELS_PER_GROUP,
            events=events_per_block,
            block=self._chunk,
            rate=float(self.sample_rate),
            gain=gain,
        )
        self._a["config"][L.G_REVERB] = 1.0 if reverb else 0.0
        self._a["config"][L.G_CHORUS] = 1.0 if chorus else 0.0
        reset_all(self.engine_state)
        self.master = Master(self.sample_rate, self._chunk, reverb or chorus)
        if not reverb:
            self.master.reverb = None
        if not chorus:
            self.master.chorus = None
        self._slots: dict[int, int] = {}
        self._groups = groups
        self.groups_overflow = 0
        self.sysex_ignored = 0

    # -- control ---------------------------------------------------------------------------

    def release_channel_group(self, group: int) -> None:
        """Release the notes and pedals of ``group`` (what a vanished source left held)."""
        slot = self._slots.get(group)
        if slot is None:
            return
        with self._lock:
            a = self._a
            for c in range(slot * CHANNELS_PER_GROUP, (slot + 1) * CHANNELS_PER_GROUP):
                for num, value in ((64, 0), (66, 0), (123, 0)):
                    a["ev_offset"][0] = 0
                    a["ev_base"][0] = slot * CHANNELS_PER_GROUP
                    a["ev_length"][0] = 3
                    a["ev_data"][0, :] = (0xB0 | (c % CHANNELS_PER_GROUP), num, value)
                    render_block(self.engine_state, 1, 0)

    def _sound_off_all(self) -> None:
        for slot in range(self._groups):
            reset_group(slot * CHANNELS_PER_GROUP, self.engine_state)

    # -- status ------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True when nothing sounds, no effect rings and no event waits."""
        k = self._a["counters"]
        return (
            k[L.K_HIGH_WATER] == 0
            and not self.master.tail_active
            and not self._inbox
            and self._head >= len(self._pending)
        )

    def stats(self) -> dict[str, object]:
        k = self._a["counters"]
        return {
            "soundfont": self.font.path,
            "voices": int(k[L.K_SOUNDING]),
            "voices_peak": int(k[L.K_VOICES_PEAK]),
            "polyphony": self.polyphony,
            "notes": int(k[L.K_NOTES]),
            "stolen": int(k[L.K_STOLEN]),
            "exclusive_chokes": int(k[L.K_EXCLUSIVE_KILLS]),
            "no_preset": int(k[L.K_NO_PRESET]),
            "events_applied": self.events_applied,
            "late_events": self.late_events,
            "events_pending": len(self._pending) - self._head + len(self._inbox),
            "ignored": {"engine": int(k[L.K_IGNORED]), "sysex": self.sysex_ignored},
            "malformed": int(k[L.K_MALFORMED]),
            "channel_groups": len(self._slots),
            "channel_groups_overflow": self.groups_overflow,
            "sample_position": self._sample,
            "limited_chunks": self.master.limited,
            "soft_clipped_chunks": self.master.clipped,
            "state": self.state.name,
        }

    # -- rendering ---------------------------------------------------------------------------

    def render(self, out: npt.NDArray[np.float32]) -> None:
        """Render the next ``len(out)`` frames into ``out`` (float32, shape (n, 2))."""
        n = out.shape[0]
        with self._lock:
            start = self._sample
            run = self.state is KSState.RUN
            if run:
                self._drain(start)
            done = 0
            while done < n:
                m = min(n - done, self._chunk)
                m = self._render_chunk(out[done : done + m], start + done, m, run)
                done += m
            self._sample = start + n
            if n > self._block:
                self._block = n

    def _render_chunk(self, out: npt.NDArray[np.float32], t0: int, m: int, run: bool) -> int:
        """Render up to ``m`` frames from sample ``t0``; fewer if the block's event arrays fill up. Frames done."""
        a = self._a
        n_events = 0
        if run:
            pending_at = self._pending_at
            capacity = len(a["ev_offset"])
            while self._head < len(pending_at) and pending_at[self._head] < t0 + m:
                at = pending_at[self._head]
                if n_events + 3 > capacity:  # room for a raw run's messages is checked as they are split
                    m = max(at - t0, 1) if at > t0 else m
                    break
                evt = self._pending[self._head]
                self._head += 1
                n_events = self._encode(evt, at - t0, n_events, capacity)
                self.events_applied += 1
                evt.allocator.put_message(evt)
            if self._head > 64 and self._head * 2 > len(pending_at):
                del self._pending[: self._head]
                del pending_at[: self._head]
                self._head = 0
        k = a["counters"]
        if n_events == 0 and k[L.K_HIGH_WATER] == 0 and not self.master.tail_active:
            out[:m] = 0.0  # nothing sounds: no DSP at all
            k[L.K_SOUNDING] = 0
            return m
        render_block(self.engine_state, n_events, m)
        self.master.process(a["out"][:, :m], out[:m])
        return m

    def _slot(self, group: int) -> int:
        slot = self._slots.get(group)
        if slot is None:
            if len(self._slots) >= self._groups:
                self.groups_overflow += 1
                return self._groups - 1
            slot = self._slots[group] = len(self._slots)
        return slot

    def _put(self, offset: int, base: int, data: bytes | bytearray, start: int, length: int, row: int) -> int:
        a = self._a
        a["ev_offset"][row] = offset
        a["ev_base"][row] = base
        a["ev_length"][row] = length
        d = a["ev_data"][row]
        d[0] = data[start]
        d[1] = data[start + 1] if length > 1 else 0
        d[2] = data[start + 2] if length > 2 else 0
        return row + 1

    def _encode(self, e: KernelEvent, offset: int, row: int, capacity: int) -> int:
        """Write event ``e`` as messages into the event arrays from ``row``; the next free row."""
        n = e.cb_event
        buf = e.buf
        base = self._slot(e.channel_group) * CHANNELS_PER_GROUP
        if self._sysex_owner is not None:
            if self._sysex_owner is e.allocator and e.pres_time_100ns == self._sysex_time and n and (
                buf[0] < 0x80 or buf[0] == midi.EOX
            ):
                return self._sysex_chunk(e, buf, n, offset, base, row)
            self._sysex_owner = None
            self._sysex_len = 0
            self.sysex_ignored += 1
        if n == 0:
            return self._put(offset, base, b"\x00", 0, 0, row)  # counted as malformed by the engine
        if buf[0] == midi.SYSEX:
            self._sysex_len = 0
            self._sysex_time = e.pres_time_100ns
            return self._sysex_chunk(e, buf, n, offset, base, row)
        if n <= 3 and not e.flags & EVENT_INCOMPLETE:
            return self._put(offset, base, buf, 0, n, row)
        # Raw bytes: whole short messages, running status allowed, as a MIDI cable carries them.
        running = 0
        off = 0
        while off < n and row < capacity:
            b = buf[off]
            kind = midi.STATUS_KIND[b]
            if kind == midi.KIND_REALTIME:
                off += 1
                continue
            if kind in (midi.KIND_SYSEX, midi.KIND_COMMON, midi.KIND_EOX, midi.KIND_UNDEFINED):
                running = 0
                off += 1
                while off < n and buf[off] < 0x80:
                    off += 1
                continue
            if kind == midi.KIND_CHANNEL:
                running = b
                off += 1
            elif not running:
                row = self._put(offset, base, buf, off, 0, row)  # a stray data byte: malformed
                off += 1
                continue
            need = midi.DATA_LENGTH[running]
            if off + need > n:
                return self._put(offset, base, b"\x00", 0, 0, row)
            msg = bytes((running,)) + bytes(buf[off : off + need])
            row = self._put(offset, base, msg, 0, 1 + need, row)
            off += need
        return row

    def _sysex_chunk(self, e: KernelEvent, buf: bytearray, n: int, offset: int, base: int, row: int) -> int:
        keep = self._sysex
        k = self._sysex_len
        take = min(n, SYSEX_KEEP - k)
        if take > 0:
            keep[k : k + take] = buf[:take]
        self._sysex_len = k + n
        if e.flags & EVENT_INCOMPLETE:
            self._sysex_owner = e.allocator
            return row
        self._sysex_owner = None
        total = self._sysex_len
        self._sysex_len = 0
        if total <= SYSEX_KEEP and Synth._is_reset(keep, total):
            return self._put(offset, base, bytes((SYSTEM_RESET,)), 0, 1, row)
        self.sysex_ignored += 1
        return row

    def arrays(self) -> dict[str, Any]:
        """The engine's arrays by field name (for tests and inspection)."""
        return self._a
