"""The SoundFont engine: render cost per block, and ``mxfd render`` against ``fluidsynth -F``.

Tables:

1. One 128-frame block (48 kHz: a 2.67 ms budget) with 0, 16, 64 and 256
   voices sounding (sustained TimGM6mb programs on 15 channels, effects off),
   best of several runs: the compiled call alone (``render_block``) and the
   whole miniport render (event intake and the master section included).
   Targets (issue 8): 0 voices under 1 % of the budget, 256 under 15 %.
2. The dense files of ``bench_synth.py`` (64 and 256 notes held on 15
   channels, re-struck every 0.5 s, 30 s long), rendered by ``mxfd render
   --soundfont FONT --reverb off --chorus off`` and by ``fluidsynth -ni -R 0
   -C 0 -F`` with the same font, each a whole fresh process, best of N, in
   the same run; and the peak RSS of each.  mxfd with ``--threads 1`` and
   ``--threads 2`` (its default on two cores), FluidSynth with its default
   ``synth.cpu-cores=1`` and with 2.  Target: 1.5x FluidSynth's speed.
3. Start-up: ``mxfd render`` of a one-note file (warm compile cache).
4. With ``--real``: MIDI files made by others (Debian's planetblupi-music-midi,
   which ``make bench`` installs), rendered by one ``mxfd render --out-dir``
   over all of them against ``fluidsynth -F`` run once per file, effects off
   on both.  Target: at least 1.0x FluidSynth's total time.

Run: ``.venv/bin/python benchmarks/bench_sf_render.py [--seconds 30] [--repeat 3] [--real]``.
Timings depend on the machine's load; treat figures from a busy machine as upper bounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import mido
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_synth import CHANNELS, PROGRAMS, dense_midi  # noqa: E402

from mxfd.core.allocator import Allocator  # noqa: E402
from mxfd.synth.engine import SoundFontSynth  # noqa: E402
from mxfd.synth.engine import layout as L  # noqa: E402
from mxfd.synth.engine.block import render_block  # noqa: E402
from mxfd.synth.soundfont import load_soundfont  # noqa: E402

RATE = 48000
BLOCK = 128
TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
#: Real MIDI files made by others, from Debian's planetblupi-music-midi.
REAL_MIDI_DIR = "/usr/share/planetblupi/music"


def block_times(font_path: str, voices: int, repeat: int) -> tuple[float, float, int]:
    """Best seconds per block (compiled call, whole render) with ``voices`` held, and the voices sounding."""
    synth = SoundFontSynth(load_soundfont(font_path), RATE, polyphony=256, block_frames=BLOCK, reverb=False,
                           chorus=False)
    alloc = Allocator(pool_size=1024)
    msgs = [bytes([0xC0 | ch, prog]) for ch, prog in zip(CHANNELS, PROGRAMS, strict=True)]
    notes = [bytes([0x90 | CHANNELS[k % 15], 28 + (k // 15) * 4 + (k % 15) % 4, 90]) for k in range(256)]
    for m in msgs:
        synth.put_message(alloc.make_event(m, 0))
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    synth.render(out)
    k = synth.arrays()["counters"]
    for m in notes:  # start notes until the wanted number of voices sound (a preset may start two per note)
        if k[L.K_SOUNDING] >= voices:
            break
        synth.put_message(alloc.make_event(m, 0))
        synth.render(out)
    for _ in range(50):
        synth.render(out)
    n = 300
    best_call = best_render = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            render_block(synth.engine_state, 0, BLOCK)
        best_call = min(best_call, (time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        for _ in range(n):
            synth.render(out)
        best_render = min(best_render, (time.perf_counter() - t0) / n)
    return best_call, best_render, int(k[L.K_SOUNDING])


# A fork of this process counts this process's resident pages as the child's until it execs, so the peak
# RSS of a command is measured from a small Python process of its own.
_RUNNER = """
import os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(time.perf_counter() - t0, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; (wall seconds, peak RSS MiB) of that process alone."""
    # As installed, mxfd's modules have their bytecode compiled; a shell that forbids writing it would
    # charge every start the compilation of about fifty modules (0.13 s).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([sys.executable, "-c", _RUNNER, *cmd], capture_output=True, text=True, check=True, env=env)
    wall, rss, code = done.stdout.split()
    if int(code):
        raise RuntimeError(f"{' '.join(cmd)} failed ({code})")
    return float(wall), float(rss)


def one_note(path: Path) -> Path:
    mid = mido.MidiFile(ticks_per_beat=480)
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.Message("note_on", note=60, velocity=100, time=0))
    tr.append(mido.Message("note_off", note=60, velocity=0, time=480))
    mid.save(path)
    return path


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the dense files")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fonts", nargs="*", default=[TIMGM, FLUIDR3])
    ap.add_argument("--real", action="store_true", help=f"also render the MIDI files in {REAL_MIDI_DIR} (slow)")
    args = ap.parse_args(argv)
    mxfd = [sys.executable, "-m", "mxfd.cli"]
    fluidsynth = shutil.which("fluidsynth")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    budget = BLOCK / RATE
    print(f"\nOne {BLOCK}-frame block at {RATE} Hz ({budget * 1e3:.2f} ms budget), TimGM6mb, best of {args.repeat}")
    print("| voices | compiled call µs | whole render µs | % of budget |")
    print("|---|---|---|---|")
    for v in (0, 16, 64, 256):
        call, render, sounding = block_times(TIMGM, v, args.repeat)
        print(f"| {sounding} | {call * 1e6:.1f} | {render * 1e6:.1f} | {render / budget * 100:.2f} |")

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.wav")
        note = one_note(Path(tmp) / "note.mid")
        print("\nStart-up: mxfd render of a one-note file (warm cache), best of", args.repeat)
        for font in args.fonts:
            best = min(run_measured([*mxfd, "render", str(note), out, "--soundfont", font, "--reverb", "off",
                                     "--chorus", "off", "--no-progress"])[0] for _ in range(args.repeat))
            print(f"- {os.path.basename(font)}: {best:.2f} s")
        print(f"\nDense files ({args.seconds:.0f} s), effects off on both, whole processes, best of {args.repeat};"
              " mxfd with one render thread and with two (its default on two cores), FluidSynth with its"
              " default (one) and with synth.cpu-cores=2")
        print("| font | notes | mxfd 1 thread s | mxfd 2 threads s | fluidsynth -F s | fluidsynth 2 cores s "
              "| speed vs FluidSynth (defaults) | RSS mxfd / fluidsynth MiB |")
        print("|---|---|---|---|---|---|---|---|")
        for font in args.fonts:
            for notes in (64, 256):
                path = dense_midi(Path(tmp) / f"dense{notes}.mid", notes, args.seconds)
                ours = {t: min(run_measured([*mxfd, "render", str(path), out, "--soundfont", font, "--reverb", "off",
                                             "--chorus", "off", "--no-progress", "--threads", str(t)])
                               for _ in range(args.repeat)) for t in (1, 2)}
                theirs = {c: (float("nan"), float("nan")) for c in (1, 2)}
                if fluidsynth:
                    theirs = {c: min(run_measured([fluidsynth, "-ni", "-R", "0", "-C", "0", "-r", str(RATE),
                                                   "-o", "synth.polyphony=256", "-o", f"synth.cpu-cores={c}",
                                                   "-F", out, font, str(path)])
                                     for _ in range(args.repeat)) for c in (1, 2)}
                print(f"| {os.path.basename(font)} | {notes} | {ours[1][0]:.2f} | {ours[2][0]:.2f} | "
                      f"{theirs[1][0]:.2f} | {theirs[2][0]:.2f} | {theirs[1][0] / ours[2][0]:.2f}x | "
                      f"{ours[2][1]:.0f} / {theirs[1][1]:.0f} |")
        if args.real and fluidsynth:
            real_files(mxfd, fluidsynth, args.fonts, Path(tmp))
    return 0


def real_files(mxfd: list[str], fluidsynth: str, fonts: list[str], tmp: Path) -> None:
    """One ``mxfd render --out-dir`` over every file against one ``fluidsynth -F`` run per file."""
    files = sorted(str(p) for p in Path(REAL_MIDI_DIR).glob("*.mid"))
    if not files:
        raise SystemExit(f"no MIDI files in {REAL_MIDI_DIR}: install planetblupi-music-midi (make bench does)")
    print(f"\n{len(files)} MIDI files made by others ({REAL_MIDI_DIR}), effects off on both, whole processes")
    print("| font | mxfd render --out-dir s | fluidsynth -F, one run a file, s | speed vs FluidSynth |")
    print("|---|---|---|---|")
    for font in fonts:
        ours, _ = run_measured([*mxfd, "render", "--out-dir", str(tmp / "batch"), "--soundfont", font,
                                "--reverb", "off", "--chorus", "off", "--no-progress", *files])
        theirs = sum(run_measured([fluidsynth, "-ni", "-R", "0", "-C", "0", "-r", str(RATE),
                                   "-F", str(tmp / "fs.wav"), font, f])[0] for f in files)
        print(f"| {os.path.basename(font)} | {ours:.1f} | {theirs:.1f} | {theirs / ours:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
