"""``mxfd run`` end to end: a real JACK server, a virtual keyboard, the daemon as a process, an ear.

One daemon serves the whole module (each test leaves it as it found it); the
last tests stop it with SIGTERM and start bad ones of their own.  The daemon
talks to the test's JACK server through ``JACK_DEFAULT_SERVER``, to systemd's
role through a notify socket the test reads, and keeps its client socket in
a private runtime directory.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import jack
import mido
import numpy as np
import pytest

from mxfd.client import Client
from tests.e2e.ears import Ear, Keyboard, band_db, dominant_frequency, rms_dbfs, wait_until
from tests.jackserver import JackServer, die_with_parent

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
OUT = r"^mxfd-out:"
KBD = "test-kbd"
A4 = 69


class Daemon:
    """``mxfd run`` as a child process, with the notify socket systemd would give it.

    It plays the built-in bank (``--soundfont builtin``: these tests were written against its
    sounds) unless ``soundfont`` names a font, or is None to leave the choice to the config.
    ``env`` is the environment to start from (the test's own by default; a PipeWire rig's for its tests).
    """

    def __init__(
        self, tmp: Path, config: str, *args: str, soundfont: Optional[str] = "builtin",
        env: Optional[dict[str, str]] = None,
    ) -> None:  # fmt: skip
        self.tmp = tmp
        self.config_path = tmp / "mxfd.toml"
        self.config_path.write_text(config)
        self.log_path = tmp / "mxfd.log"
        runtime = tmp / "run"
        runtime.mkdir(exist_ok=True)
        self.notify_path = str(tmp / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.messages: list[str] = []
        self._lock = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read_notify, daemon=True)
        self._reader.start()
        self.socket_path = str(runtime / "mxfd" / "mxfd.sock")
        env = dict(
            os.environ if env is None else env,
            NOTIFY_SOCKET=self.notify_path,
            WATCHDOG_USEC="1000000",
            XDG_RUNTIME_DIR=str(runtime),
            PYTHONUNBUFFERED="1",
        )
        self.log = open(self.log_path, "wb")
        self.started = time.monotonic()
        self.ready_after = 0.0
        self.ready_waited = 0.0  # of that, the time its threads and its audio worker's waited for a CPU
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "mxfd", "run", "--config", str(self.config_path),
             *(("--soundfont", soundfont) if soundfont is not None else ()), *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    def _read_notify(self) -> None:
        # Drain the socket all the time, as systemd does: a full queue would block the daemon's sends.
        self.notify.settimeout(0.2)
        while not self._closed:
            try:
                data = self.notify.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.extend(data.decode().splitlines())
                self._lock.notify_all()

    def wait_for(self, prefix: str, timeout: float) -> Optional[str]:
        """The next notify line starting with ``prefix`` (READY=1, STATUS=...), or None."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for m in self.messages:
                    if m.startswith(prefix):
                        self.messages.remove(m)
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._lock.wait(min(left, 0.1))

    def status(self) -> dict[str, Any]:
        with Client(self.socket_path, name="e2e-test") as c:
            return c.status()

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def close(self) -> None:
        """Stop the daemon; a compile after its start-up (a stall of seconds, see compile_watch) fails the test."""
        self.terminate()
        self._closed = True
        self._reader.join(5.0)  # it sees the flag within its 0.2 s receive timeout
        compiles = [x for x in self.output().splitlines() if "after start-up in" in x and "compiled" in x]
        self.notify.close()
        self.log.close()
        assert not compiles, "the daemon compiled after start-up:\n" + "\n".join(compiles)


CONFIG = """
[midi]
api = "jack"
include = ["^test-"]
[log]
level = "debug"
"""


