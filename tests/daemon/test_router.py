"""The router's rules: every buffer reaches the history and the matching subscribers once, thru at its latency."""

from __future__ import annotations

from typing import Any

import pytest

from mxfd.core.allocator import AllocatorExhausted
from mxfd.daemon import router as R
from mxfd.daemon.streams import CaptureStream

EXACT, STAMPED = 26_667, 53_333  # thru latencies (100 ns) for input stamped at its frame, and on arrival


class Thru:
    """A thru stream that keeps what it is given (the router calls ``submit`` and counts ``dropped``)."""

    def __init__(self, fail: BaseException | None = None) -> None:
        self.got: list[tuple[bytes, int]] = []
        self.dropped = 0
        self.fail = fail

    def submit(self, data: bytes, time: int) -> None:
        if self.fail is not None:
            raise self.fail
        self.got.append((data, time))


def source(router: R.Router, name: str, thru: Any = None, frame_accurate: bool = False) -> CaptureStream:
    stream = CaptureStream(name, 1, router.route)
    stream.thru = thru
    stream.frame_accurate = frame_accurate
    return stream


def make_router() -> R.Router:
    return R.Router(10.0, lambda exact: EXACT if exact else STAMPED)


def test_thru_gets_the_frame_accurate_latency_only_for_input_stamped_at_its_frame() -> None:
    router = make_router()
    jack, rtmidi = Thru(), Thru()
    router.route(source(router, "jack:out", jack, frame_accurate=True), 1000, b"a")
    router.route(source(router, "seq:out", rtmidi), 1000, b"b")
    assert jack.got == [(b"a", 1000 + EXACT)] and rtmidi.got == [(b"b", 1000 + STAMPED)]


def test_a_subscriber_hears_only_the_sources_its_pattern_matches_and_nothing_once_closed() -> None:
    router = make_router()
    heard: list[str] = []
    sub = router.subscribe(lambda n, t, d: heard.append(n), r"^pads")
    pads, kbd = source(router, "pads:out"), source(router, "kbd:out")
    router.route(pads, 1, b"x")
    router.route(kbd, 2, b"y")
    sub.close()
    router.route(pads, 3, b"z")
    assert heard == ["pads:out"]
    assert [n for n, _t, _d in router.ring.since(10, 3)] == ["pads:out", "kbd:out", "pads:out"]
    assert router.buffers == 3


@pytest.mark.parametrize("fault, reason", [(RuntimeError("bug"), "thru_error"), (AllocatorExhausted(), "thru_pool")])
def test_a_thru_that_fails_is_counted_by_reason_and_the_buffer_still_reaches_the_history(
    fault: BaseException, reason: str
) -> None:
    router = make_router()
    thru = Thru(fault)
    router.route(source(router, "kbd:out", thru), 5, b"x")
    assert router.dropped[reason] == 1 and thru.dropped == 1
    assert len(router.ring) == 1


def test_the_history_keeps_no_more_than_its_cap_of_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(R, "HISTORY_MAX_BUFFERS", 3)
    ring = R.History(60.0)
    for t in range(5):
        ring.append("kbd:out", t, b"x")
    assert len(ring) == 3 and ring.trimmed == 2
