"""The ``mxfd`` command line: every flag says what it does and what it defaults to."""

from __future__ import annotations

import argparse

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


@pytest.mark.parametrize("command", ["play", "record", "status"])
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
