"""The MIDI-state side, compiled: channels, controllers, zone lookup, voice allocation and stealing.

Theory of operation
-------------------
:func:`apply_message` takes one short MIDI message (its bytes, checked
against :mod:`mxfd.core.midi`'s table) for one channel group and turns it
into changes of channel state and voice starts, releases and parameter
updates, as FluidSynth's ``fluid_synth.c`` does:

- Note-on: the channel's preset (resolved at program change: bank 128 on
  the drum channel, else the bank select MSB, GS style; a missing bank
  falls back to bank 0, a missing drum kit to kit 0) gives the voice zones
  whose key and velocity ranges hold the note
  (:func:`~mxfd.synth.soundfont.zones.select_voice_zones`, compiled).  A
  key struck again first lets go of its sounding voices.  Each zone takes
  a free voice slot, or steals the least important voice (released before
  held, quiet before loud, old before new); a zone with an exclusive class
  chokes the channel's other voices of that class (a closed hi-hat stops
  the open one).
- Note-off releases the key's voices unless a pedal holds them; sustain
  and sostenuto pedals hold and release as in FluidSynth.
- Controllers, channel pressure and pitch bend (with RPN 0, the bend
  range) re-run the modulators of the channel's voices; polyphonic key
  pressure those of the key's voices (a source for a font's modulators).
- 0xFF (System Reset; the synth wrapper also sends it for GM/GS/XG reset
  SysEx) resets the channel group; :data:`SET_CHANNEL_TYPE` (the wrapper's
  form of GS "use for rhythm part") makes a channel a drum or a melodic one.
"""

from __future__ import annotations

import numba

from mxfd.core import midi
from mxfd.synth.engine import voice as vc
from mxfd.synth.engine.layout import (
    AMP,
    C_BANK_LSB,
    C_BANK_MSB,
    C_BEND,
    C_BEND_RANGE,
    C_DRUM,
    C_NRPN,
    C_PRESET,
    C_PRESSURE,
    C_PROGRAM,
    C_RPN,
    C_SOSTENUTO,
    C_SOSTENUTO_ID,
    C_SUSTAIN,
    CHANNEL,
    EXCLUSIVE,
    HELD,
    K_EXCLUSIVE_KILLS,
    K_HIGH_WATER,
    K_IGNORED,
    K_MALFORMED,
    K_NEXT_NOTE_ID,
    K_NO_PRESET,
    K_NOTES,
    K_STOLEN,
    KEY,
    KEY_PRESSURE,
    NOTE_ID,
    PLAYING,
    RELEASE,
    SOSTENUTO,
    STATUS,
    SUSTAINED,
    VOL_SECTION,
)
from mxfd.synth.soundfont.font import PERCUSSION_BANK
from mxfd.synth.soundfont.zones import find_preset, select_voice_zones

_njit = numba.njit(nogil=True, cache=True)
_find_preset = find_preset  # compiled by the soundfont package (its jit mark)
_select_voice_zones = select_voice_zones

CHANNELS_PER_GROUP = 16
DRUM_CHANNEL = 9
KIND_CHANNEL = midi.KIND_CHANNEL
SYSTEM_RESET = 0xFF
#: The engine's own message "set the channel type" (``F4 channel drum``): what the synth wrapper makes of a GS
#: "use for rhythm part" SysEx.  0xF4 is an undefined System Common status, which the wrapper never passes on.
SET_CHANNEL_TYPE = 0xF4

NOTE_OFF = 0x80
NOTE_ON = 0x90
POLY_PRESSURE = 0xA0
CONTROL_CHANGE = 0xB0
PROGRAM_CHANGE = 0xC0
CHANNEL_PRESSURE = 0xD0
PITCH_BEND = 0xE0

