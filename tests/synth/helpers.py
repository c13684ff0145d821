"""Helpers for synth tests: play timed MIDI bytes into the synth miniport (the built-in bank) and render it."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from mxfd.core.allocator import Allocator
from mxfd.core.clock import UNITS_PER_SECOND
from mxfd.core.event import EVENT_INCOMPLETE
from mxfd.synth.builtin_font import builtin_soundfont
from mxfd.synth.engine import SoundFontSynth as Synth

RATE = 48000
Audio = npt.NDArray[np.float32]


def make_synth(rate: int = RATE, *, effects: bool = False, polyphony: int = 256, block: int = 128) -> Synth:
    synth = Synth(
        builtin_soundfont(rate), rate, polyphony=polyphony, block_frames=block, reverb=effects, chorus=effects
    )
    synth.wave_sink.sync_to_master(0, 0, start=True)
    return synth


def ref(seconds: float) -> int:
    """Reference time (100 ns) of ``seconds`` after t = 0."""
    return round(seconds * UNITS_PER_SECOND)


def send(synth: Synth, allocator: Allocator, at: float, *messages: Sequence[int], group: int = 1) -> None:
    """Put ``messages`` (each a list of bytes) at time ``at`` seconds, as one chain."""
    head = None
    tail = None
    for msg in messages:
        e = allocator.make_event(bytes(msg), ref(at), group)
        if head is None:
            head = e
        else:
            assert tail is not None
            tail.next_evt = e
        tail = e
    synth.put_message(head)


def send_sysex_chunks(synth: Synth, allocator: Allocator, at: float, data: bytes, chunk: int, group: int = 1) -> None:
    """Send a SysEx message as a chain of chunk events, INCOMPLETE on all but the last."""
    head = None
    tail = None
    for k in range(0, len(data), chunk):
        piece = data[k : k + chunk]
        last = k + chunk >= len(data)
        e = allocator.make_event(piece, ref(at), group, 0 if last else EVENT_INCOMPLETE)
        if head is None:
            head = e
        else:
            assert tail is not None
            tail.next_evt = e
        tail = e
    synth.put_message(head)


def render(synth: Synth, seconds: float, block: int = 128) -> Audio:
    """Render ``seconds`` of audio in blocks of ``block`` frames."""
    n = round(seconds * synth.sample_rate)
    out = np.zeros((n, 2), dtype=np.float32)
    for k in range(0, n, block):
        synth.render(out[k : k + block])
    return out


def note_on(ch: int, note: int, vel: int = 100) -> list[int]:
    return [0x90 | ch, note, vel]


def note_off(ch: int, note: int) -> list[int]:
    return [0x80 | ch, note, 0]


def cc(ch: int, num: int, value: int) -> list[int]:
    return [0xB0 | ch, num, value]


def program(ch: int, prog: int) -> list[int]:
    return [0xC0 | ch, prog]


def bend(ch: int, value: int) -> list[int]:
    return [0xE0 | ch, value & 0x7F, value >> 7]


def mono(audio: Audio) -> npt.NDArray[np.float64]:
    return np.asarray(audio, dtype=np.float64).sum(axis=1)


def rms_dbfs(x: npt.NDArray[np.float64] | Audio) -> float:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return -np.inf
    r = float(np.sqrt(np.mean(x * x)))
    return 20.0 * np.log10(r) if r > 0 else -np.inf


def peak_dbfs(x: npt.NDArray[np.float64] | Audio) -> float:
    p = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return 20.0 * np.log10(p) if p > 0 else -np.inf


def fundamental(x: npt.NDArray[np.float64], rate: int, lo: float = 15.0, hi: float = 20000.0) -> float:
    """The strongest spectral peak between ``lo`` and ``hi`` Hz, refined by parabolic interpolation."""
    n = len(x)
    size = 1 << (n * 4 - 1).bit_length()
    spec = np.abs(np.fft.rfft(x * np.hanning(n), n=size))
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    band = (freqs >= lo) & (freqs <= hi)
    k = int(np.argmax(np.where(band, spec, 0.0)))
    if 0 < k < len(spec) - 1:
        a, b, c = np.log(spec[k - 1 : k + 2] + 1e-30)
        k_f = k + 0.5 * (a - c) / (a - 2 * b + c)
    else:
        k_f = float(k)
    return float(k_f * rate / size)


def first_sound(x: npt.NDArray[np.float64], threshold: float = 0.0) -> int:
    """Index of the first sample whose magnitude exceeds ``threshold`` (-1 if none)."""
    idx = np.flatnonzero(np.abs(x) > threshold)
    return int(idx[0]) if len(idx) else -1


def events_balanced(*allocators: Allocator) -> bool:
    return all(a.is_idle() for a in allocators)


def steady_jump(x: npt.NDArray[np.float64]) -> float:
    return float(np.max(np.abs(np.diff(x)))) if len(x) > 1 else 0.0


def windows(total: int, size: int) -> Iterable[slice]:
    for k in range(0, total - size + 1, size):
        yield slice(k, k + size)
