"""``Engine``: the daemon's wiring of inputs, streams, the synth and the audio output.

Theory of operation
-------------------
::

    MIDI backends ─(hot-plug)─▶ CaptureStream per source ─▶ Router ──┬─▶ subscribers (recorders)
                                                                     ├─▶ history ring (5 min)
                                                                     └─▶ thru RenderStream ─┐
    clients ─▶ PlaybackStream per client ──────────────────────────────────────────────────┤
                                                                                           ▼
                           audio render thread: release due events of every stream ─▶ Synth ─▶ frame

*Thru at a fixed latency.*  A live event arrives stamped with its master
time ``t`` and is scheduled at ``t + latency``: the thru stream gets each
capture buffer with the latency added to its start time.  The synth places
every event at ``ref_to_sample(pres_time)`` inside its block, so key-to-sound
latency is this constant, not the period it happened to land in.  The
latency is the audio pipeline's depth: the ``periods`` frames queued ahead of
the device plus the device's own output latency, for input the JACK reader
stamps at its frame on the output's clock (:meth:`Engine.stamp_played`; the
render of each block waits for the reader to capture the cycle that asked
for it), and one period more for input stamped on arrival (rtmidi, raw
devices, clients: it may arrive just after its frame was rendered).  A fixed
value from the config overrides both.  The map between the two clocks and these
latencies are the :class:`~mxfd.daemon.timeline.Timeline`'s.

*The render callback* (the audio pin's render thread) waits (bounded) for
the JACK reader's cycle, applies control requests other threads queued
(release a source's channel group, all sound off, panic, fade out), then releases
from every render stream the events due by the block's start plus the
synth's schedule pre-fetch (one block), and renders the synth into the
frame.  Control of the synth happens on this thread; other threads only
``put_message`` (thread-safe).  When no device plays, the pin keeps this
thread running from a timer, so events are consumed and requests applied
all the same.

*Channel groups.*  Every capture source and every client stream gets a
channel group of its own.  When a source vanishes or a client leaves, its
stream is stopped (pending events returned) and its group released on the
render thread, so only the notes and pedals *it* left held stop; once more
after the thru latency, for events that were already inside the synth.
Groups are handed out round-robin, so a released group is not reused at once.

*Stopping* fades the output to silence over 30 ms after all sound off, so
neither a voice nor the reverb's tail is cut with a click.

*The bank* (:mod:`mxfd.daemon.bank`) is loaded and the synth built, and its
first block rendered (numba compiles the engine or loads its cache then), before
the engine starts, so the audio thread never waits for a compiler.  A reload
that asks for another bank loads it on the reloading thread; a font replacing
a font (the built-in bank is one too) goes to the running
:class:`~mxfd.synth.engine.SoundFontSynth`, which swaps it in between two
blocks and lets held notes sound on from the old font until they are
released.  A bank that cannot be loaded leaves the running one as it was.
Font states that stopped sounding are let go by :meth:`Engine.collect_retired`
on a control thread, never on the audio thread.

*The JACK-native pin* (with a font: ``[audio] pin = "jack"``, or the default
``"auto"`` where a JACK server answers at start; :func:`pin_choice`): the synth is a
:class:`~mxfd.synth.engine.plane_synth.PlaneSynth` and the output a
:class:`~mxfd.io.pin_output.JackPinOutput`, whose compiled callback renders
the data plane in JACK's cycle.  :meth:`Engine.feed` is then the render
callback minus the rendering, on the pin's feeder thread once a cycle: the
control requests, the streams' events due within two periods of the plane's
position, written into the plane's ring.  JACK input does not go that way:
the JACK reader runs before the pin in every cycle and puts each channel
message into the pin's thru queue for that very cycle (:meth:`thru_queue`),
so it is heard one period after its frame, every time; it is stamped on the
pin's own frames for the capture path.  Another font goes to the running
plane as it goes to the SoundFont synth (the callback swaps it in at a
record of the ring, held notes sounding on); the built-in bank, which is
not on the compiled engine, is refused there and the log says so.

*Threads.*  Capture runs on the adapters' threads and touches only its own
stream and, through the :class:`~mxfd.daemon.router.Router`, the
subscribers (which must be quick), the history ring (a lock) and its thru
stream (the sequencer's lock).  Stream sets are immutable
tuples swapped whole, so the render thread reads them without a lock.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from typing import Any, Callable, Optional

import numpy as np

from mxfd.core.clock import UNITS_PER_SECOND, ReferenceTime, master_time
from mxfd.daemon.bank import BankError, bank_key, bank_name, choose_bank, describe_bank, yielding_gil
from mxfd.daemon.config import Config
from mxfd.daemon.router import CaptureCallback, InputRecord, Router, Subscription
from mxfd.daemon.streams import CaptureStream, PlaybackStream, RenderStream
from mxfd.daemon.timeline import Timeline
from mxfd.io.base import CaptureTarget, MidiBackend, PlayedRing, ReaderProgress, ThruQueue, Wake
from mxfd.io.jacklog import server_answers
from mxfd.render import SynthChoice, make_synth

log = logging.getLogger(__name__)

#: Channel groups are a USHORT; 0 means "every group" to a synth, so sources start at 1.
MAX_CHANNEL_GROUP = 0xFFFF
#: Longest a render waits for the JACK reader to capture its cycle.
READER_WAIT_S = 0.0015
#: The reader counts as following the output while it reported within this many renders.
READER_IDLE_RENDERS = 8
#: How often a render waiting for the JACK reader looks at its progress (seconds).
READER_POLL_S = 0.0002
#: How long the output fades to silence when the daemon stops.
FADE_OUT_S = 0.03
#: Seconds between two panic log lines: a client asking again and again is counted, not logged each time.
PANIC_LOG_INTERVAL_S = 1.0


def pin_choice(config: Config, jack_answers: Callable[[], Optional[str]]) -> tuple[bool, str]:
    """Whether the synth plays on the JACK-native pin, and why (for the log).

    ``[audio] pin = "jack"``: yes; ``"portaudio"``: no.  ``"auto"``: yes with the device
    ``"default"`` and a JACK server answering (``jack_answers()`` is None, else why not).
    """
    pin = config.audio.pin
    if pin == "portaudio":
        return False, "[audio] pin = \"portaudio\""
    if pin == "jack":
        return True, "[audio] pin = \"jack\""
    if config.audio.device != "default":
        return False, f"[audio] device = {config.audio.device!r}"
    why = jack_answers()
    if why is not None:
        return False, f"no JACK server answers ({why})"
    return True, "a JACK server answers"


def _make_synth(config: Config, choice: SynthChoice, *, plane: bool = False) -> Any:
    """The synth playing ``choice`` for ``config``, its sample clock anchored to the master clock now.

    ``plane``: a :class:`~mxfd.synth.engine.plane_synth.PlaneSynth` (the JACK pin renders its data
    plane) instead of the SoundFont synth, with the same font, gain and effects.

    The compiled engine is built (or numba's cache loaded) here, by the
    synth's ``warm_up``, and not on the audio thread.  The audio pin re-anchors
    the clock on its first sync; until then events already map to sensible
    sample positions instead of to a clock that starts at 0.
    """
    a = config.audio
    if plane:
        from mxfd.synth.engine.plane_synth import PlaneSynth

        synth: Any = PlaneSynth(choice.font, a.rate, polyphony=config.synth.polyphony, block_frames=a.period,
                                gain_db=choice.gain_db, reverb=choice.reverb, chorus=choice.chorus)
    else:
        synth = make_synth(choice, a.rate, config.synth.polyphony, a.period)
    warm_up = getattr(synth, "warm_up", None)
    if warm_up is not None:
        warm_up()
    queue = a.periods * a.period * UNITS_PER_SECOND // a.rate
    synth.wave_sink.sync_to_master(master_time() + queue, synth.sample_position, start=True)
    # A device clock that steps by a period or more (an xrun: the server skipped
    # a cycle; an underrun: a period of silence went in) is re-anchored at once:
    # slewing 1/100 per sync would take seconds, and the notes played meanwhile
    # would drift.  Such a step is measured as one period give or take the
    # report's jitter (tens of µs), so half a period tells it from drift.
    synth.wave_sink.resync_threshold = a.period * UNITS_PER_SECOND // (2 * a.rate)
    return synth


def audio_device(text: str) -> Optional[int | str]:
    """The config's device as the audio pin takes it: None (default), an index or a name."""
    if text == "default":
        return None
    return int(text) if text.isdigit() else text


class Engine:
    """The daemon's transport graph around one synth and one audio output."""

    def __init__(
        self, config: Config, *, synth: Any = None, audio: Any = None, client_name: str = "mxfd"
    ) -> None:
        self.config = config
        self.client_name = client_name
        self.started_at = time.monotonic()
        self.rate = config.audio.rate
        self.period = config.audio.period
        #: The master clock to output frame map, and the thru latencies.
        self.timeline = Timeline(config)
        self._out_port: Optional[str] = None
        self._followed_ring: Optional[PlayedRing] = None
        # The JACK reader's progress on the output's clock (see _wait_for_reader).
        self._reader: Optional[ReaderProgress] = None
        self._reader_cycles = -1
        self._reader_seen = -(1 << 62)
        self._reader_event = threading.Event()
        self._queue_frames = config.audio.periods * config.audio.period
        #: Renders that went ahead after waiting READER_WAIT_S for the reader.
        self.reader_timeouts = 0
        self._bank_key = bank_key(config.synth)
        #: Which audio pin plays and why, for the log when the output starts.
        self._pin_reason = ""
        if synth is None:
            choice = self._choose_bank(config)  # BankError: no bank the config names loads
            synth = _make_synth(config, choice, plane=self._pin_for(config))
        else:
            font = getattr(synth, "font", None)
            choice = SynthChoice(getattr(font, "path", None), font=font)
        #: The bank playing (its font loaded, None for the built-in bank).
        self.bank = choice
        self.bank_reloads = 0
        #: Why the last reload kept the old bank (None: it did not).
        self.bank_error: Optional[str] = None
        self._bank_lock = threading.Lock()
        #: Set by the daemon: ``reloader(done)`` re-reads the config and calls ``done(report)``.
        self.reloader: Optional[Callable[[Callable[[dict[str, Any]], None]], None]] = None
        self.synth = synth
        self.audio = audio
        self._prefetch = int(synth.schedule_prefetch)
        self._lock = threading.RLock()
        self._render_streams: tuple[RenderStream, ...] = ()
        self._inputs: dict[str, InputRecord] = {}
        self._captures: dict[int, CaptureStream] = {}
        self._groups_used: set[int] = set()
        self._next_group = 1
        self._control: deque[tuple[str, int]] = deque()
        self._control_done = threading.Condition()
        self._control_serial = 0
        self._control_applied = 0
        #: Fade-out (stopping): frames into the ramp, -1 while not fading.
        self._fade_at = -1
        self._fade_frames = 0
        self._faded = threading.Event()
        #: (sample position, group): second releases of closed sources' groups.
        self._deferred: list[tuple[int, int]] = []
        self._status_parts: dict[str, Callable[[], dict[str, Any]]] = {}
        #: Where each captured buffer goes: the history ring, the subscribers, thru.
        self.router = Router(config.record.history_seconds, self._thru_latency)
        self.hotplug: Any = None
        self.backends: list[MidiBackend] = []
        self.wake = Wake()
        #: Drops by reason (the router's: thru pool full, subscriber errors, ...).
        self.dropped = self.router.dropped
        self.renders = 0
        #: Panics asked for, and how many voices the last one silenced (set on the render thread).
        self.panics = 0
        self._panic_voices = 0
        self._panic_logged_at = -PANIC_LOG_INTERVAL_S
        self._panics_logged = 0

    # -- the contract with the client side -------------------------------------------

    def clock(self) -> ReferenceTime:
        """Master time now (100 ns)."""
        return master_time()

    def open_playback_stream(self, name: str) -> PlaybackStream:
        """A render stream of the client's own, with its own channel group."""
        with self._lock:
            group = self._take_group()
            stream = PlaybackStream(
                name, group, self.synth, self._close_playback, schedule_prefetch=self._prefetch
            )
            stream.on_submit = self._kick
            self._render_streams = (*self._render_streams, stream)
        log.info("client stream %r opened (channel group %d)", name, group)
        return stream

    def subscribe_capture(self, callback: CaptureCallback, pattern: Optional[str] = None) -> Subscription:
        """Call ``callback(source, start_time, data)`` with every capture buffer of matching inputs."""
        return self.router.subscribe(callback, pattern)

    def history(self, seconds: float) -> list[tuple[str, int, bytes]]:
        """The last ``seconds`` (up to the ring's length) of captured input, in time order."""
        return self.router.ring.since(seconds, master_time())

    def request_reload(self, done: Callable[[dict[str, Any]], None]) -> None:
        """Have the daemon re-read its config as SIGHUP does; ``done(report)`` is called when it is over.

        The report holds ``ok``, ``bank``, ``bank_changed`` and ``error``.  An engine without a
        daemon around it (no :attr:`reloader`) answers at once that it cannot.
        """
        if self.reloader is None:
            done({"ok": False, "bank": self.bank_name, "error": "this engine has no config file to reload"})
        else:
            self.reloader(done)

    def register_status(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        """Add ``fn()``'s dict to :meth:`status` under ``name``."""
        self._status_parts[name] = fn

    # -- capture streams (the hot-plug watcher calls these) ------------------------------

    def open_capture(self, name: str, backend: Optional[MidiBackend] = None) -> CaptureTarget:
        """A capture stream for the new source ``name`` (thru as the config says)."""
        with self._lock:
            group = self._take_group()
            stream = CaptureStream(name, group, self.router.route)
            stream.frame_accurate = bool(getattr(backend, "frame_accurate", False))
            rec = self._inputs.get(name)
            if rec is None:
                rec = self._inputs[name] = InputRecord(name)
            rec.connected = True
            rec.connects += 1
            rec.channel_group = group
            rec.stream = stream
            self._captures[id(stream)] = stream
            thru = self.config.midi.thru_for(name)
            if thru and stream.frame_accurate and self.thru_queue() is not None:
                # The JACK reader plays it through the pin's thru queue in the cycle it came in: one
                # period from key to sound, and no second path through a thru stream.
                stream.direct_thru_base = self.synth.thru_base(group)
            else:
                self._set_thru(stream, thru)
            rec.thru = stream.thru is not None or stream.direct_thru_base is not None
        return stream

    def close_capture(self, target: CaptureTarget) -> None:
        """The source is gone: stop its streams and release what it left held."""
        assert isinstance(target, CaptureStream)
        stream = target
        with self._lock:
            stream.close()
            self._captures.pop(id(stream), None)
            rec = self._inputs.get(stream.name)
            if rec is not None and rec.stream is stream:
                rec.events += stream.events
                rec.dropped += stream.dropped + (stream.thru.dropped if stream.thru is not None else 0)
                rec.stream = None
                rec.connected = False
            self._set_thru(stream, False)
            self._release_group(stream.channel_group)

    def _set_thru(self, stream: CaptureStream, on: bool) -> None:
        if on and stream.thru is None:
            stream.thru = RenderStream(
                stream.name, stream.channel_group, self.synth, remap_groups=False, schedule_prefetch=self._prefetch
            )
            stream.thru.on_submit = self._kick
            self._render_streams = (*self._render_streams, stream.thru)
        elif not on and stream.thru is not None:
            thru = stream.thru
            stream.thru = None
            self._render_streams = tuple(s for s in self._render_streams if s is not thru)
            thru.stop()

    def _close_playback(self, stream: PlaybackStream) -> None:
        with self._lock:
            self._render_streams = tuple(s for s in self._render_streams if s is not stream)
            pending = stream.pending()
            stream.stop()
            self._release_group(stream.channel_group)
        log.info("client stream %r closed (%d pending events returned)", stream.name, pending)

    # -- channel groups and render-thread control ----------------------------------------

    def _take_group(self) -> int:
        g = self._next_group
        for _ in range(MAX_CHANNEL_GROUP):
            if g not in self._groups_used:
                break
            g = g % MAX_CHANNEL_GROUP + 1
        else:
            raise RuntimeError("every channel group is in use")
        self._groups_used.add(g)
        self._next_group = g % MAX_CHANNEL_GROUP + 1
        return g

    def _release_group(self, group: int) -> None:
        """Release the group's notes and pedals on the render thread, then (later) free the group."""
        self._request("release", group)

    def _request(self, what: str, arg: int = 0) -> int:
        with self._control_done:
            self._control_serial += 1
            serial = self._control_serial
            self._control.append((what, arg))
        self._kick()
        return serial

    def _kick(self) -> None:
        """Events or a request arrived: the JACK pin's feeder, asleep while idle, feeds them at once."""
        audio = self.audio
        if audio is not None and self.on_pin:
            audio.wake()

    def wait_control(self, serial: int, timeout: float) -> bool:
        """Wait until the render thread has applied request ``serial``."""
        with self._control_done:
            return self._control_done.wait_for(lambda: self._control_applied >= serial, timeout)

    def _apply_control(self) -> None:
        control = self._control
        synth = self.synth
        applied = 0
        while control:
            what, arg = control.popleft()
            try:
                if what == "release":
                    synth.release_channel_group(arg)
                    # Events of the group may already wait inside the synth (its
                    # pre-fetch, the thru latency): release once more after them.
                    due = synth.sample_position + self.render_latency_frames + 2 * self.period
                    self._deferred.append((due, arg))
                elif what == "all_sound_off":
                    synth.all_sound_off()
                elif what == "panic":
                    self._panic_voices = synth.panic()
                elif what == "fade_out":
                    self._fade_at = 0
            except Exception:
                log.exception("render control %s(%d) failed", what, arg)
            applied += 1
        with self._control_done:
            self._control_applied += applied
            self._control_done.notify_all()

    def panic(self, timeout: float = 1.0) -> dict[str, Any]:
        """All notes and sound off on every channel group, for notes a lost note-off left hanging.

        Applied on the render thread like every synth control; waits up to
        ``timeout`` for it.  Returns ``applied`` (False if the render thread
        did not get to it in time: it still will) and the voices silenced.
        """
        serial = self._request("panic")
        applied = self.wait_control(serial, timeout)
        self.panics += 1
        voices = self._panic_voices if applied else None
        now = time.monotonic()
        if now - self._panic_logged_at >= PANIC_LOG_INTERVAL_S:
            unlogged = self.panics - self._panics_logged - 1
            log.info(
                "panic: all notes and sound off on every channel group (%s voices sounding; %d MIDI input cycles "
                "lost so far)%s",
                "?" if voices is None else voices,
                self.input_lost()["cycles"],
                f"; {unlogged} more panic(s) since the last line" if unlogged else "",
            )
            self._panic_logged_at = now
            self._panics_logged = self.panics
        return {"applied": applied, "voices": voices}

    def _run_deferred(self, position: int) -> None:
        keep = []
        for due, group in self._deferred:
            if position < due:
                keep.append((due, group))
                continue
            try:
                self.synth.release_channel_group(group)
            except Exception:
                log.exception("releasing channel group %d failed", group)
            with self._lock:
                self._groups_used.discard(group)
        self._deferred = keep

    # -- the audio side -------------------------------------------------------------------

    def render(self, out: Any, sample_position: int) -> None:
        """The audio pin's render callback: due events of every stream, then the synth."""
        self._wait_for_reader(sample_position)
        if self._control:
            self._apply_control()
        synth = self.synth  # after the requests: a swap may have brought another synth in
        self.timeline.pos_offset = synth.sample_position - sample_position
        if self._deferred:
            self._run_deferred(synth.sample_position)
        # Everything due by the block's start; the sequencers add the synth's
        # pre-fetch (one block), so the synth gets this block's events in time.
        until = synth.wave_sink.sample_to_ref(synth.sample_position)
        for s in self._render_streams:
            s.release(until)
        synth.render(out)
        if self._fade_at >= 0:
            self._fade(out)
        self.renders += 1

    def feed(self, position: int) -> bool:
        """The JACK pin's cycle on the control plane (its feeder thread): what :meth:`render` does, bar rendering.

        ``position`` is the frame the data plane renders next.  Control requests are applied, every
        render stream releases what is due by two periods ahead (plus the synth's pre-fetch) and
        the synth writes the events due before then into the ring: the callback, a cycle later,
        finds them there whether or not this thread was late by up to a period.  Returns whether
        anything still waits to be fed (the feeder then wakes every cycle; else it sleeps longer
        until :meth:`_kick` wakes it).
        """
        if self._control:
            self._apply_control()
        synth = self.synth
        self.timeline.pos_offset = 0  # the plane's frames are the synth's sample positions
        if self._deferred:
            self._run_deferred(position)
        ahead = position + 2 * self.period
        until = synth.wave_sink.sample_to_ref(ahead)
        busy = False
        for s in self._render_streams:
            s.release(until)
            busy = busy or s.pending() > 0
        synth.feed(ahead)
        self.renders += 1
        return busy or synth.has_pending or bool(self._control) or bool(self._deferred)

    def collect_retired(self) -> int:
        """Let go of font states that stopped sounding (a control thread, never the audio one)."""
        return int(self.synth.collect_retired())

    def _fade(self, out: Any) -> None:
        """Scale the block by the fade-out ramp; silence once it is over (stopping only)."""
        n = out.shape[0]
        total = self._fade_frames
        at = self._fade_at
        if at >= total:
            out.fill(0.0)
        else:
            k = np.arange(at, at + n, dtype=np.float32)
            gain = np.clip(1.0 - k / total, 0.0, 1.0)
            out *= gain[:, None]
            self._fade_at = at + n
        if self._fade_at >= total:
            self._faded.set()

    def on_sync(self, ref_time: int, sample_position: int, step: bool = False) -> None:
        """The pin's clock report, in the synth's sample positions (they differ after a reopen).

        ``step``: the device's frames moved against the clock (an xrun, an underrun); re-anchor, don't slew.
        """
        if self.timeline.on_sync(ref_time, sample_position, step, self.synth.wave_sink, self._follow_output):
            self._log_latency()

    def _follow_output(self) -> Optional[int]:
        """While the output settles: its first port (the reader follows it) and its latency in frames."""
        audio = self.audio
        if audio is None:
            return None
        status = audio.status()
        ports = status.get("ports") or [None]
        ring = audio.played_ring()
        if ports[0] != self._out_port or ring is not self._followed_ring:
            self._out_port, self._followed_ring = ports[0], ring
            self.wake.set()  # the hot-plug pass connects the JACK reader after it, to read this ring
        return round(float(status.get("device_latency_s") or 0.0) * self.rate)

    def played_ring(self) -> Optional[PlayedRing]:
        """Where the JACK reader reads, in its own cycle, the position the output plays in it."""
        audio = self.audio
        return audio.played_ring() if audio is not None else None

    def stamp_played(self, played: int, ring: Optional[PlayedRing]) -> Optional[int]:
        """Master time at which a JACK cycle's first frame arrived, on the output's clock.

        The JACK reader runs after the PortAudio output in every cycle (its
        ``sync`` port follows the output), or before the JACK pin (its
        ``sync_out`` feeds the pin), so ``played``, the position the output
        plays in that cycle, is known exactly: frame ``offset`` of the cycle is
        sample ``played + offset``.  Stamping it through the same mapping the synth
        renders with (less the device's latency, which the thru latency adds
        back) makes thru exact to the sample however the JACK clock wanders
        against the master clock.  None unless ``ring`` is the output's that
        plays now (the reader then uses JACK's own clock).
        """
        audio = self.audio
        if audio is None or ring is None or audio.played_ring() is not ring:
            return None
        if audio.played_position() is None:  # not running
            return None
        return self.timeline.stamp(played)

    def thru_queue(self) -> Optional[ThruQueue]:
        """On the JACK pin, its thru queue: the JACK reader plays what it reads through it, in the same cycle."""
        audio = self.audio
        if not self.on_pin or audio is None:
            return None
        queue: Optional[ThruQueue] = audio.thru_queue()
        return queue

    def thru_latency_ms(self) -> dict[str, Optional[float]]:
        """Key to sound at mxfd's output: JACK input (``frame_accurate``), other input
        (``on_arrival``), and JACK input the reader plays through the pin (``through_pin``, None
        off the pin), which is heard one period after its frame."""
        on_pin = self.thru_queue() is not None
        return self.timeline.thru_latency_ms((self.server_period() or self.period) if on_pin else None)

    def jack_thru_ms(self) -> float:
        """Key to sound for JACK input, as it plays now: through the pin where it does."""
        ms = self.thru_latency_ms()
        return ms["through_pin"] or ms["frame_accurate"] or 0.0

    def pin_sync_port(self) -> Optional[str]:
        """The JACK pin's port the JACK reader feeds (so it runs first in every cycle), while the pin plays."""
        audio = self.audio
        if not self.on_pin or audio is None:
            return None
        port: Optional[str] = audio.sync_port()
        return port

    def follow_reader(self, progress: Optional[ReaderProgress]) -> None:
        """The JACK reader the render waits for, or None."""
        self._reader = progress
        self._reader_cycles = -1
        self._reader_event.set()

    def cycle_end(self) -> None:
        """The reader has passed input on: a render waiting for it may go ahead."""
        self._reader_event.set()

    def _wait_for_reader(self, sample_position: int) -> None:
        """Render a block only after the JACK reader has captured the cycle that asked for it.

        The pin renders position ``q`` right after the device took ``q -
        periods × period``; the reader captures that same cycle's input a
        moment later (its compiled callback marks a cycle without input done
        itself; one with input is done once the drain thread has passed it
        on).  Waiting for it (bounded) is what lets frame-accurate input play
        ``periods × period`` after it arrived instead of a period later.  No
        wait while the reader is not following the output.
        """
        reader = self._reader
        if reader is None:
            return
        cycles = reader.followed_cycles()
        if cycles != self._reader_cycles:
            self._reader_cycles = cycles
            self._reader_seen = self.renders
        if self.renders - self._reader_seen > READER_IDLE_RENDERS:
            return
        need = sample_position - self._queue_frames
        if reader.done_position() >= need:
            return
        audio = self.audio
        played = audio.played_position() if audio is not None else None
        if played is None or played < need:
            return  # the device has not played it yet (filling the queue): nothing to wait for
        deadline = time.perf_counter() + READER_WAIT_S
        ev = self._reader_event
        while reader.done_position() < need:
            left = deadline - time.perf_counter()
            if left <= 0:
                self.reader_timeouts += 1
                return
            # The callback marks a quiet cycle done without waking anyone: look again soon.
            ev.wait(min(left, READER_POLL_S))
            ev.clear()

    def output_port(self) -> Optional[str]:
        """The audio output's first JACK port, once it plays on JACK."""
        return self._out_port

    def on_audio_state(self, state: str, message: str) -> None:
        # The pin's clock mapping steps on every state change: re-anchor, don't slew.
        self.timeline.restart()
        self._out_port = None  # ports that came back under the same names: the reader reconnects its sync

    def _log_latency(self) -> None:
        t = self.timeline
        log.info(
            "thru latency %.2f ms for JACK input%s, %.2f ms for other input (the device's own: %d frames)",
            self.jack_thru_ms(),
            " (through the pin)" if self.thru_queue() is not None else "",
            t.render_latency_frames * 1000 / self.rate,
            t.device_frames,
        )

    def _thru_latency(self, frame_accurate: bool) -> int:
        """What thru adds to a captured buffer's time (100 ns): less for input stamped at its frame."""
        return self.frame_latency_100ns if frame_accurate else self.render_latency_100ns

    @property
    def render_latency_100ns(self) -> int:
        """Thru latency for input stamped on arrival (rtmidi, raw devices, clients), master-clock units."""
        return self.timeline.render_latency_100ns

    @property
    def render_latency_frames(self) -> int:
        return self.timeline.render_latency_frames

    @property
    def frame_latency_100ns(self) -> int:
        """Thru latency for input stamped at its frame on the output's clock (the JACK reader)."""
        return self.timeline.frame_latency_100ns

    @property
    def frame_latency_frames(self) -> int:
        return self.timeline.frame_latency_frames

    # -- life cycle -------------------------------------------------------------------------

    def start(self, audio_timeout: float = 1.5) -> None:
        """Open the audio output and start following MIDI inputs."""
        self._start_audio(audio_timeout)
        self._start_midi()

    def wait_ready(self, timeout: float) -> bool:
        """True once the first hot-plug pass ran (inputs present at start are connected)."""
        return self.hotplug is None or bool(self.hotplug.first_pass.wait(timeout))

    def _pin_for(self, config: Config) -> bool:
        """Whether the synth plays on the JACK pin; says which pin plays and why, once."""
        on_pin, why = pin_choice(config, server_answers)
        # said when the output starts: a daemon refused at start-up says nothing of audio
        self._pin_reason = f"audio pin: {'JACK' if on_pin else 'PortAudio'}, since {why}"
        return on_pin

    @property
    def on_pin(self) -> bool:
        """True while the synth plays on the JACK-native pin (its render happens in JACK's cycle)."""
        # Not imported for the question: the data plane's module costs start-up time the PortAudio pin
        # does not need to pay; while it is not loaded, no synth can be a PlaneSynth.
        module = sys.modules.get("mxfd.synth.engine.plane_synth")
        return module is not None and isinstance(self.synth, module.PlaneSynth)

    def _start_audio(self, timeout: float) -> None:
        if self._pin_reason:
            log.info("%s", self._pin_reason)
            self._pin_reason = ""
        if self.audio is None and self.on_pin:
            from mxfd.io.pin_output import JackPinOutput

            self.audio = JackPinOutput(
                self.synth,
                self.feed,
                rate=self.config.audio.rate,
                period=self.config.audio.period,
                client_name=f"{self.client_name}-out",
                on_sync=self.on_sync,
                on_state=self.on_audio_state,
            )
        if self.audio is None:
            from mxfd.io.audio import AudioOutput

            a = self.config.audio
            self.audio = AudioOutput(
                self.render,
                device=audio_device(a.device),
                rate=a.rate,
                period=a.period,
                periods=a.periods,
                client_name=f"{self.client_name}-out",
                on_sync=self.on_sync,
                on_state=self.on_audio_state,
            )
        self.audio.start(timeout=timeout)

    def _start_midi(self) -> None:
        from mxfd.io.hotplug import Hotplug
        from mxfd.io.midi_in import make_backend
        from mxfd.io.raw import RawBackend

        m = self.config.midi
        self.wake = Wake()
        self.backends = [
            make_backend(
                m.api,
                self.wake,
                jack_reader=m.jack_reader,
                client_name=self.client_name,
                output_clock=self,
                output_port=self.output_port,
                on_period=self._on_server_period,
            )
        ]
        if m.raw:
            self.backends.append(RawBackend(m.raw, self.wake, baud=m.raw_baud))
        self.hotplug = Hotplug(
            self.backends,
            self.wake,
            wants=m.wants,
            open_stream=self.open_capture,
            close_stream=self.close_capture,
            virtual_port="in" if m.virtual_port else None,
            poll_interval=m.poll_interval,
        )
        self.hotplug.start()

    def _on_server_period(self, frames: int) -> None:
        """The JACK server's period changed (PipeWire's quantum, say): the output reopens, exact again."""
        audio = self.audio
        if audio is not None and "JACK" in str(audio.status().get("hostapi")):
            audio.reopen(f"the JACK server's period is now {frames} frames")

    def server_period(self) -> Optional[int]:
        """The JACK server's period in frames (its buffer size), None without a JACK server."""
        for b in self.backends:
            frames = getattr(b, "server_period", 0)
            if frames and b.alive:
                return int(frames)
        return None

    def _stop_midi(self) -> None:
        if self.hotplug is not None:
            self.hotplug.stop()
            self.hotplug = None
        self.backends = []

    def stop(self, fade_s: float = FADE_OUT_S) -> None:
        """Stop cleanly: inputs closed, pending events returned, all sound off, device closed.

        The output is faded to silence before the device closes, so neither a
        voice nor the reverb's tail is cut off with a click.
        """
        self._stop_midi()
        with self._lock:
            streams = self._render_streams
            self._render_streams = ()
        for s in streams:
            s.stop()
        if self.audio is not None and self.on_pin:
            # The data plane has no fade: all sound off travels in the ring, in order with what it
            # holds; the callback applies it within a period, then the pin closes.
            if not self.wait_control(self._request("all_sound_off"), 1.0):
                log.warning("all sound off was not applied in 1 s (is the JACK pin's feeder stuck?)")
            time.sleep(fade_s + 4 * self.period / self.rate)
            self.audio.stop()
        elif self.audio is not None:
            self._fade_frames = max(self.period, round(fade_s * self.rate))
            self._request("all_sound_off")
            if not self.wait_control(self._request("fade_out"), 1.0):
                log.warning("the fade-out did not start in 1 s (is the render thread stuck?)")
            elif not self._faded.wait(fade_s + 1.0):
                log.warning("the fade-out did not finish")
            time.sleep(self.render_latency_100ns / UNITS_PER_SECOND)  # the queued frames play out
            self.audio.stop()

    def _choose_bank(self, config: Config) -> SynthChoice:
        """The bank ``config`` asks for, loaded (on this thread); :class:`BankError` if none it names loads."""
        choice, skipped = choose_bank(config.synth, config.audio.rate)
        for reason in skipped:
            if config.synth.soundfont:
                log.warning("soundfont skipped, trying the next: %s", reason)
            else:
                log.warning("the system's General MIDI soundfont did not load (%s); playing the built-in bank", reason)
        return choice

    @property
    def bank_name(self) -> str:
        """The bank in use as status names it: the font's path, or the built-in bank's name."""
        return bank_name(self.bank)

    def reload_bank(self, config: Config) -> dict[str, Any]:
        """Load the bank ``config`` asks for, if it is another, and swap it in without a gap in the sound.

        Returns ``bank`` (the one playing after it), ``changed`` and ``error`` (why the old bank was
        kept, or None).  Loads on the calling thread; only the swap itself waits for the render thread.
        """
        with self._bank_lock:
            key = bank_key(config.synth)
            if key == self._bank_key:
                self.bank_error = None  # the config asks for the bank that plays: nothing is refused
                return {"bank": self.bank_name, "changed": False, "error": None}
            try:
                with yielding_gil():  # the render thread, beside, never waits long for the GIL
                    choice = self._choose_bank(config)
                    self._swap_bank(choice)
            except BankError as exc:
                self.bank_error = str(exc)
                log.error("soundfont not loaded, %s plays on: %s", self.bank_name, exc)
                return {"bank": self.bank_name, "changed": False, "error": self.bank_error}
            self.bank = choice
            self._bank_key = key
            self.bank_reloads += 1
            self.bank_error = None
            log.info("bank: %s", describe_bank(choice))
            return {"bank": self.bank_name, "changed": True, "error": None}

    def _swap_bank(self, choice: SynthChoice) -> None:
        synth = self.synth
        synth.replace_font(choice.font, gain_db=choice.gain_db, reverb=choice.reverb, chorus=choice.chorus)
        if self.on_pin and (choice.reverb and not synth.effects[0] or choice.chorus and not synth.effects[1]):
            log.warning("the JACK pin started without reverb or chorus: they come on at the next start")

    def reload(self, config: Config) -> dict[str, Any]:
        """Apply a new config (SIGHUP): inputs, routes and the bank at once; audio only if its settings changed.

        Returns what :meth:`reload_bank` says of the bank.
        """
        old = self.config
        self.config = config
        self.router.ring.horizon = int(config.record.history_seconds * UNITS_PER_SECOND)
        audio_changed = old.audio != config.audio or old.synth.polyphony != config.synth.polyphony
        geometry = (config.audio.rate, config.audio.period, config.synth.polyphony)
        new_synth = (old.audio.rate, old.audio.period, old.synth.polyphony) != geometry or (
            old.audio.pin != config.audio.pin
        )
        if audio_changed or old.thru != config.thru:
            self.rate = config.audio.rate
            if self.timeline.reconfigure(config):
                self._log_latency()
        if audio_changed:
            log.info("audio settings changed: reopening the output")
            audio = self.audio
            if audio is not None:
                audio.stop()
            self.audio = None
            if new_synth:
                bank = self._replace_synth()
            self.rate = config.audio.rate
            self.period = config.audio.period
            self._queue_frames = config.audio.periods * config.audio.period
            self._start_audio(1.5)
        if not new_synth:
            bank = self.reload_bank(config)
        m, o = config.midi, old.midi
        if (m.api, m.jack_reader, m.raw, m.raw_baud, m.poll_interval) != (
            o.api,
            o.jack_reader,
            o.raw,
            o.raw_baud,
            o.poll_interval,
        ):
            log.info("MIDI backend settings changed: reopening inputs")
            self._stop_midi()
            self._start_midi()
        elif self.hotplug is not None:
            self.hotplug.update(wants=m.wants, virtual_port="in" if m.virtual_port else None)
        with self._lock:
            for stream in list(self._captures.values()):
                if stream.direct_thru_base is not None:
                    if not m.thru_for(stream.name):
                        # Its reader plays it through the pin: the port itself must go for thru to stop.
                        log.warning("thru is off for %s from its next connection on (it plays through the JACK pin)",
                                    stream.name)
                    continue
                self._set_thru(stream, m.thru_for(stream.name))
                rec = self._inputs.get(stream.name)
                if rec is not None:
                    rec.thru = stream.thru is not None
        return bank

    def _point_streams_at(self, synth: Any) -> None:
        """Every render stream's sequencer feeds ``synth`` from now on."""
        with self._lock:
            for s in self._render_streams:
                s.sequencer.disconnect_output()
                s.sequencer.connect_output(synth)
            self.synth = synth
            self._prefetch = int(synth.schedule_prefetch)
            for s in self._render_streams:
                s.sequencer.schedule_prefetch = self._prefetch

    def _replace_synth(self) -> dict[str, Any]:
        """A new synth (new rate, period or polyphony; the audio is closed): the streams move over to it.

        It plays the bank the config asks for, if that loads, else the bank that played.
        """
        report = {"bank": self.bank_name, "changed": False, "error": None}
        choice = self.bank
        key = bank_key(self.config.synth)
        if key != self._bank_key:
            try:
                choice = self._choose_bank(self.config)
            except BankError as exc:
                self.bank_error = report["error"] = str(exc)
                log.error("soundfont not loaded, %s plays on: %s", self.bank_name, exc)
            else:
                self._bank_key = key
                report["changed"] = True
        synth = _make_synth(self.config, choice, plane=self._pin_for(self.config))
        self.bank = choice
        report["bank"] = self.bank_name
        with self._lock:
            self._point_streams_at(synth)
            self._deferred = []
            with self._control_done:
                # The new synth holds nothing to release or silence: what was asked of
                # the old one counts as done, or every later wait_control would wait in vain.
                self._control_applied += len(self._control)
                self._control.clear()
                self._control_done.notify_all()
        self.timeline.restart()
        return report

    # -- status -----------------------------------------------------------------------------

    @property
    def state(self) -> str:
        audio_ok = self.audio is not None and getattr(self.audio, "state", "") == "running"
        midi_ok = self.hotplug is None or all(b["up"] for b in self.hotplug.status())
        return "running" if audio_ok and midi_ok else "degraded"

    def inputs(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._inputs.values()]

    def input_lost(self) -> dict[str, Any]:
        """MIDI input the backends know they lost (JACK cycles the daemon did not run in).

        ``watched`` is False when no backend can tell (rtmidi, raw devices).
        """
        out: dict[str, Any] = {"watched": False, "stalls": 0, "cycles": 0, "ms": 0.0, "xruns": 0, "last_s_ago": None}
        for b in self.backends:
            report = getattr(b, "input_lost", None)
            if report is None:
                continue
            part = report()
            out["watched"] = True
            for key in ("stalls", "cycles", "ms", "xruns"):
                out[key] += part[key]
            for key in ("dropped", "played_through_pin"):
                out[key] = out.get(key, 0) + part.get(key, 0)
            ago = part["last_s_ago"]
            if ago is not None and (out["last_s_ago"] is None or ago < out["last_s_ago"]):
                out["last_s_ago"] = ago
        out["ms"] = round(out["ms"], 1)
        return out

    def bank_info(self) -> dict[str, Any]:
        """The bank in use: its font (None: the built-in bank), its stack, name, gain, effects, reloads."""
        font = self.bank.font
        return {
            "soundfont": self.bank.soundfont,
            "soundfonts": list(self.bank.stack or (self.bank.soundfont,)),
            "name": str(getattr(font, "name", "") or "") if font is not None else bank_name(self.bank),
            "gain_db": self.bank.gain_db,
            "reverb": self.bank.reverb,
            "chorus": self.bank.chorus,
            "reloads": self.bank_reloads,
            "reload_error": self.bank_error,
        }

    def _audio_status(self) -> dict[str, Any]:
        if self.audio is None:
            return {"state": "none"}
        st: dict[str, Any] = self.audio.status()
        st.setdefault("pin", "portaudio")
        st["server_period"] = self.server_period()
        return st

    def status(self) -> dict[str, Any]:
        """Everything ``mxfd status`` shows (JSON-serialisable)."""
        with self._lock:
            streams = {s.name: s.counters() for s in self._render_streams}
            captures = {s.name: s.counters() for s in self._captures.values()}
        out: dict[str, Any] = {
            "state": self.state,
            "pid": os.getpid(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "inputs": self.inputs(),
            "midi": self.hotplug.status() if self.hotplug is not None else [],
            "audio": self._audio_status(),
            "render_latency_100ns": self.render_latency_100ns,
            "render_latency_ms": round(self.render_latency_100ns / 10_000, 3),
            "render_latency_frames": self.render_latency_frames,
            "thru_latency_ms": self.thru_latency_ms(),
            "reader_timeouts": self.reader_timeouts,
            "input_lost": self.input_lost(),
            "capture_streams": captures,
            "render_streams": streams,
            "synth": self.synth.stats(),
            "bank": self.bank_name,
            "bank_info": self.bank_info(),
            "events": {
                "in": sum(r["events"] for r in self.inputs()),
                "capture_buffers": self.router.buffers,
                "dropped": dict(self.dropped),
            },
            "history": self.router.status(),
            "renders": self.renders,
            "panics": self.panics,
        }
        for name, fn in list(self._status_parts.items()):
            try:
                out[name] = fn()
            except Exception as exc:
                out[name] = {"error": str(exc)}
        return out


__all__ = ["Engine", "audio_device", "pin_choice"]
