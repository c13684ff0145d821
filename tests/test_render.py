"""``mxfd render``: the full render path from a MIDI file to a WAV, its timing, its errors, its output."""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

import mxfd.render
from mxfd.cli import main as cli

RATE = 48000


def midi_file(path: Path, notes: list[tuple[float, float, int, int]], *, tempo: int = 500000,
              tail_beats: float = 0.0, tempo_change: tuple[float, int] | None = None) -> Path:
    """Write a type-1 file: notes (start_beat, length_beats, channel, key), 480 ticks per beat."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    if tempo_change is not None:
        beat, new_tempo = tempo_change
        meta.append(mido.MetaMessage("set_tempo", tempo=new_tempo, time=round(beat * 480)))
    mid.tracks.append(meta)
    track = mido.MidiTrack()
    events = []
    for start, length, ch, key in notes:
        events.append((round(start * 480), mido.Message("note_on", channel=ch, note=key, velocity=100)))
        events.append((round((start + length) * 480), mido.Message("note_off", channel=ch, note=key, velocity=0)))
    events.sort(key=lambda e: e[0])
    last = 0
    for tick, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    track.append(mido.MetaMessage("end_of_track", time=round(tail_beats * 480)))
    mid.tracks.append(track)
    mid.save(path)
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Stereo frames as float64 in [-1, 1], and the rate; reads PCM 16/24 and IEEE float."""
    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    pos = 12
    fmt = None
    while pos < len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", body)
        elif cid == b"data":
            assert fmt is not None
            tag, channels, rate, _, align, bits = fmt
            assert channels == 2
            if tag == 3:
                x = np.frombuffer(body, dtype="<f4").astype(np.float64)
            elif bits == 16:
                x = np.frombuffer(body, dtype="<i2") / 32767.0
            else:
                b = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
                v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                v = np.where(v >= 1 << 23, v - (1 << 24), v)
                x = v / 8388607.0
            return x.reshape(-1, 2), rate
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


def run(*argv: str) -> int:
    return cli(["render", *argv])


# -- errors ---------------------------------------------------------------------


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mxfd render: ")
    return err


def test_a_missing_midi_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(str(tmp_path / "nope.mid"), str(tmp_path / "out.wav")) == 1
    assert "no such file" in one_line_error(capsys)
    assert not (tmp_path / "out.wav").exists()


def test_an_empty_midi_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.mid").write_bytes(b"")
    assert run(str(tmp_path / "empty.mid"), str(tmp_path / "out.wav")) == 1
    assert "empty" in one_line_error(capsys)


@pytest.mark.parametrize(
    "content",
    [
        b"not a midi file at all",
        b"MThd\x00\x00\x00\x06\x00\x01",
        b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\xff",
    ],
    ids=["text", "truncated header", "truncated track"],
)
def test_a_corrupt_midi_file_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    (tmp_path / "bad.mid").write_bytes(content)
    assert run(str(tmp_path / "bad.mid"), str(tmp_path / "out.wav")) == 1
    assert "not a valid MIDI file" in one_line_error(capsys)
    assert not (tmp_path / "out.wav").exists()


def test_a_midi_file_without_events_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = midi_file(tmp_path / "silent.mid", [], tail_beats=4)
    assert run(str(path), str(tmp_path / "out.wav")) == 1
    assert "no MIDI events" in one_line_error(capsys)


def test_a_bad_input_leaves_an_existing_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    (tmp_path / "bad.mid").write_bytes(b"garbage")
    assert run(str(tmp_path / "bad.mid"), str(out)) == 1
    assert out.read_bytes() == b"precious"


def test_a_failure_half_way_never_leaves_half_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 4, 0, 60)])
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    real_write = mxfd.render.WavWriter.write
    calls = 0

    def failing_write(self: mxfd.render.WavWriter, audio: np.ndarray) -> None:
        nonlocal calls
        calls += 1
        if calls == 50:
            raise OSError(28, "No space left on device")
        real_write(self, audio)

    monkeypatch.setattr(mxfd.render.WavWriter, "write", failing_write)
    assert run(str(path), str(out), "--no-progress") == 1
    assert out.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["out.wav", "song.mid"]


def test_an_unwritable_output_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)])
    assert run(str(path), str(tmp_path / "missing" / "out.wav")) == 1
    assert "cannot write" in one_line_error(capsys)


# -- output ---------------------------------------------------------------------


def test_the_wav_lasts_the_whole_file_plus_the_release_and_ends_in_silence(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60), (1, 1, 0, 64), (2, 1, 9, 38)])
    out = tmp_path / "out.wav"
    assert run(str(path), str(out), "--no-progress") == 0
    x, rate = read_wav(out)
    length = mido.MidiFile(path).length
    assert rate == RATE
    assert len(x) >= round(length * RATE)
    assert len(x) < round((length + 4.0) * RATE)
    tail = x[-round(0.01 * RATE) :]
    assert np.sqrt(np.mean(tail**2)) < 10 ** (-90 / 20)
    assert np.max(np.abs(x)) > 0.01