CC_BANK_MSB = 0
CC_DATA_ENTRY = 6
CC_VOLUME = 7
CC_BALANCE = vc.CC_BALANCE  # the voices apply it with the pan
CC_PAN = 10
CC_EXPRESSION = 11
CC_BANK_LSB = 32
CC_DATA_ENTRY_LSB = 38
CC_SUSTAIN = 64
CC_SOSTENUTO = 66
CC_SOUND_FIRST = 70
CC_SOUND_LAST = 79
CC_DATA_INCREMENT = 96
CC_DATA_DECREMENT = 97
CC_NRPN_LSB = 98
CC_NRPN_MSB = 99
CC_RPN_LSB = 100
CC_RPN_MSB = 101
CC_ALL_SOUND_OFF = 120
CC_RESET_CONTROLLERS = 121
CC_ALL_NOTES_OFF = 123
CC_POLY_ON = 127
RPN_BEND_RANGE = 0
RPN_NULL = 0x3FFF


@_njit
def resolve_preset(c: int, st) -> None:  # type: ignore[no-untyped-def]
    """The channel's preset for its bank and program, with FluidSynth's fallbacks."""
    ci = st.ci
    prog = ci[C_PROGRAM, c]
    if ci[C_DRUM, c]:
        p = _find_preset(st.preset_key, PERCUSSION_BANK, prog)
        if p < 0:
            p = _find_preset(st.preset_key, PERCUSSION_BANK, 0)
    else:
        p = _find_preset(st.preset_key, ci[C_BANK_MSB, c], prog)
        if p < 0:
            p = _find_preset(st.preset_key, 0, prog)
    ci[C_PRESET, c] = p


@_njit
def reset_controllers(c: int, st, all_controllers: bool) -> None:  # type: ignore[no-untyped-def]
    """FluidSynth's controller defaults; ``all_controllers`` False is CC121 (volume, pan, banks kept)."""
    ci = st.ci
    cc = st.cc
    if all_controllers:
        for n in range(128):
            cc[c, n] = 0
        for n in range(CC_SOUND_FIRST, CC_SOUND_LAST + 1):
            cc[c, n] = 64
        cc[c, CC_VOLUME] = 100
        cc[c, CC_PAN] = 64
        cc[c, CC_BALANCE] = 64
        ci[C_BEND_RANGE, c] = 200
    else:
        for n in range(1, 120):
            if n == CC_VOLUME or n == CC_PAN or n == CC_BALANCE or n == CC_BANK_MSB or n == CC_BANK_LSB:
                continue
            if CC_SOUND_FIRST <= n <= CC_SOUND_LAST or n == 91 or n == 93:
                continue
            cc[c, n] = 0
    cc[c, CC_EXPRESSION] = 127
    cc[c, CC_RPN_LSB] = 127
    cc[c, CC_RPN_MSB] = 127
    cc[c, CC_NRPN_LSB] = 127
    cc[c, CC_NRPN_MSB] = 127
    ci[C_RPN, c] = RPN_NULL
    ci[C_NRPN, c] = 0
    ci[C_BEND, c] = 8192
    ci[C_PRESSURE, c] = 0
    for k in range(128):
        cc[c, KEY_PRESSURE + k] = 0
    ci[C_SUSTAIN, c] = 0
    ci[C_SOSTENUTO, c] = 0


@_njit
def reset_channel(c: int, st) -> None:  # type: ignore[no-untyped-def]
    ci = st.ci
    ci[C_PROGRAM, c] = 0
    ci[C_BANK_MSB, c] = 0
    ci[C_BANK_LSB, c] = 0
    ci[C_DRUM, c] = 1 if c % CHANNELS_PER_GROUP == DRUM_CHANNEL else 0
    ci[C_SOSTENUTO_ID, c] = 0
    reset_controllers(c, st, True)
    resolve_preset(c, st)


@_njit
def reset_all(st) -> None:  # type: ignore[no-untyped-def]
    for c in range(st.ci.shape[1]):
        reset_channel(c, st)


@_njit
def resolve_all(st) -> None:  # type: ignore[no-untyped-def]
    """Every channel's preset looked up again (the channels carried over to another font's tables)."""
    for c in range(st.ci.shape[1]):
        resolve_preset(c, st)


