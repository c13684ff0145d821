"""Client side: events per second through socket → unpacker → sequencer → synth, and request round trips.

Starts a private ``jackd -d dummy`` (48 kHz, period 128) and a real ``mxfd run``
on it, then, from this process:

* **throughput**: one client streams DMUS_EVENTHEADER buffers (``--events``
  events each) as fast as the daemon takes them, all due at once (time
  stamps "now": the render thread releases them in the next period).  When
  the client's stream pool is full the daemon stops reading the socket
  (back-pressure), so the sustained rate is what the whole path keeps up
  with.  Rows: control changes (the transport's own cost: the synth applies
  them cheaply) and note on/off pairs (each a voice started and released).
  ``sent/s`` is the client's rate, ``synth/s`` the events the synth applied
  (its ``events_applied`` counter) over the time until it had applied them
  all; ``lost`` is what was sent less what the synth applied.  Then paced runs: events evenly spread on the
  master clock at a fixed rate, sent 0.2 s ahead, as a sequencer would:
  the rates the daemon sustains while still playing without underruns.
  Underruns and the daemon's CPU use over each run are shown beside them.
* **round trips**: ``status`` requests (the daemon's whole report, a few
  kB of JSON) and ``time`` requests, one after another: median and p99.

Run: ``.venv/bin/python benchmarks/bench_client.py [--seconds 5] [--events 64] [--requests 2000]``.
The CPU is shared with jackd, the daemon and this client (two cores here);
figures from a busy machine are not final.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxfd.client import Client, ClientError  # noqa: E402
from mxfd.core.wire import encode_buffer  # noqa: E402
from tests.jackserver import JackServer  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def start_daemon(root: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = os.path.join(root, "run", "mxfd.sock")
    cfg = os.path.join(root, "mxfd.toml")
    with open(cfg, "w") as f:
        f.write(f'[midi]\napi = "jack"\n[audio]\ndevice = "jack"\n[client]\nsocket = "{sock}"\n')
    log = open(os.path.join(root, "mxfd.log"), "wb")
    argv = [sys.executable, "-m", "mxfd", "run", "--config", cfg]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mxfd run exited with {proc.returncode}; see {root}/mxfd.log")
        try:
            with Client(sock, timeout=2.0) as c:
                if c.status()["audio"].get("state") == "running":
                    return proc, sock
        except ClientError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"mxfd run did not come up; see {root}/mxfd.log")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def control_changes(i: int) -> bytes:
    return bytes([0xB0 | (i % 16), 1, i % 128])


def note_pairs(i: int) -> bytes:
    ch = (i >> 1) % 16
    note = 36 + (i >> 5) % 48
    return bytes([0x90 | ch, note, 1]) if i % 2 == 0 else bytes([0x80 | ch, note, 0])


def settle(c: Client, applied: int, expected: int, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the synth has applied ``expected`` events since ``applied`` (or stops moving)."""
    deadline = time.monotonic() + timeout
    last = -1
    while True:
        st = c.status()
        got = st["synth"]["events_applied"] - applied
        if got >= expected or time.monotonic() > deadline or (got == last and not st["synth"]["events_pending"]):
            return st
        last = got
        time.sleep(0.2)


