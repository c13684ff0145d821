"""MIDI input adapters: JACK MIDI (frame-accurate) and python-rtmidi (ALSA sequencer, JACK).

Theory of operation
-------------------
Every adapter stamps what arrives with the master clock and hands it, as
complete messages (``EVENT_COMPLETE``: both JACK MIDI and rtmidi deliver whole
messages, SysEx included), to the source's capture target; after each batch
it calls ``flush`` so the packer completes its buffer at once.  Nothing is
filtered here: rtmidi drops SysEx, clock and active sensing unless told not
to (``ignore_types(False, False, False)``), and the recorders want them.

Two readers for JACK, chosen by ``[midi] jack_reader``:

* :class:`JackMidiBackend` (default) is one JACK client, ``mxfd``, with the
  virtual port ``in`` and one input port per connected source.  Its process
  callback reads every port once per cycle and stamps each event at its own
  frame: the cycle's start time plus the event's frame offset.  The cycle's
  time comes from the audio output's clock when an :class:`OutputClock` is
  given: the client's ``sync`` port follows the output's port, so JACK runs
  this client after the output in every cycle and the sample position the
  output plays in this very cycle is known; the stamp is that position's
  master time on the synth's own sample mapping.  Thru is then exact to the
  sample however JACK's clock drifts or steps (xruns) against the master
  clock.  Without an output playing, JACK's delay-locked loop
  (``jack_get_cycle_times``) gives the time, moved to the master clock by an
  offset measured in pairs of reads.  Port registration notifications wake
  the hot-plug watcher, and a server shutdown marks the backend dead so the
  watcher reopens it.  (A client of a dead server is closed before anything
  in the process talks to a new one: libjack crashes otherwise.)  Input is
  lost when JACK runs cycles without this client (the daemon stopped or
  starved): the MIDI of those cycles is never in a buffer it reads, and a
  lost note-off leaves its note hanging.  The callback sees it as JACK's
  frame time jumping by more than the previous cycle's length; it counts
  the cycles (``input_lost()``, in ``mxfd status``) and the watcher's
  periodic pass logs them (``report_losses``), so ``mxfd panic`` has a reason.
* :class:`RtMidiBackend` on JACK stamps each event when rtmidi's process
  callback delivers it: period-accurate only (each ``MidiIn`` is its own JACK
  client, and it does not follow a JACK server restart).  On ALSA it is the only reader; there rtmidi's delta times come
  from the sequencer queue's own time stamps, and :class:`ArrivalStamper`
  turns them back into master times without the delivery delay.

The process callback runs in JACK's real-time thread, so it is compiled
and never takes the GIL (:mod:`mxfd.io.jack_reader`): it copies each event,
with its frame and the cycle's output position, into a ring, and the
reader's drain thread stamps and passes them on.  Nothing the rest of the
process does can make JACK's cycle late through this client.  A failure in
the drain is counted and logged, and the drain goes on.
"""

from __future__ import annotations

import logging
import os
import re
import select
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from mxfd.core.clock import UNITS_PER_US, Clock, master_time
from mxfd.core.event import EVENT_COMPLETE
from mxfd.io.base import BackendUnavailable, CaptureTarget, OutputClock, Wake, is_mxfd_port
from mxfd.io.jack_records import R_CYCLE, R_GEN, R_NEXT_USECS, R_NFRAMES, R_OFFSET, R_PLAYED, R_SLOT, R_USECS
from mxfd.io.jacklog import close_client, connecting, route_jack_messages
from mxfd.io.sched import make_realtime

if TYPE_CHECKING:
    from mxfd.io.jack_reader import CompiledReader

log = logging.getLogger(__name__)

#: A JACK server that ran none of the client's cycles for this long is gone (seconds; see JackMidiBackend.alive).
SILENT_SERVER_S = 1.0
#: Lost input is logged at most this often (seconds); what is lost in between is summed.
LOSS_LOG_INTERVAL_S = 5.0
#: How far the arrival stamper lets its anchor creep later per second, to
#: follow a sequencer clock slower than the master clock (200 ppm).
_CREEP_PER_SECOND = 2_000


