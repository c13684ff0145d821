"""Shared helpers for the engine tests: fonts, a synth, and driving the compiled engine block by block."""

from __future__ import annotations

import functools
import os

import numpy as np
import numpy.typing as npt

from mxfd.synth.engine import SoundFontSynth
from mxfd.synth.engine import layout as L
from mxfd.synth.engine.block import render_block
from mxfd.synth.soundfont import SoundFont, load_soundfont

TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
RATE = 48000


@functools.cache
def font(path: str = TIMGM) -> SoundFont:
    assert os.path.isfile(path), f"{path} is missing: install timgm6mb-soundfont and fluid-soundfont-gm"
    return load_soundfont(path)


def synth(path: str = TIMGM, *, block: int = 128, polyphony: int = 64) -> SoundFontSynth:
    return SoundFontSynth(font(path), RATE, polyphony=polyphony, block_frames=block, reverb=False, chorus=False)


def block(s: SoundFontSynth, n: int, events: list[tuple[int, bytes]] = ()) -> npt.NDArray[np.float32]:  # type: ignore[assignment]
    """Render ``n`` frames (at most the synth's chunk) with ``events`` (offset, message) on group slot 0."""
    a = s.arrays()
    for row, (offset, data) in enumerate(events):
        a["ev_offset"][row] = offset
        a["ev_base"][row] = 0
        a["ev_length"][row] = len(data)
        a["ev_data"][row, : len(data)] = np.frombuffer(data, np.uint8)
    render_block(s.engine_state, len(events), n)
    return a["out"][:2, :n].copy()


def run(
    s: SoundFontSynth, seconds: float, events: list[tuple[int, bytes]] = (), n: int = 128  # type: ignore[assignment]
) -> npt.NDArray[np.float32]:
    """Render ``seconds`` in blocks of ``n``; ``events`` are (absolute sample, message)."""
    total = round(seconds * RATE)
    out = []
    pos = 0
    pending = sorted(events, key=lambda e: e[0])
    while pos < total:
        m = min(n, total - pos)
        due = [(t - pos, d) for t, d in pending if pos <= t < pos + m]
        out.append(block(s, m, due))
        pos += m
    return np.concatenate(out, axis=1)


def voices(s: SoundFontSynth) -> list[int]:
    """The voice slots in use."""
    vi = s.arrays()["vi"]
    return [v for v in range(vi.shape[1]) if vi[L.STATUS, v] == L.PLAYING]
