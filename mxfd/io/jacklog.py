"""libjack's messages, routed into mxfd's log instead of the terminal.

Theory of operation
-------------------
libjack prints every error and info message to stderr unless its process
has set ``jack_set_error_function`` / ``jack_set_info_function``.  A client
that cannot reach a server prints five lines per attempt ("Cannot connect
to server socket", "jack server is not running or cannot be started",
``JackShmReadWritePtr::~JackShmReadWritePtr - Init not done``, ...); the
daemon retries twice a second, so without a server the journal filled with
thousands of lines an hour that say nothing the daemon's own "no JACK
server, retrying" line does not.

:func:`route_jack_messages` points both functions of every libjack in the
process at :data:`log`: the system one (JACK-Client's, which the MIDI reader
and its cycle-time reads share) and python-rtmidi's own bundled copy, which
has its own globals.  What libjack says while mxfd tries to connect
(inside :func:`connecting`) is the expected noise of a missing server and
goes to the debug level.  Any other error is logged at the info level: it
is libjack's detail (a server that dies says "Cannot read socket", "CheckRes
error", ...), while mxfd's own line says what it means and what is done;
the same text at most once per :data:`REPEAT_S` (with how often it came
meanwhile), so a libjack that repeats itself in a loop cannot flood the log
either.  Info messages are debug.

The PortAudio side (the audio worker process) needs none of this: its
stderr is a pipe the daemon reads and logs at the debug level.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

log = logging.getLogger("mxfd.jack")

#: The same error text is logged at most this often (seconds); repeats are counted.
REPEAT_S = 10.0
#: How many distinct texts the repeat filter remembers.
_MAX_TEXTS = 64

_local = threading.local()
_lock = threading.Lock()
_routed: set[str] = set()
#: ctypes callbacks handed to a C library must live as long as it may call them.
_keep: list[Any] = []
#: text -> (last time logged, repeats since)
_seen: dict[str, tuple[float, int]] = {}


@contextmanager
def connecting() -> Iterator[None]:
    """While in it, this thread's libjack errors are a connection attempt's noise (debug level)."""
    depth = getattr(_local, "connecting", 0)
    _local.connecting = depth + 1
    try:
        yield
    finally:
        _local.connecting = depth


def close_client(client: Any, *, deactivate: bool, what: str) -> None:
    """Deactivate (unless told not to: libjack crashes in it after a server shutdown) and close a client.

    What either call raises is logged at debug level under ``what``: a client being closed has nothing
    more to lose.
    """
    if deactivate:
        try:
            client.deactivate()
        except Exception as exc:
            log.debug("%s: deactivate: %s", what, exc)
    try:
        client.close()
    except Exception as exc:
        log.debug("%s: close: %s", what, exc)


def _on_error(message: str) -> None:
    text = message.strip()
    if getattr(_local, "connecting", 0):
        log.debug("libjack: %s", text)
        return
    now = time.monotonic()
    with _lock:
        last, repeats = _seen.get(text, (-REPEAT_S, 0))
        if now - last < REPEAT_S:
            _seen[text] = (last, repeats + 1)
            return
        if len(_seen) >= _MAX_TEXTS and text not in _seen:
            _seen.clear()
        _seen[text] = (now, 0)
    if repeats:
        log.info("libjack: %s (and %d times more in the last %.1f s)", text, repeats, now - last)
    else:
        log.info("libjack: %s", text)


def _on_info(message: str) -> None:
    log.debug("libjack: %s", message.strip())


def _route_jack_client() -> None:
    import jack

    jack.set_error_function(_on_error)
    jack.set_info_function(_on_info)


def _rtmidi_libjack() -> Optional[str]:
    """The path of python-rtmidi's bundled libjack, if its wheel has one (auditwheel's directory)."""
    try:
        import rtmidi
    except ImportError:
        return None
    site = os.path.dirname(os.path.dirname(rtmidi.__file__))
    for d in ("python_rtmidi.libs", "python_rtmidi."):  # the name depends on the auditwheel version
        try:
            names = sorted(os.listdir(os.path.join(site, d)))
        except OSError:
            continue
        for name in names:
            if name.startswith("libjack"):
                return os.path.join(site, d, name)
    return None


def _route_ctypes(path: str) -> None:
    lib = ctypes.CDLL(path)  # already loaded by rtmidi: dlopen returns the same copy
    proto = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
    pairs: list[tuple[Callable[[str], None], Any]] = [
        (_on_error, lib.jack_set_error_function),
        (_on_info, lib.jack_set_info_function),
    ]
    for fn, setter in pairs:

        def callback(raw: Optional[bytes], fn: Callable[[str], None] = fn) -> None:
            try:
                fn((raw or b"").decode(errors="replace"))
            except Exception:  # never raise into C
                log.exception("libjack message lost")

        cb = proto(callback)
        _keep.append(cb)
        setter.argtypes = [proto]
        setter.restype = None
        setter(cb)


def route_jack_messages(*, rtmidi: bool = False) -> None:
    """Send libjack's error and info messages to :data:`log` (idempotent, any thread).

    ``rtmidi`` also routes python-rtmidi's bundled libjack (it imports rtmidi).
    """
    with _lock:
        todo = [k for k in (("jack-client",) + (("rtmidi",) if rtmidi else ())) if k not in _routed]
        _routed.update(todo)
    for what in todo:
        try:
            if what == "jack-client":
                _route_jack_client()
            else:
                path = _rtmidi_libjack()
                if path is not None:
                    _route_ctypes(path)
        except Exception as exc:
            log.warning("cannot route libjack's messages (%s): they go to stderr", exc)


def server_answers(servername: Optional[str] = None) -> Optional[str]:
    """None when a JACK server answers now, else why not, in one line (opens a client and closes it)."""
    import jack

    route_jack_messages()
    try:
        with connecting():
            client = jack.Client("mxfd-probe", no_start_server=True, servername=servername)
    except (jack.JackError, OSError) as exc:
        return str(exc) or type(exc).__name__
    close_client(client, deactivate=False, what="JACK probe")
    return None


__all__ = ["REPEAT_S", "connecting", "log", "route_jack_messages", "server_answers"]