def throughput(
    sock: str, pid: int, make: Callable[[int], bytes], per_buffer: int, seconds: float, rate: float = 0.0
) -> dict[str, Any]:
    """Stream for ``seconds``: flat out with every event due at once (``rate`` 0), or paced at ``rate`` events/s."""
    with Client(sock, name="bench-stream") as c:
        before = c.status()
        cpu0 = cpu_seconds(pid)
        sent = 0
        now, latency = c.time()
        t0 = time.perf_counter()
        end = t0 + seconds
        if rate:
            # a timeline of evenly spaced events, kept 0.2 s ahead of the render latency
            step = 10_000_000 / rate
            base = now + latency + 2_000_000
            while (t := time.perf_counter()) < end:
                due = int((t - t0 + 0.2) * rate)
                while sent < due:
                    n = min(per_buffer, due - sent)
                    recs = [(base + int((sent + k) * step), 1, make(sent + k)) for k in range(n)]
                    c.send_buffer(*encode_buffer(recs))
                    sent += n
                time.sleep(0.005)
        else:
            while time.perf_counter() < end:
                # due now: the daemon plays them in its next period (late events play at once)
                c.send_buffer(*encode_buffer([(now, 1, make(sent + k)) for k in range(per_buffer)]))
                sent += per_buffer
                if sent % (per_buffer * 64) == 0:
                    now = c.time()[0]
        elapsed = time.perf_counter() - t0
        synced = c.sync()
        after = settle(c, before["synth"]["events_applied"], sent)
        through = time.perf_counter() - t0 - (0.2 if rate else 0.0)
        cpu = cpu_seconds(pid) - cpu0
        me = next(x for x in after["clients"]["list"] if x["name"].startswith("bench-stream"))
    rendered = after["synth"]["events_applied"] - before["synth"]["events_applied"]
    return {
        "sent/s": sent / elapsed,
        "through/s": sent / through,
        "lost": sent - rendered,
        "bad": synced["bad_buffers"],
        "waits": me["backpressure_waits"],
        "underruns": after["audio"].get("underruns", 0) - before["audio"].get("underruns", 0),
        "cpu": cpu / elapsed,
    }


def round_trips(sock: str, kind: str, n: int) -> tuple[float, float, int]:
    with Client(sock, name="bench-rtt") as c:
        for _ in range(50):
            c.request(kind)
        times = []
        size = 0
        for _ in range(n):
            t = time.perf_counter()
            reply = c.request(kind)
            times.append(time.perf_counter() - t)
        size = len(str(reply))
    times.sort()
    return statistics.median(times) * 1e6, times[int(0.99 * (len(times) - 1))] * 1e6, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    ap.add_argument("--events", type=int, default=64, help="events per buffer")
    ap.add_argument("--requests", type=int, default=2000, help="round trips per request kind")
    args = ap.parse_args()

    server = JackServer(f"mxfd-bench-client-{os.getpid()}")
    os.environ["JACK_DEFAULT_SERVER"] = server.name
    server.start()
    root = tempfile.mkdtemp(prefix="mxfd-bench-", dir="/tmp")
    proc = None
    try:
        proc, sock = start_daemon(root)
        time.sleep(1.0)  # let start-up settle
        print(f"mxfd client path: python {platform.python_version()}, {os.cpu_count()} CPUs, "
              f"load {os.getloadavg()[0]:.2f}; JACK dummy 48 kHz, period 128; {args.events} events a buffer")
        print()
        print(f"{'stream':<34}{'sent/s':>10}{'synth/s':>10}{'lost':>6}{'bad':>5}{'bp waits':>10}"
              f"{'underruns':>11}{'daemon CPU':>12}")
        runs: list[tuple[str, Callable[[int], bytes], float]] = [
            ("control changes, flat out", control_changes, 0.0),
            ("note on/off pairs, flat out", note_pairs, 0.0),
        ] + [(f"control changes, paced {r // 1000}k/s", control_changes, r) for r in (10_000, 50_000, 100_000)]
        for label, make, rate in runs:
            r = throughput(sock, proc.pid, make, args.events, args.seconds, rate)
            print(f"{label:<34}{r['sent/s']:>10,.0f}{r['through/s']:>10,.0f}{r['lost']:>6}{r['bad']:>5}"
                  f"{r['waits']:>10}{r['underruns']:>11}{r['cpu'] * 100:>11.0f}%")
            time.sleep(1.0)
        print()
        print(f"{'request':<22}{'median µs':>12}{'p99 µs':>12}{'reply bytes':>13}")
        for kind in ("status", "time"):
            med, p99, size = round_trips(sock, kind, args.requests)
            print(f"{kind:<22}{med:>12.0f}{p99:>12.0f}{size:>13}")
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        if os.path.exists(server.log_path):
            os.unlink(server.log_path)


if __name__ == "__main__":
    main()
