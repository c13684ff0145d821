"""The capture path allocates nothing in steady state (tracemalloc, filtered to mxfd/core)."""

from __future__ import annotations

from mxfd.core.allocator import Allocator
from mxfd.core.capture import CaptureSink
from mxfd.core.clock import UNITS_PER_MS, ManualClock
from mxfd.core.packer import Packer
from tests.core.helpers import core_growth, raw_chain

#: Times start high so every time stamp is an int of one size from the first cycle on.
EPOCH = 2**40
CYCLES = 100_000


def capture_bursts(buffer_size: int) -> list[bytes]:
    """Bursts as a keyboard and a clock send them, one SysEx longer than the allocator's buffer among them."""
    long_sysex = b"\xf0" + bytes(i & 0x7F for i in range(buffer_size + 20)) + b"\xf7"
    return [
        bytes.fromhex("90 3c 64 3e 64 f8 40 64"),
        bytes.fromhex("3c 00 3e 00 40 00 b0 07 64 0a"),
        bytes.fromhex("40 f8 e0 00 40 01 40 c0 05 f8"),
        bytes.fromhex("f0 43 10 4c 00 00 7e 00 f7 90 43 50"),
        long_sysex[: buffer_size // 2],
        long_sysex[buffer_size // 2 :] + bytes.fromhex("f8 fe 80 43 00 f4 f6"),
    ]


def test_capture_pack_cycles_leave_no_net_allocation_in_the_core() -> None:
    alloc = Allocator(pool_size=64, buffer_size=64)
    clock = ManualClock(EPOCH)
    delivered = [0]

    def consume(start: int, data: bytes) -> None:
        delivered[0] += 1

    packer = Packer(alloc, consume, buffer_size=512, clock=clock)
    sink = CaptureSink(alloc)
    sink.connect_output(packer)
    bursts = capture_bursts(alloc.buffer_size)

    def cycle(i: int) -> None:
        sink.put_message(raw_chain(alloc, bursts[i % len(bursts)], clock.advance(UNITS_PER_MS // 4)))
        if i % 16 == 15:
            packer.poll()

    growth, where = core_growth(cycle, warmup=2_000, cycles=CYCLES)
    packer.flush()
    assert growth < 1024, where
    assert alloc.is_idle(), alloc.counters()
    assert sink.messages > CYCLES and sink.lost == 0 and sink.truncated == 0
    assert packer.completed_full and packer.completed_timeout and delivered[0] == packer.buffers
