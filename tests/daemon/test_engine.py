"""The engine's wiring, driven by hand: capture streams, thru, client streams, recorders, history.

No devices: the test plays the audio pin's part, calling ``engine.render``
with frames and ``engine.on_sync`` with the clock, so every time is exact.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import threading
import tracemalloc
from typing import Any

import numpy as np
import pytest

from mxfd.core.allocator import AllocatorExhausted
from mxfd.core.clock import UNITS_PER_SECOND, master_time
from mxfd.core.event import EVENT_COMPLETE
from mxfd.core.wire import BadBufferError, decode_buffer, encode_buffer
from mxfd.daemon.config import Config, loads
from mxfd.daemon.engine import Engine
from mxfd.daemon.streams import CaptureStream
from mxfd.daemon.timeline import thru_latency_frames
from mxfd.synth.engine import layout as L

RATE = 48000
PERIOD = 128
T0 = 10 * UNITS_PER_SECOND


def builtin(config: Config | None = None) -> Config:
    """``config`` on the built-in bank (these tests are written against its sounds), unless it names a font."""
    config = config or Config()
    if config.synth.soundfont:
        return config
    return dataclasses.replace(config, synth=dataclasses.replace(config.synth, soundfont=("builtin",)))


def frames_to_100ns(frames: int) -> int:
    return frames * UNITS_PER_SECOND // RATE


class Rig:
    """An engine and the audio pin's side of it: a sample clock and a recording."""

    def __init__(self, config: Config | None = None) -> None:
        self.engine = Engine(builtin(config))
        self.t0 = master_time()  # the master time of sample 0: now, so "the last seconds" are these
        self.engine.on_sync(self.t0, 0)
        self.position = 0
        self.out = np.zeros((PERIOD, 2), dtype=np.float32)
        self.heard: list[np.ndarray] = []

    def time_of(self, frame: int) -> int:
        return self.t0 + frames_to_100ns(frame)

    def play(self, stream: Any, message: bytes, frame: int) -> None:
        stream.capture(message, 0, len(message), self.time_of(frame), EVENT_COMPLETE)
        stream.flush()

    def render(self, frames: int) -> np.ndarray:
        chunk = []
        for _ in range(frames // PERIOD):
            self.engine.render(self.out, self.position)
            self.position += PERIOD
            chunk.append(self.out[:, 0].copy())
        audio = np.concatenate(chunk)
        self.heard.append(audio)
        return audio

    def recording(self) -> np.ndarray:
        return np.concatenate(self.heard)


def onset(x: np.ndarray, level: float = 1e-6) -> int:
    hit = np.flatnonzero(np.abs(x) > level)
    assert hit.size, "silence"
    return int(hit[0])


def thru_onset(frame: int, frame_accurate: bool = False) -> tuple[int, Engine]:
    """Where a note captured at ``frame`` starts sounding (a fresh engine per note)."""
    rig = Rig()
    kbd = rig.engine.open_capture("kbd:out")
    assert isinstance(kbd, CaptureStream)
    kbd.frame_accurate = frame_accurate
    rig.play(kbd, bytes([0xC0, 80]), frame - 1)  # a square lead: an instant attack
    rig.play(kbd, bytes([0x90, 60, 110]), frame)
    return onset(rig.render(frame + 2048)), rig.engine


def test_thru_sounds_each_event_exactly_the_latency_after_it_arrived() -> None:
    latency = thru_latency_frames(Config())
    assert latency == 3 * PERIOD
    delays = []
    for frame in (1000, 7013, 13077, 13184):  # every position against the block edges
        at, engine = thru_onset(frame)
        assert engine.render_latency_frames == latency
        delays.append(at - frame)
    assert 0 <= delays[0] - latency <= 2
    assert len(set(delays)) == 1, delays  # the same to the sample, wherever the event fell


def test_frame_accurate_input_plays_a_period_sooner_than_input_stamped_on_arrival() -> None:
    late, e = thru_onset(1000)
    soon, e2 = thru_onset(1000, frame_accurate=True)
    assert e.render_latency_frames - e.frame_latency_frames == PERIOD
    assert late - soon == PERIOD


def test_the_device_latency_is_added_to_both_latencies() -> None:
    e = Engine(builtin())
    e.timeline.set_latency(256)
    assert e.frame_latency_frames == 2 * PERIOD + 256
    assert e.render_latency_frames == 3 * PERIOD + 256
    assert e.render_latency_100ns == frames_to_100ns(3 * PERIOD + 256)


class ReportingOutput:
    """An audio output's side of the clock reports: the ports and device latency it says it has."""

    def __init__(self) -> None:
        self.latency_frames = 0
        self.ports: list[str] = []

    def status(self) -> dict[str, Any]:
        return {"ports": list(self.ports), "device_latency_s": self.latency_frames / RATE}

    def played_ring(self) -> None:
        return None


def test_the_device_latency_is_followed_after_a_start_until_the_output_settles() -> None:
    e = Engine(builtin())
    out = ReportingOutput()
    e.audio = out  # type: ignore[assignment]
    t = T0
    e.on_sync(t, 0)  # a stream reopened on JACK: its port is not connected yet, so no latency of its own
    assert e.frame_latency_frames == 2 * PERIOD
    out.ports, out.latency_frames = ["mxfd-out:out_0"], 128
    e.on_sync(t := t + frames_to_100ns(1024), 1024)
    assert e.frame_latency_frames == 2 * PERIOD + 128
    out.latency_frames = 127  # a frame short in one report: thru keeps the most it measured
    e.on_sync(t := t + frames_to_100ns(1024), 2048)
    assert e.frame_latency_frames == 2 * PERIOD + 128
    e.on_audio_state("running", "a new device")
    out.latency_frames = 64
    e.on_sync(t + frames_to_100ns(1024), 0)
    assert e.frame_latency_frames == 2 * PERIOD + 64


def test_a_fixed_latency_from_the_config_wins() -> None:
    e = Engine(builtin(loads("[thru]\nlatency_ms = 20")))
    assert e.render_latency_frames == e.frame_latency_frames == 960


def organ_note(rig: Rig, stream: Any, note: int, frame: int) -> None:
    rig.play(stream, bytes([0xC0, 19]), frame - 1)  # church organ: sounds while held
    rig.play(stream, bytes([0x90, note, 100]), frame)


def test_a_vanished_source_releases_only_the_notes_it_left_held() -> None:
    rig = Rig()
    e = rig.engine
    a = e.open_capture("a:out")
    b = e.open_capture("b:out")
    assert isinstance(a, CaptureStream) and isinstance(b, CaptureStream)
    assert a.channel_group != b.channel_group
    organ_note(rig, a, 60, 100)
    organ_note(rig, b, 67, 100)
    a.capture(bytes([0xB0, 64, 127]), 0, 3, rig.time_of(120), EVENT_COMPLETE)  # a's sustain pedal down
    a.flush()
    rig.render(9600)
    assert e.synth.stats()["notes_sounding"] == 2
    e.close_capture(a)  # unplugged: a's note-off and pedal-up never come
    rig.render(48000 * 3)
    assert e.synth.stats()["notes_sounding"] == 1
    tail = rig.recording()[-48000:]
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))

    def level(hz: float) -> float:
        k = round(hz * len(tail) / RATE)
        return float(spectrum[k - 2 : k + 3].max())

    # b's G (392 Hz, and the organ's 196 Hz stop) still sounds; a's C (261.6, 130.8 Hz) is gone.
    g = max(level(392.0), level(196.0))
    assert max(level(261.63), level(130.81)) < 0.01 * g


