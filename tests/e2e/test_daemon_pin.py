"""``mxfd run --audio-pin jack`` end to end: the SoundFont synth rendered in JACK's own cycle.

One daemon on TimGM6mb (reverb and chorus off, so silence between notes is
exact zeros and a note's first non-zero sample is its onset) serves the
module; the last test stops it with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import mido
import numpy as np
import pytest

from mxfd.client import Client
from mxfd.core.wire import decode_buffer
from tests import calm
from tests.e2e.ears import Ear, Keyboard, KeyProbe, dominant_frequency, rms_dbfs, wait_until
from tests.e2e.test_client import onsets, save_type0
from tests.e2e.test_daemon import CONFIG, KBD, OUT, PYTHON, ROOT, Daemon, connected, forget_probe, hear_note
from tests.jackserver import JackServer

pytestmark = pytest.mark.e2e

FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
PROBE = "test-probe"


def pin_daemon(tmp: Path) -> Daemon:
    d = Daemon(tmp, CONFIG, "--audio-pin", "jack", "--reverb", "off", "--chorus", "off", soundfont=FONT)
    ready = d.wait_for("READY=1", 60.0)
    assert ready is not None, "no READY=1\n" + d.output()
    return d


@pytest.fixture(scope="module")
def daemon(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = pin_daemon(tmp_path_factory.mktemp("mxfd-pin"))
    try:
        yield d
    finally:
        d.close()


def staccato_file(path: str, notes: list[tuple[float, int]], program: int = 80) -> None:
    """A type 0 file at 120 bpm (480 PPQN): each (start s, note) held 80 ms, then all sound off (no tail)."""
    events: list[tuple[int, mido.Message]] = [(0, mido.Message("program_change", program=program))]
    for start, note in notes:
        on = round(start * 960)  # 960 ticks a second at 120 bpm and 480 PPQN
        events.append((on, mido.Message("note_on", note=note, velocity=100)))
        events.append((on + 77, mido.Message("note_off", note=note)))
        events.append((on + 154, mido.Message("control_change", control=120, value=0)))
    save_type0(path, events)


def first_sound(x: np.ndarray) -> int:
    hits = np.flatnonzero(np.abs(x) > 1e-6)
    return int(hits[0]) if hits.size else -1


def test_status_has_the_pins_contract_keys(daemon: Daemon) -> None:
    audio = daemon.status()["audio"]
    assert audio["state"] == "running", audio
    assert audio["pin"] == "jack"
    assert audio["ports"] == ["mxfd-out:out_0", "mxfd-out:out_1"]
    assert audio["sync_clock"] == "callback wake-up"
    assert isinstance(audio["overruns"], int) and isinstance(audio["xruns"], int)
    us = audio["callback_us"]
    assert set(us) == {"p50", "p99", "max"}
    assert 0 < us["p50"] <= us["p99"] <= us["max"]
    human = subprocess.run([PYTHON, "-m", "mxfd", "status", "--socket", daemon.socket_path], cwd=ROOT,
                           capture_output=True, text=True, timeout=30)
    assert human.returncode == 0, human.stderr
    assert "JACK pin mxfd-out" in human.stdout and "jack pin callback: p50" in human.stdout, human.stdout


def test_the_ready_line_gives_the_pins_thru_latency_for_jack_input(daemon: Daemon) -> None:
    pin_ms = daemon.status()["thru_latency_ms"]["through_pin"]
    ready = next(line for line in daemon.output().splitlines() if " ready in " in line)
    assert f"thru latency {pin_ms:.2f} ms (JACK input)" in ready, ready


def test_a_keyboard_note_is_heard_at_its_pitch_on_mxfd_out(daemon: Daemon, ear: Ear) -> None:
    kbd = Keyboard(KBD)
    try:
        assert wait_until(lambda: connected(kbd.port_name), 5.0), daemon.output()[-3000:]
        kbd.send(0xC0, 80)  # square lead: the fundamental is the strongest partial
        heard = hear_note(ear, kbd)
    finally:
        kbd.close()
    assert rms_dbfs(heard) > -40, "no sound"
    loud = heard[np.abs(heard) > 0][-int(0.3 * ear.rate) :]
    assert abs(dominant_frequency(loud, ear.rate) - 440.0) < 440.0 * 0.005


def test_key_to_sound_latency_is_one_period_for_every_note(daemon: Daemon) -> None:
    probe = KeyProbe(None, OUT[1:] + "out_0", name=PROBE)
    try:
        assert wait_until(lambda: connected(f"{PROBE}:keys"), 5.0), daemon.output()[-3000:]
        st = daemon.status()
        period = probe.period
        assert st["thru_latency_ms"]["through_pin"] == round(period * 1000 / probe.rate, 3), st["thru_latency_ms"]
        gap = probe.rate * 3 // 10
        takes = []
        for _take in (measured := calm.Takes(lambda: int(daemon.status()["audio"]["xruns"]))):
            xruns = daemon.status()["audio"]["xruns"]
            start = probe.now + probe.rate // 2  # the last test's release tail has died away by then
            probe.schedule(start - 100, 0xC0, 80)
            notes = probe.schedule_notes(start, gap)
            assert probe.wait_past(notes[-1] + gap)
            time.sleep(0.1)
            latencies = [first_sound(probe.heard(f, gap // 3)) for f in notes]
            clean = daemon.status()["audio"]["xruns"] == xruns
            takes.append(f"{'no xrun' if clean else 'xrun(s)'}: {latencies}")
            if clean or (min(latencies) >= 0 and max(latencies) - min(latencies) <= 1):
                assert min(latencies) >= 0, takes
                assert max(latencies) - min(latencies) <= 1, takes
                # One period, at the physical limit (plus the samples the square lead takes to be heard).
                assert period <= min(latencies) and max(latencies) <= period + 4, takes
                return
        pytest.fail("JACK reported xruns in every take:\n" + "\n".join(takes) + "\n" + measured.report())
    finally:
        probe.close()


def test_play_sounds_each_note_at_the_files_time(daemon: Daemon, ear: Ear, tmp_path: Path) -> None:
    path = str(tmp_path / "melody.mid")
    notes = [(0.3, 81), (0.6375, 76), (0.90625, 84), (1.24375, 79)]
    staccato_file(path, notes)
    # Each gap between two notes is judged as a listener hears it, in time (the ear's ``time_of``), in a
    # take where no xrun (the ear knows where they fell) came near either note (``calm.undisturbed_pairs``):
    # an xrun moves JACK's frames against the clock, and the daemon re-anchors its mapping at its next
    # clock report.
    gaps: dict[int, tuple[int, float]] = {}  # note: (an earlier note, seconds from its start to this one's)
    takes = []
    near = (ear.rate // 10, ear.rate // 20)  # before an onset: until re-anchored; after: JACK's report delay
    for _take in (plays := calm.Takes(lambda: len(ear.xruns))):
        mark = ear.mark()
        proc = subprocess.run([PYTHON, "-m", "mxfd", "play", "--socket", daemon.socket_path, path], cwd=ROOT,
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        time.sleep(0.3)
        found = onsets(ear.since(mark), ear.rate)
        marks = ear.disturbances(mark)
        takes.append(f"onsets {found}, xruns at {marks}")
        assert len(found) == len(notes), takes
        for k, i in calm.undisturbed_pairs(found, marks, *near).items():
            gaps.setdefault(k, (i, (ear.time_of(mark + found[k]) - ear.time_of(mark + found[i])) / 1e9))
        if len(gaps) == len(notes) - 1:
            break
    assert len(gaps) == len(notes) - 1, "every take was disturbed:\n" + "\n".join(takes) + "\n" + plays.report()
    # Within the stamping error of input with no frame of its own (the client's events are stamped on
    # the master clock and mapped to frames; the PortAudio pin's test allows 1 ms).
    for k, (i, gap) in gaps.items():
        want = notes[k][0] - notes[i][0]
        assert abs(gap - want) <= 0.00025, (gaps, takes)


def test_what_a_keyboard_plays_on_the_pin_reaches_a_subscriber_whole_sysex_included(daemon: Daemon) -> None:
    sysex = (0xF0, 0x7D, 0x01, 0x02, 0x03, 0xF7)
    played = [(0x90, 64, 100), sysex, (0x80, 64, 0)]
    kbd = Keyboard(KBD)
    try:
        assert wait_until(lambda: connected(kbd.port_name), 5.0), daemon.output()[-3000:]
        with Client(daemon.socket_path, name="test-pin-capture") as c:
            c.subscribe(f"^{kbd.port_name}$")
            for message in played:
                kbd.send(*message)
            got: list[bytes] = []
            deadline = time.monotonic() + 5.0
            while len(got) < len(played) and time.monotonic() < deadline:
                cap = c.receive(0.5)
                if cap is not None:
                    got.extend(m for _t, _g, _f, m in decode_buffer(cap.data, cap.start_time))
        assert got == [bytes(m) for m in played], got
    finally:
        kbd.close()


def test_a_restarted_jack_server_brings_the_pin_back(daemon: Daemon, jack_server: JackServer) -> None:
    pid = daemon.proc.pid
    forget_probe()  # no client of this process may outlive the server
    jack_server.restart()
    assert wait_until(lambda: daemon.status()["audio"]["state"] == "running", 20.0), daemon.output()[-3000:]
    ear = Ear()
    try:
        ear.connect(OUT, timeout=20.0)
        kbd = Keyboard(KBD)
        try:
            assert wait_until(lambda: connected(kbd.port_name), 10.0), daemon.output()[-3000:]
            kbd.send(0xC0, 80)
            heard = hear_note(ear, kbd)
        finally:
            kbd.close()
        assert rms_dbfs(heard) > -40, "no sound after the server restart"
    finally:
        ear.close()
    assert daemon.proc.poll() is None and daemon.proc.pid == pid
    assert daemon.status()["audio"]["restarts"] >= 1


def test_sigterm_silences_the_pin_and_exits_0(daemon: Daemon) -> None:
    ear = Ear()
    kbd = Keyboard(KBD)
    try:
        ear.connect(OUT, timeout=15.0)
        assert wait_until(lambda: connected(kbd.port_name), 5.0)
        kbd.send(0xC0, 19)
        kbd.note_on(69)
        assert wait_until(lambda: rms_dbfs(ear.since(ear.mark() - 4800)) > -40, 2.0), "the held note never sounded"
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(15.0) == 0, daemon.output()[-3000:]
    finally:
        kbd.close()
        ear.close()
    out = daemon.output()
    assert "stopping (SIGTERM)" in out and "Traceback" not in out, out[-3000:]


def test_the_built_in_bank_plays_on_the_jack_pin_at_its_pitch(jack_server: JackServer, tmp_path: Path) -> None:
    d = Daemon(tmp_path, CONFIG, "--audio-pin", "jack")  # the built-in bank: a SoundFont of its own
    ear = Ear()
    kbd = Keyboard(KBD)
    try:
        assert d.wait_for("READY=1", 60.0) is not None, d.output()
        assert d.status()["audio"]["pin"] == "jack"
        ear.connect(OUT, timeout=15.0)
        assert wait_until(lambda: connected(kbd.port_name), 5.0), d.output()[-3000:]
        kbd.send(0xC0, 80)
        heard = hear_note(ear, kbd)
        assert d.terminate() == 0
        out = d.output()
    finally:
        kbd.close()
        ear.close()
        d.close()
    assert rms_dbfs(heard) > -40, "no sound"
    loud = heard[np.abs(heard) > 0][-int(0.3 * ear.rate) :]
    assert abs(dominant_frequency(loud, ear.rate) - 440.0) < 440.0 * 0.005
    assert "bank built-in GM" in out and "PortAudio" not in out, out[-3000:]


def test_a_bad_audio_pin_is_refused_in_one_line(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    bad = subprocess.run([PYTHON, "-m", "mxfd", "run", "--audio-pin", "alsa"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "audio-pin" in lines[0] and "'portaudio', 'jack'" in lines[0], bad.stderr


def test_without_a_jack_server_the_pin_starts_degraded_retries_and_says_so(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:  # only the daemon started here looks for that server
        mp.setenv("JACK_DEFAULT_SERVER", f"mxfd-test-absent-{os.getpid()}")
        d = Daemon(tmp_path, '[midi]\napi = "jack"\n', "--audio-pin", "jack", soundfont=FONT)
    try:
        assert d.wait_for("READY=1", 60.0) is not None, d.output()
        status = d.wait_for("STATUS=", 1.0)
        assert status is not None and status.startswith("STATUS=degraded"), status
        assert "no JACK server answers" in status
        assert wait_until(lambda: d.status()["audio"]["restarts"] >= 2, 10.0)  # it keeps trying
        audio = d.status()["audio"]
        assert (audio["pin"], audio["state"]) == ("jack", "degraded")
        assert d.terminate() == 0
        assert "Traceback" not in d.output()
    finally:
        d.close()
