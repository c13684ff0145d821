"""Shared fixtures of the end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.ears import Ear

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
#: numba's first compile of the SoundFont engine on a fresh clone, as slow as a loaded CI machine makes it.
COMPILE_TIMEOUT_S = 900

_WARM_UP = """
from mxfd.render import SynthChoice, load_font, make_synth
path = "/usr/share/sounds/sf2/TimGM6mb.sf2"
make_synth(SynthChoice(path, font=load_font(path)), 48000, 16, 128).warm_up()
"""


@pytest.fixture(scope="session")
def compiled_engine() -> None:
    """numba's cache of the SoundFont engine, filled once per session before a daemon plays a font.

    A daemon compiles the engine before it reports READY; on a cold cache that takes longer than
    a daemon test waits for READY, so the session pays it once here, in a process of its own.
    """
    done = subprocess.run([PYTHON, "-c", _WARM_UP], cwd=ROOT, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture
def ear(daemon: Any) -> Iterator[Ear]:
    """An ear on ``mxfd-out``, the audio output of the test module's ``daemon``."""
    e = Ear()
    try:
        e.connect(r"^mxfd-out:", timeout=15.0)
        yield e
    finally:
        e.close()
