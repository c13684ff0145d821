"""``Synth``: the synth miniport, an MXF sink that renders wave data sample-accurately.

Theory of operation
-------------------
Event intake, scheduling by sample, the KS states and KS frames are
:class:`~mxfd.synth.sink.MiniportSink`'s: events arrive on any thread,
and :meth:`Synth.render`, on the render thread, finds them in a pending
list ordered by sample.  The block is rendered in chunks of at
most ``max_segment`` frames, and each chunk in segments that end at the
next event's sample or the next attack's end: events are applied exactly
at their own sample, never at a block edge.  An applied event goes back to
its own allocator (``evt.allocator``: events from several streams meet
here).

The MIDI side (:mod:`~mxfd.synth.channel`) keeps per-channel state for 16
channels per channel group; note-ons start voices in the
:mod:`~mxfd.synth.voices` engine, stealing one when the polyphony limit is
reached.  SysEx arrives as one event or as a chain of chunks
(``EVENT_INCOMPLETE`` on all but the last); the synth keeps the first 32
bytes of a message, enough to recognise the GM, GS and XG resets.

States: RUN renders and applies events; PAUSE and ACQUIRE keep rendering
the voices that sound but hold new events; STOP silences everything and
returns every queued event to its allocator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from mxfd.core.event import EVENT_INCOMPLETE, KernelEvent
from mxfd.core.mxf import KSState
from mxfd.synth import channel as cc
from mxfd.synth.bank import Bank, get_bank
from mxfd.synth.channel import CHANNELS, DRUM_CHANNEL, ChannelState
from mxfd.synth.master import Master
from mxfd.synth.sink import SYSEX_KEEP, MiniportSink
from mxfd.synth.voices import (
    CHAN,
    EXCL,
    FADE,
    HELD,
    IGNORE_OFF,
    KEY,
    MAX_SEGMENT,
    RELEASE,
    SOST,
    STAGE,
    SUS,
    VoiceEngine,
)

if TYPE_CHECKING:
    pass

#: Kinds of messages the synth ignores, each with its own counter.
IGNORED_KINDS: Final = (
    "poly_pressure",
    "control_change",
    "sysex",
    "system_common",
    "realtime",
    "drum_key",
    "malformed",
)


class Synth(MiniportSink):
    """The software synthesizer miniport (an MXF sink).

    Parameters
    ----------
    sample_rate:
        Frames per second (44100, 48000, 96000, ...).
    polyphony:
        Voices that may sound at once; beyond it the least important voice
        is stolen (and fades out over a few ms).
    block_frames:
        The render block the synth expects; :attr:`schedule_prefetch` asks the
        sequencer for events one block ahead.
    max_segment:
        Longest stretch rendered in one vectorised step.
    effects:
        Reverb and chorus on (the sends follow CC91/CC93 and the program).
    """

    def __init__(
        self,
        sample_rate: int = 48000,
        *,
        polyphony: int = 256,
        block_frames: int = 128,
        max_segment: int = MAX_SEGMENT,
        effects: bool = True,
    ) -> None:
        super().__init__(sample_rate, block_frames)
        self.bank: Bank = get_bank(self.sample_rate)
        self.channels = ChannelState()
        self.voices = VoiceEngine(self.bank, self.sample_rate, polyphony, max_segment)
        self.master = Master(self.sample_rate, max_segment, effects)
        self.max_segment = max_segment
        self._bus = np.zeros((4, max_segment), dtype=np.float32)
        # Counters.
        self.ignored: dict[str, int] = dict.fromkeys(IGNORED_KINDS, 0)
        self.resets = 0

    # -- control (any thread) ---------------------------------------------------

    def release_channel_group(self, group: int) -> None:
        """Release the notes and pedals of ``group`` (what a vanished source left held)."""
        with self._lock:
            slot = self.channels.find_slot(group)
            if slot < 0:
                return
            first = slot * CHANNELS
            for c in range(first, first + CHANNELS):
                self.channels.sustain[c] = False
                self.channels.sostenuto[c] = False
            v = self.voices
            mask = v.select_channels(first, first + CHANNELS)
            while mask.any():
                k = int(mask.argmax())
                mask[k] = False
                self._force_release(k)

    def release_all(self) -> None:
        """Release every note and pedal of every channel group (the synth is being replaced)."""
        for group in list(self.channels.groups):
            self.release_channel_group(group)

    def panic(self) -> int:
        """The panic button: all sound off and all controllers reset on every channel of every group.

        What a lost note-off, pedal-up or bend return left behind goes: every
        voice fades within a few ms, pedals come up, and modulation, bend,
        expression and pressure return to their defaults (CC 121, RP-015);
        programs, volume and pan stay as they were.  Returns how many voices
        were sounding.
        """
        with self._lock:
            sounding = self.voices.sounding
            self._sound_off_all()
            ch = self.channels
            for c in range(len(ch.sustain)):
                ch.reset_controllers(c)
            self.voices.mark_pan_dirty()
        return sounding

    def stats(self) -> dict[str, object]:
        """Counters for ``mxfd status``."""
        v = self.voices
        return {
            "voices": v.sounding,
            "fading": v.n_fading,
            "voices_peak": v.voices_peak,
            "polyphony": v.polyphony,
            "notes": v.notes_started,
            "stolen": v.stolen,
            "hard_killed": v.hard_killed,
            "events_applied": self.events_applied,
            "late_events": self.late_events,
            "events_pending": len(self._pending) - self._head + len(self._inbox),
            "ignored": dict(self.ignored),
            "ignored_total": sum(self.ignored.values()),
            "resets": self.resets,
            "channel_groups": len(self.channels.groups),
            "sample_position": self._sample,
            "limited_chunks": self.master.limited,
            "soft_clipped_chunks": self.master.clipped,
            "state": self.state.name,
        }

    @property
    def idle(self) -> bool:
        """True when nothing sounds, no effect rings and no event waits."""
        return (
            self.voices.n == 0
            and not self.master.tail_active
            and not self._inbox
            and self._head >= len(self._pending)
        )

    # -- rendering -------------------------------------------------------------

    def render(self, out: npt.NDArray[np.float32]) -> None:
        """Render the next ``len(out)`` frames into ``out`` (float32, shape (n, 2))."""
        n = out.shape[0]
        with self._lock:
            start = self._sample
            if self.state is KSState.RUN:
                self._drain(start)
            done = 0
            ms = self.max_segment
            while done < n:
                m = n - done
                if m > ms:
                    m = ms
                self._render_chunk(out[done : done + m], start + done)
                done += m
            self._sample = start + n
            if n > self._block:
                self._block = n

    def _render_chunk(self, out: npt.NDArray[np.float32], t0: int) -> None:
        m = out.shape[0]
        t_end = t0 + m
        bus = self._bus
        voices = self.voices
        params = self.channels
        pending_at = self._pending_at
        run = self.state is KSState.RUN
        t = t0
        while True:
            if run:
                while self._head < len(pending_at) and pending_at[self._head] <= t:
                    evt = self._pending[self._head]
                    self._head += 1
                    self._apply(evt, t)
                    evt.allocator.put_message(evt)
            nb = t_end
            if run and self._head < len(pending_at) and pending_at[self._head] < nb:
                nb = pending_at[self._head]
            if voices.next_attack_end < nb:
                nb = voices.next_attack_end
            voices.render_segment(bus[:, t - t0 : nb - t0], nb, params)
            t = nb
            if t >= t_end:
                break
        if self._head > 64 and self._head * 2 > len(pending_at):
            del self._pending[: self._head]
            del pending_at[: self._head]
            self._head = 0
        self.master.process(bus[:, :m], out)

    # -- MIDI ------------------------------------------------------------------

    def _apply(self, e: KernelEvent, t: int) -> None:
        """Apply one event's message(s) at sample ``t``."""
        self.events_applied += 1
        n = e.cb_event
        buf = e.buf
        if self._sysex_owner is not None:
            if self._sysex_owner is e.allocator and self._continues_sysex(e, buf, n):
                self._sysex_chunk(e, buf, n)
                return
            # The rest of a chunked SysEx never came: drop what was kept, and count it.
            self._sysex_owner = None
            self._sysex_len = 0
            self.ignored["sysex"] += 1
        if n == 0:
            self.ignored["malformed"] += 1
            return
        status = buf[0]
        if status == 0xF0:
            self._sysex_len = 0
            self._sysex_time = e.pres_time_100ns
            self._sysex_chunk(e, buf, n)
            return
        if status < 0x80 or e.flags & EVENT_INCOMPLETE:
            self.ignored["malformed"] += 1
            return
        if 0x80 <= status < 0xF0 and n <= 3:
            need = 2 if status & 0xE0 == 0xC0 else 3
            if n < need or buf[1] > 0x7F or (need == 3 and buf[2] > 0x7F):
                self.ignored["malformed"] += 1
                return
            self._channel_message(e.channel_group, status, buf[1], buf[2] if need == 3 else 0, t)
            return
        self._raw_run(e.channel_group, buf, n, t)

    def _continues_sysex(self, e: KernelEvent, buf: bytearray, n: int) -> bool:
        """Whether ``e`` is the next chunk of the SysEx in progress (same time, no new status byte)."""
        if e.pres_time_100ns != self._sysex_time or n == 0:
            return False
        first = buf[0]
        return first < 0x80 or first == 0xF7

    def _raw_run(self, group: int, buf: bytearray, n: int, t: int) -> None:
        """Unstructured bytes holding whole short messages (running status allowed), as a MIDI cable carries them."""
        running = 0
        off = 0
        while off < n:
            b = buf[off]
            if b >= 0xF8:
                self.ignored["realtime"] += 1
                off += 1
                continue
            if b >= 0xF0:
                # System common or SysEx inside a raw run: not for the synth; it ends running status.
                self.ignored["sysex" if b in (0xF0, 0xF7) else "system_common"] += 1
                running = 0
                off += 1
                while off < n and buf[off] < 0x80:
                    off += 1
                continue
            if b >= 0x80:
                running = b
                off += 1
            elif not running:
                self.ignored["malformed"] += 1
                off += 1
                continue
            need = 1 if running & 0xE0 == 0xC0 else 2
            if off + need > n or buf[off] > 0x7F or (need == 2 and buf[off + 1] > 0x7F):
                self.ignored["malformed"] += 1
                return
            self._channel_message(group, running, buf[off], buf[off + 1] if need == 2 else 0, t)
            off += need

    def _channel_message(self, group: int, status: int, d1: int, d2: int, t: int) -> None:
        kind = status & 0xF0
        c = self.channels.slot_of(group) * CHANNELS + (status & 0x0F)
        if kind == 0x90:
            if d2:
                self._note_on(c, d1, d2, t)
            else:
                self._note_off(c, d1)
        elif kind == 0x80:
            self._note_off(c, d1)
        elif kind == 0xB0:
            self._control_change(c, d1, d2)
        elif kind == 0xE0:
            self.channels.bend_value[c] = d1 | (d2 << 7)
            self.channels.update_bend(c)
        elif kind == 0xC0:
            self.channels.program[c] = d1
        elif kind == 0xD0:
            self.channels.pressure[c] = d1
            self.channels.update_vib(c)
        else:
            self.ignored["poly_pressure"] += 1

    def _note_on(self, c: int, note: int, velocity: int, t: int) -> None:
        voices = self.voices
        drum = (c & 0x0F) == DRUM_CHANNEL
        if drum:
            patch = self.bank.drums[note]
            if patch is None:
                self.ignored["drum_key"] += 1
                return
            if patch.exclusive:
                self._choke(c, patch.exclusive)
        else:
            patch = self.bank.programs[self.channels.program[c]]
            self._note_off(c, note)  # a re-struck key lets go of its previous note
        if self.channels.soft[c]:
            velocity = max(1, velocity * 3 // 4)
        if voices.sounding >= voices.polyphony:
            voices.steal(t)
        v = voices.allocate()
        voices.start(v, patch, c, note, velocity, t, self.channels, drum)

    def _note_off(self, c: int, note: int) -> None:
        self._keys_up(self.voices.select(KEY, c * 128 + note), self.channels.sustain[c])

    def _keys_up(self, mask: npt.NDArray[np.bool_], sustain: bool) -> None:
        """Let go of the held voices in ``mask``: pedals keep them sounding, the rest release."""
        voices = self.voices
        i = voices.i
        while mask.any():
            v = int(mask.argmax())
            mask[v] = False
            if not i[HELD, v]:
                continue
            i[HELD, v] = 0
            if i[IGNORE_OFF, v]:
                continue
            if sustain:
                i[SUS, v] = 1
            if i[SOST, v] or sustain:
                continue
            voices.release(v)

    def _choke(self, c: int, exclusive: int) -> None:
        voices = self.voices
        i = voices.i
        mask = voices.select(CHAN, c)
        while mask.any():
            v = int(mask.argmax())
            mask[v] = False
            if i[EXCL, v] == exclusive:
                voices.fade(v)

    def _force_release(self, v: int) -> None:
        i = self.voices.i
        i[HELD, v] = 0
        i[SUS, v] = 0
        i[SOST, v] = 0
        if i[STAGE, v] != FADE:
            self.voices.release(v)

    def _sound_off_all(self) -> None:
        voices = self.voices
        for v in range(voices.n):
            voices.fade(v)
        ch = self.channels
        for c in range(len(ch.sustain)):
            ch.sustain[c] = False
            ch.sostenuto[c] = False

    def _channel_voices(self, c: int) -> npt.NDArray[np.bool_]:
        return self.voices.select(CHAN, c)

    def _control_change(self, c: int, num: int, value: int) -> None:
        ch = self.channels
        voices = self.voices
        i = voices.i
        if num == cc.CC_MODULATION:
            ch.modulation[c] = value
            ch.update_vib(c)
        elif num == cc.CC_VOLUME:
            ch.volume[c] = value
            ch.update_gain(c)
        elif num == cc.CC_EXPRESSION:
            ch.expression[c] = value
            ch.update_gain(c)
        elif num == cc.CC_PAN:
            ch.pan_cc[c] = value
            ch.update_pan(c)
            voices.mark_pan_dirty()
        elif num == cc.CC_REVERB:
            ch.reverb_cc[c] = value
            ch.update_sends(c)
            voices.mark_pan_dirty()
        elif num == cc.CC_CHORUS:
            ch.chorus_cc[c] = value
            ch.update_sends(c)
            voices.mark_pan_dirty()
        elif num == cc.CC_SUSTAIN:
            down = value >= 64
            if ch.sustain[c] and not down:
                ch.sustain[c] = False
                self._pedal_up(c, sostenuto=False)
            ch.sustain[c] = down
        elif num == cc.CC_SOSTENUTO:
            down = value >= 64
            if down and not ch.sostenuto[c]:
                mask = self._channel_voices(c)
                while mask.any():
                    v = int(mask.argmax())
                    mask[v] = False
                    if i[HELD, v] and i[STAGE, v] < RELEASE:
                        i[SOST, v] = 1
            elif not down and ch.sostenuto[c]:
                ch.sostenuto[c] = False
                self._pedal_up(c, sostenuto=True)
            ch.sostenuto[c] = down
        elif num == cc.CC_SOFT:
            ch.soft[c] = value >= 64
        elif num == cc.CC_BANK_MSB:
            ch.bank_msb[c] = value
        elif num == cc.CC_BANK_LSB:
            ch.bank_lsb[c] = value
        elif num == cc.CC_RPN_MSB:
            ch.rpn[c] = (value << 7) | (ch.rpn[c] & 0x7F)
            ch.nrpn[c] = False
        elif num == cc.CC_RPN_LSB:
            ch.rpn[c] = (ch.rpn[c] & 0x3F80) | value
            ch.nrpn[c] = False
        elif num in (cc.CC_NRPN_MSB, cc.CC_NRPN_LSB):
            ch.nrpn[c] = True
        elif num == cc.CC_DATA_ENTRY or num == cc.CC_DATA_ENTRY_LSB:
            if not ch.data_entry(c, value, lsb=num == cc.CC_DATA_ENTRY_LSB):
                self.ignored["control_change"] += 1
        elif num == cc.CC_DATA_INCREMENT or num == cc.CC_DATA_DECREMENT:
            if not ch.data_step(c, up=num == cc.CC_DATA_INCREMENT):
                self.ignored["control_change"] += 1
        elif num == cc.CC_ALL_SOUND_OFF:
            mask = self._channel_voices(c)
            while mask.any():
                v = int(mask.argmax())
                mask[v] = False
                voices.fade(v)
        elif num == cc.CC_RESET_CONTROLLERS:
            had_sustain, had_sostenuto = ch.sustain[c], ch.sostenuto[c]
            ch.reset_controllers(c)
            if had_sustain or had_sostenuto:
                self._pedal_up(c, sostenuto=had_sostenuto)
            voices.mark_pan_dirty()
        elif num == cc.CC_ALL_NOTES_OFF or cc.CC_OMNI_OFF <= num <= cc.CC_POLY_ON:
            self._all_notes_off(c)
        else:
            self.ignored["control_change"] += 1

    def _pedal_up(self, c: int, sostenuto: bool) -> None:
        """A pedal went up: release the voices of channel ``c`` that nothing holds any more."""
        voices = self.voices
        i = voices.i
        sustain = self.channels.sustain[c]
        mask = self._channel_voices(c)
        while mask.any():
            v = int(mask.argmax())
            mask[v] = False
            if sostenuto:
                i[SOST, v] = 0
            else:
                i[SUS, v] = 0
            if i[HELD, v] or i[SOST, v] or (sustain and i[SUS, v]) or i[STAGE, v] >= RELEASE:
                continue
            if i[IGNORE_OFF, v]:
                continue
            voices.release(v)

    def _all_notes_off(self, c: int) -> None:
        self._keys_up(self._channel_voices(c), self.channels.sustain[c])

    # -- SysEx -------------------------------------------------------------------

    def _sysex_chunk(self, e: KernelEvent, buf: bytearray, n: int) -> None:
        keep = self._sysex
        k = self._sysex_len
        take = min(n, SYSEX_KEEP - k)
        if take > 0:
            keep[k : k + take] = buf[:take]
        self._sysex_len = k + n
        if e.flags & EVENT_INCOMPLETE:
            self._sysex_owner = e.allocator
            return
        self._sysex_owner = None
        total = self._sysex_len
        self._sysex_len = 0
        if total <= SYSEX_KEEP and self._is_reset(keep, total):
            self._reset_group(e.channel_group)
        else:
            self.ignored["sysex"] += 1

    @staticmethod
    def _is_reset(m: bytearray, n: int) -> bool:
        """GM System On / GM2 On (F0 7E dd 09 01|03 F7), GS Reset, XG System On; any device id."""
        if n < 6 or m[0] != 0xF0 or m[n - 1] != 0xF7:
            return False
        if n == 6 and m[1] == 0x7E and m[3] == 0x09 and m[4] in (0x01, 0x03):
            return True
        if n == 11 and m[1] == 0x41 and m[3] == 0x42 and m[4] == 0x12 and m[5:10] == b"\x40\x00\x7f\x00\x41":
            return True
        if n == 9 and m[1] == 0x43 and (m[2] & 0xF0) == 0x10 and m[3:8] == b"\x4c\x00\x00\x7e\x00":
            return True
        return False

    def _reset_group(self, group: int) -> None:
        """GM/GS/XG reset of one channel group: sound off and every controller to its default."""
        self.resets += 1
        slot = self.channels.slot_of(group)
        first = slot * CHANNELS
        voices = self.voices
        mask = voices.select_channels(first, first + CHANNELS)
        while mask.any():
            v = int(mask.argmax())
            mask[v] = False
            voices.fade(v)
        for c in range(first, first + CHANNELS):
            self.channels.reset_channel(c)
        voices.mark_pan_dirty()
