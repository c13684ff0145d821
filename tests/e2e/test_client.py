"""The client side end to end: a real ``mxfd run`` on the JACK dummy server, real clients.

The daemon runs as a subprocess with its socket in a private directory;
``Ear`` listens to its audio output and ``Keyboard`` is a virtual JACK MIDI
port the daemon connects by itself.  Files are made in the tests; the
commands run as ``python -m mxfd ...`` subprocesses, the way a user runs them.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Iterator, Optional

import mido
import numpy as np
import pytest

from mxfd.client import Client, ClientError
from mxfd.client.commands import RECORD_PPQN
from mxfd.client.protocol import NEED_DATA, FrameDecoder, encode_buffer_frame, encode_control, make_hello
from mxfd.client.server import LOG_BURST
from mxfd.core.wire import decode_buffer, encode_buffer
from tests import calm
from tests.client.fuzzing import classify, mutated_frame, run_session, seed_frames
from tests.e2e.ears import Ear, Keyboard, dominant_frequency, rms_dbfs, wait_until
from tests.jackserver import JackServer, die_with_parent

pytestmark = pytest.mark.e2e

SECOND = 10_000_000
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SILENT_DBFS = -60.0


def hz(note: int) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


class Daemon:
    """``mxfd run`` in a subprocess, its socket in a directory other users may enter."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.socket = os.path.join(root, "run", "mxfd.sock")
        self.config = os.path.join(root, "mxfd.toml")
        self.log_path = os.path.join(root, "mxfd.log")
        with open(self.config, "w") as f:
            f.write(
                '[midi]\napi = "jack"\ninclude = ["^test-kbd"]\n'
                '[audio]\ndevice = "jack"\n'
                f'[client]\nsocket = "{self.socket}"\n'
            )
        self.proc: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mxfd", "run", "--config", self.config, "--soundfont", "builtin", "-v"],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, preexec_fn=die_with_parent,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mxfd run exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with Client(self.socket, timeout=2.0) as c:
                    if c.status()["audio"].get("state") == "running":
                        return
            except ClientError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"mxfd run did not come up:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()[-6000:]

    def status(self) -> dict[str, Any]:
        with Client(self.socket) as c:
            return c.status()

    def mxfd(self, *argv: str, **kw: Any) -> subprocess.Popen[bytes]:
        """Start an ``mxfd`` command against this daemon."""
        return subprocess.Popen(
            [sys.executable, "-m", "mxfd", *argv[:1], "--socket", self.socket, *argv[1:]],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO, **kw,
        )


@pytest.fixture(scope="module")
def daemon(jack_server: JackServer) -> Iterator[Daemon]:
    root = tempfile.mkdtemp(prefix="mxfd-e2e-", dir="/tmp")
    os.chmod(root, 0o755)  # others may enter: only the daemon's own modes may keep them out
    d = Daemon(root)
    try:
        d.start()
        yield d
    finally:
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def ear(daemon: Daemon) -> Iterator[Ear]:
    e = Ear("mxfd-test-client-ear")
    e.connect(r"^mxfd-out:")
    try:
        yield e
    finally:
        e.close()


@pytest.fixture(scope="module")
def keyboard(daemon: Daemon) -> Iterator[Keyboard]:
    kb = Keyboard("test-kbd")
    assert wait_until(lambda: _input(daemon.status(), kb.port_name).get("connected") is True, 10), daemon.log()
    # an instant attack and no reverb, so what is heard starts and stops where the notes do
    kb.send(0xC0, 80)
    kb.send(0xB0, 91, 0)
    kb.send(0xB0, 93, 0)
    yield kb
    kb.close()


