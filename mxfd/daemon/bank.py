"""The daemon's bank: the SoundFont (or the built-in bank) ``[synth]`` asks for, loaded off the audio thread.

``[synth] soundfont`` is one entry or a list; entries are tried in order and
the first that loads is played (FluidSynth stacks every font of its list and
looks each bank:program up through the stack; here the first font that
loads is the whole bank).  No entry: the system's General MIDI font
(:func:`~mxfd.synth.soundfont.resolve_soundfont`), else the built-in bank;
``"builtin"`` is the built-in bank.  An entry named in the config or on the
command line that cannot be loaded is an error (:class:`BankError`, one
line); the system's font failing to load only costs a warning, and the
built-in bank plays.

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
import dataclasses
import os
import sys
import time
from types import FrameType
from typing import Any, Iterator, Optional

from mxfd.daemon.config import SynthConfig
from mxfd.render import BadSoundFont, SynthChoice, choice_font, choose_soundfont, load_font

#: The name status gives the built-in bank (its own name, as ``mxfd instruments`` shows it).
BUILTIN_NAME = "built-in GM"
#: How long a thread loading a bank holds the GIL at most while it runs Python code (seconds).
GIL_YIELD_S = 0.0002


class BankError(Exception):
    """No bank the config names can be loaded; the message says which and why, in one line."""


def choose_bank(synth: SynthConfig, rate: int) -> tuple[SynthChoice, list[str]]:
    """The bank for ``synth`` with its font loaded, and one line per entry skipped because it did not load.

    The built-in bank is a font too, built for ``rate`` (once: then it is mapped from the cache).

    Raises :class:`BankError` when every entry named fails.  Loads files: call it off the audio thread.
    """
    entries: tuple[Optional[str], ...] = synth.soundfont or (None,)
    skipped: list[str] = []
    for entry in entries:
        path = choose_soundfont(entry)
        if path is None:
            return _builtin(synth, rate), skipped
        try:
            font = load_font(path)
        except BadSoundFont as exc:
            skipped.append(str(exc))
            continue
        return SynthChoice(path, synth.gain, synth.reverb, synth.chorus, font), skipped
    if not synth.soundfont:  # the system's font, which nobody asked for by name
        return _builtin(synth, rate), skipped
    raise BankError("; ".join(skipped))


def _builtin(synth: SynthConfig, rate: int) -> SynthChoice:
    choice = SynthChoice(None, synth.gain, synth.reverb, synth.chorus)
    return dataclasses.replace(choice, font=choice_font(choice, rate))


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
    """The bank as status and the log name it: the font's path, or the built-in bank's name."""
    return choice.soundfont if choice.soundfont is not None else BUILTIN_NAME


def describe_bank(choice: SynthChoice) -> str:
    """The bank for a log line: the path and the font's own name, or the built-in bank's name."""
    if choice.soundfont is None:
        return BUILTIN_NAME
    name = str(getattr(choice.font, "name", "") or "")
    return f"{choice.soundfont} ({name})" if name else str(choice.soundfont)


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