class ArrivalStamper:
    """Master-clock stamps from a source's own relative time stamps.

    ``stamp(delta_s)`` takes the seconds since the source's previous message
    (rtmidi's delta, from the ALSA queue's time stamps) and returns the
    message's master time.  The source clock gives exact intervals; the
    master clock gives arrival times that include a delivery delay.  The
    anchor is the smallest ``arrival - elapsed`` seen so far (the delivery
    with the least delay), so stamps keep the source's intervals and lose the
    delivery jitter.  A stamp is never later than the arrival itself, and the
    anchor creeps forward slowly so a drifting source clock is followed.
    """

    __slots__ = ("clock", "_elapsed", "_anchor", "_last_arrival")

    def __init__(self, clock: Clock = master_time) -> None:
        self.clock = clock
        self._elapsed = 0
        self._anchor: Optional[int] = None
        self._last_arrival = 0

    def stamp(self, delta_s: float) -> int:
        now = self.clock()
        anchor = self._anchor
        if anchor is None:
            self._anchor = now
            self._elapsed = 0
            self._last_arrival = now
            return now
        self._elapsed += round(delta_s * 10_000_000)
        creep = (now - self._last_arrival) * _CREEP_PER_SECOND // 10_000_000
        self._last_arrival = now
        candidate = now - self._elapsed
        anchor = min(anchor + creep, candidate)
        self._anchor = anchor
        return anchor + self._elapsed


# -- JACK, through JACK-Client ---------------------------------------------------


