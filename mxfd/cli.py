"""The ``mxfd`` command: run, ports, play, record, render, status, panic, reload, instruments.

This module only parses arguments; each command lives with the part of
mxfd it belongs to and is imported when it runs, so ``mxfd render`` never
loads the audio stack and ``mxfd status`` never loads numpy.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, Optional, Sequence

from mxfd.limits import DEFAULT_MAX_RENDER_SECONDS, MAX_GAIN_DB, MAX_POLYPHONY, MIN_GAIN_DB, RENDER_BLOCK

#: command -> module whose ``main(args) -> int`` runs it
COMMANDS = {
    "run": "mxfd.daemon.service",
    "reload": "mxfd.client.commands",
    "ports": "mxfd.daemon.ports",
    "play": "mxfd.client.commands",
    "record": "mxfd.client.commands",
    "status": "mxfd.client.commands",
    "panic": "mxfd.client.commands",
    "render": "mxfd.render",
    "instruments": "mxfd.instruments",
}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {value}")
    return value


def _ranged(kind: type, low: float, high: float, what: str) -> Callable[[str], Any]:
    """An argparse type: a number of ``kind`` from ``low`` to ``high``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low:g} to {high:g}: {text}")
        return value

    return parse


def add_synth_options(p: argparse.ArgumentParser, *, config_keys: bool) -> None:
    """--soundfont, --gain, --reverb and --chorus, as ``mxfd render`` and ``mxfd run`` both take them.

    With ``config_keys`` (``mxfd run``) a flag left out is None, so the config's ``[synth]`` key decides.
    """

    def default(key: str, value: str) -> str:
        return f"[synth] {key}, else {value}" if config_keys else value

    p.add_argument("--soundfont", metavar="PATH", action="append",
                   help='SoundFont 2 or 3 file, or "builtin" for the built-in bank; given more than once, a stack '
                        "searched in that order for each bank:program (default: "
                        + default("soundfont", "the system's General MIDI soundfont, "
                                  "/usr/share/sounds/sf2/default-GM.sf2 and the other usual paths, else builtin") + ")")
    p.add_argument("--gain", type=_ranged(float, MIN_GAIN_DB, MAX_GAIN_DB, "--gain"), metavar="DB",
                   default=None if config_keys else 0.0,
                   help=f"output gain in dB, {MIN_GAIN_DB:g} to {MAX_GAIN_DB:g} (default: "
                        + default("gain", "0, as loud as FluidSynth at its default gain") + ")")
    for effect in ("reverb", "chorus"):
        p.add_argument(f"--{effect}", choices=("on", "off"), default=None if config_keys else "on",
                       help=f"{effect} (default: " + default(effect, "on") + ")")


