"""``ChannelState``: the MIDI state of 16 channels per channel group.

Theory of operation
-------------------
This is the MIDI-state half of the synth (FluidSynth's channel side): what
the controllers of each channel are set to, and the few numbers a voice
derives from them.  Raw controller values live in plain Python lists (a
controller change touches one element); what voices read every segment
lives in numpy arrays indexed by *channel index* ``slot * 16 + channel``
(:class:`~mxfd.synth.voices.ChannelParams`): gain (volume × expression, the
GM 40·log10 curves), pan position, pitch offset in semitones (bend × the
RPN 0 range, plus RPN 1/2 tuning) and the highest offset the wheel can
reach (a new note's wavetable is chosen for it, so bends never alias), vibrato depth (modulation wheel and
channel pressure) and effect sends.

Channel groups (0..65535, one per input source or client) are mapped to
state slots on first use.  The arrays start with room for
``initial_groups`` slots and double when a new group needs more, which
happens once per new source, not per event.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from mxfd.synth.voices import ChannelParams

CHANNELS: Final = 16
#: The GM drum channel (channel 10, zero-based 9).
DRUM_CHANNEL: Final = 9
MAX_GROUP: Final = 0xFFFF
RPN_NULL: Final = 0x3FFF

# Controllers the synth understands.
CC_BANK_MSB: Final = 0
CC_MODULATION: Final = 1
CC_DATA_ENTRY: Final = 6
CC_VOLUME: Final = 7
CC_PAN: Final = 10
CC_EXPRESSION: Final = 11
CC_BANK_LSB: Final = 32
CC_DATA_ENTRY_LSB: Final = 38
CC_SUSTAIN: Final = 64
CC_SOSTENUTO: Final = 66
CC_SOFT: Final = 67
CC_REVERB: Final = 91
CC_CHORUS: Final = 93
CC_DATA_INCREMENT: Final = 96
CC_DATA_DECREMENT: Final = 97
CC_NRPN_LSB: Final = 98
CC_NRPN_MSB: Final = 99
CC_RPN_LSB: Final = 100
CC_RPN_MSB: Final = 101
CC_ALL_SOUND_OFF: Final = 120
CC_RESET_CONTROLLERS: Final = 121
CC_LOCAL_CONTROL: Final = 122
CC_ALL_NOTES_OFF: Final = 123
CC_OMNI_OFF: Final = 124
CC_OMNI_ON: Final = 125
CC_MONO_ON: Final = 126
CC_POLY_ON: Final = 127

#: Vibrato depth (semitones) at full modulation wheel and at full channel pressure.
MOD_WHEEL_DEPTH: Final = 0.5
PRESSURE_DEPTH: Final = 0.5


class ChannelState(ChannelParams):
    """Controllers of every channel of every channel group seen so far."""

    def __init__(self, initial_groups: int = 16) -> None:
        self._slots: dict[int, int] = {}
        self._capacity = 0
        self.program: list[int] = []
        self.bank_msb: list[int] = []
        self.bank_lsb: list[int] = []
        self.volume: list[int] = []
        self.expression: list[int] = []
        self.pan_cc: list[int] = []
        self.modulation: list[int] = []
        self.pressure: list[int] = []
        self.bend_value: list[int] = []
        self.bend_range: list[float] = []
        self.fine_tune: list[float] = []
        self.coarse_tune: list[int] = []
        self.sustain: list[bool] = []
        self.sostenuto: list[bool] = []
        self.soft: list[bool] = []
        self.rpn: list[int] = []
        self.nrpn: list[bool] = []
        self.reverb_cc: list[int] = []
        self.chorus_cc: list[int] = []
        self.gain = np.zeros(0)
        self.pan = np.zeros(0)
        self.bend = np.zeros(0)
        self.bend_up = np.zeros(0)
        self.vib = np.zeros(0)
        self.chorus = np.zeros(0)
        self.reverb = np.zeros(0)
        self._grow(max(1, initial_groups))

    # -- groups ------------------------------------------------------------------

    @property
    def groups(self) -> list[int]:
        """Channel groups seen so far."""
        return list(self._slots)

    def slot_of(self, group: int) -> int:
        """The state slot of ``group``, made on first use."""
        slot = self._slots.get(group)
        if slot is None:
            if not 0 <= group <= MAX_GROUP:
                raise ValueError(f"channel group {group} outside 0..{MAX_GROUP}")
            slot = len(self._slots)
            if slot >= self._capacity:
                self._grow(self._capacity * 2)
            self._slots[group] = slot
        return slot

    def find_slot(self, group: int) -> int:
        """The slot of ``group``, or -1 if the group was never seen."""
        return self._slots.get(group, -1)

    def _grow(self, slots: int) -> None:
        old = self._capacity * CHANNELS
        new = slots * CHANNELS
        extra = new - old
        self.program += [0] * extra
        self.bank_msb += [0] * extra
        self.bank_lsb += [0] * extra
        self.volume += [100] * extra
        self.expression += [127] * extra
        self.pan_cc += [64] * extra
        self.modulation += [0] * extra
        self.pressure += [0] * extra
        self.bend_value += [8192] * extra
        self.bend_range += [2.0] * extra
        self.fine_tune += [0.0] * extra
        self.coarse_tune += [0] * extra
        self.sustain += [False] * extra
        self.sostenuto += [False] * extra
        self.soft += [False] * extra
        self.rpn += [RPN_NULL] * extra
        self.nrpn += [False] * extra
        self.reverb_cc += [40] * extra
        self.chorus_cc += [0] * extra
        for name in ("gain", "pan", "bend", "bend_up", "vib", "chorus", "reverb"):
            arr = getattr(self, name)
            grown = np.zeros(new)
            grown[:old] = arr
            setattr(self, name, grown)
        self._capacity = slots
        for c in range(old, new):
            self._derive(c)

    # -- resets ------------------------------------------------------------------

    def reset_channel(self, c: int) -> None:
        """Power-on state (GM/GS/XG reset): program 0 and every controller at its default."""
        self.program[c] = 0
        self.bank_msb[c] = 0
        self.bank_lsb[c] = 0
        self.volume[c] = 100
        self.pan_cc[c] = 64
        self.bend_range[c] = 2.0
        self.fine_tune[c] = 0.0
        self.coarse_tune[c] = 0
        self.reverb_cc[c] = 40
        self.chorus_cc[c] = 0
        self.reset_controllers(c)

    def reset_controllers(self, c: int) -> None:
        """CC121 (RP-015): modulation, expression, pedals, bend, pressure and RPN; not volume, pan or program."""
        self.modulation[c] = 0
        self.expression[c] = 127
        self.pressure[c] = 0
        self.bend_value[c] = 8192
        self.sustain[c] = False
        self.sostenuto[c] = False
        self.soft[c] = False
        self.rpn[c] = RPN_NULL
        self.nrpn[c] = False
        self._derive(c)

    def _derive(self, c: int) -> None:
        self.update_gain(c)
        self.update_pan(c)
        self.update_bend(c)
        self.update_vib(c)
        self.update_sends(c)

    # -- derived values ------------------------------------------------------------

    def update_gain(self, c: int) -> None:
        v = self.volume[c] / 127.0
        e = self.expression[c] / 127.0
        self.gain[c] = v * v * e * e

    def update_pan(self, c: int) -> None:
        self.pan[c] = min(1.0, max(0.0, 0.5 + (self.pan_cc[c] - 64) / 126.0))

    def update_bend(self, c: int) -> None:
        bend = (self.bend_value[c] - 8192) / 8192.0 * self.bend_range[c]
        tuning = self.coarse_tune[c] + self.fine_tune[c]
        self.bend[c] = bend + tuning
        self.bend_up[c] = max(bend, self.bend_range[c]) + tuning

    def update_vib(self, c: int) -> None:
        self.vib[c] = self.modulation[c] / 127.0 * MOD_WHEEL_DEPTH + self.pressure[c] / 127.0 * PRESSURE_DEPTH

    def update_sends(self, c: int) -> None:
        self.chorus[c] = 0.3 + 0.7 * self.chorus_cc[c] / 127.0
        self.reverb[c] = min(1.0, 1.5 * self.reverb_cc[c] / 127.0)

    # -- RPN data entry ------------------------------------------------------------

    def data_entry(self, c: int, value: int, lsb: bool) -> bool:
        """Apply a data entry (CC6, or CC38 when ``lsb``) to the selected RPN; False if nothing took it."""
        if self.nrpn[c]:
            return False
        rpn = self.rpn[c]
        if rpn == 0:  # pitch bend sensitivity: MSB semitones, LSB cents
            semis = int(self.bend_range[c])
            cents = round((self.bend_range[c] - semis) * 100)
            if lsb:
                cents = min(value, 99)
            else:
                semis = value
            self.bend_range[c] = semis + cents / 100.0
            self.update_bend(c)
            return True
        if rpn == 1:  # fine tuning, 14 bits centred on 8192 = ±1 semitone
            raw = round(self.fine_tune[c] * 8192) + 8192
            raw = (raw & 0x3F80) | value if lsb else (value << 7) | (raw & 0x7F)
            self.fine_tune[c] = (raw - 8192) / 8192.0
            self.update_bend(c)
            return True
        if rpn == 2 and not lsb:  # coarse tuning, semitones centred on 64
            self.coarse_tune[c] = value - 64
            self.update_bend(c)
            return True
        return False

    def data_step(self, c: int, up: bool) -> bool:
        """CC96/97 data increment/decrement on the selected RPN."""
        if self.nrpn[c]:
            return False
        step = 1 if up else -1
        rpn = self.rpn[c]
        if rpn == 0:
            self.bend_range[c] = min(127.0, max(0.0, self.bend_range[c] + step))
        elif rpn == 2:
            self.coarse_tune[c] = min(63, max(-64, self.coarse_tune[c] + step))
        elif rpn == 1:
            self.fine_tune[c] = min(8191 / 8192, max(-1.0, self.fine_tune[c] + step / 8192.0))
        else:
            return False
        self.update_bend(c)
        return True
