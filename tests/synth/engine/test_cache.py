"""numba's cache of the engine is dropped when any source it was built from changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from mxfd.synth.engine import cache


def test_cached_code_from_other_sources_is_deleted_and_the_stamp_renewed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, soundfont = tmp_path / "engine", tmp_path / "soundfont"
    engine.mkdir()
    soundfont.mkdir()
    stale = [engine / "voice.render_span-1.py311.nbi", engine / "voice.render_span-1.py311.1.nbc",
             soundfont / "units.concave-2.py311.nbi"]  # fmt: skip
    for p in stale:
        p.write_bytes(b"old")
    keep = engine / "voice.cpython-311.pyc"
    keep.write_bytes(b"bytecode")
    stamp = engine / "engine-source.sha256"
    stamp.write_text("not the hash of these sources\n")
    monkeypatch.setattr(cache, "CACHE_DIRS", (str(engine), str(soundfont)))
    monkeypatch.setattr(cache, "_STAMP", str(stamp))

    assert cache.check() is True
    assert not any(p.exists() for p in stale) and keep.exists()
    assert stamp.read_text().strip() == cache.source_hash()
    (engine / "block.render_block-3.py311.nbi").write_bytes(b"new")
    assert cache.check() is False  # same sources: the cache stays
    assert (engine / "block.render_block-3.py311.nbi").exists()


#: Modules only numba's compiler registries import (``CPUContext.load_additional_registries``).
_REGISTRY_ONLY = ("numba.typed.typeddict", "numba.np.random.generator_core")

_LOAD_AND_COMPILE = f"""
import sys
import numpy as np
from mxfd.synth.engine import SoundFontSynth
from mxfd.synth.engine.block import render_block
from mxfd.synth.soundfont import load_soundfont
s = SoundFontSynth(load_soundfont("/usr/share/sounds/sf2/TimGM6mb.sf2"), 48000, reverb=False, chorus=False)
render_block(s.engine_state, 0, 128)
print(sum(m in sys.modules for m in {_REGISTRY_ONLY!r}))
import numba
print(numba.njit(lambda a: a.sum())(np.ones(3)))  # a compile still finds every registry
"""


def test_cached_code_loads_without_the_compiler_registries_and_a_compile_still_works() -> None:
    import subprocess
    import sys

    for _ in range(2):  # the first may compile (a cold cache), which loads the registries
        done = subprocess.run([sys.executable, "-c", _LOAD_AND_COMPILE], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "3.0"], done.stdout + done.stderr
