"""MIDI 1.0 message rules as data.

One table (like mido's ``specs.py``) says, for each status byte, how many
data bytes follow it and what kind of message it starts.  The capture sink,
the wire format, the unpacker and the synth all derive their decisions from
it, so the byte rules live in exactly one place.
"""

from __future__ import annotations

from typing import Final

SYSEX: Final = 0xF0
EOX: Final = 0xF7
FIRST_REALTIME: Final = 0xF8

#: Message kinds, as small ints so hot paths compare without allocation.
KIND_DATA: Final = 0  # a data byte (< 0x80), not a status
KIND_CHANNEL: Final = 1  # 0x80-0xEF: sets running status
KIND_SYSEX: Final = 2  # 0xF0
KIND_COMMON: Final = 3  # 0xF1-0xF6: clears running status
KIND_EOX: Final = 4  # 0xF7 outside a SysEx: clears running status, dropped
KIND_REALTIME: Final = 5  # 0xF8-0xFF: single byte, may interleave anywhere
KIND_UNDEFINED: Final = 6  # 0xF4, 0xF5: system common with no meaning

_CHANNEL_DATA = {0x80: 2, 0x90: 2, 0xA0: 2, 0xB0: 2, 0xC0: 1, 0xD0: 1, 0xE0: 2}
_COMMON_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1, 0xF6: 0}


def _build_tables() -> tuple[bytes, bytes]:
    kinds = bytearray(256)
    lengths = bytearray(256)  # data bytes after the status byte
    for b in range(0x80, 0xF0):
        kinds[b] = KIND_CHANNEL
        lengths[b] = _CHANNEL_DATA[b & 0xF0]
    kinds[SYSEX] = KIND_SYSEX
    for b, n in _COMMON_DATA.items():
        kinds[b] = KIND_COMMON
        lengths[b] = n
    kinds[0xF4] = kinds[0xF5] = KIND_UNDEFINED
    kinds[EOX] = KIND_EOX
    for b in range(FIRST_REALTIME, 0x100):
        kinds[b] = KIND_REALTIME
    return bytes(kinds), bytes(lengths)


#: ``STATUS_KIND[b]`` is the KIND_* of byte ``b``.
#: ``DATA_LENGTH[b]`` is how many data bytes follow status ``b``.
STATUS_KIND, DATA_LENGTH = _build_tables()


def message_length(status: int) -> int:
    """Return the full length of a short message starting with ``status``.

    SysEx has no fixed length and returns 0; so does a data byte.
    """
    kind = STATUS_KIND[status]
    if kind == KIND_DATA or kind == KIND_SYSEX:
        return 0
    return 1 + DATA_LENGTH[status]


def is_structured(message: bytes | bytearray | memoryview) -> bool:
    """True for channel, system common and real-time messages (not SysEx)."""
    return len(message) > 0 and STATUS_KIND[message[0]] not in (KIND_DATA, KIND_SYSEX, KIND_EOX)