def panic_while_rendering(rig: Rig) -> dict[str, Any]:
    """``engine.panic()`` from another thread, as the socket server calls it, while the pin renders."""
    result: dict[str, Any] = {}
    t = threading.Thread(target=lambda: result.update(rig.engine.panic(timeout=5.0)))
    t.start()
    while t.is_alive():
        rig.render(PERIOD)
        t.join(0.001)
    return result


def test_panic_silences_every_channel_group_and_resets_controllers_but_not_programs() -> None:
    rig = Rig()
    e = rig.engine
    a = e.open_capture("a:out")
    b = e.open_capture("b:out")
    client = e.open_playback_stream("client-1")
    assert isinstance(a, CaptureStream) and isinstance(b, CaptureStream)
    organ_note(rig, a, 60, 100)
    organ_note(rig, b, 67, 100)
    rig.play(a, bytes([0xE0, 0, 0x7F]), 110)  # a's bend up: its return to the centre is lost
    rig.play(b, bytes([0xB0, 64, 127]), 110)  # b's sustain pedal down: its pedal-up is lost
    t = rig.time_of(200)
    start, data = encode_buffer([(t - 10, 3, bytes([0xC3, 19])), (t, 3, bytes([0x93, 72, 100]))])
    client.submit(data, start)
    rig.render(9600)
    assert e.synth.stats()["notes_sounding"] == 3
    voices = e.synth.stats()["voices"]  # a note of the built-in bank's organ sounds on two layers
    assert panic_while_rendering(rig) == {"applied": True, "voices": voices}
    rig.render(PERIOD * 4)  # a few ms: sound off is a fast fade, not a release
    assert e.synth.stats()["voices"] == 0
    assert e.status()["panics"] == 1
    ci, slots = e.synth.arrays()["ci"], e.synth.group_slots
    for group in (a.channel_group, b.channel_group, client.channel_group):
        first = slots[group] * 16
        assert ci[L.C_BEND, first] == 8192 and not ci[L.C_SUSTAIN, first]
    # Programs stay: the sources play on as they were set up, the organ again.
    assert ci[L.C_PROGRAM, slots[a.channel_group] * 16] == 19
    rig.play(a, bytes([0x90, 60, 100]), rig.position + 200)
    rig.render(9600)
    assert e.synth.stats()["notes_sounding"] == 1