def test_trailing_silence_in_the_file_is_kept_to_its_end_of_track(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 0.5, 0, 60)], tail_beats=20)  # 10 s of rests
    out = tmp_path / "out.wav"
    assert run(str(path), str(out), "--no-progress") == 0
    x, _ = read_wav(out)
    assert len(x) == round(mido.MidiFile(path).length * RATE)


@pytest.mark.parametrize("block", [32, 128, 1024])
def test_notes_start_on_their_exact_sample_through_the_whole_path(tmp_path: Path, block: int) -> None:
    # 120 bpm, then 90 bpm from beat 4: the note times cross a tempo change.
    notes = [(0.5, 0.25, 0, 60), (3.3, 0.25, 9, 37), (6.7, 0.25, 0, 72)]
    path = midi_file(tmp_path / "song.mid", notes, tempo_change=(4.0, 666667))
    out = tmp_path / "out.wav"
    # The built-in bank (the SoundFont engine's onsets: tests/synth/engine/test_block.py).
    argv = [str(path), str(out), "--format", "float", "--block", str(block), "--no-progress", "--soundfont", "builtin"]
    assert run(*argv) == 0
    x, _ = read_wav(out)
    mono = x.sum(axis=1)
    for beat in (0.5, 3.3, 6.7):
        t = beat * 0.5 if beat <= 4 else 2.0 + (beat - 4) * 0.666667
        start = round(t * RATE)
        window = mono[start - 2000 : start + 200]
        # The previous note's reverb may still ring: find where the new note jumps out of it.
        before = np.max(np.abs(window[:1990]))
        onset = int(np.flatnonzero(np.abs(window) > before * 4 + 1e-6)[0]) + start - 2000
        assert abs(onset - start) <= 1, (beat, onset, start)


@pytest.mark.parametrize("fmt", ["pcm16", "pcm24", "float"])
def test_each_sample_format_is_written_correctly(tmp_path: Path, fmt: str) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 69)])
    out = tmp_path / f"{fmt}.wav"
    assert run(str(path), str(out), "--format", fmt, "--no-progress") == 0
    x, _ = read_wav(out)
    if fmt != "float":
        with wave.open(str(out)) as w:
            assert w.getnchannels() == 2 and w.getsampwidth() == (2 if fmt == "pcm16" else 3)
            assert w.getnframes() == len(x)
    ref = tmp_path / "ref.wav"
    assert run(str(path), str(ref), "--format", "float", "--no-progress") == 0
    y, _ = read_wav(ref)
    assert len(x) == len(y)
    assert np.max(np.abs(x - y)) < (1.0 / 32767 if fmt == "pcm16" else 1e-6)


def test_the_sample_rate_option_is_honoured(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 2, 0, 69)])
    out = tmp_path / "out.wav"
    assert run(str(path), str(out), "--rate", "44100", "--no-progress") == 0
    x, rate = read_wav(out)
    assert rate == 44100
    seg = x[round(0.3 * rate) : round(0.9 * rate)].sum(axis=1)
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n=1 << 18))
    assert np.fft.rfftfreq(1 << 18, 1 / rate)[np.argmax(spec)] == pytest.approx(440.0, rel=0.005)


def test_no_progress_output_when_not_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)])
    assert run(str(path), str(tmp_path / "out.wav")) == 0
    assert capsys.readouterr().err == ""


def test_the_output_file_gets_normal_permissions(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)])
    out = tmp_path / "out.wav"
    assert run(str(path), str(out), "--no-progress") == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_midi_port_meta_events_select_channel_groups(tmp_path: Path) -> None:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    for port in (0, 1):
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("midi_port", port=port, time=0))
        tr.append(mido.Message("note_on", channel=0, note=60 + port, velocity=100, time=0))
        tr.append(mido.Message("note_off", channel=0, note=60 + port, velocity=0, time=480))
        mid.tracks.append(tr)
    mid.save(tmp_path / "ports.mid")
    song = mxfd.render.load_song(str(tmp_path / "ports.mid"))
    groups = sorted({g for start, data in song.buffers for _, g, _, _ in mxfd.decode_buffer(data, start)})
    assert groups == [1, 2]


def test_the_progress_bar_draws_one_updating_line() -> None:
    import io

    stream = io.StringIO()
    bar = mxfd.render.Progress(stream, total_seconds=10.0, enabled=True)
    bar.update(5.0, force=True)
    bar.done("mxfd render: wrote out.wav")
    text = stream.getvalue()
    assert text.startswith("\r[") and " 50.0%" in text and text.endswith("wrote out.wav".ljust(59) + "\n")
    silent = io.StringIO()
    mxfd.render.Progress(silent, 10.0, enabled=False).update(5.0, force=True)
    assert silent.getvalue() == ""


@pytest.mark.parametrize("option", [["--rate", "1000"], ["--polyphony", "100000"]])
def test_out_of_range_options_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)])
    assert run(str(path), str(tmp_path / "out.wav"), *option) == 2
    assert option[0] in one_line_error(capsys)
    assert not (tmp_path / "out.wav").exists()
