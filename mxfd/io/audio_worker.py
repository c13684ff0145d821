"""The PortAudio side of the audio output pin: a process that is allowed to die.

Theory of operation
-------------------
PortAudio lists host APIs only when it is initialised, and after the JACK
server dies its JACK host API aborts the whole process on terminate.  So the
daemon never loads PortAudio: :class:`mxfd.io.audio.AudioOutput` starts this
script as a child (``python -P audio_worker.py CONFIG_JSON``), and when the
sound server goes away the child simply exits and a new one is started.

The child imports only numpy and sounddevice, never mxfd (importing mxfd
would import the whole daemon); everything it needs comes in the one JSON
argument: the shared-memory segment's name and layout (see
``mxfd.io.shm_frames``), the stream parameters and three inherited descriptors:

* ``notify_fd`` (a socket; write): one byte per frame played.  The daemon's render
  thread sleeps on the other end and refills the slot.  End of file there
  means this process is gone.
* ``status_fd`` (a pipe's write end): JSON lines, ``{"event": "ready", ...}`` once the
  stream runs, ``{"event": "error", "message": ...}`` before exiting on a
  failure.
* ``lifeline_fd`` (a pipe's read end): the daemon holds the write end.  A byte means
  "stop"; end of file means the daemon died.  ``PR_SET_PDEATHSIG`` (SIGKILL)
  backs this up, so no worker outlives its daemon.

The stream callback does bounded work only: read two counters, copy one
frame (``period × channels`` float32) into ``outdata``, stamp the slot with
the clock and PortAudio's time info, advance ``read`` and write one byte to
a non-blocking socket.  If no frame is ready it plays silence and counts an
underrun (from the first frame on; start-up silence is not an underrun), and
it counts PortAudio's ``output_underflow`` flag as an xrun.

The device ``"default"`` (config None) is the JACK host API's output when a
JACK server answered PortAudio at start-up (jackd, or PipeWire under
``pw-jack``), else PortAudio's own default, which is ALSA's ``default`` PCM
where ALSA has one: on a desktop that is the sound server's ALSA plugin
(pipewire-alsa), a slower path into the same server.

The JACK client is named before PortAudio initialises (PortAudio's JACK
host API has ``PaJack_SetClientName``; sounddevice initialises at import, so
the name is set through ctypes on the same library first).  Its ports are
``<client>:out_0`` … ``out_<channels-1>``.

On any failure (no device, stream refused, stream stopped because the server
went away) the worker reports it and leaves with ``os._exit``, never through
``Pa_Terminate``, which is what aborts when JACK is gone.  Exit codes: 0
stopped on request, 2 could not open the device, 3 the stream died, 4 bad
configuration.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
import re
import select
import signal
import sys
import threading
import time
from typing import Any, NoReturn, Optional

PR_SET_PDEATHSIG = 1
SHM_DIR = "/dev/shm"
POLL_S = 0.05  # how often the main thread checks the stream and the lifeline
#: The callback thread's SCHED_FIFO priority where it has none of its own (mxfd.io.sched.RT_PRIORITY's).
CALLBACK_RT_PRIORITY = 1
#: Longest wait for the first callback before reporting ready.
SCHEDULING_WAIT_S = 0.5

EXIT_STOPPED = 0
EXIT_NO_DEVICE = 2
EXIT_STREAM_DIED = 3
EXIT_BAD_CONFIG = 4


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the daemon dies, even if nobody closes the lifeline."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        print(f"audio worker: prctl(PR_SET_PDEATHSIG) failed: errno {ctypes.get_errno()}", file=sys.stderr)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(EXIT_STOPPED)


_client_name_buf: Optional[ctypes.Array[ctypes.c_char]] = None


def _name_jack_client(name: str) -> Optional[ctypes.CDLL]:
    """Give PortAudio's JACK client our name; call before sounddevice is imported.

    PortAudio keeps the pointer, so the buffer lives in a module global.
    Returns the library (for ``PaJack_GetClientName``) or None without JACK support.
    """
    global _client_name_buf
    path = ctypes.util.find_library("portaudio")
    if path is None:
        return None
    lib = ctypes.CDLL(path)
    if not hasattr(lib, "PaJack_SetClientName"):
        return None
    _client_name_buf = ctypes.create_string_buffer(name.encode())
    lib.PaJack_SetClientName.argtypes = [ctypes.c_char_p]
    lib.PaJack_SetClientName.restype = ctypes.c_int
    err = lib.PaJack_SetClientName(_client_name_buf)
    if err != 0:
        print(f"audio worker: PaJack_SetClientName({name!r}) failed with PaError {err}", file=sys.stderr)
    return lib


def _jack_client_name(lib: Optional[ctypes.CDLL]) -> Optional[str]:
    """The JACK client name PortAudio actually got (JACK may have added a suffix)."""
    if lib is None or not hasattr(lib, "PaJack_GetClientName"):
        return None
    out = ctypes.c_char_p()
    lib.PaJack_GetClientName.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.PaJack_GetClientName.restype = ctypes.c_int
    if lib.PaJack_GetClientName(ctypes.byref(out)) != 0 or out.value is None:
        return None
    return out.value.decode(errors="replace")


class Worker:
    """One PortAudio output stream fed from the shared-memory frame ring."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.status_fd: int = cfg["status_fd"]
        self.notify_fd: int = cfg["notify_fd"]
        self.lifeline_fd: int = cfg["lifeline_fd"]
        os.set_blocking(self.notify_fd, False)
        self.period: int = cfg["period"]
        self.channels: int = cfg["channels"]
        self.primed = False  # a frame has been played: from now on an empty ring is an underrun
        #: How the callback's thread runs, once it has been called (see _realtime_callback_thread).
        self.scheduling: Optional[str] = None
        self.fence = threading.Lock()  # held; see mxfd.io.shm_frames on memory ordering
        self.fence.acquire()

    # -- reporting --------------------------------------------------------------------

    def report(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}) + "\n"
        try:
            os.write(self.status_fd, line.encode())
        except OSError as e:  # the daemon is gone; the lifeline will end us
            print(f"audio worker: cannot report {event}: {e}", file=sys.stderr)

    def fail(self, code: int, message: str) -> NoReturn:
        self.report("error", message=message, code=code)
        os._exit(code)

    # -- shared memory ------------------------------------------------------------------

    def map_ring(self) -> None:
        import numpy as np

        cfg = self.cfg
        lay = cfg["layout"]
        fd = os.open(os.path.join(SHM_DIR, cfg["shm"]), os.O_RDWR)
        try:
            self.mm = mmap.mmap(fd, cfg["size"])
        finally:
            os.close(fd)
        q = memoryview(self.mm).cast("q")
        if q[0] != lay["magic"]:
            self.fail(EXIT_BAD_CONFIG, f"shared-memory segment {cfg['shm']} does not hold a frame ring")
        self.q = q
        self.i_write = lay["write"] // 8
        self.i_read = lay["read"] // 8
        self.i_underruns = lay["underruns"] // 8
        self.i_xruns = lay["xruns"] // 8
        self.i_callbacks = lay["callbacks"] // 8
        self.i_mismatched = lay["mismatched"] // 8
        self.slots = lay["slots"]
        self.slot0 = lay["slots_offset"] // 8
        self.slot_q = lay["slot_stride"] // 8
        self.f_frame = lay["slot_frame"] // 8
        self.f_cb = lay["slot_cb_ns"] // 8
        self.f_current = lay["slot_current_ns"] // 8
        self.f_dac = lay["slot_dac_ns"] // 8
        n = self.period * self.channels
        self.frames = [
            np.frombuffer(self.mm, dtype=np.float32, count=n, offset=cfg["frames_offset"] + i * cfg["frame_stride"])
            .reshape(self.period, self.channels)
            for i in range(cfg["frame_count"])
        ]

    # -- the real-time part -------------------------------------------------------------

    def callback(self, outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        """Play the next ready frame, or silence; bounded work only."""
        now = time.monotonic_ns()
        if self.scheduling is None:
            self.scheduling = _realtime_callback_thread()
        q = self.q
        q[self.i_callbacks] += 1
        if status and self.primed and status.output_underflow:
            q[self.i_xruns] += 1
        r = q[self.i_read]
        if q[self.i_write] > r and frames == self.period:
            fence = self.fence
            fence.release()  # release + acquire: a full fence (weakly ordered CPUs): the slot
            fence.acquire()  # and the frame are read only after the counter that published them
            base = self.slot0 + (r % self.slots) * self.slot_q
            outdata[:] = self.frames[q[base + self.f_frame]]
            q[base + self.f_cb] = now
            q[base + self.f_current] = int(time_info.currentTime * 1e9)
            q[base + self.f_dac] = int(time_info.outputBufferDacTime * 1e9)
            fence.release()  # and the stamps are visible before the counter moves
            fence.acquire()
            q[self.i_read] = r + 1
            self.primed = True
            try:
                os.write(self.notify_fd, b"\x01")
            except BlockingIOError:
                pass  # the socket is full of wake-ups already: the daemon reads the counter, not the bytes
        else:
            outdata.fill(0)
            if frames != self.period:
                q[self.i_mismatched] += 1
            elif self.primed:
                q[self.i_underruns] += 1

    # -- life cycle ------------------------------------------------------------------

    def run(self) -> None:
        cfg = self.cfg
        lib = _name_jack_client(cfg["client_name"])
        import sounddevice as sd  # initialises PortAudio, with the client name set

        self.map_ring()
        device = cfg["device"]
        try:
            if device is None:
                device = _default_output(sd)
                if device is None:
                    self.fail(EXIT_NO_DEVICE, "no audio output device: " + _describe_host_apis(sd))
            info = sd.query_devices(device, kind="output")
        except (ValueError, sd.PortAudioError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            what = "not found" if first.startswith("No output device") else f"not usable: {first}"
            self.fail(EXIT_NO_DEVICE, f"audio output device {device!r} {what}; "
                      + _describe_outputs(sd, cfg.get("own_clients")))
        hostapi = sd.query_hostapis(info["hostapi"])["name"]
        try:
            stream = sd.OutputStream(
                samplerate=cfg["rate"],
                blocksize=self.period,
                device=info["index"],
                channels=self.channels,
                dtype="float32",
                latency=cfg.get("latency", "low"),
                callback=self.callback,
            )
            stream.start()
        except (sd.PortAudioError, ValueError) as e:
            rate_note = ""
            if abs(info["default_samplerate"] - cfg["rate"]) > 0.5:
                rate_note = f" (the device runs at {info['default_samplerate']:g} Hz, {cfg['rate']} Hz was asked)"
            self.fail(EXIT_NO_DEVICE, f"cannot open audio output {info['name']!r} on {hostapi}: {e}{rate_note}")
        client = _jack_client_name(lib) if "JACK" in hostapi else None
        waited = time.monotonic() + SCHEDULING_WAIT_S
        while self.scheduling is None and time.monotonic() < waited:
            time.sleep(0.005)  # the first callback says how its thread runs
        self.report(
            "ready",
            callback_scheduling=self.scheduling or "not called yet",
            device=info["name"],
            index=info["index"],
            hostapi=hostapi,
            rate=stream.samplerate,
            latency=_plausible_latency(stream.latency),
            client=client,
            ports=[f"{client}:out_{i}" for i in range(self.channels)] if client else [],
        )
        stop_requested = False
        while True:
            ready, _, _ = select.select([self.lifeline_fd], [], [], POLL_S)
            if ready:
                data = os.read(self.lifeline_fd, 64)
                stop_requested = bool(data)
                break  # a byte: stop; end of file: the daemon died
            if not stream.active:
                self.fail(EXIT_STREAM_DIED, f"the audio stream on {info['name']!r} ({hostapi}) stopped: "
                          "the sound server went away or the device vanished")
        if stop_requested and stream.active:  # with the server gone, closing would abort the process
            try:
                stream.close()
                sd._terminate()  # JACK is alive here: close the client cleanly
            except sd.PortAudioError as e:
                print(f"audio worker: closing the stream failed: {e}", file=sys.stderr)
        os._exit(EXIT_STOPPED)


def _realtime_callback_thread() -> str:
    """Put the calling thread (PortAudio's callback thread) in SCHED_FIFO 1 if it is an ordinary one.

    PortAudio's ALSA host API starts its callback thread as an ordinary one: on a busy machine it
    wakes late, and the sound server (pipewire-alsa, a PulseAudio plug-in) plays a gap that neither
    side reports.  A thread a sound server made real-time already (JACK's) keeps its own priority.
    """
    policy = os.sched_getscheduler(0)
    if policy != os.SCHED_OTHER:
        name = {os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}.get(policy, f"policy {policy}")
        return f"{name} {os.sched_getparam(0).sched_priority} (its own)"
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(CALLBACK_RT_PRIORITY))
    except OSError as e:  # no CAP_SYS_NICE nor RLIMIT_RTPRIO, or systemd's RestrictRealtime=yes
        return f"normal ({e.strerror or e})"
    return f"SCHED_FIFO {CALLBACK_RT_PRIORITY}"


def _plausible_latency(seconds: float) -> Optional[float]:
    """PortAudio's output latency, or None where it cannot be one.

    Under PipeWire's libjack, PortAudio's JACK host API computes it from
    frame times that wrap: 2**32 frames less a few, 89478 s at 48 kHz.  The
    frames' own time stamps then measure it (``mxfd.io.audio``).
    """
    return seconds if 0.0 <= seconds < 1.0 else None


def _default_output(sd: Any) -> Optional[int]:
    """The device ``"default"`` means: JACK's when a JACK server answers, else PortAudio's default.

    PortAudio's own default is the first host API with a device, ALSA before
    JACK; where ALSA's ``default`` PCM is a sound server's stream (pipewire-alsa,
    the PulseAudio plugin) that would send the sound through the server's ALSA
    path, a period or more later than its JACK graph (under ``pw-jack`` too),
    and past the JACK server a user started for low latency.  PortAudio lists
    its JACK host API only when a server answered at start-up, so its presence
    is the answer.
    """
    for api in sd.query_hostapis():
        if "JACK" in api["name"] and api["default_output_device"] >= 0:
            return int(api["default_output_device"])
    index = sd.default.device[1]
    return None if index is None or index < 0 else int(index)


def _describe_outputs(sd: Any, own_clients: Optional[str]) -> str:
    """The output devices that do exist, for a device name that matched none.

    The daemon's own JACK clients (``own_clients``, a regular expression) are
    left out: PortAudio lists every JACK client with ports as a device, and
    mxfd's are no place to send sound.  With no device at all, what the host
    APIs see (the sound server may be down).
    """
    own = re.compile(own_clients) if own_clients else None
    apis = sd.query_hostapis()
    names = []
    for d in sd.query_devices():
        api = apis[d["hostapi"]]["name"]
        if d["max_output_channels"] <= 0 or (own is not None and "JACK" in api and own.match(d["name"])):
            continue
        names.append(f"{d['index']} {d['name']!r} ({api})")
    if not names:
        return _describe_host_apis(sd)
    found = f"the output devices are {', '.join(names)}: give a name, part of one or an index (`mxfd ports` lists them)"
    if not any("JACK" in api["name"] for api in apis):
        found += f"; JACK: no server {os.environ.get('JACK_DEFAULT_SERVER', 'default')!r} running"
    return found


def _describe_host_apis(sd: Any) -> str:
    """What PortAudio can see, for an error message a user can act on."""
    apis = []
    for api in sd.query_hostapis():
        outs = [d for d in api["devices"] if sd.query_devices(d)["max_output_channels"] > 0]
        apis.append(f"{api['name']}: {len(outs)} output device(s)")
    if not any("JACK" in api["name"] for api in sd.query_hostapis()):
        server = os.environ.get("JACK_DEFAULT_SERVER", "default")
        apis.append(f"JACK: no server {server!r} running")
    seen = "; ".join(apis) if apis else "no host APIs"
    return f"PortAudio sees {seen}. Is the sound server running?"


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is for the daemon, which stops us
    if len(argv) != 2:
        print("usage: audio_worker.py CONFIG_JSON (started by mxfd.io.audio)", file=sys.stderr)
        return EXIT_BAD_CONFIG
    cfg = json.loads(argv[1])
    _die_with_parent(cfg["parent_pid"])
    Worker(cfg).run()
    return EXIT_STOPPED


if __name__ == "__main__":
    sys.exit(main(sys.argv))
