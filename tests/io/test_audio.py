"""The audio output pin against a real JACK server (dummy driver), heard by a real JACK client."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from typing import Iterator

import numpy as np
import pytest

from mxfd.core.clock import UNITS_PER_SECOND, master_time
from mxfd.core.frames import AllocatorFraming, AudioView, DefaultFrameAllocator
from mxfd.io.audio import DEGRADED_BATCH, SYNC_INTERVAL, AudioOutput
from mxfd.io.shm_frames import SHM_DIR, SharedFrameAllocator
from tests.e2e.ears import Ear, dominant_frequency, rms_dbfs, wait_until
from tests.jackserver import JackServer

pytestmark = pytest.mark.e2e

RATE = 48000
PERIOD = 128


class Sine:
    """A render callback: a 440 Hz sine from a table, phase-continuous by sample position, no allocation."""

    def __init__(self, freq: float = 440.0, amplitude: float = 0.3) -> None:
        cycle = int(round(RATE / np.gcd(int(freq), RATE)))  # samples in a whole number of cycles
        t = np.arange(cycle + PERIOD) / RATE
        self.table = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        self.cycle = cycle
        self.calls = 0
        self.positions: list[int] = []

    def __call__(self, frame: AudioView, position: int) -> None:
        off = position % self.cycle
        src = self.table[off : off + PERIOD]
        np.copyto(frame[:, 0], src)
        np.copyto(frame[:, 1], src)
        self.calls += 1


class Recorder:
    """on_state / on_sync sink."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.syncs: list[tuple[int, int, int]] = []  # (ref_time, position, master time when told)
        self.steps: list[bool] = []  # whether each sync asked to re-anchor
        self.lock = threading.Lock()

    def on_state(self, state: str, message: str) -> None:
        with self.lock:
            self.states.append((state, message))

    def on_sync(self, ref_time: int, position: int, step: bool) -> None:
        self.syncs.append((ref_time, position, master_time()))
        self.steps.append(step)

    def seen(self, state: str) -> bool:
        with self.lock:
            return any(s == state for s, _ in self.states)


_names = iter(range(1000))


