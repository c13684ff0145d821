"""The render side: envelopes (FluidSynth's sections and units), key scaling, the sample loop, interpolation."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.synth.engine import layout as L
from mxfd.synth.engine import voice as vc
from mxfd.synth.soundfont.generators import Gen
from tests.synth.engine.helpers import RATE, block, font, run, synth, voices


def _envelope(count: list[float], coeff: list[float], incr: list[float], lo: list[float], hi: list[float]):  # type: ignore[no-untyped-def]
    s = synth()
    env = s.arrays()["env"]
    for k in range(L.N_SECTIONS):
        env[0, L.VOL_ENV, k] = (count[k], coeff[k], incr[k], lo[k], hi[k])
    vi, vf = s.arrays()["vi"], s.arrays()["vf"]
    vi[L.VOL_SECTION, 0] = L.DELAY
    vi[L.VOL_COUNT, 0] = 0
    vf[L.VOL_VAL, 0] = 0.0
    return s, vi, vf


def test_the_volume_envelope_walks_delay_attack_hold_decay_sustain_in_control_periods() -> None:
    huge = 4294967295.0
    s, vi, vf = _envelope(
        [2, 4, 2, 4, huge, 3, huge],
        [0, 1, 1, 1, 1, 1, 0],
        [0, 0.25, 0, -0.25, 0, -1 / 3, 0],
        [-1, -1, -1, 0.5, -1, 0, -1],
        [1, 1, 2, 2, 2, 1, 1],
    )
    seen = []
    for _ in range(14):
        vc._env_step(0, s.engine_state, L.VOL_ENV, L.VOL_SECTION, L.VOL_COUNT, L.VOL_VAL)
        seen.append((int(vi[L.VOL_SECTION, 0]), round(float(vf[L.VOL_VAL, 0]), 6)))
    assert seen[:2] == [(L.DELAY, 0.0), (L.DELAY, 0.0)]  # delay: two periods at zero
    assert [v for _, v in seen[2:6]] == [0.25, 0.5, 0.75, 1.0]  # attack: linear to 1
    assert [v for _, v in seen[6:9]] == [1.0, 1.0, 0.75]  # hold two periods, then decay
    assert seen[9] == (L.DECAY, 0.5)
    assert seen[10] == (L.SUSTAIN, 0.5)  # the decay stops at the sustain level
    assert seen[13] == (L.SUSTAIN, 0.5)


def test_a_release_from_the_attack_keeps_the_amplitude_continuous() -> None:
    s = synth()
    block(s, 128, [(0, bytes((0x90, 60, 100)))])
    v = voices(s)[0]
    vi, vf = s.arrays()["vi"], s.arrays()["vf"]
    vi[L.VOL_SECTION, v] = L.ATTACK
    vf[L.VOL_VAL, v] = 0.1
    vc.release(v, s.engine_state)
    # In release the amplitude is cB-to-gain(960 x (1 - value)): the same 0.1 as in the attack.
    gain = 10.0 ** (-960.0 * (1.0 - vf[L.VOL_VAL, v]) / 200.0)
    assert gain == pytest.approx(0.1, rel=1e-6)
    assert vi[L.VOL_SECTION, v] == L.RELEASE


@pytest.mark.parametrize(("key", "periods"), [(60, 750.0), (72, 375.0), (48, 1500.0)])
def test_hold_and_decay_times_scale_with_the_key(key: int, periods: float) -> None:
    # 0 timecents (1 s) with 100 timecents per key: an octave up halves the time, an octave down doubles it.
    assert vc._hold_decay_periods(0.0, 100.0, key, False, RATE) == periods
    assert vc._hold_decay_periods(0.0, 100.0, key, True, RATE) == periods


def test_the_most_negative_hold_is_no_hold_at_all() -> None:
    assert vc._hold_decay_periods(-32768.0, 0.0, 60, False, RATE) == 0.0


def _note(program: int, key: int, seconds: float, release_at: float | None = None) -> np.ndarray:
    s = synth()
    events = [(0, bytes((0xC0, program))), (0, bytes((0x90, key, 100)))]
    if release_at is not None:
        events.append((round(release_at * RATE), bytes((0x80, key, 0))))
    return run(s, seconds, events).astype(np.float64)


def _glitch_ratio(x: np.ndarray) -> float:
    """The largest second difference against the typical large one: a click stands far out."""
    d2 = np.abs(np.diff(x, 2))
    return float(d2.max() / np.percentile(d2, 99.0))


@pytest.mark.parametrize(("program", "key"), [(11, 60), (16, 48), (19, 72), (52, 60), (81, 84)])
def test_a_note_held_four_seconds_over_a_looped_sample_has_no_discontinuity(program: int, key: int) -> None:
    zones = font().voice_zones(0, program, key, 100)
    assert zones and all(z.sample_mode == 1 for z in zones), "the test needs a looped preset"
    x = _note(program, key, 4.2)
    held = x[0, round(0.2 * RATE) : round(4.2 * RATE)]
    assert np.abs(held).max() > 1e-3
    assert _glitch_ratio(held) < 4.0


def test_a_note_far_above_its_root_is_not_aliased() -> None:
    # The flute's top zone played two octaves above its root: interpolation images stay far below the tone.
    s = synth()
    x = run(s, 1.0, [(0, bytes((0xC0, 73))), (0, bytes((0x90, 108, 100)))]).astype(np.float64)[0]
    seg = x[round(0.3 * RATE) : round(0.8 * RATE)]
    spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
    freqs = np.fft.rfftfreq(len(seg), 1 / RATE)
    f0 = 440.0 * 2 ** ((108 - 69) / 12)
    partials = np.zeros_like(freqs, dtype=bool)
    for h in range(1, int(20000 / f0) + 1):
        partials |= np.abs(freqs - h * f0) < 0.03 * h * f0  # room for the vibrato
    tone = spec[partials].max()
    rest = spec[~partials & (freqs > 100.0)].max()
    assert 20 * np.log10(rest / tone) < -40.0


def test_a_stereo_pair_sounds_on_both_sides_in_step() -> None:
    # TimGM6mb's piano zones are a left/right pair panned apart; both start on the same sample.
    zones = font().voice_zones(0, 0, 60, 100)
    pans = sorted(z.generator(Gen.PAN) for z in zones)
    x = _note(0, 60, 0.3)
    if len(zones) >= 2 and pans[0] < 0 < pans[-1]:
        assert np.flatnonzero(x[0])[0] == np.flatnonzero(x[1])[0] == 0
    assert np.abs(x[0]).max() > 0 and np.abs(x[1]).max() > 0


def test_a_released_note_dies_away_and_frees_its_voice() -> None:
    s = synth()
    run(s, 3.0, [(0, bytes((0x90, 60, 100))), (round(0.5 * RATE), bytes((0x80, 60, 0)))])
    assert voices(s) == []
    assert s.arrays()["counters"][L.K_HIGH_WATER] == 0