def runqueue_wait(pid: int) -> float:
    """Seconds the threads of process ``pid`` have spent runnable, waiting for a CPU (schedstat)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            pass  # a thread that ended meanwhile
    return total / 1e9


@pytest.fixture(scope="module")
def daemon(jack_server: JackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    # The PortAudio pin and its audio worker: what runs where no JACK server answers (the JACK pin: test_daemon_pin).
    d = Daemon(tmp_path_factory.mktemp("mxfd-e2e"), CONFIG, "--audio-pin", "portaudio")
    try:
        ready = d.wait_for("READY=1", 30.0)
        assert ready is not None, "no READY=1\n" + d.output()
        d.ready_after = time.monotonic() - d.started
        d.ready_waited = runqueue_wait(d.proc.pid)
        d.ready_waited += runqueue_wait(d.status()["audio"]["worker_pid"])
        yield d
    finally:
        d.close()


@pytest.fixture
def keyboard(daemon: Daemon) -> Iterator[Keyboard]:
    k = Keyboard(KBD)
    try:
        assert wait_until(lambda: connected(k.port_name), 2.0), daemon.output()[-3000:]
        yield k
    finally:
        k.close()


_probe: Optional[jack.Client] = None


def jack_probe() -> jack.Client:
    global _probe
    if _probe is None:
        _probe = jack.Client("mxfd-test-probe-conn", no_start_server=True)
    return _probe


def forget_probe() -> None:
    global _probe
    if _probe is not None:
        _probe.close()
        _probe = None


def connected(port: str) -> bool:
    """True when ``port`` feeds one of the daemon's (``mxfd:``) input ports.

    A keyboard reopened under a name JACK has not let go of yet comes up as
    ``name-01``: any port of that client name counts.
    """
    client, _, short = port.partition(":")
    pattern = re.compile(rf"^{re.escape(client)}(-\d+)?:{re.escape(short)}$")
    try:
        probe = jack_probe()
        ports = [p for p in probe.get_ports(is_midi=True, is_output=True) if pattern.match(p.name)]
        return any(c.name.startswith("mxfd:") for p in ports for c in probe.get_all_connections(p))
    except jack.JackError:
        return False


#: The daemon's log line for a keyboard whose port went away.
GONE = re.compile(r"test-kbd(-\d+)?:out: gone, closing")


def recent_dbfs(ear: Ear, seconds: float = 0.1) -> float:
    """The level of the last ``seconds`` the ear heard."""
    return rms_dbfs(ear.since(ear.mark() - int(seconds * ear.rate)))


def hear_note(ear: Ear, kbd: Keyboard, note: int = A4, seconds: float = 0.6) -> np.ndarray:
    mark = ear.mark()
    kbd.note_on(note, 100)
    time.sleep(seconds)
    kbd.note_off(note)
    return ear.since(mark)


def settle(ear: Ear, seconds: float = 3.0, level: float = -70.0) -> None:
    """Wait until the daemon's output is silent again (release tails and reverb gone)."""
    assert wait_until(lambda: recent_dbfs(ear) < level, seconds)


# -- the tests -------------------------------------------------------------------------


def test_the_daemon_reports_ready_and_its_state_to_systemd(daemon: Daemon) -> None:
    # The start-up target is 2 s (benchmarks/RESULTS.md, bench_latency.py: median 1.13 s, max 1.17 s
    # on a quiet machine), timed from the test's Popen, so Python's own start counts.  On a loaded
    # machine the time the daemon's and its worker's threads spent runnable but kept from a CPU is not
    # the daemon's: it is taken off (exactly nothing on a quiet machine, and never a sleep or a
    # timeout).  1.0 to 1.5 s so measured at load 3.5 on two cores, where the raw figure was 1.5 to 3.2 s.
    assert daemon.ready_after - daemon.ready_waited < 2.0, (daemon.ready_after, daemon.ready_waited)
    assert "ready in" in daemon.output()
    status = daemon.wait_for("STATUS=", 1.0)
    assert status is not None and ("running" in status or "degraded" in status)
    assert daemon.proc.poll() is None


def test_the_keyboard_is_connected_automatically(daemon: Daemon) -> None:
    kbd = Keyboard(KBD)
    try:
        assert wait_until(lambda: connected(kbd.port_name), 1.0), daemon.output()[-3000:]
    finally:
        kbd.close()


def output_misses(d: Daemon) -> int:
    """Periods the daemon's output has missed so far (underruns of either queue, the JACK pin's xruns)."""
    audio = d.status()["audio"]
    return sum(int(audio.get(k) or 0) for k in ("underruns", "ring_underruns", "xruns"))


