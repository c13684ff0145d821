"""The daemon's bank: the entries of ``[synth] soundfont`` that load, stacked; the system's font; or the built-in."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mxfd.daemon import bank
from mxfd.daemon.bank import BUILTIN_NAME, BankError, bank_key, bank_name, choose_bank, describe_bank
from mxfd.daemon.config import SynthConfig

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
RATE = 48000


def bad_font(tmp_path: Path) -> str:
    path = tmp_path / "broken.sf2"
    path.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")  # a RIFF header and nothing in it
    return str(path)


def test_every_entry_that_loads_joins_the_stack_in_order_and_each_one_skipped_says_why(tmp_path: Path) -> None:
    broken = bad_font(tmp_path)
    choice, skipped = choose_bank(SynthConfig(soundfont=(broken, "/no/such.sf2", TIMGM, "builtin")), RATE)
    assert choice.soundfont == TIMGM and choice.stack == (TIMGM, None)
    assert [m.path for m in choice.font.members] == [TIMGM, choice.font.members[1].path]
    assert len(skipped) == 2 and broken in skipped[0] and "/no/such.sf2" in skipped[1]
    assert all("\n" not in line for line in skipped)
    assert bank_name(choice) == f"{TIMGM} + {BUILTIN_NAME}"
    assert describe_bank(choice) == f"{TIMGM} ({choice.font.members[0].name}) + {BUILTIN_NAME}"


def test_one_entry_that_loads_is_the_bank_itself(tmp_path: Path) -> None:
    choice, skipped = choose_bank(SynthConfig(soundfont=(bad_font(tmp_path), TIMGM)), RATE)
    assert choice.soundfont == TIMGM and choice.stack == () and choice.font.path == TIMGM
    assert len(skipped) == 1 and bank_name(choice) == TIMGM
    assert describe_bank(choice) == f"{TIMGM} ({choice.font.name})"


def test_builtin_chooses_the_built_in_bank_with_the_gain_and_effects_asked_for() -> None:
    choice, skipped = choose_bank(SynthConfig(soundfont=("builtin",), gain=-3.0, reverb=False, chorus=True), RATE)
    got = (choice.soundfont, choice.gain_db, choice.reverb, choice.chorus)
    assert got == (None, -3.0, False, True) and choice.font.name == BUILTIN_NAME  # the bank's own SoundFont
    assert skipped == [] and bank_name(choice) == describe_bank(choice) == BUILTIN_NAME


def test_a_named_font_that_does_not_load_is_an_error_naming_it(tmp_path: Path) -> None:
    broken = bad_font(tmp_path)
    with pytest.raises(BankError) as exc:
        choose_bank(SynthConfig(soundfont=(broken, "/no/such.sf2")), RATE)
    assert broken in str(exc.value) and "/no/such.sf2" in str(exc.value) and "\n" not in str(exc.value)


def test_the_system_font_failing_to_load_leaves_the_built_in_bank(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = bad_font(tmp_path)
    monkeypatch.setattr(bank, "choose_soundfont", lambda value: broken if value is None else value)
    choice, skipped = choose_bank(SynthConfig(), RATE)
    assert choice.soundfont is None and len(skipped) == 1 and broken in skipped[0]


def test_no_entry_plays_the_system_general_midi_font() -> None:
    choice, _ = choose_bank(SynthConfig(), RATE)
    assert choice.soundfont is not None and os.path.realpath(choice.soundfont) in {
        os.path.realpath(p) for p in ("/usr/share/sounds/sf2/default-GM.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2")
    }


def test_the_key_changes_with_the_entries_the_settings_and_a_file_rewritten_in_place(tmp_path: Path) -> None:
    path = tmp_path / "mine.sf2"
    path.write_bytes(b"x")
    synth = SynthConfig(soundfont=(str(path),))
    key = bank_key(synth)
    assert bank_key(SynthConfig(soundfont=(str(path),))) == key
    assert bank_key(SynthConfig(soundfont=(str(path),), gain=1.0)) != key
    assert bank_key(SynthConfig(soundfont=(str(path),), reverb=False)) != key
    assert bank_key(SynthConfig(soundfont=("builtin",))) != key
    os.utime(path, ns=(1, 1))
    assert bank_key(synth) != key
