"""The JACK-native pin: JACK's real-time thread renders the data plane itself, in compiled code.

Theory of operation
-------------------
One JACK client with two audio outputs (``out_0``, ``out_1``) and MIDI
inputs.  Its process callback is a numba ``@cfunc`` (see
:mod:`mxfd.io.libjack`) that, in every cycle:

1. reads every MIDI input and queues each channel message to play at its
   own frame of this cycle (:func:`~mxfd.synth.engine.dataplane.hold_thru`);
   the cycle's output leaves a period later, so a key is heard exactly one
   period after it was played, every time;
2. renders the cycle (:func:`~mxfd.synth.engine.dataplane.run_cycle`) with
   the events the control plane queued in the plane's event ring, each at
   its own frame, straight into the output ports' buffers;
3. times itself on ``CLOCK_MONOTONIC`` and keeps the last
   :data:`TIMES` durations, a count of cycles that took longer than the
   period (``overruns``), and the clock reading and frame of the cycle's
   start, from which the control plane maps the master clock to frames;
4. writes a byte to an optional descriptor, so a control-plane thread that
   feeds the ring can wake once a cycle (or once every few, while it has
   nothing to feed: :meth:`JackPin.set_wake_every`).

No Python runs in the callback and it never takes the GIL, so nothing the
rest of the process does can make it late.  It calls libjack and libc by
address (:data:`mxfd.io.libjack.ADDRESSES`), and is compiled for the one
type every data plane has (:data:`PLANE_TYPE`), so it comes from numba's
cache: no compiler runs at start-up.  Everything the callback reads
or writes is preallocated, and the pin holds it (the plane, its own
vectors) for as long as the client can call back.  Port management, connections and the xrun count use
JACK-Client from ordinary threads.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Final, Optional

import numba
import numpy as np
import numpy.typing as npt
from numba import cfunc
from numba.np import numpy_support

from mxfd.io.jacklog import close_client, connecting, route_jack_messages
from mxfd.io.libjack import (
    ADDRESSES,
    MIDI_EVENT_WORDS,
    PROCESS_SIGNATURE,
    as_ptr,
    call_i_ip,
    call_i_ppu,
    call_l_ipl,
    call_p_pu,
    call_u_p,
    client_address,
    port_address,
    set_process_callback,
)
from mxfd.synth.engine import dataplane
from mxfd.synth.engine.dataplane import C_POSITION, DataPlane, address, from_address_of, plane_type

log = logging.getLogger(__name__)

#: Clients whose server shut down under them: kept (one a server restart), since closing one crashes libjack.
_dead_clients: list[Any] = []

#: Callback durations kept for the percentiles.
TIMES: Final = 4096
#: MIDI inputs the callback reads (slots of the port table).
MAX_INPUTS: Final = 64

# the callback's argument: an int64 vector
_A_PLANE = 0
_A_LEFT = 1
_A_RIGHT = 2
_A_INPUTS = 3  # address of the (MAX_INPUTS, 2) port table: port address (0: free slot), first channel
_A_EVENT = 4  # address of a jack_midi_event_t
_A_CLOCK = 5  # address of a struct timespec
_A_STATS = 6  # address of the stats vector
_A_RATE = 7
_A_WAKE_FD = 8  # -1: none
_A_WAKE_BYTE = 9
_A_CLIENT = 10
_A_FUNCTIONS = 11  # address of the C functions' addresses (_F_*)
_A_WAKE_EVERY = 12  # write the wake-up byte at the end of every this many cycles (1: each)
_A_N = 13

# the stats vector
S_CYCLES = 0
S_OVERRUNS = 1
S_MAX_NS = 2
S_START_NS = 3  # CLOCK_MONOTONIC at the start of the latest cycle
S_START_FRAME = 4  # the frame that cycle rendered first
S_PERIOD = 5  # that cycle's length
S_JACK_FRAME = 6  # JACK's frame time of that cycle's first frame
S_TIMES = 8  # TIMES durations (ns) follow

# C functions the callback calls, by address (see mxfd.io.libjack: that keeps the callback cacheable)
_F_GET_BUFFER = 0
_F_EVENT_COUNT = 1
_F_EVENT_GET = 2
_F_LAST_FRAME_TIME = 3
_F_CLOCK_GETTIME = 4
_F_WRITE = 5
_F_N = 6
_FUNCTIONS = ("jack_port_get_buffer", "jack_midi_get_event_count", "jack_midi_event_get", "jack_last_frame_time",
              "clock_gettime", "write")  # fmt: skip
_CLOCK_MONOTONIC = 1

#: The type of every data plane, so the callback is compiled (and cached) once for all of them.
PLANE_TYPE: Final = plane_type()
_plane_at: Any = from_address_of(PLANE_TYPE)
# What the callback calls, as compiled code sees them (typed Any: mypy cannot follow numba's types).
carray: Any = numpy_support.carray
hold_thru: Any = dataplane.hold_thru
run_cycle: Any = dataplane.run_cycle


@cfunc(PROCESS_SIGNATURE, cache=True)
def _process(nframes: int, arg: Any) -> int:
    a = carray(arg, _A_N, dtype=np.int64)
    fn = carray(as_ptr(a[_A_FUNCTIONS]), _F_N, dtype=np.int64)
    clock = carray(as_ptr(a[_A_CLOCK]), 2, dtype=np.int64)
    stats = carray(as_ptr(a[_A_STATS]), S_TIMES + TIMES, dtype=np.int64)
    call_i_ip(fn[_F_CLOCK_GETTIME], _CLOCK_MONOTONIC, as_ptr(a[_A_CLOCK]))
    t0 = clock[0] * 1_000_000_000 + clock[1]
    dp = _plane_at(a[_A_PLANE])
    get_buffer = fn[_F_GET_BUFFER]
    left = carray(as_ptr(call_p_pu(get_buffer, as_ptr(a[_A_LEFT]), nframes)), nframes, dtype=np.float32)
    right = carray(as_ptr(call_p_pu(get_buffer, as_ptr(a[_A_RIGHT]), nframes)), nframes, dtype=np.float32)
    inputs = carray(as_ptr(a[_A_INPUTS]), (MAX_INPUTS, 2), dtype=np.int64)
    ev = carray(as_ptr(a[_A_EVENT]), MIDI_EVENT_WORDS, dtype=np.uint64)
    for p in range(MAX_INPUTS):
        port = inputs[p, 0]
        if port == 0:
            continue
        buf = call_p_pu(get_buffer, as_ptr(port), nframes)
        for i in range(call_u_p(fn[_F_EVENT_COUNT], buf)):
            if call_i_ppu(fn[_F_EVENT_GET], as_ptr(a[_A_EVENT]), buf, i) != 0:
                continue
            size = np.int64(ev[1])
            if size < 1 or size > 3:
                continue  # SysEx and longer: the capture path's, not thru's
            data = carray(as_ptr(np.int64(ev[2])), size, dtype=np.uint8)
            if data[0] < 0x80 or data[0] >= 0xF0:
                continue
            hold_thru(dp, np.int64(ev[0] & np.uint64(0xFFFFFFFF)), inputs[p, 1], data, size)
    stats[S_START_NS] = t0
    stats[S_START_FRAME] = dp.cons[C_POSITION]
    stats[S_PERIOD] = nframes
    stats[S_JACK_FRAME] = call_u_p(fn[_F_LAST_FRAME_TIME], as_ptr(a[_A_CLIENT]))
    run_cycle(dp, nframes, left, right)
    call_i_ip(fn[_F_CLOCK_GETTIME], _CLOCK_MONOTONIC, as_ptr(a[_A_CLOCK]))
    took = clock[0] * 1_000_000_000 + clock[1] - t0
    n = stats[S_CYCLES]
    stats[S_TIMES + n % TIMES] = took
    stats[S_CYCLES] = n + 1
    if took > stats[S_MAX_NS]:
        stats[S_MAX_NS] = took
    if took * a[_A_RATE] > nframes * 1_000_000_000:
        stats[S_OVERRUNS] += 1
    if a[_A_WAKE_FD] >= 0 and (a[_A_WAKE_EVERY] <= 1 or n % a[_A_WAKE_EVERY] == 0):  # never a division by 0
        call_l_ipl(fn[_F_WRITE], a[_A_WAKE_FD], as_ptr(a[_A_WAKE_BYTE]), 1)
    return 0


class JackPin:
    """Plays a :class:`DataPlane` on a JACK server; its MIDI inputs are heard one period after they arrive."""

    def __init__(
        self,
        plane: DataPlane,
        *,
        client_name: str = "mxfd-out",
        servername: Optional[str] = None,
        wake_fd: int = -1,
        on_shutdown: Optional[Callable[[str], None]] = None,
    ) -> None:
        self.plane = plane
        #: ``on_shutdown(reason)`` when the server goes away (on a JACK thread: set a flag, no more).
        self.on_shutdown = on_shutdown
        self.client_name = client_name
        self.servername = servername
        self.client: Any = None
        #: The server shut down under the open client (set on a JACK thread).
        self.server_gone = False
        self.xruns = 0
        if numba.typeof(plane) != PLANE_TYPE:  # type: ignore[no-untyped-call]
            raise TypeError("the plane's arrays are not of the types new_dataplane makes")
        self._functions = np.array([ADDRESSES[name] for name in _FUNCTIONS], np.int64)
        self._inputs = np.zeros((MAX_INPUTS, 2), np.int64)
        self._event = np.zeros(MIDI_EVENT_WORDS, np.uint64)
        self._clock = np.zeros(2, np.int64)
        self._stats = np.zeros(S_TIMES + TIMES, np.int64)
        #: The input port a JACK reader feeds to run before the pin (its full name), once open.
        self.sync_port: Optional[str] = None
        self._byte = np.ones(1, np.uint8)
        self._arg = np.zeros(_A_N, np.int64)
        self._arg[_A_PLANE] = address(plane)
        self._arg[_A_INPUTS] = self._inputs.ctypes.data
        self._arg[_A_EVENT] = self._event.ctypes.data
        self._arg[_A_CLOCK] = self._clock.ctypes.data
        self._arg[_A_STATS] = self._stats.ctypes.data
        self._arg[_A_WAKE_FD] = wake_fd
        self._arg[_A_WAKE_EVERY] = 1
        self._arg[_A_WAKE_BYTE] = self._byte.ctypes.data
        self._arg[_A_FUNCTIONS] = self._functions.ctypes.data
        self._ports: dict[str, tuple[int, Any]] = {}

    # -- lifetime ---------------------------------------------------------------------------

    def open(self) -> None:
        """Connect to the JACK server and start playing (raises ``jack.JackError`` when there is none)."""
        import jack

        route_jack_messages()
        with connecting():
            client = jack.Client(self.client_name, no_start_server=True, servername=self.servername)
        self.server_gone = False
        try:
            outs = [client.outports.register(f"out_{i}") for i in range(2)]
            # Nothing is read from it: a JACK MIDI reader that feeds it runs before the pin in every cycle.
            self.sync_port = client.inports.register("sync").name
            self._arg[_A_LEFT] = port_address(outs[0])
            self._arg[_A_RIGHT] = port_address(outs[1])
            self._arg[_A_RATE] = client.samplerate
            self._arg[_A_CLIENT] = client_address(client)
            set_process_callback(client, _process, self._arg.ctypes.data)
            client.set_xrun_callback(self._on_xrun)
            client.set_shutdown_callback(self._on_shutdown)
            client.activate()
        except Exception:
            client.close()
            raise
        self.client = client
        log.info("JACK pin: %s playing (%d Hz, period %d)", client.name, client.samplerate, client.blocksize)
        self._connect_speakers(client, outs)

    @staticmethod
    def _connect_speakers(client: Any, outs: list[Any]) -> None:
        """Connect the outputs to the server's first two playback ports, as PortAudio's JACK host API does.

        Without it nothing is heard until someone wires the ports by hand.  The physical playback
        ports are the sound card's (under PipeWire: the sinks', the default first); one port
        takes both channels.
        """
        import jack

        try:
            speakers = client.get_ports(is_audio=True, is_input=True, is_physical=True)
        except jack.JackError as exc:
            log.warning("JACK pin: cannot list the playback ports (%s): connect %s yourself", exc, client.name)
            return
        if not speakers:
            log.warning("JACK pin: the server has no playback port: connect %s:out_0/out_1 yourself", client.name)
            return
        for out, speaker in zip(outs, [speakers[0], speakers[min(1, len(speakers) - 1)]], strict=True):
            try:
                client.connect(out, speaker)
            except jack.JackError as exc:
                log.warning("JACK pin: cannot connect %s to %s: %s", out.name, speaker.name, exc)
                continue
            log.info("JACK pin: %s -> %s", out.name, speaker.name)

    def close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        self._inputs.fill(0)
        if self.server_gone:
            # libjack crashes in deactivate, and in close, on a client whose server shut down
            # under it (its own clean-up thread still runs): the dead client is kept, never closed.
            _dead_clients.append(client)
            self._ports.clear()
            return
        close_client(client, deactivate=True, what="JACK pin")
        self._inputs.fill(0)
        self._ports.clear()

    def _on_shutdown(self, status: Any, reason: str) -> None:
        self.server_gone = True
        if self.on_shutdown is not None:
            self.on_shutdown(str(reason))

    def set_wake_every(self, cycles: int) -> None:
        """Write the wake-up byte every ``cycles`` cycles from now on (a feeder with nothing to feed sleeps longer)."""
        self._arg[_A_WAKE_EVERY] = max(1, cycles)

    def _on_xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    # -- MIDI inputs --------------------------------------------------------------------------

    def add_input(self, name: str, base: int = 0) -> str:
        """Register the MIDI input ``name``, played on the channel group starting at ``base``; its full name."""
        free = np.flatnonzero(self._inputs[:, 0] == 0)
        if self.client is None or len(free) == 0:
            raise RuntimeError("JACK pin: not open, or no free MIDI input slot")
        port = self.client.midi_inports.register(name)
        slot = int(free[0])
        self._inputs[slot, 1] = base
        self._inputs[slot, 0] = port_address(port)  # published last: the callback reads the slot from now on
        self._ports[port.name] = (slot, port)
        return str(port.name)

    # -- status -------------------------------------------------------------------------------

    @property
    def output_ports(self) -> list[str]:
        return [p.name for p in self.client.outports] if self.client is not None else []

    def cycle_start(self) -> tuple[int, int, int, int]:
        """(CLOCK_MONOTONIC ns, first frame, length, JACK frame time) of the latest cycle.

        The fields are written one by one: read twice and compare where a torn read matters.
        """
        s = self._stats
        return int(s[S_START_NS]), int(s[S_START_FRAME]), int(s[S_PERIOD]), int(s[S_JACK_FRAME])

    def status(self) -> dict[str, Any]:
        """``overruns``, ``xruns`` and ``callback_us`` (p50, p99, max) as ``mxfd status`` reports them."""
        s = self._stats
        n = int(s[S_CYCLES])
        times: npt.NDArray[np.int64] = s[S_TIMES : S_TIMES + min(n, TIMES)]
        if len(times):
            p50, p99 = (float(v) / 1000.0 for v in np.percentile(times, [50, 99]))
        else:
            p50 = p99 = 0.0
        return {
            "cycles": n,
            "overruns": int(s[S_OVERRUNS]),
            "xruns": self.xruns,
            "callback_us": {"p50": round(p50, 1), "p99": round(p99, 1), "max": round(int(s[S_MAX_NS]) / 1000.0, 1)},
        }

