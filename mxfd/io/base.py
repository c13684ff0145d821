"""What MIDI input adapters feed and what the hot-plug watcher drives.

An input adapter (rtmidi, JACK, a raw byte device) knows nothing of the
transport graph: it hands each message or byte chunk, stamped with the
master clock on arrival, to a :class:`CaptureTarget` (the daemon's capture
stream for that source) and says when a batch of arrivals is over, so live
input is packed and passed on at once instead of waiting for a timer.

A :class:`MidiBackend` lists the ports that could be connected and opens and
closes them; :mod:`mxfd.io.hotplug` decides which.  Backends that get
notifications from their system (JACK port registration) set the shared
``wake`` event; the others are polled.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Optional, Protocol

#: Bytes as adapters deliver them: a bytearray, a cffi buffer, a list of ints from rtmidi.
MidiBytes = Any


def close_fds(*fds: int) -> None:
    """Close descriptors that may already be closed (a pipe's two ends at shutdown)."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


class BackendUnavailable(RuntimeError):
    """The MIDI system is not there now (no JACK server, no ALSA sequencer)."""


class CaptureTarget(Protocol):
    """Where an input adapter delivers what it reads (the source's capture stream)."""

    def capture(self, data: MidiBytes, start: int, end: int, pres_time: int, flags: int) -> None:
        """Take ``data[start:end]`` arrived at master time ``pres_time`` (COMPLETE or INCOMPLETE)."""

    def flush(self) -> None:
        """The current batch of arrivals is over: pass what was captured on now."""


@dataclass(frozen=True, eq=False)
class PlayedRing:
    """Where the audio output says which position it plays: int64 words, and indices into them.

    The position played is ``words[slot0 + ((n - 1) % slots) * slot_stride + 1]`` once
    ``n = words[read]`` is above 0.  The words are a ``/dev/shm`` segment's first (``name``),
    or memory of this process at ``address``, kept alive by ``keep``.  Compared by identity:
    an output hands out one for as long as it plays from the same memory.
    """

    name: str
    words: int
    read: int
    slot0: int
    slot_stride: int
    slots: int
    address: int = 0
    keep: Any = None


@dataclass(frozen=True, eq=False)
class ThruQueue:
    """A data plane's thru queue, where a compiled JACK reader that runs before the pin puts what it reads.

    ``rows`` rows of four int64 at ``rows_address`` (frame offset, first channel, length, packed
    bytes), the count of rows used at ``count_address``, the count of events beyond them at
    ``drops_address``; the pin's callback plays the rows in the same cycle and empties the queue.
    ``keep`` holds that memory.  Compared by identity.
    """

    rows: int
    rows_address: int
    count_address: int
    drops_address: int
    keep: Any = None


class ReaderProgress(Protocol):
    """How far a JACK input reader that follows the output has passed its cycles on."""

    def done_position(self) -> int:
        """The latest output position whose cycle's input has been passed on."""

    def followed_cycles(self) -> int:
        """Cycles read with an output position to stamp them with (stops moving while not following)."""


class OutputClock(Protocol):
    """The audio output's clock, as a JACK input reader that runs after the output sees it."""

    def played_ring(self) -> Optional[PlayedRing]:
        """Where the output's played position can be read in JACK's thread; None while no output plays."""

    def stamp_played(self, played: int, ring: Optional[PlayedRing]) -> Optional[int]:
        """Master time of the cycle in which the output of ``ring`` took the frame starting at ``played``.

        None when that output no longer plays (the reader then stamps on JACK's clock).
        """

    def thru_queue(self) -> Optional[ThruQueue]:
        """The JACK-native pin's thru queue, where the reader plays what it reads in the same cycle; None."""

    def pin_sync_port(self) -> Optional[str]:
        """The pin's port the reader feeds, so that JACK runs the reader before the pin; None."""

    def follow_reader(self, progress: Optional[ReaderProgress]) -> None:
        """The reader whose verdict on each cycle the render waits for (None: no reader)."""

    def cycle_end(self) -> None:
        """Input has been captured and passed on (a render waiting for it may go ahead)."""


class SourceHandle(Protocol):
    """An open source (a connected port or an open device)."""

    name: str


class MidiBackend(Protocol):
    """A MIDI system whose input ports come and go."""

    #: "jack", "alsa" or "raw", for logs and status.
    kind: str
    #: True when the backend wakes the watcher itself as ports come and go (no polling needed).
    notifies: bool
    #: True when each event is stamped at its own frame on the audio output's clock
    #: (JACK with an output to follow); False for stamps taken on arrival.
    frame_accurate: bool

    @property
    def alive(self) -> bool:
        """False once the system went away (the JACK server died); reopen with :meth:`open`."""

    def open(self) -> None:
        """Connect to the MIDI system; raises :class:`BackendUnavailable` when it is not there."""

    def close(self) -> None:
        """Close every port and the connection to the MIDI system."""

    def list_sources(self) -> list[str]:
        """Names of the ports that could be connected now (never this daemon's own)."""

    def open_source(self, name: str, target: CaptureTarget) -> SourceHandle:
        """Connect port ``name`` so what it plays reaches ``target``."""

    def close_source(self, handle: SourceHandle) -> None:
        """Disconnect and close a source; nothing reaches its target afterwards."""

    def open_virtual(self, port: str, target: CaptureTarget) -> Optional[SourceHandle]:
        """Expose the daemon's own input port (``mxfd:in``) feeding ``target``."""


#: Client names of this daemon and of other mxfd instances: never connected, never offered as devices.
OWN_CLIENT_PATTERN = r"^mxfd(?:$|[-_ .])"
_OWN_CLIENT = re.compile(OWN_CLIENT_PATTERN)


def is_mxfd_port(name: str) -> bool:
    """True for ports of any mxfd instance (``mxfd:in``, ``mxfd-01:in``, ``mxfd-out:...``)."""
    return _OWN_CLIENT.match(name.split(":", 1)[0]) is not None


class Wake:
    """One event several backends set when their port set may have changed."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        fired = self._event.wait(timeout)
        self._event.clear()
        return fired


__all__ = [
    "OWN_CLIENT_PATTERN",
    "BackendUnavailable",
    "CaptureTarget",
    "MidiBackend",
    "MidiBytes",
    "OutputClock",
    "SourceHandle",
    "Wake",
    "is_mxfd_port",
]
