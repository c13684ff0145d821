"""``mxfd render --soundfont``: the contract's flags, the built-in choice, gain, and bad fonts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mxfd.cli import main as cli
from mxfd.render import choose_soundfont
from tests.synth.engine.helpers import TIMGM
from tests.test_render import midi_file, read_wav


def _song(tmp_path: Path) -> Path:
    return midi_file(tmp_path / "song.mid", [(0.0, 1.0, 0, 60), (0.5, 1.0, 9, 38)], tail_beats=1.0)


def _rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(x**2))))


def test_the_contract_command_line_renders_with_the_soundfont(tmp_path: Path) -> None:
    song, out = _song(tmp_path), tmp_path / "out.wav"
    argv = ["render", str(song), str(out), "--soundfont", TIMGM, "--rate", "44100"]
    argv += ["--reverb", "off", "--chorus", "off"]
    done = subprocess.run([sys.executable, "-m", "mxfd.cli", *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    x, rate = read_wav(out)
    assert rate == 44100 and np.abs(x).max() > 0.01


def test_builtin_chooses_the_built_in_bank_and_the_default_is_the_system_gm_font() -> None:
    assert choose_soundfont("builtin") is None
    assert choose_soundfont(None) == "/usr/share/sounds/sf2/default-GM.sf2"
    assert choose_soundfont(TIMGM) == TIMGM


def test_the_built_in_bank_still_renders(tmp_path: Path) -> None:
    song, out = _song(tmp_path), tmp_path / "out.wav"
    assert cli(["render", str(song), str(out), "--soundfont", "builtin", "--reverb", "off", "--no-progress"]) == 0
    x, _ = read_wav(out)
    assert np.abs(x).max() > 0.01


@pytest.mark.parametrize("soundfont", [TIMGM, "builtin"])
def test_gain_scales_the_output_by_its_decibels(tmp_path: Path, soundfont: str) -> None:
    song = _song(tmp_path)
    levels = []
    for gain in ("0", "-6"):
        out = tmp_path / f"g{gain}.wav"
        argv = ["render", str(song), str(out), "--soundfont", soundfont, "--gain", gain, "--format", "float"]
        assert cli([*argv, "--reverb", "off", "--chorus", "off", "--no-progress"]) == 0
        levels.append(_rms_db(read_wav(out)[0]))
    assert levels[0] - levels[1] == pytest.approx(6.0, abs=0.1)


def test_reverb_on_adds_a_tail_to_a_soundfont_render(tmp_path: Path) -> None:
    song = _song(tmp_path)
    renders = []
    for reverb in ("off", "on"):
        out = tmp_path / f"r{reverb}.wav"
        argv = ["render", str(song), str(out), "--soundfont", TIMGM, "--reverb", reverb, "--chorus", "off"]
        assert cli([*argv, "--format", "float", "--no-progress"]) == 0
        renders.append(read_wav(out)[0])
    dry, wet = renders
    assert len(wet) > len(dry)
    # The dry render ends in exact silence; what rings on is the reverb (quiet: the font sends 7 %, CC91 is 0).
    assert np.abs(wet[len(dry) :]).max() > 1e-7


@pytest.mark.parametrize("content", [b"", b"RIFF\x04\x00\x00\x00WAVE", b"not a soundfont at all"])
def test_a_bad_soundfont_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    bad = tmp_path / "bad.sf2"
    bad.write_bytes(content)
    out = tmp_path / "out.wav"
    assert cli(["render", str(_song(tmp_path)), str(out), "--soundfont", str(bad), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mxfd render: ") and "bad.sf2" in err
    assert not out.exists()


def test_a_missing_soundfont_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.wav"
    assert cli(["render", str(_song(tmp_path)), str(out), "--soundfont", str(tmp_path / "nope.sf2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope.sf2" in err
