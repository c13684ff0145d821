"""Audio output pin: underruns and render-thread wake-up latency on JACK dummy.

Starts a private ``jackd -d dummy`` (48 kHz, period 128), plays a cheap
signal (a 440 Hz sine copied from a table) through :class:`AudioOutput` for
``--seconds`` at each ``--periods`` value and prints, per run:

* frames played, ``ring underruns`` (a callback found no frame queued: the
  render thread was late), ``xruns`` (PortAudio's output_underflow flag: JACK
  itself missed a cycle, e.g. the dummy driver's timer woke late on a busy
  machine), and the JACK server's own XRun log lines;
* the wake-up latency of the render thread: from the worker callback's
  stamp (just before it writes the notify byte) to the render thread running
  in the daemon process, i.e. the pipe + scheduler + GIL hop;
* the latency the pin adds: ``periods × period``;
* CPU use of the daemon process (render thread with this trivial render)
  and of the PortAudio worker.

Run: ``.venv/bin/python benchmarks/bench_audio_out.py [--seconds 60] [--periods 2 1]``.
The CPU is shared with whatever else runs; repeat on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxfd.core.frames import AudioView  # noqa: E402
from mxfd.io.audio import AudioOutput  # noqa: E402

RATE = 48000
PERIOD = 128


class Sine:
    def __init__(self) -> None:
        cycle = RATE // 40  # 440 Hz: a whole number of cycles in 1200 samples
        t = np.arange(cycle + PERIOD) / RATE
        self.table = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        self.cycle = cycle

    def __call__(self, frame: AudioView, position: int) -> None:
        src = self.table[position % self.cycle :][:PERIOD]
        np.copyto(frame[:, 0], src)
        np.copyto(frame[:, 1], src)


def start_jackd(name: str, log_path: str) -> subprocess.Popen[bytes]:
    jackd = shutil.which("jackd")
    if jackd is None:
        raise SystemExit("jackd not found (apt install jackd2)")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [jackd, "--no-realtime", "-n", name, "-d", "dummy", "-r", str(RATE), "-p", str(PERIOD)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    time.sleep(1.0)
    if proc.poll() is not None:
        raise SystemExit(f"jackd exited with {proc.returncode}; see {log_path}")
    return proc


def jack_xruns(log_path: str) -> int:
    with open(log_path, errors="replace") as f:
        return sum("XRun" in line for line in f)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(periods: int, seconds: float, log_path: str) -> dict[str, float]:
    out = AudioOutput(Sine(), rate=RATE, period=PERIOD, periods=periods, client_name="mxfd-bench")
    out.start()
    if out.state != "running":
        out.stop()
        raise SystemExit(f"audio output did not start: {out.status()['message']}")
    time.sleep(0.5)  # past start-up
    s0 = out.status()
    x0 = jack_xruns(log_path)
    w0 = len(out.wake_latencies_ns())
    worker = out.worker_pid
    assert worker is not None
    c0 = (cpu_seconds(os.getpid()), cpu_seconds(worker))
    time.sleep(seconds)
    c1 = (cpu_seconds(os.getpid()), cpu_seconds(worker))
    s1 = out.status()
    x1 = jack_xruns(log_path)
    wake = out.wake_latencies_ns()[w0:] / 1000.0
    out.stop()
    return {
        "periods": periods,
        "seconds": seconds,
        "played": s1["frames_played"] - s0["frames_played"],
        "ring_underruns": s1["ring_underruns"] - s0["ring_underruns"],
        "xruns": s1["xruns"] - s0["xruns"],
        "jack_xrun_lines": x1 - x0,
        "p50": float(np.percentile(wake, 50)),
        "p90": float(np.percentile(wake, 90)),
        "p99": float(np.percentile(wake, 99)),
        "p999": float(np.percentile(wake, 99.9)),
        "max": float(wake.max()),
        "added_ms": periods * PERIOD / RATE * 1000,
        "cpu_daemon": (c1[0] - c0[0]) / seconds * 100,
        "cpu_worker": (c1[1] - c0[1]) / seconds * 100,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--periods", type=int, nargs="+", default=[2, 1])
    args = ap.parse_args()
    name = f"mxfd-bench-{os.getpid()}"
    log_path = f"/tmp/{name}.jackd.log"
    os.environ["JACK_DEFAULT_SERVER"] = name
    jackd = start_jackd(name, log_path)
    try:
        rows = [run(p, args.seconds, log_path) for p in args.periods]
    finally:
        jackd.send_signal(signal.SIGTERM)
        jackd.wait(10)
    print(f"JACK dummy {RATE} Hz, period {PERIOD}; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} CPUs")
    print(
        f"{'periods':>7} {'added ms':>8} {'seconds':>7} {'played':>7} {'ring underruns':>14} {'xruns':>5} "
        f"{'jackd XRun lines':>16} | wake-up µs: {'p50':>6} {'p90':>6} {'p99':>6} {'p99.9':>6} {'max':>7} "
        f"| CPU %: {'daemon':>6} {'worker':>6}"
    )
    for r in rows:
        print(
            f"{r['periods']:>7} {r['added_ms']:>8.2f} {r['seconds']:>7.0f} {r['played']:>7.0f} "
            f"{r['ring_underruns']:>14.0f} {r['xruns']:>5.0f} {r['jack_xrun_lines']:>16.0f} | "
            f"{'':>11} {r['p50']:>6.0f} {r['p90']:>6.0f} {r['p99']:>6.0f} {r['p999']:>6.0f} {r['max']:>7.0f} "
            f"| {'':>6} {r['cpu_daemon']:>6.1f} {r['cpu_worker']:>6.1f}"
        )


if __name__ == "__main__":
    main()
