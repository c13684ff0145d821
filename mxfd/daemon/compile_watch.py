"""Compiles after start-up: each one a stall of the whole control plane, so each is said and counted.

Start-up loads every compiled function the daemon needs from numba's cache
(or compiles it, on a first start).  A function compiled later, for a type
signature nothing used before (a Python caller passing an ``int64`` where
the audio callback passes a ``uint32``, say), holds the GIL and numba's
compiler lock for a second or more on this machine, longer under load:
MIDI draining, feeding the pin and the clients all wait.  So once the
daemon is ready, every compile is logged as a warning naming the function
and its signature, and counted in status (``compiler``).  Nested compiles
(callees compiled for their caller) are part of the outermost one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Final

from numba.core import event

log = logging.getLogger(__name__)

#: Functions named in status, the most recent last.
KEEP: Final = 8


class CompileWatch(event.Listener):
    """Counts numba's compiles from :meth:`install` on; ``status()`` for ``mxfd status``."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.recent: list[str] = []
        self._depth = threading.local()
        self._lock = threading.Lock()

    def install(self) -> None:
        event.register("numba:compile", self)  # type: ignore[no-untyped-call]

    def uninstall(self) -> None:
        event.unregister("numba:compile", self)  # type: ignore[no-untyped-call]

    def on_start(self, ev: Any) -> None:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            self._depth.started = time.monotonic()
        self._depth.n = depth + 1

    def on_end(self, ev: Any) -> None:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:
            return  # a compile that began before install(): not this watch's
        self._depth.n = depth - 1
        if depth > 1:
            return
        took = time.monotonic() - self._depth.started
        data = ev.data or {}
        dispatcher = data.get("dispatcher")
        name = getattr(getattr(dispatcher, "py_func", None), "__qualname__", repr(dispatcher))
        args = ", ".join(_short(a) for a in data.get("args", ()))
        with self._lock:
            self.count += 1
            self.seconds += took
            self.recent = (self.recent + [name])[-KEEP:]
        log.warning("compiled %s(%s) after start-up in %.2f s: the control plane waited that long", name, args, took)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"compiles_after_ready": self.count, "seconds": round(self.seconds, 3), "recent": list(self.recent)}


def _short(typ: object) -> str:
    """A numba type as a person reads it: a structure's name, not its eight thousand characters of fields."""
    text = str(typ)
    return text if len(text) <= 48 else type(typ).__name__


__all__ = ["CompileWatch"]
