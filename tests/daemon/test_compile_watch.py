"""A compile after start-up is said and counted once, however many callees it compiles with it."""

from __future__ import annotations

import logging

import numba
import pytest

from mxfd.daemon.compile_watch import CompileWatch


def test_a_compile_with_its_callees_counts_once_and_is_logged_as_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    @numba.njit
    def callee(x: int) -> int:
        return x + 1

    @numba.njit
    def caller(x: int) -> int:
        return callee(x) * 2

    watch = CompileWatch()
    watch.install()
    try:
        with caplog.at_level(logging.WARNING, logger="mxfd.daemon.compile_watch"):
            assert caller(1) == 4
            assert caller(2) == 6  # compiled already: nothing more
    finally:
        watch.uninstall()
    status = watch.status()
    assert status["compiles_after_ready"] == 1 and status["recent"][-1].endswith("caller"), status
    [record] = caplog.records
    assert "caller(int64) after start-up" in record.getMessage()


def test_nothing_is_counted_once_uninstalled() -> None:
    @numba.njit
    def lone(x: float) -> float:
        return x * 0.5

    watch = CompileWatch()
    watch.install()
    watch.uninstall()
    lone(1.0)
    assert watch.status()["compiles_after_ready"] == 0
