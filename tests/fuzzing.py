"""The byte mutator the fuzz tests share: files for the MIDI loader, frames for the client socket."""

from __future__ import annotations

import random


def mutate(data: bytes, rng: random.Random, edits: int = 4) -> bytes:
    """``data`` with 1 to ``edits`` random edits: a byte set or bit flipped, bytes inserted or cut, the tail cut."""
    b = bytearray(data)
    for _ in range(rng.randint(1, edits)):
        op = rng.randrange(5)
        at = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(at, len(b) - 1)] = rng.randrange(256)
        elif op == 1 and b:
            b[min(at, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 2:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif op == 3:
            del b[at : at + rng.randint(1, 8)]
        else:
            del b[at:]
    return bytes(b)
