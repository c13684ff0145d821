"""``mxfd play``, ``mxfd record``, ``mxfd status`` against the socket server on the real core."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterator, Sequence

import mido
import pytest

from mxfd.cli import build_parser
from mxfd.client import commands
from mxfd.client.commands import RECORD_PPQN, Recording, format_status, load_midi
from mxfd.client.server import Server, ServerConfig, start_server
from mxfd.core.clock import master_time
from mxfd.core.wire import encode_buffer
from tests.client.helpers import CoreEngine, Ticking, socket_dir, wait_for

SECOND = 10_000_000


@pytest.fixture
def live() -> Iterator[tuple[CoreEngine, Server]]:
    """A server on an engine that runs on the real master clock, releasing events every millisecond."""
    engine = CoreEngine(clock=master_time)
    with socket_dir() as d, start_server(engine, ServerConfig(socket=os.path.join(d, "s"))) as server:
        with Ticking(engine):
            yield engine, server


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def make_file(
    path: str, notes: list[tuple[int, int, int]], tempos: Sequence[tuple[int, int]] = (), ppqn: int = 480
) -> None:
    """A type 1 file: ``notes`` as (tick, note, length in ticks), tempo changes as (tick, µs per beat)."""
    mid = mido.MidiFile(type=1, ticks_per_beat=ppqn)
    meta = mido.MidiTrack()
    msgs: list[tuple[int, Any]] = [(t, mido.MetaMessage("set_tempo", tempo=v)) for t, v in tempos]
    prev = 0
    for t, m in sorted(msgs, key=lambda x: x[0]):
        meta.append(m.copy(time=t - prev))
        prev = t
    mid.tracks.append(meta)
    track = mido.MidiTrack()
    evs: list[tuple[int, Any]] = []
    for tick, note, length in notes:
        evs.append((tick, mido.Message("note_on", note=note, velocity=100)))
        evs.append((tick + length, mido.Message("note_off", note=note)))
    prev = 0
    for t, m in sorted(evs, key=lambda x: x[0]):
        track.append(m.copy(time=t - prev))
        prev = t
    mid.tracks.append(track)
    mid.save(path)


# -- play ----------------------------------------------------------------------------------


def test_load_midi_honours_tempo_changes(tmp_path: Any) -> None:
    path = str(tmp_path / "t.mid")
    # 480 ticks a beat; 120 bpm for the first beat, then 60 bpm
    make_file(path, [(0, 60, 240), (480, 62, 240), (960, 64, 240)], tempos=[(0, 500_000), (480, 1_000_000)])
    events, _ = load_midi(path)
    ons = [t for t, m in events if m[0] == 0x90]
    assert ons == pytest.approx([0.0, 0.5, 1.5])


def test_play_sends_the_file_at_its_own_times(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    path = str(tmp_path / "p.mid")
    make_file(path, [(0, 60, 96), (240, 64, 96), (480, 67, 96), (1000, 72, 40)])
    assert commands.main(args("play", "--socket", server.path, path)) == 0
    played = [(t, m) for _, t, _, m in engine.rendered.events]
    want, _ = load_midi(path)
    assert [m for _, m in played] == [m for _, m in want]
    first = played[0][0]
    assert [t - first for t, _ in played] == [round(s * SECOND) for s, _ in want]
    assert all(s.allocator.is_idle() for s in engine.streams)


def test_play_streams_ahead_by_a_bounded_look_ahead(
    live: tuple[CoreEngine, Server], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, server = live
    monkeypatch.setattr(commands, "LOOKAHEAD", 0.2)
    path = str(tmp_path / "long.mid")
    make_file(path, [(i * 96, 60 + i % 12, 48) for i in range(20)])  # 20 notes, 0.1 s apart
    most = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal most
        while not done.is_set():
            for s in list(engine.streams):
                most = max(most, s.pending())
            time.sleep(0.002)

    w = threading.Thread(target=watch)
    w.start()
    try:
        assert commands.main(args("play", "--socket", server.path, path)) == 0
    finally:
        done.set()
        w.join()
    assert len(engine.rendered.events) == 40
    assert 0 < most <= 12  # ~0.2 s + one top-up of notes ahead, never the whole file


def test_play_of_a_missing_file_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(args("play", "--socket", "/nonexistent/s", "/nonexistent.mid")) == 2
    assert "cannot read /nonexistent.mid" in capsys.readouterr().err


def test_a_command_without_a_daemon_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(args("status", "--socket", "/nonexistent/mxfd.sock")) == 1
    assert "is `mxfd run` running?" in capsys.readouterr().err


def mxfd_command(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "mxfd", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_ctrl_c_stops_play_and_releases_its_notes(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    path = str(tmp_path / "long.mid")
    make_file(path, [(i * 480, 60, 470) for i in range(40)])  # 40 notes, half a second each
    proc = mxfd_command("play", "--socket", server.path, path)
    assert wait_for(lambda: len(engine.rendered.events) >= 2, 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 130 and b"all notes off" in err
    assert engine.closed_streams and engine.closed_streams[0].released_on_close > 0
    assert len(engine.rendered.events) < 80
    assert all(s.allocator.is_idle() for s in engine.streams)


# -- record --------------------------------------------------------------------------------


def test_a_recording_keeps_order_timing_and_sysex_one_track_per_source(tmp_path: Any) -> None:
    rec = Recording()
    t0 = 5 * SECOND
    a = [(t0, 1, bytes([0x90, 60, 100])), (t0 + 2_500_000, 1, bytes([0x80, 60, 0]))]
    rec.add("kbd:out", *encode_buffer(a))
    sysex = bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7])
    rec.add("kbd:out", *encode_buffer([(t0 + 3_000_000, 1, sysex), (t0 + 3_000_000, 1, bytes([0xF8]))]))
    rec.add("pad:out", *encode_buffer([(t0 + 1_000_000, 1, bytes([0x99, 36, 90]))]))
    path = str(tmp_path / "r.mid")
    rec.write(path)
    mid = mido.MidiFile(path)
    assert mid.type == 1 and mid.ticks_per_beat == RECORD_PPQN >= 960
    names = [next(m.name for m in t if m.type == "track_name") for t in mid.tracks]
    assert names == ["mxfd record", "kbd:out", "pad:out"]
    kbd = [(m, t) for m, t in _absolute(mid.tracks[1])]
    assert [m.type for m, _ in kbd] == ["note_on", "note_off", "sysex"]
    assert [m.data for m, _ in kbd if m.type == "sysex"] == [tuple(sysex[1:-1])]
    secs = [t * 0.5 / RECORD_PPQN for _, t in kbd]  # 120 bpm: a beat is 0.5 s
    assert secs == pytest.approx([0.0, 0.25, 0.3], abs=0.0003)
    assert [t * 0.5 / RECORD_PPQN for _, t in _absolute(mid.tracks[2])] == pytest.approx([0.1], abs=0.0003)
    assert rec.skipped == {"real-time (clock, active sensing...)": 1}


def test_a_sysex_in_chunks_is_reassembled(tmp_path: Any) -> None:
    rec = Recording()
    body = bytes(range(1, 120)) * 100
    whole = b"\xf0" + body + b"\xf7"
    chunks = [whole[i : i + 4096] for i in range(0, len(whole), 4096)]
    rec.add("kbd", *encode_buffer([(SECOND, 1, c) for c in chunks]))
    path = str(tmp_path / "s.mid")
    rec.write(path)
    (msg,) = [m for m in mido.MidiFile(path).tracks[1] if m.type == "sysex"]
    assert bytes(msg.data) == body


def test_a_malformed_message_is_left_out_and_counted_and_the_file_is_written(tmp_path: Any) -> None:
    # a misbehaving device's data byte with bit 7 set has no place in a standard MIDI file
    rec = Recording()
    good = bytes([0x90, 60, 100])
    rec.add("kbd", *encode_buffer([(SECOND, 1, bytes([0x90, 0x80, 0x10])), (SECOND + 1000, 1, good)]))
    rec.add("kbd", *encode_buffer([(SECOND + 2000, 1, bytes([0xF0, 0x01, 0x90, 0xF7]))]))
    path = str(tmp_path / "m.mid")
    rec.write(path)
    assert [bytes(m.bytes()) for m, _ in _absolute(mido.MidiFile(path).tracks[1])] == [good]
    assert rec.skipped == {
        "malformed (a data byte with bit 7 set)": 1,
        "malformed SysEx (a byte with bit 7 set inside)": 1,
    }


def _absolute(track: Any) -> Iterator[tuple[Any, int]]:
    t = 0
    for m in track:
        t += m.time
        if not m.is_meta:
            yield m, t


def test_record_writes_what_the_inputs_play(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    out = str(tmp_path / "rec.mid")

    def keyboard() -> None:
        assert wait_for(lambda: bool(engine.subscriptions))
        t = master_time()
        for i in range(4):
            engine.capture("test-kbd:out", *encode_buffer([(t + i * 1_000_000, 1, bytes([0x90, 60 + i, 100]))]))
        engine.capture("other:out", *encode_buffer([(t, 1, bytes([0x90, 1, 1]))]))

    kb = threading.Thread(target=keyboard)
    kb.start()
    assert commands.main(args("record", "--socket", server.path, "--seconds", "0.5", "--port", "kbd", out)) == 0
    kb.join()
    mid = mido.MidiFile(out)
    assert len(mid.tracks) == 2
    got = list(_absolute(mid.tracks[1]))
    assert [m.note for m, _ in got] == [60, 61, 62, 63]
    assert [round(t * 0.5 / RECORD_PPQN, 3) for _, t in got] == [0.0, 0.1, 0.2, 0.3]


def test_ctrl_c_finishes_the_recording_properly(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    # The recorder asks the daemon's time (hello, then "time" after subscribing) just before it
    # installs its Ctrl-C handler; a session thread reading the engine's clock shows each request.
    asked: list[str] = []
    clock = engine.clock

    def watched_clock() -> int:
        if threading.current_thread().name.startswith("mxfd-client-"):
            asked.append(threading.current_thread().name)
        return clock()

    engine.clock = watched_clock
    out = str(tmp_path / "cut.mid")
    proc = mxfd_command("record", "--socket", server.path, out)
    assert wait_for(lambda: bool(engine.subscriptions) and len(asked) >= 2, 10)
    t = master_time()
    played = [(t, 1, bytes([0x90, 60, 100])), (t + SECOND // 10, 1, bytes([0x80, 60, 0]))]
    engine.capture("kbd:out", *encode_buffer(played))
    # Stop once the buffer is on its way to the recorder and the note off's time has passed
    # (the recording ends at the daemon's time when Ctrl-C comes).
    assert wait_for(lambda: sum(s.capture_sent for s in server.sessions) >= 1 and master_time() > t + SECOND // 10)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert not os.path.exists(out + ".part")
    got = list(_absolute(mido.MidiFile(out).tracks[1]))
    assert [m.type for m, _ in got] == ["note_on", "note_off"]


def test_record_last_saves_the_history_ring(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    t = master_time() - 30 * SECOND
    played = [(t, 1, bytes([0x90, 60, 100])), (t + SECOND, 1, bytes([0x80, 60, 0]))]
    engine.capture("test-kbd:out", *encode_buffer(played))
    out = str(tmp_path / "last.mid")
    assert commands.main(args("record", "--socket", server.path, "--last", "120", out)) == 0
    got = list(_absolute(mido.MidiFile(out).tracks[1]))
    assert [(m.type, round(t * 0.5 / RECORD_PPQN, 3)) for m, t in got] == [("note_on", 0.0), ("note_off", 1.0)]


# -- status --------------------------------------------------------------------------------


def test_status_json_is_the_daemons_report(live: tuple[CoreEngine, Server], capsys: pytest.CaptureFixture[str]) -> None:
    _, server = live
    assert commands.main(args("status", "--socket", server.path, "--json")) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["state"] == "running" and st["clients"]["connected"] == 1


def test_status_text_puts_the_state_first_and_shows_every_part() -> None:
    text = format_status(
        {
            "clients": {"connected": 1, "list": [{"name": "mxfd-play-3", "events": 10}]},
            "state": "degraded",
            "audio": {"device": "jack", "rate": 48000, "period": 128, "underruns": 0},
        }
    )
    lines = text.splitlines()
    assert lines[0] == "state: degraded"
    assert "audio: device jack, rate 48000, period 128, underruns 0" in lines
    assert any("mxfd-play-3: events 10" in line for line in lines)
