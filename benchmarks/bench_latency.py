"""Key-to-sound latency of ``mxfd run`` against FluidSynth, start-up time, idle cost.

Starts a private ``jackd -d dummy`` (48 kHz, period 128), then:

1. ``mxfd run`` (a child process, as systemd runs it): time from exec to
   ``READY=1`` on its notify socket, ``--starts`` times;
2. key-to-sound latency with ``../shared/tools/latency_probe.py --program 80``
   (a square lead: instant attack, so the figure is transport, not
   instrument): note-ons sent at known frames into ``mxfd:in``, onsets found
   in ``mxfd-out:out_0``, exact to the sample; ``--runs`` runs of 20 notes,
   for each JACK reader (``jack-client``: frame-accurate stamps; ``rtmidi``:
   stamped when the period is processed);
3. the same probe against ``mxfd run`` on the JACK-native pin (``[audio] pin
   = "jack"``: its reader plays JACK input through the pin in the same
   cycle), and against the pin alone (``mxfd.io.jack_pin``: the data plane
   rendered in JACK's thread by compiled code) over TimGM6mb in a child
   process of its own; the idle cost of both;
4. the same probe against FluidSynth (``fluidsynth -a jack -m jack``, same
   program) in the same run;
5. CPU and resident memory of the idle daemon (and its audio worker) over
   ``--idle`` seconds.

Prints tables; the latency of every note is in the probe's JSON (``-v``).
Run: ``.venv/bin/python benchmarks/bench_latency.py [--runs 3] [--starts 3] [--idle 10] [--period 128]``.
The CPU is shared with whatever else runs on the machine; repeat on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT.parent / "shared" / "tools" / "latency_probe.py"
RATE = 48000
PERIOD = 128
SOUNDFONTS = ("/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf2/FluidR3_GM.sf2")


def start_jackd(name: str, log_path: str, period: int = PERIOD) -> subprocess.Popen[bytes]:
    """A private ``jackd -d dummy``; real-time (``-R``) unless MXFD_BENCH_JACK_NO_RT is set.

    The dummy driver's own xruns come from scheduling: without real-time
    priority any busy process on two cores makes it miss cycles.
    """
    jackd = shutil.which("jackd")
    if jackd is None:
        raise SystemExit("jackd not found (apt install jackd2)")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [jackd, "--no-realtime" if os.environ.get("MXFD_BENCH_JACK_NO_RT") else "-R", "-n", name,
             "-d", "dummy", "-r", str(RATE), "-p", str(period)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    time.sleep(1.0)
    if proc.poll() is not None:
        raise SystemExit(f"jackd exited with {proc.returncode}; see {log_path}")
    return proc


def stop(proc: Optional[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


#: The probe connects itself to ``mxfd:in``; hot-plug must not connect it a second time meanwhile (its
#: program change could land on the other port's channel group only, and the notes sound as a piano).
NOT_THE_PROBE = 'exclude = ["^latency-probe:"]\n'


class Mxfd:
    """``mxfd run`` with a notify socket, like systemd runs it."""

    def __init__(self, tmp: Path, config: str, env: dict[str, str]) -> None:
        cfg = tmp / "mxfd.toml"
        cfg.write_text(config)
        self.notify_path = str(tmp / f"notify-{time.monotonic_ns()}.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.log = open(tmp / "mxfd.log", "ab")
        self.t0 = time.monotonic()
        self.proc: subprocess.Popen[bytes] = subprocess.Popen(
            [sys.executable, "-m", "mxfd", "run", "--config", str(cfg)],
            cwd=ROOT,
            env=dict(env, NOTIFY_SOCKET=self.notify_path),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ready_s: Optional[float] = None
        self.status_line = ""

    def wait_ready(self, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.notify.settimeout(0.1)
            try:
                data = self.notify.recv(4096).decode()
            except TimeoutError:
                continue
            if "READY=1" in data.splitlines():
                self.ready_s = time.monotonic() - self.t0
                self.status_line = next((x for x in data.splitlines() if x.startswith("STATUS=")), "")
                return self.ready_s
        raise SystemExit("mxfd did not report READY=1; see its log in the temporary directory")

    def close(self) -> None:
        stop(self.proc)
        self.notify.close()
        self.log.close()


def pin_child(soundfont: str) -> int:
    """The JACK-native pin over ``soundfont`` (program 80 on channel 1), until stdin closes."""
    sys.path.insert(0, str(ROOT))
    from mxfd.io.jack_pin import JackPin
    from mxfd.synth.engine import SoundFontSynth
    from mxfd.synth.engine.dataplane import MSG, EventRing, new_dataplane, pack
    from mxfd.synth.soundfont import load_soundfont

    synth = SoundFontSynth(load_soundfont(soundfont), RATE, block_frames=PERIOD, reverb=False, chorus=False)
    plane, arrays = new_dataplane(synth.engine_state, synth.master, frames=PERIOD, groups=16)
    EventRing(arrays).push(0, pack(MSG, 0, 2, 0xC0, 80, 0))
    pin = JackPin(plane, client_name="mxfd-pin")
    pin.open()
    pin.add_input("in")
    print("READY", flush=True)
    sys.stdin.read()
    print(json.dumps(pin.status()), flush=True)
    pin.close()
    return 0


_PROGRAM_SENDER = r"""
import re, sys, threading, time, jack
pattern, program = sys.argv[1], int(sys.argv[2])
c = jack.Client("bench-program", no_start_server=True)
out = c.midi_outports.register("out")
sent = threading.Event()
armed = threading.Event()

