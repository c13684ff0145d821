"""``mxfd play``, ``mxfd record``, ``mxfd status``, ``mxfd panic`` against the socket server on the real core."""

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
import numpy as np
import pytest

from mxfd.cli import build_parser
from mxfd.client import Client, commands
from mxfd.client.commands import RECORD_PPQN, Recording, format_status, format_status_full
from mxfd.client.server import Server, ServerConfig, start_server
from mxfd.core.clock import master_time
from mxfd.core.event import EVENT_COMPLETE
from mxfd.core.wire import encode_buffer
from mxfd.daemon.config import loads
from mxfd.daemon.engine import Engine
from mxfd.midifile import read_midi_file
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


def test_play_reads_the_file_honouring_tempo_changes(tmp_path: Any) -> None:
    path = str(tmp_path / "t.mid")
    # 480 ticks a beat; 120 bpm for the first beat, then 60 bpm
    make_file(path, [(0, 60, 240), (480, 62, 240), (960, 64, 240)], tempos=[(0, 500_000), (480, 1_000_000)])
    ons = [t for t, _, m in read_midi_file(path).records if m[0] == 0x90]
    assert ons == [0, SECOND // 2, 3 * SECOND // 2]


def test_play_sends_the_file_at_its_own_times(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    path = str(tmp_path / "p.mid")
    make_file(path, [(0, 60, 96), (240, 64, 96), (480, 67, 96), (1000, 72, 40)])
    assert commands.main(args("play", "--socket", server.path, path)) == 0
    played = [(t, m) for _, t, _, m in engine.rendered.events]
    want = read_midi_file(path).records
    assert [m for _, m in played] == [m for _, _, m in want]
    first = played[0][0]
    assert [t - first for t, _ in played] == [t for t, _, _ in want]
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


def test_play_sends_a_sysex_longer_than_a_record_in_chunks(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    sysex = bytes([0xF0, 0x7E, 0x7F] + [i % 128 for i in range(70_000)] + [0xF7])
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=100), mido.Message.from_bytes(sysex, time=48),
        mido.Message("note_off", note=60, time=48),
    ]))
    path = str(tmp_path / "sysex.mid")
    mid.save(path)
    assert commands.main(args("play", "--socket", server.path, path)) == 0
    played = [(t, m) for _, t, _, m in engine.rendered.events]
    assert [m for _, m in played if m[0] in (0x90, 0x80)] == [b"\x90\x3c\x64", b"\x80\x3c\x40"]
    chunks = [(t, m) for t, m in played if m[0] not in (0x90, 0x80)]
    assert b"".join(m for _, m in chunks) == sysex and len(chunks) > 1
    assert len({t for t, _ in chunks}) == 1  # every chunk at the F0's time, as the synth expects
    assert played[0][0] + SECOND // 20 == chunks[0][0]


def test_play_keeps_smpte_time(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    mid = mido.MidiFile(type=0, ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([
        mido.Message("note_on", note=60, velocity=100), mido.Message("note_off", note=60, time=150),
        mido.Message("note_on", note=62, velocity=100, time=50), mido.Message("note_off", note=62, time=100),
    ]))
    path = tmp_path / "smpte.mid"
    mid.save(path)
    data = bytearray(path.read_bytes())
    data[12:14] = bytes([256 - 25, 40])  # SMPTE: 25 frames per second, 40 ticks per frame = 1 ms a tick
    path.write_bytes(bytes(data))
    assert commands.main(args("play", "--socket", server.path, str(path))) == 0
    times = [t for _, t, _, _ in engine.rendered.events]
    assert [t - times[0] for t in times] == [0, SECOND * 15 // 100, SECOND * 20 // 100, SECOND * 30 // 100]


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
    # 40 notes a quarter of a second apart, half a second each: events are due every 0.25 s, closer
    # than the look-ahead, so whenever Ctrl-C comes some are queued and notes sound
    make_file(path, [(i * 240, 60 + i % 2, 470) for i in range(40)])
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
    # installs its Ctrl-C handler; the server loop reading the engine's clock shows each request.
    asked: list[str] = []
    clock = engine.clock

    def watched_clock() -> int:
        if threading.current_thread().name == "mxfd-clients":  # the server's event loop
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


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--seconds", "1", "/no/such/dir/out.mid"], "no directory /no/such/dir to write out.mid in"),
        (["--last", "10", "/no/such/dir/out.mid"], "no directory /no/such/dir to write out.mid in"),
        (["--seconds", "1", "{tmp}/"], "is a directory; name a file in it"),
        (["--seconds", "1", "{tmp}"], "is a directory; name a file in it"),
    ],
)
def test_record_checks_its_output_path_before_it_records(
    live: tuple[CoreEngine, Server], tmp_path: Any, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    # a take recorded into a path that cannot be written is a take lost: refuse before it starts
    engine, server = live
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert commands.main(args("record", "--socket", server.path, *argv)) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.splitlines()) == 1, err
    assert server.accepted == 0 and not engine.subscriptions  # nothing was recorded