def test_a_panic_the_render_thread_does_not_get_to_says_so_and_is_applied_later() -> None:
    rig = Rig()
    a = rig.engine.open_capture("a:out")
    organ_note(rig, a, 60, 100)
    rig.render(9600)
    assert rig.engine.panic(timeout=0.01) == {"applied": False, "voices": None}
    rig.render(PERIOD * 4)
    assert rig.engine.synth.stats()["voices"] == 0


def test_panics_asked_again_and_again_are_counted_and_logged_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    with caplog.at_level(logging.INFO, logger="mxfd.daemon.engine"):
        for _ in range(20):
            rig.engine.panic(timeout=0.0)
    assert rig.engine.status()["panics"] == 20
    assert [r.getMessage().startswith("panic: ") for r in caplog.records].count(True) == 1
    rig.engine._panic_logged_at -= 1.0  # a second later
    with caplog.at_level(logging.INFO, logger="mxfd.daemon.engine"):
        rig.engine.panic(timeout=0.0)
    assert caplog.records[-1].getMessage().endswith("; 19 more panic(s) since the last line")


def test_a_panic_after_the_synth_was_replaced_with_requests_pending_is_still_answered() -> None:
    rig = Rig()
    e = rig.engine
    e._request("all_sound_off")  # asked of the old synth, never applied to it
    e._replace_synth()  # a reload with a new rate, period or polyphony
    assert panic_while_rendering(rig)["applied"] is True


def test_a_source_closed_with_a_note_still_in_flight_leaves_nothing_sounding() -> None:
    rig = Rig()
    e = rig.engine
    a = e.open_capture("a:out")
    organ_note(rig, a, 60, 100)
    e.close_capture(a)  # before the note's thru time came: it is dropped or released
    rig.render(48000 * 3)
    assert e.synth.stats()["voices"] == 0


def test_a_released_channel_group_is_not_handed_out_again_at_once() -> None:
    e = Rig().engine
    a = e.open_capture("a:out")
    assert isinstance(a, CaptureStream)
    e.close_capture(a)
    b = e.open_capture("b:out")
    assert isinstance(b, CaptureStream)
    assert b.channel_group != a.channel_group


