"""``SoundFontSynth``: the compiled engine in the synth miniport's role (an MXF sink rendering KS frames).

Theory of operation
-------------------
It is the synth miniport (``mxfd.Synth``), built on
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

*Replacing the font* (:meth:`SoundFontSynth.replace_font`, the daemon's
reload) builds a whole new engine state for the new font off the audio
thread, then swaps it in between two blocks, carrying the channels over
(programs, banks, controllers, pedals; presets looked up again in the new
font).  The old state *retires*: it keeps rendering the voices it has,
from the old font's zones and mapped samples, into the same buses, and
gets every later event of the block too, with its note-ons turned into
note-offs (a key struck again lets go of its old voice, as FluidSynth
does), so held notes sound on until released and no new note starts in
it.  Once its last voice ends it is dropped from the render and kept in
:attr:`SoundFontSynth.retired` until a control thread lets it go
(:meth:`SoundFontSynth.collect_retired`), so the font's mapping is never
closed on the audio thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Optional

import numpy as np
import numpy.typing as npt

from mxfd.core import midi
from mxfd.core.event import EVENT_INCOMPLETE, KernelEvent
from mxfd.core.mxf import KSState
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.block import render_block
from mxfd.synth.engine.channels import (
    CHANNELS_PER_GROUP,
    SET_CHANNEL_TYPE,
    SYSTEM_RESET,
    reset_all,
    reset_group,
    resolve_all,
)
from mxfd.synth.master import Master
from mxfd.synth.sink import SYSEX_KEEP, MiniportSink, is_reset_sysex
from mxfd.synth.soundfont.font import SoundFont

if TYPE_CHECKING:
    from mxfd.synth.engine.shared import VoiceHelper

#: FluidSynth's default synth.gain: a font sounds as loud here as there.
FLUIDSYNTH_GAIN: Final = 0.2
_EVENT_FIELDS: Final = ("ev_offset", "ev_base", "ev_length", "ev_data")
NOTE_ON: Final = 0x90
NOTE_OFF: Final = 0x80


class Retiring:
    """An engine state whose font was replaced: it renders the voices it has until they end."""

    __slots__ = ("state", "arrays", "font")

    def __init__(self, state: L.EngineState, arrays: dict[str, npt.NDArray[Any]], font: SoundFont) -> None:
        self.state = state
        self.arrays = arrays
        self.font = font

    @property
    def voices(self) -> int:
        return int(self.arrays["counters"][L.K_HIGH_WATER])


def gs_rhythm_part(m: bytearray, n: int) -> tuple[int, int] | None:
    """(channel, 1 for drums or 0) of a GS "use for rhythm part" SysEx in ``m[:n]``, else None.

    ``F0 41 dev 42 12 40 1x 15 map sum F7``: part ``x`` (0 is part 10, 1-9 parts 1-9, A-F parts 11-16;
    part n plays MIDI channel n), map 0 melodic, 1 or 2 a drum map; the Roland checksum must hold.
    """
    if n != 11 or m[0] != 0xF0 or m[1] != 0x41 or m[3] != 0x42 or m[4] != 0x12 or m[10] != 0xF7:
        return None
    if m[5] != 0x40 or (m[6] & 0xF0) != 0x10 or m[7] != 0x15 or m[8] > 2:
        return None
    if (sum(m[5:9]) + m[9]) % 128 != 0:
        return None
    x = m[6] & 0x0F
    channel = 9 if x == 0 else (x - 1 if x <= 9 else x)
    return channel, 1 if m[8] else 0


class SoundFontSynth(MiniportSink):
    """The synth miniport playing a SoundFont through the compiled voice engine."""

    def __init__(
        self,
        font: Optional[SoundFont] = None,
        sample_rate: int = 48000,
        *,
        polyphony: int = 256,
        block_frames: int = 128,
        gain_db: float = 0.0,
        reverb: bool = True,
        chorus: bool = True,
        groups: int = 16,
        events_per_block: int = 512,
        threads: int = 1,
    ) -> None:
        super().__init__(sample_rate, block_frames)
        if font is None:
            from mxfd.synth.builtin_font import builtin_soundfont

            font = builtin_soundfont(sample_rate)
        self.font = font
        self.polyphony = int(polyphony)
        self._chunk = max(int(block_frames), 16)
        self._groups = groups
        self._events = int(events_per_block)
        self.effects = (reverb, chorus)
        self.engine_state, self._a = self._new_state(font, gain_db, reverb, chorus)
        self._bind_event_rows()
        reset_all(self.engine_state)
        self.master = self._new_master(reverb, chorus)
        self._slots: dict[int, int] = {}
        self.groups_overflow = 0
        self.sysex_ignored = 0
        #: States of replaced fonts still sounding, and those done (dropped off the audio thread).
        self._retiring: list[Retiring] = []
        self.retired: list[Retiring] = []
        # Scratch of the note-on rewrite for retiring states: no allocation per block.
        self._status_scratch = np.zeros(self._events, np.uint8)
        self._note_on_mask = np.zeros(self._events, np.bool_)
        #: The offline render's second core (:mod:`~mxfd.synth.engine.shared`), started with the first block
        #: that has voices to share (a short or sparse file never pays for it); None renders on one thread.
        self._threads = int(threads)
        self._helper: VoiceHelper | None = None

    def close(self) -> None:
        """Stop the helper thread, if there is one; the synth renders on one thread from then on."""
        self._threads = 1
        if self._helper is not None:
            self._helper.stop()
            self._helper = None

    def _start_helper(self) -> VoiceHelper:
        from mxfd.synth.engine import shared  # only a render on two threads needs it

        self._helper = shared.VoiceHelper(self.engine_state, self._a["out"])
        self._helper.start()
        return self._helper

    def _new_state(
        self, font: SoundFont, gain_db: float, reverb: bool, chorus: bool
    ) -> tuple[L.EngineState, dict[str, npt.NDArray[Any]]]:
        state, arrays = L.new_state(
            font,
            voices=self.polyphony,
            channels=self._groups * CHANNELS_PER_GROUP,
            events=self._events,
            block=self._chunk,
            rate=float(self.sample_rate),
            gain=FLUIDSYNTH_GAIN * 10.0 ** (gain_db / 20.0),
        )
        arrays["config"][L.G_REVERB] = 1.0 if reverb else 0.0
        arrays["config"][L.G_CHORUS] = 1.0 if chorus else 0.0
        return state, arrays

    def _bind_event_rows(self) -> None:
        # The event arrays as memoryviews: an item stored through one costs half a numpy scalar store,
        # and every event the render applies is stored field by field.
        a = self._a
        self._ev_offset = a["ev_offset"].data
        self._ev_base = a["ev_base"].data
        self._ev_length = a["ev_length"].data
        self._ev_bytes = a["ev_data"].reshape(-1).data

    def _new_master(self, reverb: bool, chorus: bool) -> Master:
        master = Master(self.sample_rate, self._chunk, reverb or chorus)
        if not reverb:
            master.reverb = None
        if not chorus:
            master.chorus = None
        return master

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) every compiled call the render and a font swap make, now.

        The first call of each costs seconds on a cold cache: the daemon makes them before it
        reports ready, so neither its audio thread nor a reload waits for the compiler.  Nothing
        sounds or moves: an empty block of no frames, and the presets looked up again.
        """
        with self._lock:
            render_block(self.engine_state, 0, 0)
            resolve_all(self.engine_state)

    # -- replacing the font ------------------------------------------------------------------

    def replace_font(self, font: SoundFont, *, gain_db: float = 0.0, reverb: bool = True, chorus: bool = True) -> None:
        """Play ``font`` (at ``gain_db``, with these effects) from the next block on; what sounds keeps sounding.

        Call it from a control thread: the new state is built here, and only the swap itself
        (copying the channels over, a preset lookup per channel) waits for the render between two
        blocks.  Voices sounding retire with the old font (see the module's notes).  A change of
        the effects builds a new master section, so the old reverb's tail is cut then.
        """
        state, arrays = self._new_state(font, gain_db, reverb, chorus)
        master = self._new_master(reverb, chorus) if (reverb, chorus) != self.effects else None
        with self._lock:
            old = Retiring(self.engine_state, self._a, self.font)
            np.copyto(arrays["ci"], old.arrays["ci"])
            np.copyto(arrays["cc"], old.arrays["cc"])
            for k in L.CUMULATIVE_COUNTERS:
                arrays["counters"][k] = old.arrays["counters"][k]
            resolve_all(state)
            self.engine_state, self._a, self.font = state, arrays, font
            self._bind_event_rows()
            if self._helper is not None:
                self._helper.stop()
                self._start_helper()
            if master is not None:
                self.master = master
                self.effects = (reverb, chorus)
            if old.voices:
                self._retiring = [*self._retiring, old]
            else:
                self.retired.append(old)

    @property
    def retiring_voices(self) -> int:
        """Voices still sounding from replaced fonts (after the last block)."""
        return sum(int(r.arrays["counters"][L.K_SOUNDING]) for r in self._retiring)

    def collect_retired(self) -> int:
        """Let go of the states of replaced fonts that have stopped sounding (a control thread); how many."""
        with self._lock:
            done, self.retired = self.retired, []
        return len(done)

    # -- control ---------------------------------------------------------------------------

    def release_channel_group(self, group: int) -> None:
        """Release the notes and pedals of ``group`` (what a vanished source left held)."""
        slot = self._slots.get(group)
        if slot is None:
            return
        with self._lock:
            self._control_all(slot, ((64, 0), (66, 0), (123, 0)))

    def release_all(self) -> None:
        """Release every note and pedal of every channel group (the synth is being replaced)."""
        for group in list(self._slots):
            self.release_channel_group(group)

    def panic(self) -> int:
        """All sound off and controllers reset (CC 120, CC 121) on every channel; the voices that were sounding."""
        with self._lock:
            sounding = int(self._a["counters"][L.K_SOUNDING]) + self.retiring_voices
            for slot in sorted(set(self._slots.values())):
                self._control_all(slot, ((120, 0), (121, 0)))
        return sounding

    def _control_all(self, slot: int, controls: tuple[tuple[int, int], ...]) -> None:
        """Apply the controller messages ``controls`` to each channel of ``slot``, in every state (under _lock)."""
        base = slot * CHANNELS_PER_GROUP
        for state, a in ((self.engine_state, self._a), *((r.state, r.arrays) for r in self._retiring)):
            row = 0
            for c in range(CHANNELS_PER_GROUP):
                for num, value in controls:
                    a["ev_offset"][row] = 0
                    a["ev_base"][row] = base
                    a["ev_length"][row] = 3
                    a["ev_data"][row, :] = (0xB0 | c, num, value)
                    row += 1
            render_block(state, row, 0)

    def _sound_off_all(self) -> None:
        for state in (self.engine_state, *(r.state for r in self._retiring)):
            for slot in range(self._groups):
                reset_group(slot * CHANNELS_PER_GROUP, state)

    # -- status ------------------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """True when nothing sounds, no effect rings and no event waits."""
        k = self._a["counters"]
        return (
            k[L.K_HIGH_WATER] == 0
            and not self._retiring
            and not self.master.tail_active
            and not self._inbox
            and self._head >= len(self._pending)
        )

    def stats(self) -> dict[str, object]:
        k = self._a["counters"]
        retiring = self.retiring_voices
        vi = self._a["vi"]
        # A note can sound on several voices (layers, stereo pairs): its start order tells them apart.
        notes = np.unique(vi[L.NOTE_ID][vi[L.STATUS] == L.PLAYING]).size
        return {
            "soundfont": self.font.path,
            "voices": int(k[L.K_SOUNDING]) + retiring,
            "notes_sounding": int(notes),
            "retiring_voices": retiring,
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
            pending = self._pending
            head = self._head
            capacity = len(self._ev_offset)
            end = t0 + m
            # The events taken go back to their allocator in chains, one lock each, not one per event.
            done: Optional[KernelEvent] = None
            while head < len(pending_at) and pending_at[head] < end:
                at = pending_at[head]
                if n_events + 3 > capacity:  # room for a raw run's messages is checked as they are split
                    m = max(at - t0, 1) if at > t0 else m
                    break
                evt = pending[head]
                head += 1
                n_events = self._encode(evt, at - t0, n_events, capacity)
                if done is not None and done.allocator is not evt.allocator:
                    done.allocator.put_message(done)
                    done = None
                evt.next_evt = done
                done = evt
            if done is not None:
                done.allocator.put_message(done)
            self.events_applied += head - self._head
            self._head = head
            if head > 64 and head * 2 > len(pending_at):
                del pending[:head]
                del pending_at[:head]
                self._head = 0
        k = a["counters"]
        if n_events == 0 and k[L.K_HIGH_WATER] == 0 and not self.master.tail_active and not self._retiring:
            out[:m] = 0.0  # nothing sounds: no DSP at all
            k[L.K_SOUNDING] = 0
            return m
        helper = self._helper
        if helper is None and self._threads > 1 and k[L.K_HIGH_WATER] >= L.MIN_SHARED_VOICES:
            helper = self._start_helper()
        if helper is not None:
            helper.render_block(n_events, m)
        else:
            render_block(self.engine_state, n_events, m)
        if self._retiring:
            self._render_retiring(n_events, m)
        self.master.process(a["out"][:, :m], out[:m])
        return m

    def _render_retiring(self, n_events: int, m: int) -> None:
        """The replaced fonts' voices, on into the same buses; this chunk's events without their note-ons."""
        a = self._a
        buses = a["out"][:, :m]
        ended = False
        for r in self._retiring:
            ra = r.arrays
            if n_events:
                for name in _EVENT_FIELDS:
                    np.copyto(ra[name][:n_events], a[name][:n_events])
                status = ra["ev_data"][:n_events, 0]
                kind = self._status_scratch[:n_events]
                is_on = self._note_on_mask[:n_events]
                np.bitwise_and(status, 0xF0, out=kind)
                np.equal(kind, NOTE_ON, out=is_on)
                np.subtract(status, NOTE_ON - NOTE_OFF, out=status, where=is_on)
            render_block(r.state, n_events, m)
            np.add(buses, ra["out"][:, :m], out=buses)
            ended = ended or r.voices == 0
        if ended:  # once per retired font: the list may be built anew
            keep: list[Retiring] = []
            for r in self._retiring:
                (keep if r.voices else self.retired).append(r)
            self._retiring = keep

    def _slot(self, group: int) -> int:
        slot = self._slots.get(group)
        if slot is None:
            if len(self._slots) >= self._groups:
                self.groups_overflow += 1
                return self._groups - 1
            slot = self._slots[group] = len(self._slots)
        return slot

    def _put(self, offset: int, base: int, data: bytes | bytearray, start: int, length: int, row: int) -> int:
        self._ev_offset[row] = offset
        self._ev_base[row] = base
        self._ev_length[row] = length
        d = self._ev_bytes
        j = 3 * row
        d[j] = data[start]
        d[j + 1] = data[start + 1] if length > 1 else 0
        d[j + 2] = data[start + 2] if length > 2 else 0
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
            if buf[0] == SET_CHANNEL_TYPE:  # not a MIDI message: the engine's own word for a SysEx
                return self._put(offset, base, b"\x00", 0, 0, row)
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
        if total <= SYSEX_KEEP and is_reset_sysex(keep, total):
            return self._put(offset, base, bytes((SYSTEM_RESET,)), 0, 1, row)
        part = gs_rhythm_part(keep, total) if total <= SYSEX_KEEP else None
        if part is not None:
            return self._put(offset, base, bytes((SET_CHANNEL_TYPE, part[0], part[1])), 0, 3, row)
        self.sysex_ignored += 1
        return row

    def arrays(self) -> dict[str, Any]:
        """The engine's arrays by field name (for tests and inspection)."""
        return self._a

    @property
    def group_slots(self) -> dict[int, int]:
        """The channel groups that have played, each with its slot (its channels start at slot x 16)."""
        return dict(self._slots)