def test_a_take_whose_file_cannot_be_written_goes_to_a_fallback_file_and_says_where(
    live: tuple[CoreEngine, Server], tmp_path: Any, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engine, server = live
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    folder = tmp_path / "takes"
    folder.mkdir()
    out = str(folder / "take.mid")

    def keyboard_then_the_folder_goes() -> None:
        assert wait_for(lambda: bool(engine.subscriptions))
        engine.capture("kbd:out", *encode_buffer([(master_time(), 1, bytes([0x90, 60, 100]))]))
        folder.rmdir()  # the path was fine when the recording started

    kb = threading.Thread(target=keyboard_then_the_folder_goes)
    kb.start()
    assert commands.main(args("record", "--socket", server.path, "--seconds", "0.5", out)) == 1
    kb.join()
    err = capsys.readouterr().err
    (saved,) = runtime.glob("mxfd-record-*.mid")
    assert f"cannot write {out}" in err and f"the take is saved in {saved} instead" in err
    assert [m.note for m, _ in _absolute(mido.MidiFile(str(saved)).tracks[1])] == [60]
    assert "Traceback" not in err


def test_record_writes_the_tempo_and_resolution_asked_for(live: tuple[CoreEngine, Server], tmp_path: Any) -> None:
    engine, server = live
    t = master_time() - 10 * SECOND
    played = [(t, 1, bytes([0x90, 60, 100])), (t + SECOND, 1, bytes([0x80, 60, 0]))]
    engine.capture("kbd:out", *encode_buffer(played))
    out = str(tmp_path / "slow.mid")
    argv = ("record", "--socket", server.path, "--last", "60", "--bpm", "90", "--ppq", "96", out)
    assert commands.main(args(*argv)) == 0
    mid = mido.MidiFile(out)
    assert mid.ticks_per_beat == 96
    assert [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"] == [666_667]
    # one second at 90 bpm is 1.5 beats: 144 ticks of 96 a beat
    assert [(m.type, t) for m, t in _absolute(mid.tracks[1])] == [("note_on", 0), ("note_off", 144)]


# -- finding the daemon --------------------------------------------------------------------


def test_client_commands_find_the_socket_in_the_config(
    live: tuple[CoreEngine, Server], tmp_path: Any, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, server = live
    cfg = tmp_path / "mxfd.toml"
    cfg.write_text(f'[client]\nsocket = "{server.path}"\n')
    assert commands.main(args("status", "--config", str(cfg), "--json")) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "running"
    # and the default config file, where the daemon reads it too
    (tmp_path / "mxfd").mkdir()
    cfg.rename(tmp_path / "mxfd" / "mxfd.toml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert commands.main(args("status", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "running"


def test_a_bad_client_config_is_one_line_and_exit_2(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[client]\nsocket = 5\n")
    assert commands.main(args("status", "--config", str(cfg))) == 2
    err = capsys.readouterr().err
    assert err.startswith("mxfd status: config error:") and "socket" in err and len(err.splitlines()) == 1


# -- play into silence ---------------------------------------------------------------------


def test_play_refuses_when_nothing_would_be_heard_unless_forced(
    live: tuple[CoreEngine, Server], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, server = live
    engine.register_status("audio", lambda: {"state": "degraded", "message": "audio output device 'nosuch': ..."})
    path = str(tmp_path / "p.mid")
    make_file(path, [(0, 60, 96)])
    assert commands.main(args("play", "--socket", server.path, path)) == 3
    err = capsys.readouterr().err
    assert "nothing would be heard" in err and "degraded" in err and "nosuch" in err and "--force" in err
    assert not engine.streams and not engine.rendered.events
    assert commands.main(args("play", "--socket", server.path, "--force", path)) == 0
    assert "nothing will be heard" in capsys.readouterr().err
    assert len(engine.rendered.events) == 2


# -- status --------------------------------------------------------------------------------


def test_status_json_is_the_daemons_report(live: tuple[CoreEngine, Server], capsys: pytest.CaptureFixture[str]) -> None:
    _, server = live
    assert commands.main(args("status", "--socket", server.path, "--json")) == 0
    st = json.loads(capsys.readouterr().out)
    assert st["state"] == "running" and st["clients"]["connected"] == 1


class Pin:
    """The audio pin's part for a real engine: renders a block every period on the real clock."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        e = self.engine
        out = np.zeros((e.period, 2), dtype=np.float32)
        e.on_sync(master_time(), 0)
        position = 0
        while not self.done.wait(e.period / e.rate):
            e.render(out, position)
            position += e.period

    def __enter__(self) -> "Pin":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()


def test_panic_silences_every_stream_of_the_daemon_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    engine = Engine(loads('[synth]\nsoundfont = "builtin"'))  # voices counted as the built-in bank starts them
    with socket_dir() as d, start_server(engine, ServerConfig(socket=os.path.join(d, "s"))) as server, Pin(engine):
        kbd = engine.open_capture("kbd:out")
        now = master_time()
        for i, message in enumerate((bytes([0xC0, 19]), bytes([0x90, 60, 100]))):
            kbd.capture(message, 0, len(message), now + i, EVENT_COMPLETE)
        kbd.flush()
        with Client(server.path, name="player") as player:  # another client's held note
            t, latency = player.time()
            player.play([(t + latency, 1, bytes([0xC1, 19])), (t + latency + 1, 1, bytes([0x91, 64, 100]))])
            player.sync()
            assert wait_for(lambda: engine.synth.stats()["notes_sounding"] == 2, 2.0)
            voices = engine.synth.stats()["voices"]  # the organ's notes sound on two layers each
            assert commands.main(args("panic", "--socket", server.path)) == 0
            assert capsys.readouterr().out == f"all notes and sound off ({voices} voice(s) were sounding)\n"
            assert wait_for(lambda: engine.synth.stats()["voices"] == 0, 1.0)
            with Client(server.path) as c:
                assert c.status()["panics"] == 1


def test_panic_without_a_daemon_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert commands.main(args("panic", "--socket", "/nonexistent/mxfd.sock")) == 1
    err = capsys.readouterr().err
    assert err.startswith("mxfd panic: ") and len(err.splitlines()) == 1


def test_status_verbose_puts_the_state_first_and_shows_every_part() -> None:
    text = format_status_full(
        {
            "clients": {"connected": 2, "list": [{"id": 3, "name": "mxfd-play-3", "events": 10},
                                                 {"id": 4, "name": "mxfd-status-4", "events": 0}]},
            "state": "degraded",
            "audio": {"device": "jack", "rate": 48000, "period": 128, "underruns": 0, "primed": True},
        },
        own_id=4,
    )
    lines = text.splitlines()
    assert lines[0] == "state: degraded"
    assert "audio: device jack, rate 48000, period 128, underruns 0, primed yes" in lines
    assert any("mxfd-play-3: id 3, events 10" in line for line in lines)
    assert "mxfd-status" not in text and "connected: 1" in text  # not its own connection


def test_status_shows_what_each_client_plays_and_not_itself(
    live: tuple[CoreEngine, Server], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    engine, server = live
    path = str(tmp_path / "song.mid")
    make_file(path, [(i * 480, 60, 470) for i in range(40)])  # 20 s
    proc = mxfd_command("play", "--socket", server.path, path)
    try:
        assert wait_for(lambda: len(engine.rendered.events) >= 1, 10)
        assert commands.main(args("status", "--socket", server.path)) == 0
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    text = capsys.readouterr().out
    assert f"mxfd-play-1 (pid {proc.pid}): playing song.mid" in text, text
    assert "mxfd-status" not in text and "True" not in text


def test_status_fits_one_screen_and_leaves_out_unplugged_keyboards() -> None:
    st = {
        "state": "running", "pid": 42, "uptime_s": 3725.0,
        "inputs": [
            {"name": "mxfd:in", "connected": True, "events": 0, "dropped": 0, "thru": True},
            {"name": "Digital Piano:out", "connected": True, "events": 120, "dropped": 3, "thru": True},
            {"name": "Old Pad:out", "connected": False, "events": 7, "dropped": 0, "thru": True},
        ],
        "midi": [{"backend": "jack", "up": True, "error": None}],
        "audio": {"device": "system", "hostapi": "JACK Audio Connection Kit", "rate": 48000, "period": 128,
                  "state": "running", "underruns": 40, "ring_underruns": 11, "xruns": 29},
        "render_latency_100ns": 133333, "render_latency_ms": 13.333,
        "bank": "built-in GM",
        "events": {"in": 127, "dropped": {"thru_pool": 2, "subscriber_error": 0}},
        "clients": {"connected": 3, "list": [
            {"id": 1, "name": "mxfd-play-1", "pid": 7, "file": "song.mid", "channel_group": 2, "events": 900,
             "subscribed": False},
            {"id": 2, "name": "mxfd-record-2", "pid": 8, "subscribed": True, "pattern": "Piano",
             "capture_dropped": 1},
            {"id": 5, "name": "mxfd-status-5", "pid": 9, "subscribed": False},
        ]},
    }  # fmt: skip
    text = format_status(st, own_id=5)
    assert text.splitlines() == [
        "state: running (pid 42, up 62 min)",
        "audio: system (JACK Audio Connection Kit), 48000 Hz, period 128 (2.67 ms), latency 13.33 ms",
        "bank: built-in GM",
        "keyboards: 1 connected",
        "  Digital Piano:out (120 events, 3 dropped)",
        "clients: 2",
        "  mxfd-play-1 (pid 7): playing song.mid, 900 events",
        "  mxfd-record-2 (pid 8): recording inputs matching 'Piano'",
        "underruns: 40 (11 late renders, 29 server xruns); dropped: thru pool 2, capture to mxfd-record-2 1",
    ]


def test_status_of_a_degraded_daemon_says_why_nothing_is_heard() -> None:
    st = {
        "state": "degraded",
        "audio": {"device": "nosuch", "rate": 48000, "period": 128, "state": "degraded", "underruns": 0,
                  "message": "audio output device 'nosuch': no such device; the output devices are 0 'system'"},
    }  # fmt: skip
    lines = format_status(st).splitlines()
    assert lines[1] == ("audio: degraded, nothing is heard: audio output device 'nosuch': no such device; "
                        "the output devices are 0 'system'")


def test_status_says_when_input_was_lost_and_what_silences_a_hanging_note() -> None:
    lost = {"watched": True, "stalls": 2, "cycles": 380, "ms": 1013.3, "xruns": 0, "last_s_ago": 4.2}
    st = {"state": "running", "inputs": [], "input_lost": lost}
    assert "input lost: 2 stall(s), 1013.3 ms of MIDI, last 4 s ago (a hanging note lost its note-off: `mxfd panic`)" \
        in format_status(st).splitlines()
    lost["stalls"] = 0
    assert not any(line.startswith("input lost") for line in format_status(st).splitlines())
