"""Which font is used by default: the system's GM font in a fixed search order, else the built-in bank."""

from __future__ import annotations

import os

from mxfd.synth.soundfont import BUILTIN, DEFAULT_SOUNDFONT_PATHS, resolve_soundfont


def only(*present: str):  # type: ignore[no-untyped-def]
    return lambda path: path in present


def test_debians_default_gm_link_comes_first() -> None:
    assert DEFAULT_SOUNDFONT_PATHS[0] == "/usr/share/sounds/sf2/default-GM.sf2"
    everything = only(*DEFAULT_SOUNDFONT_PATHS)
    assert resolve_soundfont(None, exists=everything) == "/usr/share/sounds/sf2/default-GM.sf2"


def test_the_other_usual_paths_in_order() -> None:
    assert (
        resolve_soundfont(
            None, exists=only("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2")
        )
        == "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    )
    assert (
        resolve_soundfont("", exists=only("/usr/share/sounds/sf2/TimGM6mb.sf2")) == "/usr/share/sounds/sf2/TimGM6mb.sf2"
    )


def test_nothing_installed_means_the_builtin_bank() -> None:
    assert resolve_soundfont(None, exists=only()) is None


def test_builtin_and_explicit_paths() -> None:
    assert resolve_soundfont(BUILTIN, exists=only(*DEFAULT_SOUNDFONT_PATHS)) is None
    assert resolve_soundfont(" builtin ", exists=only()) is None
    assert resolve_soundfont("/x/y.sf2", exists=only()) == "/x/y.sf2"  # the loader reports a missing file
    assert resolve_soundfont("~/fonts/a.sf2", exists=only()) == os.path.expanduser("~/fonts/a.sf2")


def test_this_machine_has_the_default_gm_font() -> None:
    """The Makefile installs fluid-soundfont-gm, which provides Debian's default-GM link."""
    assert resolve_soundfont(None) == "/usr/share/sounds/sf2/default-GM.sf2"
