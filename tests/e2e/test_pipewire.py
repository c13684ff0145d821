"""``mxfd run`` on PipeWire, the desktop's sound server, through what a desktop user has.

One headless PipeWire serves the run (:mod:`tests.pipewire`): quantum 128 at
48 kHz, a null sink as the speakers.  The ear and the keyboards are JACK
clients of it in a process of their own (:class:`tests.e2e.jackpeer.JackPeer`):
the ear listens to the sink's monitor ports, so what it hears is what the
speakers get, and a keyboard is a JACK MIDI output port, as PipeWire shows a
hardware keyboard.  The daemon runs under PipeWire's libjack (as under
``pw-jack``) for the JACK pin, and without it for the PortAudio pin through
ALSA's ``default`` PCM, which pipewire-alsa makes a PipeWire stream.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest

from tests import calm
from tests.e2e.ears import dominant_frequency, rms_dbfs, wait_until
from tests.e2e.jackpeer import JackPeer
from tests.e2e.test_client import Melody, make_midi, onsets
from tests.e2e.test_daemon import A4, ROOT, Daemon, output_misses
from tests.pipewire import SINK, PipeWireRig, pw_jack_dir

pytestmark = pytest.mark.pipewire

MONITOR = rf"^{SINK}:monitor_"
KBD = "test-kbd"
SILENT_DBFS = -70.0
#: The default MIDI api: with no ALSA sequencer here, "auto" is JACK.
CONFIG = """
[midi]
api = "auto"
include = ["^test-"]
[log]
level = "debug"
"""

#: The PortAudio pin on ALSA: pipewire-alsa asks for periods in bursts, so one more is queued.
ALSA_CONFIG = """
[midi]
api = "auto"
[audio]
periods = 3
[log]
level = "debug"
"""


def start_daemon(
    tmp: Path, env: dict[str, str], config: str = CONFIG, soundfont: str = "builtin", pin: Optional[str] = "portaudio"
) -> Daemon:
    """``mxfd run`` on the rig: through PortAudio unless ``pin`` says otherwise (None: the default choice)."""
    d = Daemon(tmp, config, *(("--audio-pin", pin) if pin else ()), env=env, soundfont=soundfont)
    ready = d.wait_for("READY=1", 60.0)
    assert ready is not None, "no READY=1\n" + d.output()
    return d


def log_tail(d: Daemon, lines: int = 60) -> str:
    """The daemon's log without the test's own status queries."""
    return "\n".join([x for x in d.output().splitlines() if "mxfd.client.server" not in x][-lines:])


def source(d: Daemon, name: str) -> dict[str, object]:
    return next((i for i in d.status()["inputs"] if i["name"] == name), {})


def plugged(d: Daemon, name: str) -> bool:
    return source(d, f"{name}:out").get("connected") is True


def plug(d: Daemon, peer: JackPeer, name: str = KBD) -> None:
    """Plug keyboard ``name`` in and wait until mxfd hears it.

    mxfd connects it as soon as it appears, but PipeWire makes a link
    active some cycles after ``jack_connect`` returns (jackd at once): what is
    played before then is lost.  Active sensing (ignored by the synth) is
    sent until mxfd counts it.
    """
    peer.plug(name)
    assert wait_until(lambda: plugged(d, name), 2.0), log_tail(d)

    def heard() -> bool:
        peer.send(name, 0xFE)
        return int(source(d, f"{name}:out").get("events", 0)) > 0  # type: ignore[call-overload]

    assert wait_until(heard, 2.0, interval=0.05), "mxfd connected the keyboard but hears nothing of it\n" + log_tail(d)


def recent_dbfs(peer: JackPeer, seconds: float = 0.1) -> float:
    return rms_dbfs(peer.since(peer.mark() - int(seconds * peer.rate)))


def hear_note(peer: JackPeer, kbd: str, note: int = A4, seconds: float = 0.6) -> np.ndarray:
    mark = peer.mark()
    peer.send(kbd, 0x90, note, 100)
    time.sleep(seconds)
    peer.send(kbd, 0x80, note, 0)
    return peer.since(mark)


def hear_whole_note(peer: JackPeer, d: Daemon, budget_s: float = 60.0) -> np.ndarray:
    """:func:`hear_note` on :data:`KBD`, played again when the daemon's JACK reader or the ear lost cycles.

    PipeWire's graph now and then skips a cycle for every client (0 xruns said): an event in it
    never reaches mxfd, and the ear's recording is spliced there, which moves a spectrum's peak.
    A take they disturbed is never judged: if every take in ``budget_s`` was, the test fails so.
    """
    takes = []
    for _ in (played := calm.Takes(peer.disturbance_count, budget_s=budget_s)):
        before = lost_input(d)
        mark = peer.mark()
        heard = hear_note(peer, KBD)
        lost, spliced = lost_input(d) - before, peer.disturbances(mark)
        if not lost and not spliced:
            return heard
        takes.append(f"{lost} input events lost, the ear's recording spliced at {spliced}")
        peer.send(KBD, 0xB0, 123, 0)  # a note-off lost in them leaves the note hanging
        time.sleep(0.3)
    pytest.fail("every take of the note was disturbed:\n" + "\n".join(takes) + "\n" + played.report())


def diagnose(d: Daemon) -> str:
    """What the daemon says about its input, synth and output, for a test that heard nothing."""
    st = d.status()
    parts = {k: st.get(k) for k in ("inputs", "events", "synth", "thru_latency_ms", "input_lost", "reader_timeouts")}
    parts["audio"] = {k: st["audio"].get(k) for k in ("state", "underruns", "callbacks", "frames_played",
                                                      "device_latency_s", "restarts", "server_period")}
    return f"{parts}\n{log_tail(d, 30)}"


def assert_a4(heard: np.ndarray, rate: int, peer: Optional[JackPeer] = None, d: Optional[Daemon] = None) -> None:
    wiring = peer.request("connections", pattern=r"^mxfd-out:") if peer is not None else ""
    said = diagnose(d) if d is not None else ""
    assert rms_dbfs(heard) > -40, f"no sound ({rms_dbfs(heard):.1f} dBFS); mxfd's output is wired {wiring}\n{said}"
    loud = heard[np.abs(heard) > 0][-int(0.4 * rate) :]
    f = dominant_frequency(loud, rate)
    assert abs(f - 440.0) < 440.0 * 0.005, f


@pytest.fixture
def peer(pipewire: PipeWireRig, tmp_path: Path) -> Iterator[JackPeer]:
    p = JackPeer(pipewire.jack_env(), tmp_path)
    try:
        p.connect(MONITOR)
        yield p
    finally:
        p.close()


@pytest.fixture
def jack_daemon(pipewire: PipeWireRig, tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path, pipewire.jack_env())
    try:
        yield d
    finally:
        d.close()


# -- the PortAudio pin under PipeWire's JACK (pw-jack) ---------------------------------------------


def test_a_jack_keyboard_on_pipewire_is_heard_on_the_speakers_at_440_hz_through_mxfds_own_jack_ports(
    jack_daemon: Daemon, peer: JackPeer
) -> None:
    audio = jack_daemon.status()["audio"]
    assert audio["state"] == "running", audio
    assert "JACK" in audio["hostapi"], f"the sound leaves through {audio['hostapi']}, not mxfd's JACK ports"
    assert peer.ports(r"^mxfd-out:"), "mxfd has no JACK output ports on PipeWire"
    # Both the daemon and its audio worker talk to PipeWire through PipeWire's libjack, never rtmidi's own copy.
    for pid in (jack_daemon.proc.pid, audio["worker_pid"]):
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert f"{pw_jack_dir()}/libjack.so" in maps, f"process {pid} has not loaded PipeWire's libjack"
        assert "python_rtmidi" not in maps, f"process {pid} loaded python-rtmidi"
    plug(jack_daemon, peer)
    try:
        assert_a4(hear_whole_note(peer, jack_daemon), peer.rate, peer, jack_daemon)
    finally:
        peer.unplug(KBD)


def lost_input(d: Daemon) -> int:
    """JACK cycles the daemon's MIDI reader has missed so far (their events never reached it)."""
    return int(d.status()["input_lost"]["cycles"])


