"""The tests' ear and keyboards as a process of their own, for a JACK server the test process cannot reach.

The test process has loaded jackd2's libjack for the jackd tests; PipeWire's
JACK is another library, taken when a process starts (``pw-jack``).  So on
PipeWire the test starts this module under PipeWire's libjack
(:meth:`tests.pipewire.PipeWireRig.jack_env`) and drives it with one JSON
request a line on stdin, one JSON answer a line on stdout:

* ``{"op": "info"}``: the server's rate and buffer size.
* ``{"op": "ports", "pattern": RE, "midi": bool}``: names of ports matching.
* ``{"op": "connections", "pattern": RE}``: what each audio port matching is connected to.
* ``{"op": "connect", "pattern": RE, "timeout": s}``: connect the ear to the audio outputs matching.
* ``{"op": "mark"}``: the ear's frame count; ``{"op": "since", "mark": n, "path": p}`` saves
  the mono audio recorded since then to ``p`` (``numpy.save``).
* ``{"op": "disturbances", "mark": n}``: where the ear's timeline may have lost periods since then.
* ``{"op": "plug", "name": NAME}`` / ``{"op": "unplug", "name": NAME}``: a keyboard ``NAME:out``
  (a JACK-Client MIDI output, as a hardware keyboard bridged by PipeWire appears) comes and goes.
* ``{"op": "send", "name": NAME, "msg": [bytes]}``: the keyboard plays it in its next cycle.

The ear is :class:`tests.e2e.ears.Ear` itself; an answer ``{"error": ...}`` reports a failed request.
The process dies with the test process.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import jack
import numpy as np

from tests.e2e.ears import Ear


def open_keyboard(name: str, tries: int = 5) -> "JackKeyboard":
    """A new :class:`JackKeyboard`, tried again a few times: a client opened on PipeWire just after it
    restarted, or just after a client of the same name closed, fails now and then (``init_failure``)."""
    for i in range(tries):
        try:
            return JackKeyboard(name)
        except jack.JackOpenError:
            if i == tries - 1:
                raise
            time.sleep(0.1)
    raise AssertionError("unreachable")


class JackKeyboard:
    """A JACK MIDI output port ``<name>:out`` that plays what it is given, in its next cycle."""

    def __init__(self, name: str) -> None:
        self.client = jack.Client(name, no_start_server=True)
        self.port = self.client.midi_outports.register("out")
        self._queue: list[bytes] = []
        self._lock = threading.Lock()
        self._played = threading.Condition(self._lock)
        self._sent = 0
        #: JACK's frame time of the cycle that played the latest message (the message is at offset 0).
        self.played_at = -1
        self.client.set_process_callback(self._process)
        self.client.activate()

    def _process(self, frames: int) -> None:
        self.port.clear_buffer()
        with self._lock:
            queue, self._queue = self._queue, []
            for msg in queue:
                self.port.write_midi_event(0, msg)
            if queue:
                self.played_at = self.client.last_frame_time
                self._sent += len(queue)
                self._played.notify_all()

    def send(self, msg: bytes, timeout: float = 2.0) -> int:
        """Play ``msg``; returns the JACK frame time it was played at (-1 if no cycle took it in ``timeout``)."""
        with self._lock:
            self._queue.append(msg)
            want = self._sent + len(self._queue)
            self._played.wait_for(lambda: self._sent >= want, timeout)
            return self.played_at if self._sent >= want else -1

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


class JackPeer:
    """The test's side: this module started as a process with ``env`` (PipeWire's libjack first)."""

    def __init__(self, env: dict[str, str], tmp: Path, timeout: float = 20.0) -> None:
        root = Path(__file__).resolve().parents[2]
        self.tmp = tmp
        self._n = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.jackpeer"], cwd=root, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        first = self._read(timeout)
        if not first.get("ready"):
            self.close()
            raise RuntimeError(f"the JACK peer did not start (exit status {self.proc.poll()}): {first}")
        info = self.request("info")
        self.rate: int = info["rate"]
        self.blocksize: int = info["blocksize"]

    def _read(self, timeout: float) -> dict[str, Any]:
        out: IO[str] = self.proc.stdout  # type: ignore[assignment]
        if not select.select([out], [], [], timeout)[0]:
            return {"error": f"no answer in {timeout} s"}
        line = out.readline()
        return json.loads(line) if line else {"error": f"the peer exited ({self.proc.poll()})"}

    def request(self, op: str, timeout: float = 20.0, **fields: Any) -> dict[str, Any]:
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(json.dumps({"op": op, **fields}) + "\n")
        stdin.flush()
        answer = self._read(timeout)
        if "error" in answer:
            raise AssertionError(f"JACK peer {op}: {answer['error']}")
        return answer

    def connect(self, pattern: str, timeout: float = 10.0) -> list[str]:
        ports: list[str] = self.request("connect", timeout=timeout + 5, pattern=pattern, timeout_s=timeout)["ports"]
        return ports

    def listen_to(self, pattern: str, timeout: float = 10.0) -> list[str]:
        """Connect the ear to the outputs matching ``pattern`` only."""
        self.request("disconnect")
        return self.connect(pattern, timeout)

    def ports(self, pattern: str, midi: bool = False) -> list[str]:
        names: list[str] = self.request("ports", pattern=pattern, midi=midi)["ports"]
        return names

    def mark(self) -> int:
        return int(self.request("mark")["mark"])

    def since(self, mark: int) -> np.ndarray:
        """Mono audio the ear recorded since ``mark``."""
        self._n += 1
        path = self.tmp / f"ear-{os.getpid()}-{self._n}.npy"
        self.request("since", mark=mark, path=str(path))
        audio: np.ndarray = np.load(path)
        path.unlink()
        return audio

    def disturbances(self, mark: int) -> list[int]:
        """Frames after ``mark`` where the ear's timeline may have lost periods (xruns, missed cycles)."""
        found: list[int] = self.request("disturbances", mark=mark)["disturbances"]
        return found

    def disturbance_count(self) -> int:
        """How many disturbances the ear has seen since it started: what ``calm.Takes`` waits to hold still."""
        return len(self.disturbances(0))

    def time_of(self, *frames: int) -> list[int]:
        """When the ear heard each of ``frames`` (as :meth:`mark` counts), ns on CLOCK_MONOTONIC: ``Ear.time_of``."""
        ns: list[int] = self.request("time_of", frames=list(frames))["ns"]
        return ns

    def listen(self, seconds: float) -> np.ndarray:
        m = self.mark()
        time.sleep(seconds)
        return self.since(m)

    def plug(self, name: str) -> None:
        self.request("plug", name=name)

    def unplug(self, name: str) -> None:
        self.request("unplug", name=name)

    def send(self, name: str, *msg: int) -> int:
        """Play ``msg`` on keyboard ``name``; returns the JACK frame time it went out at."""
        return int(self.request("send", name=name, msg=list(msg))["frame"])

    def ear_frame(self, jack_frame: int) -> int:
        """The ear's frame count (as :meth:`mark` counts) at JACK frame time ``jack_frame``."""
        offset = int(self.request("clock")["offset"])
        return (jack_frame - offset) & 0xFFFFFFFF

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def main() -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the test process
    ear = Ear("mxfd-test-ear", seconds=60.0)
    keyboards: dict[str, JackKeyboard] = {}

    def handle(req: dict[str, Any]) -> dict[str, Any]:
        op = req["op"]
        if op == "info":
            return {"rate": ear.client.samplerate, "blocksize": ear.client.blocksize}
        if op == "ports":
            kind = {"is_midi": True} if req.get("midi") else {"is_audio": True}
            return {"ports": [p.name for p in ear.client.get_ports(**kind) if re.search(req["pattern"], p.name)]}
        if op == "connections":
            return {p.name: [c.name for c in ear.client.get_all_connections(p)]
                    for p in ear.client.get_ports(is_audio=True) if re.search(req["pattern"], p.name)}
        if op == "connect":
            return {"ports": ear.connect(req["pattern"], timeout=req.get("timeout_s", 10.0))}
        if op == "disconnect":
            for port in ear.ports:
                for other in ear.client.get_all_connections(port):
                    ear.client.disconnect(other, port)
            return {}
        if op == "mark":
            return {"mark": ear.mark()}
        if op == "since":
            audio = ear.since(req["mark"])
            np.save(req["path"], audio)
            return {"frames": len(audio), "disturbances": ear.disturbances(req["mark"])}
        if op == "disturbances":
            return {"disturbances": ear.disturbances(req["mark"])}
        if op == "time_of":
            return {"ns": [ear.time_of(f) for f in req["frames"]]}
        if op == "plug":
            keyboards[req["name"]] = open_keyboard(req["name"])
            return {}
        if op == "unplug":
            keyboards.pop(req["name"]).close()
            return {}
        if op == "send":
            frame = keyboards[req["name"]].send(bytes(req["msg"]))
            return {"t": time.monotonic(), "frame": frame}
        if op == "clock":
            # The ear's frame count k was recorded at JACK frame time k + offset (while it misses no cycle).
            st = ear._state
            return {"offset": int((st[6] - st[4]) & 0xFFFFFFFF)}
        raise ValueError(f"unknown request {op!r}")

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        try:
            answer = handle(json.loads(line))
        except Exception as e:  # the test reads it and fails with it
            answer = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(answer), flush=True)
    for k in keyboards.values():
        k.close()
    ear.close()


if __name__ == "__main__":
    main()
