"""The ``mxfd`` command: run, ports, play, record, render, status.

This module only parses arguments; each command lives with the part of
mxfd it belongs to and is imported when it runs, so ``mxfd render`` never
loads the audio stack and ``mxfd status`` never loads numpy.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

#: command -> module whose ``main(args) -> int`` runs it
COMMANDS = {
    "run": "mxfd.daemon.service",
    "ports": "mxfd.daemon.ports",
    "play": "mxfd.client.commands",
    "record": "mxfd.client.commands",
    "status": "mxfd.client.commands",
    "render": "mxfd.render",
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mxfd", description="MIDI device bridge daemon")
    p.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground (what systemd starts)")
    run.add_argument("--config", metavar="PATH", help="TOML config (default: ~/.config/mxfd/mxfd.toml)")
    run.add_argument("--midi-api", choices=("alsa", "jack"), help="MIDI backend")
    run.add_argument("--audio-device", metavar="NAME", help="audio output device (name or index)")
    run.add_argument("--rate", type=_positive_int, metavar="HZ", help="sample rate")
    run.add_argument("--period", type=_positive_int, metavar="FRAMES", help="audio period size")
    run.add_argument("-v", "--verbose", action="count", default=0, help="more log output")

    ports = sub.add_parser("ports", help="list MIDI inputs and audio devices")
    ports.add_argument("--config", metavar="PATH")
    ports.add_argument("--midi-api", choices=("alsa", "jack"))

    for name, helptext in (
        ("play", "play a MIDI file through the running daemon"),
        ("record", "record what is played to a MIDI file"),
        ("status", "show the daemon's state and counters"),
    ):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--socket", metavar="PATH", help="daemon socket (default: $XDG_RUNTIME_DIR/mxfd/mxfd.sock)")
        if name == "play":
            c.add_argument("file", metavar="FILE.mid")
            c.add_argument("--loop", action="store_true", help="play until interrupted")
        elif name == "record":
            c.add_argument("out", metavar="OUT.mid")
            c.add_argument("--seconds", type=_positive_float, metavar="N", help="stop after N seconds")
            c.add_argument("--port", metavar="PATTERN", help="only inputs whose name matches")
            c.add_argument("--last", type=_positive_float, metavar="SECONDS",
                           help="save what was played in the last SECONDS (up to 300) and exit")
        else:
            c.add_argument("--json", action="store_true", help="machine-readable output")

    render = sub.add_parser("render", help="render a MIDI file to WAV offline")
    render.add_argument("input", metavar="IN.mid")
    render.add_argument("output", metavar="OUT.wav")
    render.add_argument("--rate", type=_positive_int, default=48000, metavar="HZ", help="sample rate")
    render.add_argument("--block", type=_positive_int, default=128, metavar="FRAMES", help="render block")
    render.add_argument("--format", choices=("pcm16", "pcm24", "float"), default="pcm16",
                        help="sample format of the WAV")
    render.add_argument("--polyphony", type=_positive_int, default=256, metavar="VOICES")
    render.add_argument("--no-progress", action="store_true", help="no progress bar")
    render.add_argument("--soundfont", metavar="PATH",
                        help='SoundFont 2 file, or "builtin" (default: the system\'s GM soundfont, else builtin)')
    render.add_argument("--gain", type=float, default=0.0, metavar="DB",
                        help="output gain in dB (0: as loud as FluidSynth at its default gain)")
    render.add_argument("--reverb", choices=("on", "off"), default="on", help="reverb")
    render.add_argument("--chorus", choices=("on", "off"), default="on", help="chorus")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    result: int = module.main(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
