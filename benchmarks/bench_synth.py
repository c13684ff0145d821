"""The built-in bank on the synth miniport: render cost per block, ``mxfd render`` speed and memory.

Tables:

1. Render time of one 128-frame block (48 kHz: a 2.67 ms budget) with 64, 128
   and 256 voices sounding (sustained programs on 15 channels, effects on),
   best of several runs; the share of the real-time budget on one core.
   Target: 256 voices under 25 %.
2. Offline rendering of dense MIDI files generated here (64 and 256 notes
   held on 15 channels and re-struck every 0.5 s, 30 s long): the real-time
   factor of ``mxfd render`` (a fresh process: start-up and bank building
   included) and of its render loop alone (in-process ``render_file``),
   against ``fluidsynth -F`` fast rendering of the same file (TimGM6mb,
   polyphony 256) in the same run; and the peak memory (RSS) of each process.

Run: ``.venv/bin/python benchmarks/bench_synth.py [--seconds 30] [--repeat 3]``.
Timings depend on the machine and its load (other processes share the CPU):
treat a figure from a busy machine as an upper bound.
"""

from __future__ import annotations

import argparse
import io
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

from mxfd.core.allocator import Allocator
from mxfd.render import SynthChoice, load_song, render_file
from mxfd.synth import Synth

RATE = 48000
BLOCK = 128
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
CHANNELS = [c for c in range(16) if c != 9]
# Sustaining programs, so held notes keep sounding: strings, organs, pads, brass, reeds.
PROGRAMS = [48, 19, 89, 61, 52, 16, 65, 90, 40, 71, 50, 94, 21, 56, 42]


def dense_midi(path: Path, notes: int, seconds: float, restrike: float = 0.5) -> Path:
    """``notes`` keys held on 15 channels, all re-struck every ``restrike`` seconds."""
    mid = mido.MidiFile(type=0, ticks_per_beat=480)  # 120 bpm: 960 ticks per second
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    for ch, prog in zip(CHANNELS, PROGRAMS, strict=True):
        tr.append(mido.Message("program_change", channel=ch, program=prog, time=0))
    keys = [(CHANNELS[k % 15], 28 + (k // 15) * 4 + (k % 15) % 4) for k in range(notes)]
    assert len(set(keys)) == notes
    step = round(restrike * 960)
    strikes = int(seconds / restrike)
    for s in range(strikes):
        first = True
        if s:
            for ch, key in keys:
                tr.append(mido.Message("note_off", channel=ch, note=key, velocity=0, time=step if first else 0))
                first = False
        for ch, key in keys:
            tr.append(mido.Message("note_on", channel=ch, note=key, velocity=90, time=0))
    for k, (ch, key) in enumerate(keys):
        tr.append(mido.Message("note_off", channel=ch, note=key, velocity=0, time=step if k == 0 else 0))
    mid.save(path)
    return path


def block_times(voices: int, repeat: int) -> tuple[float, int]:
    """Best time (s) of one 128-frame render with ``voices`` notes held, and the voices that sounded."""
    synth = Synth(None, RATE, polyphony=256)  # the built-in bank
    alloc = Allocator(pool_size=1024)
    msgs = [bytes([0xC0 | ch, prog]) for ch, prog in zip(CHANNELS, PROGRAMS, strict=True)]
    msgs += [bytes([0x90 | CHANNELS[k % 15], 28 + (k // 15) * 4 + (k % 15) % 4, 90]) for k in range(voices)]
    for m in msgs:
        synth.put_message(alloc.make_event(m, 0))
    out = np.zeros((BLOCK, 2), dtype=np.float32)
    for _ in range(100):
        synth.render(out)
    best = float("inf")
    n = 300
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(n):
            synth.render(out)
        best = min(best, (time.perf_counter() - t0) / n)
    return best, int(synth.stats()["voices"])  # type: ignore[call-overload]


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB) of that process alone."""
    with tempfile.TemporaryFile() as err:  # not a pipe: FluidSynth warns per stolen voice and would block on it
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            tail = err.read()[-500:].decode(errors="replace").strip()
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {tail}")
    return wall, usage.ru_maxrss / 1024.0


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the dense files")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is shown)")
    args = ap.parse_args(argv)

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, {os.cpu_count()} CPUs")
    if hasattr(os, "getloadavg"):
        print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    budget = BLOCK / RATE
    print()
    print(f"Render time per {BLOCK}-frame block at {RATE} Hz (budget {budget * 1e3:.2f} ms), effects on")
    print(f"{'voices':>8} {'sounding':>9} {'us/block':>10} {'% of budget':>12}")
    for v in (64, 128, 256):
        t, sounding = block_times(v, args.repeat)
        print(f"{v:>8} {sounding:>9} {t * 1e6:>10.1f} {t / budget * 100:>11.1f}%")

    fluid = shutil.which("fluidsynth")
    have_sf = os.path.exists(SOUNDFONT)
    print()
    print(f"Offline render of dense files ({args.seconds:.0f} s, notes re-struck every 0.5 s), best of {args.repeat}")
    header = f"{'file':>10} {'renderer':<34} {'wall s':>7} {'x real time':>12} {'peak RSS MiB':>13}"
    print(header)
    with tempfile.TemporaryDirectory() as tmp:
        for notes in (64, 256):
            path = dense_midi(Path(tmp) / f"dense{notes}.mid", notes, args.seconds)
            length = mido.MidiFile(path).length
            rows: dict[str, tuple[float, float]] = {}

            def best(cmd: list[str]) -> tuple[float, float]:
                results = [run_measured(cmd) for _ in range(args.repeat)]
                return min(r[0] for r in results), max(r[1] for r in results)

            out = str(Path(tmp) / "out.wav")
            for block in (BLOCK, 1024):
                cmd = [sys.executable, "-m", "mxfd", "render", str(path), out, "--no-progress", "--block", str(block),
                       "--soundfont", "builtin"]
                rows[f"mxfd render --block {block}"] = best(cmd)
            song = load_song(str(path))
            loop = float("inf")
            stolen = 0
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                result = render_file(song, io.BytesIO(), rate=RATE, block=BLOCK, synth_choice=SynthChoice(None))
                loop = min(loop, time.perf_counter() - t0)
                stolen = int(result.stats["stolen"])  # type: ignore[call-overload]
            rows[f"mxfd render_file loop, block {BLOCK}"] = (loop, float("nan"))
            if fluid and have_sf:
                cmd = [fluid, "-ni", "-q", "-o", "synth.polyphony=256", "-F", out, "-r", str(RATE)]
                cmd += [SOUNDFONT, str(path)]
                rows["fluidsynth -F (TimGM6mb)"] = best(cmd)
            for name, (wall, rss) in rows.items():
                rss_text = f"{rss:13.1f}" if rss == rss else f"{'-':>13}"
                print(f"{notes:>6} nts {name:<34} {wall:7.2f} {length / wall:12.1f} {rss_text}")
            if "fluidsynth -F (TimGM6mb)" in rows:
                fs = length / rows["fluidsynth -F (TimGM6mb)"][0]
                mine = length / rows[f"mxfd render --block {BLOCK}"][0]
                print(f"{'':>10} ratio mxfd render / fluidsynth: {mine / fs:.2f}  (voices stolen by mxfd: {stolen})")
            else:
                print(f"{'':>10} fluidsynth or {SOUNDFONT} not installed: no comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
