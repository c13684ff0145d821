"""The ``mxfd`` command line: every flag says what it does and what it defaults to."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mxfd.cli import build_parser, main
from mxfd.client.commands import RECORD_BPM, RECORD_PPQN
from mxfd.daemon.config import MIDI_APIS, Config


def _commands() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _option(command: str, flag: str) -> argparse.Action:
    return next(a for a in _commands()[command]._actions if flag in a.option_strings)


def test_every_flag_of_every_command_has_help_text() -> None:
    missing = [
        f"mxfd {name} {action.option_strings[0]}"
        for name, parser in _commands().items()
        for action in parser._actions
        if action.option_strings and not action.help
    ]
    assert missing == []


def test_run_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    d = Config()
    assert f"(default: [audio] rate, {d.audio.rate})" in text
    assert f"(default: [audio] period, {d.audio.period})" in text
    assert f"(default: [audio] device, {d.audio.device!r})" in text
    assert f"(default: [midi] api, {d.midi.api})" in text
    assert "mxfd.toml" in _option("run", "--config").help  # type: ignore[operator]


@pytest.mark.parametrize("command", ["run", "ports"])
def test_midi_api_offers_what_the_config_allows(command: str) -> None:
    assert tuple(_option(command, "--midi-api").choices or ()) == MIDI_APIS
    assert build_parser().parse_args([command, "--midi-api", "auto"]).midi_api == "auto"


def test_run_takes_the_synth_flags_of_render_and_leaves_what_is_not_given_to_the_config() -> None:
    a = build_parser().parse_args(["run"])
    assert (a.soundfont, a.gain, a.reverb, a.chorus) == (None, None, None, None)
    argv = ["run", "--soundfont", "builtin", "--gain", "-6", "--reverb", "off", "--chorus", "on"]
    a = build_parser().parse_args(argv)
    assert (a.soundfont, a.gain, a.reverb, a.chorus) == (["builtin"], -6.0, "off", "on")
    a = build_parser().parse_args(["run", "--soundfont", "/a.sf2", "--soundfont", "builtin"])
    assert a.soundfont == ["/a.sf2", "builtin"]  # a stack, in the order given
    r = build_parser().parse_args(["render", "in.mid", "out.wav"])
    assert (r.soundfont, r.gain, r.reverb, r.chorus) == (None, 0.0, "on", "on")
    for flag in ("--soundfont", "--gain", "--reverb", "--chorus"):  # one definition serves both
        assert _option("run", flag).help and _option("render", flag).help
        assert "[synth]" in (_option("run", flag).help or "") and "[synth]" not in (_option("render", flag).help or "")


def test_run_loads_the_synth_flags_over_the_config(tmp_path: Path) -> None:
    from mxfd.daemon.service import load_config

    cfg = tmp_path / "mxfd.toml"
    cfg.write_text('[synth]\nsoundfont = "/x.sf2"\ngain = 2\nreverb = true\nchorus = true\n')
    args = build_parser().parse_args(["run", "--config", str(cfg), "--gain", "-3", "--chorus", "off"])
    c = load_config(args).synth
    assert (c.soundfont, c.gain, c.reverb, c.chorus) == (("/x.sf2",), -3.0, True, False)
    args = build_parser().parse_args(["run", "--config", str(cfg), "--soundfont", "/y.sf2", "--reverb", "off"])
    assert (load_config(args).synth.soundfont, load_config(args).synth.reverb) == (("/y.sf2",), False)
    args = build_parser().parse_args(["run", "--config", str(cfg), "--soundfont", "/y.sf2", "--soundfont", "builtin"])
    assert load_config(args).synth.soundfont == ("/y.sf2", "builtin")


@pytest.mark.parametrize("command", ["run", "render"])
@pytest.mark.parametrize("argv", [["--gain", "25"], ["--gain", "-61"], ["--gain", "x"], ["--reverb", "no"]])
def test_a_gain_or_effect_the_synth_cannot_take_is_refused(
    command: str, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    paths = ["in.mid", "out.wav"] if command == "render" else []
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, *argv, *paths])
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


@pytest.mark.parametrize("command", ["play", "record", "status", "reload"])
def test_client_commands_name_every_place_the_socket_may_be(command: str) -> None:
    text = _option(command, "--socket").help or ""
    assert "[client] socket" in text and "$XDG_RUNTIME_DIR/mxfd/mxfd.sock" in text and "/tmp/mxfd-UID" in text
    assert _option(command, "--config").help


def test_record_takes_a_tempo_and_a_resolution_as_arecordmidi_does() -> None:
    a = build_parser().parse_args(["record", "out.mid"])
    assert (a.bpm, a.ppq) == (RECORD_BPM, RECORD_PPQN) == (120.0, 1920)
    a = build_parser().parse_args(["record", "-b", "90", "-t", "96", "out.mid"])
    assert (a.bpm, a.ppq) == (90.0, 96)
    a = build_parser().parse_args(["record", "--bpm", "132.5", "--ppq", "480", "out.mid"])
    assert (a.bpm, a.ppq) == (132.5, 480)


@pytest.mark.parametrize("argv", [["--bpm", "0"], ["--bpm", "3"], ["--ppq", "0"], ["--ppq", "32768"], ["--bpm", "x"]])
def test_record_refuses_a_tempo_or_resolution_a_midi_file_cannot_hold(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["record", *argv, "out.mid"])
    assert exc.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_ctrl_c_before_a_command_handles_it_is_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mxfd.instruments

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(mxfd.instruments, "main", interrupted)
    assert main(["instruments"]) == 130
    assert capsys.readouterr().err == "mxfd instruments: interrupted\n"
