"""JACK is only for tests marked e2e: ``-m "not e2e"`` needs no jackd (the guard in conftest.py)."""

from __future__ import annotations

import os

import jack
import pytest

from tests.conftest import NO_SERVER
from tests.jackserver import JackServer

GUARD = "from tests.conftest import _jack_only_in_e2e, jack_server, pytest_collection_modifyitems  # noqa: F401\n"


def test_a_test_using_the_jack_server_without_the_e2e_marker_stops_the_run_at_collection(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(GUARD)
    pytester.makeini("[pytest]\nmarkers =\n    e2e: end-to-end\n")
    pytester.makepyfile(
        test_guarded="""
import pytest

@pytest.fixture
def uses_jack(jack_server):
    return jack_server

def test_plain():
    pass

def test_direct(jack_server):
    pass

def test_through_a_fixture(uses_jack):
    pass

@pytest.mark.e2e
def test_marked(jack_server):
    pass
"""
    )
    result = pytester.runpytest("-m", "not e2e", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "must be marked e2e" in err
    assert "test_direct" in err and "test_through_a_fixture" in err
    assert "test_marked" not in err and "test_plain" not in err


def test_outside_e2e_jack_reaches_no_server_and_none_can_be_started() -> None:
    assert os.environ["JACK_DEFAULT_SERVER"] == NO_SERVER
    assert os.environ["JACK_NO_START_SERVER"] == "1"
    with pytest.raises(jack.JackOpenError):
        jack.Client("mxfd-test-guard", no_start_server=True)
    with pytest.raises(RuntimeError, match="not marked e2e"):
        JackServer("mxfd-test-guard").start()


def test_a_test_using_the_pipewire_rig_without_its_marker_or_with_the_jackd_server_stops_the_run(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "from tests.conftest import _jack_only_in_e2e, jack_server, pipewire, pytest_collection_modifyitems"
        "  # noqa: F401\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    e2e: end-to-end\n    pipewire: on PipeWire\n")
    pytester.makepyfile(
        test_guarded="""
import pytest

def test_unmarked(pipewire):
    pass

@pytest.mark.pipewire
@pytest.mark.e2e
def test_both_servers(pipewire, jack_server):
    pass

@pytest.mark.pipewire
def test_marked(pipewire):
    pass
"""
    )
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "must be marked pipewire" in err
    assert "test_unmarked" in err and "test_both_servers" in err and "test_marked" not in err