def test_a_client_stream_uses_its_own_channel_group_and_releases_its_notes_on_close() -> None:
    rig = Rig()
    e = rig.engine
    s = e.open_playback_stream("client-1")
    t = rig.time_of(2000)
    start, data = encode_buffer([(t - 10, 7, bytes([0xC7, 19])), (t, 7, bytes([0x97, 62, 100]))])
    assert s.submit(data, start) == 2
    assert s.pending() == 2
    rig.render(9600)
    assert s.pending() == 0
    assert e.synth.stats()["notes_sounding"] == 1
    assert s.channel_group in e.synth.group_slots
    assert 7 not in e.synth.group_slots
    s.close()
    rig.render(48000 * 3)
    assert e.synth.stats()["voices"] == 0
    assert s.allocator.in_use == 0


def test_a_bad_client_buffer_is_refused_whole() -> None:
    e = Rig().engine
    s = e.open_playback_stream("client-2")
    start, data = encode_buffer([(T0, 1, bytes([0x90, 60, 100])), (T0, 1, bytes([0x80, 60, 0]))])
    broken = data[:-8] + b"\xff" * 8
    with pytest.raises(BadBufferError):
        s.submit(data[:30], start)
    with pytest.raises(BadBufferError):
        s.submit(broken + b"\x00" * 3, start)
    assert s.pending() == 0 and s.allocator.in_use == 0


def test_a_full_client_stream_pushes_back_until_the_render_frees_events() -> None:
    rig = Rig()
    s = rig.engine.open_playback_stream("client-3")
    records = [(rig.time_of(100 + i), 1, bytes([0xB0, 1, i % 128])) for i in range(512)]
    start, data = encode_buffer(records)
    submitted = 0
    with pytest.raises(AllocatorExhausted):
        while True:
            s.submit(data, start)
            submitted += 1
    assert submitted > 0
    pending = s.pending()
    assert not s.wait_for_space(0.02)
    rig.render(4096)  # everything is due: the synth takes it and gives the events back
    assert s.pending() < pending
    assert s.wait_for_space(0.5)
    s.close()


def test_recorders_get_every_capture_buffer_of_the_sources_they_asked_for() -> None:
    rig = Rig()
    e = rig.engine
    got_all: list[tuple[str, int, bytes]] = []
    got_kbd: list[str] = []
    e.subscribe_capture(lambda n, t, d: got_all.append((n, t, d)))
    sub = e.subscribe_capture(lambda n, t, d: got_kbd.append(n), pattern="^kbd")
    kbd = e.open_capture("kbd:out")
    pads = e.open_capture("pads:out")
    rig.play(kbd, bytes([0x90, 60, 100]), 10)
    rig.play(pads, bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7]), 20)
    rig.play(kbd, bytes([0xF8]), 30)
    assert [n for n, _t, _d in got_all] == ["kbd:out", "pads:out", "kbd:out"]
    assert got_kbd == ["kbd:out", "kbd:out"]
    _name, t, data = got_all[1]
    gm_on = bytes([0xF0, 0x7E, 0x7F, 0x09, 0x01, 0xF7])
    assert decode_buffer(data, t) == [(rig.time_of(20), pads.channel_group, 0, gm_on)]
    sub.close()
    rig.play(kbd, bytes([0x80, 60, 0]), 40)
    assert got_kbd == ["kbd:out", "kbd:out"]


def test_a_failing_recorder_is_counted_and_does_not_stop_capture() -> None:
    rig = Rig()
    e = rig.engine

    def broken(n: str, t: int, d: bytes) -> None:
        raise RuntimeError("recorder bug")

    e.subscribe_capture(broken)
    kbd = e.open_capture("kbd:out")
    rig.play(kbd, bytes([0x90, 60, 100]), 10)
    rig.play(kbd, bytes([0x80, 60, 0]), 20)
    assert e.dropped["subscriber_error"] == 2
    assert len(e.history(10)) == 2