@c.set_process_callback
def process(frames):
    out.clear_buffer()
    if armed.is_set() and not sent.is_set():
        out.write_midi_event(0, bytes([0xC0, program]))
        sent.set()

with c:
    dst = next(p for p in c.get_ports(is_midi=True, is_input=True) if re.search(pattern, p.name))
    c.connect(out, dst)
    time.sleep(0.1)  # the connection is live in the graph before anything is sent
    armed.set()
    sent.wait(2.0)
    time.sleep(0.1)
"""


def send_program(midi_in: str, env: dict[str, str], program: int = 80) -> None:
    """Set the probe's program on a live connection first.

    The probe sends its own program change in its first cycle, which may run before its
    connection is made: the change is then lost and the notes sound with the slow attack of a
    piano, whatever the synth (so FluidSynth's max and some of mxfd's runs read 9.5 ms).
    """
    subprocess.run([sys.executable, "-c", _PROGRAM_SENDER, midi_in, str(program)], env=env, timeout=30, check=True)


def probe(midi_in: str, audio_out: str, env: dict[str, str], notes: int = 20) -> dict[str, Any]:
    send_program(midi_in, env)
    out = subprocess.run(
        [sys.executable, str(PROBE), "--program", "80", "--notes", str(notes), "--midi-in", midi_in,
         "--audio-out", audio_out],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise SystemExit(f"latency probe failed: {out.stderr.strip()[-500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def probe_runs(
    label: str, midi_in: str, audio_out: str, env: dict[str, str], runs: int, verbose: bool
) -> dict[str, float]:
    """``runs`` probe runs of 20 notes into one synth, summarised."""
    results = []
    for _ in range(runs):
        r = probe(midi_in, audio_out, env)
        results.append(r)
        if verbose:
            print(f"{label}: {json.dumps(r)}")
    return summarise(results)


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    frames = [f for r in runs for f in r["latency_frames"]]
    ms = [f * 1000.0 / RATE for f in frames]
    heard = sum(r["heard"] for r in runs)
    sent = sum(r["notes"] for r in runs)
    return {
        "median": statistics.median(ms),
        "min": min(ms),
        "max": max(ms),
        "jitter": statistics.pstdev(ms),
        "heard": heard,
        "sent": sent,
    }


def proc_cpu_rss(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds so far, resident set size in bytes)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / tick
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def memory(pid: int) -> tuple[float, float, float]:
    """(RSS, PSS, resident JACK shared memory) of ``pid`` in MiB.

    Every JACK client maps (and locks) the server's port buffers, about 100 MiB with jackd's defaults:
    the same pages in every client and in jackd, counted in each one's RSS.
    """
    rss = pss = shm = 0
    in_jack = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split(" ", 1)[0]
            if "-" in first and not first.endswith(":"):
                in_jack = "/dev/shm/jack" in line
            elif first == "Rss:":
                kib = int(line.split()[1])
                rss += kib
                shm += kib if in_jack else 0
            elif first == "Pss:":
                pss += int(line.split()[1])
    return rss / 1024, pss / 1024, shm / 1024


def children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


def idle_cost(pid: int, seconds: float) -> tuple[float, float, float, float]:
    """(daemon CPU %, daemon RSS MiB, worker CPU %, worker RSS MiB) while idle."""
    kids = children(pid)
    c0, _ = proc_cpu_rss(pid)
    k0 = [proc_cpu_rss(k)[0] for k in kids]
    time.sleep(seconds)
    c1, rss = proc_cpu_rss(pid)
    kc, krss = 0.0, 0
    for k, before in zip(kids, k0, strict=False):
        try:
            cpu, r = proc_cpu_rss(k)
        except OSError:
            continue
        kc += cpu - before
        krss += r
    return 100 * (c1 - c0) / seconds, rss / 2**20, 100 * kc / seconds, krss / 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="probe runs (20 notes each) per synth")
    ap.add_argument("--starts", type=int, default=3, help="start-ups timed")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU/RSS sampling")
    ap.add_argument("--period", type=int, default=PERIOD, help="the JACK server's period (frames)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every probe's JSON")
    ap.add_argument("--pin-child", metavar="SF2", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pin_child:
        return pin_child(a.pin_child)
    if not PROBE.exists():
        raise SystemExit(f"{PROBE} not found")

    name = f"mxfd-bench-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="mxfd-bench-"))
    (tmp / "run").mkdir()
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, XDG_RUNTIME_DIR=str(tmp / "run"))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    jackd = start_jackd(name, str(tmp / "jackd.log"), a.period)
    pin_idle: Optional[tuple[float, float]] = None
    fluid_idle: Optional[tuple[float, float]] = None
    pin_status = ""
    rows: list[tuple[str, dict[str, float]]] = []
    starts: list[float] = []
    idle: Optional[tuple[float, float, float, float]] = None
    latency_ms = ""
    sf2 = next((p for p in SOUNDFONTS if os.path.exists(p)), None)
    daemon_pin: Optional[tuple[float, float, float]] = None
    builtin_idle: Optional[tuple[float, float, float, float, float]] = None
    fluid_memory: Optional[tuple[float, float, float]] = None
    try:
        for reader in ("jack-client", "rtmidi"):
            config = f'[midi]\napi = "jack"\njack_reader = "{reader}"\n{NOT_THE_PROBE}'
            d = Mxfd(tmp, config, env)
            try:
                starts.append(d.wait_ready())
                time.sleep(1.0)  # let the wave sink's clock settle before the first note
                label = f"mxfd, {reader} reader"
                rows.append((label, probe_runs(label, r"^mxfd:in$", r"^mxfd-out:out_0$", env, a.runs, a.verbose)))
                if reader == "jack-client":
                    latency_ms = d.status_line
                    idle = idle_cost(d.proc.pid, a.idle)
            finally:
                d.close()
        if sf2:
            # The daemon itself on the JACK-native pin: its reader plays JACK input through the pin.
            config = f'[midi]\napi = "jack"\n{NOT_THE_PROBE}[audio]\npin = "jack"\n[synth]\nsoundfont = "{sf2}"\n'
            d = Mxfd(tmp, config, env)
            try:
                ready = d.wait_ready()
                time.sleep(1.0)
                label = f"mxfd run, JACK pin ({os.path.basename(sf2)})"
                rows.append((label, probe_runs(label, r"^mxfd:in$", r"^mxfd-out:out_0$", env, a.runs, a.verbose)))
                cpu, rss, kcpu, krss = idle_cost(d.proc.pid, a.idle)
                daemon_pin = (cpu + kcpu, rss + krss, ready)
            finally:
                d.close()
        # The built-in bank on the pin: the daemon's footprint with no soundfont's samples in it.
        config = f'[midi]\napi = "jack"\n{NOT_THE_PROBE}[audio]\npin = "jack"\n[synth]\nsoundfont = "builtin"\n'
        d = Mxfd(tmp, config, env)
        try:
            ready = d.wait_ready()
            time.sleep(2.0)
            cpu, _, kcpu, _ = idle_cost(d.proc.pid, a.idle)
            builtin_idle = (cpu + kcpu, *memory(d.proc.pid), ready)
        finally:
            d.close()
        for _ in range(max(0, a.starts - 2)):
            d = Mxfd(tmp, f'[midi]\napi = "jack"\n{NOT_THE_PROBE}', env)
            try:
                starts.append(d.wait_ready())
            finally:
                d.close()

        if sf2:
            child = subprocess.Popen(
                [sys.executable, __file__, "--pin-child", sf2], env=env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            try:
                assert child.stdout is not None and child.stdin is not None
                if child.stdout.readline().strip() != "READY":
                    raise SystemExit("the JACK pin did not start")
                label = f"JACK pin ({os.path.basename(sf2)})"
                rows.append((label, probe_runs(label, r"^mxfd-pin:in$", r"^mxfd-pin:out_0$", env, a.runs, a.verbose)))
                cpu, rss, _, _ = idle_cost(child.pid, a.idle)
                pin_idle = (cpu, rss)
                child.stdin.close()
                pin_status = child.stdout.readline().strip()
            finally:
                stop(child)
        fluid = shutil.which("fluidsynth")
        if sf2 and fluid:
            # Its shell reads the pipe, which keeps it running until we close it.
            fs = subprocess.Popen(
                [fluid, "-a", "jack", "-m", "jack", "-o", "midi.autoconnect=0", "-r", str(RATE), sf2],
                env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                time.sleep(2.0)
                label = f"FluidSynth ({os.path.basename(sf2)})"
                ports = (r"^fluidsynth[^:]*:midi_00$", r"^fluidsynth[^:]*:(left|l_00)$")
                rows.append((label, probe_runs(label, *ports, env, a.runs, a.verbose)))
                fs_cpu, fs_rss, _, _ = idle_cost(fs.pid, a.idle)
                fluid_idle = (fs_cpu, fs_rss)
                fluid_memory = memory(fs.pid)
            finally:
                assert fs.stdin is not None
                fs.stdin.close()
                stop(fs)
        else:
            print("(FluidSynth or a GM soundfont is missing: no comparison)")
    finally:
        stop(jackd)
        xruns = sum("XRun" in ln for ln in (tmp / "jackd.log").read_text(errors="replace").splitlines())
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"Key-to-sound latency, JACK dummy {RATE} Hz, period {a.period}, program 80, {a.runs} x 20 notes")
    print(f"{'synth':34} {'median ms':>9} {'min ms':>7} {'max ms':>7} {'jitter ms':>9} {'heard':>7}")
    for label, s in rows:
        print(
            f"{label:34} {s['median']:9.3f} {s['min']:7.3f} {s['max']:7.3f} {s['jitter']:9.3f} "
            f"{int(s['heard']):>3}/{int(s['sent'])}"
        )
    print(f"(target: max <= 8.000 ms, jitter no worse than FluidSynth's; JACK xruns during the run: {xruns})")
    if latency_ms:
        print(f"mxfd's own report at READY: {latency_ms}")
    if daemon_pin:
        print(f"mxfd run on the JACK pin: idle over {a.idle:g} s {daemon_pin[0]:.1f}% CPU, {daemon_pin[1]:.0f} MiB RSS "
              f"(every process); start to READY {daemon_pin[2]:.2f} s")
    if pin_idle is not None:
        print(f"JACK pin idle over {a.idle:g} s: {pin_idle[0]:.1f}% CPU, {pin_idle[1]:.0f} MiB RSS; its own status: "
              f"{pin_status}")
    if fluid_idle is not None:
        print(f"FluidSynth idle over {a.idle:g} s: {fluid_idle[0]:.1f}% CPU, {fluid_idle[1]:.0f} MiB RSS")
    if builtin_idle is not None:
        print("\nIdle footprint, MiB (JACK shm: the server's port buffers every client maps)")
        print("| | CPU % | RSS | PSS | of which JACK shm | RSS without it |")
        print("|---|---|---|---|---|---|")
        cpu, rss, pss, shm, ready = builtin_idle
        print(f"| mxfd run, built-in bank (ready in {ready:.2f} s) | {cpu:.1f} | {rss:.0f} | {pss:.0f} | {shm:.0f} "
              f"| {rss - shm:.0f} |")
        if fluid_idle is not None and fluid_memory is not None:
            rss, pss, shm = fluid_memory
            print(f"| FluidSynth ({os.path.basename(sf2 or '')}) | {fluid_idle[0]:.1f} | {rss:.0f} | {pss:.0f} "
                  f"| {shm:.0f} | {rss - shm:.0f} |")
        print("(targets: CPU no more than FluidSynth's; RSS under 220 MiB)")
    print()
    print(f"Start-up to READY=1 ({len(starts)} starts): median {statistics.median(starts):.2f} s, "
          f"max {max(starts):.2f} s (target < 2 s)")  # fmt: skip
    if idle is not None:
        print(
            f"Idle over {a.idle:g} s: daemon {idle[0]:.1f}% CPU, {idle[1]:.0f} MiB RSS; "
            f"audio worker {idle[2]:.1f}% CPU, {idle[3]:.0f} MiB RSS"
        )
    if hasattr(os, "getloadavg"):
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