def upsets(d: Optional[Daemon]) -> tuple[int, int, int, int]:
    """What the daemon counts that moves or loses a note.

    Output misses, lost input cycles, events rendered after their frame (the synth's, the pin
    ring's), and re-anchorings of the output's clock mapping (a note timed across one moves).
    """
    if d is None:
        return (0, 0, 0, 0)
    st = d.status()
    audio = st["audio"]
    late = int(st["synth"].get("late_events", 0)) + int((audio.get("ring") or {}).get("late", 0))
    return (output_misses(d), int(st["input_lost"]["cycles"]), late, int(audio.get("clock_steps") or 0))


def key_to_sound_ms(peer: JackPeer, notes: int = 10, d: Optional[Daemon] = None) -> list[float]:
    """Milliseconds from each note-on's JACK frame to the first sample the ear hears of it.

    A note whose take was disturbed is played again, up to three times as many as there are notes:
    an underrun of mxfd's queue puts a period of silence in, an xrun of the ear takes one out,
    cycles the daemon's JACK reader missed lose its events, and an event the render reached only
    after its frame (the render thread held up; the synth counts it late) sounds late.
    """
    lost_before = lost_input(d) if d is not None else 0
    latencies: list[float] = []
    disturbed = 0
    while len(latencies) < notes:
        silent = wait_until(lambda: recent_dbfs(peer, 0.2) < SILENT_DBFS, 3.0)
        if not silent and d is not None and lost_input(d) != lost_before:
            # The daemon's JACK reader missed cycles (it says so): the note-off was in one of them and
            # the note hangs.  Release it and take the note again.
            peer.send(KBD, 0xB0, 123, 0)
            disturbed += 1
            silent = wait_until(lambda: recent_dbfs(peer, 0.2) < SILENT_DBFS, 3.0)
        assert silent, f"not silent: {recent_dbfs(peer):.1f} dBFS\n" + (diagnose(d) if d is not None else "")
        before = upsets(d)
        lost_before = before[1]
        mark = peer.mark()
        at = peer.ear_frame(peer.send(KBD, 0x90, A4, 110))
        time.sleep(0.15)
        peer.send(KBD, 0x80, A4, 0)
        heard = peer.since(mark)
        sounding = np.flatnonzero(np.abs(heard) > 1e-3)
        # Judged for disturbance first: a note-on in a cycle PipeWire ran without mxfd is never heard.
        if peer.disturbances(mark) or upsets(d) != before:
            disturbed += 1
            assert disturbed <= 3 * notes, f"{disturbed} notes disturbed by underruns or xruns, {len(latencies)} not"
            continue
        assert len(sounding), "no sound\n" + (diagnose(d) if d is not None else "")
        latencies.append((mark + int(sounding[0]) - at) * 1000 / peer.rate)
    return latencies