@_njit
def must_apply_in_place(base: int, length: int, data, st) -> bool:  # type: ignore[no-untyped-def]
    """Whether a message must be applied at its own sample, between two spans of the voices.

    One that starts a voice (a note-on) or changes one that sounds must.  A channel message for a
    channel with no voice in use changes only that channel's state, which no voice reads before
    the channel's next note-on, which is applied in place: it may go in with the span's start, so
    a stream of controllers for silent channels does not split every voice's render into pieces.
    """
    if length < 1:
        return True
    status = data[0]
    if st.status_kind[status] != KIND_CHANNEL or status & 0xF0 == NOTE_ON:
        return True  # System Reset, a channel type, SysEx: the whole group or more
    c = base + (status & 0x0F)
    for v in range(st.counters[K_HIGH_WATER]):
        if st.vi[STATUS, v] == PLAYING and st.vi[CHANNEL, v] == c:
            return True
    return False


@_njit
def _refresh_channel(c: int, st) -> None:  # type: ignore[no-untyped-def]
    """A controller of channel ``c`` changed: re-run its voices' modulators."""
    for v in range(st.counters[K_HIGH_WATER]):
        if st.vi[STATUS, v] == PLAYING and st.vi[CHANNEL, v] == c:
            vc.modulate(v, st)
            vc.update_params(v, st)


@_njit
def _refresh_key(c: int, key: int, st) -> None:  # type: ignore[no-untyped-def]
    """The pressure of ``key`` on channel ``c`` changed: re-run the modulators of that key's voices."""
    for v in range(st.counters[K_HIGH_WATER]):
        if st.vi[STATUS, v] == PLAYING and st.vi[CHANNEL, v] == c and st.vi[KEY, v] == key:
            vc.modulate(v, st)
            vc.update_params(v, st)


@_njit
def _key_up(v: int, st) -> None:  # type: ignore[no-untyped-def]
    """FluidSynth's fluid_voice_noteoff: pedals hold the voice, else it releases."""
    c = st.vi[CHANNEL, v]
    st.vi[HELD, v] = 0
    if st.ci[C_SOSTENUTO, c] and st.vi[SOSTENUTO, v]:
        return
    if st.ci[C_SUSTAIN, c]:
        st.vi[SUSTAINED, v] = 1
        return
    vc.release(v, st)


@_njit
def note_off(c: int, key: int, st) -> None:  # type: ignore[no-untyped-def]
    i = st.vi
    for v in range(st.counters[K_HIGH_WATER]):
        if i[STATUS, v] == PLAYING and i[CHANNEL, v] == c and i[KEY, v] == key and i[HELD, v]:
            _key_up(v, st)


@_njit
def _steal(st, polyphony: int, now_id: int) -> int:  # type: ignore[no-untyped-def]
    """The voice slot to take when every slot is in use: the lowest FluidSynth-style overflow priority."""
    i = st.vi
    f = st.vf
    best = 0
    best_prio = 1e300
    for v in range(polyphony):
        prio = 0.0
        if i[VOL_SECTION, v] >= RELEASE:
            prio -= 2000.0
        if i[SUSTAINED, v]:
            prio -= 1000.0
        prio += 1000.0 * (1.0 - (now_id - i[NOTE_ID, v]) / (now_id + 1.0))  # older is cheaper
        prio += 500.0 * f[AMP, v]  # louder is dearer
        if prio < best_prio:
            best_prio = prio
            best = v
    st.counters[K_STOLEN] += 1
    return best


@_njit
def _allocate(st, now_id: int) -> int:  # type: ignore[no-untyped-def]
    polyphony = st.vi.shape[1]
    high = st.counters[K_HIGH_WATER]
    for v in range(high):
        if st.vi[STATUS, v] != PLAYING:
            return v
    if high < polyphony:
        st.counters[K_HIGH_WATER] = high + 1
        return int(high)
    return int(_steal(st, polyphony, now_id))