def test_pressing_a4_sounds_440_hz_at_the_output(daemon: Daemon, ear: Ear, keyboard: Keyboard) -> None:
    takes = []
    for _ in range(3):  # a take spliced by an xrun of the ear, or a gap of the daemon's, moves the spectrum's peak
        missed, mark = output_misses(daemon), ear.mark()
        heard = hear_note(ear, keyboard)
        settle(ear)
        disturbed = bool(ear.disturbances(mark)) or output_misses(daemon) != missed
        takes.append(disturbed)
        if not disturbed:
            break
    assert rms_dbfs(heard) > -40, "no sound"
    loud = heard[np.abs(heard) > 0][-int(0.4 * ear.rate) :]
    f = dominant_frequency(loud, ear.rate)
    assert abs(f - 440.0) < 440.0 * 0.005, (f, f"takes disturbed: {takes}")


def test_a_keyboard_closed_and_reopened_is_reconnected_within_a_second(
    daemon: Daemon, ear: Ear
) -> None:
    kbd = Keyboard(KBD)
    assert wait_until(lambda: connected(kbd.port_name), 1.0)
    closed_before = len(GONE.findall(daemon.output()))
    kbd.close()
    assert wait_until(lambda: len(GONE.findall(daemon.output())) > closed_before, 2.0)
    # Timed from when the port exists.
    kbd = Keyboard(KBD)
    try:
        assert wait_until(lambda: connected(kbd.port_name), 1.0)
        heard = hear_note(ear, kbd, seconds=0.3)
        assert rms_dbfs(heard) > -40, "no sound after reconnecting"
    finally:
        kbd.close()
    settle(ear)


def test_a_held_note_is_released_when_its_keyboard_vanishes(daemon: Daemon, ear: Ear) -> None:
    kbd = Keyboard(KBD)
    other = Keyboard("test-other")
    try:
        assert wait_until(lambda: connected(kbd.port_name) and connected(other.port_name), 2.0)
        other.send(0xC0, 19)  # church organ: sustains as long as it is held
        kbd.send(0xC0, 19)
        kbd.note_on(A4)  # held: its note-off never comes
        assert wait_until(lambda: recent_dbfs(ear) > -40, 2.0), "the held note never sounded"
        kbd.close()
        # Released when the keyboard goes; the organ's release and the reverb tail take the rest.
        assert wait_until(lambda: recent_dbfs(ear, 0.3) < -70, 2.0), "the vanished keyboard's note still sounds"
        # Only its notes: another keyboard's held note is untouched by the release.
        other.note_on(76)
        assert wait_until(lambda: recent_dbfs(ear) > -40, 2.0), "the other keyboard's note never sounded"
        kbd2 = Keyboard(KBD)
        assert wait_until(lambda: connected(kbd2.port_name), 1.0)
        closed_before = len(GONE.findall(daemon.output()))
        kbd2.close()
        assert wait_until(lambda: len(GONE.findall(daemon.output())) > closed_before, 2.0)  # its release is done
        heard = ear.listen(0.4)
        assert rms_dbfs(heard) > -40, "another keyboard's held note was released too"
        # The organ's sub-octave can outweigh its fundamental once chorus has combed it, so
        # judge which note sounds by comparing its band with the released note's.
        assert band_db(heard, ear.rate, 659.26) > band_db(heard, ear.rate, 440.0) + 20
        other.note_off(76)
    finally:
        other.close()
    settle(ear)


