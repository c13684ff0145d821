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
