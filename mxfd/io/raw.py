"""Raw MIDI byte sources: serial/DIN adapters and rawmidi device nodes (the INCOMPLETE path).

Theory of operation
-------------------
A raw source is a device node that delivers the MIDI byte stream as it comes
off the wire, in whatever chunks the driver hands over: ``raw:/dev/ttyUSB0``
(a serial MIDI interface), ``raw:/dev/snd/midiC1D0`` (an ALSA rawmidi node).
A reader thread waits in ``poll`` on the device and on a wake-up pipe, reads
each chunk into one preallocated buffer (``readv``, so steady reading
allocates nothing), stamps it with the master clock and hands it to the
capture target as an ``EVENT_INCOMPLETE`` event.  The capture sink does the
MIDI byte rules (running status, real-time bytes anywhere, SysEx across
chunks); nothing here looks inside the bytes.  Each message is stamped with
the arrival of the chunk holding its first byte, which is the best a byte
stream without time stamps allows.

A tty is put in raw mode (no line discipline may turn CR into LF or a byte
into a signal) at the configured baud rate; 31250 (the MIDI rate) is not a
POSIX speed and is set with Linux's ``termios2`` ``BOTHER``.

End of file or ``EIO``/``ENODEV``/``ENXIO`` means the device went away (the
adapter was unplugged): the source closes and reports it lost, and the
:class:`RawBackend` offers the path again once the node is back.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import select
import struct
import termios
import threading
import time
import tty
from typing import Callable, Optional

from mxfd.core.clock import Clock, master_time
from mxfd.core.event import EVENT_INCOMPLETE
from mxfd.io.base import CaptureTarget, Wake

log = logging.getLogger(__name__)

#: Prefix of raw sources in the config and in source names.
RAW_PREFIX = "raw:"
_GONE = (errno.EIO, errno.ENODEV, errno.ENXIO, errno.EBADF)

# Linux termios2 (asm-generic/termbits.h, ioctls.h) for a non-standard baud rate.
_TCGETS2 = 0x802C542A
_TCSETS2 = 0x402C542B
_CBAUD = 0o010017
_BOTHER = 0o010000
_TERMIOS2 = struct.Struct("IIIIB19sII")


def set_baud(fd: int, baud: int) -> None:
    """Set a tty's input and output speed to ``baud``, standard or not."""
    const = getattr(termios, f"B{baud}", None)
    if const is not None:
        attrs = termios.tcgetattr(fd)
        attrs[4] = attrs[5] = const
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        return
    raw = bytearray(_TERMIOS2.size)
    fcntl.ioctl(fd, _TCGETS2, raw)
    iflag, oflag, cflag, lflag, line, cc, _ispeed, _ospeed = _TERMIOS2.unpack(raw)
    cflag = (cflag & ~_CBAUD) | _BOTHER
    fcntl.ioctl(fd, _TCSETS2, _TERMIOS2.pack(iflag, oflag, cflag, lflag, line, cc, baud, baud))


