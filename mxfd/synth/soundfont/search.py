"""Which SoundFont to use when the user names none: the system's General MIDI font, else the built-in bank.

Debian and Ubuntu point ``/usr/share/sounds/sf2/default-GM.sf2`` (an
alternatives link) at the installed GM font; the other paths are where
distributions put FluidR3_GM, TimGM6mb, GeneralUser and MuseScore's fonts.
:func:`resolve_soundfont` is pure: it is given the test of whether a file
exists, so the search order is tested without touching the file system.
"""

from __future__ import annotations

import os
from typing import Callable, Final, Optional, Sequence

#: The value (of ``--soundfont`` or ``[synth] soundfont``) that chooses the built-in bank.
BUILTIN: Final = "builtin"

#: Searched in this order; the first that exists is used.
DEFAULT_SOUNDFONT_PATHS: Final[tuple[str, ...]] = (
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/sounds/sf3/MuseScore_General.sf3",
    "/usr/share/soundfonts/GeneralUser.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/TimGM6mb.sf2",
)


def resolve_soundfont(
    choice: Optional[str],
    *,
    exists: Callable[[str], bool] = os.path.isfile,
    search: Sequence[str] = DEFAULT_SOUNDFONT_PATHS,
) -> Optional[str]:
    """The font file to load for ``choice``, or None for the built-in bank.

    ``choice`` is None or "" (use the first of ``search`` that ``exists``, else the built-in bank),
    ``"builtin"`` (the built-in bank) or a path, returned as given with ``~`` expanded (whether it
    exists is for the loader to say, with its own error).
    """
    if choice is not None and choice.strip():
        choice = choice.strip()
        return None if choice == BUILTIN else os.path.expanduser(choice)
    for path in search:
        if exists(path):
            return path
    return None
