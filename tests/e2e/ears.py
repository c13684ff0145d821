"""What the end-to-end tests hear and play with: a JACK listener and a keyboard.

``Ear`` is a JACK client with two audio inputs that records continuously;
tests connect it to mxfd's output ports and read back what was played.
``Keyboard`` is a virtual rtmidi output port on JACK, the way a real MIDI
keyboard appears.  Nothing here is a mock: both are real JACK clients.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Callable

import jack
import numpy as np
import rtmidi


class Ear:
    """Records ``seconds`` of stereo audio in a ring from whatever it is connected to."""

    def __init__(self, name: str = "mxfd-test-ear", seconds: float = 30.0) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.rate = self.client.samplerate
        self.ports = [self.client.inports.register(f"in_{i + 1}") for i in range(2)]
        self.ring = np.zeros((int(seconds * self.rate), 2), dtype=np.float32)
        self.written = 0  # total frames recorded
        self._lock = threading.Lock()
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        n = self.ring.shape[0]
        pos = self.written % n
        end = min(pos + frames, n)
        for ch, port in enumerate(self.ports):
            buf = port.get_array()
            self.ring[pos:end, ch] = buf[: end - pos]
            if end - pos < frames:
                self.ring[: frames - (end - pos), ch] = buf[end - pos :]
        self.written += frames

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


def rms_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    return 20 * np.log10(max(rms, 1e-12))


class Keyboard:
    """A virtual MIDI keyboard: a JACK MIDI output port ``<name>:out`` made by rtmidi."""

    def __init__(self, name: str = "test-kbd", port: str = "out") -> None:
        self.name = name
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, name=name)
        self.out.open_virtual_port(port)
        self.port_name = f"{name}:{port}"

    def send(self, *message: int) -> None:
        self.out.send_message(list(message))

    def note_on(self, note: int, velocity: int = 100, channel: int = 0) -> None:
        self.send(0x90 | channel, note, velocity)

    def note_off(self, note: int, channel: int = 0) -> None:
        self.send(0x80 | channel, note, 0)

    def close(self) -> None:
        self.out.close_port()
        del self.out


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


__all__ = ["Ear", "Keyboard", "dominant_frequency", "rms_dbfs", "wait_until"]