def test_key_to_sound_on_pipewire_at_quantum_128_is_under_6_ms_and_the_speakers_get_it_one_quantum_later(
    jack_daemon: Daemon, peer: JackPeer
) -> None:
    plug(jack_daemon, peer)
    try:
        peer.send(KBD, 0xC0, 80)  # an instant attack, no reverb: the first non-zero sample is the key's
        peer.send(KBD, 0xB0, 91, 0)
        peer.listen_to(r"^mxfd-out:")
        at_mxfd = key_to_sound_ms(peer, d=jack_daemon)
        peer.listen_to(MONITOR)
        at_speakers = key_to_sound_ms(peer, d=jack_daemon)
        print(f"key-to-sound on PipeWire, quantum {peer.blocksize}: mxfd's ports {at_mxfd}, speakers {at_speakers}")
        assert peer.blocksize == 128
        assert 0 < min(at_mxfd) and max(at_mxfd) < 6.0, at_mxfd
        # The null sink hands its input to its monitor in the next cycle: one quantum, exactly.
        quantum_ms = peer.blocksize * 1000 / peer.rate
        assert np.median(at_speakers) - np.median(at_mxfd) == pytest.approx(quantum_ms, abs=0.1)
        assert max(at_speakers) - min(at_speakers) < 0.5, at_speakers
    finally:
        peer.unplug(KBD)


def test_a_keyboard_unplugged_on_pipewire_is_released_and_replugged_is_heard_again(
    jack_daemon: Daemon, peer: JackPeer
) -> None:
    plug(jack_daemon, peer)
    peer.send(KBD, 0xC0, 19)  # church organ: sounds as long as it is held
    peer.send(KBD, 0x90, A4, 100)  # held: its note-off never comes
    assert wait_until(lambda: recent_dbfs(peer) > -40, 2.0), "the held note never sounded"
    peer.unplug(KBD)
    assert wait_until(lambda: recent_dbfs(peer, 0.3) < SILENT_DBFS, 3.0), "the unplugged keyboard's note still sounds"
    assert wait_until(lambda: re.search(r"test-kbd(-\d+)?:out: gone", jack_daemon.output()) is not None, 2.0), (
        log_tail(jack_daemon))
    plug(jack_daemon, peer)
    try:
        peer.send(KBD, 0xC0, 0)
        assert_a4(hear_whole_note(peer, jack_daemon), peer.rate, peer, jack_daemon)
    finally:
        peer.unplug(KBD)