@_njit
def note_on(c: int, key: int, vel: int, st) -> None:  # type: ignore[no-untyped-def]
    p = st.ci[C_PRESET, c]
    if p < 0:
        st.counters[K_NO_PRESET] += 1
        return
    i = st.vi
    note_id = st.counters[K_NEXT_NOTE_ID]
    st.counters[K_NEXT_NOTE_ID] = note_id + 1
    for v in range(st.counters[K_HIGH_WATER]):  # a key struck again lets go of its sounding voices
        if i[STATUS, v] == PLAYING and i[CHANNEL, v] == c and i[KEY, v] == key and i[HELD, v]:
            _key_up(v, st)
    sel = st.select
    n = _select_voice_zones(st.key_index, st.key_zones, st.vel_lo, st.vel_hi, p, key, vel, sel)
    if n:
        st.counters[K_NOTES] += 1
    for k in range(n):
        z = sel[k]
        v = _allocate(st, note_id)
        vc.start_voice(v, z, c, key, vel, note_id, st)
        excl = i[EXCLUSIVE, v]
        if excl:
            for w in range(st.counters[K_HIGH_WATER]):
                if (
                    w != v
                    and i[STATUS, w] == PLAYING
                    and i[CHANNEL, w] == c
                    and i[EXCLUSIVE, w] == excl
                    and i[NOTE_ID, w] != note_id
                ):
                    vc.kill_exclusive(w, st)
                    st.counters[K_EXCLUSIVE_KILLS] += 1


@_njit
def _pedal_up(c: int, st, sostenuto: bool) -> None:  # type: ignore[no-untyped-def]
    i = st.vi
    for v in range(st.counters[K_HIGH_WATER]):
        if i[STATUS, v] != PLAYING or i[CHANNEL, v] != c:
            continue
        if sostenuto:
            if not i[SOSTENUTO, v]:
                continue
            i[SOSTENUTO, v] = 0
            if i[HELD, v]:
                continue
            if st.ci[C_SUSTAIN, c]:
                i[SUSTAINED, v] = 1
                continue
            vc.release(v, st)
        elif i[SUSTAINED, v] and not i[HELD, v] and not (st.ci[C_SOSTENUTO, c] and i[SOSTENUTO, v]):
            vc.release(v, st)


@_njit
def _sound_off(first: int, last: int, st) -> None:  # type: ignore[no-untyped-def]
    i = st.vi
    for v in range(st.counters[K_HIGH_WATER]):
        if i[STATUS, v] == PLAYING and first <= i[CHANNEL, v] < last:
            vc.free(v, st)


@_njit
def _data_entry(c: int, value: int, lsb: bool, st) -> None:  # type: ignore[no-untyped-def]
    ci = st.ci
    if ci[C_NRPN, c] or ci[C_RPN, c] != RPN_BEND_RANGE:
        st.counters[K_IGNORED] += 1
        return
    semis = ci[C_BEND_RANGE, c] // 100
    cents = ci[C_BEND_RANGE, c] % 100
    if lsb:
        cents = min(value, 99)
    else:
        semis = value
    ci[C_BEND_RANGE, c] = semis * 100 + cents
    _refresh_channel(c, st)


