"""``mxfd render``: the full render path from a MIDI file to a WAV, its timing, its errors, its output."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

import mxfd.render
from mxfd.cli import main as cli
from mxfd.daemon.config import ConfigError, from_mapping
from mxfd.limits import MAX_POLYPHONY

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
    assert run(str(tmp_path / "nope.mid"), str(tmp_path / "out.wav")) == 2
    assert "no such file" in one_line_error(capsys)
    assert not (tmp_path / "out.wav").exists()


def test_an_empty_midi_file_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.mid").write_bytes(b"")
    assert run(str(tmp_path / "empty.mid"), str(tmp_path / "out.wav")) == 2
    assert "empty" in one_line_error(capsys)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"not a midi file at all", "not a MIDI file"),
        (b"MThd\x00\x00\x00\x06\x00\x01", "ends at byte 10, inside its header"),
        (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\xff", "inside the chunk header of track 1"),
    ],
    ids=["text", "truncated header", "truncated track"],
)
def test_a_corrupt_midi_file_is_a_one_line_error_with_its_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, reason: str
) -> None:
    (tmp_path / "bad.mid").write_bytes(content)
    assert run(str(tmp_path / "bad.mid"), str(tmp_path / "out.wav")) == 2
    assert reason in one_line_error(capsys)
    assert not (tmp_path / "out.wav").exists()


def test_a_midi_file_without_events_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = midi_file(tmp_path / "silent.mid", [], tail_beats=4)
    assert run(str(path), str(tmp_path / "out.wav")) == 2
    assert "no MIDI events" in one_line_error(capsys)


def test_a_bad_input_leaves_an_existing_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"precious")
    (tmp_path / "bad.mid").write_bytes(b"garbage")
    assert run(str(tmp_path / "bad.mid"), str(out)) == 2
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


def test_an_smpte_file_renders_at_its_frame_time(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(3.125, 0.5, 0, 60)])  # tick 1500 (480 a beat)
    data = bytearray(path.read_bytes())
    data[12:14] = bytes([256 - 25, 40])  # SMPTE: 25 frames per second, 40 ticks per frame = 1 ms a tick
    path.write_bytes(bytes(data))
    out = tmp_path / "out.wav"
    assert run(str(path), str(out), "--format", "float", "--no-progress") == 0
    x, _ = read_wav(out)
    assert int(np.flatnonzero(np.any(x != 0.0, axis=1))[0]) == round(1.5 * RATE)


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


@pytest.mark.parametrize("option", [["--rate", "1000"], ["--polyphony", "100000"], ["--polyphony", "1025"]])
def test_out_of_range_options_are_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)])
    assert run(str(path), str(tmp_path / "out.wav"), *option) == 2
    assert option[0] in one_line_error(capsys)
    assert not (tmp_path / "out.wav").exists()


def test_render_and_the_daemon_share_one_polyphony_limit(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 0.25, 0, 60)])
    assert run(str(path), str(tmp_path / "out.wav"), "--polyphony", str(MAX_POLYPHONY), "--no-progress") == 0
    assert run(str(path), str(tmp_path / "out.wav"), "--polyphony", str(MAX_POLYPHONY + 1)) == 2
    assert from_mapping({"synth": {"polyphony": MAX_POLYPHONY}}).synth.polyphony == MAX_POLYPHONY
    with pytest.raises(ConfigError, match=f"from 1 to {MAX_POLYPHONY}"):
        from_mapping({"synth": {"polyphony": MAX_POLYPHONY + 1}})


# -- output formats -------------------------------------------------------------


@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_the_extension_chooses_the_format(tmp_path: Path, ext: str) -> None:
    import soundfile

    path = midi_file(tmp_path / "song.mid", [(0, 2, 0, 69)])
    assert run(str(path), str(tmp_path / "ref.wav"), "--no-progress") == 0
    ref, _ = read_wav(tmp_path / "ref.wav")
    out = tmp_path / f"out.{ext}"
    assert run(str(path), str(out), "--no-progress") == 0
    info = soundfile.info(str(out))
    assert (info.format, info.samplerate, info.channels) == ({"flac": "FLAC", "ogg": "OGG", "mp3": "MP3"}[ext], RATE, 2)
    x, _ = soundfile.read(str(out), dtype="float64")
    if ext == "flac":  # lossless: the very samples of the 16-bit WAV
        with wave.open(str(tmp_path / "ref.wav")) as w:
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
        assert info.subtype == "PCM_16" and np.array_equal(soundfile.read(str(out), dtype="int16")[0], pcm)
    else:  # lossy: the same length, give or take the coder's padding, and the same tone
        assert abs(len(x) - len(ref)) < 4096
        seg = x[round(0.3 * RATE) : round(0.9 * RATE)].sum(axis=1)
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n=1 << 18))
        assert np.fft.rfftfreq(1 << 18, 1 / RATE)[np.argmax(spec)] == pytest.approx(440.0, rel=0.005)


def test_flac_keeps_24_bit_samples(tmp_path: Path) -> None:
    import soundfile

    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 69)])
    assert run(str(path), str(tmp_path / "out.flac"), "--format", "pcm24", "--no-progress") == 0
    assert run(str(path), str(tmp_path / "ref.wav"), "--format", "pcm24", "--no-progress") == 0
    assert soundfile.info(str(tmp_path / "out.flac")).subtype == "PCM_24"
    flac = soundfile.read(str(tmp_path / "out.flac"), dtype="int32")[0] >> 8
    wav = np.rint(read_wav(tmp_path / "ref.wav")[0] * 8388607.0).astype(np.int32)
    assert np.abs(flac).max() > 1000 and np.array_equal(flac, wav)


@pytest.mark.parametrize(
    ("name", "option", "reason"),
    [
        ("out.mp4", [], "extension '.mp4'; mxfd render writes .wav, .flac, .ogg, .oga, .mp3"),
        ("out", [], "no extension; mxfd render writes .wav"),
        ("out.flac", ["--format", "float"], "FLAC holds pcm16 or pcm24 samples, not --format float"),
        ("out.ogg", ["--format", "pcm24"], "Ogg Vorbis has its own coding: --format is for WAV and FLAC"),
        ("out.mp3", ["--rate", "96000"], "MP3 holds only 8000, 11025"),
    ],
)
def test_an_output_format_that_cannot_be_written_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, option: list[str], reason: str
) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)])
    assert run(str(path), str(tmp_path / name), *option) == 2
    assert f"cannot write {tmp_path / name}: {reason}" in one_line_error(capsys)
    assert sorted(os.listdir(tmp_path)) == ["song.mid"]


# -- bounds -----------------------------------------------------------------------


def test_a_file_longer_than_max_seconds_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 44 bytes: one note, then an end of track 2^28 - 1 ticks later at 96 ticks per beat of 1.05 s
    data = (b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60MTrk\x00\x00\x00\x16"
            b"\x00\xff\x51\x03\x10\x00\x00\x00\x90\x3c\x64\x00\x80\x3c\x00\xff\xff\xff\x7f\xff\x2f\x00")
    assert len(data) == 44
    (tmp_path / "long.mid").write_bytes(data)
    assert run(str(tmp_path / "long.mid"), str(tmp_path / "out.wav")) == 2
    err = one_line_error(capsys)
    assert "lasts 814.5 hours, longer than --max-seconds 7200 (2.0 hours)" in err
    assert sorted(os.listdir(tmp_path)) == ["long.mid"]


def test_max_seconds_sets_the_bound(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 0.5, 0, 60)], tail_beats=8)  # 4.25 s
    assert run(str(path), str(tmp_path / "out.wav"), "--max-seconds", "4", "--no-progress") == 2
    assert "lasts 4.2 s, longer than --max-seconds 4" in one_line_error(capsys)
    assert run(str(path), str(tmp_path / "out.wav"), "--max-seconds", "5", "--no-progress") == 0


def test_too_little_free_space_is_refused_before_rendering(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = midi_file(tmp_path / "song.mid", [(0, 1, 0, 60)], tail_beats=600)  # 301 s: about 58 MB of WAV
    real = os.statvfs(tmp_path)
    fields = {name: getattr(real, name) for name in dir(real) if name.startswith("f_")}

    class Full:  # the file system as statvfs would report a nearly full one
        f_frsize = 4096
        f_bavail = 1000

    monkeypatch.setattr(mxfd.render.os, "statvfs", lambda p: Full if os.path.samefile(p, tmp_path) else fields)
    assert run(str(path), str(tmp_path / "out.wav")) == 1
    err = one_line_error(capsys)
    assert "300.5 s of WAV needs about 57.9 MB and" in err and "has 4.1 MB free" in err
    assert sorted(os.listdir(tmp_path)) == ["song.mid"]


def test_sigterm_removes_the_part_file_as_ctrl_c_does(tmp_path: Path) -> None:
    path = midi_file(tmp_path / "song.mid", [(b, 0.5, 0, 60 + b % 12) for b in range(2400)])  # 20 minutes
    out = tmp_path / "out.wav"
    proc = subprocess.Popen([sys.executable, "-m", "mxfd", "render", str(path), str(out), "--no-progress"],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(p.suffix == ".part" and p.stat().st_size > 100_000 for p in tmp_path.iterdir()):
            assert proc.poll() is None and time.monotonic() < deadline, "no .part file grew"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.strip() == f"mxfd render: terminated by signal {int(signal.SIGTERM)}; {out} not written"
    assert sorted(os.listdir(tmp_path)) == ["song.mid"]


# -- batch rendering (--out-dir) ---------------------------------------------------------------

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"


def test_out_dir_renders_each_file_as_its_own_render_would_loading_the_font_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = midi_file(tmp_path / "a.mid", [(0, 0.5, 0, 60), (0.5, 0.5, 0, 64)])
    b = midi_file(tmp_path / "b.mid", [(0, 1, 0, 67)])
    single = tmp_path / "single-a.wav"
    effects = ["--soundfont", TIMGM, "--reverb", "off", "--chorus", "off", "--no-progress"]
    assert cli(["render", str(a), str(single), *effects]) == 0
    loads: list[str] = []
    real_load = mxfd.render.load_font
    monkeypatch.setattr(mxfd.render, "load_font", lambda path: loads.append(path) or real_load(path))
    out = tmp_path / "out"  # made when missing
    assert cli(["render", "--out-dir", str(out), *effects, str(a), str(b)]) == 0
    assert loads == [TIMGM]
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav"]
    assert (out / "a.wav").read_bytes() == single.read_bytes()  # nothing carries over from file to file


def test_a_file_that_fails_in_a_batch_is_reported_and_the_others_still_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = midi_file(tmp_path / "good.mid", [(0, 0.25, 0, 60)])
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"MThd\0\0\0\6\0\0\0\1")
    out = tmp_path / "out"
    assert cli(["render", "--out-dir", str(out), "--soundfont", "builtin", "--no-progress", str(bad), str(good)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"mxfd render: cannot read {bad}: ")
    assert err[-1] == f"mxfd render: 1 of 2 files rendered into {out}; failed: {bad}"
    assert [p.name for p in out.iterdir()] == ["good.wav"]


def test_a_batch_that_would_write_one_output_twice_or_names_no_job_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = midi_file(tmp_path / "a.mid", [(0, 0.25, 0, 60)])
    (tmp_path / "d").mkdir()
    twin = tmp_path / "d" / ".." / "a.mid"
    assert cli(["render", "--out-dir", str(tmp_path / "out"), str(a), str(twin)]) == 2
    assert "would both be written to" in capsys.readouterr().err
    assert cli(["render", str(a)]) == 2  # one path and no --out-dir: no output named
    assert capsys.readouterr().err == "mxfd render: give IN.mid OUT, or --out-dir DIR and the MIDI files to render\n"
    (tmp_path / "file").write_bytes(b"")
    assert cli(["render", "--out-dir", str(tmp_path / "file"), str(a)]) == 2
    assert not (tmp_path / "out").exists()


def test_soundfont_given_twice_is_a_stack_each_preset_from_the_first_font_that_has_it(tmp_path: Path) -> None:
    # channel 10 plays the kit the drum channel selects: TimGM6mb's Standard kit in both renders
    path = midi_file(tmp_path / "n.mid", [(0, 1, 0, 60), (0, 1, 9, 38)])
    effects = ["--reverb", "off", "--chorus", "off", "--no-progress", "--format", "float"]
    alone, stacked = tmp_path / "alone.wav", tmp_path / "stacked.wav"
    assert run(str(path), str(alone), "--soundfont", TIMGM, *effects) == 0
    assert run(str(path), str(stacked), "--soundfont", TIMGM, "--soundfont", "builtin", *effects) == 0
    assert stacked.read_bytes() == alone.read_bytes()
    below = tmp_path / "below.wav"
    assert run(str(path), str(below), "--soundfont", "builtin", "--soundfont", TIMGM, *effects) == 0
    assert below.read_bytes() != alone.read_bytes()  # the built-in bank's piano and kit now


def test_a_font_of_a_stack_that_does_not_load_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = midi_file(tmp_path / "n.mid", [(0, 1, 0, 60)])
    assert run(str(path), str(tmp_path / "o.wav"), "--soundfont", TIMGM, "--soundfont", "/no/such.sf2") == 2
    assert "/no/such.sf2" in one_line_error(capsys)
    assert not (tmp_path / "o.wav").exists()