# -- PipeWire restarted -----------------------------------------------------------------------------


def comes_back_after_a_restart(pipewire: PipeWireRig, d: Daemon, tmp_path: Path) -> None:
    """PipeWire killed and started again: ``d``'s sound and MIDI are back within 5 s, the same process."""
    pid = d.proc.pid
    pipewire.restart()
    back_at = time.monotonic()
    peer = JackPeer(pipewire.jack_env(), tmp_path)  # the old peer's clients died with the server
    try:
        peer.plug(KBD)
        came_back = wait_until(
            lambda: d.status()["audio"]["state"] == "running"
            and bool(peer.ports(r"^mxfd-out:")) and plugged(d, KBD),
            5.0 - (time.monotonic() - back_at),
        )
        assert came_back, log_tail(d)
        peer.unplug(KBD)
        plug(d, peer)  # and hears it (PipeWire's links become active a little later)
        assert d.proc.poll() is None and d.proc.pid == pid
        peer.connect(MONITOR)
        assert_a4(hear_whole_note(peer, d), peer.rate, peer, d)
    finally:
        peer.close()


def test_after_pipewire_restarts_mxfds_sound_and_midi_come_back_within_5_s_without_restarting_it(
    pipewire: PipeWireRig, jack_daemon: Daemon, tmp_path: Path
) -> None:
    comes_back_after_a_restart(pipewire, jack_daemon, tmp_path)


# -- the quantum changed -----------------------------------------------------------------------------


def test_a_quantum_changed_while_mxfd_plays_keeps_the_sound_and_status_reports_the_new_period_and_latency(
    pipewire: PipeWireRig, jack_daemon: Daemon, peer: JackPeer
) -> None:
    pid = jack_daemon.proc.pid
    period = jack_daemon.status()["audio"]["period"]
    plug(jack_daemon, peer)
    try:
        for quantum in (256, 64, 128):
            held = quantum < period
            if held:
                # Below mxfd's period the JACK reader misses cycles of PipeWire's (MIDI input lost, in
                # its log): a held organ note, played before, must sound on through the change instead.
                peer.listen_to(MONITOR)
                peer.send(KBD, 0xC0, 19)
                peer.send(KBD, 0xB0, 93, 0)  # no chorus: its sweep pulls the organ's peak off 440 Hz by 0.5 %
                peer.send(KBD, 0x90, A4, 100)
                assert wait_until(lambda: recent_dbfs(peer) > -40, 2.0), "the held note never sounded"
            restarts = jack_daemon.status()["audio"]["restarts"]
            pipewire.set_quantum(quantum)
            # The output reopens for the new period (PortAudio's own buffer was set up for the old one).
            assert wait_until(
                lambda q=quantum, r=restarts: (a := jack_daemon.status()["audio"])["server_period"] == q
                and a["restarts"] > r and a["state"] == "running",
                3.0,
            ), log_tail(jack_daemon)
            time.sleep(0.5)  # the output's clock mapping re-anchors on the new stream
            said = jack_daemon.status()["thru_latency_ms"]["frame_accurate"]
            if held:
                # a take spliced by the ear, or by an underrun at the new quantum, moves the peak: not judged
                for _ in (listened := calm.Takes(peer.disturbance_count, budget_s=60.0)):
                    missed, mark = output_misses(jack_daemon), peer.mark()
                    heard = peer.listen(0.5)
                    if output_misses(jack_daemon) == missed and not peer.disturbances(mark):
                        break
                else:
                    pytest.fail(f"every take of the held note was disturbed at quantum {quantum}\n{listened.report()}")
                assert_a4(heard, peer.rate, peer, jack_daemon)
                print(f"quantum {quantum}: status says {said} ms; the held note sounds on")
                continue
            peer.send(KBD, 0xB0, 123, 0)  # all notes off: whatever was held before
            peer.send(KBD, 0xC0, 0)
            peer.listen_to(MONITOR)
            assert_a4(hear_whole_note(peer, jack_daemon), peer.rate, peer, jack_daemon)
            # What status says the latency is, the ear measures at mxfd's ports.
            peer.send(KBD, 0xC0, 80)
            peer.send(KBD, 0xB0, 91, 0)
            peer.listen_to(r"^mxfd-out:")
            measured = key_to_sound_ms(peer, 5, jack_daemon)
            print(f"quantum {quantum}: status says {said} ms, heard after {measured} ms")
            audio = {k: jack_daemon.status()["audio"].get(k) for k in ("device_latency_s", "period", "periods")}
            assert float(np.median(measured)) == pytest.approx(said, abs=0.2), (quantum, said, measured, audio)
        assert jack_daemon.proc.poll() is None and jack_daemon.proc.pid == pid
    finally:
        peer.unplug(KBD)
        pipewire.set_quantum(128)