def make_output(render: Sine, rec: Recorder, **kw: object) -> AudioOutput:
    return AudioOutput(
        render,
        rate=RATE,
        period=PERIOD,
        client_name=f"mxfdt-out{next(_names)}",
        on_state=rec.on_state,
        on_sync=rec.on_sync,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def ear(jack_server: JackServer) -> Iterator[Ear]:
    e = Ear(name="mxfdt-ear")
    try:
        yield e
    finally:
        e.close()


def hears_440(ear: Ear, seconds: float = 0.5) -> float:
    x = ear.listen(seconds)
    assert rms_dbfs(x) > -30, f"silence at the ear ({rms_dbfs(x):.1f} dBFS)"
    return dominant_frequency(x, ear.rate)


def ports_of(out: AudioOutput) -> list[str]:
    return list(out.status()["ports"])


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie awaiting a reaper that is not us counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


DAEMON = """
import sys, time
from mxfd.io.audio import AudioOutput
out = AudioOutput(lambda frame, pos: frame.fill(0.0), client_name="mxfdt-orphan")
out.start()
print(out.state, out.worker_pid, out.shm_name, flush=True)
time.sleep(60)
"""


def test_a_sine_rendered_through_the_pin_is_heard_at_440_hz(jack_server: JackServer, ear: Ear) -> None:
    sine, rec = Sine(), Recorder()
    out = make_output(sine, rec)
    out.start()
    try:
        assert out.state == "running"
        ports = ports_of(out)
        assert ports == [f"{out.client_name}:out_0", f"{out.client_name}:out_1"]
        ear.connect(f"^{out.client_name}:")
        f = hears_440(ear)
        assert abs(f - 440.0) <= 440.0 * 0.005, f
        # Underrun figures are load-dependent: benchmarks/bench_audio_out.py measures them.
    finally:
        out.stop()


def test_framing_is_derived_from_the_period_and_reported() -> None:
    out = AudioOutput(Sine(), period=256, channels=2, periods=3)
    assert out.framing == AllocatorFraming(frames=4, frame_size=256 * 2 * 4, file_alignment=63)
    assert out.status()["framing"] == {"frames": 4, "frame_size": 2048, "alignment": 64}
    assert out.status()["latency_frames"] == 3 * 256
    assert isinstance(out.allocator, SharedFrameAllocator)


def test_an_assigned_allocator_serves_the_stream_and_none_restores_the_pins_own(
    jack_server: JackServer, ear: Ear
) -> None:
    sine, rec = Sine(), Recorder()
    out = make_output(sine, rec)
    own = out.allocator
    with pytest.raises(ValueError, match="needs 1024"):
        out.allocator = DefaultFrameAllocator(AllocatorFraming(frames=2, frame_size=512, file_alignment=63))
    out.start()
    try:
        ear.connect(f"^{out.client_name}:")
        theirs = DefaultFrameAllocator(out.framing)
        out.allocator = theirs
        assert out.allocator is theirs
        calls = sine.calls
        assert wait_until(lambda: theirs.high_water > 0 and sine.calls > calls + 50, 3.0)
        f = hears_440(ear)
        assert abs(f - 440.0) <= 440.0 * 0.005, f
        out.allocator = None
        assert out.allocator is own
        # Once the render thread has rendered a few periods from its own allocator again, it holds
        # no frame of theirs: it took nothing away with it.
        calls = sine.calls
        assert wait_until(lambda: sine.calls > calls + 3, 1.0)
        assert theirs.allocated == 0
    finally:
        out.stop()


def test_jack_restart_degrades_then_brings_sound_back_on_the_same_output(jack_server: JackServer) -> None:
    sine, rec = Sine(), Recorder()
    out = make_output(sine, rec)
    out.start()
    ear = Ear(name="mxfdt-ear")
    try:
        ear.connect(f"^{out.client_name}:")
        assert abs(hears_440(ear, 0.3) - 440.0) <= 2.2
        ear.close()  # a JACK client must not outlive its server (closing it afterwards crashes)
        jack_server.restart()
        assert wait_until(lambda: rec.seen("degraded"), 5.0), rec.states
        ear = Ear(name="mxfdt-ear")
        assert wait_until(lambda: out.state == "running", 10.0), out.status()
        assert out.restarts >= 1
        ear.connect(f"^{out.client_name}:")
        f = hears_440(ear)
        assert abs(f - 440.0) <= 440.0 * 0.005, f
        states = [s for s, _ in rec.states]
        assert states[-2:] == ["degraded", "running"], rec.states
    finally:
        out.stop()
        ear.close()


def test_no_sound_server_at_start_degrades_clearly_then_plays_when_one_appears(
    jack_server: JackServer, caplog: pytest.LogCaptureFixture
) -> None:
    sine, rec = Sine(), Recorder()
    out = make_output(sine, rec)
    ear = None
    # The session's server, stopped cleanly and started again under the same name
    # (JACK's registry has room for only a few server names).
    jack_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="mxfd.io.audio"):
            out.start()
        assert out.state == "degraded"
        message = out.status()["message"]
        assert "no audio output device" in message
        assert f"JACK: no server {jack_server.name!r} running" in message
        assert any("no audio output device" in r.getMessage() for r in caplog.records)
        # The render clock keeps running while degraded, at the nominal rate from absolute deadlines
        # (no drift).  It renders in batches of DEGRADED_BATCH periods, so the position lags the timer
        # by up to a batch; one period more for the render thread's wake-up (it is SCHED_FIFO).
        # Each reading is bracketed by two clock readings, so this test's own preemption is allowed for.
        slack = (DEGRADED_BATCH + 1) * PERIOD
        a0, pos0, b0 = time.monotonic(), out.sample_position, time.monotonic()
        time.sleep(1.0)  # the span measured, not a synchronisation
        a1, pos1, b1 = time.monotonic(), out.sample_position, time.monotonic()
        assert RATE * (a1 - b0) - slack <= pos1 - pos0 <= RATE * (b1 - a0) + slack, (pos1 - pos0, a1 - b0, b1 - a0)
        jack_server.start()
        assert wait_until(lambda: out.state == "running", 10.0), out.status()
        ear = Ear(name="mxfdt-ear")
        ear.connect(f"^{out.client_name}:")
        f = hears_440(ear)
        assert abs(f - 440.0) <= 440.0 * 0.005, f
    finally:
        out.stop()
        if ear is not None:
            ear.close()
        if jack_server.proc is None:
            jack_server.start()


