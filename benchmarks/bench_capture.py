"""Capture sink + packer throughput against ``mido.Parser`` on the same bytes.

The messages are what a keyboard and a clock source produce together: runs
of notes (note-off as velocity 0), controller sweeps, pitch bend, program
changes, mostly on one channel; MIDI clock ticks (15 % of messages); about
2 % of messages SysEx of 6-48 bytes.  They are encoded two ways:

* ``wire``: as a device sends them, with running status, and a third of the
  clock ticks landing inside the message before them (real time may
  interleave anywhere);
* ``plain``: the same messages, each with its own status byte and clock
  ticks only between messages, which ``mido.Parser`` parses completely (it
  implements neither running status nor real time inside a message, so on
  ``wire`` bytes it drops most notes and controllers and is faster for it).

Each stream arrives in bursts of 1-48 bytes (one chain of raw
``EVENT_INCOMPLETE`` events holding up to 8 bytes inline and one time stamp,
dmusuart's model); ``mido.Parser`` is fed the same bursts as ``bytes``.

* ``sink+packer``: ``CaptureSink.put_message`` of each prepared burst, through
  a connected ``Packer`` into 4 KiB DMUS_EVENTHEADER buffers (the consumer
  only counts them), every event back to the allocator.  Making the raw
  events (the miniport's job) is outside the timed region;
* ``miniport+sink+packer``: the same, with making the raw events timed too;
* ``mido.Parser``: ``Parser.feed`` of each burst, messages taken and dropped.

messages/s counts the messages each one delivers; "x mido" is the ratio of
messages/s and "time" the ratio of times for the same bytes.  The last table
repeats ``sink+packer`` against mido for other burst sizes: every chain costs
the sink and the packer a fixed amount (locks, the clock, the parser state).

Run: ``.venv/bin/python benchmarks/bench_capture.py [--messages N] [--repeat R]``.
Timings depend on the machine and its load; take the best of several runs.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import sys
import time
from typing import Callable, Optional

import mido

from mxfd.core.allocator import Allocator
from mxfd.core.capture import CaptureSink
from mxfd.core.event import EVENT_INCOMPLETE, KernelEvent
from mxfd.core.packer import Packer


def realistic_messages(n_messages: int, seed: int = 1) -> list[tuple[bytes, bool]]:
    """``(message, inside)`` pairs; ``inside`` marks a clock tick that lands inside the message before it."""
    rnd = random.Random(seed)
    out: list[tuple[bytes, bool]] = []
    while len(out) < n_messages:
        x = rnd.random()
        if x < 0.15:
            out.append((b"\xf8", rnd.random() < 0.33))
            continue
        if x < 0.17:
            n = rnd.randint(6, 48)
            out.append((b"\xf0" + bytes(rnd.randrange(128) for _ in range(n - 2)) + b"\xf7", False))
            continue
        channel = 0 if rnd.random() < 0.9 else 1
        if x < 0.67:
            status, run = 0x90 | channel, rnd.randint(1, 4)
        elif x < 0.92:
            status, run = 0xB0 | channel, rnd.randint(1, 8)
        elif x < 0.97:
            status, run = 0xE0 | channel, rnd.randint(1, 8)
        else:
            status, run = 0xC0 | channel, 1
        controller = rnd.choice((1, 7, 10, 11, 64, 74))
        for _ in range(run):
            kind = status & 0xF0
            if kind == 0x90:
                data = (rnd.randrange(36, 96), rnd.choice((0, rnd.randrange(1, 128))))
            elif kind == 0xB0:
                data = (controller, rnd.randrange(128))
            elif kind == 0xE0:
                data = (rnd.randrange(128), rnd.randrange(128))
            else:
                data = (rnd.randrange(128),)
            out.append((bytes((status, *data)), False))
    return out[:n_messages]


def wire_bytes(messages: list[tuple[bytes, bool]]) -> bytes:
    """As a device sends them: running status; some clock ticks inside the message before them."""
    out = bytearray()
    running = 0
    last_len = 0
    for msg, inside in messages:
        if msg == b"\xf8":
            if inside and last_len > 1:
                out.insert(len(out) - 1, 0xF8)  # before the last data byte of the previous message
            else:
                out.append(0xF8)
            continue
        if msg[0] < 0xF0:
            if msg[0] != running:
                out.append(msg[0])
                running = msg[0]
            out += msg[1:]
        else:
            out += msg
            running = 0
        last_len = len(msg)
    return bytes(out)


def plain_bytes(messages: list[tuple[bytes, bool]]) -> bytes:
    """Each message whole with its own status byte, in order."""
    return b"".join(msg for msg, _ in messages)


def bursts(stream: bytes, low: int = 1, high: int = 48, seed: int = 2) -> list[bytes]:
    """Cut the stream into bursts of ``low``-``high`` bytes."""
    rnd = random.Random(seed)
    out = []
    i = 0
    while i < len(stream):
        n = rnd.randint(low, high)
        out.append(stream[i : i + n])
        i += n
    return out


def raw_chain(alloc: Allocator, burst: bytes, t: int) -> KernelEvent:
    """The miniport's part: one chain of raw 8-byte events, one time stamp."""
    n = len(burst)
    head = alloc.get_chain((n + 7) >> 3)
    e: Optional[KernelEvent] = head
    i = 0
    while e is not None:
        k = n - i if n - i < 8 else 8
        e.inline[0:k] = burst[i : i + k]
        e.cb_event = k
        e.flags = EVENT_INCOMPLETE
        e.channel_group = 1
        e.pres_time_100ns = t
        i += k
        e = e.next_evt
    return head


