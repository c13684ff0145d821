"""The daemon's bank: the SoundFont (or the built-in bank) ``[synth]`` asks for, loaded off the audio thread.

``[synth] soundfont`` is one entry or a list.  A list is a stack, as
FluidSynth's loaded fonts are: each bank:program is played from the first
entry that has it (:mod:`~mxfd.synth.soundfont.stack`).  An entry that does
not load is skipped with a warning; when none loads it is an error
(:class:`BankError`, one line).  No entry: the system's General MIDI font
(:func:`~mxfd.synth.soundfont.resolve_soundfont`), else the built-in bank,
so the system's font failing to load only costs a warning; ``"builtin"`` is
the built-in bank, in a stack as anywhere.

:func:`bank_key` says whether a reload asks for another bank without loading
anything: the entries, the gain and effects, and each file's identity on
disk (a font rewritten in place is loaded again).

A reload loads the font in the daemon's process, beside the render thread,
which needs the GIL for a moment several times per block.  Parsing a font is
Python work that holds the GIL for up to the switch interval at a time, so
the render thread would wait that long at each of those moments and miss its
period (heard as a dropout, measured at 5 ms a block on a 2-core machine).
:func:`yielding_gil` makes the loading thread let go of it every
:data:`GIL_YIELD_S` instead: the load takes a few times longer, the render
thread never waits longer than that.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from types import FrameType
from typing import Any, Iterator, Optional

from mxfd.daemon.config import SynthConfig
from mxfd.render import BadSoundFont, SynthChoice, choice_font, choose_soundfont, stacked_choice

#: The name status gives the built-in bank (its own name, as ``mxfd instruments`` shows it).
BUILTIN_NAME = "built-in GM"
#: How long a thread loading a bank holds the GIL at most while it runs Python code (seconds).
GIL_YIELD_S = 0.0002


class BankError(Exception):
    """No bank the config names can be loaded; the message says which and why, in one line."""


def choose_bank(synth: SynthConfig, rate: int) -> tuple[SynthChoice, list[str]]:
    """The bank for ``synth`` with its fonts loaded, and one line per entry skipped because it did not load.

    The built-in bank is a font too, built for ``rate`` (once: then it is mapped from the cache).

    Raises :class:`BankError` when every entry named fails.  Loads files: call it off the audio thread.
    """
    entries: tuple[Optional[str], ...] = synth.soundfont or (None,)
    skipped: list[str] = []
    members: list[tuple[Optional[str], Any]] = []
    for entry in entries:
        path = choose_soundfont(entry)
        try:
            members.append((path, choice_font(SynthChoice(path), rate)))
        except BadSoundFont as exc:
            skipped.append(str(exc))
    if members:
        return stacked_choice(members, synth.gain, synth.reverb, synth.chorus), skipped
    if not synth.soundfont:  # the system's font, which nobody asked for by name
        return _builtin(synth, rate), skipped
    raise BankError("; ".join(skipped))


def _builtin(synth: SynthConfig, rate: int) -> SynthChoice:
    return stacked_choice([(None, choice_font(SynthChoice(None), rate))], synth.gain, synth.reverb, synth.chorus)


@contextlib.contextmanager
def yielding_gil(every_s: float = GIL_YIELD_S) -> Iterator[None]:
    """While the calling thread runs Python code inside, it lets go of the GIL every ``every_s`` seconds.

    A profile hook of this thread only (other threads run as before); one already set is put back after.
    """
    last = time.perf_counter()

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_s:
            time.sleep(0)  # releases the GIL: a thread waiting for it takes it now
            last = time.perf_counter()

    old = sys.getprofile()
    sys.setprofile(hook)
    try:
        yield
    finally:
        sys.setprofile(old)


def _identity(entry: Optional[str]) -> tuple[Any, ...]:
    path = choose_soundfont(entry)
    if path is None:
        return (entry, None)
    try:
        st = os.stat(path)
    except OSError as exc:
        return (path, exc.errno)
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def bank_key(synth: SynthConfig) -> tuple[Any, ...]:
    """What the bank ``synth`` asks for is made of: equal keys, the same bank (nothing to load again)."""
    return (tuple(_identity(e) for e in synth.soundfont or (None,)), synth.gain, synth.reverb, synth.chorus)


def bank_name(choice: SynthChoice) -> str:
    """The bank as status and the log name it: the font's path, or the built-in bank's name; a stack's, joined."""
    return " + ".join(_name(path) for path in choice.stack or (choice.soundfont,))


def _name(path: Optional[str]) -> str:
    return path if path is not None else BUILTIN_NAME


def describe_bank(choice: SynthChoice) -> str:
    """The bank for a log line: each font's path and its own name, or the built-in bank's name."""
    members = getattr(choice.font, "members", (choice.font,))
    paths = choice.stack or (choice.soundfont,)
    return " + ".join(_described(path, font) for path, font in zip(paths, members, strict=True))


def _described(path: Optional[str], font: Any) -> str:
    if path is None:
        return BUILTIN_NAME
    name = str(getattr(font, "name", "") or "")
    return f"{path} ({name})" if name else path


__all__ = [
    "BUILTIN_NAME",
    "GIL_YIELD_S",
    "BankError",
    "bank_key",
    "bank_name",
    "choose_bank",
    "describe_bank",
    "yielding_gil",
]
