"""Key-to-sound latency of ``mxfd run`` on a headless PipeWire (quantum 128 at 48 kHz).

Starts the tests' PipeWire rig (:mod:`tests.pipewire`: a session bus,
pipewire, wireplumber, pipewire-pulse, a null sink as the speakers), then
``mxfd run`` under PipeWire's libjack (as ``pw-jack mxfd run``), and runs
``../shared/tools/latency_probe.py --program 80`` under PipeWire's libjack
too: note-ons at known frames into ``mxfd:in``, onsets found at mxfd's own
port (``mxfd-out:out_0``) and at the sink's monitor (``monitor_FL``, what
the speakers get).  mxfd runs twice: on a SoundFont (``--soundfont``,
TimGM6mb by default), where ``[audio] pin = "auto"`` chooses the JACK pin,
and on the built-in bank, which plays through PortAudio's JACK host API.
FluidSynth (``fluidsynth -a jack -m jack`` on the same font) is measured in
the same run.  ``--alsa`` also measures the PortAudio pin through ALSA's
``pipewire`` PCM (pipewire-alsa), the path ``"default"`` took before it
meant JACK's output when a JACK server answers.

Run: ``.venv/bin/python benchmarks/bench_pipewire_latency.py [--runs 3] [--alsa]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_latency import send_program  # noqa: E402
from tests.e2e.test_daemon import Daemon  # noqa: E402
from tests.pipewire import SINK, PipeWireRig  # noqa: E402

#: ``../shared`` beside the checkout (a worktree one level further down finds it one level up).
PROBE = next((p for p in (ROOT.parent / "shared" / "tools" / "latency_probe.py",
                          ROOT.parents[1] / "shared" / "tools" / "latency_probe.py") if p.exists()),
             ROOT.parent / "shared" / "tools" / "latency_probe.py")


def probe(rig: PipeWireRig, audio_out: str, notes: int, midi_in: str = "^mxfd:in") -> dict[str, Any]:
    send_program(midi_in, rig.jack_env())  # the probe's own may be lost: its notes would be a piano's
    out = subprocess.run(
        [sys.executable, str(PROBE), "--program", "80", "--notes", str(notes), "--midi-in", midi_in,
         "--audio-out", audio_out],
        env=rig.jack_env(), capture_output=True, text=True, timeout=120,
    )
    if out.returncode != 0:
        raise SystemExit(f"latency probe failed: {out.stderr.strip()}")
    result: dict[str, Any] = json.loads(out.stdout)
    if result.get("latency_ms_median") is None:
        raise SystemExit(f"the probe heard nothing at {audio_out}: {result}")
    return result


def row(label: str, out: str, res: list[dict[str, Any]], runs: int, notes: int) -> None:
    print(f"| {label} | {out} | {min(r['latency_ms_median'] for r in res):.3f}-"
          f"{max(r['latency_ms_median'] for r in res):.3f} | {min(r['latency_ms_min'] for r in res):.3f} | "
          f"**{max(r['latency_ms_max'] for r in res):.3f}** | {max(r['jitter_ms_stdev'] for r in res):.3f} | "
          f"{sum(r['heard'] for r in res)}/{runs * notes} |", flush=True)


def measure(rig: PipeWireRig, args: list[str], outs: list[str], runs: int, notes: int,
            soundfont: str = "builtin") -> None:
    d = Daemon(Path(tempfile.mkdtemp(prefix="mxfd-bench-pw-")), '[midi]\napi = "auto"\n', *args, env=rig.jack_env(),
               soundfont=soundfont)  # fmt: skip
    try:
        if d.wait_for("READY=1", 60.0) is None:
            raise SystemExit("mxfd did not report READY=1:\n" + d.output())
        time.sleep(1.0)  # PipeWire activates the links of a new client some cycles after they are made
        audio = d.status()["audio"]
        bank = "built-in bank" if soundfont == "builtin" else os.path.basename(soundfont)
        label = f"mxfd, {'JACK pin' if audio.get('pin') == 'jack' else audio['hostapi']} ({bank}) {' '.join(args)}"
        for out in outs:
            row(label.strip(), out, [probe(rig, out, notes) for _ in range(runs)], runs, notes)
    finally:
        d.close()


def measure_fluidsynth(rig: PipeWireRig, soundfont: str, runs: int, notes: int) -> None:
    fluid = shutil.which("fluidsynth")
    if fluid is None:
        print("(fluidsynth is not installed: no comparison)")
        return
    # Its shell reads the pipe, which keeps it running until the pipe is closed; -j: outputs to the sink.
    fs = subprocess.Popen([fluid, "-a", "jack", "-m", "jack", "-j", "-o", "midi.autoconnect=0", "-r", "48000",
                           soundfont], env=rig.jack_env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(2.0)
        label = f"FluidSynth ({os.path.basename(soundfont)})"
        for out in (r"^fluidsynth[^:]*:(left|l_00)$", f"^{SINK}:monitor_FL$"):
            res = [probe(rig, out, notes, r"^fluidsynth[^:]*:midi_00$") for _ in range(runs)]
            row(label, out, res, runs, notes)
    finally:
        assert fs.stdin is not None
        fs.stdin.close()
        try:
            fs.wait(5)
        except subprocess.TimeoutExpired:
            fs.kill()
            fs.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--notes", type=int, default=20)
    ap.add_argument("--alsa", action="store_true", help="also the PortAudio pin through pipewire-alsa")
    ap.add_argument("--soundfont", default="/usr/share/sounds/sf2/TimGM6mb.sf2")
    a = ap.parse_args()
    if not PROBE.exists():
        raise SystemExit(f"{PROBE} not found")
    rig = PipeWireRig()
    rig.start()
    try:
        print("| output | measured at | median ms | min ms | max ms | jitter (stdev) ms | heard |")
        print("|---|---|---|---|---|---|---|")
        outs = ["^mxfd-out:out_0$", f"^{SINK}:monitor_FL$"]
        measure(rig, [], outs, a.runs, a.notes, a.soundfont)
        measure(rig, [], outs, a.runs, a.notes)
        measure_fluidsynth(rig, a.soundfont, a.runs, a.notes)
        if a.alsa:
            measure(rig, ["--audio-device", "pipewire"], [f"^{SINK}:monitor_FL$"], a.runs, a.notes)
    finally:
        rig.stop()


if __name__ == "__main__":
    main()