def test_a_device_is_chosen_by_name_substring_and_an_unknown_one_is_named_in_the_error(
    jack_server: JackServer,
) -> None:
    out = make_output(Sine(), Recorder(), device="syst")
    out.start()
    try:
        assert out.state == "running"
        assert out.status()["device"] == "system"
    finally:
        out.stop()
    out = make_output(Sine(), Recorder(), device="no-such-card")
    out.start()
    try:
        assert out.state == "degraded"
        message = out.status()["message"]
        assert "audio output device 'no-such-card' not found" in message
        # the server runs: name the devices there are, not the sound server, and not mxfd's own JACK clients
        assert "'system' (JACK Audio Connection Kit)" in message and "sound server running" not in message
        assert "'mxfd" not in message
    finally:
        out.stop()


def test_an_aborting_worker_never_takes_the_daemon_down(jack_server: JackServer) -> None:
    sine, rec = Sine(), Recorder()
    out = make_output(sine, rec)
    out.start()
    try:
        pid = out.worker_pid
        assert pid is not None and out.state == "running"
        os.kill(pid, signal.SIGABRT)
        assert wait_until(lambda: "SIGABRT" in out.last_error, 5.0), out.status()
        assert wait_until(lambda: out.state == "running" and out.worker_pid not in (None, pid), 10.0), out.status()
        assert process_gone(pid)
        calls = sine.calls
        assert wait_until(lambda: sine.calls > calls + 100, 3.0)
    finally:
        out.stop()


def test_stop_leaves_no_worker_no_thread_and_no_shared_memory(jack_server: JackServer) -> None:
    out = make_output(Sine(), Recorder())
    out.start()
    pid = out.worker_pid
    shm = out.shm_name
    assert pid is not None and shm is not None
    assert os.path.exists(os.path.join(SHM_DIR, shm))
    out.stop()
    assert out.state == "stopped"
    assert process_gone(pid)  # reaped, not a zombie
    assert not os.path.exists(os.path.join(SHM_DIR, shm))
    assert not [t for t in threading.enumerate() if t.name.startswith("mxfd-audio")]
    out.stop()  # idempotent


def test_the_render_thread_runs_sched_fifo_at_the_lowest_real_time_priority(jack_server: JackServer) -> None:
    # The tests run as root (CAP_SYS_NICE), where the pin promises SCHED_FIFO at priority 1, reset on fork.
    out = make_output(Sine(), Recorder())
    out.start()
    try:
        (render,) = [t for t in threading.enumerate() if t.name == "mxfd-audio-render"]
        assert render.native_id is not None
        assert wait_until(lambda: out.status()["render_scheduling"] != "not started", 2.0)
        assert out.status()["render_scheduling"] == "SCHED_FIFO 1"
        assert os.sched_getscheduler(render.native_id) == os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
        assert os.sched_getparam(render.native_id).sched_priority == 1
    finally:
        out.stop()


NOT_ALLOWED = """
import os, threading, time
from mxfd.io.audio import AudioOutput
out = AudioOutput(lambda frame, pos: frame.fill(0.0), client_name="mxfdt-nort")
out.start()
while out.render_scheduling == "not started":
    time.sleep(0.01)
(render,) = [t for t in threading.enumerate() if t.name == "mxfd-audio-render"]
print(out.status()["render_scheduling"], os.sched_getscheduler(render.native_id), sep="|", flush=True)
out.stop()
"""


def test_where_real_time_is_not_allowed_the_render_thread_runs_as_an_ordinary_one_and_says_why(
    jack_server: JackServer,
) -> None:
    # Without CAP_SYS_NICE (dropped from the bounding set, so root's exec does not regain it) and
    # with root's default RLIMIT_RTPRIO of 0, SCHED_FIFO is refused with EPERM.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = subprocess.run(
        ["setpriv", "--bounding-set=-sys_nice", "--inh-caps=-sys_nice", "--", sys.executable, "-c", NOT_ALLOWED],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    scheduling, policy = run.stdout.strip().split("|")
    assert scheduling == "normal (Operation not permitted)"
    assert int(policy) == os.SCHED_OTHER