def test_mxfd_ports_asks_the_running_daemon_which_inputs_are_connected(daemon: Daemon) -> None:
    kbd = Keyboard("test-ports-live")
    try:
        assert wait_until(lambda: connected(kbd.port_name), 2.0)
        env = dict(os.environ, XDG_RUNTIME_DIR=str(Path(daemon.socket_path).parents[1]))
        out = subprocess.run(
            [PYTHON, "-m", "mxfd", "ports", "--config", str(daemon.config_path)],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        kbd.close()
    assert out.returncode == 0, out.stderr
    assert "from the running daemon" in out.stdout
    assert "test-ports-live:out  (connected" in out.stdout
    assert "mxfd's own input port(s): mxfd:in" in out.stdout
    audio = out.stdout.split("Audio output devices:", 1)[1]
    assert "system (JACK" in audio and not re.search(r"^\s+\d+: mxfd", audio, re.M), audio  # not its own ports


def mxfd(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """A client command (``mxfd panic``, ``mxfd status``) run against the daemon, as a user runs it."""
    env = dict(os.environ, XDG_RUNTIME_DIR=str(Path(daemon.socket_path).parents[1]))
    return subprocess.run(
        [PYTHON, "-m", "mxfd", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def sounding(ear: Ear) -> float:
    return rms_dbfs(ear.listen(0.2))


def test_mxfd_panic_silences_notes_whose_note_off_never_came(daemon: Daemon, ear: Ear, keyboard: Keyboard) -> None:
    keyboard.send(0xC0, 19)  # church organ: sounds for as long as the key is held
    for note in (60, 64, 67):
        keyboard.note_on(note)  # their note-offs never come
    assert wait_until(lambda: sounding(ear) > -40, 2.0), "the held chord does not sound"
    time.sleep(0.5)
    assert sounding(ear) > -40, "the held chord stopped by itself"
    out = mxfd(daemon, "panic")
    assert out.returncode == 0, out.stderr
    assert "all notes and sound off" in out.stdout
    settle(ear)  # silent within 3 s (the reverb's tail)
    status = daemon.status()
    assert status["synth"]["voices"] == 0 and status["panics"] >= 1
    assert "panic: all notes and sound off on every channel group" in daemon.output()
    # Nothing else is off: the keyboard plays on.
    assert rms_dbfs(hear_note(ear, keyboard, 72, 0.3)) > -40, "no sound after the panic"
    for note in (60, 64, 67):
        keyboard.note_off(note)
    settle(ear)


def test_input_lost_while_the_daemon_stood_still_is_logged_and_counted(
    daemon: Daemon, ear: Ear, keyboard: Keyboard
) -> None:
    before = daemon.status()["input_lost"]
    assert before["watched"] is True
    logged = daemon.output().count("MIDI input lost")
    keyboard.send(0xC0, 19)
    keyboard.note_on(A4)
    assert wait_until(lambda: sounding(ear) > -40, 2.0), "the note does not sound"
    daemon.proc.send_signal(signal.SIGSTOP)  # the daemon stands still; JACK's cycles go on
    try:
        time.sleep(0.3)
        keyboard.note_off(A4)  # lost: nobody reads the port in these cycles
        time.sleep(0.7)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    # Seen in the first cycle the daemon runs again.
    assert wait_until(lambda: daemon.status()["input_lost"]["stalls"] > before["stalls"], 2.0, 0.1)
    lost = daemon.status()["input_lost"]
    # JACK ran about a second of cycles (375 of 128 frames) without the daemon.
    assert lost["cycles"] - before["cycles"] >= 300, (before, lost)
    assert lost["ms"] - before["ms"] >= 800, (before, lost)
    assert lost["last_s_ago"] is not None and lost["last_s_ago"] < 5.0
    # Logged within the rate limit (one line per 5 s at most) and the watcher's 2 s pass.
    assert wait_until(lambda: daemon.output().count("MIDI input lost") > logged, 8.0), daemon.output()[-2000:]
    assert sounding(ear) > -40, "the note whose note-off was lost does not hang: nothing was lost?"
    out = mxfd(daemon, "panic")
    assert out.returncode == 0, out.stderr
    settle(ear)


def test_the_watchdog_is_fed(daemon: Daemon) -> None:
    assert daemon.wait_for("WATCHDOG=1", 3.0) is not None


def test_sighup_reapplies_the_port_rules_without_reopening_the_audio_device(daemon: Daemon) -> None:
    worker = daemon.status()["audio"]["worker_pid"]
    kbd = Keyboard("test-reload")
    try:
        assert wait_until(lambda: connected(kbd.port_name), 2.0)
        daemon.config_path.write_text(CONFIG + '[[midi.sources]]\nmatch = "^test-reload"\nconnect = false\n')
        with daemon._lock:
            daemon.messages.clear()
        daemon.proc.send_signal(signal.SIGHUP)
        assert daemon.wait_for("RELOADING=1", 5.0) is not None
        assert daemon.wait_for("READY=1", 5.0) is not None
        assert wait_until(lambda: not connected(kbd.port_name), 2.0), daemon.output()[-2000:]
        # a broken file is refused and the running config kept
        daemon.config_path.write_text("[audio]\nperiods = 0\n")
        daemon.proc.send_signal(signal.SIGHUP)
        assert daemon.wait_for("READY=1", 5.0) is not None
        assert "reload refused, keeping the running config" in daemon.output()
        daemon.config_path.write_text(CONFIG)
        daemon.proc.send_signal(signal.SIGHUP)
        assert daemon.wait_for("READY=1", 5.0) is not None
        assert wait_until(lambda: connected(kbd.port_name), 2.0)
    finally:
        daemon.config_path.write_text(CONFIG)
        kbd.close()
    assert daemon.status()["audio"]["worker_pid"] == worker
    assert "audio settings changed" not in daemon.output()


def test_a_restarted_jack_server_brings_sound_back_without_restarting_mxfd(
    daemon: Daemon, jack_server: JackServer
) -> None:
    pid = daemon.proc.pid
    forget_probe()  # no client of this process may outlive the server
    jack_server.restart()
    ear = Ear()
    try:
        ear.connect(OUT, timeout=20.0)
        kbd = Keyboard(KBD)
        try:
            assert wait_until(lambda: connected(kbd.port_name), 10.0), daemon.output()[-3000:]
            heard = hear_note(ear, kbd)
        finally:
            kbd.close()
        assert rms_dbfs(heard) > -40, "no sound after the server restart"
        loud = heard[np.abs(heard) > 0][-int(0.4 * ear.rate) :]
        assert abs(dominant_frequency(loud, ear.rate) - 440.0) < 440.0 * 0.005
        settle(ear)
    finally:
        ear.close()
    assert daemon.proc.poll() is None and daemon.proc.pid == pid


def test_sigterm_leaves_no_sounding_note_and_exits_0(daemon: Daemon) -> None:
    ear = Ear()
    kbd = Keyboard(KBD)
    try:
        ear.connect(OUT, timeout=15.0)
        assert wait_until(lambda: connected(kbd.port_name), 2.0)
        kbd.send(0xC0, 19)
        kbd.note_on(A4)
        assert wait_until(lambda: recent_dbfs(ear) > -40, 2.0), "the held note never sounded"
        mark = ear.mark()
        held = rms_dbfs(ear.listen(0.2))
        assert held > -40
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(15.0) == 0, daemon.output()[-3000:]
        # The daemon's ports are gone; two more cycles at the ear and it has all they played.
        end = ear.mark()
        assert wait_until(lambda: ear.mark() >= end + 2 * 128, 1.0)
        heard = ear.since(mark)
    finally:
        kbd.close()
        ear.close()
    # The output fades to silence before the ports go away: the last sound is quiet.
    nz = np.flatnonzero(np.abs(heard) > 1e-6)
    assert nz.size
    tail = heard[max(0, nz[-1] - 96) : nz[-1] + 1]  # the last 2 ms that made any sound
    assert rms_dbfs(tail) < held - 30, (rms_dbfs(tail), held)
    out = daemon.output()
    assert "stopping (SIGTERM)" in out and "stopped" in out
    assert daemon.wait_for("STOPPING=1", 1.0) is not None


def test_without_any_sound_server_it_starts_degraded_and_says_so(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as mp:  # only the daemon started here looks for that server
        mp.setenv("JACK_DEFAULT_SERVER", f"mxfd-test-absent-{os.getpid()}")
        d = Daemon(tmp_path, '[midi]\napi = "jack"\n')
    try:
        assert d.wait_for("READY=1", 20.0) is not None, d.output()
        status = d.wait_for("STATUS=", 1.0)
        assert status is not None and status.startswith("STATUS=degraded"), status
        assert "no audio output device" in status
        assert "no JACK server" in d.output()
        env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path / "run"))
        played = subprocess.run([PYTHON, "-m", "mxfd", "play", _a_file(tmp_path / "song.mid")],
                                cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert played.returncode == 3 and "nothing would be heard" in played.stderr, played.stderr
        assert d.terminate() == 0
    finally:
        d.close()


def _a_file(path: Path) -> str:
    mid = mido.MidiFile()
    notes = [mido.Message("note_on", note=A4, velocity=90), mido.Message("note_off", note=A4, time=240)]
    mid.tracks.append(mido.MidiTrack(notes))
    mid.save(str(path))
    return str(path)


def _client_command(*argv: str) -> subprocess.CompletedProcess[str]:
    """An ``mxfd`` client command in a session without the daemon's runtime directory: only ``--config`` leads there."""
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    return subprocess.run([PYTHON, "-m", "mxfd", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_an_unknown_audio_device_names_the_ones_there_are_and_play_says_nothing_is_heard(
    jack_server: JackServer, tmp_path: Path
) -> None:
    socket_path = tmp_path / "run" / "mxfd" / "mxfd.sock"
    d = Daemon(tmp_path, f'[midi]\napi = "jack"\n[client]\nsocket = "{socket_path}"\n', "--audio-device", "nosuch")
    try:
        assert d.wait_for("READY=1", 20.0) is not None, d.output()
        status = d.wait_for("STATUS=", 1.0)
        assert status is not None and status.startswith("STATUS=degraded"), status
        # the sound server runs: say which devices it has, not "is the sound server running?"
        assert "'system' (JACK Audio Connection Kit)" in status and "sound server running" not in status, status
        assert "'mxfd" not in status  # its own JACK clients are no place for its sound
        song = _a_file(tmp_path / "song.mid")
        config = str(d.config_path)
        played = _client_command("play", "--config", config, song)
        assert played.returncode == 3, played.stderr
        assert "nothing would be heard" in played.stderr and "'nosuch'" in played.stderr
        assert len(played.stderr.splitlines()) == 1 and "Traceback" not in played.stderr
        forced = _client_command("play", "--config", config, "--force", song)
        assert forced.returncode == 0 and "nothing will be heard" in forced.stderr, forced.stderr
        shown = _client_command("status", "--config", config)
        assert shown.returncode == 3
        assert shown.stdout.splitlines()[1].startswith("audio: degraded, nothing is heard: "), shown.stdout
        assert d.terminate() == 0
    finally:
        d.close()


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ mxfd[.:\w]*: ")


def test_without_a_jack_server_libjack_is_quiet_and_the_servers_return_is_said_once(tmp_path: Path) -> None:
    # The first free name of our own series: the server that starts under it later is the daemon's.
    late = next(s for s in (JackServer(f"mxfd-test-late-{n}") for n in range(4)) if not s.running())
    with pytest.MonkeyPatch.context() as mp:  # only the daemon started here looks for that server
        mp.setenv("JACK_DEFAULT_SERVER", late.name)
        d = Daemon(tmp_path, '[midi]\napi = "jack"\n')
    try:
        assert d.wait_for("READY=1", 20.0) is not None, d.output()
        time.sleep(3.0)  # a window of six connection attempts, each five lines of libjack's before
        lines = d.output().splitlines()
        foreign = [line for line in lines if not LOG_LINE.match(line)]
        assert not foreign, "\n".join(foreign[:10])
        assert len(lines) <= 12, "\n".join(lines)
        assert sum("no JACK server" in line and "retrying every 0.5 s" in line for line in lines) == 1, lines
        late.start()
        try:
            assert wait_until(lambda: "JACK server back" in d.output(), 5.0), d.output()
            assert wait_until(lambda: "audio output running" in d.output(), 10.0), d.output()
            time.sleep(1.0)  # a window for a second "back" or libjack's own lines to show up in
            assert d.terminate() == 0
            out = d.output()
            assert out.count("JACK server back") == 1, out
            foreign = [line for line in out.splitlines() if not LOG_LINE.match(line)]
            assert not foreign, "\n".join(foreign[:10])
        finally:
            d.terminate()
            late.stop()
    finally:
        d.close()


def test_a_bad_config_key_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[audio]\nrate = 22050\n')
    proc = subprocess.run(
        [PYTHON, "-m", "mxfd", "run", "--config", str(bad)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "[audio] rate = 22050: expected one of 44100, 48000, 88200, 96000" in proc.stderr
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[midi]\nautoconnect = true\n')
    proc = subprocess.run(
        [PYTHON, "-m", "mxfd", "run", "--config", str(unknown)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "unknown key 'autoconnect' (= True); allowed keys:" in proc.stderr
