"""``mxfd run``'s service side: sd_notify, journald-friendly logs, the systemd unit."""

from __future__ import annotations

import argparse
import configparser
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from mxfd.daemon import service
from mxfd.daemon.config import ConfigError
from mxfd.daemon.service import Notifier

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "mxfd.service"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(2.0)
    try:
        yield s, path
    finally:
        s.close()


def test_notify_sends_one_datagram_of_lines_to_the_notify_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.notify("READY=1", "STATUS=running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"
    n.close()


def test_notify_never_blocks_on_a_receiver_that_does_not_read(listener: tuple[socket.socket, str]) -> None:
    _sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    sent = sum(n.notify("WATCHDOG=1") for _ in range(2000))  # far more than the queue holds
    assert sent < 2000
    assert n.dropped == 2000 - sent
    n.close()


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"mxfd-test-notify-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2.0)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert n.notify("WATCHDOG=1")
        assert s.recv(64) == b"WATCHDOG=1"
        n.close()
    finally:
        s.close()


def test_without_systemd_notify_does_nothing() -> None:
    n = Notifier({})
    assert not n.enabled
    assert not n.notify("READY=1")
    assert n.watchdog_s is None


def test_the_watchdog_interval_comes_from_watchdog_usec_for_this_process_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "10000000"}).watchdog_s == 10.0
    assert Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 10.0
    assert Notifier({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_s is None


def test_a_notify_socket_that_went_away_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING):
        assert not n.notify("READY=1")
    assert "sd_notify" in caplog.text


def test_journal_lines_carry_the_priority_prefix_and_no_time_stamp() -> None:
    fmt = service._JournalFormatter("%(name)s: %(message)s")
    rec = logging.LogRecord("mxfd.io", logging.WARNING, __file__, 1, "port %s gone\nsecond line", ("kbd",), None)
    assert fmt.format(rec) == "<4>mxfd.io: port kbd gone\n<4>second line"
    rec.levelno = logging.ERROR
    assert fmt.format(rec).startswith("<3>")


def test_stderr_is_the_journal_only_when_journal_stream_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = open(tmp_path / "stderr", "w")
    try:
        st = os.fstat(f.fileno())
        monkeypatch.setattr(sys, "stderr", f)
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
        assert service.stderr_is_journal()
        monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino + 1}")
        assert not service.stderr_is_journal()
        monkeypatch.delenv("JOURNAL_STREAM")
        assert not service.stderr_is_journal()
    finally:
        f.close()


#: ``mxfd run`` on the built-in bank: these tests are about the socket, not about loading a soundfont.
MXFD_RUN = (sys.executable, "-m", "mxfd", "run", "--soundfont", "builtin")


def run_args(**kw: object) -> argparse.Namespace:
    base = {"config": None, "midi_api": None, "audio_device": None, "rate": None, "period": None, "verbose": 0}
    base.update(kw)
    return argparse.Namespace(**base)


def test_flags_override_the_config_file(tmp_path: Path) -> None:
    p = tmp_path / "m.toml"
    p.write_text('[midi]\napi = "alsa"\n[audio]\nrate = 44100\nperiod = 64\n')
    c = service.load_config(run_args(config=str(p), midi_api="jack", period=256, audio_device="system"))
    assert (c.midi.api, c.audio.rate, c.audio.period, c.audio.device) == ("jack", 44100, 256, "system")


