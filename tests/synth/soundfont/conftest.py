"""Fixtures for SoundFont tests: fonts built in the test and the fonts the Makefile installs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from mxfd.synth.soundfont import SoundFont, load_soundfont

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


@pytest.fixture
def load(tmp_path: Path) -> Callable[..., SoundFont]:
    """Write font bytes to a file and load it the way the synth does (mmap)."""
    count = 0

    def _load(data: bytes, name: str = "") -> SoundFont:
        nonlocal count
        count += 1
        path = tmp_path / (name or f"font{count}.sf2")
        path.write_bytes(data)
        return load_soundfont(path)

    return _load


@pytest.fixture(scope="session")
def timgm() -> SoundFont:
    return load_soundfont(TIMGM)


@pytest.fixture(scope="session")
def fluidr3() -> SoundFont:
    return load_soundfont(FLUIDR3)