def test_input_thru_cannot_play_reaches_recorders_once_and_later_input_goes_on() -> None:
    # A data byte with bit 7 set (a misbehaving device): the thru stream refuses the buffer.  The packer
    # would offer a buffer whose consumer raised again, and the recorders would get it twice.
    rig = Rig()
    e = rig.engine
    got: list[bytes] = []
    e.subscribe_capture(lambda n, t, d: got.extend(m for _t, _g, _f, m in decode_buffer(d, t)))
    kbd = e.open_capture("kbd:out")
    assert isinstance(kbd, CaptureStream) and kbd.thru is not None
    played = [bytes([0x90, 0x80, 0x10]), bytes([0x90, 60, 100]), bytes([0x80, 60, 0])]
    for i, msg in enumerate(played):
        rig.play(kbd, msg, 10 * (i + 1))
    assert got == played
    assert [m for _n, t, d in e.history(10) for _t, _g, _f, m in decode_buffer(d, t)] == played
    assert e.dropped["thru_malformed"] == 1 and kbd.thru.dropped == 1
    assert kbd.packer.counters()["consumer_errors"] == 0


def test_history_returns_the_last_seconds_of_input_in_time_order() -> None:
    rig = Rig(loads("[record]\nhistory_seconds = 2"))
    e = rig.engine
    a = e.open_capture("a:out")
    b = e.open_capture("b:out")
    rig.play(a, bytes([0x90, 60, 100]), 0)
    rig.play(b, bytes([0x90, 62, 100]), 48000 * 1)
    rig.play(a, bytes([0x90, 64, 100]), 48000 * 3)  # the first is now older than the ring's 2 s
    items = e.router.ring.since(10, rig.time_of(48000 * 3))
    assert [n for n, _t, _d in items] == ["b:out", "a:out"]
    assert items[0][1] < items[1][1]
    assert e.router.ring.since(0.5, rig.time_of(48000 * 3)) == items[1:]


def test_thru_can_be_turned_off_per_source_and_recorders_still_hear_it() -> None:
    rig = Rig(loads('[[midi.sources]]\nmatch = "^quiet"\nthru = false\n'))
    e = rig.engine
    got: list[str] = []
    e.subscribe_capture(lambda n, t, d: got.append(n))
    quiet = e.open_capture("quiet:out")
    loud = e.open_capture("loud:out")
    assert isinstance(quiet, CaptureStream) and isinstance(loud, CaptureStream)
    assert quiet.thru is None and loud.thru is not None
    organ_note(rig, quiet, 60, 100)
    rig.render(4800)
    assert e.synth.stats()["voices"] == 0
    assert got.count("quiet:out") == 2
    assert {i["name"]: i["thru"] for i in e.inputs()} == {"quiet:out": False, "loud:out": True}


def test_a_reload_turns_thru_on_and_off_for_open_sources() -> None:
    e = Rig().engine
    kbd = e.open_capture("kbd:out")
    assert isinstance(kbd, CaptureStream) and kbd.thru is not None
    e.reload(builtin(loads("[midi]\nthru = false")))
    assert kbd.thru is None
    e.reload(builtin())
    assert kbd.thru is not None


@pytest.mark.parametrize("jitter_us", [-30, 0, 30])
def test_an_output_clock_step_of_one_period_re_anchors_the_mapping_at_once(jitter_us: int) -> None:
    # An xrun (the server skipped a cycle) or an underrun moves the device clock by one period,
    # measured give or take some jitter: slewing 1/100 per sync would leave notes drifting for seconds.
    rig = Rig()
    ws = rig.engine.synth.wave_sink
    pos = 64 * PERIOD
    stepped = rig.time_of(pos) + frames_to_100ns(PERIOD) + jitter_us * 10
    rig.engine.on_sync(stepped, pos)
    assert abs(ws.sample_to_ref(pos) - stepped) <= 1


