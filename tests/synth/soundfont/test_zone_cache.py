"""The zone tables kept on disk: the same font as one resolved, and a cache that never stands in the way."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from mxfd.synth.soundfont import SoundFont, load_soundfont
from mxfd.synth.soundfont.zone_cache import MIN_FONT_BYTES
from tests.synth.soundfont.conftest import FLUIDR3, TIMGM
from tests.synth.soundfont.sf2writer import simple_font


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mxfd" / "zones"


def _same(a: SoundFont, b: SoundFont) -> None:
    for field in dataclasses.fields(a.tables):
        x, y = getattr(a.tables, field.name), getattr(b.tables, field.name)
        assert x.dtype == y.dtype and np.array_equal(x, y), field.name
    assert a.presets == b.presets
    assert a.counters() == b.counters()
    assert [w.split(": ", 1)[1] for w in a.report.warnings] == [w.split(": ", 1)[1] for w in b.report.warnings]
    assert all(w.startswith(f"{a.path}: ") for w in a.report.warnings)


def test_a_font_loaded_from_the_cache_is_the_font_resolved(cache: Path) -> None:
    resolved = load_soundfont(FLUIDR3)  # its 15 clamped generators are in the report
    assert resolved.counters().get("generator_clamped")
    assert len(list(cache.glob("*.npz"))) == 1
    _same(resolved, load_soundfont(FLUIDR3))


def test_a_font_changed_in_place_is_resolved_again_and_its_old_tables_deleted(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.sf2"
    shutil.copy(TIMGM, path)
    first = load_soundfont(path)
    (old,) = cache.glob("*.npz")
    shutil.copy(FLUIDR3, path)
    second = load_soundfont(path)
    (new,) = cache.glob("*.npz")
    assert new != old
    assert len(second.presets) != len(first.presets)
    _same(second, load_soundfont(FLUIDR3))


def test_a_damaged_cache_file_is_resolved_again_and_replaced(
    cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    resolved = load_soundfont(TIMGM)
    (kept,) = cache.glob("*.npz")
    kept.write_bytes(b"not a zip file")
    with caplog.at_level(logging.WARNING):
        _same(resolved, load_soundfont(TIMGM))
    assert "unusable" in caplog.text
    _same(resolved, load_soundfont(TIMGM))
    assert kept.stat().st_size > 1000


def test_a_cache_that_cannot_be_written_costs_a_warning_and_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache's folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    with caplog.at_level(logging.WARNING):
        font = load_soundfont(TIMGM)
    assert "cannot keep the zone tables" in caplog.text
    assert len(font.presets) > 100


def test_a_small_font_is_not_kept(cache: Path, load: Callable[..., SoundFont]) -> None:
    data = simple_font()
    assert len(data) < MIN_FONT_BYTES
    load(data)
    assert not cache.exists() or not os.listdir(cache)
