"""``mxfd play`` onsets across JACK xruns: how far each note lands from the file's time.

A client's events are stamped on the master clock and mapped to frames
through the audio pin's clock reports.  An xrun on JACK's dummy driver moves
its cycles' schedule (it anchors them at the late wake-up) and resets JACK's
own filtered frame time, which then takes seconds to converge.  This plays
a file of short notes (off the period grid) through ``mxfd run`` while a
*staller* JACK client overruns its cycle every ``--stall-every`` seconds (an
xrun each time, at a known rate), records the output with the tests' ear
and measures each note's start in time (the ear's cycle log), against the
file's.  Notes whose start is within 0.1 s after an xrun (before the daemon's
next clock reports) are counted apart.

``--baseline DIR`` runs the daemon from another checkout (a ``git worktree``
of an older revision) in the same run, for a before/after table.

    .venv/bin/python benchmarks/bench_play_timing.py [--notes 60] [--pin] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_latency import Mxfd, start_jackd, stop  # noqa: E402
from tests.e2e.ears import Ear  # noqa: E402
from tests.e2e.test_client import onsets  # noqa: E402
from tests.e2e.test_daemon_pin import staccato_file  # noqa: E402

SF2 = "/usr/share/sounds/sf2/TimGM6mb.sf2"
#: Before a note's start: the daemon re-anchors at its next clock report (8 cycles) after JACK tells it.
NEAR_S = 0.1

#: Takes one core for ``spin`` seconds every ``every`` seconds at SCHED_FIFO 99, above JACK's own threads:
#: the dummy driver then wakes late, as on a machine whose CPU is taken by another guest.
THIEF = r"""
import os, sys, time
cpu, every, spin = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
os.sched_setaffinity(0, {cpu})
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
time.sleep(cpu * every / 2)
while True:
    time.sleep(every)
    end = time.perf_counter() + spin
    while time.perf_counter() < end:
        pass
"""


def melody(n: int, seed: int = 7) -> list[tuple[float, int]]:
    """``n`` notes 0.26 to 0.32 s apart (never on the period grid; 0.1 s of silence between), five pitches."""
    rng = random.Random(seed)
    t, out = 0.3, []
    for k in range(n):
        out.append((round(t * 960) / 960, 72 + (k % 5) * 2))  # on the file's ticks (960 a second)
        t += rng.uniform(0.26, 0.32)
    return out


def run(label: str, checkout: Path, pin: bool, notes: list[tuple[float, int]], stall_every: float,
        spin_ms: float) -> Optional[dict[str, float]]:
    name = f"mxfd-play-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="mxfd-play-"))
    (tmp / "run").mkdir()
    path = str(tmp / "melody.mid")
    staccato_file(path, notes)
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, XDG_RUNTIME_DIR=str(tmp / "run"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")])))
    os.environ["JACK_DEFAULT_SERVER"] = name
    config = '[midi]\napi = "jack"\n[synth]\nreverb = false\nchorus = false\n'
    if pin:
        config += f'soundfont = "{SF2}"\n[audio]\npin = "jack"\n'
    else:
        config += 'soundfont = "builtin"\n'
    jackd = start_jackd(name, str(tmp / "jackd.log"))
    thieves: list[subprocess.Popen[bytes]] = []
    try:
        d = Mxfd(tmp, config, env)
        ear = None
        try:
            d.wait_ready()
            ear = Ear("bench-ear", seconds=120.0)
            ear.connect(r"^mxfd-out:out_")
            time.sleep(1.0)
            thieves = [subprocess.Popen([sys.executable, "-c", THIEF, str(cpu), str(stall_every), str(spin_ms / 1000)])
                       for cpu in sorted(os.sched_getaffinity(0))]
            time.sleep(1.0)
            if any(t.poll() is not None for t in thieves):
                print(f"{label}: the CPU thieves could not run at SCHED_FIFO 99 (no real-time permission?): "
                      "measured without them")
            mark = ear.mark()
            sock = str(tmp / "run" / "mxfd" / "mxfd.sock")
            played = subprocess.run([sys.executable, "-m", "mxfd", "play", "--socket", sock, path], cwd=checkout,
                                    env=env, capture_output=True, text=True, timeout=120)
            if played.returncode != 0:
                print(f"{label}: mxfd play failed: {played.stderr.strip()}")
                return None
            time.sleep(0.5)
            found = onsets(ear.since(mark), ear.rate)
            marks = [m for m, _ in ear.xruns if m >= mark]
            if len(found) != len(notes):
                print(f"{label}: heard {len(found)} note starts of {len(notes)} (an xrun may cut one)")
                return None
            # Each start less the file's time: a constant (the latency) where the timing is right.
            lead = [ear.time_of(mark + at) / 1e6 - at_s * 1000 for (at_s, _), at in zip(notes, found, strict=True)]
            is_near = [any(mark + at - NEAR_S * ear.rate <= m <= mark + at + 0.05 * ear.rate for m in marks)
                       for at in found]
            latency = float(np.median([x for x, n in zip(lead, is_near, strict=True) if not n]))
            near = [abs(x - latency) for x, n in zip(lead, is_near, strict=True) if n]
            far = [abs(x - latency) for x, n in zip(lead, is_near, strict=True) if not n]
        finally:
            if ear is not None:
                ear.close()
            d.close()
    finally:
        for thief in thieves:
            stop(thief)
        xruns = sum("XRun" in ln for ln in (tmp / "jackd.log").read_text(errors="replace").splitlines())
        stop(jackd)
        shutil.rmtree(tmp, ignore_errors=True)
    a = np.array(far)
    return {"notes": len(found), "xruns": xruns, "near": len(near), "median": float(np.median(a)),
            "p95": float(np.percentile(a, 95)), "max": float(a.max()), "over": int((a > 0.25).sum())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=60)
    ap.add_argument("--pin", action="store_true", help="the JACK-native pin (TimGM6mb) instead of PortAudio (built-in)")
    ap.add_argument("--stall-every", type=float, default=0.7, help="seconds between the thief's bursts on a core")
    ap.add_argument("--spin-ms", type=float, default=4.0, help="how long each burst takes the core (ms)")
    ap.add_argument("--baseline", type=Path, help="another checkout to run the daemon from, in the same run")
    a = ap.parse_args()
    notes = melody(a.notes)
    rows = [("this checkout", ROOT)] + ([("baseline " + a.baseline.name, a.baseline)] if a.baseline else [])
    print(f"mxfd play, {a.notes} notes 0.26-0.32 s apart, {'JACK pin' if a.pin else 'PortAudio pin'}, JACK dummy "
          f"48000 Hz / 128, each core taken for {a.spin_ms:g} ms every {a.stall_every:g} s at SCHED_FIFO 99")
    print("error: a note's start, in time as heard, less the file's time and the median latency; notes within "
          f"{NEAR_S:g} s after an xrun counted apart")
    print("| daemon | notes | JACK xruns | near an xrun | median ms | p95 ms | max ms | over 0.25 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for label, checkout in rows:
        r = run(label, checkout, a.pin, notes, a.stall_every, a.spin_ms)
        if r is not None:
            print(f"| {label} | {r['notes']} | {r['xruns']} | {r['near']} | {r['median']:.3f} | {r['p95']:.3f} | "
                  f"{r['max']:.3f} | {r['over']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