def test_output_clock_jitter_is_slewed_not_re_anchored() -> None:
    rig = Rig()
    ws = rig.engine.synth.wave_sink
    resyncs = ws.resyncs
    pos = 64 * PERIOD
    rig.engine.on_sync(rig.time_of(pos) + 1_000, pos)  # 100 µs late: jitter or drift
    assert ws.resyncs == resyncs
    assert abs(ws.sample_to_ref(pos) - rig.time_of(pos)) <= 20


def test_a_report_that_says_the_schedule_moved_re_anchors_even_a_small_step() -> None:
    # The pin knows the frames moved against the clock (an xrun): under half a period, slewing would
    # carry the move for seconds.
    rig = Rig()
    ws = rig.engine.synth.wave_sink
    resyncs = ws.resyncs
    pos = 64 * PERIOD
    moved = rig.time_of(pos) + 4_000  # 0.4 ms later
    rig.engine.on_sync(moved, pos, True)
    assert ws.resyncs == resyncs + 1
    assert abs(ws.sample_to_ref(pos) - moved) <= 1


def test_status_is_json_and_counts_inputs_even_after_they_are_gone() -> None:
    rig = Rig()
    e = rig.engine
    kbd = e.open_capture("kbd:out")
    rig.play(kbd, bytes([0x90, 60, 100]), 10)
    e.close_capture(kbd)
    e.register_status("extra", lambda: {"answer": 42})
    status = json.loads(json.dumps(e.status()))
    assert status["state"] == "degraded"  # no audio device in this test
    assert status["inputs"] == [
        {"name": "kbd:out", "connected": False, "events": 1, "dropped": 0, "channel_group": None, "thru": True,
         "connects": 1}
    ]  # fmt: skip
    assert status["extra"] == {"answer": 42}
    assert status["thru_latency_ms"] == {"frame_accurate": 5.333, "on_arrival": 8.0, "through_pin": None}
    for key in ("audio", "synth", "events", "render_streams", "capture_streams", "render_latency_100ns"):
        assert key in status


def test_capture_and_thru_allocate_nothing_in_steady_state() -> None:
    rig = Rig(loads("[record]\nhistory_seconds = 0"))
    e = rig.engine
    kbd = e.open_capture("kbd:out")
    note_on, note_off = bytearray([0x90, 60, 100]), bytearray([0x80, 60, 0])

    def cycle(n: int) -> None:
        for _ in range(n):
            t = rig.time_of(rig.position)
            kbd.capture(note_on, 0, 3, t, EVENT_COMPLETE)
            kbd.flush()
            kbd.capture(note_off, 0, 3, t + 100, EVENT_COMPLETE)
            kbd.flush()
            e.render(rig.out, rig.position)
            rig.position += PERIOD

    cycle(4000)  # the synth's first blocks fill caches once (numba's dispatch, the clock's filters)
    # What is held at the moment of a snapshot (the latest clock reading, objects numba's dispatch
    # keeps for a while: 7 to 30 KiB, whatever the number of cycles between snapshots) is not churn.
    # Churn grows with the events in every window; so the quietest of three windows is judged.
    windows: list[tuple[int, list[str]]] = []
    tracemalloc.start()
    for _ in range(3):
        gc.collect()
        before = tracemalloc.take_snapshot()
        cycle(4000)  # 8000 events: one object kept per event would be 256 KB
        gc.collect()
        after = tracemalloc.take_snapshot()
        grown = [
            s
            for s in after.compare_to(before, "lineno")
            if "/mxfd/" in s.traceback[0].filename and s.size_diff > 0
        ]
        windows.append((sum(s.size_diff for s in grown), [str(s) for s in grown]))
    tracemalloc.stop()
    assert min(windows)[0] < 32768, windows


def test_status_names_the_bank_in_use() -> None:
    # mxfd status shows which bank sounds; the built-in one until a SoundFont is loaded
    assert Rig().engine.status()["bank"] == "built-in GM"


TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


def on_font(path: str, extra: str = "") -> Config:
    return loads(f'[synth]\nsoundfont = "{path}"\nreverb = false\nchorus = false\n{extra}')