def _input(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next((i for i in status["inputs"] if i["name"] == name), {})


def quiet(ear: Ear, seconds: float = 0.3) -> bool:
    return rms_dbfs(ear.listen(seconds)) < SILENT_DBFS


# -- audio analysis -------------------------------------------------------------------------


def onsets(x: np.ndarray, rate: int, gap: float = 0.05) -> list[int]:
    """Frames where notes start: the first sample that is not silent after ``gap`` seconds of silence.

    With reverb and chorus off the synth's output between notes is digital
    silence (exact zeros), and every note's attack starts from zero, so its
    first non-zero sample is where it starts, to the sample, whatever its pitch
    or loudness.
    """
    sounding = np.flatnonzero(np.abs(x) > 1e-6)
    if not len(sounding):
        return []
    starts = sounding[np.concatenate(([True], np.diff(sounding) > gap * rate))]
    return [int(i) for i in starts]


def _heard_out(x: np.ndarray, rate: int, notes: int, gap: float = 0.05) -> bool:
    """True once ``notes`` notes have started in ``x`` and the last ``gap`` seconds are silent again."""
    n = int(gap * rate)
    return len(onsets(x, rate)) >= notes and len(x) > n and not np.any(np.abs(x[-n:]) > 1e-6)


def make_midi(path: str, notes: list[tuple[float, float, int]], program: int = 80) -> None:
    """A type 0 file at 120 bpm (480 PPQN): ``notes`` as (start s, length s, note); no reverb."""
    events: list[tuple[int, mido.Message]] = [
        (0, mido.Message("program_change", program=program)),
        (0, mido.Message("control_change", control=91, value=0)),
        (0, mido.Message("control_change", control=93, value=0)),
    ]
    for start, length, note in notes:
        on = round(start * 960)  # 960 ticks a second at 120 bpm and 480 PPQN
        events.append((on, mido.Message("note_on", note=note, velocity=100)))
        events.append((on + round(length * 960), mido.Message("note_off", note=note)))
    save_type0(path, events)


def save_type0(path: str, events: list[tuple[int, mido.Message]]) -> None:
    """Write ``events`` (absolute tick, message; in any order) as a type 0 file of 480 PPQN."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    track = mido.MidiTrack()
    prev = 0
    for t, m in sorted(events, key=lambda e: e[0]):
        track.append(m.copy(time=t - prev))
        prev = t
    mid.tracks.append(track)
    mid.save(path)


# -- play ----------------------------------------------------------------------------------------


#: After a disturbance, how long until the output is on time again: the daemon re-anchors its
#: clock at the next sync report or the one after (8 periods apart), then the blocks queued play out.
SETTLE_S = 0.1
#: How long after an xrun JACK may tell the ear of it.
REPORT_DELAY_S = 0.05
#: Where each note's pitch is read, seconds after its start: past the attack, and short, so that a take
#: whose xruns come every few tenths of a second still has notes no xrun spliced there.
PITCH_READ = (0.02, 0.12)


def test_play_sounds_each_note_at_the_files_time_and_pitch(daemon: Daemon, ear: Ear, tmp_path: Any) -> None:
    path = str(tmp_path / "melody.mid")
    # notes of different pitches, each followed by silence once its release has died away
    notes = [(0.5, 0.1, 81), (0.9375, 0.1, 76), (1.40625, 0.12, 84), (1.84375, 0.1, 79)]
    make_midi(path, notes)
    # Each note's start after an earlier one's is judged as a listener hears it, in time (the ear's
    # ``time_of``), in a take where nothing disturbed the two notes' starts (``calm.undisturbed_pairs``).
    # A JACK xrun (a loaded machine skipping a cycle) moves the device's frames against the clock; the
    # daemon re-anchors its mapping at its next clock report, and notes rendered before that are off by
    # the move.  An underrun of the daemon's frame queue puts a period of silence in.  Neither is the
    # client's timing: the ear knows where xruns and its own missed cycles fell, the daemon counts its
    # underruns, and a note they disturbed is measured again in the next take.  Each pitch is judged
    # where its note was undisturbed.
    melody = Melody(notes, ear.rate)
    takes: list[str] = []
    for _ in (plays := calm.Takes(lambda: len(ear.xruns))):
        underruns0 = daemon.status()["audio"]["ring_underruns"]
        mark = ear.mark()
        proc = daemon.mxfd("play", path)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        # Until every note has started and the last one has ended (50 ms of digital silence after
        # it: reverb and chorus are off); if they never do, the count below says what was heard.
        wait_until(lambda m=mark: _heard_out(ear.since(m), ear.rate, len(notes)), 5.0)
        x = ear.since(mark)
        underruns = daemon.status()["audio"]["ring_underruns"] - underruns0
        marks = ear.disturbances(mark)
        found = onsets(x, ear.rate)
        assert len(found) == len(notes), f"heard {len(found)} note starts, expected {len(notes)}: {found}"
        takes.append(f"onsets {found}, xruns or missed cycles at {marks}, {underruns} underruns")
        if not underruns and melody.judge(x, found, marks, lambda fs, m=mark: [ear.time_of(m + f) for f in fs]):
            break
    assert melody.done, "every take was disturbed:\n" + "\n".join(takes) + "\n" + plays.report()
    melody.assert_on_time()


class Melody:
    """A melody's notes judged over takes: each pitch, and each start after an earlier note's.

    :meth:`judge` takes what the ear heard of one take: each pitch where no
    mark (an xrun, a missed cycle) spliced the frames it is read from, and each
    start against an earlier one where no mark came near either
    (``calm.undisturbed_pairs``), in time as the ear heard them.
    """

    def __init__(self, notes: list[tuple[float, float, int]], rate: int) -> None:
        self.notes = notes
        self.rate = rate
        self.gaps: dict[int, tuple[int, float]] = {}  # note: (an earlier note, ms from its start to this one's)
        self.pitched: set[int] = set()

    @property
    def done(self) -> bool:
        return len(self.gaps) == len(self.notes) - 1 and len(self.pitched) == len(self.notes)

    def judge(
        self, x: np.ndarray, found: list[int], marks: list[int], time_of: Callable[[list[int]], list[int]]
    ) -> bool:
        """Judge a take (``found``: onsets' frames in ``x``; ``time_of``: ns for frames); True once all is judged."""
        rate = self.rate
        for k, ((_, _, note), at) in enumerate(zip(self.notes, found, strict=True)):
            read = slice(at + int(PITCH_READ[0] * rate), at + int(PITCH_READ[1] * rate))
            if k not in self.pitched and not any(read.start <= m <= read.stop + REPORT_DELAY_S * rate for m in marks):
                self.pitched.add(k)
                f = dominant_frequency(x[read], rate)
                assert f == pytest.approx(hz(note), rel=0.01), f"note {note}: heard {f:.1f} Hz"
        heard = time_of(found)
        for k, i in calm.undisturbed_pairs(found, marks, int(SETTLE_S * rate), int(REPORT_DELAY_S * rate)).items():
            self.gaps.setdefault(k, (i, (heard[k] - heard[i]) / 1e6))
        return self.done

    def assert_on_time(self, tolerance_ms: float = 1.0) -> None:
        """Every judged start the file's time after the earlier one's, within ``tolerance_ms``."""
        for k, (i, ms) in self.gaps.items():
            want = (self.notes[k][0] - self.notes[i][0]) * 1000
            why = f"note {self.notes[k][2]}: {ms:.3f} ms after note {self.notes[i][2]}, the file says {want:.3f}"
            assert abs(ms - want) <= tolerance_ms, why


def test_a_client_killed_mid_playback_leaves_no_sounding_note(daemon: Daemon, ear: Ear, tmp_path: Any) -> None:
    path = str(tmp_path / "held.mid")
    make_midi(path, [(0.0, 20.0, 57), (0.0, 20.0, 64), (0.0, 20.0, 69)])
    proc = daemon.mxfd("play", path)
    try:
        assert wait_until(lambda: rms_dbfs(ear.listen(0.1)) > -40, 10), "the chord never sounded"
    finally:
        proc.kill()
        proc.wait(5)
    assert wait_until(lambda: quiet(ear), 3), "notes still sound after the client was killed"
    assert wait_until(lambda: daemon.status()["synth"]["voices"] == 0, 3)
    assert wait_until(
        lambda: not [c for c in daemon.status()["clients"]["list"] if c["name"].startswith("mxfd-play")], 3
    )


# -- status ------------------------------------------------------------------------------------------


def test_status_fits_one_screen_naming_the_keyboard_and_what_each_client_plays(
    daemon: Daemon, keyboard: Keyboard, tmp_path: Any
) -> None:
    gone = Keyboard("test-kbd-unplugged")
    assert wait_until(lambda: _input(daemon.status(), gone.port_name).get("connected") is True, 10), daemon.log()
    gone.close()
    assert wait_until(lambda: _input(daemon.status(), gone.port_name).get("connected") is False, 10)
    song = str(tmp_path / "song.mid")
    make_midi(song, [(i * 0.5, 0.4, 60 + i % 12) for i in range(30)])
    player = daemon.mxfd("play", song)
    try:
        assert wait_until(lambda: any(c.get("file") == "song.mid" for c in daemon.status()["clients"]["list"]), 10)
        shown = daemon.mxfd("status")
        out, err = shown.communicate(timeout=30)
        full = daemon.mxfd("status", "--verbose")
        everything, _ = full.communicate(timeout=30)
    finally:
        player.send_signal(signal.SIGINT)
        player.communicate(timeout=10)
    assert shown.returncode == 0, err.decode()
    text = out.decode()
    lines = text.splitlines()
    assert len(lines) <= 24, text
    assert lines[0].startswith("state: running")
    assert re.match(r"audio: system \(JACK Audio Connection Kit\), 48000 Hz, period 128 \(2\.67 ms\), "
                    r"latency [\d.]+ ms$", lines[1]), text
    assert f"  {keyboard.port_name} (" in text and gone.port_name not in text  # unplugged keyboards are gone
    assert f"(pid {player.pid}): playing song.mid" in text
    assert "mxfd-status" not in text  # not its own connection
    assert re.search(r"^underruns: \d+.*; dropped: ", text, re.M), text
    assert "True" not in text and "False" not in text and "100ns" not in text
    # the whole report is there for who asks, still without Python's spelling or itself
    assert full.returncode == 0 and len(everything.decode().splitlines()) > 50
    assert b"render latency 100ns" in everything and b"True" not in everything and b"mxfd-status" not in everything


# -- record ------------------------------------------------------------------------------------------


RECORD_SCRIPT: list[tuple[float, list[int]]] = [
    (0.00, [0x90, 60, 100]), (0.15, [0x90, 64, 90]), (0.30, [0x80, 60, 0]),
    (0.42, [0xF0, 0x7D, 0x10, 0x20, 0x30, 0x40, 0xF7]), (0.55, [0x80, 64, 0]), (0.70, [0xB0, 64, 127]),
    (0.83, [0x90, 67, 80]), (1.10, [0x80, 67, 0]), (1.20, [0xB0, 64, 0]), (1.37, [0xE0, 0, 80]),
    (1.45, [0xE0, 0, 64]),
]  # fmt: skip


#: Where an xrun JACK reported (a little after it happened) may have touched a keyboard message
#: rtmidi took at time t: from t - BEFORE (the output's clock that stamps it is re-anchored a few
#: sync reports after an xrun) to t + AFTER (the message is played in the next cycle), seconds.
NEAR_XRUN_BEFORE_S = 0.1
NEAR_XRUN_AFTER_S = 0.06


Track = list[tuple[float, bytes]]


def _record_take(daemon: Daemon, ear: Ear, keyboard: Keyboard, out: str) -> tuple[list[float], Track]:
    """Play the script under ``mxfd record``: when each message was played, and the keyboard's track (s, bytes)."""
    rec = daemon.mxfd("record", "--seconds", "3", "--port", "^test-kbd", out)
    assert wait_until(lambda: any(c["subscribed"] for c in daemon.status()["clients"]["list"]), 10)
    # rtmidi's JACK output sends what it is given at the start of the next JACK cycle, so each
    # message is played (and stamped) at the first period boundary after rtmidi took it: that is
    # when it was played.  (Wall time, not frames/rate: a loaded dummy driver runs behind.)
    jack_client = ear.client
    period = jack_client.blocksize
    sent: list[float] = []
    t0 = time.monotonic()
    for at, msg in RECORD_SCRIPT:
        while time.monotonic() < t0 + at:
            time.sleep(0.0005)
        taken = keyboard.send(*msg)
        now, frame = time.monotonic(), jack_client.frame_time
        frame -= round((now - taken) * ear.rate)  # JACK's frame when rtmidi took it
        sent.append(taken + ((frame // period + 1) * period - frame) / ear.rate)
    _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err.decode()
    mid = mido.MidiFile(out)
    assert mid.ticks_per_beat >= 960
    tracks = {next(m.name for m in t if m.type == "track_name"): t for t in mid.tracks}
    assert set(tracks) == {"mxfd record", keyboard.port_name}
    got: list[tuple[float, bytes]] = []
    ticks = 0
    for m in tracks[keyboard.port_name]:
        ticks += m.time
        if not m.is_meta:
            got.append((ticks * 0.5 / RECORD_PPQN, bytes(m.bytes())))  # 120 bpm: a beat is half a second
    return sent, got


def _stamps(daemon: Daemon, source: str, since: float, until: float) -> dict[bytes, list[float]]:
    """The daemon's own stamps (master time, s) of what ``source`` played between ``since`` and ``until``."""
    with Client(daemon.socket) as c:
        caps = c.history(10)
    out: dict[bytes, list[float]] = {}
    for cap in caps:
        if cap.source != source:
            continue
        for pres, _g, _f, msg in decode_buffer(cap.data, cap.start_time):
            if since <= pres / SECOND <= until:
                out.setdefault(bytes(msg), []).append(pres / SECOND)
    return out


def test_record_writes_what_the_keyboard_played(daemon: Daemon, ear: Ear, keyboard: Keyboard, tmp_path: Any) -> None:
    # Across an xrun JACK itself loses and repeats MIDI events (a plain JACK reader of the keyboard sees
    # it too), and the output's clock that stamps them steps until it is re-anchored.  That is the
    # machine, not mxfd.  So each message is judged in a take where JACK reported no xrun near it: there
    # it must be in the file exactly once, in order, at the time it was played (± 3 ms, about a period).
    # A message an xrun came near is judged again in the next take, started once the server is quiet
    # (``tests.calm``: a starved host has given storms of hundreds of xruns a take for a minute; a
    # quiet machine judges everything in one or two).
    script = [bytes(m) for _, m in RECORD_SCRIPT]
    judged: set[int] = set()
    takes: list[str] = []
    for take in (records := calm.Takes(lambda: len(ear.xruns))):
        n0 = len(ear.xruns)
        sent, got = _record_take(daemon, ear, keyboard, str(tmp_path / f"take{take}.mid"))
        xruns = [t for _, t in ear.xruns[n0:]]
        assert all(m in script for _, m in got), f"recorded what was never played: {got}"
        near = [any(s - NEAR_XRUN_BEFORE_S <= x <= s + NEAR_XRUN_AFTER_S for x in xruns) for s in sent]
        clean = [i for i in range(len(script)) if not near[i]]
        found = {i: [t for t, m in got if m == script[i]] for i in clean}
        for i in clean:
            assert len(found[i]) == 1, f"{script[i].hex(' ')} recorded {len(found[i])} times: {got}"
        order = [script.index(m) for _, m in got if script.index(m) in found]
        assert order == clean, f"recorded out of order: {got}"
        # The daemon stamps each message at the time it was played (the cycle's first frame on the
        # output's clock), absolute on the master clock, so no offset is fitted: ± 3 ms, about a period,
        # for how well this test knows, from wall time, when a loaded dummy driver ran that cycle
        # (0.1 to 0.3 ms off on a quiet take, up to 2.5 ms measured on a loaded one).
        stamps = _stamps(daemon, keyboard.port_name, sent[0] - 0.5, sent[-1] + 0.5)
        for i in clean:
            assert len(stamps.get(script[i], [])) == 1, f"{script[i].hex(' ')} stamped {stamps.get(script[i])}"
            err_ms = (stamps[script[i]][0] - sent[i]) * 1000
            assert abs(err_ms) <= 3.0, f"{script[i].hex(' ')} stamped {err_ms:+.2f} ms off the cycle it was played in"
        # The file's tick 0 is its first event; from there every tick is the daemon's stamp, to the
        # nearest tick (0.26 ms at 1920 PPQN, 120 bpm): each difference is exact to one tick.
        if clean:
            k = clean[0]
            tick = 0.5 / RECORD_PPQN
            for i in clean:
                in_file = found[i][0] - found[k][0]
                stamped = stamps[script[i]][0] - stamps[script[k]][0]
                why = f"{script[i].hex(' ')} at {in_file:.6f} s in the file, stamped {stamped:.6f} s"
                assert abs(in_file - stamped) <= tick + 1e-9, why
        judged.update(clean)
        takes.append(f"take {take}: {len(xruns)} xrun reports, messages judged: {clean}")
        if len(judged) == len(script):
            break
    assert len(judged) == len(script), (
        "JACK reported xruns near some messages in every take:\n" + "\n".join(takes) + "\n" + records.report())


def test_record_last_saves_what_was_just_played(daemon: Daemon, keyboard: Keyboard, tmp_path: Any) -> None:
    since = time.monotonic()
    for note in (72, 74, 76):
        keyboard.note_on(note)
        time.sleep(0.05)  # the note's length: played, not waited for
        keyboard.note_off(note)
    # Ask once the daemon has the last note off in its history (the capture buffer completed).
    assert wait_until(lambda: b"\x80\x4c\x00" in _stamps(daemon, keyboard.port_name, since, since + 60), 5.0)
    out = str(tmp_path / "last.mid")
    proc = daemon.mxfd("record", "--last", "2", out)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    (track,) = [t for t in mido.MidiFile(out).tracks if t.name == keyboard.port_name]
    notes = [m.note for m in track if m.type == "note_on"]
    assert notes[-3:] == [72, 74, 76]


# -- bad input ------------------------------------------------------------------------------------------


def _raw(path: str) -> tuple[socket.socket, FrameDecoder]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(encode_control(make_hello("e2e-raw")))
    d = FrameDecoder()
    assert _read(s, d)["type"] == "welcome"
    return s, d


def _read(s: socket.socket, d: FrameDecoder) -> Any:
    """The next control message (or other event) from the daemon; None once it closed."""
    while True:
        ev = d.next_event()
        if ev is not NEED_DATA:
            return getattr(ev, "message", ev)
        data = s.recv(65536)
        if not data:
            return None
        d.receive_data(data)


def _idle_allocators(status: dict[str, Any]) -> bool:
    streams = list(status["render_streams"].values()) + list(status["capture_streams"].values())
    return all(s["allocator"]["in_use"] == 0 and s["allocator"]["buffers_in_use"] == 0 for s in streams)


def test_malformed_buffers_and_garbage_get_errors_while_the_keyboard_plays_on(
    daemon: Daemon, ear: Ear, keyboard: Keyboard
) -> None:
    start, good = encode_buffer([(time.monotonic_ns() // 100 + i * 1000, 1, bytes([0x90, 60, 1])) for i in range(4)])
    malformed = {
        "truncated": good[:-12],
        "misaligned": good[:23] + good[24:],
        "bogus size": struct.pack("<I", 0xFFFF) + good[4:],
        "zero size": struct.pack("<I", 0) + good[4:],
    }
    keyboard.send(0xC0, 19)  # church organ: a held note keeps its level (a piano's would decay)
    keyboard.note_on(81)
    try:
        assert wait_until(lambda: rms_dbfs(ear.listen(0.1)) > -40, 5)
        before = rms_dbfs(ear.listen(0.3))
        s, d = _raw(daemon.socket)
        for n, (how, data) in enumerate(malformed.items(), 1):
            s.sendall(encode_buffer_frame(0, data))
            err = _read(s, d)
            assert err["type"] == "error" and err["code"] == "bad-buffer", how
            assert err["buffer"] == n and isinstance(err["offset"], int) and err["reason"], how
        # oversize: over the 1 MiB limit, skipped whole; the connection goes on
        size = (1 << 20) + 800
        s.sendall(struct.pack("<2sBBII", b"MX", ord("B"), 0, 0, 8 + size) + bytes(8 + size))
        err = _read(s, d)
        assert err["code"] == "bad-buffer" and "exceeds" in err["reason"]
        s.sendall(encode_control({"type": "sync", "id": 9}))
        assert _read(s, d)["bad_buffers"] == 5
        # garbage: an error, then the connection is closed
        s.sendall(b"\x00garbage\xff" * 20)
        err = _read(s, d)
        assert err["code"] == "garbage" and err["fatal"]
        assert _read(s, d) is None
        s.close()
        # the keyboard was heard all along, unchanged
        x = ear.listen(0.3)
        assert dominant_frequency(x, ear.rate) == pytest.approx(hz(81), rel=0.01)
        assert rms_dbfs(x) == pytest.approx(before, abs=3.0)
    finally:
        keyboard.note_off(81)
        keyboard.send(0xC0, 0)
    assert wait_until(lambda: _idle_allocators(daemon.status()), 5), daemon.status()["render_streams"]


def test_200_mutated_frames_leave_the_daemon_serving_silent_and_the_keyboard_heard(
    daemon: Daemon, ear: Ear, keyboard: Keyboard
) -> None:
    """A seeded mutator's frames, over a few connections: each gets its answer by the rules
    (tests/client/fuzzing.py), and afterwards the daemon is as it was."""
    assert daemon.proc is not None
    pid = daemon.proc.pid
    watcher = Client(daemon.socket, name="e2e-fuzz-watch")  # one connection throughout: the baselines count it
    try:
        # nobody else connected (the last test's clients closed), so descriptors are at rest
        assert wait_until(lambda: watcher.status()["clients"]["connected"] == 1, 5), watcher.status()["clients"]
        before = watcher.status()
        fds0, threads0, _ = _proc_counts(pid)
        with open(daemon.log_path, "rb") as f:
            log_from = len(f.read())
        now, _ = watcher.time()
        seeds = seed_frames(now)
        rng = random.Random(1212)
        pieces = random.Random(34)  # each case sent in up to four parts
        outcomes: dict[str, int] = {}
        frames = connections = 0
        while frames < 200:
            cases = []
            while len(cases) < 50 and frames + len(cases) < 200:  # a case that ends the connection comes last
                cases.append(classify(mutated_frame(seeds, rng)))
                if cases[-1].ends_session:
                    break
            for a in run_session(daemon.socket, cases, split=pieces):
                outcomes[a.outcome] = outcomes.get(a.outcome, 0) + 1
            frames += len(cases)
            connections += 1
        assert {"bad-request", "bad-buffer", "taken", "garbage"} <= set(outcomes), outcomes
        assert 4 <= connections <= 20, connections
        # every fuzzing connection is gone, its stream closed and its notes released
        assert wait_until(lambda: watcher.status()["clients"]["connected"] == 1, 5), watcher.status()["clients"]
        assert wait_until(lambda: _idle_allocators(watcher.status()), 5), watcher.status()["render_streams"]
        assert wait_until(lambda: quiet(ear), 5), "the fuzzers' notes still sound after their connections closed"
        after = daemon.status()  # a fresh client's status answers
        assert after["state"] == "running"
        assert after["clients"]["internal_errors"] == before["clients"]["internal_errors"]
        # a keyboard still plays
        keyboard.send(0xC0, 19)  # church organ: a held note keeps its level
        keyboard.note_on(81)
        try:
            assert wait_until(lambda: rms_dbfs(ear.listen(0.1)) > -40, 5)
            assert dominant_frequency(ear.listen(0.3), ear.rate) == pytest.approx(hz(81), rel=0.01)
        finally:
            keyboard.note_off(81)
            keyboard.send(0xC0, 0)
        # no descriptor or thread left behind
        assert wait_until(lambda: watcher.status()["clients"]["connected"] == 1, 5)
        assert wait_until(lambda: _proc_counts(pid)[:2] == (fds0, threads0), 5), (_proc_counts(pid), fds0, threads0)
    finally:
        watcher.close()
    # the daemon said a few short lines per connection, no traceback
    with open(daemon.log_path, "rb") as f:
        lines = f.read()[log_from:].decode(errors="replace").splitlines()
    assert not [line for line in lines if "Traceback" in line or " ERROR " in line], lines[-20:]
    # the server's own: connected, disconnected, garbage, events returned, pool full, a burst of bad input
    server_lines = [line for line in lines if "mxfd.client.server:" in line]
    assert len(server_lines) <= connections * (LOG_BURST + 5), server_lines
    # the engine's: each client stream opened and closed (one per connection and per stop), and each
    # panic (an operator's action, logged every time)
    streams = connections + outcomes.get("stopped", 0)
    assert len(lines) - len(server_lines) <= 2 * streams + outcomes.get("panicked", 0) + 2, lines
    assert max(map(len, lines), default=0) < 500


# -- the socket's owner --------------------------------------------------------------------------------


def test_the_socket_refuses_another_user(daemon: Daemon) -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                Client(daemon.socket, timeout=3.0)
                code = 1
            except ClientError as e:
                code = 0 if "permission denied" in str(e) else 2
        finally:
            os._exit(code)
    _, st = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(st) == 0
    with Client(daemon.socket) as c:  # its owner still gets in
        assert c.time()


# -- many clients -----------------------------------------------------------------------------------------


def test_twenty_clients_and_the_keyboard_lose_no_event(daemon: Daemon, keyboard: Keyboard) -> None:
    before = daemon.status()
    applied0 = before["synth"]["events_applied"]
    kbd0 = _input(before, keyboard.port_name)["events"]
    per_client = 400
    results: dict[int, dict[str, Any]] = {}
    failures: list[BaseException] = []
    ready = threading.Barrier(21)

    def stream(k: int) -> None:
        try:
            with Client(daemon.socket, name=f"e2e-many-{k}") as c:
                now, latency = c.time()
                t0 = now + latency + SECOND // 5
                ready.wait(10)
                for b in range(0, per_client, 20):  # 20 events a buffer, 10 ms apart: 2 s of notes
                    recs = [(t0 + (b + i) * 50_000, 1, bytes([(0x90 if (b + i) % 2 == 0 else 0x80) | k % 16,
                                                                48 + k, 64])) for i in range(20)]
                    c.play(recs)
                    time.sleep(0.05)
                results[k] = c.sync()
                while c.sync()["pending"]:
                    time.sleep(0.05)
                time.sleep(0.1)
        except BaseException as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    ready.wait(10)
    played = 0
    for i in range(30):
        keyboard.note_on(60 + i % 12, 70)
        time.sleep(0.03)
        keyboard.note_off(60 + i % 12)
        time.sleep(0.03)
        played += 2
    for t in threads:
        t.join(60)
    assert not failures, failures
    assert all(r["events"] == per_client and r["bad_buffers"] == 0 for r in results.values()), results

    def counts() -> tuple[int, int, int, int]:
        st = daemon.status()
        kbd_in = _input(st, keyboard.port_name)["events"] - kbd0
        clients_in = sum(r["events"] for r in results.values())
        return kbd_in, clients_in, st["synth"]["events_pending"], st["synth"]["events_applied"] - applied0

    def balanced() -> bool:
        kbd_in, clients_in, pending, rendered = counts()
        return pending == 0 and rendered == kbd_in + clients_in

    assert wait_until(balanced, 10), f"(keyboard in, clients in, pending, rendered) = {counts()}"
    kbd_in = counts()[0]
    after = daemon.status()
    assert after["events"]["dropped"] == before["events"]["dropped"]
    # what JACK delivered: a keyboard event can only miss the daemon if JACK skipped its cycle (an xrun)
    xruns = after["audio"].get("xruns", 0) - before["audio"].get("xruns", 0)
    assert kbd_in == played or xruns > 0, f"the daemon took {kbd_in} of {played} keyboard events without an xrun"


def _proc_counts(pid: int) -> tuple[int, int, int]:
    """(open descriptors, threads, RSS in KiB) of process ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return len(os.listdir(f"/proc/{pid}/fd")), len(os.listdir(f"/proc/{pid}/task")), rss


def test_1000_idle_and_100_dripping_connections_leave_status_quick_and_the_keyboard_heard(
    daemon: Daemon, ear: Ear, keyboard: Keyboard
) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    assert daemon.proc is not None
    pid = daemon.proc.pid
    fds0, threads0, rss0 = _proc_counts(pid)
    connected0 = daemon.status()["clients"]["connected"] - 1  # not counting that status client itself
    hello = encode_control(make_hello("e2e-idle"))
    idle: list[socket.socket] = []
    drippers: list[socket.socket] = []
    stop = threading.Event()
    drip_hello = encode_control(make_hello("e2e-drip"))

    def drip() -> None:  # one byte a second each: the 10 s hello deadline outlasts this test's measurements
        for i in range(1, len(drip_hello) - 1):
            for s in drippers:
                try:
                    s.send(drip_hello[i : i + 1])
                except OSError:
                    pass  # closed by the daemon's hello deadline
            if stop.wait(1.0):
                return

    dripper = threading.Thread(target=drip)
    keyboard.send(0xC0, 19)  # church organ: a held note keeps its level
    try:
        for _ in range(1000):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.socket)
            s.sendall(hello)
            idle.append(s)
        for s in idle:
            s.settimeout(10.0)
            assert b"welcome" in s.recv(4096)
        for _ in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(daemon.socket)
            s.send(drip_hello[:1])
            drippers.append(s)
        dripper.start()
        assert wait_until(lambda: daemon.status()["clients"]["connected"] - 1 == connected0 + 1100, 10)
        assert _proc_counts(pid)[1] == threads0  # no thread per connection
        times = []
        for _ in range(10):
            t0 = time.perf_counter()
            with Client(daemon.socket, name="e2e-status") as c:
                c.status()
            times.append(time.perf_counter() - t0)
        assert max(times) < 0.1, f"connect + status took {[round(t * 1000, 1) for t in times]} ms"
        keyboard.note_on(81)
        try:
            assert wait_until(lambda: rms_dbfs(ear.listen(0.1)) > -40, 2)
            assert dominant_frequency(ear.listen(0.3), ear.rate) == pytest.approx(hz(81), rel=0.01)
        finally:
            keyboard.note_off(81)
    finally:
        stop.set()
        if dripper.is_alive():
            dripper.join()
        for s in idle + drippers:
            s.close()
        keyboard.send(0xC0, 0)
    assert wait_until(lambda: daemon.status()["clients"]["connected"] - 1 == connected0, 10)
    # fds0 may count the status connection the daemon was closing as it was read: back to it or below it,
    # where 1100 connections that did not all close would leave hundreds more.
    assert wait_until(lambda: _proc_counts(pid)[0] <= fds0, 5), (_proc_counts(pid), fds0)
    fds, threads, rss = _proc_counts(pid)
    assert threads == threads0
    assert rss - rss0 < 16 * 1024, f"RSS {rss0} KiB before, {rss} KiB after"
