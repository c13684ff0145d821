"""The MIDI-file loader of play and render: strict reading, real reasons, SMPTE time, long SysEx, and a fuzz test."""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import mido
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxfd.cli import build_parser
from mxfd.cli import main as cli
from mxfd.client import commands
from mxfd.core.wire import MAX_BUFFER_SIZE, MAX_EVENT_SIZE, encode_buffer, event_size
from mxfd.midifile import MidiFileError, parse_midi, read_midi_file
from tests.fuzzing import mutate

SECOND = 10_000_000


def vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def track(body: bytes, end: bool = True) -> bytes:
    if end:
        body += b"\x00\xff\x2f\x00"
    return b"MTrk" + len(body).to_bytes(4, "big") + body


def smf(*tracks: bytes, fmt: int = 1, division: int = 480, ntracks: int | None = None) -> bytes:
    n = len(tracks) if ntracks is None else ntracks
    header = fmt.to_bytes(2, "big") + n.to_bytes(2, "big") + division.to_bytes(2, "big")
    return b"MThd\x00\x00\x00\x06" + header + b"".join(tracks)


NOTE = b"\x00\x90\x3c\x64" + vlq(480) + b"\x80\x3c\x00"  # a beat of middle C
SONG = smf(track(b"\x00\xff\x51\x03\x07\xa1\x20"), track(NOTE))


def reason(data: bytes) -> str:
    with pytest.raises(MidiFileError) as info:
        parse_midi(data, "f.mid")
    message = str(info.value)
    assert "\n" not in message and message.startswith("cannot read f.mid: ")
    return info.value.reason


# -- reading and timing ---------------------------------------------------------------


def test_times_agree_with_mido_through_tempo_changes(tmp_path: Path) -> None:
    mid = mido.MidiFile(type=1, ticks_per_beat=384)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=600_000),
                           mido.MetaMessage("set_tempo", tempo=250_000, time=700)])
    notes = mido.MidiTrack()
    for i in range(12):
        notes.append(mido.Message("note_on", note=50 + i, velocity=80, time=0 if i == 0 else 131))
        notes.append(mido.Message("note_off", note=50 + i, time=97))
    mid.tracks += [meta, notes]
    mid.save(tmp_path / "t.mid")
    want, now = [], 0.0
    for msg in mido.MidiFile(tmp_path / "t.mid"):
        now += msg.time
        if not msg.is_meta:
            want.append((round(now * SECOND), bytes(msg.bytes())))
    song = read_midi_file(str(tmp_path / "t.mid"))
    assert [(t, m) for t, _, m in song.records] == want
    assert song.length == pytest.approx(now, abs=1e-7)


def test_running_status_is_followed() -> None:
    song = parse_midi(smf(track(b"\x00\x90\x3c\x64\x10\x3e\x64\x10\x3c\x00")))
    assert [m for _, _, m in song.records] == [b"\x90\x3c\x64", b"\x90\x3e\x64", b"\x90\x3c\x00"]


def test_smpte_division_counts_frames_not_beats() -> None:
    # 25 frames per second x 40 ticks per frame: a tick is 1 ms whatever the tempo says
    division = ((256 - 25) << 8) | 40
    data = smf(track(b"\x00\xff\x51\x03\x0f\x42\x40" + b"\x00\x90\x3c\x64" + vlq(1500) + b"\x80\x3c\x00"),
               division=division)
    song = parse_midi(data)
    assert [t for t, _, _ in song.records] == [0, 15_000_000]
    assert song.division == "SMPTE 25 fps, 40 ticks per frame"


def test_smpte_29_is_drop_frame_29_97() -> None:
    division = ((256 - 29) << 8) | 100  # 30000 / 1001 frames a second: 30000 ticks last 10.01 s
    song = parse_midi(smf(track(b"\x00\x90\x3c\x64" + vlq(30000) + b"\x80\x3c\x00"), division=division))
    assert song.records[-1][0] == 100_100_000


