"""``mxfd ports`` without a daemon: MIDI inputs straight from JACK, audio devices from a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mxfd.daemon import ports
from tests.e2e.ears import Keyboard
from tests.jackserver import JackServer

ROOT = Path(__file__).resolve().parents[2]


def run_ports(tmp_path: Path, config: str) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "m.toml"
    cfg.write_text(config)
    runtime = tmp_path / "run"
    runtime.mkdir(exist_ok=True)
    env = {"XDG_RUNTIME_DIR": str(runtime)}  # no daemon listens there
    return subprocess.run(
        [sys.executable, "-m", "mxfd", "ports", "--config", str(cfg)],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.e2e
def test_ports_lists_jack_inputs_and_what_the_config_would_connect(jack_server: JackServer, tmp_path: Path) -> None:
    kbd = Keyboard("test-ports-kbd")
    other = Keyboard("test-ports-skip")
    try:
        out = run_ports(tmp_path, '[midi]\napi = "jack"\nexclude = ["skip"]\n')
    finally:
        kbd.close()
        other.close()
    assert out.returncode == 0, out.stderr
    assert "no daemon is running" in out.stdout
    assert "test-ports-kbd:out  (would connect)" in out.stdout
    assert "test-ports-skip:out  (excluded by config)" in out.stdout
    assert "Audio output devices:" in out.stdout
    assert "JACK Audio Connection Kit" in out.stdout  # PortAudio sees the server, in a child process


def test_ports_refuses_a_bad_config(tmp_path: Path) -> None:
    out = run_ports(tmp_path, '[midi]\napi = "oss"\n')
    assert out.returncode == 2
    assert "[midi] api = 'oss': expected one of" in out.stderr


def test_audio_devices_are_queried_in_a_child_process() -> None:
    # PortAudio must never be initialised in an mxfd process (its JACK host API can abort it).
    code = "import sys, mxfd.daemon.ports as p; r = p.audio_devices(); print('sounddevice' in sys.modules, sorted(r))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split()[0] == "False", out.stdout + out.stderr
    assert "devices" in out.stdout or "error" in out.stdout
    assert callable(ports.main)


def test_mxfd_own_jack_clients_are_not_offered_as_audio_outputs() -> None:
    jack_api = "JACK Audio Connection Kit"
    assert ports.is_own_device({"name": "mxfd", "hostapi": jack_api})
    assert ports.is_own_device({"name": "mxfd-out", "hostapi": jack_api})
    assert not ports.is_own_device({"name": "system", "hostapi": jack_api})
    assert not ports.is_own_device({"name": "mxfdsynth", "hostapi": jack_api})
    assert not ports.is_own_device({"name": "mxfd", "hostapi": "ALSA"})  # only JACK lists clients as devices