def build_parser() -> argparse.ArgumentParser:
    from mxfd.client.client import default_socket_path
    from mxfd.client.commands import RECORD_BPM, RECORD_PPQN
    from mxfd.daemon.config import AUDIO_PINS, MIDI_APIS, Config, default_config_path

    defaults = Config()
    config_help = f"TOML config (default: {default_config_path()}, if it exists)"
    apis = "|".join(MIDI_APIS)
    p = argparse.ArgumentParser(prog="mxfd", description="MIDI device bridge daemon")
    p.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground (what systemd starts)",
                         description="Run the daemon in the foreground. Flags win over the config file; "
                                     "a flag left out takes the config's value, or the default shown.")
    run.add_argument("--config", metavar="PATH", help=config_help)
    run.add_argument("--midi-api", choices=MIDI_APIS, metavar=apis,
                     help=f"MIDI system to read; auto: ALSA when /dev/snd/seq exists, else JACK "
                          f"(default: [midi] api, {defaults.midi.api})")
    run.add_argument("--audio-device", metavar="NAME",
                     help=f"audio output device, a name, part of one or an index; `mxfd ports` lists them "
                          f"(default: [audio] device, {defaults.audio.device!r})")
    run.add_argument("--audio-pin", metavar="|".join(AUDIO_PINS),
                     help=f"what plays the audio: jack (the compiled JACK-native callback; a SoundFont bank "
                          f"only), portaudio (any device), or auto: jack where a JACK server answers "
                          f"(default: [audio] pin, {defaults.audio.pin})")
    run.add_argument("--rate", type=_positive_int, metavar="HZ",
                     help=f"sample rate (default: [audio] rate, {defaults.audio.rate})")
    run.add_argument("--period", type=_positive_int, metavar="FRAMES",
                     help=f"audio period size (default: [audio] period, {defaults.audio.period})")
    add_synth_options(run, config_keys=True)
    run.add_argument("--no-clients", action="store_true",
                     help="run without the client socket (even when another daemon holds it)")
    run.add_argument("-v", "--verbose", action="count", default=0,
                     help="more log output (default: [log] level, info; -v: debug)")

    ports = sub.add_parser("ports", help="list MIDI inputs and audio devices")
    ports.add_argument("--config", metavar="PATH", help=config_help + "; its [midi] rules and [client] socket")
    ports.add_argument("--midi-api", choices=MIDI_APIS, metavar=apis,
                       help=f"MIDI system to list when no daemon runs (default: [midi] api, {defaults.midi.api})")

    socket_help = (
        "daemon socket (default: [client] socket of the config, else $XDG_RUNTIME_DIR/mxfd/mxfd.sock, "
        f"or /tmp/mxfd-UID/mxfd.sock when XDG_RUNTIME_DIR is unset; here {default_socket_path()})"
    )
    for name, helptext in (
        ("play", "play a MIDI file through the running daemon"),
        ("record", "record what is played to a MIDI file"),
        ("status", "show the daemon's state and counters"),
        ("panic", "all notes and sound off now (notes a lost note-off left hanging)"),
        ("reload", "have the daemon re-read its config and soundfont, as SIGHUP does"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--socket", metavar="PATH", help=socket_help)
        c.add_argument("--config", metavar="PATH", help=config_help + "; only its [client] socket is read")
        if name == "play":
            c.add_argument("file", metavar="FILE.mid")
            c.add_argument("--loop", action="store_true", help="play until interrupted")
            c.add_argument("--force", action="store_true",
                           help="play even when the daemon's audio output is down (nothing is heard; "
                                "without --force play refuses with exit status 3)")
        elif name == "record":
            c.add_argument("out", metavar="OUT.mid")
            c.add_argument("--seconds", type=_positive_float, metavar="N", help="stop after N seconds")
            c.add_argument("--port", metavar="PATTERN", help="only inputs whose name matches")
            c.add_argument("--last", type=_positive_float, metavar="SECONDS",
                           help="save what was played in the last SECONDS (up to 300) and exit")
            c.add_argument("-b", "--bpm", type=_ranged(float, 4, 6000, "--bpm"), default=RECORD_BPM, metavar="BPM",
                           help=f"tempo of the file, beats per minute, as arecordmidi -b (default: {RECORD_BPM:g})")
            c.add_argument("-t", "--ppq", type=_ranged(int, 1, 0x7FFF, "--ppq"), default=RECORD_PPQN, metavar="TICKS",
                           help=f"ticks per quarter note, as arecordmidi -t (default: {RECORD_PPQN})")
        elif name == "status":
            c.add_argument("--json", action="store_true", help="machine-readable output: the whole report")
            c.add_argument("-v", "--verbose", action="store_true", help="every counter the daemon reports")

    render = sub.add_parser("render", help="render a MIDI file to WAV, FLAC, Ogg Vorbis or MP3 offline")
    render.add_argument("paths", nargs="+", metavar="FILE",
                        help="IN.mid OUT: the MIDI file and the output, whose extension (.wav, .flac, .ogg, .mp3) "
                             "sets the format; with --out-dir, the MIDI files to render")
    render.add_argument("--out-dir", metavar="DIR",
                        help="render each MIDI file to DIR/NAME.wav in this one process (start-up is paid once); "
                             "a file that fails is reported and the others still render")
    render.add_argument("--rate", type=_positive_int, default=48000, metavar="HZ",
                        help="sample rate (default: %(default)s)")
    render.add_argument("--block", type=_positive_int, default=RENDER_BLOCK, metavar="FRAMES",
                        help="frames rendered at a time; every event still starts on its own sample "
                             "(default: %(default)s)")
    render.add_argument("--format", choices=("pcm16", "pcm24", "float"),
                        help="sample format of a WAV (pcm16, pcm24, float) or FLAC (pcm16, pcm24); default pcm16")
    render.add_argument("--polyphony", type=_positive_int, default=256, metavar="VOICES",
                        help=f"voices at once (default: %(default)s, at most {MAX_POLYPHONY})")
    render.add_argument("--max-seconds", type=_positive_float, default=DEFAULT_MAX_RENDER_SECONDS, metavar="S",
                        help=f"refuse a MIDI file longer than this (default {DEFAULT_MAX_RENDER_SECONDS:g} s,"
                        " 2 hours)")
    render.add_argument("--threads", type=int, choices=(1, 2), metavar="N",
                        help="1, or 2 to share the voices with a second CPU core "
                             "(default: 2 where the process may use two cores)")
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_synth_options(render, config_keys=False)

    instruments = sub.add_parser("instruments", help="list the presets of a SoundFont or of the built-in bank")
    instruments.add_argument("--soundfont", metavar="PATH", action="append",
                             help="an SF2 or SF3 file, or builtin; more than once, a stack "
                                  "(default: the system's General MIDI SoundFont, "
                                  "/usr/share/sounds/sf2/default-GM.sf2 and the other usual paths, else builtin)")
    instruments.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        module = importlib.import_module(COMMANDS[args.command])
        result: int = module.main(args)
    except KeyboardInterrupt:
        # Ctrl-C outside a command's own handler (while importing, connecting or loading): a line, not a traceback.
        print(f"mxfd {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``mxfd instruments | head``): what was left to say has nowhere to go.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a process ended by SIGPIPE
    return result


if __name__ == "__main__":
    sys.exit(main())