def test_format_2_tracks_play_one_after_the_other() -> None:
    song = parse_midi(smf(track(NOTE), track(NOTE), fmt=2))
    assert [t for t, _, _ in song.records] == [0, SECOND // 2, SECOND // 2, SECOND]
    assert song.length == 1.0


def test_a_midi_port_meta_event_selects_the_channel_group() -> None:
    song = parse_midi(smf(track(NOTE), track(b"\x00\xff\x21\x01\x02" + NOTE)))
    assert sorted({g for _, g, _ in song.records}) == [1, 3]


def test_a_sysex_longer_than_a_record_is_split_into_records_with_its_time() -> None:
    body = bytes([0x7E] + [0x11] * 70_000) + b"\xf7"
    song = parse_midi(smf(track(b"\x00\x90\x3c\x64" + b"\x10\xf0" + vlq(len(body)) + body)))
    sysex = [(t, m) for t, _, m in song.records if m[0] != 0x90]
    assert [len(m) for _, m in sysex] == [MAX_EVENT_SIZE, 70_003 - MAX_EVENT_SIZE]
    assert {t for t, _ in sysex} == {round(16 * SECOND / 960)}
    assert b"".join(m for _, m in sysex) == b"\xf0" + body
    assert song.events == 2


def test_a_sysex_in_packets_is_joined_at_the_time_of_its_f0() -> None:
    data = smf(track(b"\x00\xf0\x03\x43\x12\x00" + b"\x60\xf7\x03\x43\x12\xf7"))
    assert parse_midi(data).records == [(0, 1, b"\xf0\x43\x12\x00\x43\x12\xf7")]


def test_what_cannot_be_played_is_left_out_and_counted() -> None:
    data = smf(track(NOTE + b"\x00\xf7\x01\xf8" + b"\x00\xf0\x02\x43\x12" + b"\x00\xf0\x03\x43\x92\xf7"))
    song = parse_midi(data)
    assert len(song.records) == 2
    assert song.skipped == {"F7 escape that is not a SysEx": 1, "SysEx without its end (F7)": 1,
                            "SysEx with a status byte inside": 1}


def test_an_alien_chunk_is_skipped() -> None:
    assert len(parse_midi(smf(b"XFIH\x00\x00\x00\x02ab", track(NOTE), ntracks=1)).records) == 2


# -- real reasons -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "want"),
    [
        (b"", "empty file (0 bytes), not a MIDI file"),
        (b"RIFF....", "not a MIDI file: it starts with b'RIFF'"),
        (SONG[:9], "the file ends at byte 9, inside its header (MThd needs 14 bytes)"),
        (SONG[:14], "the file ends at byte 14 after 0 of the 2 tracks its header announces"),
        (SONG[:18], "the file ends at byte 18, inside the chunk header of track 1 (4 of its 8 bytes missing)"),
        (SONG[:-3], "the file ends at byte 51, inside track 2: its chunk at byte 33 announces 13 bytes, 10 are there"),
        (smf(track(NOTE), ntracks=2), "the file ends at byte 35 after 1 of the 2 tracks its header announces"),
        (smf(track(NOTE), division=0), "division 0 at byte 12 (ticks per quarter note must be at least 1)"),
        (smf(track(NOTE), division=0xE728 - 0x0200), "SMPTE division at byte 12 with 27 frames per second"),
        (smf(track(NOTE), division=0xE700), "SMPTE division at byte 12 with 0 ticks per frame"),
        (smf(track(NOTE), fmt=7), "unknown format 7 at byte 8 (0, 1 or 2)"),
        (smf(ntracks=0), "its header announces no tracks (byte 10)"),
        (smf(track(b"\x00\x90\x3c", end=False)), "track 1 ends at byte 25 inside the note on at byte 23"),
        (smf(track(b"\x00\x3c\x64", end=False)), "track 1, byte 23: data byte 0x3c with no status before it"),
        (smf(track(b"\x00\x90\x3c\xe4", end=False)), "track 1, byte 25: note on data byte 0xe4"),
        (smf(track(b"\x00\xf4", end=False)), "track 1, byte 23: status 0xf4 has no place in a MIDI file"),
        (smf(track(b"\xff\xff\xff\xff\x7f\x90\x3c\x64")), "track 1, byte 22: a delta time longer than 4 bytes"),
        (smf(track(b"\x00\xff\x51\x02\x07\xa1")), "track 1, byte 23: set tempo with 2 data bytes (3 expected)"),
        (smf(track(b"\x00\xff\x01\x40abc", end=False)), "meta event 0x01 of 64 bytes runs past the track's end"),
        (smf(track(b"\x00\xf0\x7f\x01", end=False)), "SysEx of 127 bytes runs past the track's end"),
        (smf(track(b"\x00\xff\x2f\x00", end=False)), "no MIDI events in its 1 track(s)"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else "",
)
def test_a_bad_file_gets_one_line_saying_where_and_what_was_expected(data: bytes, want: str) -> None:
    assert want in reason(data)


def test_a_missing_file_and_a_directory_are_reasons_too(tmp_path: Path) -> None:
    for path, want in ((tmp_path / "nope.mid", "no such file or directory"), (tmp_path, "is a directory")):
        with pytest.raises(MidiFileError, match=want):
            read_midi_file(str(path))


def args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("data", [SONG[:-3], b"", smf(track(NOTE), division=0)], ids=["truncated", "empty", "div0"])
def test_play_and_render_say_the_same_with_the_same_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: bytes
) -> None:
    path = tmp_path / "bad.mid"
    path.write_bytes(data)
    # play reads the file before it looks for a daemon, so no daemon is needed to see its verdict
    played = commands.main(args("play", "--socket", str(tmp_path / "no.sock"), str(path)))
    play_err = capsys.readouterr().err.strip()
    rendered = cli(["render", str(path), str(tmp_path / "out.wav")])
    render_err = capsys.readouterr().err.strip()
    assert played == rendered == 2
    assert play_err.removeprefix("mxfd play: ") == render_err.removeprefix("mxfd render: ")
    assert "\n" not in play_err and play_err.removeprefix("mxfd play: ").startswith(f"cannot read {path}: ")


# -- fuzz -------------------------------------------------------------------------------


def seed_file() -> bytes:
    """A small file with most of what a file holds: tempo, port, running status, SysEx in packets, bends."""
    meta = track(b"\x00\xff\x03\x04name\x00\xff\x51\x03\x07\xa1\x20\x00\xff\x58\x04\x04\x02\x18\x08"
                 + vlq(240) + b"\xff\x51\x03\x0f\x42\x40")
    notes = track(b"\x00\xff\x21\x01\x01\x00\xc0\x05\x00\x90\x3c\x64\x30\x40\x64" + vlq(120) + b"\x3c\x00"
                  + b"\x10\xe0\x00\x50\x10\xb0\x07\x64\x00\xf0\x03\x7e\x7f\x09" + b"\x05\xf7\x02\x01\xf7"
                  + vlq(96) + b"\x80\x40\x00")
    drums = track(b"\x00\x99\x24\x70\x60\x89\x24\x00\x00\xd9\x30")
    return smf(meta, notes, drums)


def check_loads_cleanly(data: bytes) -> None:
    """Either a song every record of which goes on the wire, or one line of reason: nothing else."""
    started = time.monotonic()
    try:
        song = parse_midi(data, "fuzz.mid")
    except MidiFileError as exc:
        assert "\n" not in str(exc) and exc.reason
        return
    finally:
        assert time.monotonic() - started < 1.0
    times = [t for t, _, _ in song.records]
    assert times == sorted(times) and times[0] >= 0 and song.length * SECOND >= times[-1] - 1
    # the records pack as play packs them, within the buffer limit
    batch: list[tuple[int, int, bytes]] = []
    size = 0
    for rec in song.records:
        if batch and size + event_size(len(rec[2])) > MAX_BUFFER_SIZE:
            encode_buffer(batch)
            batch, size = [], 0
        batch.append(rec)
        size += event_size(len(rec[2]))
    encode_buffer(batch)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_fuzz_every_mutated_file_loads_or_gets_one_line(rng: random.Random) -> None:
    check_loads_cleanly(mutate(seed_file(), rng))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_after_a_header_load_or_get_one_line(tail: bytes) -> None:
    check_loads_cleanly(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0" + tail)


def test_fuzz_render_gives_a_file_or_one_line_in_bounded_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(12)
    src = tmp_path / "in.mid"
    out = tmp_path / "out.wav"
    outcomes = set()
    for _ in range(30):
        src.write_bytes(mutate(seed_file(), rng))
        started = time.monotonic()
        status = cli(["render", str(src), str(out), "--max-seconds", "3", "--rate", "8000", "--no-progress"])
        assert time.monotonic() - started < 10.0
        err = capsys.readouterr().err.strip()
        if status == 0:
            assert err == "" and out.stat().st_size > 44
            out.unlink()
        else:
            assert status == 2 and "\n" not in err and err.startswith("mxfd render: ")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mid"]
        outcomes.add(status)
    assert outcomes == {0, 2}  # the mutator makes both kinds, or this test proves nothing
