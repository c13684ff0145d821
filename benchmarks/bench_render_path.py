"""Unpacker + sequencer throughput on realistic render buffers, in events per second.

The buffers are what a sequencer client writes: 32 events each (notes on and
off, controller runs, pitch bend, program changes, about 2 % SysEx of 6-48
bytes), packed in ascending time over ~20 ms with the Windows
DMUS_EVENTHEADER layout.  256 different buffers are cycled through.

Rows:

* ``unpack``: ``Unpacker.unpack`` into an unconnected node (events straight
  back to the allocator): validation plus one event per message.
* ``unpack+sequence+release``: unpacker -> sequencer; after each buffer the
  timer's ``release(now)`` runs with ``now`` trailing the buffers by 40 ms, so
  a couple of buffers are always queued; released chains go back to the
  allocator (the miniport's last step).
* ``unpack+sequence (shuffled)``: as above with every buffer packed in
  random time order, so the sequencer sorts each chain before merging it.
* ``unpack+pass-through``: the same with ``DONT_HOLD_FOR_SEQUENCING``.
* ``decode_buffer+mido``: for comparison, the naive path: the plain
  ``decode_buffer`` function and a ``mido.Message.from_bytes`` per message.

Run: ``.venv/bin/python benchmarks/bench_render_path.py [--buffers N] [--repeat R]``.
Timings depend on the machine and its load; the best of R runs is shown.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import time
from typing import Optional

import mido

from mxfd.core.allocator import Allocator
from mxfd.core.sequencer import DONT_HOLD_FOR_SEQUENCING, Sequencer
from mxfd.core.unpacker import Unpacker
from mxfd.core.wire import decode_buffer, encode_buffer

MS = 10_000
EVENTS_PER_BUFFER = 32
BUFFER_SPAN = 20 * MS


def realistic_buffers(count: int, seed: int = 1, shuffled: bool = False) -> list[tuple[int, bytes, int]]:
    """``count`` buffers of 32 records: (start time relative to the buffer, data, events).

    ``shuffled`` packs each buffer's records in random order (clients must not,
    but the sequencer copes).
    """
    rnd = random.Random(seed)
    out = []
    for _ in range(count):
        records = []
        t = 0
        for _ in range(EVENTS_PER_BUFFER):
            t += rnd.randrange(0, BUFFER_SPAN // EVENTS_PER_BUFFER * 2)
            ch = rnd.randrange(16)
            x = rnd.random()
            if x < 0.02:
                msg = b"\xf0" + bytes(rnd.randrange(128) for _ in range(rnd.randint(4, 46))) + b"\xf7"
            elif x < 0.60:
                msg = bytes([rnd.choice((0x80, 0x90)) | ch, rnd.randrange(36, 96), rnd.randrange(128)])
            elif x < 0.85:
                msg = bytes([0xB0 | ch, rnd.choice((1, 7, 10, 11, 64, 74)), rnd.randrange(128)])
            elif x < 0.95:
                msg = bytes([0xE0 | ch, rnd.randrange(128), rnd.randrange(128)])
            else:
                msg = bytes([0xC0 | ch, rnd.randrange(128)])
            records.append((t, 1 + (ch >> 3), msg))
        if shuffled:
            rnd.shuffle(records)  # the times stay absolute: encode_buffer returns the new start
        start, data = encode_buffer(records)
        out.append((start, data, len(records)))
    return out


def run_unpack(buffers: list[tuple[int, bytes, int]], rounds: int) -> tuple[float, int]:
    alloc = Allocator(pool_size=256)
    unpacker = Unpacker(alloc)
    unpack = unpacker.unpack
    n = 0
    t0 = time.perf_counter()
    for r in range(rounds):
        base = r * len(buffers) * BUFFER_SPAN
        for i, (start, data, _) in enumerate(buffers):
            n += unpack(data, base + i * BUFFER_SPAN + start)
    dt = time.perf_counter() - t0
    assert alloc.is_idle(), alloc.counters()
    return dt, n


def run_sequenced(buffers: list[tuple[int, bytes, int]], rounds: int, prefetch: int) -> tuple[float, int]:
    alloc = Allocator(pool_size=256)
    unpacker = Unpacker(alloc)
    sequencer = Sequencer(alloc, schedule_prefetch=prefetch)
    unpacker.connect_output(sequencer)
    unpack = unpacker.unpack
    release = sequencer.release
    t0 = time.perf_counter()
    now = 0
    for r in range(rounds):
        base = r * len(buffers) * BUFFER_SPAN
        for i, (start, data, _) in enumerate(buffers):
            now = base + i * BUFFER_SPAN
            unpack(data, now + start)
            release(now - 2 * BUFFER_SPAN)
    release(now + 10 * BUFFER_SPAN)
    dt = time.perf_counter() - t0
    assert alloc.is_idle(), alloc.counters()
    return dt, sequencer.released


def run_naive(buffers: list[tuple[int, bytes, int]], rounds: int) -> tuple[float, int]:
    from_bytes = mido.Message.from_bytes
    n = 0
    t0 = time.perf_counter()
    for r in range(rounds):
        base = r * len(buffers) * BUFFER_SPAN
        for i, (start, data, _) in enumerate(buffers):
            for _t, _group, _flags, message in decode_buffer(data, base + i * BUFFER_SPAN + start):
                from_bytes(message)
                n += 1
    return time.perf_counter() - t0, n


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--buffers", type=int, default=256, help="distinct buffers, cycled")
    ap.add_argument("--rounds", type=int, default=20, help="passes over the buffers per run")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each; the best is shown")
    args = ap.parse_args(argv)

    buffers = realistic_buffers(args.buffers)
    shuffled = realistic_buffers(args.buffers, shuffled=True)
    total_bytes = sum(len(d) for _, d, _ in buffers)
    rows = {
        "unpack": lambda: run_unpack(buffers, args.rounds),
        "unpack+sequence+release": lambda: run_sequenced(buffers, args.rounds, 0),
        "unpack+sequence (shuffled)": lambda: run_sequenced(shuffled, args.rounds, 0),
        "unpack+pass-through": lambda: run_sequenced(buffers, args.rounds, DONT_HOLD_FOR_SEQUENCING),
        "decode_buffer+mido": lambda: run_naive(buffers, args.rounds),
    }
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeat):
        for name, fn in rows.items():
            gc.collect()
            dt, n = fn()
            if name not in best or dt < best[name][0]:
                best[name] = (dt, n)

    print(
        f"render path: {args.buffers} buffers x {args.rounds} rounds, {EVENTS_PER_BUFFER} events per buffer "
        f"(~2 % SysEx), {total_bytes / args.buffers:.0f} bytes per buffer; best of {args.repeat}"
    )
    print(f"python {platform.python_version()} on {platform.machine()}")
    print()
    print(f"{'pipeline':<26} {'events':>8} {'seconds':>8} {'events/s':>11} {'ns/event':>9} {'buffers/s':>10}")
    for name, (dt, n) in best.items():
        print(
            f"{name:<26} {n:>8} {dt:>8.3f} {n / dt:>11,.0f} {dt / n * 1e9:>9.0f} "
            f"{n / EVENTS_PER_BUFFER / dt:>10,.0f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
