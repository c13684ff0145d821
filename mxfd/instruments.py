"""``mxfd instruments``: the presets a user can choose, from a SoundFont or the built-in bank.

The font is the one ``--soundfont`` names (given more than once, the stack
they make, each preset from the first font that has it), else the one ``mxfd render``
uses by default (:func:`~mxfd.synth.soundfont.resolve_soundfont`:
the system's General MIDI font, else the built-in bank).  Each preset is
listed as ``BANK-PROGRAM NAME``, as FluidSynth's ``inst`` command lists them,
so a user can pick one with CC0/CC32 and a program change.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from mxfd.synth.soundfont import BUILTIN, PERCUSSION_BANK, PresetInfo, SoundFontError, load_soundfont, resolve_soundfont

#: What the built-in bank calls its one drum kit (bank 128, program 0).
BUILTIN_KIT_NAME = "Standard Kit"


def builtin_presets() -> tuple[PresetInfo, ...]:
    """The built-in bank's presets: the 128 General MIDI programs and its drum kit."""
    from mxfd.synth.bank import GM_NAMES

    melodic = tuple(PresetInfo(0, program, name) for program, name in enumerate(GM_NAMES))
    return (*melodic, PresetInfo(PERCUSSION_BANK, 0, BUILTIN_KIT_NAME))


def list_instruments(choice: str | Sequence[str] | None) -> dict[str, Any]:
    """The listing of the font ``choice`` names (None: the default one), as ``--json`` prints it.

    Several entries are a stack, as ``[synth] soundfont`` lists them: each bank:program is listed once,
    from the first font that has it, and its row says which (``soundfont``).

    Raises :class:`SoundFontError` for a file that cannot be loaded.
    """
    entries = [choice] if choice is None or isinstance(choice, str) else list(choice)
    listings = [_listing(entry) for entry in entries]
    if len(listings) == 1:
        return listings[0]
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for listing in listings:
        for row in listing["presets"]:
            rows.setdefault((row["bank"], row["program"]), {**row, "soundfont": listing["soundfont"]})
    return {
        "soundfont": listings[0]["soundfont"],
        "soundfonts": [listing["soundfont"] for listing in listings],
        "name": " + ".join(listing["name"] for listing in listings),
        "presets": [rows[key] for key in sorted(rows)],
    }


def _listing(choice: str | None) -> dict[str, Any]:
    path = resolve_soundfont(choice)
    if path is None:
        return {"soundfont": BUILTIN, "name": "built-in GM", "presets": _rows(builtin_presets())}
    font = load_soundfont(path)
    return {"soundfont": path, "name": font.name, "presets": _rows(font.presets)}


def _rows(presets: tuple[PresetInfo, ...]) -> list[dict[str, Any]]:
    ordered = sorted(presets, key=lambda p: (p.bank, p.program))
    return [{"bank": p.bank, "program": p.program, "name": p.name} for p in ordered]


def format_listing(listing: dict[str, Any]) -> str:
    presets = listing["presets"]
    where = " + ".join(listing.get("soundfonts", [listing["soundfont"]]))
    lines = [f"{listing['name']} ({where}): {len(presets)} presets"]
    lines += [f"{p['bank']:03d}-{p['program']:03d} {p['name']}" for p in presets]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    try:
        listing = list_instruments(args.soundfont)
    except SoundFontError as e:
        print(f"mxfd instruments: {e}", file=sys.stderr)
        return 2
    print(json.dumps(listing, indent=2) if args.json else format_listing(listing))
    return 0