def test_status_names_the_soundfont_in_use_by_its_path_and_its_own_name() -> None:
    from mxfd.client.commands import format_status

    st = Rig(on_font(TIMGM)).engine.status()
    assert st["bank"] == TIMGM
    info = st["bank_info"]
    assert (info["soundfont"], info["reloads"], info["reload_error"]) == (TIMGM, 0, None)
    assert info["name"] and f"bank: {TIMGM} ({info['name']})" in format_status(st)


def held_organ(rig: Rig, frame: int = 10) -> Any:
    kbd = rig.engine.open_capture("kbd:out")
    organ_note(rig, kbd, 69, frame)
    return kbd


def silent_blocks(audio: np.ndarray) -> int:
    return int(np.sum(np.max(np.abs(audio.reshape(-1, PERIOD)), axis=1) < 1e-4))


def test_a_reload_to_another_font_keeps_the_held_note_sounding_and_plays_new_notes_from_the_new_one() -> None:
    rig = Rig(on_font(TIMGM))
    kbd = held_organ(rig)
    rig.render(PERIOD * 40)
    report = rig.engine.reload(on_font(FLUIDR3))
    assert report == {"bank": FLUIDR3, "changed": True, "error": None}
    assert silent_blocks(rig.render(PERIOD * 100)) == 0
    assert rig.engine.status()["synth"]["retiring_voices"] > 0
    rig.play(kbd, bytes([0x80, 69, 0]), rig.position)
    rig.render(PERIOD * 400)
    assert rig.engine.synth.retiring_voices == 0 and rig.engine.collect_retired() == 1
    assert rig.engine.status()["bank_info"]["reloads"] == 1
    assert rig.engine.reload(on_font(FLUIDR3))["changed"] is False  # the same file: nothing loaded again


def test_a_soundfont_that_does_not_load_on_reload_keeps_the_bank_and_says_why(tmp_path: Any) -> None:
    broken = tmp_path / "broken.sf2"
    broken.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")
    rig = Rig(on_font(TIMGM))
    held_organ(rig)
    report = rig.engine.reload(on_font(str(broken)))
    assert report["changed"] is False and report["bank"] == TIMGM and str(broken) in report["error"]
    assert silent_blocks(rig.render(PERIOD * 60)[PERIOD * 20 :]) == 0  # the old bank plays on
    st = rig.engine.status()
    assert st["bank"] == TIMGM and str(broken) in st["bank_info"]["reload_error"]
    assert rig.engine.reload(on_font(TIMGM))["error"] is None  # the running bank asked for again: all well
    assert rig.engine.status()["bank_info"]["reload_error"] is None


def test_from_the_built_in_bank_to_a_font_the_font_comes_in_under_a_held_note() -> None:
    rig = Rig()  # the built-in bank, a SoundFont of its own
    kbd = held_organ(rig)
    rig.render(PERIOD * 40)
    synth = rig.engine.synth
    done: dict[str, Any] = {}
    reloading = threading.Thread(target=lambda: done.update(rig.engine.reload(on_font(TIMGM))))
    reloading.start()
    heard = []
    while reloading.is_alive() or rig.engine._control:  # the render thread's part: blocks go on meanwhile
        heard.append(rig.render(PERIOD))
    reloading.join()
    heard.append(rig.render(PERIOD * 20))
    assert done == {"bank": TIMGM, "changed": True, "error": None}
    assert rig.engine.synth is synth and synth.font.path == TIMGM
    assert silent_blocks(np.concatenate(heard)) == 0  # no gap: the held note sounds on from the built-in font
    assert synth.stats()["retiring_voices"] > 0
    rig.play(kbd, bytes([0x90, 72, 100]), rig.position + 10)  # new notes play the font
    rig.play(kbd, bytes([0xB0, 123, 0]), rig.position + 20)  # all notes off: the old font's voices end
    for _ in range(100):
        if synth.stats()["retiring_voices"] == 0:
            break
        rig.render(PERIOD * 100)
    assert synth.stats()["retiring_voices"] == 0 and rig.engine.collect_retired() == 1