@_njit
def control_change(c: int, num: int, value: int, st) -> None:  # type: ignore[no-untyped-def]
    ci = st.ci
    st.cc[c, num] = value
    if num == CC_BANK_MSB:
        ci[C_BANK_MSB, c] = value  # takes effect at the next program change, as in FluidSynth
    elif num == CC_BANK_LSB:
        ci[C_BANK_LSB, c] = value
    elif num == CC_SUSTAIN:
        down = value >= 64
        was = ci[C_SUSTAIN, c]
        ci[C_SUSTAIN, c] = 1 if down else 0
        if was and not down:
            _pedal_up(c, st, False)
    elif num == CC_SOSTENUTO:
        down = value >= 64
        was = ci[C_SOSTENUTO, c]
        if down and not was:
            ci[C_SOSTENUTO, c] = 1
            for v in range(st.counters[K_HIGH_WATER]):
                if st.vi[STATUS, v] == PLAYING and st.vi[CHANNEL, v] == c and st.vi[HELD, v]:
                    st.vi[SOSTENUTO, v] = 1
        elif was and not down:
            ci[C_SOSTENUTO, c] = 0
            _pedal_up(c, st, True)
    elif num == CC_RPN_LSB:
        ci[C_RPN, c] = (ci[C_RPN, c] & 0x3F80) | value
        ci[C_NRPN, c] = 0
    elif num == CC_RPN_MSB:
        ci[C_RPN, c] = (value << 7) | (ci[C_RPN, c] & 0x7F)
        ci[C_NRPN, c] = 0
    elif num == CC_NRPN_LSB or num == CC_NRPN_MSB:
        ci[C_NRPN, c] = 1
    elif num == CC_DATA_ENTRY:
        _data_entry(c, value, False, st)
    elif num == CC_DATA_ENTRY_LSB:
        _data_entry(c, value, True, st)
    elif num == CC_ALL_SOUND_OFF:
        _sound_off(c, c + 1, st)
    elif num == CC_RESET_CONTROLLERS:
        had_pedal = ci[C_SUSTAIN, c] or ci[C_SOSTENUTO, c]
        reset_controllers(c, st, False)
        if had_pedal:
            _pedal_up(c, st, True)
            _pedal_up(c, st, False)
        _refresh_channel(c, st)
    elif CC_ALL_NOTES_OFF <= num <= CC_POLY_ON:
        for v in range(st.counters[K_HIGH_WATER]):
            if st.vi[STATUS, v] == PLAYING and st.vi[CHANNEL, v] == c and st.vi[HELD, v]:
                _key_up(v, st)
    else:
        _refresh_channel(c, st)


@_njit
def reset_group(base: int, st) -> None:  # type: ignore[no-untyped-def]
    _sound_off(base, base + CHANNELS_PER_GROUP, st)
    for c in range(base, base + CHANNELS_PER_GROUP):
        reset_channel(c, st)


@_njit
def apply_message(base: int, length: int, data, st) -> None:  # type: ignore[no-untyped-def]
    """Apply one message (``data[:length]``) of the channel group whose first channel is ``base``."""
    if length < 1:
        st.counters[K_MALFORMED] += 1
        return
    status = data[0]
    if status == SYSTEM_RESET:
        reset_group(base, st)
        return
    if status == SET_CHANNEL_TYPE:
        if length < 3 or data[1] >= CHANNELS_PER_GROUP:
            st.counters[K_MALFORMED] += 1
            return
        c = base + data[1]
        st.ci[C_DRUM, c] = 1 if data[2] else 0
        resolve_preset(c, st)  # a drum channel plays bank 128 from now on, a melodic one its bank again
        return
    if st.status_kind[status] != KIND_CHANNEL:
        st.counters[K_IGNORED] += 1
        return
    need = st.data_length[status]
    if length < 1 + need or data[1] > 0x7F or (need == 2 and data[2] > 0x7F):
        st.counters[K_MALFORMED] += 1
        return
    c = base + (status & 0x0F)
    kind = status & 0xF0
    d1 = int(data[1])
    d2 = int(data[2]) if need == 2 else 0
    if kind == NOTE_ON:
        if d2:
            note_on(c, d1, d2, st)
        else:
            note_off(c, d1, st)
    elif kind == NOTE_OFF:
        note_off(c, d1, st)
    elif kind == CONTROL_CHANGE:
        control_change(c, d1, d2, st)
    elif kind == PROGRAM_CHANGE:
        st.ci[C_PROGRAM, c] = d1
        resolve_preset(c, st)
    elif kind == CHANNEL_PRESSURE:
        st.ci[C_PRESSURE, c] = d1
        _refresh_channel(c, st)
    elif kind == PITCH_BEND:
        st.ci[C_BEND, c] = d1 | (d2 << 7)
        _refresh_channel(c, st)
    else:  # polyphonic key pressure: only the key's own voices hear it (a modulator source of their zones)
        st.cc[c, KEY_PRESSURE + d1] = d2
        _refresh_key(c, d1, st)
