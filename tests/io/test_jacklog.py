"""libjack's messages go to mxfd's log, never to the terminal: a missing server costs no lines there."""

from __future__ import annotations

import logging
import os
import time

import jack
import pytest
import rtmidi

from mxfd.io import jacklog
from mxfd.io.jacklog import connecting, route_jack_messages

NO_SERVER = f"mxfd-test-nobody-{os.getpid()}"


@pytest.fixture(autouse=True)
def fresh_repeats() -> None:
    jacklog._seen.clear()


def test_a_failed_connection_writes_nothing_to_stderr_and_is_debug_in_the_log(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    route_jack_messages()
    with caplog.at_level(logging.DEBUG, logger="mxfd.jack"), connecting(), pytest.raises(jack.JackError):
        jack.Client("mxfd-test-quiet", no_start_server=True, servername=NO_SERVER)
    assert capfd.readouterr().err == ""
    said = [r for r in caplog.records if r.name == "mxfd.jack"]
    assert any("jack server is not running" in r.getMessage() for r in said), said
    assert all(r.levelno == logging.DEBUG for r in said)


def test_rtmidis_own_libjack_is_routed_too(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JACK_DEFAULT_SERVER", NO_SERVER)
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    route_jack_messages(rtmidi=True)
    with caplog.at_level(logging.DEBUG, logger="mxfd.jack"), connecting(), pytest.raises(rtmidi.SystemError):
        rtmidi.MidiIn(rtmidi.API_UNIX_JACK, name="mxfd-test-quiet")
    assert capfd.readouterr().err == ""
    assert any("Cannot connect to server" in r.getMessage() for r in caplog.records if r.name == "mxfd.jack")


def test_other_errors_are_info_and_a_repeated_one_is_summed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jacklog, "REPEAT_S", 0.2)
    with caplog.at_level(logging.DEBUG, logger="mxfd.jack"):
        for _ in range(3):
            jacklog._on_error("Cannot connect ports owned by inactive clients")
        jacklog._on_error("something else\n")
        time.sleep(0.25)
        jacklog._on_error("Cannot connect ports owned by inactive clients")
        jacklog._on_info("an info line")
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert lines[:2] == [
        (logging.INFO, "libjack: Cannot connect ports owned by inactive clients"),
        (logging.INFO, "libjack: something else"),
    ], lines
    assert lines[2][0] == logging.INFO
    repeated = "libjack: Cannot connect ports owned by inactive clients (and 2 times more in the last"
    assert lines[2][1].startswith(repeated), lines
    assert lines[3:] == [(logging.DEBUG, "libjack: an info line")]
