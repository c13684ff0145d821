"""``mxfd instruments``: what a SoundFont holds, listed as FluidSynth lists it, or one line of error."""

from __future__ import annotations

import json
import subprocess
import sys

from mxfd.instruments import builtin_presets, list_instruments

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"


def mxfd(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mxfd", "instruments", *argv], capture_output=True, text=True)


def test_the_builtin_bank_lists_the_128_gm_programs_and_its_kit() -> None:
    presets = builtin_presets()
    assert [(p.bank, p.program) for p in presets] == [(0, n) for n in range(128)] + [(128, 0)]
    assert presets[0].name == "Acoustic Grand Piano" and presets[127].name == "Gunshot"


def test_a_soundfont_is_listed_in_bank_and_program_order_as_fluidsynth_names_them() -> None:
    listing = list_instruments(TIMGM)
    rows = [(p["bank"], p["program"]) for p in listing["presets"]]
    assert rows == sorted(rows) and len(rows) == 136
    assert listing["presets"][0] == {"bank": 0, "program": 0, "name": "Piano 1"}
    assert (128, 0) in rows  # the drum kit


def test_the_command_prints_one_line_a_preset_and_json_on_request() -> None:
    text = mxfd("--soundfont", TIMGM)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].endswith(f"({TIMGM}): 136 presets") and lines[1] == "000-000 Piano 1"
    as_json = mxfd("--soundfont", TIMGM, "--json")
    assert json.loads(as_json.stdout)["presets"] == list_instruments(TIMGM)["presets"]


def test_a_stack_lists_each_bank_program_once_from_the_first_font_that_has_it() -> None:
    out = mxfd("--soundfont", "builtin", "--soundfont", TIMGM, "--json")
    assert out.returncode == 0, out.stderr
    listing = json.loads(out.stdout)
    assert listing["soundfonts"] == ["builtin", TIMGM]
    rows = {(p["bank"], p["program"]): p for p in listing["presets"]}
    assert rows[(0, 0)] == {"bank": 0, "program": 0, "name": "Acoustic Grand Piano", "soundfont": "builtin"}
    timgm_only = {(p["bank"], p["program"]) for p in list_instruments(TIMGM)["presets"]} - {
        (p.bank, p.program) for p in builtin_presets()
    }
    assert (128, 8) in timgm_only and all(rows[k]["soundfont"] == TIMGM for k in timgm_only)
    assert len(rows) == 129 + len(timgm_only)
    text = mxfd("--soundfont", "builtin", "--soundfont", TIMGM).stdout.splitlines()
    assert text[0].endswith(f"(builtin + {TIMGM}): {len(rows)} presets")


def test_builtin_is_chosen_by_name() -> None:
    out = mxfd("--soundfont", "builtin", "--json")
    assert json.loads(out.stdout)["soundfont"] == "builtin"


def test_without_a_choice_the_system_gm_font_is_listed() -> None:
    # the test command installs fluid-soundfont-gm, which points default-GM.sf2 at FluidR3_GM
    assert list_instruments(None)["soundfont"] == "/usr/share/sounds/sf2/default-GM.sf2"


def test_a_file_that_is_not_a_soundfont_gets_one_line_and_status_2(tmp_path: object) -> None:
    bad = f"{tmp_path}/bad.sf2"
    with open(bad, "wb") as f:
        f.write(b"RIFF\x04\x00\x00\x00WAVE")
    out = mxfd("--soundfont", bad)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"mxfd instruments: {bad}: ")
