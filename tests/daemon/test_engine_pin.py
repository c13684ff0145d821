"""The engine on the JACK-native pin's side, without a server: what its feeder writes into the data plane's ring.

The test plays the callback's part itself (``run_cycle`` on the plane, one
period at a time), so every event's frame in the ring can be checked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mxfd.core.clock import UNITS_PER_SECOND, master_time
from mxfd.core.event import EVENT_COMPLETE
from mxfd.daemon.bank import BUILTIN_NAME
from mxfd.daemon.config import Config, ConfigError, apply_overrides, loads
from mxfd.daemon.engine import Engine, pin_choice
from mxfd.synth.engine import dataplane
from mxfd.synth.engine.dataplane import MSG
from mxfd.synth.engine.plane_synth import PlaneSynth

RATE = 48000
PERIOD = 128
TIMGM = "/usr/share/sounds/sf2/TimGM6mb.sf2"
FLUIDR3 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
run_cycle: Any = dataplane.run_cycle


def on_pin(soundfont: str = TIMGM) -> Config:
    return loads(f'[audio]\npin = "jack"\n[synth]\nsoundfont = "{soundfont}"\nreverb = false\nchorus = false\n')


class PinRig:
    """An engine on a PlaneSynth, fed as the pin's feeder does, its plane rendered as the callback does."""

    def __init__(self) -> None:
        self.engine = Engine(on_pin())
        self.synth = self.engine.synth
        assert isinstance(self.synth, PlaneSynth)
        self.t0 = master_time()
        self.engine.on_sync(self.t0, 0)
        self.left = np.zeros(PERIOD, np.float32)
        self.right = np.zeros(PERIOD, np.float32)
        self.seen: list[tuple[int, int]] = []  # (frame, word) of every record the ring held
        self._read = 0

    def cycles(self, n: int) -> None:
        a = self.synth.plane_arrays
        for _ in range(n):
            self.engine.feed(self.synth.ring.position)
            write = int(a["prod"][dataplane.P_WRITE])
            cap = a["ring"].shape[0]
            self.seen += [(int(a["ring"][i % cap, 0]), int(a["ring"][i % cap, 1])) for i in range(self._read, write)]
            self._read = write
            run_cycle(self.synth.plane, PERIOD, self.left, self.right)

    def play(self, stream: Any, message: bytes, frame: int) -> None:
        stream.capture(message, 0, len(message), self.t0 + frame * UNITS_PER_SECOND // RATE, EVENT_COMPLETE)
        stream.flush()


def status_bytes(rig: PinRig, status: int) -> list[int]:
    """The frames of the ring's channel messages of kind ``status`` (any channel)."""
    return [f for f, w in rig.seen if (w >> 56) & 0xFF == MSG and (w >> 16) & 0xF0 == status]


def test_the_audio_pin_is_a_config_key_and_a_flag_checked_alike() -> None:
    assert Config().audio.pin == "auto"
    assert loads('[audio]\npin = "jack"\n').audio.pin == "jack"
    with pytest.raises(ConfigError) as info:
        loads('[audio]\npin = "alsa"\n')
    assert "pin" in str(info.value) and "'auto', 'portaudio', 'jack'" in str(info.value)
    assert "\n" not in str(info.value)
    assert apply_overrides(Config(), audio_pin="jack").audio.pin == "jack"
    with pytest.raises(ConfigError, match="--audio-pin"):
        apply_overrides(Config(), audio_pin="pulse")


@pytest.mark.parametrize(
    ("pin", "device", "server", "on_pin", "why"),
    [
        ("auto", "default", None, True, "a JACK server answers"),
        ("auto", "default", "no server", False, "no JACK server answers (no server)"),
        ("auto", "hw:1", None, False, "[audio] device = 'hw:1'"),
        ("jack", "hw:1", "no server", True, '[audio] pin = "jack"'),
        ("portaudio", "default", None, False, '[audio] pin = "portaudio"'),
    ],
)
def test_auto_plays_on_the_jack_pin_where_a_server_answers_and_the_device_is_the_default(
    pin: str, device: str, server: str | None, on_pin: bool, why: str
) -> None:
    config = loads(f'[audio]\npin = "{pin}"\ndevice = "{device}"\n')
    asked: list[bool] = []

    def answers() -> str | None:
        asked.append(True)
        return server

    got, said = pin_choice(config, answers)
    assert got is on_pin and said.startswith(why), said
    assert bool(asked) == (pin == "auto" and device == "default")  # a server is asked only then


def test_pin_jack_builds_a_plane_synth_for_a_font_and_for_the_built_in_bank() -> None:
    assert isinstance(Engine(on_pin()).synth, PlaneSynth)
    engine = Engine(on_pin("builtin"))
    assert isinstance(engine.synth, PlaneSynth) and engine.bank_name == BUILTIN_NAME


def test_the_feeder_writes_thru_events_at_their_frame_plus_the_latency() -> None:
    rig = PinRig()
    kbd = rig.engine.open_capture("kbd:out")
    latency = rig.engine.render_latency_frames
    frames = [1000, 1000 + 4 * PERIOD + 37, 3000 + 91]
    rig.cycles(2)
    for f in frames:
        rig.play(kbd, bytes([0x90, 60, 100]), f)
        rig.cycles(1 + (f - rig.synth.ring.position) // PERIOD if f > rig.synth.ring.position else 1)
    rig.cycles(latency // PERIOD + 4)
    assert status_bytes(rig, 0x90) == [f + latency for f in frames]
    assert int(rig.synth.plane_arrays["cons"][dataplane.C_LATE]) == 0  # each one there before its cycle


def test_a_panic_and_a_vanished_source_go_through_the_ring() -> None:
    rig = PinRig()
    kbd = rig.engine.open_capture("kbd:out")
    rig.play(kbd, bytes([0x90, 60, 100]), 10)
    rig.cycles(rig.engine.render_latency_frames // PERIOD + 3)
    assert rig.synth.stats()["voices"] == 1
    assert rig.engine.panic(timeout=0.0)["applied"] is False  # the feeder applies it at its next cycle
    rig.cycles(2)
    assert len(status_bytes(rig, 0xB0)) == 32  # CC 120 and CC 121 on each of the group's 16 channels
    assert rig.synth.stats()["voices"] == 0
    rig.engine.close_capture(kbd)
    rig.cycles(2)
    assert len(status_bytes(rig, 0xB0)) == 32 + 48  # its notes and pedals released: CC 64, 66, 123 each


def test_a_reload_to_the_built_in_bank_on_the_pin_swaps_it_into_the_plane() -> None:
    engine = Engine(on_pin())
    synth = engine.synth
    report = engine.reload_bank(on_pin("builtin"))
    assert report == {"bank": BUILTIN_NAME, "changed": True, "error": None}
    assert engine.synth is synth and isinstance(synth, PlaneSynth) and synth.font.name == BUILTIN_NAME


def test_a_reload_to_another_font_on_the_pin_swaps_it_into_the_plane_under_a_held_note() -> None:
    rig = PinRig()
    kbd = rig.engine.open_capture("kbd:out")
    rig.play(kbd, bytes([0xC0, 19]), 10)
    rig.play(kbd, bytes([0x90, 60, 100]), 10)
    rig.cycles(rig.engine.render_latency_frames // PERIOD + 3)
    report = rig.engine.reload_bank(on_pin(FLUIDR3))
    assert report == {"bank": FLUIDR3, "changed": True, "error": None}
    assert rig.engine.synth is rig.synth and rig.synth.font.path == FLUIDR3
    rig.cycles(2)
    assert int(rig.synth.plane_arrays["cons"][dataplane.C_SWAPS]) == 1
    stats = rig.synth.stats()
    assert stats["retiring_voices"] > 0 and stats["voices"] == stats["retiring_voices"]  # the held note, old font
