"""MIDI 1.0 status rules as data: kinds, data lengths, message lengths."""

from __future__ import annotations

import pytest

from mxfd.core.midi import (
    DATA_LENGTH,
    EOX,
    FIRST_REALTIME,
    KIND_CHANNEL,
    KIND_COMMON,
    KIND_DATA,
    KIND_EOX,
    KIND_REALTIME,
    KIND_SYSEX,
    KIND_UNDEFINED,
    STATUS_KIND,
    SYSEX,
    is_structured,
    message_length,
)


def test_tables_cover_every_byte() -> None:
    assert len(STATUS_KIND) == len(DATA_LENGTH) == 256


def test_bytes_below_0x80_are_data_bytes() -> None:
    assert all(STATUS_KIND[b] == KIND_DATA for b in range(0x80))
    assert all(message_length(b) == 0 for b in range(0x80))


@pytest.mark.parametrize(
    ("high_nibble", "length"),
    [(0x80, 3), (0x90, 3), (0xA0, 3), (0xB0, 3), (0xC0, 2), (0xD0, 2), (0xE0, 3)],
)
def test_channel_messages_have_their_spec_lengths_on_every_channel(high_nibble: int, length: int) -> None:
    for channel in range(16):
        status = high_nibble | channel
        assert STATUS_KIND[status] == KIND_CHANNEL
        assert message_length(status) == length


@pytest.mark.parametrize(("status", "length"), [(0xF1, 2), (0xF2, 3), (0xF3, 2), (0xF6, 1)])
def test_system_common_messages_have_their_spec_lengths(status: int, length: int) -> None:
    assert STATUS_KIND[status] == KIND_COMMON
    assert message_length(status) == length


def test_undefined_system_common_bytes_are_single_byte_messages() -> None:
    for status in (0xF4, 0xF5):
        assert STATUS_KIND[status] == KIND_UNDEFINED
        assert message_length(status) == 1


def test_real_time_bytes_are_single_byte_messages() -> None:
    assert FIRST_REALTIME == 0xF8
    for status in range(0xF8, 0x100):
        assert STATUS_KIND[status] == KIND_REALTIME
        assert message_length(status) == 1


def test_sysex_has_no_fixed_length_and_eox_is_its_own_kind() -> None:
    assert (SYSEX, EOX) == (0xF0, 0xF7)
    assert STATUS_KIND[SYSEX] == KIND_SYSEX
    assert message_length(SYSEX) == 0
    assert STATUS_KIND[EOX] == KIND_EOX


def test_structured_means_channel_common_or_real_time() -> None:
    assert is_structured(b"\x90\x3c\x40")
    assert is_structured(b"\xf2\x00\x10")
    assert is_structured(b"\xf8")
    assert not is_structured(b"\xf0\x7e\xf7")
    assert not is_structured(b"\xf7")
    assert not is_structured(b"\x3c\x40")
    assert not is_structured(b"")
