"""``mxfd run`` under load: underruns while 128 notes sound at once, at period 128.

Starts a private ``jackd -d dummy`` (48 kHz, period 128) and ``mxfd run`` as
a child process, then plays into ``mxfd:in`` from a JACK client: 128 notes
held at once on eight channels (strings, organ, pads, choir, ...), each one
re-struck every two seconds at staggered times, for ``--seconds``.  Prints:

* audio underruns counted by mxfd (render late: nothing queued for the
  device) and xruns (the server missed a cycle), and the JACK server's own
  XRun lines, during the load; target 0;
* voices sounding (sampled every second: min / median / max);
* CPU of the daemon and of its audio worker, and the daemon's RSS;
* renders that went ahead without the JACK reader (it was late).

With ``--pin`` the daemon plays on the JACK-native pin (``[audio] pin =
"jack"``, TimGM6mb): its own count of ``overruns`` (cycles whose compiled
callback took longer than the period) and the callback's time per cycle
are printed instead.  ``--poll`` adds a client asking ``status`` 100 times a
second, ``--stream`` one streaming 10 000 controller events a second.

Run: ``.venv/bin/python benchmarks/bench_daemon_load.py [--seconds 60] [--notes 128] [--pin] [--poll] [--stream]``.
The CPU is shared with whatever else runs on the machine; repeat on a quiet one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jack

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_latency import Mxfd, children, proc_cpu_rss, start_jackd, stop  # noqa: E402
from mxfd.client import Client  # noqa: E402

PROGRAMS = (48, 19, 88, 52, 89, 49, 16, 91)  # sustained GM sounds, one per channel


class Player:
    """A JACK client holding ``notes`` notes on ``mxfd:in``, re-striking each every ``restrike`` s."""

    def __init__(self, notes: int, restrike: float) -> None:
        self.client = jack.Client("mxfd-load", no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self.rate = self.client.samplerate
        # every (channel, note) pair different: 16 notes a whole tone apart on each channel
        self.notes = [(i % len(PROGRAMS), 36 + 2 * (i // len(PROGRAMS))) for i in range(notes)]
        self.period_frames = int(restrike * self.rate)
        self.started = -1
        self.sent = 0
        self.lock = threading.Lock()
        self.pending: list[bytes] = [bytes([0xC0 | ch, prog]) for ch, prog in enumerate(PROGRAMS)]
        self.client.set_process_callback(self._process)

    def _process(self, frames: int) -> None:
        port = self.port
        port.clear_buffer()
        now = self.client.last_frame_time
        with self.lock:
            pending, self.pending = self.pending, []
        for msg in pending:
            port.write_midi_event(0, msg)
        if self.started < 0:
            if pending:
                return
            self.started = now
            for ch, note in self.notes:
                port.write_midi_event(0, bytes([0x90 | ch, note, 90]))
                self.sent += 1
            return
        n = len(self.notes)
        # note i is re-struck when (t - i * period / n) crosses a multiple of the period
        t0 = now - self.started
        for i, (ch, note) in enumerate(self.notes):
            phase = (t0 - i * self.period_frames // n) % self.period_frames
            if phase < frames:
                off = frames - 1 - phase
                port.write_midi_event(off, bytes([0x80 | ch, note, 0]))
                port.write_midi_event(off, bytes([0x90 | ch, note, 90]))
                self.sent += 2

    def start(self) -> None:
        self.client.activate()
        self.client.connect(self.port, "mxfd:in")

    def all_off(self) -> None:
        with self.lock:
            self.pending = [bytes([0xB0 | ch, 123, 0]) for ch in range(len(PROGRAMS))]
        time.sleep(0.1)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def status(socket_path: str) -> dict[str, Any]:
    with Client(socket_path, name="bench-load") as c:
        return c.status()


class Loader:
    """The extra clients: status polled 100 times a second, 10 000 controller events a second."""

    def __init__(self, socket_path: str, poll: bool, stream: bool) -> None:
        self._stop = threading.Event()
        self.polls = 0
        self.events = 0
        self._threads = []
        if poll:
            self._threads.append(threading.Thread(target=self._poll, args=(socket_path,), daemon=True))
        if stream:
            self._threads.append(threading.Thread(target=self._stream, args=(socket_path,), daemon=True))

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5.0)

    def _poll(self, socket_path: str) -> None:
        with Client(socket_path, name="bench-poll") as c:
            while not self._stop.wait(0.01):
                c.status()
                self.polls += 1

    def _stream(self, socket_path: str) -> None:
        with Client(socket_path, name="bench-stream") as c:
            now, latency = c.time()
            offset = now - time.monotonic_ns() // 100
            k = 0
            while not self._stop.wait(0.01):
                t = time.monotonic_ns() // 100 + offset + latency
                # 100 events per 10 ms: mod wheel sweeps on channel 1 of the client's own group
                c.play((t + i * 1000, 1, bytes((0xB0, 1, (k + i) & 0x7F))) for i in range(100))
                k += 100
                self.events += 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--notes", type=int, default=128)
    ap.add_argument("--restrike", type=float, default=2.0, help="seconds between re-strikes of one note")
    ap.add_argument("--pin", action="store_true", help="play on the JACK-native pin (TimGM6mb)")
    ap.add_argument("--poll", action="store_true", help="a client polls status 100 times a second")
    ap.add_argument("--stream", action="store_true", help="a client streams 10 000 controller events a second")
    a = ap.parse_args()
    config = '[midi]\napi = "jack"\n'
    if a.pin:
        config += '[audio]\npin = "jack"\n[synth]\nsoundfont = "/usr/share/sounds/sf2/TimGM6mb.sf2"\n'

    name = f"mxfd-load-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="mxfd-load-"))
    (tmp / "run").mkdir()
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, XDG_RUNTIME_DIR=str(tmp / "run"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")]))
    os.environ["JACK_DEFAULT_SERVER"] = name
    sock = str(tmp / "run" / "mxfd" / "mxfd.sock")
    jackd = start_jackd(name, str(tmp / "jackd.log"))
    voices: list[int] = []
    try:
        d = Mxfd(tmp, config, env)
        try:
            d.wait_ready()
            time.sleep(1.0)
            player = Player(a.notes, a.restrike)
            load = Loader(sock, a.poll, a.stream)
            try:
                player.start()
                load.start()
                time.sleep(2.0)  # every note sounding
                before = status(sock)
                xr0 = sum("XRun" in ln for ln in (tmp / "jackd.log").read_text(errors="replace").splitlines())
                pid = d.proc.pid
                kids = children(pid)
                c0 = proc_cpu_rss(pid)[0]
                k0 = sum(proc_cpu_rss(k)[0] for k in kids)
                t0 = time.monotonic()
                while time.monotonic() - t0 < a.seconds:
                    time.sleep(1.0)
                    voices.append(int(status(sock)["synth"]["voices"]))
                elapsed = time.monotonic() - t0
                c1, rss = proc_cpu_rss(pid)
                k1 = sum(proc_cpu_rss(k)[0] for k in kids)
                after = status(sock)
                xr1 = sum("XRun" in ln for ln in (tmp / "jackd.log").read_text(errors="replace").splitlines())
                player.all_off()
            finally:
                load.close()
                player.close()
        finally:
            d.close()
    finally:
        stop(jackd)
        shutil.rmtree(tmp, ignore_errors=True)

    b, f = before["audio"], after["audio"]
    extra = "".join(f", {w}" for w, on in (("status polled 100/s", a.poll), ("10k CC/s streamed", a.stream)) if on)
    print(f"{a.notes} notes held (re-struck every {a.restrike:g} s), {elapsed:.0f} s, JACK dummy 48000 Hz, period 128, "
          f"{'JACK pin' if a.pin else 'PortAudio pin'}{extra}")
    if a.pin:
        print(f"{'overruns (callback over the period)':34} {f['overruns'] - b['overruns']:>8}   (target 0)")
        cb = f["callback_us"]
        print(f"{'callback µs p50 / p99 / max':34} {cb['p50']:g} / {cb['p99']:g} / {cb['max']:g}")
    else:
        print(f"{'underruns (render late)':34} {f['ring_underruns'] - b['ring_underruns']:>8}   (target 0)")
    print(f"{'xruns (PortAudio/JACK)':34} {f['xruns'] - b['xruns']:>8}")
    print(f"{'JACK server XRun lines':34} {xr1 - xr0:>8}")
    print(f"{'renders without the JACK reader':34} {after['reader_timeouts'] - before['reader_timeouts']:>8}")
    print(f"{'voices min / median / max':34} {min(voices):>4} / {statistics.median(voices):g} / {max(voices)}")
    print(f"{'late events (synth)':34} {after['synth']['late_events'] - before['synth']['late_events']:>8}")
    print(f"{'daemon CPU':34} {100 * (c1 - c0) / elapsed:7.1f}%")
    print(f"{'audio worker CPU':34} {100 * (k1 - k0) / elapsed:7.1f}%")
    print(f"{'daemon RSS':34} {rss / 2**20:7.0f} MiB")
    if a.poll or a.stream:
        print(f"{'status polls / events streamed':34} {load.polls} / {load.events}")
    if hasattr(os, "getloadavg"):
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
