"""The SoundFont writer: what it writes, the loader reads back as meant."""

from __future__ import annotations

import numpy as np
import pytest

from mxfd.synth.soundfont.font import soundfont_from_buffer
from mxfd.synth.soundfont.generators import Gen
from mxfd.synth.soundfont.modulators import DEFAULT_VEL_TO_ATTENUATION, Modulator
from mxfd.synth.soundfont.writer import Font, Instrument, Preset, Sample, Zone, key_range, soundfont_bytes

PERIOD = (np.sin(np.arange(64) * 2 * np.pi / 64) * 20000).astype(np.int16)


NO_ZONE = Zone()


def _font(*zones: Zone, global_zone: Zone = NO_ZONE) -> Font:
    kit = Zone(((Gen.KEY_RANGE, key_range(35, 40)),), (), 0)
    return Font(
        "written",
        [Sample("sine", np.tile(PERIOD, 3), 44100, root_key=57, correction=-12, loop=(64, 128))],
        [Instrument("inst", [global_zone, *zones])],
        [Preset("first", 0, 5, [Zone((), (), 0)]), Preset("kit", 128, 0, [kit])],
    )


def test_a_written_font_loads_with_its_presets_samples_loops_and_pitch() -> None:
    font = soundfont_from_buffer(soundfont_bytes(_font(Zone(((Gen.SAMPLE_MODES, 1),), (), 0))), "w.sf2")
    assert font.name == "written" and font.counters() == {}
    assert [(p.bank, p.program, p.name) for p in font.presets] == [(0, 5, "first"), (128, 0, "kit")]
    (z,) = font.voice_zones(0, 5, 60, 100)
    assert (z.start, z.end, z.loop_start, z.loop_end, z.sample_mode) == (0, 192, 64, 128, 1)
    assert (z.root_key, z.pitch_correction, z.sample_rate) == (57, -12, 44100)
    assert np.array_equal(font.samples.data[z.start : z.end], np.tile(PERIOD, 3))


def test_key_and_velocity_ranges_select_zones_and_generators_keep_their_values() -> None:
    ranges = ((Gen.VEL_RANGE, key_range(0, 63)), (Gen.KEY_RANGE, key_range(0, 59)))  # out of order: sorted
    low = Zone((*ranges, (Gen.DECAY_VOL_ENV, -1200)), (), 0)
    high = Zone(((Gen.KEY_RANGE, key_range(60, 127)), (Gen.INITIAL_ATTENUATION, 120)), (), 0)
    font = soundfont_from_buffer(soundfont_bytes(_font(low, high)), "w.sf2")
    assert font.voice_zones(0, 5, 50, 100) == []  # key of the low zone, velocity of neither
    (z,) = font.voice_zones(0, 5, 50, 20)
    assert z.generator(Gen.DECAY_VOL_ENV) == -1200
    (z,) = font.voice_zones(0, 5, 70, 100)
    assert z.generator(Gen.INITIAL_ATTENUATION) == 120
    assert font.voice_zones(128, 0, 41, 100) == []  # outside the preset zone's key range


def test_a_global_zones_modulator_replaces_the_identical_default() -> None:
    softer = Modulator(DEFAULT_VEL_TO_ATTENUATION.src, DEFAULT_VEL_TO_ATTENUATION.dest, 480)
    font = soundfont_from_buffer(soundfont_bytes(_font(Zone((), (), 0), global_zone=Zone((), [softer]))), "w.sf2")
    (z,) = font.voice_zones(0, 5, 60, 100)
    (vel,) = [m for m in z.modulators if m.identical(softer)]
    assert vel.amount == 480


def test_more_generators_than_a_file_can_index_is_an_error_not_a_broken_file() -> None:
    many = [Zone(((Gen.INITIAL_ATTENUATION, 1),) * 8, (), 0)] * 8200
    with pytest.raises(ValueError, match="16-bit indices"):
        soundfont_bytes(_font(*many))