class _CycleTimes:
    """``jack_get_cycle_times`` and ``jack_get_time``, which JACK-Client does not wrap."""

    def __init__(self, client: Any) -> None:
        import cffi  # type: ignore[import-untyped]
        import jack

        ffi = cffi.FFI()
        ffi.cdef(
            "int jack_get_cycle_times(void *client, uint32_t *current_frames, uint64_t *current_usecs,"
            " uint64_t *next_usecs, float *period_usecs);"
            "uint64_t jack_get_time(void);"
        )
        self._ffi = ffi
        self._lib = ffi.dlopen("libjack.so.0")
        # JACK-Client keeps the client handle private; the address is all we need.
        self._client = ffi.cast("void *", int(jack._ffi.cast("uintptr_t", client._ptr)))
        self._frames = ffi.new("uint32_t *")
        self._current = ffi.new("uint64_t *")
        self._next = ffi.new("uint64_t *")
        self._period = ffi.new("float *")
        #: master time (µs) minus JACK time (µs)
        self.offset_us = 0
        self.sync()

    def sync(self) -> None:
        """Measure the offset between JACK's clock and the master clock (best of 5 bracketed reads)."""
        best: Optional[tuple[int, int]] = None
        get_time = self._lib.jack_get_time
        for _ in range(5):
            a = time.monotonic_ns()
            j = get_time()
            b = time.monotonic_ns()
            if best is None or b - a < best[0]:
                best = (b - a, (a + b) // 2000 - j)
        assert best is not None
        self.offset_us = best[1]

    def master_time(self, usecs: int) -> int:
        """A JACK time (µs) on the master clock, in 100 ns."""
        return (usecs + self.offset_us) * UNITS_PER_US

    def cycle(self) -> tuple[int, int]:
        """(master time of this cycle's first frame, length of the cycle), both in 100 ns."""
        if self._lib.jack_get_cycle_times(self._client, self._frames, self._current, self._next, self._period):
            now = time.monotonic_ns() // 100
            return now, 0
        cur = self._current[0]
        return (cur + self.offset_us) * UNITS_PER_US, (self._next[0] - cur) * UNITS_PER_US


class JackPort:
    """A source connected to one of the daemon's JACK MIDI input ports."""

    def __init__(self, name: str, port: Any, target: CaptureTarget, slot: int, generation: int) -> None:
        self.name = name
        self.port = port
        self.target = target
        #: the connection from the source has been seen made (see JackMidiBackend.reconnect_dropped)
        self.linked = False
        #: its slot in the compiled reader's port table, and the slot's generation then
        self.slot = slot
        self.generation = generation
        #: events read from this port
        self.events = 0


class JackMidiBackend:
    """One JACK client reading every MIDI source at its exact frame."""

    kind = "jack"
    #: What hot-plug calls gone or back.
    system = "JACK server"
    notifies = True
    #: How often the watcher asks :attr:`alive` at least (seconds): a server may die without a word.
    liveness_interval = 0.5

    def __init__(
        self,
        wake: Wake,
        *,
        client_name: str = "mxfd",
        servername: Optional[str] = None,
        output_clock: Optional[OutputClock] = None,
        output_port: Optional[Callable[[], Optional[str]]] = None,
        on_period: Optional[Callable[[int], None]] = None,
        fallback: bool = False,
    ) -> None:
        self.wake = wake
        #: Chosen by ``api = "auto"`` for want of an ALSA sequencer: no server means no MIDI system at all.
        self.fallback = fallback
        #: Called (from JACK's notification thread) when the server's period changes while it runs.
        self.on_period = on_period
        #: The server's period (buffer size, PipeWire's quantum) in frames; 0 while not connected.
        self.server_period = 0
        self.frame_accurate = output_clock is not None
        self.client_name = client_name
        self.servername = servername
        self.output_clock = output_clock
        self.output_port = output_port
        self.client: Any = None
        self._times: Optional[_CycleTimes] = None
        self._sync_port: Any = None
        self._sync_out: Any = None
        self._rate = 48000
        #: Cycles stamped from the output's clock, and from JACK's (no output playing).
        self.cycles_output_clock = 0
        self.cycles_jack_clock = 0
        self._alive = False
        self._entries: tuple[JackPort, ...] = ()
        # By slot of the reader's port table, for the drain thread (replaced whole, never changed in place).
        self._slots: tuple[Optional[JackPort], ...] = ()
        self._virtual: Optional[JackPort] = None
        self._reader: Optional[CompiledReader] = None
        self._drain_thread: Optional[threading.Thread] = None
        self._draining = threading.Event()
        #: Events of a port already closed when the drain came to them (not passed on).
        self.orphaned = 0
        # The cycle count the watcher saw last, and when it last saw it move (see alive).
        self._seen_cycles = 0
        self._seen_at = 0.0
        #: Exceptions caught while passing input on.
        self.errors = 0
        self._last_error_log = 0.0
        # Lost input is summed over every client this backend opened (the compiled reader counts per client).
        self._lost_before = (0, 0, 0, 0)
        #: xruns JACK reported.
        self.xruns = 0
        self.last_loss_at: Optional[float] = None
        self._stalls_seen = 0
        self._loss_logged_at = -LOSS_LOG_INTERVAL_S
        self._loss_logged_frames = 0
        self._loss_logged_stalls = 0

    @property
    def _cycles(self) -> int:
        reader = self._reader
        return reader.cycles() if reader is not None else 0

    def _lost(self) -> tuple[int, int, int, int]:
        """(cycles, stalls, frames, dropped) of input lost, over every client opened."""
        before = self._lost_before
        reader = self._reader
        if reader is None:
            return before
        now = reader.lost()
        return (before[0] + now[0], before[1] + now[1], before[2] + now[2], before[3] + now[3])

    @property
    def lost_cycles(self) -> int:
        """Cycles JACK ran without this client's callback: their MIDI input is gone."""
        return self._lost()[0]

    @property
    def stalls(self) -> int:
        """How often cycles were lost."""
        return self._lost()[1]

    @property
    def lost_frames(self) -> int:
        """The frames the lost cycles held."""
        return self._lost()[2]

    @property
    def alive(self) -> bool:
        """False once the server shut down, or ran none of this client's cycles for :data:`SILENT_SERVER_S`.

        jackd tells its clients when it goes (the shutdown callback); PipeWire's
        libjack does not: its clients of a dead PipeWire stay "open", list the
        old ports and run no more cycles.  So a running client that stopped
        cycling counts as gone too (jackd itself throws a client out that long
        without a cycle), and the watcher reopens it.
        """
        if self._alive and self.client is not None:
            now = time.monotonic()
            if self._cycles != self._seen_cycles:
                self._seen_cycles, self._seen_at = self._cycles, now
            elif now - self._seen_at > SILENT_SERVER_S:
                log.warning("JACK: the server ran no cycle for %.1f s; taking it as gone", now - self._seen_at)
                self._alive = False
        return self._alive

    def server_label(self) -> str:
        """The name of the JACK server this backend connects to."""
        return self.servername or os.environ.get("JACK_DEFAULT_SERVER") or "default"

    @property
    def samplerate(self) -> int:
        return int(self.client.samplerate) if self.client is not None else 0

    def open(self) -> None:
        import jack

        route_jack_messages()
        try:
            with connecting():
                client = jack.Client(self.client_name, no_start_server=True, servername=self.servername)
        except jack.JackError as exc:
            log.debug("JACK: %s", exc)
            missing = f"no JACK server {self.server_label()!r}"
            if self.fallback:
                missing = f"no MIDI system: no ALSA sequencer ({ALSA_SEQUENCER}) and {missing}"
            raise BackendUnavailable(missing) from None
        # Imported here: the compiled reader brings numba, which `mxfd ports` has no use for.
        from mxfd.io.jack_reader import MAX_PORTS, CompiledReader
        from mxfd.io.libjack import client_address

        reader = CompiledReader()
        try:
            reader.install(client, client_address(client))
            client.set_port_registration_callback(self._on_registration, only_available=False)
            client.set_port_connect_callback(self._on_connect, only_available=False)
            client.set_shutdown_callback(self._on_shutdown)
            client.set_xrun_callback(self._on_xrun)
            client.set_blocksize_callback(self._on_blocksize)
            self._times = _CycleTimes(client)
            if self.output_port is not None:
                self._sync_port = client.inports.register("sync")
            self._rate = int(client.samplerate)
            client.activate()
        except Exception:
            client.close()
            reader.close()
            raise
        self._reader = reader
        self._slots = (None,) * MAX_PORTS
        self._draining.set()
        self._drain_thread = threading.Thread(target=self._drain_main, args=(reader,), name="mxfd-jack-midi",
                                              daemon=True)  # fmt: skip
        self._drain_thread.start()
        if self.output_clock is not None:
            self.output_clock.follow_reader(reader)
        self.client = client
        self.server_period = int(client.blocksize)
        self._seen_cycles, self._seen_at = self._cycles, time.monotonic()
        self._alive = True
        log.info("JACK: connected as %s (%d Hz, period %d)", client.name, client.samplerate, client.blocksize)

    def close(self) -> None:
        client = self.client
        alive = self._alive
        self._entries = ()
        self._virtual = None
        self._sync_port = None
        self._sync_out = None
        self._alive = False
        self.client = None
        if client is None:
            return
        # After a server shutdown libjack crashes in deactivate; close alone is safe then.
        close_client(client, deactivate=alive, what="JACK")
        # Nothing calls the reader back now: drain what it left, then let it go.
        self._draining.clear()
        if self._drain_thread is not None:
            self._drain_thread.join(2.0)
            self._drain_thread = None
        reader = self._reader
        if reader is not None:
            if self.output_clock is not None:
                self.output_clock.follow_reader(None)
            self._lost_before = self._lost()
            self._reader = None
            reader.close()
        self._slots = ()

    def sync_clock(self) -> None:
        """Re-measure JACK's clock against the master clock (they drift apart by ppm)."""
        times = self._times
        if times is not None:
            times.sync()

    # -- ports ------------------------------------------------------------------

    def list_sources(self) -> list[str]:
        client = self.client
        if client is None or not self._alive:
            return []
        import jack

        self._follow_output()
        try:
            ports = client.get_ports(is_midi=True, is_output=True)
            by_hand: set[str] = set()
            if self._virtual is not None:
                # A port someone connected to mxfd:in themselves is theirs: no second path.
                by_hand = {p.name for p in client.get_all_connections(self._virtual.port)}
        except jack.JackError as exc:
            log.warning("JACK: cannot list ports: %s", exc)
            return []
        if self._reader is not None:
            self._reader.set_has_input(self._has_input())
        return [p.name for p in ports if not is_mxfd_port(p.name) and p.name not in by_hand]

    def reconnect_dropped(self, handle: object) -> bool:
        """If JACK dropped ``handle``'s connection since it was seen made, make it again; True if that worked.

        JACK drops it when the source's port is unregistered: a keyboard unplugged and plugged in
        again between two passes keeps its name, but its new port is not connected (and jackd2
        may give it the old port's id, so the id tells nothing).  A port whose client went
        inactive (netJACK's when its master stops) refuses the connection: it is left for its
        port to vanish.  PipeWire drops a port's links just before it removes the port and may
        take the connection then: the watcher's next pass tells the two apart.  Only a
        connection seen once counts: PipeWire shows a new link a little after ``jack_connect``.
        """
        assert isinstance(handle, JackPort)
        client = self.client
        if client is None or not self._alive:
            return False
        import jack

        try:
            if any(p.name == handle.name for p in client.get_all_connections(handle.port)):
                handle.linked = True
                return False
            if not handle.linked:
                return False
            client.connect(handle.name, handle.port)
        except jack.JackError as exc:
            log.debug("JACK: %s is not connected and cannot be again: %s", handle.name, exc)
            return False
        return True

    def _follow_output(self) -> None:
        """Order this client against the audio output, and have the reader read the output's position.

        Behind a PortAudio output, the output's port feeds ``sync``: JACK runs this client after
        the output, whose position in the cycle is then known.  Before the JACK-native pin,
        ``sync_out`` feeds the pin's ``sync``: JACK runs this client first, and what it reads
        plays straight through the pin's thru queue in the same cycle, one period from key to
        sound (the pin's position then is the first frame it is about to render).
        """
        reader, clock = self._reader, self.output_clock
        if reader is None or clock is None or self.client is None:
            return
        queue = clock.thru_queue()
        pin_sync = clock.pin_sync_port() if queue is not None else None
        reader.follow(clock.played_ring())
        if pin_sync is not None:
            self._feed_pin(pin_sync)
        reader.set_thru_queue(queue if pin_sync is not None else None)
        if pin_sync is not None or self._sync_port is None or self.output_port is None:
            return
        name = self.output_port()
        if not name:
            return
        try:
            if name not in {p.name for p in self.client.get_all_connections(self._sync_port)}:
                self.client.connect(name, self._sync_port)
                log.debug("JACK: %s -> %s (input stamped on the output's clock)", name, self._sync_port.name)
        except Exception as exc:
            log.debug("JACK: cannot follow %s: %s", name, exc)

    def _feed_pin(self, pin_sync: str) -> None:
        """``sync_out`` connected to the pin's ``pin_sync`` (and ``sync`` to nothing: no cycle in the graph)."""
        client = self.client
        try:
            if self._sync_port is not None:
                for p in client.get_all_connections(self._sync_port):
                    client.disconnect(p, self._sync_port)
            if self._sync_out is None:
                self._sync_out = client.outports.register("sync_out")
            if pin_sync not in {p.name for p in client.get_all_connections(self._sync_out)}:
                client.connect(self._sync_out, pin_sync)
                log.debug("JACK: %s -> %s (input played through the pin in its cycle)", self._sync_out.name, pin_sync)
        except Exception as exc:
            log.debug("JACK: cannot feed %s: %s", pin_sync, exc)

    def _port_name(self, source: str) -> str:
        short = re.sub(r"[:]+", "/", source)[:200] or "source"
        taken = {p.shortname for p in self.client.midi_inports}
        name, i = short, 2
        while name in taken:
            name = f"{short}#{i}"
            i += 1
        return name

    def open_source(self, name: str, target: CaptureTarget) -> JackPort:
        if self.client is None:
            raise BackendUnavailable("JACK is not connected")
        port = self.client.midi_inports.register(self._port_name(name))
        try:
            self.client.connect(name, port)
        except Exception:
            port.unregister()
            raise
        return self._publish(name, port, target)

    def open_virtual(self, port: str, target: CaptureTarget) -> JackPort:
        if self.client is None:
            raise BackendUnavailable("JACK is not connected")
        entry = self._publish(f"{self.client.name}:{port}", self.client.midi_inports.register(port), target)
        self._virtual = entry
        return entry

    def _publish(self, name: str, port: Any, target: CaptureTarget) -> JackPort:
        """Hand ``port`` to the reader: its events are captured from the next cycle on."""
        from mxfd.io.libjack import port_address

        reader = self._reader
        assert reader is not None
        thru = getattr(target, "direct_thru_base", None)
        try:
            slot, generation = reader.add_port(port_address(port), -1 if thru is None else int(thru))
        except RuntimeError:
            port.unregister()
            raise
        entry = JackPort(name, port, target, slot, generation)
        slots = list(self._slots)
        slots[slot] = entry
        self._slots = tuple(slots)  # before the callback can read the port: the drain knows it first
        self._entries = (*self._entries, entry)
        reader.set_has_input(self._has_input())
        return entry

    def close_source(self, handle: object) -> None:
        assert isinstance(handle, JackPort)
        self._entries = tuple(e for e in self._entries if e is not handle)
        if handle is self._virtual:
            self._virtual = None
        reader = self._reader
        if reader is not None and handle.slot < len(self._slots) and self._slots[handle.slot] is handle:
            reader.remove_port(handle.slot)
            reader.set_has_input(self._has_input())
        if self.client is None or not self._alive:
            return
        self._wait_cycle()
        try:
            handle.port.unregister()
        except Exception as exc:
            log.debug("JACK: unregister %s: %s", handle.name, exc)

    def _wait_cycle(self, timeout: float = 0.2) -> None:
        """Let the process callback finish a cycle, so it no longer reads a removed port."""
        if self._reader is not None:
            self._reader.wait_cycles(2, timeout)

    # -- the drain thread ------------------------------------------------------------

    def _drain_main(self, reader: CompiledReader) -> None:
        """Pass on what the compiled callback read, as soon as it says there is something.

        Real-time, as the render thread is: the render of the cycle waits for it.
        """
        make_realtime("JACK MIDI drain thread")
        fd = reader.wake_fd
        while self._draining.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.25)
                if ready:
                    reader.clear_wake()
                self._drain(reader)
            except Exception:
                self._drain_failed()
        try:
            self._drain(reader)  # what the last cycles left
        except Exception:
            self._drain_failed()

    def _drain_failed(self) -> None:
        self.errors += 1
        now = time.monotonic()
        if now - self._last_error_log > 5.0:
            self._last_error_log = now
            log.exception("JACK: MIDI input failed (%d times so far)", self.errors)

    def _drain(self, reader: CompiledReader) -> None:
        """Stamp and capture every record published, flushing each target at the end of its cycle.

        A record is stamped at its own frame: the cycle's start on the output's
        clock (its played position, mapped as the synth renders it), or on
        JACK's clock when no output plays, plus the frame offset.
        """
        first, end = reader.pending()
        if first == end:
            return
        slots = self._slots
        clock = self.output_clock
        ring = reader.followed
        times = self._times
        rate = self._rate or 48000
        touched: list[CaptureTarget] = []
        cycle = -1
        played = -1
        t0 = span = 0
        try:
            for r in reader.records(first, end):
                if r[R_CYCLE] != cycle:
                    for target in touched:
                        target.flush()
                    touched.clear()
                    cycle, played = r[R_CYCLE], r[R_PLAYED]
                    stamp = clock.stamp_played(played, ring) if clock is not None and played >= 0 else None
                    if stamp is not None:
                        t0, span = stamp, r[R_NFRAMES] * 10_000_000 // rate
                        self.cycles_output_clock += 1
                    elif times is not None and r[R_USECS]:
                        t0, span = times.master_time(r[R_USECS]), (r[R_NEXT_USECS] - r[R_USECS]) * UNITS_PER_US
                        self.cycles_jack_clock += 1
                    else:
                        t0, span = time.monotonic_ns() // 100, 0
                        self.cycles_jack_clock += 1
                entry = slots[r[R_SLOT]]
                if entry is None or entry.generation != r[R_GEN]:
                    self.orphaned += 1
                    continue
                data, start, stop = reader.data_of(r)
                at = t0 + r[R_OFFSET] * span // r[R_NFRAMES]
                entry.target.capture(data, start, stop, at, EVENT_COMPLETE)
                entry.events += 1
                if entry.target not in touched:
                    touched.append(entry.target)
            for target in touched:
                target.flush()
        finally:
            reader.consumed(end, played)
            if clock is not None:
                clock.cycle_end()

    def _has_input(self) -> bool:
        """True when something could have played into the missed cycles: a source, or a peer on ``in``.

        (A start-up stall before anything is connected loses nothing.)
        """
        for entry in self._entries:
            if entry is not self._virtual or entry.port.number_of_connections > 0:
                return True
        return False

    def report_losses(self) -> None:
        """Log the input lost since the last report, at most every :data:`LOSS_LOG_INTERVAL_S`.

        Called by the hot-plug watcher's periodic pass, so the process callback
        never writes a log line; nothing lost goes unreported, it is only summed.
        """
        self._note_losses()
        unlogged = self.lost_frames - self._loss_logged_frames
        t = time.monotonic()
        if unlogged <= 0 or t - self._loss_logged_at < LOSS_LOG_INTERVAL_S:
            return
        stalls = self.stalls - self._loss_logged_stalls
        self._loss_logged_at = t
        self._loss_logged_frames = self.lost_frames
        self._loss_logged_stalls = self.stalls
        log.warning(
            "JACK: MIDI input lost: %.0f ms of cycles in %d stall(s) ran without mxfd (%d cycles lost so far); "
            "a note whose note-off was in them hangs until `mxfd panic`",
            unlogged * 1000 / self._rate,
            stalls,
            self.lost_cycles,
        )

    def input_lost(self) -> dict[str, Any]:
        """What ``mxfd status`` shows of lost input."""
        self._note_losses()
        rate = self._rate or 1
        ago = None if self.last_loss_at is None else round(time.monotonic() - self.last_loss_at, 1)
        return {
            "stalls": self.stalls,
            "cycles": self.lost_cycles,
            "ms": round(self.lost_frames * 1000 / rate, 1),
            "xruns": self.xruns,
            "dropped": self._lost()[3],
            "orphaned": self.orphaned,
            "played_through_pin": self._reader.thru_events() if self._reader is not None else 0,
            "last_s_ago": ago,
        }

    def _note_losses(self) -> None:
        """Date the latest stall: the callback only counts them, so it is dated when first seen here."""
        stalls = self.stalls
        if stalls != self._stalls_seen:
            self._stalls_seen = stalls
            self.last_loss_at = time.monotonic()

    def _on_xrun(self, delayed_usecs: float) -> None:
        self.xruns += 1

    def _on_registration(self, port: Any, register: bool) -> None:
        self.wake.set()

    def _on_connect(self, a: Any, b: Any, connect: bool) -> None:
        self.wake.set()

    def _on_blocksize(self, blocksize: int) -> None:
        # JACK calls it at activation too: only a change while connected is news.
        old, self.server_period = self.server_period, int(blocksize)
        if self.client is None or old in (0, blocksize):
            return
        log.info("JACK: the server's period is now %d frames (%.2f ms), was %d", blocksize,
                 blocksize * 1000 / self._rate, old)
        if self.on_period is not None:
            try:
                self.on_period(int(blocksize))
            except Exception:
                log.exception("JACK: handling the new period failed")

    def _on_shutdown(self, status: Any, reason: str) -> None:
        log.warning("JACK: server shut down: %s", reason)
        self._alive = False
        self.wake.set()