class RawSource:
    """One raw MIDI byte device, read by its own thread into a capture target."""

    def __init__(
        self,
        path: str,
        target: CaptureTarget,
        *,
        baud: int = 31250,
        chunk: int = 4096,
        clock: Clock = master_time,
        on_lost: Optional[Callable[["RawSource"], None]] = None,
    ) -> None:
        self.path = path
        self.name = RAW_PREFIX + path
        self.target = target
        self.baud = baud
        self.clock = clock
        self.on_lost = on_lost
        self._buf = bytearray(chunk)
        self._fd = -1
        self._wake_r = -1
        self._wake_w = -1
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        #: Bytes and chunks read; why the source closed, if it did.
        self.bytes = 0
        self.chunks = 0
        self.error: Optional[str] = None

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    def start(self) -> None:
        """Open the device and start reading; raises ``OSError`` when it cannot be opened."""
        fd = os.open(self.path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            if os.isatty(fd):
                tty.setraw(fd)
                try:
                    set_baud(fd, self.baud)
                except OSError as exc:
                    log.warning("%s: cannot set %d baud (%s); keeping the current rate", self.name, self.baud, exc)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"mxfd-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and close the device; nothing reaches the target afterwards."""
        self._stopping = True
        if self._wake_w >= 0:
            try:
                os.write(self._wake_w, b"x")
            except OSError as exc:
                log.debug("%s: wake-up write failed: %s", self.name, exc)
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(2.0)
        self._thread = None
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd = self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        fd = self._fd
        buf = self._buf
        bufs = [buf]
        target = self.target
        clock = self.clock
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        poller.register(self._wake_r, select.POLLIN)
        while not self._stopping:
            try:
                poller.poll()
                if self._stopping:
                    break
                n = os.readv(fd, bufs)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno in _GONE:
                    self._lost(f"device gone ({exc.strerror})")
                else:
                    self._lost(f"read failed: {exc}")
                return
            if n == 0:
                self._lost("end of file")
                return
            t = clock()
            self.bytes += n
            self.chunks += 1
            try:
                target.capture(buf, 0, n, t, EVENT_INCOMPLETE)
                target.flush()
            except Exception:
                # The capture stream counts its own drops; anything else is a bug
                # worth a traceback, but must not kill the reader.
                log.exception("%s: capture failed for a %d-byte chunk", self.name, n)

    def _lost(self, why: str) -> None:
        self.error = why
        log.warning("%s: closed: %s", self.name, why)
        if self.on_lost is not None:
            self.on_lost(self)


class RawBackend:
    """The configured raw devices as a :class:`~mxfd.io.base.MidiBackend`.

    A device is offered while its node exists and it is not in its retry
    delay after a loss (the delay doubles, up to 8 s, while a device keeps
    failing right after it opens, and resets once it has worked for a while).
    """

    kind = "raw"
    notifies = False
    frame_accurate = False

    def __init__(self, paths: tuple[str, ...], wake: Wake, *, baud: int = 31250) -> None:
        self.paths = tuple(p[len(RAW_PREFIX):] if p.startswith(RAW_PREFIX) else p for p in paths)
        self.wake = wake
        self.baud = baud
        self._sources: dict[str, RawSource] = {}
        self._retry_at: dict[str, float] = {}
        self._delay: dict[str, float] = {}
        self._opened_at: dict[str, float] = {}

    @property
    def alive(self) -> bool:
        return True

    def open(self) -> None:
        """Nothing to connect to: each device is opened on its own."""

    def close(self) -> None:
        for src in list(self._sources.values()):
            self.close_source(src)

    def list_sources(self) -> list[str]:
        now = time.monotonic()
        out = []
        for path in self.paths:
            name = RAW_PREFIX + path
            src = self._sources.get(name)
            if src is not None:
                if src.running:
                    out.append(name)
                continue
            if now >= self._retry_at.get(name, 0.0) and os.path.exists(path):
                out.append(name)
        return out

    def open_source(self, name: str, target: CaptureTarget) -> RawSource:
        src = RawSource(name[len(RAW_PREFIX):], target, baud=self.baud, on_lost=self._on_lost)
        try:
            src.start()
        except OSError:
            self._backoff(name)
            raise
        self._sources[name] = src
        self._opened_at[name] = time.monotonic()
        return src

    def close_source(self, handle: object) -> None:
        assert isinstance(handle, RawSource)
        self._sources.pop(handle.name, None)
        handle.stop()

    def open_virtual(self, port: str, target: CaptureTarget) -> None:
        return None

    def _on_lost(self, src: RawSource) -> None:
        self._backoff(src.name)
        self.wake.set()

    def _backoff(self, name: str) -> None:
        now = time.monotonic()
        if now - self._opened_at.get(name, 0.0) > 5.0:
            self._delay[name] = 0.0
        delay = min(8.0, max(0.25, 2 * self._delay.get(name, 0.0)))
        self._delay[name] = delay
        self._retry_at[name] = now + delay


__all__ = ["RAW_PREFIX", "RawBackend", "RawSource", "set_baud"]
