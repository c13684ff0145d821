"""``Router``: where a finished capture buffer goes, on the control plane.

Theory of operation
-------------------
::

    CaptureStream (per source) ─▶ Router.route ─┬─▶ history ring (the last minutes, always on)
                                                ├─▶ subscribers (recorders, clients' captures)
                                                └─▶ the source's thru RenderStream, at its latency

The router is called on the capture adapters' threads, one buffer at a
time, and never raises: the packer offers a buffer again whose consumer
raised, and the history and the subscribers, which have it already, would
get it twice.  What cannot be delivered is counted by reason
(:attr:`Router.dropped`) and logged the first time (a subscriber) or at
powers of two (a device babbling bad bytes must not flood the log).

Subscribers are an immutable tuple swapped whole, so :meth:`route` reads
them without a lock; the history ring has its own.  Which thru latency a
buffer gets is the engine's (its timeline knows the clocks): frame-accurate
input (JACK) and input stamped on arrival differ by a period.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from typing import Any, Callable, Final, Optional

from mxfd.core.allocator import AllocatorExhausted
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.wire import BadBufferError
from mxfd.daemon.streams import CaptureStream

log = logging.getLogger(__name__)

#: The history ring never holds more buffers than this, whatever its length in time.
HISTORY_MAX_BUFFERS: Final = 500_000

CaptureCallback = Callable[[str, int, bytes], None]
#: ``thru_latency(frame_accurate)``: the 100 ns added to a captured buffer's time for thru.
ThruLatency = Callable[[bool], int]


class Subscription:
    """A capture subscriber: ``callback(source_name, start_time, data)`` for matching sources."""

    def __init__(self, router: "Router", callback: CaptureCallback, pattern: Optional[str]) -> None:
        self._router = router
        self.callback = callback
        self.pattern = pattern
        self._regex = re.compile(pattern) if pattern is not None else None
        self._matches: dict[str, bool] = {}
        self.errors = 0

    def matches(self, name: str) -> bool:
        if self._regex is None:
            return True
        hit = self._matches.get(name)
        if hit is None:
            hit = self._matches[name] = self._regex.search(name) is not None
        return hit

    def close(self) -> None:
        self._router.unsubscribe(self)


class History:
    """The always-on capture ring: the last ``seconds`` of buffers of every source."""

    def __init__(self, seconds: float) -> None:
        self.horizon = int(seconds * UNITS_PER_SECOND)
        self._ring: deque[tuple[int, str, bytes]] = deque()
        self._lock = threading.Lock()
        self.trimmed = 0

    def append(self, name: str, start_time: int, data: bytes) -> None:
        with self._lock:
            ring = self._ring
            ring.append((start_time, name, data))
            oldest = start_time - self.horizon
            while ring and (ring[0][0] < oldest or len(ring) > HISTORY_MAX_BUFFERS):
                ring.popleft()
                self.trimmed += 1

    def since(self, seconds: float, now: int) -> list[tuple[str, int, bytes]]:
        first = now - int(min(seconds, self.horizon / UNITS_PER_SECOND) * UNITS_PER_SECOND)
        with self._lock:
            items = [x for x in self._ring if x[0] >= first]
        items.sort(key=lambda x: x[0])
        return [(name, start, data) for start, name, data in items]

    def __len__(self) -> int:
        return len(self._ring)


class InputRecord:
    """What ``status`` shows of an input, kept after it is gone."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.connected = False
        self.events = 0
        self.dropped = 0
        self.channel_group = 0
        self.thru = False
        self.connects = 0
        self.stream: Optional[CaptureStream] = None

    def as_dict(self) -> dict[str, Any]:
        s = self.stream
        events = self.events + (s.events if s is not None else 0)
        dropped = self.dropped + (s.dropped if s is not None else 0)
        if s is not None and s.thru is not None:
            dropped += s.thru.dropped
        return {
            "name": self.name,
            "connected": self.connected,
            "events": events,
            "dropped": dropped,
            "channel_group": self.channel_group if self.connected else None,
            "thru": self.thru,
            "connects": self.connects,
        }


class Router:
    """Delivers each capture buffer to the history ring, the subscribers and the source's thru stream."""

    def __init__(self, history_seconds: float, thru_latency: ThruLatency) -> None:
        self.ring = History(history_seconds)
        self._thru_latency = thru_latency
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        #: Drops by reason (thru pool full, malformed for thru, thru failed, subscriber errors).
        self.dropped: dict[str, int] = {"thru_pool": 0, "thru_malformed": 0, "thru_error": 0, "subscriber_error": 0}
        self.buffers = 0

    def subscribe(self, callback: CaptureCallback, pattern: Optional[str] = None) -> Subscription:
        """Call ``callback(source, start_time, data)`` with every capture buffer of matching inputs."""
        sub = Subscription(self, callback, pattern)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def route(self, stream: CaptureStream, start_time: int, data: bytes) -> None:
        """A completed capture buffer (on the capture thread): history, subscribers, thru; never raises."""
        self.buffers += 1
        name = stream.name
        self.ring.append(name, start_time, data)
        for sub in self._subs:
            if sub.matches(name):
                try:
                    sub.callback(name, start_time, data)
                except Exception:
                    sub.errors += 1
                    self.dropped["subscriber_error"] += 1
                    if sub.errors == 1:
                        log.exception("capture subscriber failed (counted from now on)")
        thru = stream.thru
        if thru is None:
            return
        try:
            thru.submit(data, start_time + self._thru_latency(stream.frame_accurate))
        except AllocatorExhausted:
            thru.dropped += 1
            self.dropped["thru_pool"] += 1
        except BadBufferError as e:
            # e.g. a data byte with bit 7 set from a misbehaving device: recorded as it came, not played
            thru.dropped += 1
            n = self.dropped["thru_malformed"] = self.dropped["thru_malformed"] + 1
            if n & (n - 1) == 0:  # the 1st, 2nd, 4th...
                log.warning("%s: input thru cannot play (%s); recorded, not played (%d so far)", name, e, n)
        except Exception:
            thru.dropped += 1
            n = self.dropped["thru_error"] = self.dropped["thru_error"] + 1
            if n & (n - 1) == 0:
                log.exception("%s: thru failed (%d times so far)", name, n)

    def status(self) -> dict[str, Any]:
        return {"buffers": len(self.ring), "seconds": self.ring.horizon / UNITS_PER_SECOND}


__all__ = ["CaptureCallback", "History", "InputRecord", "Router", "Subscription"]