# -- rtmidi (ALSA sequencer, or JACK period-accurate) ----------------------------------


class RtMidiPort:
    """One rtmidi ``MidiIn`` feeding a capture target."""

    def __init__(self, name: str, midi_in: Any, target: CaptureTarget, clock: Clock) -> None:
        self.name = name
        self.midi_in = midi_in
        self.target = target
        self.stamper = ArrivalStamper(clock)
        self.events = 0
        midi_in.ignore_types(sysex=False, timing=False, active_sense=False)
        midi_in.set_callback(self._on_message)

    def _on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        message, delta = event
        try:
            t = self.stamper.stamp(delta)
            self.target.capture(message, 0, len(message), t, EVENT_COMPLETE)
            self.target.flush()
            self.events += 1
        except Exception:
            log.exception("%s: capture failed", self.name)

    def close(self) -> None:
        self.midi_in.cancel_callback()
        self.midi_in.close_port()
        self.midi_in.delete()


class RtMidiBackend:
    """Inputs through python-rtmidi: ALSA sequencer ports, or JACK ports (period-accurate).

    rtmidi has no port notifications, so the watcher polls :meth:`list_sources`.
    """

    def __init__(self, api: str, wake: Wake, *, client_name: str = "mxfd", clock: Clock = master_time) -> None:
        if api not in ("alsa", "jack"):
            raise ValueError(f"rtmidi api must be 'alsa' or 'jack', not {api!r}")
        self.kind = api
        self.system = "JACK server" if api == "jack" else "ALSA sequencer"
        self.notifies = False
        self.frame_accurate = False
        self.wake = wake
        self.client_name = client_name
        self.clock = clock
        self._watch: Any = None
        self._ports: list[RtMidiPort] = []

    def _api(self) -> int:
        import rtmidi

        return int(rtmidi.API_LINUX_ALSA if self.kind == "alsa" else rtmidi.API_UNIX_JACK)

    def _midi_in(self, name: str) -> Any:
        import rtmidi

        if self.kind == "jack":
            route_jack_messages(rtmidi=True)
        try:
            with connecting():
                return rtmidi.MidiIn(self._api(), name=name)
        except rtmidi.SystemError as exc:
            raise BackendUnavailable(f"rtmidi {self.kind}: {exc}") from None

    @property
    def alive(self) -> bool:
        return self._watch is not None

    def open(self) -> None:
        watch = self._midi_in(f"{self.client_name}-watch")
        try:
            with connecting():  # rtmidi on JACK connects here, and on each listing
                watch.get_ports()
        except Exception as exc:
            watch.delete()
            raise BackendUnavailable(f"rtmidi {self.kind}: {exc}") from None
        self._watch = watch

    def close(self) -> None:
        for p in list(self._ports):
            self.close_source(p)
        if self._watch is not None:
            self._watch.delete()
            self._watch = None

    def list_sources(self) -> list[str]:
        if self._watch is None:
            return []
        with connecting():
            names = self._watch.get_ports()
        return [n for n in names if not is_mxfd_port(n)]

    def open_source(self, name: str, target: CaptureTarget) -> RtMidiPort:
        midi_in = self._midi_in(self.client_name)
        try:
            ports = midi_in.get_ports()
            if name not in ports:
                raise BackendUnavailable(f"port {name!r} is gone")
            midi_in.open_port(ports.index(name), name=re.sub(r"[:]+", "/", name)[:64])
        except Exception:
            midi_in.delete()
            raise
        port = RtMidiPort(name, midi_in, target, self.clock)
        self._ports.append(port)
        return port

    def open_virtual(self, port: str, target: CaptureTarget) -> RtMidiPort:
        midi_in = self._midi_in(self.client_name)
        midi_in.open_virtual_port(port)
        handle = RtMidiPort(f"{self.client_name}:{port}", midi_in, target, self.clock)
        self._ports.append(handle)
        return handle

    def close_source(self, handle: object) -> None:
        assert isinstance(handle, RtMidiPort)
        if handle in self._ports:
            self._ports.remove(handle)
        handle.close()


