"""What the end-to-end tests hear and play with: a JACK listener and a keyboard.

``Ear`` is a JACK client with two audio inputs that records continuously;
tests connect it to mxfd's output ports and read back what was played.
``Keyboard`` is a virtual rtmidi output port on JACK, the way a real MIDI
keyboard appears.  Nothing here is a mock: both are real JACK clients.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import re
import select
import subprocess
import sys
import time
from typing import IO, Any, Callable, Optional

import jack
import numpy as np
from numba import carray, cfunc

from mxfd.io.libjack import (
    PROCESS_SIGNATURE,
    as_ptr,
    client_address,
    last_frame_time,
    midi_clear_buffer,
    midi_event_write,
    port_address,
    port_get_buffer,
    set_process_callback,
)

# The ear's process callback: compiled, so it never waits for the GIL that the test's own thread
# holds (a Python callback there made the ear itself one of the clients JACK counted xruns against).
# arg: [0] left port, [1] right port, [2] the ring's address, [3] its length in frames,
# [4] frames recorded so far, [5] the client, [6] the JACK frame time the next cycle should start at,
# [7] cycles missed so far, [8] where they were missed (an array of MISSED_MAX frame counts),
# [9] a timespec, [10] the cycle log (CYCLE_LOG rows of frames recorded before the cycle and its
# start on CLOCK_MONOTONIC, ns), [11] cycles logged so far.
# The callback is the only writer of [4], [6], [7], [9], [11] and of the arrays.
MISSED_MAX = 4096
CYCLE_LOG = 1 << 15
#: Cycles after a frame's own whose least phase says when it was heard (see Ear.time_of).
PHASE_CYCLES = 32
_CLOCK_MONOTONIC = 1
_clock_gettime = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)(
    ("clock_gettime", ctypes.CDLL(ctypes.util.find_library("c"))))


@cfunc(PROCESS_SIGNATURE, nopython=True)  # type: ignore[misc]
def _record(nframes: int, arg: Any) -> int:
    st = carray(arg, 12, dtype=np.int64)
    ts = carray(as_ptr(st[9]), 2, dtype=np.int64)
    _clock_gettime(_CLOCK_MONOTONIC, as_ptr(st[9]))
    log = carray(as_ptr(st[10]), CYCLE_LOG * 2, dtype=np.int64)
    row = (st[11] % CYCLE_LOG) * 2
    log[row] = st[4]
    log[row + 1] = ts[0] * 1_000_000_000 + ts[1]
    st[11] += 1
    t = np.int64(last_frame_time(as_ptr(st[5])))
    if st[6] >= 0 and t != st[6]:
        missed = carray(as_ptr(st[8]), MISSED_MAX, dtype=np.int64)
        missed[st[7] % MISSED_MAX] = st[4]
        st[7] += 1
    st[6] = (t + nframes) & 0xFFFFFFFF
    n = st[3]
    ring = carray(as_ptr(st[2]), n * 2, dtype=np.float32)
    pos = st[4] % n
    for ch in range(2):
        buf = carray(as_ptr(port_get_buffer(as_ptr(st[ch]), nframes)), nframes, dtype=np.float32)
        k = pos
        for i in range(nframes):
            ring[k * 2 + ch] = buf[i]
            k += 1
            if k == n:
                k = 0
    st[4] += nframes
    return 0


class Ear:
    """Records ``seconds`` of stereo audio in a ring from whatever it is connected to.

    ``xruns`` lists, for every xrun JACK reported (any client of the server
    missed its cycle, or the server itself woke late), how many frames the ear
    had recorded when it heard of it (where in the recording the timeline may
    have lost periods) and the monotonic time.  JACK tells of an xrun a
    little after it happened.  ``missed`` lists where the ear itself missed
    JACK cycles (each one cuts a period out of its recording).

    The recording runs in a compiled callback that never takes the GIL, so
    whatever the test's own threads do cannot make the ear miss a cycle.
    """

    def __init__(self, name: str = "mxfd-test-ear", seconds: float = 30.0) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.rate = self.client.samplerate
        self.ports = [self.client.inports.register(f"in_{i + 1}") for i in range(2)]
        self.ring = np.zeros((int(seconds * self.rate), 2), dtype=np.float32)
        self._missed = np.zeros(MISSED_MAX, dtype=np.int64)
        self._timespec = np.zeros(2, dtype=np.int64)
        self._cycles = np.zeros((CYCLE_LOG, 2), dtype=np.int64)
        self._state = np.array(
            [*(port_address(p) for p in self.ports), self.ring.ctypes.data, self.ring.shape[0], 0,
             client_address(self.client), -1, 0, self._missed.ctypes.data, self._timespec.ctypes.data,
             self._cycles.ctypes.data, 0],
            dtype=np.int64,
        )
        self.xruns: list[tuple[int, float]] = []
        set_process_callback(self.client, _record, self._state.ctypes.data)
        self.client.set_xrun_callback(self._on_xrun)
        self.client.activate()

    @property
    def written(self) -> int:
        """Frames recorded so far."""
        return int(self._state[4])

    @property
    def missed(self) -> list[int]:
        """Frame counts of the recording where the ear missed JACK cycles (the latest MISSED_MAX)."""
        n = int(self._state[7])
        return sorted(int(self._missed[i % MISSED_MAX]) for i in range(max(0, n - MISSED_MAX), n))

    def _on_xrun(self, delayed_usecs: float) -> None:
        self.xruns.append((self.written, time.monotonic()))

    def time_of(self, frame: int) -> int:
        """When recorded frame ``frame`` (a count from the ear's start) was heard: CLOCK_MONOTONIC ns.

        The least phase (a cycle's start less the duration of the frames recorded before it) of the
        frame's cycle and the :data:`PHASE_CYCLES` after it: the callback never starts early, and a
        schedule that moved (an xrun: the dummy driver anchors its cycles at the late one; a cycle the
        ear missed) moves every later phase later, never earlier, so the least is the frame's own
        schedule.  Measured so, a gap between two sounds is the time a listener hears between them,
        xruns or not; in frames, an xrun between them would change it.
        """
        n = int(self._state[11]) - 1  # the newest row may be half written
        rows = self._cycles[np.arange(max(0, n - CYCLE_LOG + 1), n) % CYCLE_LOG]
        c = int(np.searchsorted(rows[:, 0], frame, side="right")) - 1
        if c < 0 or c + 1 >= len(rows):
            raise ValueError(f"frame {frame} is not in the ear's cycle log")
        w = rows[c : c + PHASE_CYCLES]
        phase = int((w[:, 1] - w[:, 0] * 1_000_000_000 // self.rate).min())
        return phase + frame * 1_000_000_000 // self.rate

    def disturbances(self, mark: int) -> list[int]:
        """Frames after ``mark`` where the recording's timeline may have lost periods: xruns and missed cycles."""
        return sorted(p - mark for p in (*(x for x, _ in self.xruns), *self.missed) if p >= mark)

    def connect(self, pattern: str, timeout: float = 10.0) -> list[str]:
        """Connect to the output ports whose names match ``pattern``; return their names."""
        deadline = time.monotonic() + timeout
        while True:
            ports = [p for p in self.client.get_ports(is_audio=True, is_output=True) if re.search(pattern, p.name)]
            if ports or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not ports:
            raise AssertionError(f"no JACK audio output matches {pattern!r}")
        for src, dst in zip(ports, self.ports * 2, strict=False):
            if dst.name not in [p.name for p in self.client.get_all_connections(src)]:
                self.client.connect(src, dst)
        return [p.name for p in ports]

    def mark(self) -> int:
        """The frame counter now; pass it to ``since``."""
        return self.written

    def since(self, mark: int) -> np.ndarray:
        """Mono audio (left + right) recorded since ``mark``."""
        n = self.ring.shape[0]
        end = self.written
        start = max(mark, end - n)
        idx = np.arange(start, end) % n
        return self.ring[idx].sum(axis=1)

    def listen(self, seconds: float) -> np.ndarray:
        """Wait ``seconds`` and return what was heard meanwhile."""
        m = self.mark()
        time.sleep(seconds)
        return self.since(m)

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


# The key probe's process callback: plays scheduled MIDI at exact JACK frames and records its audio
# input by JACK frame, both compiled (no GIL), so what it measures is exact to the sample however
# the test's threads run.  arg: [0] client, [1] MIDI out port, [2] audio in port, [3] the schedule
# (rows of frame time, length), [4] its bytes (rows of 4), [5] rows scheduled, [6] rows sent,
# [7] the recording's address, [8] its length (frames), [9] the frame time of the latest cycle.
@cfunc(PROCESS_SIGNATURE, nopython=True)  # type: ignore[misc]
def _probe(nframes: int, arg: Any) -> int:
    st = carray(arg, 10, dtype=np.int64)
    t = np.int64(last_frame_time(as_ptr(st[0])))
    st[9] = t
    midi = as_ptr(port_get_buffer(as_ptr(st[1]), nframes))
    midi_clear_buffer(midi)
    rows = st[5]
    sched = carray(as_ptr(st[3]), (max(rows, 1), 2), dtype=np.int64)
    while st[6] < rows and sched[st[6], 0] < t + nframes:
        k = st[6]
        midi_event_write(midi, max(sched[k, 0] - t, 0), as_ptr(st[4] + 4 * k), sched[k, 1])
        st[6] = k + 1
    n = st[8]
    ring = carray(as_ptr(st[7]), n, dtype=np.float32)
    audio = carray(as_ptr(port_get_buffer(as_ptr(st[2]), nframes)), nframes, dtype=np.float32)
    for i in range(nframes):
        ring[(t + i) % n] = audio[i]
    return 0


class KeyProbe:
    """Plays MIDI into a synth at exact JACK frames and hears its audio output by JACK frame.

    Key-to-sound latency is then the frame of the first sound after a note-on
    minus the note-on's frame, exact to the sample (as the latency probe of the
    project's tools measures it).  JACK frame times wrap at 2**32 (a day at
    48 kHz): a test never lasts that long.
    """

    def __init__(
        self, midi_in: Optional[str], audio_out: str, name: str = "mxfd-test-probe", seconds: float = 20.0
    ) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.rate = self.client.samplerate
        self.period = self.client.blocksize
        out = self.client.midi_outports.register("keys")
        ear = self.client.inports.register("ear")
        self._sched = np.zeros((4096, 2), np.int64)
        self._bytes = np.zeros((4096, 4), np.uint8)
        self.ring = np.zeros(int(seconds * self.rate), np.float32)
        self._state = np.array(
            [client_address(self.client), port_address(out), port_address(ear), self._sched.ctypes.data,
             self._bytes.ctypes.data, 0, 0, self.ring.ctypes.data, len(self.ring), 0],
            dtype=np.int64,
        )
        set_process_callback(self.client, _probe, self._state.ctypes.data)
        self.client.activate()
        if midi_in is not None:  # None: whoever plays it connects it (mxfd's hot-plug, as a keyboard)
            self.client.connect(out, midi_in)
        self.client.connect(audio_out, ear)

    @property
    def now(self) -> int:
        """The frame time of the latest cycle."""
        return int(self._state[9])

    def wait_past(self, frame: int, timeout: float = 10.0) -> bool:
        """Wait until JACK's cycles have gone past ``frame``; False after ``timeout`` seconds."""
        return wait_until(lambda: self.now > frame, timeout)

    def schedule(self, frame: int, *message: int) -> None:
        """Send ``message`` at JACK frame ``frame`` (in order with what is already scheduled)."""
        k = int(self._state[5])
        self._sched[k] = (frame, len(message))
        self._bytes[k, : len(message)] = message
        self._state[5] = k + 1  # published last: the callback reads the row from now on

    def schedule_notes(self, start: int, gap: int, count: int = 8) -> list[int]:
        """``count`` A4s from frame ``start``, ``gap`` frames apart and off the period grid; their frames.

        Each is released a third of the gap on and silenced (all sound off) at two thirds, so every
        note starts from silence.
        """
        notes = [start + k * gap + (k * 37) % self.period for k in range(count)]
        for f in notes:
            self.schedule(f, 0x90, 69, 110)
            self.schedule(f + gap // 3, 0x80, 69, 0)
            self.schedule(f + gap * 2 // 3, 0xB0, 120, 0)
        return notes

    def heard(self, start: int, frames: int) -> np.ndarray:
        """What came in from JACK frame ``start`` on, ``frames`` of it."""
        return self.ring[np.arange(start, start + frames) % len(self.ring)]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


def dominant_frequency(x: np.ndarray, rate: int) -> float:
    """The strongest frequency in ``x``, refined by parabolic interpolation."""
    x = x - np.mean(x)
    w = np.hanning(len(x))
    spec = np.abs(np.fft.rfft(x * w, n=len(x) * 4))
    k = int(np.argmax(spec[1:])) + 1
    if 1 <= k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-20)
        k = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(k * rate / (len(x) * 4))


def band_db(x: np.ndarray, rate: int, f: float, width: float = 0.01) -> float:
    """The spectrum's peak within ``width`` (relative) of ``f``, in dB of an arbitrary unit.

    Compare two bands of one recording with it; a single figure means nothing alone.
    """
    x = x - np.mean(x)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=len(x) * 4))
    freqs = np.fft.rfftfreq(len(x) * 4, 1.0 / rate)
    band = spec[(freqs > f * (1 - width)) & (freqs < f * (1 + width))]
    return float(20 * np.log10(np.max(band) + 1e-20))


def rms_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20 * np.log10(max(rms, 1e-12))


#: The keyboard's own process: an rtmidi virtual output port, one message per line of hex from stdin,
#: answered with the monotonic time just after rtmidi took it.  It dies with the test process.
_KEYBOARD = """
import ctypes, signal, sys, time
ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
import rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=sys.argv[1])
out.open_virtual_port(sys.argv[2])
print("ready", flush=True)
for line in sys.stdin:
    out.send_message(list(bytes.fromhex(line)))
    print(repr(time.monotonic()), flush=True)
out.close_port()
out.delete()
"""


class Keyboard:
    """A virtual MIDI keyboard: a JACK MIDI output port ``<name>:out`` made by rtmidi, in a process of its own.

    python-rtmidi holds the GIL while it opens and closes its JACK client, and
    those wait for JACK, which waits for the process and notification
    callbacks of this process's JACK clients (an ``Ear``), which need the GIL:
    in the test process that stalls the whole JACK graph, or hangs for good.
    In a process of its own rtmidi waits for nobody.
    """

    def __init__(self, name: str = "test-kbd", port: str = "out", timeout: float = 10.0) -> None:
        self.name = name
        self.port_name = f"{name}:{port}"
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _KEYBOARD, name, port],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        ready = self._read_line(timeout)
        if ready != "ready":
            self._proc.kill()
            self._proc.wait(5)
            raise RuntimeError(f"the keyboard {name!r} did not open its port (exit status {self._proc.returncode})")

    def _read_line(self, timeout: float) -> Optional[str]:
        """The keyboard's next answer (it writes whole lines, one per request), or None after ``timeout``."""
        out: IO[str] = self._proc.stdout  # type: ignore[assignment]
        if not select.select([out], [], [], timeout)[0]:
            return None
        return out.readline().strip()

    def send(self, *message: int) -> float:
        """Play ``message``; returns the monotonic time just after rtmidi took it (JACK sends it next cycle)."""
        stdin: IO[str] = self._proc.stdin  # type: ignore[assignment]
        stdin.write(bytes(message).hex() + "\n")
        stdin.flush()
        answer = self._read_line(10.0)
        if not answer:
            raise RuntimeError(f"the keyboard {self.name!r} did not answer (exit status {self._proc.poll()})")
        return float(answer)

    def note_on(self, note: int, velocity: int = 100, channel: int = 0) -> None:
        self.send(0x90 | channel, note, velocity)

    def note_off(self, note: int, channel: int = 0) -> None:
        self.send(0x80 | channel, note, 0)

    def close(self) -> None:
        """Close the port and the keyboard's JACK client (its process ends)."""
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


__all__ = ["Ear", "Keyboard", "dominant_frequency", "rms_dbfs", "wait_until"]