# -- the PortAudio pin through ALSA's default PCM (pipewire-alsa), no JACK -------------------------


def test_without_jack_mxfd_plays_through_alsas_default_into_pipewire_and_play_keeps_the_files_onsets(
    pipewire: PipeWireRig, peer: JackPeer, tmp_path: Path
) -> None:
    d = start_daemon(tmp_path, pipewire.env(), ALSA_CONFIG)
    try:
        audio = d.status()["audio"]
        assert audio["state"] == "running", audio
        assert audio["hostapi"] == "ALSA" and audio["server_period"] is None, audio
        # api = "auto" here: no ALSA sequencer, no JACK server: said once, plainly, and the daemon serves on.
        lines = [x for x in d.output().splitlines() if "no MIDI system" in x]
        assert len(lines) == 1 and "no ALSA sequencer (/dev/snd/seq) and no JACK server" in lines[0], lines
        assert "Traceback" not in d.output()
        path = str(tmp_path / "melody.mid")
        notes = [(0.5, 0.1, 81), (0.9375, 0.1, 76), (1.40625, 0.12, 84), (1.84375, 0.1, 79)]
        make_midi(path, notes)
        # Each note's start after an earlier one's, as the ear heard them in time, in a take where nothing
        # came near the two starts (``calm.undisturbed_pairs``, as on jackd); each pitch where nothing
        # spliced the frames it is read from.  An underrun (the render thread late for a burst of ALSA's
        # requests) puts a period of silence in somewhere, a late event sounds late: such a take is
        # played again.
        melody = Melody(notes, peer.rate)
        takes = []
        for _ in (plays := calm.Takes(peer.disturbance_count)):
            before = upsets(d)
            mark = peer.mark()
            played = subprocess.run(
                [sys.executable, "-m", "mxfd", "play", "--socket", d.socket_path, path],
                cwd=ROOT, capture_output=True, text=True, timeout=30,
            )
            assert played.returncode == 0, played.stderr
            wait_until(lambda m=mark: len(onsets(peer.since(m), peer.rate)) >= len(notes), 5.0)
            time.sleep(0.3)
            x = peer.since(mark)
            marks = peer.disturbances(mark)
            found = onsets(x, peer.rate)
            assert len(found) == len(notes), f"heard {len(found)} note starts, expected {len(notes)}: {found}"
            upset = upsets(d)
            takes.append(f"onsets {found}, disturbed at {marks}, misses/lost/late/steps {before} -> {upset}")
            if upset == before and melody.judge(x, found, marks, lambda fs, m=mark: peer.time_of(*(m + f for f in fs))):
                break
        assert melody.done, "every take was disturbed:\n" + "\n".join(takes) + "\n" + plays.report()
        print("\n".join(takes))  # shown with a failure below
        melody.assert_on_time()
    finally:
        d.close()


# -- the JACK-native pin under PipeWire's JACK (the default with a SoundFont) ----------------------

FONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
#: The square lead's attack in TimGM6mb: its first sample is heard this long after the note's frame.
ONSET_MS = 0.25
RATE_HZ = 48000


@pytest.fixture
def pin_daemon(pipewire: PipeWireRig, compiled_engine: None, tmp_path: Path) -> Iterator[Daemon]:
    d = start_daemon(tmp_path, pipewire.jack_env(), soundfont=FONT, pin=None)
    try:
        yield d
    finally:
        d.close()


