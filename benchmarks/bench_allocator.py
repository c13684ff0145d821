"""Allocator get+put round trip against constructing a ``mido.Message``.

What a MIDI event costs on each side of the design choice: mxfd takes a
pre-built :class:`~mxfd.KernelEvent` from its stream's allocator, fills it and
gives it back; a mido-based daemon builds a new ``mido.Message`` object (and
lets the garbage collector have it) for every event.

Rows:

* ``get_message+put_message``: an empty round trip.
* ``make_event(3 B)+put``: get, fill a note-on inline, return.
* ``make_event(20 B)+put``: the same with a SysEx that takes a data buffer.
* ``get+set_short+put``: the hot-path fill without an intermediate ``bytes``.
* ``mido.Message(note_on)``: ``mido.Message('note_on', note=60, velocity=64)``.
* ``mido.Message.from_bytes``: building the same message from its 3 bytes.

Run: ``.venv/bin/python benchmarks/bench_allocator.py [--n N] [--repeat R]``.
Timings depend on the machine and its load; the best of R runs is shown.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from typing import Callable, Optional

import mido

from mxfd.core.allocator import Allocator

NOTE_ON = b"\x90\x3c\x40"
SYSEX = b"\xf0\x43\x10\x4c" + bytes(15) + b"\xf7"


def loop_get_put(alloc: Allocator, n: int) -> float:
    get, put = alloc.get_message, alloc.put_message
    t0 = time.perf_counter()
    for _ in range(n):
        put(get())
    return time.perf_counter() - t0


def loop_make_event(alloc: Allocator, n: int, data: bytes) -> float:
    make, put = alloc.make_event, alloc.put_message
    t0 = time.perf_counter()
    for i in range(n):
        put(make(data, i))
    return time.perf_counter() - t0


def loop_set_short(alloc: Allocator, n: int) -> float:
    get, put = alloc.get_message, alloc.put_message
    t0 = time.perf_counter()
    for i in range(n):
        e = get()
        e.set_short(0x90, 60, 64)
        e.pres_time_100ns = i
        put(e)
    return time.perf_counter() - t0


def loop_mido(n: int) -> float:
    message = mido.Message
    t0 = time.perf_counter()
    for _ in range(n):
        message("note_on", note=60, velocity=64)
    return time.perf_counter() - t0


def loop_mido_bytes(n: int) -> float:
    from_bytes = mido.Message.from_bytes
    data = list(NOTE_ON)
    t0 = time.perf_counter()
    for _ in range(n):
        from_bytes(data)
    return time.perf_counter() - t0


def loop_empty(n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        pass
    return time.perf_counter() - t0


def best_of(repeat: int, fn: Callable[[], float]) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        best = min(best, fn())
    return best


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="round trips per run")
    ap.add_argument("--repeat", type=int, default=5, help="runs of each; the best is shown")
    args = ap.parse_args(argv)
    n = args.n

    alloc = Allocator(pool_size=256)
    rows: list[tuple[str, float]] = [
        ("get_message+put_message", best_of(args.repeat, lambda: loop_get_put(alloc, n))),
        ("make_event(3 B)+put", best_of(args.repeat, lambda: loop_make_event(alloc, n, NOTE_ON))),
        ("make_event(20 B)+put", best_of(args.repeat, lambda: loop_make_event(alloc, n, SYSEX))),
        ("get+set_short+put", best_of(args.repeat, lambda: loop_set_short(alloc, n))),
        ("mido.Message(note_on)", best_of(args.repeat, lambda: loop_mido(n))),
        ("mido.Message.from_bytes", best_of(args.repeat, lambda: loop_mido_bytes(n))),
    ]
    assert alloc.is_idle(), alloc.counters()
    empty = best_of(args.repeat, lambda: loop_empty(n))
    mido_ns = dict(rows)["mido.Message(note_on)"] / n * 1e9

    print(f"allocator round trip vs mido.Message: {n} per run, best of {args.repeat}")
    print(f"python {platform.python_version()} on {platform.machine()}; mido {_mido_version()}")
    print(f"(loop overhead {empty / n * 1e9:.0f} ns per iteration, included in every row)")
    print()
    print(f"{'operation':<26} {'ns each':>8} {'per second':>12} {'mido.Message / this':>20}")
    for name, dt in rows:
        ns = dt / n * 1e9
        print(f"{name:<26} {ns:>8.0f} {n / dt:>12,.0f} {mido_ns / ns:>19.1f}x")
    return 0


def _mido_version() -> str:
    try:
        from importlib.metadata import version

        return version("mido")
    except Exception:  # metadata missing: the figure is still meaningful
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
