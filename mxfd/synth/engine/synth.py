"""``SoundFontSynth``: the compiled engine in the synth miniport's role (an MXF sink rendering KS frames).

Theory of operation
-------------------
It plays the same part as :class:`mxfd.synth.Synth`: ``put_message``
takes event chains from any thread (appended to a deque, nothing else on
the caller's thread); :meth:`render` runs on the render thread, drains the
deque, places each event at ``wave_sink.ref_to_sample(pres_time)`` (events
in the past play at the block start, counted late) and keeps the rest in a
list ordered by sample.  Per block, the events due in it are written into
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

import bisect
import threading
from collections import deque
from typing import TYPE_CHECKING, Any, Final, Optional

import numpy as np
import numpy.typing as npt

from mxfd.core import midi
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.event import EVENT_INCOMPLETE, PACKAGE_EVENT, KernelEvent
from mxfd.core.mxf import KSState
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.block import render_block
from mxfd.synth.engine.channels import CHANNELS_PER_GROUP, SYSTEM_RESET, reset_all, reset_group
from mxfd.synth.master import Master
from mxfd.synth.miniport import FrameSource, Synth, _return_chain
from mxfd.synth.soundfont.font import SoundFont
from mxfd.synth.wavesink import WaveSink

if TYPE_CHECKING:
    from mxfd.core.frames import Frame

#: FluidSynth's default synth.gain: a font sounds as loud here as there.
FLUIDSYNTH_GAIN: Final = 0.2
_SYSEX_KEEP: Final = 32


class SoundFontSynth:
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
        if not 8000 <= sample_rate <= 192000:
            raise ValueError(f"sample rate must be 8000..192000 Hz, got {sample_rate}")
        self.font = font
        self.sample_rate = int(sample_rate)
        self.polyphony = int(polyphony)
        self._chunk = max(int(block_frames), 16)
        gain = FLUIDSYNTH_GAIN * 10.0 ** (gain_db / 20.0)
        self.state, self._a = L.new_state(
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
        reset_all(self.state)
        self.wave_sink = WaveSink(self.sample_rate)
        self.master = Master(self.sample_rate, self._chunk, reverb or chorus)
        if not reverb:
            self.master.reverb = None
        if not chorus:
            self.master.chorus = None
        self.state_ = KSState.RUN
        self._block = int(block_frames)
        self._inbox: deque[KernelEvent] = deque()
        self._lock = threading.Lock()
        self._pending: list[KernelEvent] = []
        self._pending_at: list[int] = []
        self._head = 0
        self._sample = 0
        self._slots: dict[int, int] = {}
        self._groups = groups
        self._sysex = bytearray(_SYSEX_KEEP)
        self._sysex_len = 0
        self._sysex_owner: object = None
        self._sysex_time = 0
        self.events_applied = 0
        self.late_events = 0
        self.groups_overflow = 0
        self.frames_rendered = 0
        self.frames_refused = 0
        self.sysex_ignored = 0

    # -- timing ------------------------------------------------------------------------------

    @property
    def schedule_prefetch(self) -> int:
        """How far ahead of its presentation time the synth wants an event (100 ns): one block."""
        return -(-self._block * UNITS_PER_SECOND // self.sample_rate)

    @property
    def block_frames(self) -> int:
        return self._block

    @property
    def sample_position(self) -> int:
        return self._sample

    # -- MXF ---------------------------------------------------------------------------------

    def set_state(self, state: KSState) -> None:
        state = KSState(state)
        with self._lock:
            self.state_ = state
            if state is KSState.STOP:
                self._flush_events()
                self._sound_off_all()

    def put_message(self, evt: Optional[KernelEvent]) -> None:
        """Take a chain of events (any thread); ownership passes to the synth."""
        if evt is None:
            return
        if self.state_ is KSState.STOP:
            _return_chain(evt)
            return
        self._inbox.append(evt)

    def connect_output(self, sink: object) -> None:
        """Accepted and ignored: a synth is the end of the MIDI graph."""

    def disconnect_output(self, sink: object = None) -> None:
        """Accepted and ignored."""

    def all_sound_off(self) -> None:
        with self._lock:
            self._sound_off_all()

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
                    render_block(self.state, 1, 0)

    def _sound_off_all(self) -> None:
        for slot in range(self._groups):
            reset_group(slot * CHANNELS_PER_GROUP, self.state)

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
            "state": self.state_.name,
        }

    # -- rendering ---------------------------------------------------------------------------

    def render(self, out: npt.NDArray[np.float32]) -> None:
        """Render the next ``len(out)`` frames into ``out`` (float32, shape (n, 2))."""
        n = out.shape[0]
        with self._lock:
            start = self._sample
            run = self.state_ is KSState.RUN
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

    def render_frame(self, frame_allocator: FrameSource) -> Optional[Frame]:
        """Render the next frame from ``frame_allocator``; None (counted) when it has none free."""
        frame = frame_allocator.allocate()
        if frame is None:
            self.frames_refused += 1
            return None
        audio_view = getattr(frame_allocator, "audio_view", None)
        view = audio_view(frame, 2) if audio_view is not None else frame.view(np.float32).reshape(-1, 2)
        self.render(view)
        self.frames_rendered += 1
        return frame

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
        render_block(self.state, n_events, m)
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
        take = min(n, _SYSEX_KEEP - k)
        if take > 0:
            keep[k : k + take] = buf[:take]
        self._sysex_len = k + n
        if e.flags & EVENT_INCOMPLETE:
            self._sysex_owner = e.allocator
            return row
        self._sysex_owner = None
        total = self._sysex_len
        self._sysex_len = 0
        if total <= _SYSEX_KEEP and Synth._is_reset(keep, total):
            return self._put(offset, base, bytes((SYSTEM_RESET,)), 0, 1, row)
        self.sysex_ignored += 1
        return row

    def _drain(self, block_start: int) -> None:
        inbox = self._inbox
        while inbox:
            e: Optional[KernelEvent] = inbox.popleft()
            while e is not None:
                nxt = e.next_evt
                e.next_evt = None
                if e.flags & PACKAGE_EVENT:
                    pkg = e.package_evt
                    e.package_evt = None
                    e.allocator.put_message(e)
                    if pkg is not None:
                        inbox.appendleft(pkg)
                else:
                    self._schedule(e, block_start)
                e = nxt

    def _schedule(self, e: KernelEvent, block_start: int) -> None:
        at = self.wave_sink.ref_to_sample(e.pres_time_100ns)
        if at < block_start:
            at = block_start
            self.late_events += 1
        pa = self._pending_at
        if not pa or at >= pa[-1]:
            pa.append(at)
            self._pending.append(e)
        else:
            k = bisect.bisect_right(pa, at, self._head)
            pa.insert(k, at)
            self._pending.insert(k, e)

    def _flush_events(self) -> None:
        while self._inbox:
            _return_chain(self._inbox.popleft())
        for k in range(self._head, len(self._pending)):
            self._pending[k].allocator.put_message(self._pending[k])
        self._pending.clear()
        self._pending_at.clear()
        self._head = 0
        self._sysex_len = 0
        self._sysex_owner = None

    def arrays(self) -> dict[str, Any]:
        """The engine's arrays by field name (for tests and inspection)."""
        return self._a