#: The ALSA sequencer's device: there on desktops, not in containers without /dev/snd.
ALSA_SEQUENCER = "/dev/snd/seq"


def alsa_sequencer_present() -> bool:
    """True when the ALSA sequencer exists (desktops; not in containers without /dev/snd)."""
    return os.path.exists(ALSA_SEQUENCER)


def make_backend(
    api: str,
    wake: Wake,
    *,
    jack_reader: str = "jack-client",
    client_name: str = "mxfd",
    output_clock: Optional[OutputClock] = None,
    output_port: Optional[Callable[[], Optional[str]]] = None,
    on_period: Optional[Callable[[int], None]] = None,
) -> "JackMidiBackend | RtMidiBackend":
    """The MIDI backend for ``api``.

    ``"auto"`` takes the ALSA sequencer where it exists (a desktop's USB
    keyboards are its ports; PipeWire bridges them to JACK too), else JACK
    through the system's libjack (jackd's, or PipeWire's under ``pw-jack``)
    with the default reader, never python-rtmidi's bundled copy, which cannot
    reach PipeWire.  With
    neither, the JACK backend says so once ("no MIDI system: ...") and waits
    for a server.
    """
    fallback = False
    if api == "auto":
        api = "alsa" if alsa_sequencer_present() else "jack"
        fallback = api == "jack"
    if api == "jack" and jack_reader == "jack-client":
        return JackMidiBackend(wake, client_name=client_name, output_clock=output_clock, output_port=output_port,
                               on_period=on_period, fallback=fallback)
    return RtMidiBackend(api, wake, client_name=client_name)


__all__ = [
    "ArrivalStamper",
    "JackMidiBackend",
    "JackPort",
    "RtMidiBackend",
    "RtMidiPort",
    "alsa_sequencer_present",
    "make_backend",
]

