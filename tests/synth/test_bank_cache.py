"""The built-in bank kept on disk: built once, then mapped; what cannot be used is built again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mxfd.synth import bank_cache
from mxfd.synth.bank import Bank

RATE = 48000


@pytest.fixture(scope="module")
def built() -> Bank:
    return Bank(RATE)


def test_a_kept_bank_comes_back_equal_with_its_pool_mapped_read_only(built: Bank, tmp_path: Path) -> None:
    assert bank_cache.load(RATE, tmp_path) is None  # nothing kept yet
    assert bank_cache.save(built, tmp_path)
    again = bank_cache.load(RATE, tmp_path)
    assert again is not None and isinstance(again.pool, np.memmap) and not again.pool.flags.writeable
    assert np.array_equal(again.pool, built.pool)
    assert again.programs == built.programs and again.drums == built.drums and again.sample_rate == RATE
    assert bank_cache.load(44100, tmp_path) is None  # another rate is another bank


def test_a_damaged_cache_is_a_miss_not_an_error(built: Bank, tmp_path: Path) -> None:
    assert bank_cache.save(built, tmp_path)
    key = bank_cache.bank_key(RATE)
    (tmp_path / f"{key}.json").write_text("{not json")
    assert bank_cache.load(RATE, tmp_path) is None
    assert bank_cache.save(built, tmp_path)
    (tmp_path / f"{key}.npy").write_bytes(b"\x93NUMPY truncated")
    assert bank_cache.load(RATE, tmp_path) is None


def test_a_cache_that_cannot_be_written_only_costs_the_build(built: Bank, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert bank_cache.save(built, blocked / "mxfd") is False  # a file where the folder should be


def test_the_cache_lives_under_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert bank_cache.cache_dir() == tmp_path / "mxfd"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert bank_cache.cache_dir() == Path.home() / ".cache" / "mxfd"