class Counter:
    """The packer's consumer: counts buffers and bytes."""

    def __init__(self) -> None:
        self.buffers = 0
        self.bytes = 0

    def __call__(self, start: int, data: bytes) -> None:
        self.buffers += 1
        self.bytes += len(data)


def run_ours(chunks: list[bytes], include_miniport: bool) -> tuple[float, int]:
    alloc = Allocator(pool_size=1024)
    consumer = Counter()
    packer = Packer(alloc, consumer)
    sink = CaptureSink(alloc)
    sink.connect_output(packer)
    put = sink.put_message
    clock = time.perf_counter
    elapsed = 0.0
    t = 0
    if include_miniport:
        t0 = clock()
        for b in chunks:
            t += 10_000
            put(raw_chain(alloc, b, t))
        elapsed = clock() - t0
    else:
        for b in chunks:
            t += 10_000
            chain = raw_chain(alloc, b, t)
            t0 = clock()
            put(chain)
            elapsed += clock() - t0
    packer.flush()
    assert alloc.is_idle(), alloc.counters()
    assert packer.events == sink.messages - sink.sysex + sink.sysex_chunks
    return elapsed, sink.messages


def run_mido(chunks: list[bytes]) -> tuple[float, int]:
    parser = mido.Parser()
    feed = parser.feed
    pending = parser.messages
    n = 0
    clock = time.perf_counter
    t0 = clock()
    for b in chunks:
        feed(b)
        n += len(pending)
        pending.clear()
    return clock() - t0, n


def race(repeat: int, runs: dict[str, Callable[[], tuple[float, int]]]) -> dict[str, tuple[float, int]]:
    """Best (time, messages) of each run; the runs take turns, so a burst of load hits them all alike."""
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            result = fn()
            if name not in best or result < best[name]:
                best[name] = result
    return best


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000, help="messages in the stream")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each; the best is shown")
    args = ap.parse_args(argv)

    messages = realistic_messages(args.messages)
    streams = {"wire": wire_bytes(messages), "plain": plain_bytes(messages)}
    print(f"{args.messages} messages: wire {len(streams['wire'])} bytes, plain {len(streams['plain'])} bytes")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpus, best of {args.repeat}")
    print()
    print(f"{'stream':<6} {'pipeline':<21} {'messages':>9} {'seconds':>8} {'messages/s':>11} {'x mido':>7} {'time':>6}")
    for name, stream in streams.items():
        chunks = bursts(stream)
        gc.collect()
        rows = race(
            args.repeat,
            {
                "sink+packer": lambda chunks=chunks: run_ours(chunks, False),
                "miniport+sink+packer": lambda chunks=chunks: run_ours(chunks, True),
                "mido.Parser": lambda chunks=chunks: run_mido(chunks),
            },
        )
        mido_dt, mido_n = rows["mido.Parser"]
        for pipeline, (dt, n) in rows.items():
            print(
                f"{name:<6} {pipeline:<21} {n:>9} {dt:>8.3f} {n / dt:>11,.0f} "
                f"{(n / dt) / (mido_n / mido_dt):>6.2f}x {mido_dt / dt:>5.2f}x"
            )
    print()
    print("x mido: messages/s over mido's messages/s; time: mido's time over this row's, same bytes")

    print()
    print(
        f"{'burst bytes':>12} {'msgs/burst':>10}  {'wire: ours':>10} {'mido':>9} {'x mido':>7}  "
        f"{'plain: ours':>11} {'mido':>9} {'x mido':>7}"
    )
    for low, high in ((1, 8), (1, 48), (32, 96), (128, 384), (1024, 4096)):
        cells = []
        per_burst = 0.0
        for stream in streams.values():
            sweep = bursts(stream, low, high)
            pair = race(
                args.repeat,
                {"ours": lambda sweep=sweep: run_ours(sweep, False), "mido": lambda sweep=sweep: run_mido(sweep)},
            )
            (ours_dt, ours_n), (mido_dt, mido_n) = pair["ours"], pair["mido"]
            per_burst = per_burst or ours_n / len(sweep)
            ours, theirs = ours_n / ours_dt, mido_n / mido_dt
            cells.append(f"{ours:>10,.0f} {theirs:>9,.0f} {ours / theirs:>6.2f}x")
        print(f"{f'{low}-{high}':>12} {per_burst:>10.1f}  {cells[0]}  {cells[1]:>29}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