def test_on_sync_maps_sample_positions_to_master_time(jack_server: JackServer) -> None:
    rec = Recorder()
    out = make_output(Sine(), rec)
    out.start()
    try:
        assert out.state == "running"
        first = len(rec.syncs)
        # Thirty syncs that found the schedule where it was (an xrun asks to re-anchor on a few).
        assert wait_until(lambda: rec.steps[first + 1 :].count(False) > 30, 30.0), rec.steps
        running = rec.syncs[first + 1 :]  # device-paced only
        steps = rec.steps[first + 1 : first + 1 + len(running)]
        latency = out.status()["device_latency_s"]
    finally:
        out.stop()
    # jackd's dummy driver in its default asynchronous mode: one period of driver latency and one
    # of the asynchronous engine.
    assert abs(latency - 2 * PERIOD / RATE) < 1e-6, latency
    period_s = PERIOD / RATE
    errors = []
    for ((r0, p0, _), (r1, p1, _)), step in zip(itertools.pairwise(running), steps[1:], strict=True):
        assert p1 - p0 == SYNC_INTERVAL * PERIOD
        if not step:  # a step is an xrun or an underrun moving the frames against the clock
            errors.append(abs((r1 - r0) / UNITS_PER_SECOND - (p1 - p0) / RATE))
    errors.sort()
    # Each sync is off by the callback entry delay left after the least-phase filter (a few µs):
    # between two syncs that found the schedule where it was, time matches the sample count.
    assert errors[len(errors) // 2] < 0.0001, errors
    assert errors[-1] < period_s / 2, errors
    # Told as the frame played is taken back, just after its callback; it leaves the device one
    # device latency after that callback.  So ref - told is at most the latency (100 ns rounding), and
    # mostly at least the latency less one period, the longest the render thread (SCHED_FIFO, woken by
    # every callback) takes to hear of a callback when the machine lets it run; 0.1 to 0.8 ms measured.
    leads = sorted((ref - told) / UNITS_PER_SECOND for ref, _, told in running)
    assert leads[-1] <= latency + 1e-6, leads
    assert leads[len(leads) // 2] >= latency - period_s, leads


def test_a_failing_render_is_counted_and_played_as_silence(jack_server: JackServer) -> None:
    def broken(frame: AudioView, position: int) -> None:
        raise RuntimeError("synth bug")

    out = AudioOutput(broken, rate=RATE, period=PERIOD, client_name="mxfdt-broken")
    out.start()
    try:
        assert wait_until(lambda: out.render_errors > 50, 3.0)
        assert out.state == "running"
        assert "synth bug" in out.last_error
    finally:
        out.stop()


def test_steady_state_rendering_allocates_nothing(jack_server: JackServer) -> None:
    sine = Sine()
    last_sync = np.zeros(2, dtype=np.int64)

    def on_sync(ref_time: int, position: int, step: bool) -> None:  # keeps nothing alive
        last_sync[0] = ref_time
        last_sync[1] = position

    out = AudioOutput(sine, rate=RATE, period=PERIOD, client_name="mxfdt-alloc", on_sync=on_sync)
    mine = [tracemalloc.Filter(True, "*/mxfd/io/audio.py"), tracemalloc.Filter(True, "*/mxfd/io/shm_frames.py")]
    tracemalloc.start()
    try:
        out.start()
        # Warm up under tracing, so both snapshots hold the loop's steady set of live objects.
        assert wait_until(lambda: sine.calls > 300, 3.0)
        before = tracemalloc.take_snapshot().filter_traces(mine)
        calls = sine.calls
        assert wait_until(lambda: sine.calls > calls + 400, 5.0)
        after = tracemalloc.take_snapshot().filter_traces(mine)
    finally:
        tracemalloc.stop()
        out.stop()
    diff = after.compare_to(before, "lineno")
    growth = sum(s.size_diff for s in diff)
    assert growth < 512, [str(s) for s in diff[:5]]
    assert last_sync[1] > 0


def test_a_killed_daemon_leaves_no_worker_and_no_shared_memory(jack_server: JackServer) -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    daemon = subprocess.Popen(
        [sys.executable, "-c", DAEMON], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert daemon.stdout is not None
        state, pid, shm = daemon.stdout.readline().split()
        assert state == "running"
        assert os.path.exists(os.path.join(SHM_DIR, shm))
    finally:
        daemon.kill()
        daemon.wait()
    assert wait_until(lambda: process_gone(int(pid)), 3.0)  # PR_SET_PDEATHSIG / lifeline
    assert wait_until(lambda: not os.path.exists(os.path.join(SHM_DIR, shm)), 3.0)  # resource tracker