def instant_lead(peer: JackPeer) -> None:
    peer.send(KBD, 0xC0, 80)  # an instant attack, no reverb or chorus: the first non-zero sample is the key's
    peer.send(KBD, 0xB0, 91, 0)
    peer.send(KBD, 0xB0, 93, 0)


def assert_one_quantum(at_speakers: list[float], quantum: int) -> None:
    """Every note heard at the speakers one quantum after its frame (plus the lead's onset), all alike.

    The pin renders a key in the cycle that read it, at the key's frame: a client after it in
    the graph (the ear on mxfd's ports) hears it in that cycle, and the sink, which plays what
    it got during the next one, a quantum later: the physical limit.
    """
    q_ms = quantum * 1000 / RATE_HZ
    assert q_ms <= min(at_speakers) and max(at_speakers) < q_ms + ONSET_MS, (quantum, at_speakers)
    assert max(at_speakers) - min(at_speakers) <= 1000 / RATE_HZ + 1e-9, at_speakers  # within one sample


def test_on_pipewire_a_soundfont_plays_on_the_jack_pin_by_default_a_key_heard_one_quantum_after_its_frame(
    pin_daemon: Daemon, peer: JackPeer
) -> None:
    audio = pin_daemon.status()["audio"]
    assert audio["state"] == "running" and audio["pin"] == "jack", audio
    assert "audio pin: JACK, since a JACK server answers" in pin_daemon.output()
    maps = Path(f"/proc/{pin_daemon.proc.pid}/maps").read_text()
    assert f"{pw_jack_dir()}/libjack.so" in maps and "python_rtmidi" not in maps
    plug(pin_daemon, peer)
    try:
        assert_a4(hear_whole_note(peer, pin_daemon), peer.rate, peer, pin_daemon)
        instant_lead(peer)
        peer.listen_to(r"^mxfd-out:")
        at_mxfd = key_to_sound_ms(peer, d=pin_daemon)
        peer.listen_to(MONITOR)
        at_speakers = key_to_sound_ms(peer, d=pin_daemon)
        print(f"key-to-sound on PipeWire on the JACK pin, quantum {peer.blocksize}: "
              f"mxfd's ports {at_mxfd} ms, speakers {at_speakers} ms")
        assert peer.blocksize == 128
        # In the key's own cycle, at its frame.
        assert max(at_mxfd) < ONSET_MS, f"{at_mxfd}\n{pin_daemon.status()['audio']}\n{diagnose(pin_daemon)}"
        assert_one_quantum(at_speakers, 128)
        assert pin_daemon.status()["thru_latency_ms"]["through_pin"] == pytest.approx(128 * 1000 / RATE_HZ, abs=0.01)
    finally:
        peer.unplug(KBD)


def test_on_the_jack_pin_a_quantum_changed_on_pipewire_is_followed_at_one_quantum_each_time(
    pipewire: PipeWireRig, pin_daemon: Daemon, peer: JackPeer
) -> None:
    pid = pin_daemon.proc.pid
    plug(pin_daemon, peer)
    try:
        for quantum in (256, 64, 128):
            pipewire.set_quantum(quantum)
            assert wait_until(
                lambda q=quantum: (a := pin_daemon.status()["audio"])["period"] == q and a["state"] == "running",
                3.0,
            ), log_tail(pin_daemon)
            peer.send(KBD, 0xB0, 123, 0)
            peer.send(KBD, 0xC0, 0)
            peer.listen_to(MONITOR)
            assert_a4(hear_whole_note(peer, pin_daemon), peer.rate, peer, pin_daemon)
            instant_lead(peer)
            measured = key_to_sound_ms(peer, 5, pin_daemon)  # at the speakers
            said = pin_daemon.status()["thru_latency_ms"]["through_pin"]
            print(f"quantum {quantum} on the JACK pin: status says {said} ms, heard after {measured} ms")
            assert_one_quantum(measured, quantum)
            assert said == pytest.approx(quantum * 1000 / RATE_HZ, abs=0.01)
        assert pin_daemon.proc.poll() is None and pin_daemon.proc.pid == pid
    finally:
        peer.unplug(KBD)
        pipewire.set_quantum(128)


def test_on_the_jack_pin_after_pipewire_restarts_sound_and_midi_come_back_within_5_s(
    pipewire: PipeWireRig, pin_daemon: Daemon, tmp_path: Path
) -> None:
    comes_back_after_a_restart(pipewire, pin_daemon, tmp_path)
