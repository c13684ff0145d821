"""The synth miniport: pitch, sample-accurate timing, the channel model, SysEx, MXF duties."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from mxfd.core.allocator import Allocator
from mxfd.core.event import PACKAGE_EVENT
from mxfd.core.frames import FILE_64_BYTE_ALIGNMENT, AllocatorFraming, DefaultFrameAllocator
from mxfd.core.mxf import KSState
from mxfd.synth import Synth
from mxfd.synth.bank import note_hz
from mxfd.synth.voices import RELEASE
from tests.core.helpers import Recorder
from tests.synth.helpers import (
    RATE,
    bend,
    cc,
    events_balanced,
    first_sound,
    fundamental,
    make_synth,
    mono,
    note_off,
    note_on,
    notes_of,
    program,
    ref,
    render,
    rms_dbfs,
    send,
    send_sysex_chunks,
)

PIANO = 0


def play_note(synth: Synth, alloc: Allocator, note: int, seconds: float, prog: int = PIANO, ch: int = 0) -> None:
    send(synth, alloc, 0.0, program(ch, prog), note_on(ch, note, 100))
    send(synth, alloc, seconds, note_off(ch, note))


# -- pitch ---------------------------------------------------------------------


def test_a4_sounds_at_440_hz() -> None:
    s, a = make_synth(), Allocator()
    play_note(s, a, 69, 1.0)
    x = mono(render(s, 1.0))[int(0.2 * RATE) :]
    assert fundamental(x, RATE) == pytest.approx(440.0, rel=0.005)


@pytest.mark.parametrize("rate", [44100, 96000])
def test_a4_is_440_hz_at_other_sample_rates(rate: int) -> None:
    s, a = make_synth(rate), Allocator()
    play_note(s, a, 69, 1.0)
    x = mono(render(s, 1.0))[int(0.2 * rate) :]
    assert fundamental(x, rate) == pytest.approx(440.0, rel=0.005)


def test_every_piano_key_sounds_at_its_equal_temperament_frequency() -> None:
    s, a = make_synth(), Allocator()
    step = 0.8
    notes = range(21, 109)
    send(s, a, 0.0, program(0, PIANO))
    for k, note in enumerate(notes):
        send(s, a, k * step, note_on(0, note, 100))
        send(s, a, k * step + 0.55, note_off(0, note))
    x = mono(render(s, len(notes) * step))
    wrong = []
    for k, note in enumerate(notes):
        seg = x[int((k * step + 0.1) * RATE) : int((k * step + 0.55) * RATE)]
        f = fundamental(seg, RATE)
        if abs(f / note_hz(note) - 1.0) > 0.005:
            wrong.append((note, f, note_hz(note)))
    assert wrong == []


def test_pitch_bend_uses_the_rpn0_range() -> None:
    s, a = make_synth(), Allocator()
    # RPN 0 = 12 semitones, then bend fully up: an octave.
    send(s, a, 0.0, program(0, PIANO), cc(0, 101, 0), cc(0, 100, 0), cc(0, 6, 12), cc(0, 38, 0), bend(0, 16383))
    send(s, a, 0.0, note_on(0, 57, 100))
    x = mono(render(s, 0.8))[int(0.2 * RATE) :]
    assert fundamental(x, RATE) == pytest.approx(220.0 * 2 ** (8191 / 8192), rel=0.005)


def test_default_bend_range_is_two_semitones() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, PIANO), bend(0, 0), note_on(0, 69, 100))
    x = mono(render(s, 0.8))[int(0.2 * RATE) :]
    assert fundamental(x, RATE) == pytest.approx(440.0 * 2 ** (-2 / 12), rel=0.005)


def test_coarse_tuning_rpn2_transposes_by_semitones() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, PIANO), cc(0, 101, 0), cc(0, 100, 2), cc(0, 6, 64 + 12), note_on(0, 57, 100))
    x = mono(render(s, 0.8))[int(0.2 * RATE) :]
    assert fundamental(x, RATE) == pytest.approx(440.0, rel=0.005)


def test_modulation_wheel_adds_vibrato() -> None:
    def spread(mod: int) -> float:
        s, a = make_synth(), Allocator()
        send(s, a, 0.0, program(0, 80), cc(0, 1, mod), note_on(0, 69, 100))
        x = mono(render(s, 1.5))
        freqs = [fundamental(x[k : k + 4800], RATE, 300, 600) for k in range(int(0.5 * RATE), len(x) - 4800, 2400)]
        return float(np.ptp(freqs))

    assert spread(0) < 1.0
    assert spread(127) > 15.0  # ±50 cents around 440 Hz is about ±13 Hz


# -- timing --------------------------------------------------------------------


@pytest.mark.parametrize("block", [32, 64, 128, 256, 1024])
def test_onsets_land_on_their_exact_sample_for_any_block_size(block: int) -> None:
    s, a = make_synth(block=block), Allocator()
    times = [0.0101, 0.6003, 1.2000, 1.81234, 2.40007]
    for k, t in enumerate(times):
        ch, key = (9, 37) if k % 2 else (0, 60 + k)
        send(s, a, t, note_on(ch, key, 110))
        send(s, a, t + 0.05, note_off(ch, key))
    x = mono(render(s, 2.6, block))
    for t in times:
        start = round(t * RATE)
        lead = min(start, 2000)
        assert np.all(x[start - lead : start] == 0.0)
        onset = first_sound(x[start - lead : start + 100]) + start - lead
        assert abs(onset - start) <= 1, (t, onset, start)


def test_output_is_exactly_silent_before_the_first_note() -> None:
    s, a = make_synth(effects=True), Allocator()
    send(s, a, 0.5, note_on(0, 60, 127))
    x = mono(render(s, 0.6))
    assert np.all(x[: round(0.5 * RATE)] == 0.0)
    assert rms_dbfs(x[round(0.5 * RATE) :]) > -40


def test_a_late_event_plays_at_the_block_start_and_is_counted() -> None:
    s, a = make_synth(), Allocator()
    render(s, 0.1)
    send(s, a, 0.02, note_on(0, 60, 100))  # 80 ms in the past
    x = mono(render(s, 0.1))
    assert first_sound(x) <= 1
    assert s.stats()["late_events"] == 1


def test_note_off_ends_the_note_within_its_release_time() -> None:
    s, a = make_synth(), Allocator()
    release = s.bank.programs[PIANO].release
    play_note(s, a, 60, 0.5)
    x = mono(render(s, 0.5 + release + 0.2))
    end = round((0.5 + release + 0.003) * RATE)
    assert rms_dbfs(x[round(0.45 * RATE) : round(0.5 * RATE)]) > -40
    assert np.all(x[end:] == 0.0)
    assert s.stats()["voices"] == 0


def test_sustain_pedal_holds_released_notes_until_it_is_lifted() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100), cc(0, 64, 127))
    send(s, a, 0.2, note_off(0, 60))
    send(s, a, 1.2, cc(0, 64, 0))
    x = mono(render(s, 2.0))
    assert rms_dbfs(x[round(1.0 * RATE) : round(1.2 * RATE)]) > -40
    release = s.bank.programs[19].release
    assert np.all(x[round((1.2 + release + 0.003) * RATE) :] == 0.0)


def test_sostenuto_holds_only_the_notes_down_when_it_was_pressed() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100))
    send(s, a, 0.1, cc(0, 66, 127), note_on(0, 64, 100))
    send(s, a, 0.2, note_off(0, 60), note_off(0, 64))
    render(s, 0.8)
    assert [(note, stage < RELEASE) for _, note, stage in notes_of(s)] == [(60, True)]
    send(s, a, 0.8, cc(0, 66, 0))
    render(s, 1.0)
    assert notes_of(s) == []


def test_a_zero_length_note_with_a_short_attack_is_still_heard() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, PIANO), note_on(0, 60, 100), note_off(0, 60))  # on and off at one sample
    x = mono(render(s, 0.5))
    assert rms_dbfs(x) > -50


# -- channel model -----------------------------------------------------------


def level_with(*setup: list[int]) -> float:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), *setup, note_on(0, 60, 100))
    return rms_dbfs(mono(render(s, 0.6))[round(0.3 * RATE) :])


def test_volume_and_expression_follow_the_gm_40_log_curve() -> None:
    full = level_with(cc(0, 7, 127))
    half_vol = level_with(cc(0, 7, 64))
    half_expr = level_with(cc(0, 7, 127), cc(0, 11, 64))
    expected = 40 * np.log10(64 / 127)
    assert half_vol - full == pytest.approx(expected, abs=0.5)
    assert half_expr - full == pytest.approx(expected, abs=0.5)


def test_velocity_changes_loudness() -> None:
    def level(vel: int) -> float:
        s, a = make_synth(), Allocator()
        send(s, a, 0.0, program(0, 48), note_on(0, 60, vel))
        return rms_dbfs(mono(render(s, 0.5))[round(0.2 * RATE) :])

    assert level(127) - level(32) > 12.0


def test_pan_hard_left_silences_the_right_channel() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), cc(0, 10, 0), note_on(0, 60, 100))
    out = render(s, 0.5)
    assert rms_dbfs(out[:, 0]) > -40
    assert np.max(np.abs(out[:, 1])) < 1e-6


def test_program_change_selects_a_different_timbre() -> None:
    def spectrum(prog: int) -> np.ndarray:
        s, a = make_synth(), Allocator()
        send(s, a, 0.0, program(0, prog), note_on(0, 57, 100))
        x = mono(render(s, 0.6))[round(0.3 * RATE) :]
        sp = np.abs(np.fft.rfft(x))
        return sp / sp.max()

    assert np.abs(spectrum(0) - spectrum(71)).max() > 0.3


def test_channel_pressure_adds_vibrato() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 80), [0xD0, 127], note_on(0, 69, 100))
    x = mono(render(s, 1.5))
    freqs = [fundamental(x[k : k + 4800], RATE, 300, 600) for k in range(int(0.5 * RATE), len(x) - 4800, 2400)]
    assert np.ptp(freqs) > 15.0


def test_all_sound_off_silences_within_a_few_milliseconds() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100), note_on(0, 64, 100))
    send(s, a, 0.3, cc(0, 120, 0))
    x = mono(render(s, 0.5))
    assert np.all(x[round(0.32 * RATE) :] == 0.0)


def test_all_notes_off_releases_held_notes_but_respects_the_sustain_pedal() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), program(1, 19), note_on(0, 60, 100), note_on(1, 60, 100), cc(1, 64, 127))
    send(s, a, 0.2, cc(0, 123, 0), cc(1, 123, 0))
    render(s, 1.0)
    assert [ch for ch, _, _ in notes_of(s)] == [1]


def test_reset_all_controllers_recentres_bend_and_lifts_pedals() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), bend(0, 0), cc(0, 64, 127), note_on(0, 69, 100), note_off(0, 69))
    send(s, a, 0.1, cc(0, 121, 0), note_on(0, 69, 100))
    x = mono(render(s, 0.8))[round(0.4 * RATE) :]
    assert fundamental(x, RATE) == pytest.approx(440.0, rel=0.005)
    assert s.channels.sustain[s.channels.slot_of(1) * 16] is False


def test_a_restruck_key_releases_its_previous_note() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100))
    send(s, a, 0.1, note_on(0, 60, 100))
    render(s, 0.2)
    stages = sorted(stage for _, _, stage in notes_of(s))
    assert len(stages) in (1, 2) and stages[0] < RELEASE


def test_channel_groups_are_independent() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100), group=1)
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100), group=7)
    send(s, a, 0.1, cc(0, 120, 0), group=7)
    render(s, 0.3)
    slot1 = s.channels.slot_of(1)
    assert [c for c, _, _ in notes_of(s)] == [slot1 * 16]


def test_channel_group_ids_up_to_65535_get_their_own_state() -> None:
    s, a = make_synth(), Allocator()
    groups = [0, 1, 2, 40000, 65535] + list(range(100, 140))
    for g in groups:
        send(s, a, 0.0, program(3, g % 128), group=g)
    render(s, 0.01)
    for g in groups:
        assert s.channels.program[s.channels.slot_of(g) * 16 + 3] == g % 128


def test_release_channel_group_lets_go_of_notes_and_pedals_of_that_group_only() -> None:
    s, a = make_synth(), Allocator()
    for g in (1, 2):
        send(s, a, 0.0, program(0, 19), cc(0, 64, 127), note_on(0, 60, 100), note_on(0, 67, 100), group=g)
    render(s, 0.1)
    s.release_channel_group(2)
    render(s, 1.0)
    slot1 = s.channels.slot_of(1)
    assert sorted(n for _, n, _ in notes_of(s)) == [60, 67]
    assert all(c == slot1 * 16 for c, _, _ in notes_of(s))
    assert s.channels.sustain[s.channels.slot_of(2) * 16] is False
    assert s.channels.sustain[slot1 * 16] is True
    s.release_channel_group(999)  # never seen: nothing happens


def test_all_sound_off_method_silences_everything() -> None:
    s, a = make_synth(effects=True), Allocator()
    send(s, a, 0.0, program(0, 19), note_on(0, 60, 100), note_on(9, 49, 127))
    render(s, 0.2)
    s.all_sound_off()
    render(s, 0.05)
    assert s.stats()["voices"] == 0 and s.voices.n == 0


# -- drums -----------------------------------------------------------------------


def test_every_gm_drum_key_sounds_on_channel_10() -> None:
    s, a = make_synth(), Allocator()
    silent = []
    for key in range(35, 82):
        t = (key - 35) * 0.25
        send(s, a, t, note_on(9, key, 110))
    x = mono(render(s, 47 * 0.25))
    for key in range(35, 82):
        t = (key - 35) * 0.25
        if rms_dbfs(x[round(t * RATE) : round((t + 0.05) * RATE)]) < -45:
            silent.append(key)
    assert silent == []


def test_drums_ignore_pitch_bend_and_program() -> None:
    def snare(*setup: list[int]) -> np.ndarray:
        s, a = make_synth(), Allocator()
        send(s, a, 0.0, *setup, note_on(9, 38, 100))
        return mono(render(s, 0.3))

    assert np.allclose(snare(), snare(bend(9, 0), program(9, 40)), atol=1e-6)


def test_a_closed_hi_hat_chokes_the_open_one() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, note_on(9, 46, 110))
    send(s, a, 0.1, note_on(9, 42, 110))
    render(s, 0.13)
    assert [n for _, n, _ in notes_of(s)] == [42]


def test_drums_ring_on_after_note_off() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, note_on(9, 49, 110), note_off(9, 49))
    x = mono(render(s, 0.6))
    assert rms_dbfs(x[round(0.4 * RATE) :]) > -50


# -- SysEx ---------------------------------------------------------------------

GM_ON = bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7])
GS_RESET = bytes([0xF0, 0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7F, 0x00, 0x41, 0xF7])
XG_ON = bytes([0xF0, 0x43, 0x10, 0x4C, 0x00, 0x00, 0x7E, 0x00, 0xF7])


@pytest.mark.parametrize("msg", [GM_ON, GS_RESET, XG_ON], ids=["gm", "gs", "xg"])
@pytest.mark.parametrize("device", [0x00, 0x10, 0x7F])
def test_gm_gs_xg_reset_restores_defaults_for_any_device_id(msg: bytes, device: int) -> None:
    s, a = make_synth(), Allocator()
    m = bytearray(msg)
    m[2] = (0x10 | (device & 0x0F)) if msg is XG_ON else device
    send(s, a, 0.0, program(2, 40), cc(2, 7, 20), bend(2, 0), note_on(2, 60, 100))
    send(s, a, 0.1, list(m))
    render(s, 0.2)
    c = s.channels.slot_of(1) * 16 + 2
    assert s.channels.program[c] == 0
    assert s.channels.volume[c] == 100
    assert s.channels.bend[c] == 0.0
    assert s.stats()["resets"] == 1
    assert s.voices.n == 0


def test_a_reset_split_into_incomplete_chunks_is_recognised() -> None:
    s, a = make_synth(), Allocator(buffer_size=16)
    send(s, a, 0.0, program(0, 40))
    send_sysex_chunks(s, a, 0.1, GS_RESET, chunk=3)
    render(s, 0.2)
    assert s.stats()["resets"] == 1
    assert s.channels.program[s.channels.slot_of(1) * 16] == 0
    assert events_balanced(a)


def test_a_long_chunked_sysex_is_ignored_and_counted_once() -> None:
    s, a = make_synth(), Allocator(buffer_size=64)
    data = bytes([0xF0, 0x41]) + bytes(range(0x00, 0x80)) * 500 + bytes([0xF7])
    send_sysex_chunks(s, a, 0.0, data, chunk=64)
    send(s, a, 0.0, note_on(0, 60, 100))
    render(s, 0.1)
    st = s.stats()
    assert st["ignored"]["sysex"] == 1  # type: ignore[index]
    assert s.voices.n == 1
    assert events_balanced(a)


def test_unknown_messages_are_ignored_and_counted_by_kind() -> None:
    s, a = make_synth(), Allocator()
    send(
        s,
        a,
        0.0,
        [0xA0, 60, 10],  # poly pressure
        cc(0, 71, 10),  # sound controller
        [0xF8],  # clock
        [0xF2, 0, 0],  # song position
        [0xF0, 0x7D, 0x01, 0xF7],  # non-commercial SysEx
    )
    render(s, 0.01)
    ign = s.stats()["ignored"]
    assert ign == {  # type: ignore[comparison-overlap]
        "poly_pressure": 1,
        "control_change": 1,
        "sysex": 1,
        "system_common": 1,
        "realtime": 1,
        "drum_key": 0,
        "malformed": 0,
    }


# -- MXF duties --------------------------------------------------------------------


def test_every_event_goes_back_to_its_own_allocator() -> None:
    s = make_synth()
    a1, a2 = Allocator(), Allocator()
    send(s, a1, 0.0, note_on(0, 60, 100), note_off(0, 60))
    send(s, a2, 0.01, note_on(1, 64, 100))
    send(s, a2, 0.5, note_off(1, 64))  # still pending after the first render
    render(s, 0.1)
    assert a1.is_idle() and not a2.is_idle()
    render(s, 0.5)
    assert events_balanced(a1, a2)
    assert s.stats()["events_applied"] == 4


def test_package_events_deliver_their_inner_chain() -> None:
    s, a = make_synth(), Allocator()
    outer = a.get_message()
    outer.flags = PACKAGE_EVENT
    inner = a.make_event(bytes(note_on(0, 60, 100)), 0)
    inner.next_evt = a.make_event(bytes(note_on(0, 64, 100)), 0)
    outer.package_evt = inner
    s.put_message(outer)
    render(s, 0.05)
    assert sorted(n for _, n, _ in notes_of(s)) == [60, 64]
    assert events_balanced(a)


def test_put_message_from_another_thread_while_rendering_loses_nothing() -> None:
    s, a = make_synth(), Allocator(pool_size=4096)
    sent = 2000

    def feeder() -> None:
        for k in range(sent):
            send(s, a, k * 0.0005, note_on(0, 40 + k % 40, 90), note_off(0, 40 + k % 40))

    th = threading.Thread(target=feeder)
    th.start()
    while th.is_alive():
        render(s, 0.01)
    th.join()
    render(s, 1.5)
    assert s.stats()["events_applied"] == 2 * sent
    assert events_balanced(a)


def test_stop_returns_queued_events_and_silences() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, note_on(0, 60, 100))
    send(s, a, 5.0, note_off(0, 60))
    render(s, 0.1)
    s.set_state(KSState.STOP)
    assert events_balanced(a)
    send(s, a, 0.2, note_on(0, 62, 100))  # a stopped synth returns events at once
    assert events_balanced(a)
    x = mono(render(s, 0.1))
    assert np.all(x[round(0.02 * RATE) :] == 0.0)


def test_pause_holds_events_until_run() -> None:
    s, a = make_synth(), Allocator()
    s.set_state(KSState.PAUSE)
    send(s, a, 0.0, note_on(0, 60, 100))
    render(s, 0.1)
    assert s.voices.n == 0
    s.set_state(KSState.RUN)
    render(s, 0.05)
    assert s.voices.n == 1
    assert s.stats()["late_events"] == 1


def test_connect_output_is_accepted_and_ignored_so_the_synth_stays_the_end_of_the_graph() -> None:
    s, a = make_synth(), Allocator()
    downstream = Recorder()
    s.connect_output(downstream)
    send(s, a, 0.0, note_on(0, 60, 100))
    x = mono(render(s, 0.05))
    assert first_sound(x) < 128  # still played, in the first block
    assert downstream.chains == []  # and nothing passed on
    assert events_balanced(a)  # the event went back to its own allocator
    s.disconnect_output(None)
    send(s, a, 0.05, note_on(0, 64, 100))
    render(s, 0.05)
    assert sorted(n for _, n, _ in notes_of(s)) == [60, 64]
    assert downstream.chains == [] and events_balanced(a)


@pytest.mark.parametrize(
    ("rate", "block", "prefetch"),
    [
        (48000, 480, 100_000),  # 10 ms exactly
        (44100, 441, 100_000),  # 10 ms exactly
        (48000, 128, 26_667),  # 2.6667 ms: rounded up, never less than a block
        (48000, 256, 53_334),  # 5.3334 ms
        (44100, 128, 29_025),  # 2.9025 ms (2.90249...)
    ],
)
def test_schedule_prefetch_is_one_block_rounded_up_to_100_ns(rate: int, block: int, prefetch: int) -> None:
    assert make_synth(rate, block=block).schedule_prefetch == prefetch


def test_render_frame_fills_a_ks_frame() -> None:
    s, a = make_synth(), Allocator()
    frames = DefaultFrameAllocator(AllocatorFraming(2, 128 * 8, FILE_64_BYTE_ALIGNMENT))
    send(s, a, 0.0, note_on(0, 60, 127))
    got = [s.render_frame(frames) for _ in range(3)]
    assert got[2] is None and s.frames_refused == 1
    first = got[0]
    assert first is not None
    assert first.ctypes.data % 64 == 0
    assert np.abs(frames.audio_view(first, 2)).max() > 0
    frames.free(first)
    assert s.render_frame(frames) is not None
    assert s.sample_position == 3 * 128


def test_stats_report_the_counters() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, note_on(0, 60, 100))
    render(s, 0.01)
    st = s.stats()
    for key in ("voices", "stolen", "late_events", "ignored", "events_applied", "polyphony"):
        assert key in st
    assert st["voices"] == 1 and st["events_applied"] == 1


def test_events_are_placed_by_the_wave_sink_mapping() -> None:
    s, a = make_synth(), Allocator()
    s.wave_sink.sync_to_master(ref(10.0), 0, start=True)  # sample 0 plays at master time 10 s
    send(s, a, 10.25, note_on(0, 60, 100))
    x = mono(render(s, 0.3))
    assert abs(first_sound(x) - round(0.25 * RATE)) <= 1


def test_an_unstructured_event_may_carry_several_messages_with_running_status() -> None:
    s, a = make_synth(), Allocator()
    send(s, a, 0.0, [0x90, 60, 100, 64, 100, 0xF8, 67, 100, 0xC1, 5])  # three notes, a clock byte, a program
    render(s, 0.05)
    assert sorted(n for _, n, _ in notes_of(s)) == [60, 64, 67]
    assert s.channels.program[s.channels.slot_of(1) * 16 + 1] == 5
    assert s.stats()["ignored"]["realtime"] == 1  # type: ignore[index]


def test_a_sysex_whose_last_chunk_never_comes_does_not_swallow_what_follows() -> None:
    s, a = make_synth(), Allocator(buffer_size=16)
    e = a.make_event(bytes([0xF0, 0x41, 0x10, 0x42]), ref(0.0), 1, flags=1)  # INCOMPLETE, and nothing after
    s.put_message(e)
    send(s, a, 0.01, note_on(0, 60, 100))
    render(s, 0.05)
    assert [n for _, n, _ in notes_of(s)] == [60]
    assert s.stats()["ignored"]["sysex"] == 1  # type: ignore[index]
    assert events_balanced(a)