def test_a_bad_config_makes_run_exit_2_with_the_reason(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    p = tmp_path / "m.toml"
    p.write_text("[audio]\nperiods = 1\n")
    with pytest.raises(ConfigError):
        service.load_config(run_args(config=str(p)))
    assert service.main(run_args(config=str(p))) == 2


def test_a_soundfont_that_does_not_load_makes_run_exit_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[client]\nsocket = "{tmp_path / "mxfd.sock"}"\n[synth]\nsoundfont = "{tmp_path / "none.sf2"}"\n')
    run = subprocess.run(
        [sys.executable, "-m", "mxfd", "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if " ERROR " in line or "Traceback" in line]
    assert len(errors) == 1 and "[synth] soundfont" in errors[0] and "none.sf2" in errors[0], run.stderr


# -- the systemd unit -----------------------------------------------------------------------


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=True, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNIT)
    return cp


def test_the_unit_is_a_notify_user_service_never_started_for_system_users() -> None:
    u = unit()
    assert u["Service"]["Type"] == "notify"
    assert u["Unit"]["ConditionUser"] == "!@system"
    assert "mxfd run" in u["Service"]["ExecStart"]
    assert u["Service"]["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "WatchdogSec" in u["Service"]
    assert u["Service"]["KillMode"] == "mixed"
    assert u["Install"]["WantedBy"] == "default.target"


def test_the_unit_starts_after_the_sound_servers_and_pulls_none_in() -> None:
    # ordering only: a Wants=pulseaudio.service could start PulseAudio beside pipewire-pulse
    u = unit()["Unit"]
    after = u["After"].split()
    for server in ("pipewire.service", "pipewire-pulse.service", "wireplumber.service", "pulseaudio.service"):
        assert server in after
    for pull in ("Wants", "Requires", "Requisite", "BindsTo", "PartOf", "Upholds"):
        assert pull not in u


def test_the_unit_leaves_the_output_to_the_sound_server() -> None:
    # never a card opened exclusively: the unit names no device, so the config's ALSA "default" is used,
    # which on a desktop is the sound server's shared stream (the unit starts after it)
    argv = unit()["Service"]["ExecStart"].split()
    assert not any(a.startswith("--audio-device") for a in argv)
    assert not any(a.startswith(("hw:", "plughw:")) for a in argv)
    from mxfd.daemon.config import AudioConfig

    assert AudioConfig().device == "default"


def test_the_unit_is_hardened_and_says_why() -> None:
    u = unit()["Service"]
    assert u["NoNewPrivileges"] == "yes"
    assert u["ProtectSystem"] == "strict"
    assert u["PrivateTmp"] == "yes"
    assert u["RestrictAddressFamilies"] == "AF_UNIX"
    assert u["RuntimeDirectory"] == "mxfd"
    assert u["PrivateUsers"] == "yes" and u["CapabilityBoundingSet"] == "" and u["PrivateNetwork"] == "yes"
    assert u["RestrictRealtime"] == "no"  # the audio thread's SCHED_FIFO
    assert "PrivateDevices" not in u and "DevicePolicy" not in u  # /dev/snd and /dev/shm stay
    # numba's fallback cache, ~/.cache/numba, when the package is read-only; the built-in bank's, ~/.cache/mxfd
    assert u["CacheDirectory"].split() == ["numba", "mxfd"]
    # every option of [Service] has a comment on the lines just above it
    lines = UNIT.read_text().splitlines()
    start = lines.index("[Service]")
    end = lines.index("[Install]")
    for i in range(start + 1, end):
        line = lines[i]
        if not line or line.startswith("#"):
            continue
        above = lines[max(start, i - 8) : i]
        assert any(a.startswith("#") for a in above), f"{line!r} has no comment saying why"


# -- one daemon per socket ------------------------------------------------------------------


def start_holder(tmp_path: Path) -> tuple[Any, Path]:
    """A live server on the socket a config names, as a first daemon would hold it."""
    from mxfd.client.server import ServerConfig, start_server
    from tests.client.helpers import CoreEngine

    sock = tmp_path / "mxfd" / "mxfd.sock"
    server = start_server(CoreEngine(), ServerConfig(socket=str(sock)))
    cfg = tmp_path / "mxfd.toml"
    cfg.write_text(f'[client]\nsocket = "{sock}"\n')
    return server, cfg


def test_a_second_daemon_refuses_to_start_and_names_the_first_ones_pid(tmp_path: Path) -> None:
    from mxfd.client import Client

    server, cfg = start_holder(tmp_path)
    try:
        run = subprocess.run(
            [*MXFD_RUN, "--config", str(cfg)], capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 1
        errors = [line for line in run.stderr.splitlines() if " ERROR " in line or "Traceback" in line]
        assert len(errors) == 1 and f"already running (pid {os.getpid()}, socket {server.path})" in errors[0]
        assert "audio" not in run.stderr.lower()  # it stopped before opening any device
        with Client(server.path) as c:  # the first daemon is untouched
            assert c.time()
    finally:
        server.close()


def test_no_clients_runs_a_second_daemon_without_the_socket(tmp_path: Path) -> None:
    server, cfg = start_holder(tmp_path)
    proc = subprocess.Popen(
        [*MXFD_RUN, "--no-clients", "--config", str(cfg)],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if " ready in " in line:
                break
        assert any("running without clients (--no-clients)" in line for line in seen), seen
        assert not any("already running" in line for line in seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.close()


def test_a_socket_directory_of_another_user_stops_run_with_one_line(tmp_path: Path) -> None:
    theirs = tmp_path / f"mxfd-{os.getuid()}"
    theirs.mkdir()
    os.chown(theirs, 65534, 65534)
    theirs.chmod(0o777)
    cfg = tmp_path / "mxfd.toml"
    cfg.write_text(f'[client]\nsocket = "{theirs / "mxfd.sock"}"\n')
    run = subprocess.run(
        [*MXFD_RUN, "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if " ERROR " in line or "Traceback" in line]
    assert len(errors) == 1 and "belongs to uid 65534, not to this daemon's uid" in errors[0], run.stderr
    assert list(theirs.iterdir()) == []
